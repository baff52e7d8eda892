//! The `NodeQueue` suite against the in-memory queue and Postgres: claims
//! restricted to a worker's actions, leases, fencing of stale completions,
//! expiry and reclaim, cancel, and wake-ups of waiters and idle workers.
#![allow(clippy::unwrap_used)]

mod common;

use dagger_core::store::{MemoryNodeQueue, NodeQueue, NodeResult, NodeWorkItem};
use dagger_core::{NodeId, RunId, StoreError};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn item(run: &str, node: &str, action: &str) -> NodeWorkItem {
    let key = format!("{run}/{node}/");
    NodeWorkItem {
        item_id: NodeWorkItem::id_for(&key, 1),
        dag_name: "wf".into(),
        run_id: RunId::from(run),
        node_id: NodeId::from(node),
        invocation_key: String::new(),
        attempt: 1,
        action: action.into(),
        inputs: json!({"n": 3, "text": "héllo"})
            .as_object()
            .unwrap()
            .clone(),
        idempotency_key: key,
        timeout_ms: Some(5_000),
        traceparent: None,
    }
}

fn output(v: serde_json::Value) -> NodeResult {
    NodeResult::Output {
        outputs: v,
        success: true,
        metadata: serde_json::Map::new(),
        logs: Default::default(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const LONG: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 20 s"))
}

/// Every check; `p` keeps ids apart.
async fn suite(q: Arc<dyn NodeQueue>, p: &str) {
    claims_are_restricted_leased_and_fifo(&q, p).await;
    results_round_trip_once(&q, p).await;
    expired_leases_are_reclaimed_and_fenced(&q, p).await;
    cancel_withdraws_an_item(&q, p).await;
    cancel_run_withdraws_only_that_runs_items(&q, p).await;
    waiters_and_workers_are_woken(&q, p).await;
    concurrent_claims_never_share_an_item(&q, p).await;
}

async fn claims_are_restricted_leased_and_fifo(q: &Arc<dyn NodeQueue>, p: &str) {
    let run = format!("{p}-fifo");
    for n in ["a", "b", "c"] {
        q.enqueue(item(&run, n, "echo")).await.unwrap();
    }
    q.enqueue(item(&run, "s", "shell")).await.unwrap();
    let none = q.claim("w0", &names(&["other"]), 10, LONG).await.unwrap();
    assert!(none.is_empty(), "no item has action `other`");
    let two = q.claim("w1", &names(&["echo"]), 2, LONG).await.unwrap();
    let ids: Vec<_> = two.iter().map(|c| c.item.node_id.to_string()).collect();
    assert_eq!(ids, ["a", "b"], "oldest first, at most the limit");
    assert!(two.iter().all(|c| c.token == 1));
    assert_eq!(two[0].item, item(&run, "a", "echo"), "the item round-trips");
    let rest = q
        .claim("w2", &names(&["echo", "shell"]), 10, LONG)
        .await
        .unwrap();
    let ids: Vec<_> = rest.iter().map(|c| c.item.node_id.to_string()).collect();
    assert_eq!(ids, ["c", "s"], "leased items are not claimed again");
    for c in two.iter().chain(&rest) {
        q.cancel(&c.item.item_id).await.unwrap();
    }
}

async fn results_round_trip_once(q: &Arc<dyn NodeQueue>, p: &str) {
    let it = item(&format!("{p}-result"), "a", "echo");
    q.enqueue(it.clone()).await.unwrap();
    let c = q.claim("w", &names(&["echo"]), 1, LONG).await.unwrap();
    let c = &c[0];
    let renewed = q.renew(&it.item_id, c.token, LONG).await.unwrap();
    assert!(renewed >= c.lease_expires_at);
    // What the action wrote travels with the result.
    let err = NodeResult::Error {
        message: "boom".into(),
        permanent: true,
        logs: dagger_core::store::AttemptLogs {
            lines: vec!["a log line".into()],
            dropped_lines: 0,
            stdout: Some("out\n".into()),
            stderr: Some("err\n".into()),
        },
    };
    q.complete(&it.item_id, c.token, err.clone()).await.unwrap();
    let again = q.complete(&it.item_id, c.token, output(json!(1))).await;
    assert!(
        matches!(again, Err(StoreError::StaleToken { .. })),
        "a finished item takes no second result: {again:?}"
    );
    assert_eq!(
        within("result", q.wait_result(&it.item_id)).await.unwrap(),
        err
    );
    let gone = q.wait_result(&it.item_id).await;
    assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
}

async fn expired_leases_are_reclaimed_and_fenced(q: &Arc<dyn NodeQueue>, p: &str) {
    let it = item(&format!("{p}-expiry"), "a", "echo");
    q.enqueue(it.clone()).await.unwrap();
    let old = q
        .claim("slow", &names(&["echo"]), 1, Duration::from_millis(200))
        .await
        .unwrap()
        .remove(0);
    assert!(
        q.claim("fast", &names(&["echo"]), 1, LONG)
            .await
            .unwrap()
            .is_empty(),
        "a live lease is respected"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = q
        .claim("fast", &names(&["echo"]), 1, LONG)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(new.token, old.token + 1, "the fencing token moves on");
    let renew = q.renew(&it.item_id, old.token, LONG).await;
    assert!(
        matches!(renew, Err(StoreError::StaleToken { held, current, .. }) if held == old.token && current == new.token),
        "{renew:?}"
    );
    let late = q
        .complete(&it.item_id, old.token, output(json!("old")))
        .await;
    assert!(
        matches!(late, Err(StoreError::StaleToken { .. })),
        "{late:?}"
    );
    q.complete(&it.item_id, new.token, output(json!("new")))
        .await
        .unwrap();
    assert_eq!(
        q.wait_result(&it.item_id).await.unwrap(),
        output(json!("new")),
        "only the current holder's result counts"
    );
}

async fn cancel_withdraws_an_item(q: &Arc<dyn NodeQueue>, p: &str) {
    let it = item(&format!("{p}-cancel"), "a", "echo");
    q.enqueue(it.clone()).await.unwrap();
    let c = q
        .claim("w", &names(&["echo"]), 1, LONG)
        .await
        .unwrap()
        .remove(0);
    let waiter = {
        let q = q.clone();
        let id = it.item_id.clone();
        tokio::spawn(async move { q.wait_result(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.cancel(&it.item_id).await.unwrap();
    let waited = within("waiter sees the cancel", waiter).await.unwrap();
    assert!(
        matches!(waited, Err(StoreError::NotFound { .. })),
        "{waited:?}"
    );
    let renew = q.renew(&it.item_id, c.token, LONG).await;
    assert!(
        matches!(renew, Err(StoreError::NotFound { .. })),
        "{renew:?}"
    );
    let done = q.complete(&it.item_id, c.token, output(json!(1))).await;
    assert!(matches!(done, Err(StoreError::NotFound { .. })), "{done:?}");
    q.cancel(&it.item_id).await.unwrap();
    assert!(
        q.claim("w", &names(&["echo"]), 1, LONG)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn cancel_run_withdraws_only_that_runs_items(q: &Arc<dyn NodeQueue>, p: &str) {
    let (gone, kept) = (format!("{p}-gone"), format!("{p}-kept"));
    let claimed = item(&gone, "a", "echo");
    q.enqueue(claimed.clone()).await.unwrap();
    let c = q
        .claim("w", &names(&["echo"]), 1, LONG)
        .await
        .unwrap()
        .remove(0);
    q.enqueue(item(&gone, "b", "echo")).await.unwrap();
    let other = item(&kept, "a", "echo");
    q.enqueue(other.clone()).await.unwrap();

    assert_eq!(q.cancel_run(&gone).await.unwrap(), 2);
    let renew = q.renew(&claimed.item_id, c.token, LONG).await;
    assert!(
        matches!(renew, Err(StoreError::NotFound { .. })),
        "the withdrawn claim's worker stops: {renew:?}"
    );
    let left = q.claim("w", &names(&["echo"]), 10, LONG).await.unwrap();
    assert_eq!(left.len(), 1, "only the other run's item is left");
    assert_eq!(left[0].item.item_id, other.item_id);
    assert_eq!(q.cancel_run(&gone).await.unwrap(), 0);
    q.cancel(&other.item_id).await.unwrap();
}

async fn waiters_and_workers_are_woken(q: &Arc<dyn NodeQueue>, p: &str) {
    enqueue_and_completion_wake(q, q, &format!("{p}-wake"), json!({"x": 1})).await;
}

/// `producer` enqueues an item and waits for its result; `worker`'s work
/// signal fires for the enqueue, it claims and completes the item, and the
/// completion wakes the producer's waiter.
async fn enqueue_and_completion_wake(
    producer: &Arc<dyn NodeQueue>,
    worker: &Arc<dyn NodeQueue>,
    id: &str,
    value: serde_json::Value,
) {
    let mut signal = worker.work_signal();
    signal.borrow_and_update();
    let it = item(id, "a", "echo");
    producer.enqueue(it.clone()).await.unwrap();
    within("work signal", signal.changed()).await.unwrap();
    let c = worker
        .claim("w", &names(&["echo"]), 1, LONG)
        .await
        .unwrap()
        .remove(0);
    let waiter = {
        let producer = producer.clone();
        let id = it.item_id.clone();
        tokio::spawn(async move { producer.wait_result(&id).await })
    };
    // Completes after the waiter has (most likely) started waiting, so the
    // wake-up and not the first look finds the result.
    tokio::time::sleep(Duration::from_millis(50)).await;
    worker
        .complete(&it.item_id, c.token, output(value.clone()))
        .await
        .unwrap();
    // Well under the Postgres store's 5-second re-check: the notification woke it.
    let got = tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .expect("woken by the completion")
        .unwrap()
        .unwrap();
    assert_eq!(got, output(value));
}

async fn concurrent_claims_never_share_an_item(q: &Arc<dyn NodeQueue>, p: &str) {
    let run = format!("{p}-race");
    for i in 0..40 {
        q.enqueue(item(&run, &format!("n{i}"), "race"))
            .await
            .unwrap();
    }
    let mut claimers = Vec::new();
    for w in 0..4 {
        let q = q.clone();
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let c = q
                    .claim(&format!("w{w}"), &names(&["race"]), 3, LONG)
                    .await
                    .unwrap();
                if c.is_empty() {
                    return got;
                }
                got.extend(c.into_iter().map(|c| c.item.item_id));
            }
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (40, 40), "each item claimed exactly once");
    for id in all {
        q.cancel(&id).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_node_queue() {
    suite(Arc::new(MemoryNodeQueue::new()), "mem").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_node_queue() {
    let Some(store) = common::postgres::fresh_store("node_queue").await else {
        return;
    };
    suite(Arc::new(store.clone()), "pg").await;
    store.drop_schema().await.unwrap();
}

/// Two stores on one schema stand for two processes: an enqueue on one
/// wakes the other's idle worker, a completion on one wakes the other's
/// waiter, through LISTEN/NOTIFY.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_node_queue_wakes_other_processes() {
    let Some(a) = common::postgres::fresh_store("node_queue_x").await else {
        return;
    };
    let options = dagger_storage::PostgresOptions {
        schema: a.schema().map(str::to_string),
        ..Default::default()
    };
    let b = dagger_storage::PostgresStore::connect_with(&common::postgres::url(), options)
        .await
        .unwrap();
    // Let b's listener connect; its first wake-up is not the one under test.
    let _listening = NodeQueue::work_signal(&b);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (producer, worker): (Arc<dyn NodeQueue>, Arc<dyn NodeQueue>) =
        (Arc::new(a.clone()), Arc::new(b.clone()));
    enqueue_and_completion_wake(&producer, &worker, "x", json!(7)).await;
    drop((producer, worker, _listening));
    drop(b);
    a.drop_schema().await.unwrap();
}
