//! Storage traits. Each is small and capability-shaped; the SQLite store
//! (`dagger-storage`), the Postgres store and the in-memory store in
//! [`memory`] implement them. Paradigm crates depend only on these traits.

mod artifact;
mod attempt;
mod attempt_list;
pub mod memory;
mod memory_queue;
mod message;
mod queue;
mod retention;
mod run;
mod schedule;
mod snapshot;
mod task;

pub use artifact::{ArtifactId, ArtifactStore};
pub use attempt::{
    AttemptLogs, AttemptOutcome, AttemptQuery, AttemptRecord, LOG_LIMIT, LogSink, STREAM_LIMIT,
    bound_text, sort_attempts,
};
pub use attempt_list::{add_final_successes, list_attempts};
pub use memory::MemoryStore;
pub use memory_queue::MemoryNodeQueue;
pub use message::{MessageLog, MessageRecord};
pub use queue::{NodeClaim, NodeQueue, NodeResult, NodeWorkItem};
pub use retention::{PruneReport, Retention};
pub use run::{
    ControlRequest, KeyedCreate, NodeRunRecord, RunClaim, RunLineage, RunOwner, RunQuery,
    RunRecord, RunStore, RunUpdate, SignalRecord, decision_conflict, stale_run_token,
};
pub use schedule::{ScheduleRecord, ScheduleStore};
pub use snapshot::{CacheSnapshotStore, SnapshotEntry};
pub use task::{
    AttemptError, BreakerRecord, BreakerState, JobCounts, JobRecord, TaskRecord, TaskStore, TaskTx,
    TaskType, read, transact,
};

/// The stores a DAG Flow executor records runs in, bundled. Any backend that
/// implements the traits converts into it (`From<Arc<MemoryStore>>` here,
/// `From<SqliteStore>` in `dagger-storage`).
#[derive(Clone)]
pub struct Stores {
    /// Runs, node runs and control requests.
    pub runs: std::sync::Arc<dyn RunStore>,
    /// Node outputs and other blobs.
    pub artifacts: std::sync::Arc<dyn ArtifactStore>,
    /// Cache snapshots and deltas.
    pub snapshots: std::sync::Arc<dyn CacheSnapshotStore>,
    /// Schedule state shared by every scheduler of the store (paused
    /// overrides, schedules added to the store).
    pub schedules: std::sync::Arc<dyn ScheduleStore>,
    /// How writes are kept; [`Durability::Memory`] skips recording entirely.
    pub durability: Durability,
    /// A human-readable location (`sqlite:path`, `memory`), for messages.
    pub location: String,
}

impl Stores {
    /// Fresh in-memory stores that record nothing (the fastest path).
    ///
    /// To leave one run unrecorded, prefer the run option
    /// (`RunRequest::record(false)` in `dagger-coord`); an executor built on
    /// these stores (`Durability::Memory`) records none of its runs, which
    /// keeps working.
    pub fn memory() -> Self {
        let mut s = Self::from(std::sync::Arc::new(MemoryStore::new()));
        s.durability = Durability::Memory;
        s
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("location", &self.location)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl From<std::sync::Arc<MemoryStore>> for Stores {
    /// In-memory stores that do record runs (so they can be inspected and resumed in-process).
    fn from(store: std::sync::Arc<MemoryStore>) -> Self {
        Self {
            runs: store.clone(),
            artifacts: store.clone(),
            snapshots: store.clone(),
            schedules: store,
            durability: Durability::Batched,
            location: "memory".to_string(),
        }
    }
}

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
