//! `dagger runs list|show` and `dagger dot`.

use crate::DbArg;
use crate::error::CliError;
use crate::store::{AnyStore, missing_file, resolve_run_id};
use crate::view::{
    NodeJson, RunDetailJson, RunJson, format_time, human_duration, print_json, print_table, table,
};
use dagger_core::store::RunQuery;
use dagger_core::{RunStatus, now_millis};
use dagger_dag_flow::{NodeRunView, load_yaml_path, serialize_run_to_dot, serialize_tree_to_dot};
use std::path::PathBuf;
use std::process::ExitCode;

/// A run status to filter on (any case: `failed` is `Failed`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "PascalCase")]
pub(crate) enum StatusFilter {
    /// Created, not started.
    Pending,
    /// Executing.
    Running,
    /// Stopped with state kept.
    Paused,
    /// Waiting for a human.
    WaitingForHuman,
    /// Every node completed.
    Completed,
    /// A node failed, a timeout or a budget ended it.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Unfinished, its owner's lease lapsed.
    Orphaned,
}

impl StatusFilter {
    /// The stored status, or `None` for the derived `Orphaned`.
    fn stored(self) -> Option<RunStatus> {
        Some(match self {
            Self::Pending => RunStatus::Pending,
            Self::Running => RunStatus::Running,
            Self::Paused => RunStatus::Paused,
            Self::WaitingForHuman => RunStatus::WaitingForHuman,
            Self::Completed => RunStatus::Completed,
            Self::Failed => RunStatus::Failed,
            Self::Cancelled => RunStatus::Cancelled,
            Self::Orphaned => return None,
        })
    }
}

