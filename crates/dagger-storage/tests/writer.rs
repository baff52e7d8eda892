//! The group-commit writer: reads see accepted writes, replies match what is
//! on disk even when a batch fails, and concurrent readers always see a
//! prefix of the submitted writes.

mod common;

use common::conformance::{node, run};
use dagger_core::store::{Durability, RunStore};
use dagger_core::{NodeStatus, RunId, RunStatus, StoreError};
use dagger_storage::{SqliteOptions, SqliteStore};
use rusqlite::Connection;
use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Waker};

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Io {
        context: "test statement".into(),
        source: std::io::Error::other(e),
    }
}

fn create_table(store: &SqliteStore) {
    store
        .write_blocking(|tx| {
            tx.execute_batch("CREATE TABLE IF NOT EXISTS seq (i INTEGER PRIMARY KEY, pad BLOB)")
                .map_err(backend)
        })
        .expect("writer helper");
}

/// Blocks the writer thread inside a job until the returned sender is used,
/// so that the jobs queued meanwhile are committed together as one batch.
fn hold_writer(store: &SqliteStore) -> mpsc::Sender<()> {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    store
        .submit(move |_| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Ok(())
        })
        .expect("writer helper");
    started_rx.recv().expect("writer helper");
    release_tx
}

/// Polls a future once so that it queues its job, without waiting for it.
fn queue<F: Future>(fut: std::pin::Pin<&mut F>) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.poll(&mut cx).is_pending(), "queued, not yet committed");
}

#[tokio::test]
async fn reads_see_writes_queued_before_them() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    store
        .create_run(run("r", "wf", RunStatus::Running, 1))
        .await
        .unwrap();
    let release = hold_writer(&store);
    for i in 0..50 {
        let id = format!("n{i:03}");
        store
            .put_node_run(node("r", &id, "", NodeStatus::Completed))
            .await
            .unwrap();
    }
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.node_runs(&RunId::from("r")).await })
    };
    release.send(()).unwrap();
    let rows = reader.await.unwrap().unwrap();
    assert_eq!(rows.len(), 50, "the read waited for the queued writes");
}

