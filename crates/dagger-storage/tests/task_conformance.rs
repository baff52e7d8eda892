//! The `TaskStore` suite against every backend: in-memory, SQLite, Postgres.

mod common;

use common::task_conformance::run_task_store_suite;
use dagger_core::store::MemoryStore;
use dagger_storage::{SqliteOptions, SqliteStore};

#[test]
fn memory_task_store() {
    run_task_store_suite(&MemoryStore::new(), "mem");
}

#[test]
fn sqlite_task_store() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("tasks.db").display());
    let store = SqliteStore::open_blocking(&location, SqliteOptions::default()).unwrap();
    run_task_store_suite(&store, "sql");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_task_store() {
    let Some(store) = common::postgres::fresh_store("task_conformance").await else {
        return;
    };
    run_task_store_suite(&store, "pg");
    store.drop_schema().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_task_store_from_a_current_thread_runtime() {
    let Some(store) = common::postgres::fresh_store("task_conformance_ct").await else {
        return;
    };
    run_task_store_suite(&store, "pgct");
    store.drop_schema().await.unwrap();
}
