//! A `NodeWorker` whose queue stops answering (a network cut): an attempt
//! whose lease lapses without a renewal is stopped, and a result finished
//! during a short outage is reported once the queue answers again.

use dagger_coord::NodeWorker;
use dagger_core::store::{MemoryNodeQueue, NodeClaim, NodeQueue, NodeResult, NodeWorkItem};
use dagger_core::{BoxError, NodeId, RunId, StoreError};
use dagger_dag_flow::{ActionRegistry, NodeAction, NodeCtx, NodeOutput};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A memory queue that can be cut off: while `down`, renewals never answer
/// (as over a cut connection) and completions fail as unreachable.
#[derive(Clone, Default)]
struct Cut {
    inner: MemoryNodeQueue,
    down: Arc<AtomicBool>,
}

impl Cut {
    fn unreachable(&self) -> StoreError {
        StoreError::Open {
            location: "cut".into(),
            reason: "connection refused".into(),
        }
    }
}

#[async_trait::async_trait]
impl NodeQueue for Cut {
    async fn enqueue(&self, item: NodeWorkItem) -> Result<(), StoreError> {
        self.inner.enqueue(item).await
    }
    async fn claim(
        &self,
        worker: &str,
        actions: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<NodeClaim>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(self.unreachable());
        }
        self.inner.claim(worker, actions, limit, lease).await
    }
    async fn renew(&self, item_id: &str, token: u64, lease: Duration) -> Result<i64, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.renew(item_id, token, lease).await
    }
    async fn complete(
        &self,
        item_id: &str,
        token: u64,
        result: NodeResult,
    ) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(self.unreachable());
        }
        self.inner.complete(item_id, token, result).await
    }
    async fn cancel(&self, item_id: &str) -> Result<(), StoreError> {
        self.inner.cancel(item_id).await
    }
    async fn cancel_run(&self, run_id: &str) -> Result<u64, StoreError> {
        self.inner.cancel_run(run_id).await
    }
    async fn wait_result(&self, item_id: &str) -> Result<NodeResult, StoreError> {
        self.inner.wait_result(item_id).await
    }
    fn work_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.work_signal()
    }
    fn location(&self) -> String {
        "cut".into()
    }
}

/// `gate`: tells the test it started, then waits for `open` (or its
/// cancellation, which it reports).
struct Gate {
    started: Arc<Notify>,
    open: Arc<Notify>,
    cancelled: Arc<Notify>,
}

#[async_trait::async_trait]
impl NodeAction for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        self.started.notify_one();
        tokio::select! {
            () = self.open.notified() => Ok(NodeOutput::success(serde_json::json!("done"))),
            () = ctx.cancel.cancelled() => {
                self.cancelled.notify_one();
                Err("cancelled".into())
            }
        }
    }
}

fn item(node: &str) -> NodeWorkItem {
    let key = format!("r/{node}/");
    NodeWorkItem {
        item_id: NodeWorkItem::id_for(&key, 1),
        dag_name: "wf".into(),
        run_id: RunId::from("r"),
        node_id: NodeId::from(node),
        invocation_key: String::new(),
        attempt: 1,
        action: "gate".into(),
        inputs: serde_json::Map::new(),
        idempotency_key: key,
        timeout_ms: None,
        traceparent: None,
    }
}

struct Setup {
    queue: Cut,
    gate: Arc<Gate>,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
}

fn start(lease: Duration) -> Setup {
    let queue = Cut::default();
    let gate = Arc::new(Gate {
        started: Arc::new(Notify::new()),
        open: Arc::new(Notify::new()),
        cancelled: Arc::new(Notify::new()),
    });
    let registry = ActionRegistry::new();
    registry.register(gate.clone());
    let stop = CancellationToken::new();
    let worker = NodeWorker::new(Arc::new(queue.clone()), registry).lease(lease);
    let token = stop.clone();
    let worker = tokio::spawn(async move { worker.run(token).await.unwrap() });
    Setup {
        queue,
        gate,
        stop,
        worker,
    }
}

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_lease_lapses_without_a_renewal_is_stopped() {
    let s = start(Duration::from_millis(600));
    s.queue.enqueue(item("a")).await.unwrap();
    tokio::time::timeout(LIMIT, s.gate.started.notified())
        .await
        .expect("the attempt started");
    // Cut: renewals hang. Within its lease the worker stops the attempt,
    // since another worker may take the item once the lease lapsed.
    s.queue.down.store(true, Ordering::SeqCst);
    let cut_at = tokio::time::Instant::now();
    tokio::time::timeout(LIMIT, s.gate.cancelled.notified())
        .await
        .expect("the attempt was stopped");
    assert!(
        cut_at.elapsed() <= Duration::from_millis(600) + Duration::from_secs(5),
        "stopped {:?} after the cut",
        cut_at.elapsed()
    );
    // Nothing was reported: the item is still claimed, and another
    // claimer takes it once its lease lapsed.
    s.queue.down.store(false, Ordering::SeqCst);
    s.stop.cancel();
    s.worker.await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let taken = s
        .queue
        .inner
        .claim("other", &["gate".to_string()], 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the lapsed item is free for another worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_finished_during_an_outage_is_reported_once_the_queue_answers() {
    let s = start(Duration::from_secs(30));
    s.queue.enqueue(item("b")).await.unwrap();
    tokio::time::timeout(LIMIT, s.gate.started.notified())
        .await
        .expect("the attempt started");
    s.queue.down.store(true, Ordering::SeqCst);
    // The action finishes while the queue cannot be reached.
    s.gate.open.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.queue.down.store(false, Ordering::SeqCst);
    let result = tokio::time::timeout(LIMIT, s.queue.wait_result(&item("b").item_id))
        .await
        .expect("the result arrived")
        .unwrap();
    assert!(
        matches!(result, NodeResult::Output { success: true, .. }),
        "{result:?}"
    );
    s.stop.cancel();
    s.worker.await.unwrap();
}
