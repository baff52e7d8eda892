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

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod artifacts;
mod attempts;
mod checkpoint;
pub mod error;
mod location;
mod message_log;
mod migrations;
#[cfg(feature = "postgres")]
pub mod postgres;
mod run_rows;
mod runs;
mod snapshots;
mod sqlite;
mod task_store;
mod writer;

pub use artifacts::INLINE_LIMIT;
pub use dagger_core::store::Durability;
pub use error::Result;
pub use location::SqliteLocation;
pub use migrations::latest_version;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "unstable-raw")]
pub use sqlite::ErrorMapper;
pub use sqlite::{SqliteOptions, SqliteStore};
