//! Idempotency keys (`RunStore::create_keyed_run`) on every backend: a key
//! names one run of its workflow, a taken key answers with that run and
//! records nothing, a re-bind is a compare-and-set, a failed insert leaves
//! the key free, and of many concurrent starts with one key exactly one
//! records its run.

mod common;

use common::conformance::run;
use dagger_core::store::{KeyedCreate, MemoryStore, RunQuery};
use dagger_core::{RunId, RunStatus, StoreError, Stores};
use dagger_storage::SqliteStore;
use std::sync::Arc;

async fn key_suite(stores: Stores) {
    let runs = &stores.runs;
    let id = |s: &str| RunId::from(s);
    let first = runs
        .create_keyed_run(run("k-1", "wf", RunStatus::Running, 1), "order-7", None)
        .await
        .unwrap();
    assert_eq!(first, KeyedCreate::Created);
    // The same key of the same workflow: the first run, nothing recorded.
    let second = runs
        .create_keyed_run(run("k-2", "wf", RunStatus::Running, 2), "order-7", None)
        .await
        .unwrap();
    assert_eq!(second, KeyedCreate::Existing(id("k-1")));
    assert!(runs.get_run(&id("k-2")).await.unwrap().is_none());
    // Keys are per workflow.
    let other = runs
        .create_keyed_run(run("k-3", "other", RunStatus::Running, 3), "order-7", None)
        .await
        .unwrap();
    assert_eq!(other, KeyedCreate::Created);
    // Re-binding from a run the key does not name changes nothing.
    let stale = runs
        .create_keyed_run(
            run("k-4", "wf", RunStatus::Running, 4),
            "order-7",
            Some(&id("k-3")),
        )
        .await
        .unwrap();
    assert_eq!(stale, KeyedCreate::Existing(id("k-1")));
    assert!(runs.get_run(&id("k-4")).await.unwrap().is_none());
    // Re-binding from the run it names records the new run under the key.
    let rebound = runs
        .create_keyed_run(
            run("k-5", "wf", RunStatus::Running, 5),
            "order-7",
            Some(&id("k-1")),
        )
        .await
        .unwrap();
    assert_eq!(rebound, KeyedCreate::Created);
    let after = runs
        .create_keyed_run(run("k-6", "wf", RunStatus::Running, 6), "order-7", None)
        .await
        .unwrap();
    assert_eq!(after, KeyedCreate::Existing(id("k-5")));
    // A start under the same key and the same (caller-chosen) id is no
    // different: the key names a run already.
    let same = runs
        .create_keyed_run(run("k-5", "wf", RunStatus::Running, 6), "order-7", None)
        .await
        .unwrap();
    assert_eq!(same, KeyedCreate::Existing(id("k-5")));
    // A taken run id fails the start and leaves the new key unbound.
    let taken = runs
        .create_keyed_run(run("k-1", "wf", RunStatus::Running, 7), "fresh", None)
        .await;
    assert!(
        matches!(taken, Err(StoreError::AlreadyExists { .. })),
        "{taken:?}"
    );
    let fresh = runs
        .create_keyed_run(run("k-8", "wf", RunStatus::Running, 8), "fresh", None)
        .await
        .unwrap();
    assert_eq!(fresh, KeyedCreate::Created);

    // Sixteen concurrent starts with one key: one run.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let runs = stores.runs.clone();
        tasks.push(tokio::spawn(async move {
            let record = run(&format!("race-{i}"), "wf", RunStatus::Running, 100 + i);
            runs.create_keyed_run(record, "race", None).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut named = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            KeyedCreate::Created => created += 1,
            KeyedCreate::Existing(r) => named.push(r),
        }
    }
    assert_eq!(created, 1);
    let listed = runs.list_runs(&RunQuery::default()).await.unwrap();
    let winners: Vec<_> = listed
        .iter()
        .filter(|r| r.run_id.as_str().starts_with("race-"))
        .collect();
    assert_eq!(winners.len(), 1);
    assert!(named.iter().all(|r| r == &winners[0].run_id), "{named:?}");
}

#[tokio::test]
async fn memory_keys() {
    key_suite(Stores::from(Arc::new(MemoryStore::new()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keys() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("keys.db").display());
    let store = SqliteStore::open(&location).await.unwrap();
    key_suite(store.stores()).await;
    store.integrity_check().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keys() {
    let Some(store) = common::postgres::fresh_store("run_keys").await else {
        return;
    };
    key_suite(Stores::from(store.clone())).await;
    store.drop_schema().await.unwrap();
}
