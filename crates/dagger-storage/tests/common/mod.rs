//! Helpers shared by the integration tests.
// Each test binary uses a part of the helpers; the suite's functions are
// assertions, so they unwrap like `#[test]` functions do.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod conformance;
pub(crate) mod message_conformance;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod retention;
pub(crate) mod task_conformance;

use dagger_storage::{SqliteOptions, SqliteStore};
use std::path::Path;

/// Opens `dir/name.db` with `options`.
pub(crate) fn open_in(dir: &Path, name: &str, options: SqliteOptions) -> SqliteStore {
    let location = format!("sqlite:{}", dir.join(name).display());
    SqliteStore::open_blocking(&location, options).unwrap()
}

/// A current-thread runtime with I/O and timers, for a worker run on a
/// thread of its own (as a worker process would have its own runtime).
pub(crate) fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
