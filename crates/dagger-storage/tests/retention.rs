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