/// `dagger runs ...`
#[derive(clap::Subcommand, Debug)]
pub(crate) enum RunsCommand {
    /// Recorded runs, newest first: id, workflow, status, started, duration.
    /// An unfinished run whose owning process stopped renewing its lease
    /// (killed, machine lost) shows as Orphaned. Without a database (none
    /// recorded yet) it says so on stderr, lists nothing and exits 0.
    List {
        #[command(flatten)]
        db: DbArg,
        /// Only runs with this status, in any case (Orphaned: unfinished, their owner's lease lapsed).
        #[arg(long, ignore_case = true)]
        status: Option<StatusFilter>,
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print as JSON: an array of runs (docs/schemas/cli.schema.json).
        #[arg(long)]
        json: bool,
    },
    /// One run with a per-node table and its lineage: the run it re-ran
    /// (parent), the node it was forked from, and the runs re-run from it.
    Show {
        /// The run (or the start of its id, when only one run's id starts so).
        run_id: String,
        #[command(flatten)]
        db: DbArg,
        /// Print as JSON (docs/schemas/cli.schema.json).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn runs(command: RunsCommand) -> Result<ExitCode, CliError> {
    match command {
        RunsCommand::List {
            db,
            status,
            workflow,
            limit,
            json,
        } => list(&db.db, status, workflow, limit, json).await,
        RunsCommand::Show { run_id, db, json } => show(&db.db, &run_id, json).await,
    }
}

async fn list(
    db: &str,
    status: Option<StatusFilter>,
    workflow: Option<String>,
    limit: usize,
    json: bool,
) -> Result<ExitCode, CliError> {
    let Some(store) = AnyStore::open_for_reading(db).await? else {
        let path = missing_file(db).unwrap_or_default();
        errln!("no database at {}: no runs recorded yet", path.display());
        print_runs(&[], json)?;
        return Ok(ExitCode::SUCCESS);
    };
    let runs = match status {
        // `Orphaned` is derived (an unfinished run whose owner's lease
        // lapsed), not a stored status: it is filtered here.
        Some(StatusFilter::Orphaned) => {
            let mut runs = dagger_coord::orphaned_runs(&store.stores()).await?;
            runs.retain(|r| workflow.as_ref().is_none_or(|w| &r.workflow == w));
            runs.reverse(); // newest first, as the store lists them
            runs.truncate(limit);
            runs
        }
        _ => {
            store
                .stores()
                .runs
                .list_runs(&RunQuery {
                    status: status.and_then(StatusFilter::stored),
                    workflow,
                    limit: Some(limit),
                    offset: 0,
                })
                .await?
        }
    };
    let now = now_millis();
    let rows: Vec<RunJson> = runs.iter().map(|r| RunJson::new(r, now)).collect();
    print_runs(&rows, json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_runs(rows: &[RunJson], json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&rows);
    }
    let mut t = table(
        &["RUN", "WORKFLOW", "STATUS", "STARTED (UTC)", "DURATION"],
        &[4],
    );
    for r in rows {
        t.add_row([
            r.run_id.clone(),
            r.workflow.clone(),
            r.state.to_string(),
            format_time(r.created_at),
            human_duration(r.duration_ms),
        ]);
    }
    print_table(&t);
    Ok(())
}

async fn show(db: &str, run_id: &str, json: bool) -> Result<ExitCode, CliError> {
    let store = AnyStore::open_run_for_reading(db, run_id).await?;
    let run_id = resolve_run_id(&store.stores(), run_id).await?;
    let view = dagger_coord::load_run_view(&store.stores(), run_id.as_str()).await?;
    let children = store.stores().runs.child_runs(&view.record.run_id).await?;
    let now = now_millis();
    if json {
        return print_json(&RunDetailJson {
            run: RunJson::new(&view.record, now),
            owner: view.record.owner.clone(),
            orphaned_since: view.record.orphaned_since(now),
            inputs: view.record.inputs.clone(),
            children: children.iter().map(|c| RunJson::new(c, now)).collect(),
            nodes: view.nodes.iter().map(NodeJson::from).collect(),
        })
        .map(|()| ExitCode::SUCCESS);
    }
    let r = &view.record;
    let lineage = r.lineage.as_ref();
    outln!("run       {}", r.run_id);
    outln!("workflow  {}", r.workflow);
    outln!(
        "status    {}{}",
        r.display_status(now),
        r.reason
            .as_ref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default()
    );
    if let Some(o) = &r.owner {
        match r.orphaned_since(now) {
            Some(since) => outln!(
                "owner     pid {} on {}, gone since {} UTC (its lease lapsed); \
                 take it over with: dagger resume {}",
                o.pid,
                o.host,
                format_time(since),
                r.run_id
            ),
            None => outln!(
                "owner     pid {} on {}, lease until {} UTC",
                o.pid,
                o.host,
                format_time(o.lease_expires_at)
            ),
        }
    }
    outln!("started   {}", format_time(r.created_at));
    outln!(
        "duration  {}{}",
        human_duration(r.finished_at.unwrap_or(now) - r.created_at),
        if r.finished_at.is_none() {
            " so far"
        } else {
            ""
        }
    );
    if let Some(l) = lineage {
        outln!(
            "parent    {} ({})",
            l.parent_run_id,
            l.forked_from_node.as_ref().map_or_else(
                || "re-ran every node".to_string(),
                |n| format!("forked from node `{n}`")
            )
        );
    }
    for c in &children {
        outln!(
            "child     {} {} ({})",
            c.run_id,
            c.display_status(now),
            c.lineage
                .as_ref()
                .and_then(|l| l.forked_from_node.as_ref())
                .map_or_else(
                    || "re-ran every node".to_string(),
                    |n| format!("from node `{n}`")
                )
        );
    }
    outln!();
    let mut t = table(
        &["NODE", "STATUS", "ATTEMPTS", "DURATION", "ERROR"],
        &[2, 3],
    );
    for n in &view.nodes {
        let id = if n.added_at_runtime {
            format!("{} (added)", n.id)
        } else {
            n.id.to_string()
        };
        t.add_row([
            id,
            n.status.to_string(),
            n.attempts.to_string(),
            n.duration_ms
                .map(|d| human_duration(i64::try_from(d).unwrap_or(i64::MAX)))
                .unwrap_or_else(|| "-".into()),
            waiting_text(n)
                .or_else(|| n.error.clone())
                .unwrap_or_default(),
        ]);
    }
    print_table(&t);
    Ok(ExitCode::SUCCESS)
}

/// What a `Waiting` node waits for, for the ERROR column of `runs show`.
fn waiting_text(n: &dagger_coord::NodeReport) -> Option<String> {
    if n.status != dagger_core::NodeStatus::Waiting {
        return None;
    }
    let until = n.wake_at.map(|at| format!("{} UTC", format_time(at)));
    Some(match (&n.signal, until) {
        (Some(s), Some(t)) => format!("waiting for signal `{s}` until {t}"),
        (Some(s), None) => format!("waiting for signal `{s}`"),
        (None, Some(t)) => format!("waiting until {t}"),
        (None, None) => "waiting".into(),
    })
}

pub(crate) async fn dot(
    file: Option<PathBuf>,
    run: Option<String>,
    db: &str,
) -> Result<ExitCode, CliError> {
    if let Some(file) = file {
        let def = match load_yaml_path(&file) {
            Ok(d) => d,
            Err(errors) => {
                crate::view::print_issues(errors.issues());
                return Err(CliError::Invalid {
                    count: errors.issues().len(),
                });
            }
        };
        out!("{}", serialize_tree_to_dot(&def));
        return Ok(ExitCode::SUCCESS);
    }
    let run_id = run.ok_or_else(|| CliError::Usage("give a FILE or --run RUN_ID".into()))?;
    let store = AnyStore::open_run_for_reading(db, &run_id).await?;
    let run_id = resolve_run_id(&store.stores(), &run_id).await?;
    let view = dagger_coord::load_run_view(&store.stores(), run_id.as_str()).await?;
    let nodes: Vec<NodeRunView> = view
        .nodes
        .iter()
        .map(|n| {
            let mut v = NodeRunView::new(n.id.clone(), n.status);
            v.attempts = n.attempts;
            v.duration_ms = n.duration_ms;
            v.added_at_runtime = n.added_at_runtime;
            match n.status {
                dagger_core::NodeStatus::Failed => v.error = n.error.clone(),
                _ => v.reason = n.error.clone(),
            }
            v
        })
        .collect();
    out!("{}", serialize_run_to_dot(&view.workflow, &nodes));
    Ok(ExitCode::SUCCESS)
}
