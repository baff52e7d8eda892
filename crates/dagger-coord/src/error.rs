//! Errors of the coordinator.

use crate::report::DagExecutionReport;
use dagger_core::{NodeStatus, RunStatus, StoreError};
use dagger_dag_flow::DagError;

/// Why a run could not be started or resumed. (How a run *ended* — failed,
/// cancelled, timed out — is in its report, not an error, until the report
/// is turned into one with [`crate::DagExecutionReport::into_result`]:
/// [`CoordError::RunFailed`].)
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The run ran but did not complete (see [`RunFailed`]).
    #[error(transparent)]
    RunFailed(#[from] RunFailed),
    /// Loading or configuring the workflow failed.
    #[error(transparent)]
    Dag(#[from] DagError),
    /// Nodes name actions that are not registered; no node ran.
    #[error("unknown actions: {}", list(.0))]
    UnknownActions(Vec<(String, String)>),
    /// The task running a started run ended without a report (it panicked
    /// or its runtime shut down).
    #[error("the run's task ended without a report: {0}")]
    RunTask(String),
    /// A run with this id exists already.
    #[error("run `{0}` already exists; use resume to continue it")]
    RunExists(String),
    /// The start's idempotency key already names run `run_id` of the
    /// workflow, so no run was started (see [`crate::KeyPolicy`]); the
    /// caller's answer is that run ([`CoordError::existing_run`]).
    #[error("idempotency key `{key}` names run `{run_id}`; no new run started")]
    AlreadyStarted {
        /// The key.
        key: String,
        /// The run it names.
        run_id: String,
    },
    /// A schedule cannot fire as written (bad cron expression, time zone,
    /// duration, or a name given twice).
    #[error(transparent)]
    Schedule(#[from] dagger_dag_flow::ScheduleError),
    /// No schedule has this name.
    #[error("no schedule named `{0}`")]
    UnknownSchedule(String),
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
    /// A node is not waiting for a human, so it cannot be approved or
    /// rejected (an approval before the node waits is refused).
    #[error("node `{node_id}` of run `{run_id}` is not waiting for a human (it is {status})")]
    NotWaiting {
        /// The run.
        run_id: String,
        /// The node.
        node_id: String,
        /// What it is instead.
        status: NodeStatus,
    },
    /// The run has no node with this id.
    #[error("run `{run_id}` has no node `{node_id}`{}", suggest(.suggestion))]
    NodeNotFound {
        /// The run.
        run_id: String,
        /// The node asked for.
        node_id: String,
        /// The run's node id closest to it, if one is close.
        suggestion: Option<String>,
    },
    /// The run already ended; there is nothing to cancel, approve or reject.
    #[error("run `{run_id}` already ended ({status}); there is nothing to {what}")]
    RunEnded {
        /// The run.
        run_id: String,
        /// Its final status.
        status: RunStatus,
        /// What was asked: `cancel`, `approve node `x`` ...
        what: String,
    },
    /// A signal's payload does not match the schema of the node that waits
    /// for it (`wait_for.schema`); nothing was stored.
    #[error("run `{run_id}`: node `{node_id}` refused signal `{signal}`: {message}")]
    SignalRejected {
        /// The run.
        run_id: String,
        /// The node whose schema refused it.
        node_id: String,
        /// The signal.
        signal: String,
        /// What the schema found wrong.
        message: String,
    },
    /// No node of the run waits for a signal of this name (`wait_for.signal`);
    /// nothing was stored.
    #[error("run `{run_id}` has no node that waits for signal `{signal}`")]
    NoSignalWait {
        /// The run.
        run_id: String,
        /// The signal.
        signal: String,
    },
    /// Another approval or rejection of the node was recorded first; the
    /// first decision recorded wins.
    #[error(
        "node `{node_id}` of run `{run_id}` was already {decision} at {at}; the first decision recorded wins"
    )]
    AlreadyDecided {
        /// The run.
        run_id: String,
        /// The node.
        node_id: String,
        /// The earlier decision: `approved` or `rejected: <reason>`.
        decision: String,
        /// When it was recorded (RFC 3339, UTC).
        at: String,
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

/// A run that ran but did not complete (failed, cancelled, paused or
/// waiting for a human), from [`crate::DagExecutionReport::into_result`].
/// Displays as ``run `ID` (workflow `W`) ended STATUS: REASON; node `N`
/// failed: ERROR``.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailed {
    /// The run's report.
    pub report: Box<DagExecutionReport>,
}

impl CoordError {
    /// The run an idempotent start answered with instead of starting one
    /// ([`CoordError::AlreadyStarted`]); `None` for every other error.
    pub fn existing_run(&self) -> Option<&str> {
        match self {
            Self::AlreadyStarted { run_id, .. } => Some(run_id),
            _ => None,
        }
    }
}

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.report;
        write!(
            f,
            "run `{}` (workflow `{}`) ended {}",
            r.run_id, r.dag_name, r.status
        )?;
        if let Some(reason) = &r.reason {
            write!(f, ": {reason}")?;
        }
        if let Some(n) = r.first_failure() {
            write!(f, "; node `{}` failed", n.id)?;
            if let Some(e) = &n.error {
                write!(f, ": {e}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for RunFailed {}

fn suggest(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

fn list(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(node, action)| format!("node `{node}` uses unknown action `{action}`"))
        .collect::<Vec<_>>()
        .join("; ")
}
