//! The transport hook: carried channels leave through the transport instead
//! of local queues, and `deliver` reports what became of each delivery so a
//! transport acknowledges only handled messages.

mod common;

use common::{Behaviour, TestAgent};
use dagger_core::{BoxError, RetryPolicy};
use dagger_pubsub::{
    DeadLetterReason, DeliveryOutcome, Message, PubSubConfig, PubSubContext, PubSubError,
    PubSubExecutor, Transport,
};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;

/// Carries `remote.*` and keeps what it is given.
#[derive(Default)]
struct Outbox(Mutex<Vec<Message>>);

#[async_trait::async_trait]
impl Transport for Outbox {
    fn carries(&self, channel: &str) -> bool {
        channel.starts_with("remote.")
    }
    async fn send(&self, message: &Message) -> Result<(), BoxError> {
        self.0.lock().push(message.clone());
        Ok(())
    }
}

/// Fails on payloads with `"fail": true`.
struct FailOnFlag;

#[async_trait::async_trait]
impl Behaviour for FailOnFlag {
    async fn on(&self, _: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        if m.payload["fail"] == json!(true) {
            return Err("flagged".into());
        }
        Ok(())
    }
}

fn one_attempt() -> PubSubConfig {
    PubSubConfig {
        retry: RetryPolicy {
            max_attempts: 1,
            ..PubSubConfig::default().retry
        },
        ..PubSubConfig::default()
    }
}

#[tokio::test]
async fn carried_channels_leave_through_the_transport() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    let seen = TestAgent::recorder("local", &["remote.*", "here"]).register(&ex);
    let outbox = Arc::new(Outbox::default());
    ex.set_transport(outbox.clone()).unwrap();

    let sent = ex.publish("remote.a", json!(1)).await.unwrap();
    ex.publish("here", json!(2)).await.unwrap();
    ex.run(Default::default()).await.unwrap();
    let out: Vec<_> = outbox.0.lock().iter().map(|m| m.id.clone()).collect();
    assert_eq!(out, vec![sent], "the carried message went to the transport");
    let local: Vec<_> = seen.lock().iter().map(|m| m.channel.clone()).collect();
    assert_eq!(local, vec!["here"], "and not to the local subscriber");
    assert_eq!(ex.metrics().channels["remote.a"].published, 1);

    let err = ex.set_transport(outbox).unwrap_err();
    assert!(matches!(err, PubSubError::TransportAfterStart), "{err:?}");
    assert_eq!(
        ex.agent_subscriptions(),
        vec![(
            "local".to_string(),
            vec!["remote.*".to_string(), "here".to_string()]
        )]
    );
}

#[tokio::test]
async fn deliver_reports_each_outcome() {
    let ex = PubSubExecutor::new(one_attempt()).unwrap();
    let seen = TestAgent::new("worker", &["remote.*"], &[], FailOnFlag).register(&ex);
    ex.set_transport(Arc::new(Outbox::default())).unwrap();
    let message = |id: &str, payload| Message {
        id: id.into(),
        channel: "remote.jobs".into(),
        source: Some("elsewhere".into()),
        payload,
        timestamp: 0,
        correlation_id: None,
        causation_id: None,
        headers: Default::default(),
        depth: 0,
    };

    let ok = ex
        .deliver("worker", message("m1", json!({})), false)
        .await
        .unwrap();
    assert_eq!(ok.outcome().await, DeliveryOutcome::Handled);

    let failed = ex
        .deliver("worker", message("m2", json!({"fail": true})), false)
        .await
        .unwrap();
    assert_eq!(
        failed.outcome().await,
        DeliveryOutcome::Failed {
            error: "flagged".into(),
            attempts: 1
        }
    );
    assert!(
        ex.dead_letters().is_empty(),
        "a delivery that is not the last does not dead-letter"
    );

    let last = ex
        .deliver("worker", message("m3", json!({"fail": true})), true)
        .await
        .unwrap();
    let reason = DeadLetterReason::HandlerFailed {
        agent: "worker".into(),
        error: "flagged".into(),
        attempts: 1,
    };
    assert_eq!(
        last.outcome().await,
        DeliveryOutcome::DeadLettered(reason.clone())
    );
    let letters = ex.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message.id.as_str(), "m3");
    assert_eq!(letters[0].reason, reason);
    assert_eq!(seen.lock().len(), 3);

    let err = ex
        .deliver("nobody", message("m4", json!({})), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PubSubError::UnknownAgent { agent } if agent == "nobody"),
        "{err:?}"
    );

    ex.shutdown().await.unwrap();
    let err = ex
        .deliver("worker", message("m5", json!({})), false)
        .await
        .unwrap_err();
    assert!(matches!(err, PubSubError::ShuttingDown { .. }), "{err:?}");
}
