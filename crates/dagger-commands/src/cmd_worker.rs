//! `dagger worker`: one worker process of a pool sharing a Postgres store.
//! It executes DAG node attempts that `dagger run --db postgres://…` (or any
//! coordinator with a node queue) dispatches, and the tasks of running
//! Task Agent jobs, with the binary's actions and task agents (every action
//! also serves as a task agent of its name); with `--nats URL` (feature
//! `nats`) it also hosts the binary's pub/sub agents.

use crate::app::AppData;
use crate::error::CliError;
use crate::open_store;
use crate::signals;
use crate::{App, DbArg};
use dagger_coord::NodeWorker;
use dagger_core::{BoxError, Cache, NodeId, RunId};
use dagger_dag_flow::{ActionRegistry, DagExecutor, NodeAction, NodeCtx};
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
    /// Take only work for these actions / task agents (comma-separated)
    /// [default: every action and task agent of this binary; `dagger actions` lists them]
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    agents: Vec<String>,
    /// Run at most N node attempts and at most N tasks (across all jobs) at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    concurrency: usize,
    /// Lease length in seconds: a crashed worker's node attempts go to
    /// another worker this long after its last renewal.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    lease: f64,
    /// Take over orphaned runs (unfinished, their process stopped renewing
    /// its lease), checking every SECS seconds [default: 5]; their nodes
    /// are dispatched to the pool.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "5")]
    resume_orphans: Option<f64>,
    #[command(flatten)]
    run_lease: crate::cmd_run::RunLeaseArg,
    /// Also fire the schedules (`schedules:`) of these workflow files, as
    /// `dagger schedule run` does: with several workers on one store each
    /// fire still starts one run.
    #[arg(long = "schedules", value_name = "FILE")]
    schedules: Vec<std::path::PathBuf>,
    /// Answer GET /metrics (Prometheus), /healthz and /readyz on ADDR
    /// (e.g. 127.0.0.1:9464; port 0 picks a free port, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Keep the tables small: remove what finished more than DURATION ago
    /// (`30d`, `1h`, `0s`), as `dagger gc --older-than DURATION` does (ended
    /// task jobs with their tasks, finished runs, passed messages, leftover
    /// node-queue items), checking every tenth of DURATION (at least every
    /// second, at most every 10 minutes). Workers pruning at once take turns.
    #[arg(long, value_name = "DURATION")]
    prune_older_than: Option<String>,
    #[command(flatten)]
    pubsub: crate::cmd_pubsub::WorkerPubSubArgs,
}

/// How often `--prune-older-than AGE` prunes: a tenth of AGE, between a
/// second and ten minutes.
pub(crate) fn prune_interval(age_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(age_ms / 10).unwrap_or(0))
        .clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// The interval of `--resume-orphans SECS`.
