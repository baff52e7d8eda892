//! The `TaskStore` suite against every backend: in-memory, SQLite, Postgres.

mod common;

use common::task_conformance::{quiet_transactions_wake_only_when_needed, run_task_store_suite};
use dagger_core::store::MemoryStore;
use dagger_storage::{SqliteOptions, SqliteStore};

#[test]
fn memory_task_store() {
    run_task_store_suite(&MemoryStore::new(), "mem");
    quiet_transactions_wake_only_when_needed(&MemoryStore::new(), "mem");
}

#[test]
fn sqlite_task_store() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("tasks.db").display());
    let store = SqliteStore::open_blocking(&location, SqliteOptions::default()).unwrap();
    run_task_store_suite(&store, "sql");
    quiet_transactions_wake_only_when_needed(&store, "sql");
}

/// Handles of one process on one file queue for task transactions instead
/// of meeting on SQLite's lock: with no busy timeout at all, concurrent
/// transactions from two handles still all succeed.
#[test]
fn sqlite_handles_of_one_process_do_not_meet_on_the_lock() {
    use dagger_core::store::transact;
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("tasks.db").display());
    let options = SqliteOptions {
        busy_timeout: std::time::Duration::ZERO,
        ..SqliteOptions::default()
    };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = SqliteStore::open_blocking(&location, options).unwrap();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    transact(&store, |tx| tx.next_seq()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
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
