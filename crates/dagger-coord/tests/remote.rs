//! A coordinator dispatching node attempts through an in-memory node queue
//! to an in-process `NodeWorker`: actions run on the worker only, inputs
//! resolve from upstream outputs, and retries, timeouts and cancellation
//! behave as for local execution.

mod common;

use common::*;
use dagger_coord::{Coordinator, NodeWorker};
use dagger_core::store::{MemoryNodeQueue, NodeQueue};
use dagger_core::{BoxError, Cache, InputSpec, NodeStatus, RunStatus, Stores};
use dagger_dag_flow::RetryStrategy;
use dagger_dag_flow::{ActionRegistry, DagConfig, NodeAction, NodeCtx, NodeOutput};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `key`: returns its idempotency key and attempt.
struct Key;

#[async_trait::async_trait]
impl NodeAction for Key {
    fn name(&self) -> &str {
        "key"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        Ok(NodeOutput::success(
            json!({"key": ctx.idempotency_key, "attempt": ctx.attempt}),
        ))
    }
}

/// `peek`: reads `inputs.seen` from the run's cache (`ctx.cache`).
struct Peek;

#[async_trait::async_trait]
impl NodeAction for Peek {
    fn name(&self) -> &str {
        "peek"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let seen = ctx.cache.get("inputs", "seen")?;
        Ok(NodeOutput::success(json!({ "seen": seen.as_deref() })))
    }
}

fn with_key(r: ActionRegistry) -> ActionRegistry {
    r.register(Arc::new(Key));
    r.register(Arc::new(Peek));
    r
}

struct Pool {
    queue: MemoryNodeQueue,
    coord_probe: Arc<Probe>,
    worker_probe: Arc<Probe>,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
}

impl Pool {
    fn start() -> Self {
        let queue = MemoryNodeQueue::new();
        let worker_probe = Arc::new(Probe::default());
        let stop = CancellationToken::new();
        let worker = NodeWorker::new(Arc::new(queue.clone()), with_key(registry(&worker_probe)))
            .concurrency(4)
            .lease(Duration::from_millis(300));
        let token = stop.clone();
        let worker = tokio::spawn(async move { worker.run(token).await.unwrap() });
        Self {
            queue,
            coord_probe: Arc::new(Probe::default()),
            worker_probe,
            stop,
            worker,
        }
    }

    fn coordinator(&self) -> Coordinator {
        let queue: Arc<dyn NodeQueue> = Arc::new(self.queue.clone());
        Coordinator::new(vec![], 8, 8).with_node_queue(queue)
    }

    fn executor(
        &self,
        config: DagConfig,
        wf: dagger_dag_flow::WorkflowDef,
    ) -> dagger_dag_flow::DagExecutor {
        executor(
            config,
            with_key(registry(&self.coord_probe)),
            wf,
            Stores::memory(),
        )
    }

    async fn stop(self) {
        self.stop.cancel();
        self.worker.await.unwrap();
    }
}