#[tokio::test]
async fn replies_match_the_disk_when_a_batch_member_fills_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let location = format!("sqlite:{}", path.display());
    let setup = SqliteStore::open(&location).await.unwrap();
    create_table(&setup);
    drop(setup);
    let pages: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let store = SqliteStore::open_with(
        &location,
        SqliteOptions {
            max_page_count: Some(u64::try_from(pages).unwrap() + 3),
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();

    let insert = |i: i64, pad: usize| {
        let mapper = store.clone();
        store.write(move |tx| {
            tx.execute(
                "INSERT INTO seq (i, pad) VALUES (?1, zeroblob(?2))",
                rusqlite::params![i, pad as i64],
            )
            .map(drop)
            .map_err(|e| mapper.map_err(e))
        })
    };
    let release = hold_writer(&store);
    let mut before = pin!(insert(1, 10));
    let mut too_big = pin!(insert(2, 1_000_000));
    let mut after = pin!(insert(3, 10));
    queue(before.as_mut());
    queue(too_big.as_mut());
    queue(after.as_mut());
    release.send(()).unwrap();

    let err = too_big.await.unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    let before = before.await;
    let after = after.await;
    let on_disk: Vec<i64> = store
        .read(|c| {
            let mut s = c.prepare("SELECT i FROM seq ORDER BY i").map_err(backend)?;
            let rows = s.query_map([], |r| r.get(0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
        .unwrap();
    // Whether SQLite undid only the statement or the whole transaction,
    // a job reports success exactly when its row is on disk.
    for (i, result) in [(1, &before), (3, &after)] {
        match result {
            Ok(()) => assert!(on_disk.contains(&i), "row {i} acknowledged but missing"),
            Err(e) => {
                assert!(matches!(e, StoreError::DiskFull { .. }), "row {i}: {e:?}");
                assert!(!on_disk.contains(&i), "row {i} failed but is on disk");
            }
        }
    }
    assert!(!on_disk.contains(&2));
    store.integrity_check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_see_a_growing_prefix() {
    const ROWS: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("c.db").display());
    let store = SqliteStore::open_with(
        &location,
        SqliteOptions {
            durability: Durability::Batched,
            max_readers: 4,
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    store
        .create_run(run("r", "wf", RunStatus::Running, 1))
        .await
        .unwrap();

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..ROWS {
                let id = format!("n{i:05}");
                store
                    .put_node_run(node("r", &id, "", NodeStatus::Completed))
                    .await
                    .unwrap();
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            RunStore::flush(&store).await.unwrap();
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut last = 0;
                let mut reads = 0;
                while last < ROWS {
                    let rows = store.node_runs(&RunId::from("r")).await.unwrap();
                    for (i, r) in rows.iter().enumerate() {
                        assert_eq!(r.node_id.as_str(), format!("n{i:05}"), "a prefix");
                    }
                    assert!(rows.len() >= last, "committed rows never disappear");
                    last = rows.len();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    writer.await.unwrap();
    for r in readers {
        assert!(r.await.unwrap() >= 1);
    }
    store.integrity_check().await.unwrap();
}

#[test]
fn a_write_job_may_read_through_the_pool() {
    let store = SqliteStore::open_blocking("sqlite::memory:", SqliteOptions::default()).unwrap();
    create_table(&store);
    let (done_tx, done_rx) = mpsc::channel();
    let worker = {
        let store = store.clone();
        std::thread::spawn(move || {
            store
                .submit(|tx| {
                    tx.execute("INSERT INTO seq (i) VALUES (1)", [])
                        .map(drop)
                        .map_err(backend)
                })
                .unwrap();
            let reader = store.clone();
            // Runs on the writer thread while it has unfinished jobs: the
            // read must not wait for the writer (itself).
            let seen = store.write_blocking(move |_| {
                reader.read_blocking(|c| {
                    c.query_row("SELECT count(*) FROM seq", [], |r| r.get::<_, i64>(0))
                        .map_err(backend)
                })
            });
            let _ = done_tx.send(seen);
        })
    };
    let seen = done_rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("no deadlock");
    // The pool sees the last commit, which does not yet include this batch.
    assert!(matches!(seen, Ok(0 | 1)), "{seen:?}");
    worker.join().unwrap();
}

/// Queued jobs hold store handles (their closures map errors with
/// `store.map_err`), so the last handle can be dropped on the writer thread
/// itself; the batch must still commit.
#[tokio::test]
async fn queued_writes_survive_dropping_every_handle() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("d.db").display());
    for round in 0..5 {
        let store = SqliteStore::open(&location).await.unwrap();
        let run_id = format!("r{round}");
        store
            .create_run(run(&run_id, "wf", RunStatus::Running, 1))
            .await
            .unwrap();
        for i in 0..200 {
            store
                .put_node_run(node(
                    &run_id,
                    &format!("n{i:03}"),
                    "",
                    NodeStatus::Completed,
                ))
                .await
                .unwrap();
        }
        drop(store);
        let reopened = SqliteStore::open(&location).await.unwrap();
        let rows = reopened.node_runs(&RunId::from(run_id)).await.unwrap();
        assert_eq!(rows.len(), 200, "round {round}");
    }
}

#[test]
fn a_job_may_drop_the_last_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.db");
    let store = SqliteStore::open_blocking(
        &format!("sqlite:{}", path.display()),
        SqliteOptions::default(),
    )
    .unwrap();
    create_table(&store);
    let (inside_tx, inside_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let captured = store.clone();
    store
        .submit(move |tx| {
            inside_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            tx.execute("INSERT INTO seq (i) VALUES (7)", [])
                .map(drop)
                .map_err(|e| captured.map_err(e))
            // `captured`, now the last handle, is dropped here, on the writer thread.
        })
        .unwrap();
    inside_rx.recv().unwrap();
    drop(store);
    go_tx.send(()).unwrap();

    // Waits for the old writer's transaction to end, then looks.
    let conn = Connection::open(&path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM seq WHERE i = 7", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        n, 1,
        "the batch committed although its job dropped the store"
    );
}
