//! A database on read-only media (a read-only bind mount when running as
//! root, as CI does; a write-protected directory otherwise; the tests print
//! why and pass when neither stops writes). Opening it read-only reads it
//! although SQLite cannot create the WAL index there (it said "unable to
//! open database file"); opening it for writing is `ReadOnly`, naming it.

mod common;

use common::conformance::run;
use dagger_core::store::RunStore;
use dagger_core::{RunId, RunStatus, StoreError};
use dagger_storage::{SqliteOptions, SqliteStore};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A read-only view of a directory: a read-only bind mount of it, or the
/// directory itself write-protected. Undone on drop.
struct ReadOnlyView {
    src: PathBuf,
    mnt: Option<tempfile::TempDir>,
}

impl ReadOnlyView {
    fn of(src: &Path) -> Result<Self, String> {
        let mnt = tempfile::tempdir().map_err(|e| e.to_string())?;
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(src)
            .arg(mnt.path())
            .status()
            .is_ok_and(|s| s.success());
        let view = if bind {
            let ro = Command::new("mount")
                .args(["-o", "remount,ro,bind"])
                .arg(mnt.path())
                .status()
                .is_ok_and(|s| s.success());
            let view = Self {
                src: src.to_path_buf(),
                mnt: Some(mnt),
            };
            if !ro {
                return Err("could not remount the bind mount read-only".into());
            }
            view
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(src, std::fs::Permissions::from_mode(0o555))
                .map_err(|e| e.to_string())?;
            Self {
                src: src.to_path_buf(),
                mnt: None,
            }
        };
        if std::fs::write(view.path().join("probe"), b"x").is_ok() {
            return Err("neither a read-only bind mount (needs root) nor chmod (ignored by root) stops writes here".into());
        }
        Ok(view)
    }

    fn path(&self) -> &Path {
        self.mnt.as_ref().map_or(&self.src, |m| m.path())
    }
}

impl Drop for ReadOnlyView {
    fn drop(&mut self) {
        if let Some(mnt) = &self.mnt {
            let _ = Command::new("umount").arg(mnt.path()).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.src, std::fs::Permissions::from_mode(0o755));
        }
    }
}

fn location(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

#[tokio::test]
async fn a_database_on_read_only_media_reads_and_refuses_writes_by_name() {
    let src = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(&location(&src.path().join("runs.db")))
            .await
            .unwrap();
        store
            .create_run(run("kept", "wf", RunStatus::Completed, 1))
            .await
            .unwrap();
    }
    let view = match ReadOnlyView::of(src.path()) {
        Ok(v) => v,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let path = view.path().join("runs.db");

    let read_only = SqliteOptions {
        read_only: true,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&location(&path), read_only)
        .await
        .expect("a read-only open works on read-only media");
    let kept = store.get_run(&RunId::from("kept")).await.unwrap();
    assert_eq!(kept.map(|r| r.workflow).as_deref(), Some("wf"));
    let listed = store.list_runs(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    drop(store);

    let err = SqliteStore::open(&location(&path)).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("database `{}` is read-only", location(&path))
    );
    // A new database there: the same.
    let fresh = view.path().join("fresh.db");
    let err = SqliteStore::open(&location(&fresh)).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
}
