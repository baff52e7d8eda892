//! The SQLite MessageLog: dense offsets per channel, reads from an offset,
//! monotonic cursors, and everything survives reopening the file.

mod common;

use common::message_conformance::record;
use dagger_core::store::MessageLog;
use dagger_storage::SqliteStore;

#[tokio::test]
async fn appends_reads_and_cursors_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("log.db").display());
    {
        let store = SqliteStore::open(&location).await.unwrap();
        assert_eq!(
            store.append("a", vec![record(0), record(1)]).await.unwrap(),
            1
        );
        assert_eq!(store.append("b", vec![record(5)]).await.unwrap(), 1);
        assert_eq!(store.append("a", vec![record(2)]).await.unwrap(), 3);
        assert_eq!(
            store.append("a", Vec::new()).await.unwrap(),
            4,
            "empty batch: next offset"
        );
        store.commit("a", "sub", 2).await.unwrap();
        store.commit("a", "sub", 1).await.unwrap();
        store.flush().await.unwrap();
    }
    let store = SqliteStore::open(&location).await.unwrap();
    assert_eq!(store.last_offset("a").await.unwrap(), 3);
    assert_eq!(store.last_offset("none").await.unwrap(), 0);
    assert_eq!(store.channels().await.unwrap(), ["a", "b"]);
    assert_eq!(
        store.committed("a", "sub").await.unwrap(),
        Some(2),
        "cursor never moves back"
    );
    assert_eq!(store.committed("a", "other").await.unwrap(), None);
    let got = store.read_from("a", 2, 10).await.unwrap();
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [2, 3]);
    let mut expected = record(1);
    expected.offset = 2;
    expected.channel = "a".into();
    assert_eq!(got[0], expected, "every field round-trips");
    assert_eq!(store.read_from("a", 1, 1).await.unwrap().len(), 1);
    assert!(store.read_from("a", 4, 10).await.unwrap().is_empty());
}
