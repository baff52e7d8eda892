//! The node-run writes a DAG Flow run issues per node: the started record
//! (which may only be queued, even with `Sync`) and the completed record with
//! its output (one write when the artifacts live in the same store).

mod common;

use common::conformance::{node, run};
use dagger_core::store::{ArtifactId, ArtifactStore, Durability, MemoryStore, RunStore};
use dagger_core::{NodeStatus, RunId, RunStatus, StoreError, Stores};
use dagger_storage::{SqliteOptions, SqliteStore};
use std::sync::Arc;

async fn open(durability: Durability) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("runs.db").display());
    let store = SqliteStore::open_with(
        &location,
        SqliteOptions {
            durability,
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    (dir, store)
}

async fn completed_output_and_record_read_back(stores: &Stores) {
    stores
        .runs
        .create_run(run("r1", "wf", RunStatus::Running, 1))
        .await
        .unwrap();
    stores
        .runs
        .put_node_started(node("r1", "a", "", NodeStatus::Running))
        .await
        .unwrap();
    let output = br#"{"v":1}"#.to_vec();
    let id = stores
        .runs
        .put_completed_node_run(
            &*stores.artifacts,
            output.clone(),
            node("r1", "a", "", NodeStatus::Completed),
        )
        .await
        .unwrap();
    assert_eq!(id, ArtifactId::of(&output));
    let records = stores.runs.node_runs(&RunId::from("r1")).await.unwrap();
    assert_eq!(
        records.len(),
        1,
        "the completion replaces the started record"
    );
    assert_eq!(records[0].state, NodeStatus::Completed);
    assert_eq!(records[0].output_artifact_id.as_ref(), Some(&id));
    assert_eq!(stores.artifacts.get_artifact(&id).await.unwrap(), output);
    // Outputs too large to keep inline go through the artifact store.
    let big = vec![b'x'; dagger_storage::INLINE_LIMIT + 1];
    let big_id = stores
        .runs
        .put_completed_node_run(
            &*stores.artifacts,
            big.clone(),
            node("r1", "b", "", NodeStatus::Completed),
        )
        .await
        .unwrap();
    assert_eq!(stores.artifacts.get_artifact(&big_id).await.unwrap(), big);
    stores.runs.flush().await.unwrap();
}

#[tokio::test]
async fn completed_records_with_outputs_in_every_mode() {
    for durability in [Durability::Batched, Durability::Sync] {
        let (_dir, store) = open(durability).await;
        completed_output_and_record_read_back(&store.stores()).await;
        store.integrity_check().await.unwrap();
    }
    completed_output_and_record_read_back(&Stores::from(Arc::new(MemoryStore::new()))).await;
}

#[tokio::test]
async fn outputs_go_to_another_artifact_store_when_given_one() {
    let (_dir, store) = open(Durability::Sync).await;
    let other = MemoryStore::new();
    store
        .create_run(run("r1", "wf", RunStatus::Running, 1))
        .await
        .unwrap();
    let output = b"\"elsewhere\"".to_vec();
    // The SQLite store has no row for it: the record cannot point at it.
    let err = RunStore::put_completed_node_run(
        &store,
        &other,
        output.clone(),
        node("r1", "a", "", NodeStatus::Completed),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                entity: "artifact",
                ..
            }
        ),
        "{err:?}"
    );
    let id = ArtifactId::of(&output);
    assert_eq!(other.get_artifact(&id).await.unwrap(), output);
    assert!(ArtifactStore::get_artifact(&store, &id).await.is_err());
}

#[tokio::test]
async fn a_started_record_is_only_queued_even_with_sync() {
    let (_dir, store) = open(Durability::Sync).await;
    // No such run: the write fails, but the call returned before the commit,
    // so the failure shows at the next flush.
    store
        .put_node_started(node("missing", "a", "", NodeStatus::Running))
        .await
        .expect("queued, not awaited");
    let err = RunStore::flush(&store).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    // A failed one-statement job leaves the rest of its batch alone.
    store
        .create_run(run("r1", "wf", RunStatus::Running, 1))
        .await
        .unwrap();
    store
        .put_node_started(node("missing", "a", "", NodeStatus::Running))
        .await
        .unwrap();
    store
        .put_node_run(node("r1", "b", "", NodeStatus::Completed))
        .await
        .unwrap();
    assert!(RunStore::flush(&store).await.is_err());
    let records = store.node_runs(&RunId::from("r1")).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].node_id.as_str(), "b");
}

#[tokio::test]
async fn started_records_of_retries_land_in_order() {
    for durability in [Durability::Batched, Durability::Sync] {
        let (_dir, store) = open(durability).await;
        store
            .create_run(run("r1", "wf", RunStatus::Running, 1))
            .await
            .unwrap();
        let attempt = |n: u32, state: NodeStatus| {
            let mut rec = node("r1", "a", "", state);
            rec.attempt = n;
            rec
        };
        store
            .put_node_started(attempt(1, NodeStatus::Running))
            .await
            .unwrap();
        store
            .put_node_run(attempt(1, NodeStatus::Failed))
            .await
            .unwrap();
        store
            .put_node_started(attempt(2, NodeStatus::Running))
            .await
            .unwrap();
        RunStore::flush(&store).await.unwrap();
        let records = store.node_runs(&RunId::from("r1")).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].attempt, records[0].state),
            (2, NodeStatus::Running),
            "{durability:?}: the newest started record is the last one written"
        );
        // The completion replaces it, whether or not it was written.
        store
            .put_completed_node_run(&store, b"1".to_vec(), attempt(2, NodeStatus::Completed))
            .await
            .unwrap();
        RunStore::flush(&store).await.unwrap();
        let records = store.node_runs(&RunId::from("r1")).await.unwrap();
        assert_eq!(
            (records[0].attempt, records[0].state),
            (2, NodeStatus::Completed)
        );
    }
}
