//! Errors of the coordinator.

use dagger_core::{RunStatus, StoreError};
use dagger_dag_flow::DagError;

/// Why a run could not be started or resumed. (How a run *ended* — failed,
/// cancelled, timed out — is in its report, not an error.)
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Loading or configuring the workflow failed.
    #[error(transparent)]
    Dag(#[from] DagError),
    /// Nodes name actions that are not registered; no node ran.
    #[error("unknown actions: {}", list(.0))]
    UnknownActions(Vec<(String, String)>),
    /// A run with this id exists already.
    #[error("run `{0}` already exists; use resume to continue it")]
    RunExists(String),
    /// No run with this id is recorded.
    #[error("run `{0}` not found")]
    RunNotFound(String),
    /// The run already finished; resuming it does nothing.
    #[error("run `{run_id}` already finished with status {status}; nothing to resume")]
    AlreadyFinished {
        /// The run.
        run_id: String,
        /// Its final status.
        status: RunStatus,
    },
    /// The recorded definition of a run cannot be read back.
    #[error("run `{run_id}`: recorded definition is unreadable: {reason}")]
    CorruptRun {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
    /// A node is not waiting for a human.
    #[error("run `{run_id}`: node `{node_id}` is not waiting for a human")]
    NotWaiting {
        /// The run.
        run_id: String,
        /// The node.
        node_id: String,
    },
    /// Another process owns the run and its lease is live: resuming it
    /// would run its nodes twice.
    #[error(
        "run `{run_id}` is owned by pid {pid} on host `{host}`, whose lease is live until {} \
         (it lapses {} s after its owner's last renewal); refusing to resume it: \
         a run has one owner. If that process is gone, resume once the lease lapsed",
        crate::ownership::format_time(*.lease_expires_at), .lease_secs
    )]
    RunOwned {
        /// The run.
        run_id: String,
        /// The owner's host.
        host: String,
        /// The owner's process id.
        pid: u32,
        /// When the owner's lease lapses unless renewed (ms since the epoch).
        lease_expires_at: i64,
        /// The lease length this process assumes (its own `with_run_lease`).
        lease_secs: f64,
    },
    /// Another process took the run over (this one's lease had lapsed, e.g.
    /// while it was frozen or cut off from the store); this process stopped
    /// the run without recording its end over the new owner's.
    #[error(
        "run `{run_id}` was taken over by another owner (fencing token {current}, ours {held}); \
         this process stopped it without recording its end"
    )]
    OwnershipLost {
        /// The run.
        run_id: String,
        /// This process's token.
        held: u64,
        /// The token that owns the run now.
        current: u64,
    },
    /// The store failed; the run stopped with its state as last recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(node, action)| format!("node `{node}` uses unknown action `{action}`"))
        .collect::<Vec<_>>()
        .join("; ")
}
