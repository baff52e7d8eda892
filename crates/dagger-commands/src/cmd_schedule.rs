//! `dagger schedule list|run|trigger|backfill|add|delete|pause|resume`: the
//! schedules of workflow files (`schedules:`) and those added to the store,
//! fired by a [`Scheduler`] over the store.

use crate::App;
use crate::cmd_schedule_store::{self as stored, NewSchedule};
use crate::error::CliError;
use crate::signals;
use crate::store::AnyStore;
use crate::view::{print_issues, print_json};
use crate::{DbArg, open_store};
use dagger_coord::{Coordinator, Fired, Scheduler};
use dagger_core::now_millis;
use dagger_dag_flow::{
    DagConfig, DagExecutor, Overlap, Schedule, ScheduleSource, WorkflowDef, effective_schedules,
    load_yaml_path,
};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// `dagger schedule …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ScheduleCommand {
    /// List the schedules of workflow files and those stored for their
    /// workflows, with their state (paused or active, and whether the file or
    /// the store says so) and next fire.
    List {
        /// Workflow YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a `schedule_list` of docs/schemas/cli.schema.json.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Pause a schedule (declared in the files or stored for their
    /// workflows) in the store, overriding `paused:`: every scheduler on the
    /// store stops firing it at its next tick. Trigger and backfill still work.
    Pause {
        /// Workflow YAML files, then the schedule's name.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The schedule.
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Resume a schedule in the store (also one with `paused: true` in its
    /// file): every scheduler on the store fires it again from its next tick;
    /// fires that fell while it was paused are not caught up.
    Resume {
        /// Workflow YAML files, then the schedule's name.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The schedule.
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Add a schedule of the workflow of FILE to the store, checked as a
    /// `schedules:` entry is; every scheduler on the store that loads the
    /// workflow fires it from its next tick.
    Add {
        /// The workflow YAML file.
        file: PathBuf,
        /// The schedule's name (not one declared in the file).
        name: String,
        /// A cron expression (5 fields, or 6 with seconds first).
        #[arg(long, required_unless_present = "every")]
        cron: Option<String>,
        /// A fixed interval (`30s`, `10m`, `2h`, `1d`).
        #[arg(long)]
        every: Option<String>,
        /// The IANA time zone of `--cron` (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// A run input of every fired run, as KEY=VALUE (VALUE is JSON when
        /// it parses as JSON, else a string).
        #[arg(long = "input", value_name = "KEY=VALUE")]
        inputs: Vec<String>,
        /// skip (default), buffer_one, buffer_all, cancel_other or allow_all.
        #[arg(long)]
        overlap: Option<String>,
        /// How late a missed fire may still start (default 1m).
        #[arg(long)]
        catch_up: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Delete a schedule added to the store (one declared in a file is
    /// removed by editing the file).
    Delete {
        /// Workflow YAML files, then the schedule's name.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The schedule.
        name: String,
        #[command(flatten)]
        db: DbArg,
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
    source: ScheduleSource,
    paused_source: ScheduleSource,
    next_fire_at: Option<i64>,
}

pub(crate) async fn schedule(command: ScheduleCommand, app: &App) -> Result<ExitCode, CliError> {
    match command {
        ScheduleCommand::List { files, json, db } => list(&files, json, &db.db).await,
        ScheduleCommand::Pause { files, name, db } => {
            stored::set_paused(&load(&files)?, &name, true, &open_store(&db.db).await?).await
        }
        ScheduleCommand::Resume { files, name, db } => {
            stored::set_paused(&load(&files)?, &name, false, &open_store(&db.db).await?).await
        }
        ScheduleCommand::Delete { files, name, db } => {
            stored::delete(&load(&files)?, &name, &open_store(&db.db).await?).await
        }
        ScheduleCommand::Add {
            file,
            name,
            cron,
            every,
            timezone,
            inputs,
            overlap,
            catch_up,
            db,
        } => {
            let defs = load(&[file])?;
            let inputs = inputs
                .iter()
                .map(|text| crate::cmd_run::parse_input(text))
                .collect::<Result<_, _>>()?;
            let new = NewSchedule {
                name,
                cron,
                every,
                timezone,
                inputs,
                overlap,
                catch_up,
            };
            stored::add(&defs, new, &open_store(&db.db).await?).await
        }
        ScheduleCommand::Run { files, db } => {
            let scheduler = scheduler(&files, &db.db, app).await?;
            if scheduler.schedules().next().is_none() {
                return Err(CliError::Usage(
                    "the files declare no schedules and none is stored for their workflows".into(),
                ));
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

async fn list(files: &[PathBuf], json: bool, db: &str) -> Result<ExitCode, CliError> {
    let now = now_millis();
    let defs = load(files)?;
    let mut declared = Vec::new();
    for (_, def) in &defs {
        for s in &def.schedules {
            declared
                .push(Schedule::new(&def.name, s.clone()).map_err(dagger_coord::CoordError::from)?);
        }
    }
    // A SQLite file that does not exist holds no state; list creates none.
    let stored = match AnyStore::open_for_reading(db).await? {
        Some(store) => store.stores().schedules.list_schedules().await?,
        None => Vec::new(),
    };
    let (entries, problems) = effective_schedules(&declared, &stored, |w| {
        defs.iter().any(|(_, d)| d.name == w)
    });
    for p in problems {
        errln!("warning: {p}");
    }
    let rows: Vec<ScheduleJson<'_>> = entries
        .iter()
        .map(|e| {
            let s = &e.schedule;
            ScheduleJson {
                name: s.name(),
                workflow: &s.workflow,
                cron: s.def.cron.as_deref(),
                timezone: s.def.timezone.as_deref(),
                every: s.def.every.as_deref(),
                overlap: s.def.overlap,
                catch_up_ms: s.catch_up_ms(),
                paused: e.paused,
                source: e.source,
                paused_source: e.paused_source,
                next_fire_at: s.next_fire(now),
            }
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
        let by = |s: ScheduleSource| match s {
            ScheduleSource::File => "file",
            ScheduleSource::Store => "store",
        };
        outln!(
            "{}\t{}\t{when}\t{:?}\t{state} ({})\tdefined in {}\tnext {}",
            r.name,
            r.workflow,
            r.overlap,
            by(r.paused_source),
            by(r.source),
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
    let mut scheduler = Scheduler::new(coordinator, executor, now_millis())?;
    scheduler.refresh(now_millis()).await?;
    Ok(scheduler)
}
