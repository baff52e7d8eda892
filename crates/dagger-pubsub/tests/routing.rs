//! Routing: exact and pattern subscriptions, once per subscriber, order per publisher.

mod common;

use common::{TestAgent, payloads};
use dagger_pubsub::{CancellationToken, PubSubConfig, PubSubExecutor, PublishOptions, RunOutcome};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_and_pattern_subscribers_each_receive_matching_messages_once() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    let exact = TestAgent::recorder("exact", &["orders.created"]).register(&ex);
    let star = TestAgent::recorder("star", &["orders.*"]).register(&ex);
    let tail = TestAgent::recorder("tail", &["orders.>"]).register(&ex);
    // Two overlapping patterns on one agent must still give one delivery.
    let both = TestAgent::recorder("both", &["orders.*", "orders.>"]).register(&ex);
    let other = TestAgent::recorder("other", &["invoices"]).register(&ex);

    ex.publish("orders.created", json!(1)).await.unwrap();
    ex.publish("orders.eu.created", json!(2)).await.unwrap();
    ex.publish("orders", json!(3)).await.unwrap();
    ex.publish("invoices", json!(4)).await.unwrap();
    assert_eq!(
        ex.run(CancellationToken::new()).await.unwrap(),
        RunOutcome::Quiescent
    );

    assert_eq!(payloads(&exact), [json!(1)]);
    assert_eq!(payloads(&star), [json!(1)]);
    assert_eq!(payloads(&tail), [json!(1), json!(2)]);
    assert_eq!(payloads(&both), [json!(1), json!(2)]);
    assert_eq!(payloads(&other), [json!(4)]);

    let m = ex.metrics();
    let created = &m.channels["orders.created"];
    assert_eq!((created.published, created.delivered), (1, 4));
    assert_eq!(created.subscribers, ["exact", "star", "tail", "both"]);
    assert_eq!(
        m.channels["orders"].published, 1,
        "channels are created on demand"
    );
    assert_eq!(m.channels["orders"].delivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_sees_each_publishers_messages_in_order_exactly_once() {
    let ex = Arc::new(
        PubSubExecutor::new(PubSubConfig {
            queue_capacity: 8,
            max_batch: 3,
            ..PubSubConfig::default()
        })
        .unwrap(),
    );
    let subs: Vec<_> = (0..3)
        .map(|i| TestAgent::recorder(&format!("s{i}"), &["feed.>"]).register(&ex))
        .collect();
    const N: u64 = 2_000;
    let mut publishers = Vec::new();
    for p in 0..3u64 {
        let ex = ex.clone();
        publishers.push(tokio::spawn(async move {
            for seq in 0..N {
                ex.publish(&format!("feed.p{p}"), json!({"p": p, "seq": seq}))
                    .await
                    .unwrap();
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    ex.run(CancellationToken::new()).await.unwrap();
    for seen in &subs {
        let seen = seen.lock();
        assert_eq!(seen.len() as u64, 3 * N);
        let mut next = [0u64; 3];
        for m in seen.iter() {
            let p = m.payload["p"].as_u64().unwrap() as usize;
            let seq = m.payload["seq"].as_u64().unwrap();
            assert_eq!(seq, next[p], "publisher {p} out of order or duplicated");
            next[p] += 1;
        }
    }
}

#[tokio::test]
async fn messages_carry_ids_timestamps_correlation_and_headers() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    let seen = TestAgent::recorder("r", &["a"]).register(&ex);
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("k".to_string(), "v".to_string());
    let before = dagger_core::now_millis();
    let id1 = ex
        .publish_with(
            "a",
            json!(1),
            PublishOptions {
                correlation_id: Some("c-1".into()),
                headers,
            },
        )
        .await
        .unwrap();
    let id2 = ex.publish("a", json!(2)).await.unwrap();
    ex.run(CancellationToken::new()).await.unwrap();
    let seen = seen.lock();
    assert_eq!(seen[0].id, id1);
    assert!(id1 < id2, "ids are time-ordered");
    assert_eq!(seen[0].correlation_id.as_deref(), Some("c-1"));
    assert_eq!(seen[0].headers["k"], "v");
    assert_eq!(seen[0].source, None);
    assert_eq!(seen[0].depth, 0);
    assert_eq!(seen[0].channel, "a");
    assert!(seen[0].timestamp >= before);
}
