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

/// An artifact stored again just before a prune (a new run recording the
/// same output as an old run being pruned) is kept, so the new run's node
/// record, written next, finds it. Without the reuse mark the prune removed
/// it and the record failed (`NotFound` artifact).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_keeps_an_artifact_stored_again_within_the_grace_period() {
    use dagger_core::store::{ArtifactStore, NodeRunRecord, Retention, RunStore};
    use dagger_core::{NodeStatus, RunStatus};
    let Some(store) = common::postgres::fresh_store("gc_grace").await else {
        return;
    };
    let bytes = b"the same output".to_vec();
    let id = store.put_artifact(bytes.clone()).await.unwrap();
    let mut old = common::conformance::run("old", "wf", RunStatus::Completed, 1_000);
    old.finished_at = Some(1_000);
    store.create_run(old).await.unwrap();
    let record = |run: &str| NodeRunRecord {
        output_artifact_id: Some(id.clone()),
        ..common::conformance::node(run, "a", "", NodeStatus::Completed)
    };
    store.put_node_run(record("old")).await.unwrap();
    // Referenced by the old run only: the prune would remove it.
    assert_eq!(store.prune(5_000, true).await.unwrap().artifacts, 1);

    // A new run stores the same output, then the prune runs, then the new
    // run records its node.
    assert_eq!(store.put_artifact(bytes.clone()).await.unwrap(), id);
    let report = store.prune(5_000, false).await.unwrap();
    assert_eq!((report.runs, report.artifacts), (1, 0), "{report:?}");
    store
        .create_run(common::conformance::run(
            "new",
            "wf",
            RunStatus::Running,
            dagger_core::now_millis(),
        ))
        .await
        .unwrap();
    store.put_node_run(record("new")).await.unwrap();
    assert_eq!(store.get_artifact(&id).await.unwrap(), bytes);
    store.drop_schema().await.unwrap();
}

/// The same race, for real: runs storing an old output and recording it
/// while prunes of the old runs go on; no record ever misses its artifact.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prunes_racing_new_runs_never_remove_their_artifacts() {
    use dagger_core::store::{ArtifactStore, NodeRunRecord, Retention, RunStore};
    use dagger_core::{NodeStatus, RunStatus};
    let Some(store) = common::postgres::fresh_store("gc_race").await else {
        return;
    };
    for i in 0..20 {
        let bytes = format!("output {i}").into_bytes();
        let id = store.put_artifact(bytes.clone()).await.unwrap();
        let old = format!("old{i}");
        let mut r = common::conformance::run(&old, "wf", RunStatus::Completed, 1_000);
        r.finished_at = Some(1_000);
        store.create_run(r).await.unwrap();
        let record = |run: &str| NodeRunRecord {
            output_artifact_id: Some(id.clone()),
            ..common::conformance::node(run, "a", "", NodeStatus::Completed)
        };
        store.put_node_run(record(&old)).await.unwrap();
        let new = format!("new{i}");
        store
            .create_run(common::conformance::run(
                &new,
                "wf",
                RunStatus::Running,
                dagger_core::now_millis(),
            ))
            .await
            .unwrap();
        let prune = {
            let store = store.clone();
            tokio::spawn(async move { store.prune(5_000, false).await })
        };
        let stored = store.put_artifact(bytes.clone()).await.unwrap();
        store
            .put_node_run(record(&new))
            .await
            .unwrap_or_else(|e| panic!("round {i}: the new run's record: {e}"));
        prune.await.unwrap().unwrap();
        assert_eq!(stored, id);
        assert_eq!(store.get_artifact(&id).await.unwrap(), bytes, "round {i}");
    }
    store.drop_schema().await.unwrap();
}
