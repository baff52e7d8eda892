//! A scratch directory for the `dagger` binary's tests, shared (`#[path]`)
//! by the test files that run the binary on a SQLite store. Each file adds
//! its own `impl Sandbox` with the commands it needs (working directory,
//! environment).
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

/// The repository's root (workflows, fixtures and docs the tests read).
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A temporary directory, removed on drop.
pub(crate) struct Sandbox {
    /// The directory.
    pub(crate) dir: tempfile::TempDir,
}

impl Sandbox {
    /// A fresh directory.
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `name` inside the directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` (creating its parent directories).
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The SQLite store in the directory (`sqlite:<dir>/runs.db`).
    pub(crate) fn db(&self) -> String {
        format!("sqlite:{}", self.path("runs.db").display())
    }
}
