//! A message whose handler keeps failing is redelivered by NATS until
//! `max_deliver`, then dead-lettered locally and on the dead-letter subject
//! with the reason; a schema violation is dead-lettered at once.

mod common;

use async_nats::jetstream::consumer::pull;
use common::{Script, ScriptedAgent, connect, fresh_config, next};
use dagger_core::{JsonSchema, RetryPolicy};
use dagger_nats::NatsBridge;
use dagger_pubsub::{DeadLetterReason, PubSubExecutor};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The first dead letter of `channel` on NATS, with its reason header.
async fn dead_letter(bridge: &NatsBridge, channel: &str) -> (Value, String) {
    let consumer = bridge
        .stream()
        .create_consumer(pull::Config {
            filter_subject: bridge.dead_letter_subject(channel),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(20), messages.next())
        .await
        .expect("a dead letter within 20 s")
        .unwrap()
        .unwrap();
    let reason = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("Dagger-Dead-Letter-Reason"))
        .map(|v| v.to_string())
        .unwrap_or_default();
    (serde_json::from_slice(&msg.payload).unwrap(), reason)
}

fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..dagger_pubsub::PubSubConfig::default().retry
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausting_max_deliver_dead_letters_with_the_reason() {
    let config = fresh_config("maxdeliver")
        .max_deliver(3)
        .redelivery_delay(Duration::from_millis(20));
    let Some(bridge) = connect(config).await else {
        return;
    };
    let ex = Arc::new(
        PubSubExecutor::builder()
            .retry(one_attempt())
            .build()
            .unwrap(),
    );
    let (agent, mut seen) = ScriptedAgent::new("failing", &["jobs.*"], &[], Script::Fail);
    ex.register_agent(agent).unwrap();
    let attachment = bridge.attach(&ex, &["jobs.>"]).await.unwrap();
    let consumer = attachment.consumers()[0].clone();

    let id = ex.publish("jobs.new", json!({"n": 1})).await.unwrap();
    for delivery in 1..=3 {
        let m = next(&mut seen, &format!("delivery {delivery}")).await;
        assert_eq!(m.id, id);
    }
    let (letter, header) = dead_letter(&bridge, "jobs.new").await;
    assert_eq!(header, "handler_failed");
    assert_eq!(letter["reason"], "handler_failed");
    assert_eq!(letter["agent"], "failing");
    assert_eq!(letter["error"], r#"cannot handle {"n":1}"#);
    assert_eq!(letter["delivered"], 3);
    assert_eq!(letter["channel"], "jobs.new");
    assert_eq!(letter["consumer"], consumer.as_str());
    assert_eq!(letter["original"]["id"], id.as_str());

    // Only the last delivery dead-letters locally; earlier failures were redelivered.
    let local = ex.dead_letters();
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].message.id, id);
    assert_eq!(
        local[0].reason,
        DeadLetterReason::HandlerFailed {
            agent: "failing".into(),
            error: r#"cannot handle {"n":1}"#.into(),
            attempts: 1,
        }
    );

    attachment.stop().await;
    let info = bridge
        .stream()
        .clone()
        .consumer_info(&consumer)
        .await
        .unwrap();
    assert_eq!(info.num_ack_pending, 0, "the message is terminated");
    assert_eq!(info.num_pending, 0);
    ex.shutdown().await.unwrap();
    assert!(seen.try_recv().is_err(), "no fourth delivery");
    bridge.delete_stream().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_violation_is_dead_lettered_on_first_delivery() {
    let Some(bridge) = connect(fresh_config("schema").max_deliver(5)).await else {
        return;
    };
    let ex = Arc::new(PubSubExecutor::builder().build().unwrap());
    let (agent, mut seen) = ScriptedAgent::new("strict", &["jobs.*"], &[], Script::Record);
    let mut agent = Arc::into_inner(agent).unwrap();
    let schema =
        json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
    agent.input = Some(JsonSchema::compile(&schema, Some("strict")).unwrap());
    ex.register_agent(Arc::new(agent)).unwrap();
    let attachment = bridge.attach(&ex, &["jobs.>"]).await.unwrap();

    let id = ex.publish("jobs.new", json!({"n": "one"})).await.unwrap();
    let (letter, header) = dead_letter(&bridge, "jobs.new").await;
    assert_eq!(header, "input_schema");
    assert_eq!(letter["agent"], "strict");
    assert_eq!(letter["violation"]["instance_path"], "/n");
    assert_eq!(letter["violation"]["keyword"], "type");
    assert_eq!(letter["delivered"], 1);
    assert_eq!(letter["original"]["id"], id.as_str());

    attachment.stop().await;
    ex.shutdown().await.unwrap();
    assert!(seen.try_recv().is_err(), "the handler never ran");
    bridge.delete_stream().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_message_is_dead_lettered_and_the_consumer_goes_on() {
    let Some(bridge) = connect(fresh_config("foreign")).await else {
        return;
    };
    let ex = Arc::new(PubSubExecutor::builder().build().unwrap());
    let (agent, mut seen) = ScriptedAgent::new("reader", &["jobs.*"], &[], Script::Record);
    ex.register_agent(agent).unwrap();
    let attachment = bridge.attach(&ex, &["jobs.>"]).await.unwrap();

    // Someone else publishes a non-Dagger payload on a carried subject.
    bridge
        .jetstream()
        .publish(bridge.subject("jobs.raw"), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let id = ex.publish("jobs.new", json!({"n": 2})).await.unwrap();
    assert_eq!(next(&mut seen, "the Dagger message").await.id, id);
    let (letter, header) = dead_letter(&bridge, "jobs.raw").await;
    assert_eq!(header, "undecodable");
    assert_eq!(letter["agent"], "reader");
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .starts_with("not a Dagger message: expected ident at line 1 column 2"),
        "{letter}"
    );
    assert_eq!(letter["original"], "not json");

    attachment.stop().await;
    ex.shutdown().await.unwrap();
    bridge.delete_stream().await.unwrap();
}
