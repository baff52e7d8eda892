//! `dagger schedule list|run|trigger|backfill`: the schedules (`schedules:`)
//! of workflow files, fired by a [`Scheduler`] over the store.

use crate::App;
use crate::error::CliError;
use crate::signals;
use crate::store::AnyStore;
use crate::view::{print_issues, print_json};
use crate::{DbArg, open_store};
use dagger_coord::{Coordinator, Fired, Scheduler};
use dagger_core::now_millis;
use dagger_dag_flow::{DagConfig, DagExecutor, Overlap, Schedule, WorkflowDef, load_yaml_path};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// `dagger schedule …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ScheduleCommand {
    /// List the schedules of workflow files with their next fire.
    List {
        /// Workflow YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a `schedule_list` of docs/schemas/cli.schema.json.
        #[arg(long)]
        json: bool,
    },
    /// Fire the schedules of workflow files until Ctrl-C or SIGTERM: each fire
    /// starts one run in this process; with several schedulers on one store,
    /// each fire still starts one run. Fires missed while none ran are started
    /// within each schedule's catch-up window.
    Run {
        /// Workflow YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Start one run of a schedule now and wait for it; prints the run id.
    Trigger {
        /// The workflow YAML file declaring the schedule.
        file: PathBuf,
        /// The schedule.
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Start the runs of a schedule's fires between two times (RFC 3339, both
    /// included), at most `--concurrency` at a time, and wait for them. A fire
    /// that already has its run is not run again.
    Backfill {
        /// The workflow YAML file declaring the schedule.
        file: PathBuf,
        /// The schedule.
        name: String,
        /// The first time (e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        from: String,
        /// The last time.
        #[arg(long)]
        to: String,
        /// At most this many runs at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[command(flatten)]
        db: DbArg,
    },
}

/// One line of `schedule list --json`.
#[derive(Serialize)]
struct ScheduleJson<'a> {
    name: &'a str,
    workflow: &'a str,
    cron: Option<&'a str>,
    timezone: Option<&'a str>,
    every: Option<&'a str>,
    overlap: Overlap,
    catch_up_ms: i64,
    paused: bool,
    next_fire_at: Option<i64>,
}

pub(crate) async fn schedule(command: ScheduleCommand, app: &App) -> Result<ExitCode, CliError> {
    match command {
        ScheduleCommand::List { files, json } => list(&files, json),
        ScheduleCommand::Run { files, db } => {
            let scheduler = scheduler(&files, &db.db, app).await?;
            if scheduler.schedules().next().is_none() {
                return Err(CliError::Usage("the files declare no schedules".into()));
            }
            let cancel = CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                signals::first_stop_signal().await;
                stop.cancel();
            });
            scheduler.run(cancel).await?;
            Ok(ExitCode::SUCCESS)
        }
        ScheduleCommand::Trigger { file, name, db } => {
            let scheduler = scheduler(&[file], &db.db, app).await?;
            let (fired, handle) = scheduler.trigger(&name, now_millis()).await?;
            print_fired(&fired);
            match handle {
                Some(handle) => Ok(report_code(handle.await?.status)),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        ScheduleCommand::Backfill {
            file,
            name,
            from,
            to,
            concurrency,
            db,
        } => {
            let (from, to) = (time_arg("--from", &from)?, time_arg("--to", &to)?);
            let scheduler = scheduler(&[file], &db.db, app).await?;
            for fired in scheduler.backfill(&name, from, to, concurrency).await? {
                print_fired(&fired);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report_code(status: dagger_core::RunStatus) -> ExitCode {
    if status == dagger_core::RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_fired(f: &Fired) {
    outln!("{}\t{:?}", f.run_id, f.outcome);
}

fn time_arg(flag: &str, text: &str) -> Result<i64, CliError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| CliError::Usage(format!("{flag} `{text}` is not an RFC 3339 time: {e}")))
}

/// The workflows of `files`, or every problem printed.
fn load(files: &[PathBuf]) -> Result<Vec<(String, WorkflowDef)>, CliError> {
    let mut defs = Vec::new();
    for file in files {
        match load_yaml_path(file) {
            Ok(def) => defs.push((file.display().to_string(), def)),
            Err(errors) => {
                print_issues(errors.issues());
                return Err(CliError::Invalid {
                    count: errors.issues().len(),
                });
            }
        }
    }
    Ok(defs)
}

fn list(files: &[PathBuf], json: bool) -> Result<ExitCode, CliError> {
    let now = now_millis();
    let mut schedules = Vec::new();
    for (_, def) in load(files)? {
        for s in &def.schedules {
            schedules
                .push(Schedule::new(&def.name, s.clone()).map_err(dagger_coord::CoordError::from)?);
        }
    }
    let rows: Vec<ScheduleJson<'_>> = schedules
        .iter()
        .map(|s| ScheduleJson {
            name: s.name(),
            workflow: &s.workflow,
            cron: s.def.cron.as_deref(),
            timezone: s.def.timezone.as_deref(),
            every: s.def.every.as_deref(),
            overlap: s.def.overlap,
            catch_up_ms: s.catch_up_ms(),
            paused: s.def.paused,
            next_fire_at: s.next_fire(now),
        })
        .collect();
    if json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &rows {
        let when = match (r.cron, r.every) {
            (Some(c), _) => format!("cron `{c}` {}", r.timezone.unwrap_or("UTC")),
            (_, Some(e)) => format!("every {e}"),
            _ => String::new(),
        };
        let state = if r.paused { "paused" } else { "active" };
        outln!(
            "{}\t{}\t{when}\t{:?}\t{state}\tnext {}",
            r.name,
            r.workflow,
            r.overlap,
            r.next_fire_at
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(|| "-".to_string(), |t| t.to_rfc3339())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Fires the schedules of `files` on `store` (at `db`) in the background
/// until `stop` is cancelled (`dagger worker --schedules`).
pub(crate) async fn spawn_files(
    files: &[PathBuf],
    store: &AnyStore,
    db: &str,
    app: &App,
    stop: CancellationToken,
) -> Result<(), CliError> {
    let scheduler = scheduler_of(load(files)?, store, db, app).await?;
    errln!("firing {} schedule(s)", scheduler.schedules().count());
    tokio::spawn(async move {
        if let Err(e) = scheduler.run(stop).await {
            tracing::error!(error = %e, "the scheduler stopped");
        }
    });
    Ok(())
}

/// A scheduler of the schedules of `files`, on store `db`, with the binary's actions.
async fn scheduler(files: &[PathBuf], db: &str, app: &App) -> Result<Scheduler, CliError> {
    let defs = load(files)?;
    let store = open_store(db).await?;
    scheduler_of(defs, &store, db, app).await
}

/// A scheduler of the schedules of workflows `defs` (each with the file it
/// came from), on `store` (at location `db`), with the binary's actions.
pub(crate) async fn scheduler_of(
    defs: Vec<(String, WorkflowDef)>,
    store: &AnyStore,
    db: &str,
    app: &App,
) -> Result<Scheduler, CliError> {
    let mut executor: DagExecutor = app
        .executor(
            Some(DagConfig::default()),
            app.actions_recording(db),
            store.stores(),
        )
        .await
        .map_err(dagger_coord::CoordError::from)?;
    for (source, def) in defs {
        executor
            .insert_workflow(def, source)
            .map_err(dagger_coord::CoordError::from)?;
    }
    let coordinator = crate::cmd_run::dispatching(Coordinator::default(), store, true, true);
    Ok(Scheduler::new(coordinator, executor, now_millis())?)
}
