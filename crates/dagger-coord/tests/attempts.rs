//! Every attempt of every node is recorded: outcome, error, failed output,
//! log lines written through `NodeCtx::log`, locally and through a node queue.

mod common;

use common::*;
use dagger_coord::{Coordinator, DagExecutionReport, NodeWorker, RunCancel};
use dagger_core::store::{
    AttemptOutcome, AttemptQuery, AttemptRecord, MemoryNodeQueue, MemoryStore, NodeQueue,
};
use dagger_core::{BoxError, Cache, NodeId, RunId, RunStatus, Stores};
use dagger_dag_flow::RetryStrategy;
use dagger_dag_flow::{ActionRegistry, DagConfig, NodeAction, NodeCtx, NodeOutput};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `chatty`: logs a line per attempt; attempt 1 errs, attempt 2 reports a
/// failed output, later attempts succeed.
struct Chatty;

#[async_trait::async_trait]
impl NodeAction for Chatty {
    fn name(&self) -> &str {
        "chatty"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        ctx.log(format!("attempt {} says hi", ctx.attempt));
        match ctx.attempt {
            1 => Err("first try fails".into()),
            2 => Ok(NodeOutput::failure(json!({"why": "second try reports"}))),
            n => Ok(NodeOutput::success(json!({"done": n}))),
        }
    }
}

fn registry_with_chatty(probe: &Arc<Probe>) -> ActionRegistry {
    let r = registry(probe);
    r.register(Arc::new(Chatty));
    r
}

fn config() -> DagConfig {
    DagConfig {
        retry_strategy: RetryStrategy::Immediate,
        ..DagConfig::default()
    }
}

/// Stores that record runs (in memory).
fn recording() -> Stores {
    Stores::from(Arc::new(MemoryStore::new()))
}

/// Runs workflow `w` made of `nodes` with `registry` on `stores` as run
/// `run_id`, by `coordinator`, until it ends or `cancel` fires.
async fn run_w(
    coordinator: Coordinator,
    registry: ActionRegistry,
    nodes: Vec<dagger_dag_flow::NodeDef>,
    stores: &Stores,
    run_id: &str,
    cancel: impl Into<RunCancel>,
) -> DagExecutionReport {
    let mut ex = executor(config(), registry, workflow("w", nodes), stores.clone());
    coordinator
        .run_parallel(&mut ex, &Cache::new(), "w", run_id, cancel)
        .await
        .unwrap()
}

/// [`run_w`] by a plain coordinator, never cancelled.
async fn run_local(
    registry: ActionRegistry,
    nodes: Vec<dagger_dag_flow::NodeDef>,
    stores: &Stores,
    run_id: &str,
) -> DagExecutionReport {
    let coordinator = Coordinator::new(vec![], 8, 8);
    run_w(
        coordinator,
        registry,
        nodes,
        stores,
        run_id,
        CancellationToken::new(),
    )
    .await
}

async fn attempts(stores: &Stores, run: &str, node: &str) -> Vec<AttemptRecord> {
    let query = AttemptQuery {
        node_id: Some(NodeId::from(node)),
        attempt: None,
    };
    dagger_core::store::list_attempts(&*stores.runs, &RunId::from(run), &query)
        .await
        .unwrap()
}

fn chatty_node() -> dagger_dag_flow::NodeDef {
    let mut n = node("c", &[], json!({}));
    n.action = "chatty".into();
    n.try_count = Some(3);
    n
}

fn assert_chatty_attempts(a: &[AttemptRecord]) {
    assert_eq!(a.len(), 3, "{a:#?}");
    let outcomes: Vec<AttemptOutcome> = a.iter().map(|a| a.outcome).collect();
    use AttemptOutcome::*;
    assert_eq!(outcomes, [Failed, Failed, Succeeded]);
    for (i, a) in a.iter().enumerate() {
        assert_eq!(a.attempt, i as u32 + 1);
        assert_eq!(a.action, "chatty");
        assert_eq!(a.logs.lines, [format!("attempt {} says hi", i + 1)]);
        assert!(a.finished_at >= a.started_at);
    }
    assert_eq!(a[0].error.as_deref(), Some("first try fails"));
    assert_eq!(a[1].output, json!({"why": "second try reports"}));
    assert!(
        a[1].error
            .as_deref()
            .unwrap()
            .contains("second try reports")
    );
    assert_eq!(a[2].error, None);
    assert!(a[2].output_artifact_id.is_some());
}

