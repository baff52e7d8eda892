//! The `MessageLog` suite against every backend: in-memory, SQLite in each
//! durability mode, Postgres. The concurrent-append check runs its
//! appenders on two stores over one database where the backend allows it,
//! standing for two processes.

mod common;

use common::message_conformance::{
    concurrent_appends_are_dense_and_replayable, run_message_log_suite,
};
use dagger_core::store::{Durability, MemoryStore, MessageLog};
use dagger_storage::{SqliteOptions, SqliteStore};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_message_log() {
    let store = Arc::new(MemoryStore::new());
    run_message_log_suite(store.as_ref(), "mem", || async {}).await;
    let log: Arc<dyn MessageLog> = store;
    concurrent_appends_are_dense_and_replayable(std::slice::from_ref(&log), log.clone(), "mem")
        .await;
}

async fn sqlite_message_log(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("log.db").display());
    let options = SqliteOptions {
        durability,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&location, options).await.unwrap();
    let s = &store;
    run_message_log_suite(s, "sql", move || async move { s.flush().await.unwrap() }).await;
    // A second store on the same file has its own writer thread, as a
    // second process would.
    let other = SqliteStore::open_with(&location, options).await.unwrap();
    let writers: [Arc<dyn MessageLog>; 2] = [Arc::new(store.clone()), Arc::new(other)];
    concurrent_appends_are_dense_and_replayable(&writers, Arc::new(store.clone()), "sql").await;
    store.integrity_check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_message_log_batched() {
    sqlite_message_log(Durability::Batched).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_message_log_sync() {
    sqlite_message_log(Durability::Sync).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_message_log() {
    let Some(store) = common::postgres::fresh_store("message_conformance").await else {
        return;
    };
    run_message_log_suite(&store, "pg", || async {}).await;
    // A second pool on the same schema: its connections are other sessions,
    // as another worker process's would be.
    let other = common::postgres::same_schema(&store).await;
    let writers: [Arc<dyn MessageLog>; 2] = [Arc::new(store.clone()), Arc::new(other)];
    concurrent_appends_are_dense_and_replayable(&writers, Arc::new(store.clone()), "pg").await;
    store.drop_schema().await.unwrap();
}
