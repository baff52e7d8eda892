//! Artifact layout on disk, atomic writes, and typed errors for missing or
//! corrupted artifacts.

use dagger_core::StoreError;
use dagger_core::store::{ArtifactId, ArtifactStore};
use dagger_storage::{INLINE_LIMIT, SqliteStore};
use std::path::Path;

fn large(seed: u8) -> Vec<u8> {
    (0..INLINE_LIMIT + 1000)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).expect("artifact directory is listable") {
        let shard = shard.expect("artifact directory is listable").path();
        for f in std::fs::read_dir(&shard).expect("artifact directory is listable") {
            let f = f.expect("artifact directory is listable").path();
            out.push(
                f.strip_prefix(dir)
                    .expect("artifact directory is listable")
                    .display()
                    .to_string(),
            );
        }
    }
    out.sort();
    out
}

async fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(&format!("sqlite:{}", dir.join("a.db").display()))
        .await
        .expect("artifact directory is listable")
}

#[tokio::test]
async fn large_artifacts_are_files_small_ones_inline() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    assert_eq!(store.artifact_dir(), dir.path().join("a.db.artifacts"));

    let small = vec![7u8; INLINE_LIMIT - 1];
    let small_id = store.put_artifact(small.clone()).await.unwrap();
    assert!(
        !store.artifact_path(&small_id).exists(),
        "under 32 KiB stays inline"
    );

    let big = large(1);
    let id = store.put_artifact(big.clone()).await.unwrap();
    let path = store.artifact_path(&id);
    let hex = id.as_str();
    assert_eq!(
        path,
        store.artifact_dir().join(&hex[..2]).join(hex),
        "sharded by the first two hex digits"
    );
    assert_eq!(std::fs::read(&path).unwrap(), big);
    // Storing it again writes nothing new, and no temporary file is left.
    store.put_artifact(big.clone()).await.unwrap();
    assert_eq!(
        files_under(store.artifact_dir()),
        [format!("{}/{hex}", &hex[..2])]
    );
    assert_eq!(store.get_artifact(&id).await.unwrap(), big);
    assert_eq!(store.get_artifact(&small_id).await.unwrap(), small);
}

#[tokio::test]
async fn missing_artifact_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let id = store.put_artifact(large(2)).await.unwrap();
    let path = store.artifact_path(&id);
    std::fs::remove_file(&path).unwrap();
    let err = store.get_artifact(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::MissingArtifact { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "artifact {id} is missing (expected at `{}`)",
            path.display()
        )
    );
}

#[tokio::test]
async fn corrupted_artifact_file_is_detected_and_repaired_by_a_new_put() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let bytes = large(3);
    let id = store.put_artifact(bytes.clone()).await.unwrap();
    let path = store.artifact_path(&id);

    // Same length, one flipped byte: only the hash can tell.
    let mut flipped = bytes.clone();
    flipped[100] ^= 0xff;
    std::fs::write(&path, &flipped).unwrap();
    let err = store.get_artifact(&id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "artifact {id} at `{}` is corrupted: content hashes to {}",
            path.display(),
            ArtifactId::of(&flipped)
        )
    );

    // Truncated.
    std::fs::write(&path, &bytes[..10]).unwrap();
    let err = store.get_artifact(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::CorruptArtifact { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "artifact {id} at `{}` is corrupted: 10 bytes instead of the {} recorded",
            path.display(),
            bytes.len()
        )
    );

    // Putting the same content again rewrites the damaged file.
    store.put_artifact(bytes.clone()).await.unwrap();
    assert_eq!(store.get_artifact(&id).await.unwrap(), bytes);
}

#[tokio::test]
async fn corrupted_inline_artifact_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let id = store.put_artifact(b"small output".to_vec()).await.unwrap();
    store.flush().await.unwrap();
    let key = id.to_string();
    store
        .write(move |tx| {
            tx.execute(
                "UPDATE artifacts SET inline_data = X'00' WHERE artifact_id = ?1",
                [key],
            )
            .map(drop)
            .map_err(|e| StoreError::Conflict(e.to_string()))
        })
        .await
        .unwrap();
    let err = store.get_artifact(&id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "artifact {id} at `{} (inline)` is corrupted: 1 bytes instead of the 12 recorded",
            store.location()
        )
    );
}

#[tokio::test]
async fn unwritable_artifact_directory_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the artifact directory should be.
    std::fs::write(dir.path().join("a.db.artifacts"), b"in the way").unwrap();
    let store = open(dir.path()).await;
    let bytes = large(4);
    let id = ArtifactId::of(&bytes);
    let err = store.put_artifact(bytes).await.unwrap_err();
    let shard = store.artifact_dir().join(&id.as_str()[..2]);
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("creating directory `{}`: ", shard.display())),
        "{err}"
    );
    // Nothing was recorded for it.
    assert!(matches!(
        store.get_artifact(&id).await.unwrap_err(),
        StoreError::MissingArtifact { .. }
    ));
    store.integrity_check().await.unwrap();
}
