//! A real full disk: a tiny tmpfs (mounting needs root, as in CI; the tests
//! print why and pass when they cannot mount one). SQLite reports `ENOSPC`
//! as `SQLITE_FULL` only for some writes; growing the WAL index (`-shm`) on a
//! nearly full disk gave "disk I/O error" (`SQLITE_IOERR_SHMSIZE`) instead of
//! the documented `DiskFull`, on open and on write.

mod common;

use common::conformance::run;
use dagger_core::store::{ArtifactId, ArtifactStore, Durability, RunStore};
use dagger_core::{RunId, RunStatus, StoreError};
use dagger_storage::{SqliteOptions, SqliteStore};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a few hundred KiB mounted on a temporary directory, unmounted on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    /// Mounts a `kib` KiB tmpfs, or says why it cannot.
    fn mount(kib: u32) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run `mount`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`mount -t tmpfs` failed (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Fills the file system, then frees `leave` bytes of the filler.
    fn fill_leaving(&self, leave: u64) {
        let path = self.path("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let chunk = vec![0xa5u8; 4096];
        while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
        let len = std::fs::metadata(&path).unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn location(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

macro_rules! tiny_fs_or_skip {
    ($kib:expr) => {
        match TinyFs::mount($kib) {
            Ok(fs) => fs,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// A store at `path` that commits every write before answering.
async fn open_sync(path: &Path) -> SqliteStore {
    let options = SqliteOptions {
        durability: Durability::Sync,
        ..SqliteOptions::default()
    };
    SqliteStore::open_with(&location(path), options)
        .await
        .unwrap()
}

fn assert_full(err: &StoreError, path: &Path) {
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "database `{}` is full: no space left to write",
            location(path)
        )
    );
}

#[tokio::test]
async fn opening_a_new_database_on_a_full_disk_is_disk_full() {
    let fs = tiny_fs_or_skip!(256);
    fs.fill_leaving(0);
    let path = fs.path("runs.db");
    let err = SqliteStore::open(&location(&path)).await.unwrap_err();
    assert_full(&err, &path);
}

/// Room for the database's first page but not for the WAL index: SQLite
/// says `SQLITE_IOERR_SHMSIZE` ("disk I/O error") here.
#[tokio::test]
async fn opening_with_no_room_for_the_wal_index_is_disk_full() {
    let fs = tiny_fs_or_skip!(1024);
    fs.fill_leaving(8 * 1024);
    let path = fs.path("runs.db");
    let err = SqliteStore::open(&location(&path)).await.unwrap_err();
    assert_full(&err, &path);

    // Once there is room, the same file opens and works.
    fs.free();
    let store = SqliteStore::open(&location(&path)).await.unwrap();
    store
        .create_run(run("after", "wf", RunStatus::Pending, 1))
        .await
        .unwrap();
    store.integrity_check().await.unwrap();
}

#[tokio::test]
async fn writing_until_the_disk_is_full_is_disk_full_and_keeps_the_database_sound() {
    let fs = tiny_fs_or_skip!(2048);
    let path = fs.path("runs.db");
    let store = open_sync(&path).await;
    store
        .create_run(run("kept", "wf", RunStatus::Running, 1))
        .await
        .unwrap();
    fs.fill_leaving(16 * 1024);
    // Inline artifacts (under 32 KiB) go into the database file.
    let mut err = None;
    for i in 0..64u32 {
        let blob: Vec<u8> = (0..20_000u32).map(|j| ((i * 7 + j) % 251) as u8).collect();
        if let Err(e) = store.put_artifact(blob).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the disk fills up");
    assert_full(&err, &path);
    assert!(store.get_run(&RunId::from("kept")).await.unwrap().is_some());

    fs.free();
    store
        .create_run(run("after", "wf", RunStatus::Pending, 2))
        .await
        .unwrap();
    store.integrity_check().await.unwrap();
}

/// Artifacts of 32 KiB and more are files beside the database: a full disk
/// while writing one is `DiskFull` naming the database and the file, and
/// leaves neither the file nor its temporary copy behind.
#[tokio::test]
async fn an_artifact_file_that_does_not_fit_is_disk_full_naming_the_file() {
    let fs = tiny_fs_or_skip!(2048);
    let path = fs.path("runs.db");
    let store = open_sync(&path).await;
    fs.fill_leaving(64 * 1024);
    let blob: Vec<u8> = (0..256 * 1024u32).map(|j| (j % 251) as u8).collect();
    let file = store.artifact_path(&ArtifactId::of(&blob));

    let err = store.put_artifact(blob.clone()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::DiskFull { file: Some(f), .. } if *f == file.display().to_string()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "database `{}` is full: no space left to write `{}`",
            location(&path),
            file.display()
        )
    );
    assert!(!file.exists(), "a partial file under the final name");
    let shard = file.parent().unwrap();
    let left: Vec<_> = std::fs::read_dir(shard)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left behind: {left:?}");

    // Once there is room, the same artifact is written and reads back.
    fs.free();
    let id = store.put_artifact(blob.clone()).await.unwrap();
    assert_eq!(store.get_artifact(&id).await.unwrap(), blob);
}
