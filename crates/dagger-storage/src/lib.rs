//! The SQLite store of Dagger.
//!
//! [`SqliteStore`] implements the storage traits of `dagger-core` over one
//! SQLite file: WAL, a busy timeout, foreign keys, `PRAGMA user_version`
//! migrations, an r2d2 pool for readers and one writer thread that
//! group-commits batches of writes in submission order.
//!
//! It implements [`dagger_core::store::RunStore`],
//! [`dagger_core::store::ArtifactStore`] (BLAKE3-addressed, inline under
//! [`INLINE_LIMIT`], files above) and [`dagger_core::store::CacheSnapshotStore`];
//! [`SqliteStore::stores`] bundles them for a DAG Flow executor. Schema,
//! durability modes, artifact layout, errors and backups are described in
//! `docs/storage.md`.
//!
//! No rusqlite or postgres type is part of the public API: the methods that
//! run closures over a raw connection or transaction
//! (`SqliteStore::read`/`write`/`submit`, `ErrorMapper`) are public only
//! with the unstable `unstable-raw` feature, which this crate's own tests
//! and benches enable.

//! The code is laid out by backend: `sqlite/` and `postgres/` are sibling
//! modules implementing the same traits, and `rows/` is the one row codec
//! both use (the row <-> record mapping: statuses, JSON columns, timestamps,
//! ids), so a record reads back the same from either database.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
#[cfg(feature = "postgres")]
pub mod postgres;
mod prune;
mod rows;
mod sqlite;

pub use dagger_core::store::Durability;
pub use error::Result;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "unstable-raw")]
pub use sqlite::ErrorMapper;
pub use sqlite::artifacts::INLINE_LIMIT;
pub use sqlite::location::SqliteLocation;
pub use sqlite::migrations::latest_version;
pub use sqlite::{SqliteOptions, SqliteStore};
