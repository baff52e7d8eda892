//! Two handles of one file in one process take turns on the process-wide
//! task-write lock, whatever runtime the waiting one is on.

#![allow(clippy::unwrap_used)]

use dagger_core::store::TaskStore;
use dagger_storage::{SqliteOptions, SqliteStore};
use std::sync::{Arc, Barrier};

fn two_handles() -> (tempfile::TempDir, SqliteStore, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("t.db").display());
    let a = SqliteStore::open_blocking(&location, SqliteOptions::default()).unwrap();
    let b = SqliteStore::open_blocking(&location, SqliteOptions::default()).unwrap();
    (dir, a, b)
}

/// Holds a write transaction on `store` from another thread until the
/// returned barrier is passed a second time.
fn hold_write(store: SqliteStore) -> (Arc<Barrier>, std::thread::JoinHandle<()>) {
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    let holder = std::thread::spawn(move || {
        store
            .transact(&mut |tx| {
                tx.next_seq()?;
                b.wait(); // holding the lock
                b.wait(); // released by the test
                Ok(())
            })
            .unwrap();
    });
    barrier.wait();
    (barrier, holder)
}

/// Takes the contended lock from inside `rt` and returns the sequence
/// number it got, after releasing the holder a moment later.
fn contend(rt: tokio::runtime::Runtime) {
    let (_dir, a, b) = two_handles();
    let (barrier, holder) = hold_write(a);
    let release = std::thread::spawn(move || {
        // The waiter must be blocked on the lock, not merely started; a
        // short pause is the only way to let it get there.
        std::thread::sleep(std::time::Duration::from_millis(50));
        barrier.wait();
    });
    let seq = rt.block_on(async move {
        tokio::spawn(async move {
            let mut got = 0;
            b.transact(&mut |tx| {
                got = tx.next_seq()?;
                Ok(())
            })
            .unwrap();
            got
        })
        .await
        .unwrap()
    });
    release.join().unwrap();
    holder.join().unwrap();
    assert_eq!(seq, 2, "the waiter ran after the holder committed");
}

#[test]
fn a_waiter_on_a_current_thread_runtime_blocks_plainly() {
    // `block_in_place` would panic here.
    contend(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
}

#[test]
fn a_waiter_on_a_multi_thread_worker_hands_its_tasks_off() {
    contend(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
}
