//! The writer commits in order and readers see committed rows.

use dagger_storage::{SqliteOptions, SqliteStore};

#[tokio::test]
async fn writes_commit_in_order_and_are_readable() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    store
        .write(|tx| {
            tx.execute_batch("CREATE TABLE t (i INTEGER PRIMARY KEY)")
                .map_err(|e| dagger_core::StoreError::Backend {
                    location: "t".into(),
                    message: e.to_string(),
                })
        })
        .await
        .unwrap();
    for i in 0..100i64 {
        store
            .submit(move |tx| {
                tx.execute("INSERT INTO t (i) VALUES (?1)", [i])
                    .map(|_| ())
                    .map_err(|e| dagger_core::StoreError::Backend {
                        location: "t".into(),
                        message: e.to_string(),
                    })
            })
            .unwrap();
    }
    store.flush().await.unwrap();
    let rows: Vec<i64> = store
        .read(|c| {
            let mut s = c.prepare("SELECT i FROM t ORDER BY i").unwrap();
            Ok(s.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect())
        })
        .await
        .unwrap();
    assert_eq!(rows, (0..100).collect::<Vec<_>>());
    store.integrity_check().await.unwrap();
}

#[test]
fn failing_job_does_not_undo_its_batch_neighbours() {
    let store = SqliteStore::open_blocking("sqlite::memory:", SqliteOptions::default()).unwrap();
    let map = |e: rusqlite::Error| dagger_core::StoreError::Backend {
        location: "t".into(),
        message: e.to_string(),
    };
    store
        .write_blocking(move |tx| {
            tx.execute_batch("CREATE TABLE u (k TEXT PRIMARY KEY)")
                .map_err(map)
        })
        .unwrap();
    store
        .submit(move |tx| {
            tx.execute("INSERT INTO u VALUES ('a')", [])
                .map(|_| ())
                .map_err(map)
        })
        .unwrap();
    let dup = store.write_blocking(move |tx| {
        tx.execute("INSERT INTO u VALUES ('a')", [])
            .map(|_| ())
            .map_err(map)
    });
    assert!(dup.is_err(), "primary key violation reported to its caller");
    store
        .submit(move |tx| {
            tx.execute("INSERT INTO u VALUES ('b')", [])
                .map(|_| ())
                .map_err(map)
        })
        .unwrap();
    let n: i64 = store
        .write_blocking(move |tx| {
            tx.query_row("SELECT count(*) FROM u", [], |r| r.get(0))
                .map_err(map)
        })
        .unwrap();
    assert_eq!(n, 2);
}
