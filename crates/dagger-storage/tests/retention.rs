//! `Retention::prune` on SQLite, the memory store and, with the `postgres`
//! feature, a real Postgres server (own schema).

mod common;

use common::retention::retention_suite;
use dagger_storage::{SqliteOptions, SqliteStore};

#[tokio::test]
async fn sqlite_prunes_only_what_finished_before_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_in(dir.path(), "gc", SqliteOptions::default());
    retention_suite(&store, "s").await;
}

#[tokio::test]
async fn sqlite_removes_the_file_of_a_pruned_large_artifact() {
    use dagger_core::store::{ArtifactStore, NodeRunRecord, Retention, RunStore};
    let dir = tempfile::tempdir().unwrap();
    let store: SqliteStore = common::open_in(dir.path(), "gc", SqliteOptions::default());
    let big = vec![7u8; dagger_storage::INLINE_LIMIT + 1];
    let id = store.put_artifact(big).await.unwrap();
    let path = store.artifact_path(&id);
    assert!(path.exists());
    let mut r = common::conformance::run("big", "wf", dagger_core::RunStatus::Completed, 1_000);
    r.finished_at = Some(1_000);
    store.create_run(r).await.unwrap();
    let n: NodeRunRecord = NodeRunRecord {
        output_artifact_id: Some(id.clone()),
        ..common::conformance::node("big", "a", "", dagger_core::NodeStatus::Completed)
    };
    store.put_node_run(n).await.unwrap();
    store.flush().await.unwrap();
    let report = store.prune(5_000, false).await.unwrap();
    assert_eq!((report.runs, report.artifacts), (1, 1));
    assert!(
        !path.exists(),
        "the artifact's file is removed with its row"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_prunes_only_what_finished_before_the_cutoff() {
    let Some(store) = common::postgres::fresh_store("gc").await else {
        return;
    };
    retention_suite(&store, "p").await;
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn memory_prunes_only_what_finished_before_the_cutoff() {
    let store = dagger_core::store::MemoryStore::new();
    retention_suite(&store, "m").await;
}

/// Finished node queue items go; a claimed one stays.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_prunes_finished_node_queue_items() {
    use dagger_core::store::{NodeQueue, NodeResult, NodeWorkItem, Retention};
    use dagger_core::{NodeId, RunId};
    use std::time::Duration;
    let Some(store) = common::postgres::fresh_store("gc_queue").await else {
        return;
    };
    let item = |node: &str| {
        let key = format!("r/{node}/");
        NodeWorkItem {
            item_id: NodeWorkItem::id_for(&key, 1),
            dag_name: "wf".into(),
            run_id: RunId::from("r"),
            node_id: NodeId::from(node),
            invocation_key: String::new(),
            attempt: 1,
            action: "echo".into(),
            inputs: serde_json::Map::new(),
            idempotency_key: key,
            timeout_ms: None,
            traceparent: None,
        }
    };
    store.enqueue(item("a")).await.unwrap();
    store.enqueue(item("b")).await.unwrap();
    let claims = store
        .claim("w", &["echo".to_string()], 2, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);
    let done = &claims[0];
    let result = NodeResult::Output {
        outputs: serde_json::json!(1),
        success: true,
        metadata: serde_json::Map::new(),
        logs: Default::default(),
    };
    store
        .complete(&done.item.item_id, done.token, result)
        .await
        .unwrap();
    let later = dagger_core::now_millis() + 60_000;
    let report = store.prune(later, false).await.unwrap();
    assert_eq!(report.node_queue_items, 1, "only the finished item");
    let other = &claims[1];
    store
        .renew(&other.item.item_id, other.token, Duration::from_secs(60))
        .await
        .expect("the claimed item is still there");
    assert_eq!(store.prune(later, true).await.unwrap().node_queue_items, 0);
    store.drop_schema().await.unwrap();
}
