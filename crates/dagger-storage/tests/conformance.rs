//! The store-trait suite against every backend: the in-memory store and the
//! SQLite store in each durability mode.

mod common;

use common::conformance::run_store_suite;
use dagger_core::store::{Durability, MemoryStore, RunQuery};
use dagger_core::{RunId, Stores};
use dagger_storage::{SqliteOptions, SqliteStore};
use std::sync::Arc;

#[tokio::test]
async fn memory_store() {
    run_store_suite(Stores::from(Arc::new(MemoryStore::new())), "mem").await;
}

#[tokio::test]
async fn sqlite_memory_location() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    let stores = store.stores();
    assert_eq!(stores.durability, Durability::Memory);
    assert_eq!(stores.location, "sqlite::memory:");
    run_store_suite(stores, "sqlmem").await;
    store.integrity_check().await.unwrap();
}

async fn sqlite_file(durability: Durability) {
    let dir = tempfile::tempdir().expect("sqlite file store");
    let location = format!("sqlite:{}", dir.path().join("runs.db").display());
    let options = SqliteOptions {
        durability,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&location, options)
        .await
        .expect("sqlite file store");
    let stores = Stores::from(store.clone());
    assert_eq!(stores.durability, durability);
    run_store_suite(stores, "file").await;
    store.integrity_check().await.expect("sqlite file store");
    drop(store);

    // Everything is still there after reopening.
    let reopened = SqliteStore::open_with(&location, options)
        .await
        .expect("sqlite file store")
        .stores();
    let run = reopened
        .runs
        .get_run(&RunId::from("file-run"))
        .await
        .expect("sqlite file store")
        .expect("run survives reopening");
    assert_eq!(run.reason, None);
    let listed = reopened
        .runs
        .list_runs(&RunQuery::default())
        .await
        .expect("sqlite file store");
    assert_eq!(listed.len(), 19); // 9 runs, 2 of the signals check, 3 of the ownership checks, 4 of lineage, 1 of the attempts check
    assert_eq!(
        reopened
            .runs
            .node_runs(&RunId::from("file-nodes"))
            .await
            .expect("sqlite file store")
            .len(),
        3
    );
}

#[tokio::test]
async fn sqlite_file_batched() {
    sqlite_file(Durability::Batched).await;
}

#[tokio::test]
async fn sqlite_file_sync() {
    sqlite_file(Durability::Sync).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store() {
    let Some(store) = common::postgres::fresh_store("conformance").await else {
        return;
    };
    let stores = Stores::from(store.clone());
    assert_eq!(stores.durability, Durability::Sync);
    assert!(
        stores.location.starts_with("postgres://"),
        "{}",
        stores.location
    );
    run_store_suite(stores, "pg").await;

    // Everything is still there through a second connection pool.
    let again = common::postgres::same_schema(&store).await.stores();
    let listed = again.runs.list_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 19); // 9 runs, 2 of the signals check, 3 of the ownership checks, 4 of lineage, 1 of the attempts check
    assert_eq!(
        again
            .runs
            .node_runs(&RunId::from("pg-nodes"))
            .await
            .unwrap()
            .len(),
        3
    );
    store.drop_schema().await.unwrap();
}