pub(crate) fn scan_interval(secs: f64) -> Result<Duration, CliError> {
    if !(secs.is_finite() && secs >= 0.05) {
        return Err(CliError::Usage(
            "--resume-orphans must be at least 0.05 seconds".into(),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub(crate) async fn worker(args: WorkerArgs, app: &App) -> Result<ExitCode, CliError> {
    if args.concurrency == 0 {
        return Err(CliError::Usage("--concurrency must be at least 1".into()));
    }
    if !(args.lease.is_finite() && args.lease >= 0.1) {
        return Err(CliError::Usage(
            "--lease must be at least 0.1 seconds".into(),
        ));
    }
    let run_lease = args.run_lease.duration()?;
    // Before anything registers a metric, so that every one is recorded.
    let ops_listener = crate::ops::listen(args.metrics_addr).await?;
    let resume_orphans = args.resume_orphans.map(scan_interval).transpose()?;
    let prune_age = args
        .prune_older_than
        .as_deref()
        .map(dagger_dag_flow::schedule::parse_duration_ms)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--prune-older-than: {e}")))?;
    let all = app.actions_recording(&args.db.db);
    let own_agents = app.task_agents();
    let mut known: Vec<String> = all.names();
    known.extend(own_agents.names());
    known.sort();
    known.dedup();
    let names = if args.agents.is_empty() {
        known.clone()
    } else {
        args.agents.clone()
    };
    let actions = ActionRegistry::new();
    let agents = TaskAgentRegistry::new();
    let app_data = app.app_data();
    let hosted_pubsub = args.pubsub.host(app, &args.agents).await?;
    let pubsub_names = hosted_pubsub
        .as_ref()
        .map(|h| h.names().to_vec())
        .unwrap_or_default();
    for name in &names {
        let action = all.get(name);
        let agent = own_agents.get(name);
        if pubsub_names.contains(name) && action.is_none() && agent.is_none() {
            continue;
        }
        if action.is_none() && agent.is_none() {
            return Err(CliError::Usage(format!(
                "--agents: no action or task agent `{name}` (have: {})",
                known.join(", ")
            )));
        }
        if let Some(action) = &action {
            actions.register(action.clone());
        }
        let agent = match (agent, action) {
            (Some(agent), _) => agent,
            (None, Some(action)) => Arc::new(action_agent(action, app_data.clone())),
            (None, None) => continue,
        };
        agents
            .register_agent(agent)
            .map_err(|e| CliError::Other(e.to_string()))?;
    }
    let store = open_store(&args.db.db).await?;
    let stop = CancellationToken::new();
    let Some(queue) = store.node_queue() else {
        // Without a shared database only pub/sub agents can be served.
        return match hosted_pubsub {
            Some(hosted) => {
                let stopped_by = tokio::spawn(stop_on_signal(stop.clone()));
                hosted.serve(stop).await?;
                errln!("worker stopped");
                Ok(match stopped_by.await {
                    Ok(sig) => ExitCode::from(signals::exit_code(sig)),
                    Err(_) => ExitCode::SUCCESS,
                })
            }
            None => Err(CliError::Usage(format!(
                "dagger worker needs a shared database: --db postgres://user@host/db{}",
                if cfg!(feature = "nats") {
                    " (or --nats URL to host only pub/sub agents)"
                } else {
                    ""
                }
            ))),
        };
    };
    if !args.schedules.is_empty() {
        crate::cmd_schedule::spawn_files(&args.schedules, &store, &args.db.db, app, stop.clone())
            .await?;
    }
    // Stalls are for whoever started the job to judge; a worker only warns.
    let stall = StallAction::Custom(Arc::new(|report| {
        tracing::warn!(job = %report.job_id, idle_ms = report.idle_ms, "job stalled");
    }));
    let mut manager = TaskManager::new(
        Duration::from_secs(60),
        stall,
        Cache::new(),
        agents,
        store.task_store(),
    );
    if let Some(data) = &app_data {
        manager = manager.with_shared_app_data(data.clone());
    }
    // Each job's own limit (`max_concurrency`, 16 by default) still applies.
    manager.set_max_concurrent_tasks(Some(args.concurrency));
    let mut node_worker = NodeWorker::new(queue.clone(), actions)
        .concurrency(args.concurrency)
        .lease(Duration::from_secs_f64(args.lease));
    if let Some(data) = &app_data {
        node_worker = node_worker.app_data(data.clone());
    }
    errln!(
        "worker {} (pid {}) serving {}: {} (concurrency {})",
        node_worker.worker_id(),
        std::process::id(),
        store.location(),
        names.join(", "),
        args.concurrency
    );
    let stopped_by = tokio::spawn(stop_on_signal(stop.clone()));
    let ops = ops_listener.map(|l| crate::ops::spawn(l, store.stores(), stop.clone()));
    let pubsub = hosted_pubsub.map(|hosted| tokio::spawn(hosted.serve(stop.clone())));
    let tasks = {
        let stop = stop.clone();
        tokio::spawn(async move { manager.serve(stop).await })
    };
    let orphans = resume_orphans.map(|every| {
        errln!("taking over orphaned runs (checking every {every:?})");
        tokio::spawn(take_over_orphans(
            Orphans {
                stores: store.stores(),
                queue: queue.clone(),
                registry: app.actions(),
                app_data: app_data.clone(),
                lease: run_lease,
            },
            every,
            stop.clone(),
        ))
    });
    let pruner = prune_age.map(|age| {
        let every = prune_interval(age);
        errln!("pruning what finished more than {age} ms ago (every {every:?})");
        tokio::spawn(prune_old(store.retention(), age, every, stop.clone()))
    });
    let nodes = node_worker.run(stop.clone()).await;
    stop.cancel();
    if let Some(pruner) = pruner {
        let _ = pruner.await;
    }
    if let Some(orphans) = orphans {
        let _ = orphans.await;
    }
    let tasks = tasks
        .await
        .map_err(|e| CliError::Other(format!("task worker failed: {e}")))?;
    if let Some(pubsub) = pubsub {
        pubsub
            .await
            .map_err(|e| CliError::Other(format!("pub/sub agents failed: {e}")))??;
    }
    if let Some(ops) = ops {
        let _ = ops.await;
    }
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

/// What a worker resumes orphaned runs with.
struct Orphans {
    stores: dagger_core::Stores,
    /// The pool's node queue: the resumed runs' nodes are dispatched to it.
    queue: Arc<dyn dagger_core::store::NodeQueue>,
    registry: ActionRegistry,
    app_data: Option<AppData>,
    /// The lease held on each resumed run.
    lease: Duration,
}

/// Every `every` until `stop`: resumes each orphaned run of the store here,
/// dispatching its nodes to the pool. Several workers may scan
/// at once: the store's claim lets exactly one take each run. On `stop`
/// the runs resumed here are cancelled (recorded Cancelled, resumable).
async fn take_over_orphans(orphans: Orphans, every: Duration, stop: CancellationToken) {
    let Orphans {
        stores,
        queue,
        registry,
        app_data,
        lease,
    } = orphans;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resumed = tokio::task::JoinSet::new();
    let mut cancels: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    let mut active = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        while let Some(done) = resumed.try_join_next() {
            if let Ok(id) = done {
                active.remove(&id);
            }
        }
        let orphans = match dagger_coord::orphaned_runs(&stores).await {
            Ok(runs) => runs,
            Err(e) => {
                errln!("cannot list orphaned runs: {e}");
                continue;
            }
        };
        for run in orphans {
            let id = run.run_id.to_string();
            if !active.insert(id.clone()) {
                continue;
            }
            let (cancel, cancel_rx) = tokio::sync::oneshot::channel();
            cancels.push(cancel);
            let stores = stores.clone();
            let queue = queue.clone();
            let registry = registry.clone();
            let app_data = app_data.clone();
            resumed.spawn(async move {
                let outcome = async {
                    let mut executor = DagExecutor::new(None, registry, stores).await?;
                    if let Some(data) = app_data {
                        executor = executor.with_shared_app_data(data);
                    }
                    dagger_coord::Coordinator::new(Vec::new(), 64, 64)
                        .with_run_lease(lease)
                        .with_node_queue(queue)
                        .resume(&mut executor, &Cache::new(), &id, cancel_rx)
                        .await
                }
                .await;
                match outcome {
                    Ok(report) => errln!("orphaned run {id} taken over: {}", report.status),
                    // Another worker was quicker.
                    Err(dagger_coord::CoordError::RunOwned { .. }) => {}
                    Err(e) => errln!("cannot take over orphaned run {id}: {e}"),
                }
                id
            });
        }
    }
    for cancel in cancels {
        let _ = cancel.send(());
    }
    while resumed.join_next().await.is_some() {}
}

/// Every `every` until `stop`: removes what finished more than `age_ms`
/// ago ([`Retention::prune`](dagger_core::store::Retention::prune)). A
/// failed prune is logged and tried again at the next turn.
async fn prune_old(
    retention: Arc<dyn dagger_core::store::Retention>,
    age_ms: i64,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let cutoff = dagger_core::now_millis().saturating_sub(age_ms);
        match retention.prune(cutoff, false).await {
            Ok(report) => {
                let removed: Vec<String> = report
                    .rows()
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(kind, n)| format!("{kind}={n}"))
                    .collect();
                if !removed.is_empty() {
                    tracing::info!(cutoff, removed = %removed.join(" "), "pruned");
                }
            }
            Err(e) => tracing::warn!(error = %e, "prune failed; trying again at the next turn"),
        }
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

/// An action as a task agent: the task's input object is the
/// action's inputs (any other input arrives as input `input`), its output
/// the action's outputs; the task's idempotency key and cancel token, and
/// the app data, pass through.
fn action_agent(action: Arc<dyn NodeAction>, app_data: Option<AppData>) -> FnAgent {
    let name = action.name().to_string();
    let description = action.description().to_string();
    FnAgent::new(name, move |input: Value, ctx: TaskContext| {
        let action = action.clone();
        let app_data = app_data.clone();
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
            node.app_data = app_data;
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
