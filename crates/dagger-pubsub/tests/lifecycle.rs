//! Run until quiescent or cancelled; shutdown drains accepted messages.

mod common;

use common::{Behaviour, TestAgent, payloads};
use dagger_core::BoxError;
use dagger_pubsub::{
    CancellationToken, Message, PubSubConfig, PubSubContext, PubSubError, PubSubExecutor,
    RunOutcome,
};
use serde_json::json;
use std::sync::Arc;
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
    let shutdown = {
        let ex = ex.clone();
        tokio::spawn(async move { ex.shutdown().await })
    };
    // Once shutdown has begun, new external messages are refused...
    let mut accepted_late = 0u64;
    let refused = loop {
        match ex.publish("in", json!("late")).await {
            Err(e) => break e,
            Ok(_) => {
                accepted_late += 1;
                tokio::task::yield_now().await
            }
        }
    };
    assert!(matches!(refused, PubSubError::ShuttingDown { ref channel } if channel == "in"));
    // ...but everything accepted before is still handled.
    gate.add_permits(1_000);
    let metrics = shutdown.await.unwrap().unwrap();
    let got: Vec<_> = payloads(&out)
        .into_iter()
        .filter(|v| *v != json!("late"))
        .collect();
    assert_eq!(got, (0..50).map(|i| json!(i)).collect::<Vec<_>>());
    assert_eq!(metrics.in_flight, 0);
    assert_eq!(metrics.channels["out"].delivered, 50 + accepted_late);
    assert_eq!(payloads(&out).len() as u64, 50 + accepted_late);
}
