//! Helpers shared by the integration tests.
// Each test binary uses a part of the helpers; the suite's functions are
// assertions, so they unwrap like `#[test]` functions do.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod conformance;

use dagger_storage::{SqliteOptions, SqliteStore};
use std::path::Path;

/// Opens `dir/name.db` with `options`.
pub(crate) fn open_in(dir: &Path, name: &str, options: SqliteOptions) -> SqliteStore {
    let location = format!("sqlite:{}", dir.join(name).display());
    SqliteStore::open_blocking(&location, options).unwrap()
}
