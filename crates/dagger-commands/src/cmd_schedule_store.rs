//! `dagger schedule add|delete|pause|resume`: schedule state kept in the
//! store ([`ScheduleStore`]), read by every scheduler on it at its next tick.
//! The callers load the workflow files; this module checks names against
//! their declared schedules and writes the store.

use crate::error::CliError;
use crate::store::AnyStore;
use dagger_core::StoreError;
use dagger_core::now_millis;
use dagger_core::store::ScheduleStore;
use dagger_dag_flow::{Overlap, Schedule, ScheduleDef, WorkflowDef};
use serde_json::{Map, Value};
use std::process::ExitCode;

/// A schedule to add, as given on the command line.
pub(crate) struct NewSchedule {
    /// Its name.
    pub(crate) name: String,
    /// `--cron`.
    pub(crate) cron: Option<String>,
    /// `--every`.
    pub(crate) every: Option<String>,
    /// `--timezone`.
    pub(crate) timezone: Option<String>,
    /// `--input KEY=VALUE`, parsed.
    pub(crate) inputs: Map<String, Value>,
    /// `--overlap`.
    pub(crate) overlap: Option<String>,
    /// `--catch-up`.
    pub(crate) catch_up: Option<String>,
}

/// The workflow file (as given) and workflow declaring schedule `name`, if
/// one of `defs` does.
fn declared_in<'a>(defs: &'a [(String, WorkflowDef)], name: &str) -> Option<(&'a str, &'a str)> {
    defs.iter()
        .find(|(_, def)| def.schedules.iter().any(|s| s.name == name))
        .map(|(file, def)| (file.as_str(), def.name.as_str()))
}

/// `schedule add`: checks the schedule as the YAML loader checks a
/// `schedules:` entry and stores it for the workflow of `defs[0]`.
pub(crate) async fn add(
    defs: &[(String, WorkflowDef)],
    new: NewSchedule,
    store: &AnyStore,
) -> Result<ExitCode, CliError> {
    let Some((_, workflow)) = defs.first() else {
        return Err(CliError::Usage("a workflow file is needed".into()));
    };
    if let Some((file, wf)) = declared_in(defs, &new.name) {
        return Err(CliError::Usage(format!(
            "schedule `{}` is declared in {file} (workflow `{wf}`); give the stored one another name",
            new.name
        )));
    }
    let overlap = match &new.overlap {
        None => Overlap::default(),
        Some(text) => serde_json::from_value(Value::String(text.clone())).map_err(|_| {
            CliError::Usage(format!(
                "--overlap `{text}`: one of skip, buffer_one, buffer_all, cancel_other, allow_all"
            ))
        })?,
    };
    let def = ScheduleDef {
        name: new.name.clone(),
        cron: new.cron,
        timezone: new.timezone,
        every: new.every,
        inputs: new.inputs,
        overlap,
        catch_up: new.catch_up,
        paused: false,
    };
    Schedule::new(&workflow.name, def.clone()).map_err(dagger_coord::CoordError::from)?;
    let spec = serde_json::to_value(&def)
        .map_err(|e| CliError::Other(format!("schedule `{}`: {e}", def.name)))?;
    let schedules = store.stores().schedules;
    match schedules
        .add_schedule(&def.name, &workflow.name, spec, now_millis())
        .await
    {
        Ok(()) => {}
        Err(StoreError::AlreadyExists { .. }) => {
            let holder = stored_workflow(schedules.as_ref(), &def.name).await?;
            return Err(CliError::Usage(format!(
                "schedule `{}` is already stored (workflow `{}`); delete it first",
                def.name,
                holder.unwrap_or_default()
            )));
        }
        Err(e) => return Err(e.into()),
    }
    outln!("{}\tadded\t{}", def.name, workflow.name);
    Ok(ExitCode::SUCCESS)
}

/// The workflow of stored schedule `name`, if the store holds one.
async fn stored_workflow(
    store: &dyn ScheduleStore,
    name: &str,
) -> Result<Option<String>, CliError> {
    Ok(store
        .list_schedules()
        .await?
        .into_iter()
        .find(|r| r.name == name && r.spec.is_some())
        .and_then(|r| r.workflow))
}

/// `schedule delete`: removes a stored schedule; a declared one is an error
/// saying to edit its file.
pub(crate) async fn delete(
    defs: &[(String, WorkflowDef)],
    name: &str,
    store: &AnyStore,
) -> Result<ExitCode, CliError> {
    if let Some((file, wf)) = declared_in(defs, name) {
        return Err(CliError::Usage(format!(
            "schedule `{name}` is declared in {file} (workflow `{wf}`), not stored: \
             edit the file to remove it (or `dagger schedule pause` it)"
        )));
    }
    if !store.stores().schedules.delete_schedule(name).await? {
        return Err(CliError::Usage(format!(
            "no schedule `{name}` is stored in {}",
            store.location()
        )));
    }
    outln!("{name}\tdeleted");
    Ok(ExitCode::SUCCESS)
}

/// `schedule pause|resume`: records the paused state of schedule `name`
/// (declared in `defs` or stored for one of their workflows) in the store.
pub(crate) async fn set_paused(
    defs: &[(String, WorkflowDef)],
    name: &str,
    paused: bool,
    store: &AnyStore,
) -> Result<ExitCode, CliError> {
    let schedules = store.stores().schedules;
    let known = declared_in(defs, name).is_some() || {
        let holder = stored_workflow(schedules.as_ref(), name).await?;
        holder.is_some_and(|w| defs.iter().any(|(_, d)| d.name == w))
    };
    if !known {
        return Err(CliError::Usage(format!(
            "no schedule `{name}` is declared in the given files or stored for their workflows"
        )));
    }
    schedules
        .set_schedule_paused(name, paused, now_millis())
        .await?;
    outln!("{name}\t{}", if paused { "paused" } else { "active" });
    Ok(ExitCode::SUCCESS)
}
