//! `dagger worker`: one worker process of a pool sharing a Postgres store.
//! It executes DAG node attempts that `dagger run --db postgres://…` (or any
//! coordinator with a node queue) dispatches, and the tasks of running
//! Task Agent jobs, for the built-in actions `shell`, `sleep`, `echo`,
//! `fail` (the same four serve as task agents).

use crate::DbArg;
use crate::actions::builtin_registry;
use crate::error::CliError;
use crate::open_store;
use crate::signals;
use dagger_coord::NodeWorker;
use dagger_core::{BoxError, Cache, NodeId, RunId};
use dagger_dag_flow::{ActionRegistry, NodeAction, NodeCtx};
use dagger_task_core::{
    FnAgent, StallAction, TaskAgentRegistry, TaskContext, TaskManager, TaskOutcome,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Arguments of `dagger worker`.
#[derive(clap::Args, Debug)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    db: DbArg,
    /// Take only work for these built-in actions / task agents (comma-separated)
    /// [default: all of shell, sleep, echo, fail]
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    agents: Vec<String>,
    /// Run at most N node attempts and at most N tasks (across all jobs) at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    concurrency: usize,
    /// Lease length in seconds: a crashed worker's node attempts go to
    /// another worker this long after its last renewal.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    lease: f64,
}

pub(crate) async fn worker(args: WorkerArgs) -> Result<ExitCode, CliError> {
    if args.concurrency == 0 {
        return Err(CliError::Usage("--concurrency must be at least 1".into()));
    }
    if !(args.lease.is_finite() && args.lease >= 0.1) {
        return Err(CliError::Usage(
            "--lease must be at least 0.1 seconds".into(),
        ));
    }
    let all = builtin_registry();
    let actions = ActionRegistry::new();
    let names = if args.agents.is_empty() {
        all.names()
    } else {
        args.agents.clone()
    };
    for name in &names {
        let action = all.get(name).ok_or_else(|| {
            CliError::Usage(format!(
                "--agents: no built-in `{name}` (have: {})",
                all.names().join(", ")
            ))
        })?;
        actions.register(action);
    }
    let store = open_store(&args.db.db).await?;
    let queue = store.node_queue().ok_or_else(|| {
        CliError::Usage(
            "dagger worker needs a shared database: --db postgres://user@host/db".into(),
        )
    })?;
    let agents = TaskAgentRegistry::new();
    for name in &names {
        if let Some(action) = actions.get(name) {
            agents
                .register_agent(Arc::new(action_agent(action)))
                .map_err(|e| CliError::Other(e.to_string()))?;
        }
    }
    // Stalls are for whoever started the job to judge; a worker only warns.
    let stall = StallAction::Custom(Arc::new(|report| {
        tracing::warn!(job = %report.job_id, idle_ms = report.idle_ms, "job stalled");
    }));
    let manager = TaskManager::new(
        Duration::from_secs(60),
        stall,
        Cache::new(),
        agents,
        store.task_store(),
    );
    // Each job's own limit (`max_concurrency`, 16 by default) still applies.
    manager.set_max_concurrent_tasks(Some(args.concurrency));
    let node_worker = NodeWorker::new(queue, actions)
        .concurrency(args.concurrency)
        .lease(Duration::from_secs_f64(args.lease));
    errln!(
        "worker {} (pid {}) serving {}: {} (concurrency {})",
        node_worker.worker_id(),
        std::process::id(),
        store.location(),
        names.join(", "),
        args.concurrency
    );
    let stop = CancellationToken::new();
    let stopped_by = tokio::spawn(stop_on_signal(stop.clone()));
    let tasks = {
        let stop = stop.clone();
        tokio::spawn(async move { manager.serve(stop).await })
    };
    let nodes = node_worker.run(stop.clone()).await;
    stop.cancel();
    let tasks = tasks
        .await
        .map_err(|e| CliError::Other(format!("task worker failed: {e}")))?;
    nodes?;
    tasks.map_err(|e| CliError::Other(e.to_string()))?;
    errln!("worker stopped");
    // Like `run`: a stop by signal exits 128 + its number (143 for SIGTERM).
    if !stopped_by.is_finished() {
        stopped_by.abort();
        return Ok(ExitCode::SUCCESS);
    }
    match stopped_by.await {
        Ok(sig) => Ok(ExitCode::from(signals::exit_code(sig))),
        Err(_) => Ok(ExitCode::SUCCESS),
    }
}

/// Cancels `stop` on SIGINT (Ctrl-C), SIGTERM or SIGHUP; returns the signal.
async fn stop_on_signal(stop: CancellationToken) -> Signal {
    let sig = signals::first_stop_signal().await;
    errln!(
        "{}: stopping; running node attempts go back to the pool when their leases expire",
        sig.as_str()
    );
    stop.cancel();
    sig
}

/// A built-in action as a task agent: the task's input object is the
/// action's inputs (any other input arrives as input `input`), its output
/// the action's outputs; the task's idempotency key and cancel token pass through.
fn action_agent(action: Arc<dyn NodeAction>) -> FnAgent {
    let name = action.name().to_string();
    let description = action.description().to_string();
    FnAgent::new(name, move |input: Value, ctx: TaskContext| {
        let action = action.clone();
        async move {
            let inputs = match input {
                Value::Object(map) => map,
                other => {
                    let mut map = serde_json::Map::new();
                    map.insert("input".into(), other);
                    map
                }
            };
            let mut node = NodeCtx::for_test(ctx.task_id().as_str(), inputs);
            node.dag_name = Arc::from("task");
            node.run_id = RunId::from(ctx.job_id().as_str());
            node.node_id = NodeId::from(ctx.task_id().as_str());
            node.attempt = ctx.attempt();
            node.idempotency_key = ctx.idempotency_key().to_string();
            node.cancel = ctx.cancel_token().clone();
            let out = action.execute(&node).await?;
            if out.success {
                Ok(TaskOutcome::Completed(out.outputs))
            } else {
                let message = match out.outputs {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                Err(BoxError::from(message))
            }
        }
    })
    .with_description(description)
}
