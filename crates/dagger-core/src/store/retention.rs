//! Retention: removing what finished long ago so a store's tables stay
//! bounded (`dagger gc`).

use crate::error::StoreError;
use serde::Serialize;

/// What a [`Retention::prune`] removed, or would remove in a dry run, per
/// kind of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Finished runs.
    pub runs: u64,
    /// Node records of those runs.
    pub node_runs: u64,
    /// Ended attempts of those runs.
    pub node_attempts: u64,
    /// Cache snapshots scoped to those runs.
    pub snapshots: u64,
    /// Artifacts that no remaining run references.
    pub artifacts: u64,
    /// Idempotency keys bound to those runs.
    pub run_keys: u64,
    /// Finished task jobs.
    pub task_jobs: u64,
    /// Tasks of those jobs.
    pub tasks: u64,
    /// Dependency edges of those tasks.
    pub task_dependencies: u64,
    /// Dead letters (failed-attempt errors) of those tasks.
    pub task_dead_letters: u64,
    /// Pub/Sub messages every subscriber has passed.
    pub messages: u64,
    /// Finished node work queue items (stores with a node queue).
    pub node_queue_items: u64,
}

impl PruneReport {
    /// Every count with its name, in report order.
    pub fn rows(&self) -> [(&'static str, u64); 12] {
        [
            ("runs", self.runs),
            ("node_runs", self.node_runs),
            ("node_attempts", self.node_attempts),
            ("snapshots", self.snapshots),
            ("artifacts", self.artifacts),
            ("run_keys", self.run_keys),
            ("task_jobs", self.task_jobs),
            ("tasks", self.tasks),
            ("task_dependencies", self.task_dependencies),
            ("task_dead_letters", self.task_dead_letters),
            ("messages", self.messages),
            ("node_queue_items", self.node_queue_items),
        ]
    }
}

/// Prunes records that finished before a cutoff.
#[async_trait::async_trait]
pub trait Retention: Send + Sync + 'static {
    /// Removes, in one transaction, what finished before `cutoff_ms`
    /// (milliseconds since the Unix epoch):
    ///
    /// - runs in a terminal status (`Completed`, `Failed`, `Cancelled`) that
    ///   finished before the cutoff, with their node records, attempts,
    ///   control requests, cache snapshots scoped to the run and idempotency
    ///   keys bound to them; the output artifacts of those runs that no
    ///   remaining run references. Runs that are pending, running, paused or
    ///   waiting are never touched, however old;
    /// - task jobs that ended (`Succeeded`, `Failed`, `Cancelled`) and were
    ///   last updated before the cutoff, with their tasks, dependency edges,
    ///   dead letters and per-status counts;
    /// - Pub/Sub messages published before the cutoff whose offset every
    ///   subscriber of the channel has committed; a channel without
    ///   subscribers keeps its messages, and each channel keeps its last
    ///   message so offsets keep counting from it;
    /// - finished node work queue items last updated before the cutoff,
    ///   and every item of a pruned run.
    ///
    /// A backend may keep an artifact stored again shortly before the prune
    /// began (Postgres: within 10 minutes), so that a run recording that
    /// same output meanwhile never points at a removed artifact.
    ///
    /// With `dry_run` nothing is removed and the report says what would be.
    async fn prune(&self, cutoff_ms: i64, dry_run: bool) -> Result<PruneReport, StoreError>;
}
