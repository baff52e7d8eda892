//! `dagger logs RUN [NODE] [--attempt N] [--follow] [--json]`: every
//! recorded attempt of a run's nodes with its outcome, times, error, log
//! lines, stdout and stderr.

use crate::DbArg;
use crate::error::CliError;
use crate::store::{AnyStore, resolve_run_id};
use crate::view::human_duration;
use dagger_core::store::{AttemptQuery, AttemptRecord, RunRecord};
use dagger_core::{NodeId, RunId, RunStatus, Stores, now_millis};
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

/// How often `--follow` looks for new attempts.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// `dagger logs`
#[derive(clap::Args, Debug)]
pub(crate) struct LogsArgs {
    /// The run (or the start of its id, when only one run's id starts so).
    run_id: String,
    /// Only this node's attempts.
    node_id: Option<String>,
    /// Only attempts with this number (1 is the first).
    #[arg(long)]
    attempt: Option<u32>,
    /// Keep printing attempts as they end, until the run ends (or Ctrl-C).
    #[arg(long, short = 'f')]
    follow: bool,
    /// One JSON object per attempt and line (JSON Lines; an `attempt` of
    /// docs/schemas/cli.schema.json).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArg,
}

pub(crate) async fn logs(args: LogsArgs) -> Result<ExitCode, CliError> {
    let store = AnyStore::open_run_for_reading(&args.db.db, &args.run_id).await?;
    let stores = store.stores();
    let run_id = RunId::from(resolve_run_id(&stores, &args.run_id).await?);
    let run = get_run(&stores, &run_id).await?;
    let query = AttemptQuery {
        node_id: args.node_id.as_deref().map(NodeId::from),
        attempt: args.attempt,
    };
    if let Some(node) = &args.node_id {
        check_node(&stores, &run, node).await?;
    }
    let mut printed = HashSet::new();
    let mut run = run;
    if !args.follow {
        let attempts = dagger_core::store::list_attempts(&*stores.runs, &run_id, &query).await?;
        if attempts.is_empty()
            && let (Some(node), Some(n)) = (&args.node_id, args.attempt)
        {
            return Err(CliError::Other(format!(
                "node `{node}` of run `{run_id}` has no recorded attempt {n}"
            )));
        }
        print_new(&stores, attempts, &mut printed, args.json).await;
        return Ok(ExitCode::SUCCESS);
    }
    let stop = crate::signals::first_stop_signal();
    tokio::pin!(stop);
    loop {
        // Read the run first: attempts recorded before it ended are then
        // all in the read that follows.
        let ended = run_ended(&run);
        let attempts = dagger_core::store::list_attempts(&*stores.runs, &run_id, &query).await?;
        print_new(&stores, attempts, &mut printed, args.json).await;
        if ended {
            if !args.json {
                errln!("run `{run_id}` is {}", run.display_status(now_millis()));
            }
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
            sig = &mut stop => return Ok(ExitCode::from(crate::signals::exit_code(sig))),
        }
        run = get_run(&stores, &run_id).await?;
    }
}

/// Whether no process will record more attempts of `run` without a new
/// command: it finished, or it is paused, waiting or orphaned with no live owner.
fn run_ended(run: &RunRecord) -> bool {
    run.status.is_terminal()
        || (run.status != RunStatus::Pending && run.live_owner(now_millis()).is_none())
}

async fn get_run(stores: &Stores, run_id: &RunId) -> Result<RunRecord, CliError> {
    stores
        .runs
        .get_run(run_id)
        .await?
        .ok_or_else(|| CliError::Other(format!("unknown run `{run_id}`")))
}

/// Errors naming the node (and the closest id, if one is close) when `run`
/// neither defines nor recorded it.
async fn check_node(stores: &Stores, run: &RunRecord, node: &str) -> Result<(), CliError> {
    let mut ids: Vec<String> = run
        .definition
        .pointer("/workflow/nodes")
        .and_then(|n| n.as_array())
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.extend(
        stores
            .runs
            .node_runs(&run.run_id)
            .await?
            .into_iter()
            .map(|r| r.node_id.to_string()),
    );
    if ids.iter().any(|id| id == node) {
        return Ok(());
    }
    let hint = dagger_dag_flow::closest_name(node, ids.iter().map(String::as_str))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    Err(CliError::Other(format!(
        "run `{}` has no node `{node}`{hint}",
        run.run_id
    )))
}

async fn print_new(
    stores: &Stores,
    attempts: Vec<AttemptRecord>,
    printed: &mut HashSet<(String, String, u32)>,
    json: bool,
) {
    for a in attempts {
        let key = (a.node_id.to_string(), a.invocation_key.clone(), a.attempt);
        if !printed.insert(key) {
            continue;
        }
        if json {
            match serde_json::to_string(&a) {
                Ok(line) => outln!("{line}"),
                Err(e) => errln!("cannot print attempt {} of `{}`: {e}", a.attempt, a.node_id),
            }
        } else {
            print_attempt(stores, &a).await;
        }
    }
}

async fn print_attempt(stores: &Stores, a: &AttemptRecord) {
    let invocation = if a.invocation_key.is_empty() {
        String::new()
    } else {
        format!(" [{}]", a.invocation_key)
    };
    outln!(
        "=== node {}{invocation} attempt {} ({}): {}  {} -> {} ({})",
        a.node_id,
        a.attempt,
        a.action,
        a.outcome,
        format_time(a.started_at),
        format_time(a.finished_at),
        human_duration(a.finished_at - a.started_at),
    );
    if let Some(error) = &a.error {
        outln!("error: {error}");
    }
    if !a.output.is_null() {
        outln!("output: {}", a.output);
    } else if let Some(id) = &a.output_artifact_id
        && let Ok(bytes) = stores.artifacts.get_artifact(id).await
    {
        outln!("output: {}", String::from_utf8_lossy(&bytes));
    }
    if !a.logs.lines.is_empty() {
        outln!("--- log");
        for line in &a.logs.lines {
            outln!("{line}");
        }
    }
    for (name, text) in [("stdout", &a.logs.stdout), ("stderr", &a.logs.stderr)] {
        if let Some(text) = text.as_deref().filter(|t| !t.is_empty()) {
            outln!("--- {name}");
            out!("{text}");
            if !text.ends_with('\n') {
                outln!();
            }
        }
    }
}

fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}
