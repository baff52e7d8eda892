//! Each storage failure is a typed error naming the database, and leaves the
//! database sound (`PRAGMA integrity_check` = ok).

mod common;

use common::conformance::{node, run};
use dagger_core::store::{ArtifactStore, Durability, RunStore};
use dagger_core::{NodeStatus, RunId, RunStatus, StoreError};
use dagger_storage::{SqliteOptions, SqliteStore, latest_version};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

fn location(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

/// `PRAGMA integrity_check` through a plain connection.
fn assert_sound(path: &Path) {
    let conn = Connection::open(path).expect("the database opens");
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check runs");
    assert_eq!(result, "ok");
}

/// A migrated database holding run `kept`.
async fn seeded(path: &Path) {
    let store = SqliteStore::open(&location(path)).await.expect("open");
    store
        .create_run(run("kept", "wf", RunStatus::Running, 1))
        .await
        .expect("seed run");
}

#[tokio::test]
async fn missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("runs.db");
    let err = SqliteStore::open(&location(&path)).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot open database `{}`: directory `{}` does not exist",
            location(&path),
            dir.path().join("no-such-dir").display()
        )
    );
}

#[tokio::test]
async fn directory_instead_of_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&location(dir.path())).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot open database `{0}`: `{1}` is a directory, not a database file",
            location(dir.path()),
            dir.path().display()
        )
    );
}

#[tokio::test]
async fn file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are not the pages you are looking for ".repeat(200),
    )
    .unwrap();
    let err = SqliteStore::open(&location(&path)).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot open database `{}`: file is not a database",
            location(&path)
        )
    );
}

fn read_only() -> SqliteOptions {
    SqliteOptions {
        read_only: true,
        ..SqliteOptions::default()
    }
}

#[tokio::test]
async fn read_only_database_reads_but_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    seeded(&path).await;

    let store = SqliteStore::open_with(&location(&path), read_only())
        .await
        .unwrap();
    let kept = store.get_run(&RunId::from("kept")).await.unwrap();
    assert_eq!(kept.map(|r| r.workflow).as_deref(), Some("wf"));

    let err = store
        .create_run(run("new", "wf", RunStatus::Pending, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("database `{}` is read-only", location(&path))
    );
    // A queued write reports the same error at the next flush.
    store
        .put_node_run(node("kept", "a", "", NodeStatus::Running))
        .await
        .unwrap();
    let err = RunStore::flush(&store).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    drop(store);

    assert_sound(&path);
    let store = SqliteStore::open(&location(&path)).await.unwrap();
    assert_eq!(store.get_run(&RunId::from("new")).await.unwrap(), None);
    assert!(
        store
            .node_runs(&RunId::from("kept"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn read_only_database_that_needs_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE unrelated (x)")
        .unwrap();
    let err = SqliteStore::open_with(&location(&path), read_only())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot open database `{}`: schema version 0 must be migrated to {}, but the database is opened read-only",
            location(&path),
            latest_version()
        )
    );
    assert_sound(&path);
}

fn short_busy_timeout() -> SqliteOptions {
    SqliteOptions {
        busy_timeout: Duration::from_millis(100),
        ..SqliteOptions::default()
    }
}

#[tokio::test]
async fn locked_by_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    seeded(&path).await;
    let store = SqliteStore::open_with(&location(&path), short_busy_timeout())
        .await
        .unwrap();

    let other = Connection::open(&path).unwrap();
    other
        .execute_batch(
            "BEGIN EXCLUSIVE; UPDATE flow_runs SET reason = 'other' WHERE run_id = 'kept';",
        )
        .unwrap();
    let err = store
        .create_run(run("blocked", "wf", RunStatus::Pending, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Locked { waited_ms: 100, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "database `{}` is locked by another process (waited 100 ms)",
            location(&path)
        )
    );
    // Readers are not blocked in WAL mode: they see the last commit.
    let kept = store.get_run(&RunId::from("kept")).await.unwrap().unwrap();
    assert_eq!(kept.reason, None);

    other.execute_batch("COMMIT").unwrap();
    store
        .create_run(run("after", "wf", RunStatus::Pending, 3))
        .await
        .unwrap();
    assert_eq!(store.get_run(&RunId::from("blocked")).await.unwrap(), None);
    store.integrity_check().await.unwrap();
}

#[tokio::test]
async fn locked_while_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let err = SqliteStore::open_with(&location(&path), short_busy_timeout())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Locked { waited_ms: 100, .. }),
        "{err:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    assert_sound(&path);
    SqliteStore::open(&location(&path)).await.unwrap();
}

#[tokio::test]
async fn full_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    seeded(&path).await;
    let pages: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let options = SqliteOptions {
        durability: Durability::Sync,
        max_page_count: Some(u64::try_from(pages).unwrap() + 2),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&location(&path), options)
        .await
        .unwrap();
    let big: Vec<u8> = (0..30_000u32).map(|i| (i % 253) as u8).collect();
    let err = store.put_artifact(big.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "database `{}` is full: no space left to write",
            location(&path)
        )
    );
    // What was there is intact and readable.
    assert!(store.get_run(&RunId::from("kept")).await.unwrap().is_some());
    store.integrity_check().await.unwrap();
    drop(store);

    assert_sound(&path);
    let store = SqliteStore::open(&location(&path)).await.unwrap();
    let id = store.put_artifact(big.clone()).await.unwrap();
    assert_eq!(store.get_artifact(&id).await.unwrap(), big);
}

#[tokio::test]
async fn newer_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    seeded(&path).await;
    let future = latest_version() + 5;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", future)
        .unwrap();
    let err = SqliteStore::open(&location(&path)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. }
            if found == future && supported == latest_version()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "database `{}` has schema version {future}, newer than the {} this build supports",
            location(&path),
            latest_version()
        )
    );
    let err = SqliteStore::open_with(&location(&path), read_only())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err:?}");
    assert_sound(&path);
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, future, "the newer database is left untouched");
}

/// Processes that open a file while another creates it, or closes it as its
/// last user, meet SQLite locks that do not wait for the busy timeout (the
/// switch to WAL, the last connection's checkpoint): opening retries them, so
/// stores opened together on a fresh file all open.
#[test]
fn stores_opened_together_on_a_fresh_file_all_open() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let path = dir.path().join(format!("race-{round}.db"));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let location = location(&path);
                std::thread::spawn(move || {
                    // Open and close twice: closing the last handle runs the
                    // final checkpoint that a concurrent open meets.
                    for _ in 0..2 {
                        SqliteStore::open_blocking(&location, SqliteOptions::default())?;
                    }
                    Ok::<(), StoreError>(())
                })
            })
            .collect();
        for t in threads {
            if let Err(e) = t.join().unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}
