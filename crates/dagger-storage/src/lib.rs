//! The SQLite store of Dagger.
//!
//! [`SqliteStore`] implements the storage traits of `dagger-core` over one
//! SQLite file: WAL, a busy timeout, foreign keys, `PRAGMA user_version`
//! migrations, an r2d2 pool for readers and one writer thread that
//! group-commits batches of writes in submission order.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod artifacts;
pub mod error;
mod location;
mod migrations;
mod runs;
mod snapshots;
mod sqlite;
mod writer;

pub use artifacts::INLINE_LIMIT;
pub use dagger_core::store::Durability;
pub use error::Result;
pub use location::SqliteLocation;
pub use migrations::latest_version;
pub use sqlite::{SqliteOptions, SqliteStore};