#[tokio::test]
async fn retries_record_one_attempt_each_with_its_error_output_and_log_lines() {
    let probe = Arc::new(Probe::default());
    let stores = recording();
    let r = run_local(
        registry_with_chatty(&probe),
        vec![chatty_node()],
        &stores,
        "run-a",
    )
    .await;
    assert_eq!(r.status, RunStatus::Completed);
    let a = attempts(&stores, "run-a", "c").await;
    assert_chatty_attempts(&a);
    let id = a[2].output_artifact_id.clone().unwrap();
    let bytes = stores.artifacts.get_artifact(&id).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"done": 3})
    );
}

#[tokio::test]
async fn panics_and_timeouts_are_recorded_as_such() {
    let probe = Arc::new(Probe::default());
    let stores = recording();
    let mut p = node("p", &[], json!({"panic_times": 1}));
    p.try_count = Some(2);
    let mut t = node("t", &[], json!({"ms": 10_000}));
    t.timeout = Some(0.05);
    t.try_count = Some(1);
    let r = run_local(registry(&probe), vec![p, t], &stores, "run-p").await;
    assert_eq!(r.status, RunStatus::Failed, "t timed out");
    let p = attempts(&stores, "run-p", "p").await;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].outcome, AttemptOutcome::Panicked);
    assert!(
        p[0].error
            .as_deref()
            .unwrap()
            .contains("panicked: planned panic 1 of p"),
        "{:?}",
        p[0].error
    );
    assert_eq!(p[1].outcome, AttemptOutcome::Succeeded);
    let t = attempts(&stores, "run-p", "t").await;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].outcome, AttemptOutcome::TimedOut);
    assert!(t[0].error.as_deref().unwrap().contains("timed out"));
}

#[tokio::test]
async fn a_cancelled_run_records_the_running_attempt_as_cancelled() {
    let probe = Arc::new(Probe::default());
    let stores = recording();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let probe2 = probe.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while probe2.started.lock().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = tx.send(());
    });
    let slow = node("slow", &[], json!({"ms": 10_000}));
    let coordinator = Coordinator::new(vec![], 8, 8);
    let r = run_w(
        coordinator,
        registry(&probe),
        vec![slow],
        &stores,
        "run-c",
        rx,
    )
    .await;
    assert_eq!(r.status, RunStatus::Cancelled);
    let a = attempts(&stores, "run-c", "slow").await;
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].outcome, AttemptOutcome::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_attempts_log_lines_travel_with_its_completion() {
    let queue = MemoryNodeQueue::new();
    let worker_probe = Arc::new(Probe::default());
    let stop = CancellationToken::new();
    let worker = NodeWorker::new(Arc::new(queue.clone()), registry_with_chatty(&worker_probe))
        .lease(Duration::from_millis(300));
    let token = stop.clone();
    let worker = tokio::spawn(async move { worker.run(token).await.unwrap() });

    let stores = recording();
    let coord_probe = Arc::new(Probe::default());
    let q: Arc<dyn NodeQueue> = Arc::new(queue.clone());
    let r = run_w(
        Coordinator::new(vec![], 8, 8).with_node_queue(q),
        registry_with_chatty(&coord_probe),
        vec![chatty_node()],
        &stores,
        "run-r",
        CancellationToken::new(),
    )
    .await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_chatty_attempts(&attempts(&stores, "run-r", "c").await);
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn a_run_in_memory_records_no_attempt_and_logging_is_harmless() {
    let probe = Arc::new(Probe::default());
    let stores = Stores::memory();
    let r = run_local(
        registry_with_chatty(&probe),
        vec![chatty_node()],
        &stores,
        "run-m",
    )
    .await;
    assert_eq!(r.status, RunStatus::Completed);
    assert!(attempts(&stores, "run-m", "c").await.is_empty());
}

#[tokio::test]
async fn a_silent_success_is_the_node_record_and_still_listed_as_an_attempt() {
    let probe = Arc::new(Probe::default());
    let stores = recording();
    let quiet = node("quiet", &[], json!({}));
    let r = run_local(registry(&probe), vec![quiet], &stores, "run-q").await;
    assert_eq!(r.status, RunStatus::Completed);
    let raw = stores
        .runs
        .attempts(&RunId::from("run-q"), &AttemptQuery::default())
        .await
        .unwrap();
    assert!(
        raw.is_empty(),
        "a success that logged nothing writes one row (the node's), not two: {raw:?}"
    );
    let listed = attempts(&stores, "run-q", "quiet").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(listed[0].attempt, 1);
    let node = stores
        .runs
        .node_runs(&RunId::from("run-q"))
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.node_id.as_str() == "quiet")
        .unwrap();
    assert_eq!(listed[0].output_artifact_id, node.output_artifact_id);
    assert!(
        listed[0].output_artifact_id.is_some(),
        "its output is found"
    );
}
