//! Typed errors for undeclared publications, bad names and bad registrations.

mod common;

use common::{Behaviour, TestAgent, payloads};
use dagger_core::BoxError;
use dagger_pubsub::{
    CancellationToken, Message, PubSubConfig, PubSubContext, PubSubError, PubSubExecutor,
};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;

/// Publishes to the channel named in the payload and records the result.
struct PublishTo(Arc<Mutex<Vec<Result<(), String>>>>);

#[async_trait::async_trait]
impl Behaviour for PublishTo {
    async fn on(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        let channel = m.payload.as_str().unwrap_or_default();
        let r = ctx.publish(channel, json!("hi")).await;
        if let Err(e) = &r {
            match e {
                PubSubError::UndeclaredPublication {
                    agent,
                    channel: c,
                    declared,
                } => {
                    assert_eq!(agent, "talker");
                    assert_eq!(c, channel);
                    assert_eq!(declared, "news.*, alerts");
                }
                PubSubError::InvalidChannel { channel: c, .. } => assert_eq!(c, channel),
                other => panic!("unexpected error {other}"),
            }
        }
        self.0.lock().push(r.map(|_| ()).map_err(|e| e.to_string()));
        Ok(())
    }
}

#[tokio::test]
async fn agents_publish_only_to_declared_channels() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    TestAgent::new(
        "talker",
        &["cmd"],
        &["news.*", "alerts"],
        PublishTo(results.clone()),
    )
    .register(&ex);
    let news = TestAgent::recorder("reader", &["news.>", "alerts", "secrets"]).register(&ex);
    for c in [
        "news.sport",
        "alerts",
        "secrets",
        "news.sport.football",
        "news.*",
    ] {
        ex.publish("cmd", json!(c)).await.unwrap();
    }
    ex.run(CancellationToken::new()).await.unwrap();
    let results = results.lock();
    assert_eq!(results[0], Ok(()));
    assert_eq!(results[1], Ok(()));
    assert_eq!(
        results[2].as_ref().unwrap_err(),
        "agent `talker` may not publish to `secrets`: it declares only [news.*, alerts]"
    );
    assert_eq!(
        results[3].as_ref().unwrap_err(),
        "agent `talker` may not publish to `news.sport.football`: it declares only [news.*, alerts]"
    );
    assert_eq!(
        results[4].as_ref().unwrap_err(),
        "invalid channel name `news.*`: wildcard `*` is only allowed in patterns"
    );
    assert_eq!(payloads(&news), [json!("hi"), json!("hi")]);
    assert!(
        !ex.metrics().channels.contains_key("secrets"),
        "refused publishes create no channel"
    );
}

#[tokio::test]
async fn external_publishes_to_malformed_channels_are_refused() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    let err = ex.publish("a..b", json!(1)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid channel name `a..b`: segment 2 is empty"
    );
    let err = ex.publish("", json!(1)).await.unwrap_err();
    assert!(matches!(err, PubSubError::InvalidChannel { ref channel, .. } if channel.is_empty()));
}

#[tokio::test]
async fn registration_errors_name_the_agent_and_pattern() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    TestAgent::recorder("a", &["x"]).register(&ex);
    let err = ex
        .register_agent(Arc::new(TestAgent::recorder("a", &["y"])))
        .unwrap_err();
    assert_eq!(err.to_string(), "an agent named `a` is already registered");
    let err = ex
        .register_agent(Arc::new(TestAgent::recorder("b", &["orders.>.x"])))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent `b`: invalid channel pattern `orders.>.x`: `>` must be the last segment"
    );
    let err = ex
        .register_agent(Arc::new(TestAgent::new(
            "c",
            &[],
            &["bad pattern"],
            common::Record,
        )))
        .unwrap_err();
    assert!(
        matches!(err, PubSubError::InvalidPattern { ref agent, ref pattern, .. } if agent == "c" && pattern == "bad pattern")
    );
    let err = ex
        .register_agent(Arc::new(TestAgent::recorder("", &["x"])))
        .unwrap_err();
    assert!(matches!(err, PubSubError::InvalidAgentName { .. }));

    ex.run(CancellationToken::new()).await.unwrap();
    let err = ex
        .register_agent(Arc::new(TestAgent::recorder("late", &["x"])))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot register agent `late`: the executor has already started"
    );
}

#[test]
fn bad_configurations_are_refused() {
    let err = PubSubExecutor::new(PubSubConfig {
        queue_capacity: 0,
        ..PubSubConfig::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pub/sub configuration: queue_capacity must be at least 1"
    );
    let err = PubSubExecutor::builder()
        .durable("orders.>")
        .build()
        .unwrap_err();
    assert!(matches!(err, PubSubError::NoMessageLog { ref patterns } if patterns == &["orders.>"]));
}
