//! The W3C trace context over NATS: a message's `traceparent` header also
//! travels as a JetStream header, and a message whose body carries none
//! (published by another client) gets the one of its JetStream headers, so
//! the subscriber's handler joins the publisher's trace either way.

mod common;

use common::{Script, ScriptedAgent, connect, fresh_config, next};
use dagger_core::{MessageId, trace_context};
use dagger_pubsub::{Message, PubSubConfig, PubSubExecutor};
use serde_json::json;
use std::sync::Arc;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const FOREIGN: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn message(id: &str, headers: &[(&str, &str)]) -> Message {
    Message {
        id: MessageId::new(id),
        channel: "orders.new".into(),
        source: None,
        payload: json!({"id": id}),
        timestamp: 0,
        correlation_id: None,
        causation_id: None,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        depth: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traceparent_travels_as_a_jetstream_header() {
    let Some(bridge) = connect(fresh_config("trace")).await else {
        return;
    };
    let ex = Arc::new(PubSubExecutor::new(PubSubConfig::default()).unwrap());
    let (agent, mut seen) = ScriptedAgent::new("reader", &["orders.*"], &[], Script::Record);
    ex.register_agent(agent).unwrap();
    let attachment = bridge.attach(&ex, &["orders.>"]).await.unwrap();

    // A Dagger publish: the header is in the body and on the JetStream message.
    let sent = bridge
        .send(&message("traced", &[(trace_context::HEADER, PARENT)]))
        .await
        .unwrap();
    let stored = bridge
        .stream()
        .get_raw_message(sent.sequence)
        .await
        .unwrap();
    assert_eq!(
        stored
            .headers
            .get(trace_context::HEADER)
            .map(|v| v.as_str()),
        Some(PARENT)
    );
    let got = next(&mut seen, "the traced message").await;
    assert_eq!(
        got.headers.get(trace_context::HEADER).map(String::as_str),
        Some(PARENT)
    );

    // Another client's publish: the trace context only in the JetStream headers.
    let body = serde_json::to_vec(&message("foreign", &[])).unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(trace_context::HEADER, FOREIGN);
    bridge
        .jetstream()
        .publish_with_headers(bridge.subject("orders.new"), headers, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let got = next(&mut seen, "the foreign message").await;
    assert_eq!(got.id.as_str(), "foreign");
    assert_eq!(
        got.headers.get(trace_context::HEADER).map(String::as_str),
        Some(FOREIGN),
        "restored from the JetStream header"
    );

    // Untraced: no header either way.
    let untraced = ex
        .publish("orders.new", json!({"id": "plain"}))
        .await
        .unwrap();
    let got = next(&mut seen, "the untraced message").await;
    assert_eq!(got.id, untraced);
    assert!(!got.headers.contains_key(trace_context::HEADER));

    attachment.stop().await;
    ex.shutdown().await.unwrap();
    bridge.delete_stream().await.unwrap();
}
