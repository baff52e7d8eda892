//! Storage traits. Each is small and capability-shaped; the SQLite store
//! (`dagger-storage`), the Postgres store and the in-memory store in
//! [`memory`] implement them. Paradigm crates depend only on these traits.

mod artifact;
pub mod memory;
mod run;
mod snapshot;

pub use artifact::{ArtifactId, ArtifactStore};
pub use memory::MemoryStore;
pub use run::{ControlRequest, NodeRunRecord, RunQuery, RunRecord, RunStore, RunUpdate};
pub use snapshot::{CacheSnapshotStore, SnapshotEntry};

/// How hard a store works to keep a write before acknowledging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Nothing is written to disk (an in-memory database).
    Memory,
    /// Writes are group-committed with `synchronous=NORMAL`; a write returns
    /// once queued, in order, so what survives a crash is a prefix of what was
    /// written.
    #[default]
    Batched,
    /// Every write returns only after its group's commit with `synchronous=FULL`.
    Sync,
}
