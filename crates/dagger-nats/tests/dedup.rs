//! Publishing one message twice (a retried publish, the same Dagger message
//! id) stores and delivers it once: the id travels as `Nats-Msg-Id` and the
//! stream drops the second copy within its duplicate window.

mod common;

use common::{Script, ScriptedAgent, connect, fresh_config, next};
use dagger_core::MessageId;
use dagger_pubsub::{Message, PubSubConfig, PubSubExecutor};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_twice_is_stored_and_delivered_once() {
    let Some(bridge) = connect(fresh_config("dedup")).await else {
        return;
    };
    let ex = Arc::new(PubSubExecutor::new(PubSubConfig::default()).unwrap());
    let (agent, mut seen) = ScriptedAgent::new("reader", &["orders.*"], &[], Script::Record);
    ex.register_agent(agent).unwrap();
    let attachment = bridge.attach(&ex, &["orders.>"]).await.unwrap();

    // The message as a publisher retrying after a lost acknowledgement sends it.
    let message = Message {
        id: MessageId::new("order-42"),
        channel: "orders.new".into(),
        source: None,
        payload: json!({"n": 42}),
        timestamp: 0,
        correlation_id: None,
        causation_id: None,
        headers: Default::default(),
        depth: 0,
    };
    let first = bridge.send(&message).await.unwrap();
    let second = bridge.send(&message).await.unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate, "the stream must report the second copy");
    assert_eq!(second.sequence, first.sequence);

    // A later message proves the reader is past the duplicate's position.
    let later = ex.publish("orders.new", json!({"n": 43})).await.unwrap();
    assert_eq!(next(&mut seen, "the original").await.id, message.id);
    assert_eq!(next(&mut seen, "the later message").await.id, later);
    let info = bridge.stream().clone().info().await.unwrap().clone();
    assert_eq!(info.state.messages, 2, "the duplicate must not be stored");

    attachment.stop().await;
    ex.shutdown().await.unwrap();
    assert!(seen.try_recv().is_err(), "nothing else was delivered");
    bridge.delete_stream().await.unwrap();
}
