//! Run until quiescent or cancelled; shutdown drains accepted messages.

mod common;

use common::{Behaviour, TestAgent, payloads};
use dagger_core::BoxError;
use dagger_pubsub::{
    CancellationToken, Message, PubSubConfig, PubSubContext, PubSubError, PubSubExecutor,
    RunOutcome,
};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::Semaphore;

struct Gate(Arc<Semaphore>);

#[async_trait::async_trait]
impl Behaviour for Gate {
    async fn on(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        self.0.acquire().await?.forget();
        Ok(())
    }
}

/// Forwards to `out` after a gate, so work continues during shutdown.
struct GatedForward(Arc<Semaphore>);

#[async_trait::async_trait]
impl Behaviour for GatedForward {
    async fn on(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        self.0.acquire().await?.forget();
        ctx.publish("out", m.payload.clone()).await?;
        Ok(())
    }
}

#[tokio::test]
async fn run_returns_cancelled_when_the_token_fires_before_quiescence() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let seen = TestAgent::new("stuck", &["in"], &[], Gate(gate.clone())).register(&ex);
    ex.publish("in", json!(1)).await.unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert_eq!(ex.run(cancel).await.unwrap(), RunOutcome::Cancelled);
    assert_eq!(ex.metrics().in_flight, 1);
    gate.add_permits(1);
    assert_eq!(
        ex.run(CancellationToken::new()).await.unwrap(),
        RunOutcome::Quiescent
    );
    assert_eq!(payloads(&seen), [json!(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_every_accepted_message_including_follow_ups() {
    let ex = Arc::new(PubSubExecutor::new(PubSubConfig::default()).unwrap());
    let gate = Arc::new(Semaphore::new(0));
    TestAgent::new("fwd", &["in"], &["out"], GatedForward(gate.clone())).register(&ex);
    let out = TestAgent::recorder("sink", &["out"]).register(&ex);
    for i in 0..50 {
        ex.publish("in", json!(i)).await.unwrap();
    }
    // Polled once, shutdown has stopped accepting and is waiting for the
    // gated agent. (Publishing in a loop until refused instead would fill the
    // gated queue and block forever if the shutdown task started late.)
    let mut shutdown = Box::pin(ex.shutdown());
    let first = std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx))).await;
    assert!(
        first.is_pending(),
        "shutdown finished with 50 messages gated"
    );
    // New external messages are refused...
    let refused = ex.publish("in", json!("late")).await.unwrap_err();
    assert!(matches!(refused, PubSubError::ShuttingDown { ref channel } if channel == "in"));
    // ...but everything accepted before is still handled, including what the
    // agent publishes while shutdown waits.
    gate.add_permits(50);
    let metrics = tokio::time::timeout(Duration::from_secs(30), shutdown)
        .await
        .expect("shutdown drains within 30 s")
        .unwrap();
    assert_eq!(
        payloads(&out),
        (0..50).map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert_eq!(metrics.in_flight, 0);
    assert_eq!(metrics.channels["out"].delivered, 50);
}