fn quick_retries() -> DagConfig {
    DagConfig {
        retry_strategy: RetryStrategy::Immediate,
        ..DagConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_run_on_the_worker_with_resolved_inputs() {
    let pool = Pool::start();
    let mut b = node("b", &["a"], json!({"x": 2}));
    b.inputs.push(InputSpec::reference("from_a", "a.node"));
    let mut k = node("k", &["b"], json!({}));
    k.action = "key".into();
    let wf = workflow("w", vec![node("a", &[], json!({"ms": 10})), b, k]);
    let mut ex = pool.executor(DagConfig::default(), wf);
    let cache = Cache::new();
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let r = pool
        .coordinator()
        .run_parallel(&mut ex, &cache, "w", "run-r", rx)
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(
        pool.coord_probe.started.lock().len(),
        0,
        "nothing ran locally"
    );
    assert_eq!(pool.worker_probe.runs_of("a"), 1);
    assert_eq!(pool.worker_probe.runs_of("b"), 1);
    let b_out = cache.get("b", "from_a").unwrap();
    assert_eq!(*b_out, json!("a"), "b's input resolved from a's output");
    let key = cache.get("k", "key").unwrap();
    assert_eq!(
        *key,
        json!("run-r/k/"),
        "the worker sees the idempotency key"
    );
    assert!(pool.queue.is_empty(), "every result was taken");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_through_the_queue() {
    let pool = Pool::start();
    let mut flaky = node("flaky", &[], json!({"fail_times": 2}));
    flaky.try_count = Some(3);
    let mut ex = pool.executor(quick_retries(), workflow("w", vec![flaky]));
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let r = pool
        .coordinator()
        .run_parallel(&mut ex, &Cache::new(), "w", "run-f", rx)
        .await
        .unwrap();
    let s = r.get_node_state("flaky").unwrap();
    assert_eq!((s.status, s.attempts), (NodeStatus::Completed, 3));
    assert_eq!(pool.worker_probe.runs_of("flaky"), 3);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_node_withdraws_its_item_and_the_worker_stops_it() {
    let pool = Pool::start();
    let mut slow = node("slow", &[], json!({"ms": 30_000}));
    slow.timeout = Some(0.2);
    slow.try_count = Some(2);
    let mut ex = pool.executor(quick_retries(), workflow("w", vec![slow]));
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        pool.coordinator()
            .run_parallel(&mut ex, &Cache::new(), "w", "run-t", rx),
    )
    .await
    .expect("the run ends")
    .unwrap();
    let s = r.get_node_state("slow").unwrap();
    assert_eq!((s.status, s.attempts), (NodeStatus::Failed, 2));
    assert_eq!(
        s.error.as_deref(),
        Some("node `slow` timed out after 0.200s")
    );
    // The worker learns at its next renewal (a third of the 300 ms lease).
    let probe = pool.worker_probe.clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while probe.cancelled.lock().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both attempts were stopped on the worker");
    assert!(pool.queue.is_empty());
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_run_stops_the_remote_action() {
    let pool = Pool::start();
    let nodes = vec![
        node("slow", &[], json!({"ms": 30_000})),
        node("next", &["slow"], json!({})),
    ];
    let mut ex = pool.executor(DagConfig::default(), workflow("w", nodes));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let p = pool.worker_probe.clone();
    tokio::spawn(async move {
        while p.started.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = tx.send(());
    });
    let r = pool
        .coordinator()
        .run_parallel(&mut ex, &Cache::new(), "w", "run-c", rx)
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(
        r.get_node_state("slow").unwrap().status,
        NodeStatus::Cancelled
    );
    assert_eq!(
        r.get_node_state("next").unwrap().status,
        NodeStatus::Skipped
    );
    let probe = pool.worker_probe.clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while probe.cancelled.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the worker stopped the cancelled action");
    pool.stop().await;
}

/// A coordinator that died left a work item behind; resuming the run
/// withdraws it (its attempt is redone under a new attempt number) instead
/// of leaving it to run for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_run_withdraws_the_previous_coordinators_items() {
    let pool = Pool::start();
    let stores = Stores::from(Arc::new(dagger_core::store::MemoryStore::new()));
    let config = DagConfig {
        on_failure: dagger_dag_flow::OnFailure::Pause,
        ..DagConfig::default()
    };
    let wf = workflow("w", vec![node("flaky", &[], json!({"fail_times": 1}))]);
    let mut ex = executor(config, with_key(registry(&pool.coord_probe)), wf, stores);
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let first = pool
        .coordinator()
        .run_parallel(&mut ex, &Cache::new(), "w", "run-x", rx)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Paused);

    // What a dead coordinator of this run (and of another run) left queued,
    // for an action no worker has, so it would wait forever.
    let leftover = |run: &str| dagger_core::store::NodeWorkItem {
        item_id: format!("{run}/orphan/#1"),
        dag_name: "w".into(),
        run_id: run.into(),
        node_id: "orphan".into(),
        invocation_key: String::new(),
        attempt: 1,
        action: "nobody-has-this".into(),
        inputs: serde_json::Map::new(),
        idempotency_key: format!("{run}/orphan/"),
        timeout_ms: None,
        traceparent: None,
    };
    pool.queue.enqueue(leftover("run-x")).await.unwrap();
    pool.queue.enqueue(leftover("run-other")).await.unwrap();
    assert_eq!(pool.queue.len(), 2);

    let (_keep, rx) = tokio::sync::oneshot::channel();
    let second = pool
        .coordinator()
        .resume(&mut ex, &Cache::new(), "run-x", rx)
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::Completed, "{second:?}");
    assert_eq!(
        pool.queue.len(),
        1,
        "the resumed run's leftover is withdrawn, the other run's kept"
    );
    pool.queue.cancel("run-other/orphan/#1").await.unwrap();
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_worker_fails_that_attempt_and_the_retry_policy_applies() {
    let pool = Pool::start();
    let mut flaky = node("flaky", &[], json!({"panic_times": 1}));
    flaky.try_count = Some(2);
    let mut bad = node("bad", &[], json!({"panic_times": 9}));
    bad.try_count = Some(2);
    let nodes = vec![flaky, bad, node("child", &["bad"], json!({}))];
    let mut ex = pool.executor(quick_retries(), workflow("w", nodes));
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        pool.coordinator()
            .run_parallel(&mut ex, &Cache::new(), "w", "run-panic", rx),
    )
    .await
    .expect("the run ends")
    .unwrap();
    let flaky = r.get_node_state("flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (NodeStatus::Completed, 2));
    let bad = r.get_node_state("bad").unwrap();
    assert_eq!((bad.status, bad.attempts), (NodeStatus::Failed, 2));
    assert_eq!(
        bad.error.as_deref(),
        Some("node `bad`: panicked: planned panic 2 of bad (after 2 attempts)")
    );
    assert_eq!(
        r.get_node_state("child").unwrap().status,
        NodeStatus::Skipped
    );
    assert_eq!(r.status, RunStatus::Failed);
    // (Not an exact count of runs on the worker: capturing a panic's
    // backtrace can outlast the 300 ms lease, and a lapsed lease runs the
    // item again, at least once as documented.)
    assert!(pool.worker_probe.runs_of("bad") >= 2);
    pool.stop().await;
}

/// A remote attempt has its inputs, not the run's cache: reading the cache
/// there fails the attempt with `CacheUnavailable` (it was a silent `None`),
/// while the same action run locally reads the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_run_cache_on_a_remote_worker_is_an_error() {
    let pool = Pool::start();
    let mut peek = node("p", &[], json!({}));
    peek.action = "peek".into();
    let wf = workflow("w", vec![peek]);
    let cache = Cache::new();
    cache.insert("inputs", "seen", json!("yes"));
    let mut ex = pool.executor(quick_retries(), wf.clone());
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let r = pool
        .coordinator()
        .run_parallel(&mut ex, &cache, "w", "run-c", rx)
        .await
        .unwrap();
    let s = r.get_node_state("p").unwrap();
    assert_eq!(s.status, NodeStatus::Failed);
    let error = s.error.clone().unwrap_or_default();
    assert!(error.contains("cache is not available"), "{error}");
    pool.stop().await;

    let mut local = pool_free_executor(wf);
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let r = Coordinator::new(vec![], 8, 8)
        .run_parallel(&mut local, &cache, "w", "run-l", rx)
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(*cache.get("p", "seen").unwrap(), json!("yes"));
}

/// An executor for `wf` without a node queue (every node runs locally).
fn pool_free_executor(wf: dagger_dag_flow::WorkflowDef) -> dagger_dag_flow::DagExecutor {
    let probe = Arc::new(Probe::default());
    executor(
        quick_retries(),
        with_key(registry(&probe)),
        wf,
        Stores::memory(),
    )
}
