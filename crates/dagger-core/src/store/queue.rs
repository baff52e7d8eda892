//! The node work queue: how a coordinator hands ready DAG nodes' attempts to
//! a pool of worker processes.
//!
//! The coordinator keeps everything that needs the run's state (input
//! resolution, schemas, memoization, recording, retries, timeouts) and
//! enqueues one [`NodeWorkItem`] per attempt: the action's name, its
//! resolved inputs and the idempotency key. A worker claims items for the
//! actions it has, under a lease with a fencing token (the number of claims
//! so far); it renews the lease while the action runs and completes the item
//! with the result. A lease that is not renewed expires and the item can be
//! claimed again by another worker; a completion or renewal carrying an old
//! token is rejected with [`StoreError::StaleToken`], so at most one result
//! per item is ever accepted. Execution is at-least-once: actions with side
//! effects use the idempotency key.

use super::AttemptLogs;
use crate::error::StoreError;
use crate::ids::{NodeId, RunId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// One attempt of one node (or fan-out invocation), as a worker needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeWorkItem {
    /// Unique per attempt: `run/node/invocation/attempt` (see [`NodeWorkItem::id_for`]).
    pub item_id: String,
    /// The workflow's name.
    pub dag_name: String,
    /// The run.
    pub run_id: RunId,
    /// The node.
    pub node_id: NodeId,
    /// `""` for a plain node; the element's index for a fan-out invocation.
    pub invocation_key: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// The action to run; only workers that have it claim the item.
    pub action: String,
    /// The resolved inputs by name.
    pub inputs: Map<String, Value>,
    /// Stable across attempts: `run/node/invocation`.
    pub idempotency_key: String,
    /// Per-attempt time limit the worker applies too (the coordinator
    /// enforces it regardless).
    pub timeout_ms: Option<u64>,
    /// The W3C `traceparent` of the coordinator's attempt span, so that the
    /// worker's span joins the run's trace (set when traces are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl NodeWorkItem {
    /// The item id of an attempt: the idempotency key and the attempt number.
    pub fn id_for(idempotency_key: &str, attempt: u32) -> String {
        format!("{idempotency_key}/{attempt}")
    }
}

/// A claimed item: the work, the fencing token and when the lease ends.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeClaim {
    /// The work.
    pub item: NodeWorkItem,
    /// Present it when renewing and completing.
    pub token: u64,
    /// When the lease ends (ms since the epoch) unless renewed.
    pub lease_expires_at: i64,
}

/// How an item ended on the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeResult {
    /// The action returned an output (which may itself report failure).
    Output {
        /// The outputs.
        outputs: Value,
        /// The action's success flag.
        success: bool,
        /// The output's metadata (token usage, branches).
        metadata: Map<String, Value>,
        /// What the action wrote (log lines, captured streams), for the
        /// attempt's record.
        #[serde(default, skip_serializing_if = "AttemptLogs::is_empty")]
        logs: AttemptLogs,
    },
    /// The action returned an error (or timed out on the worker).
    Error {
        /// The error's text.
        message: String,
        /// Whether retrying cannot help.
        permanent: bool,
        /// What the action wrote before it failed.
        #[serde(default, skip_serializing_if = "AttemptLogs::is_empty")]
        logs: AttemptLogs,
    },
}

/// A queue of node attempts shared by a coordinator and worker processes.
/// Implemented by the in-memory [`super::MemoryNodeQueue`] and the Postgres store.
#[async_trait::async_trait]
pub trait NodeQueue: Send + Sync + 'static {
    /// Adds an item (replacing an unfinished item with the same id) and
    /// wakes idle workers.
    async fn enqueue(&self, item: NodeWorkItem) -> Result<(), StoreError>;

    /// Claims up to `limit` items whose action is one of `actions`, oldest
    /// first: items never claimed and items whose lease has expired. Each
    /// claim increments the item's token and leases it to `worker` for `lease`.
    async fn claim(
        &self,
        worker: &str,
        actions: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<NodeClaim>, StoreError>;

    /// Extends the lease of a claim; returns the new expiry. A token that is
    /// no longer current gives [`StoreError::StaleToken`]; an item that was
    /// cancelled or finished gives [`StoreError::NotFound`] or `StaleToken`.
    async fn renew(&self, item_id: &str, token: u64, lease: Duration) -> Result<i64, StoreError>;

    /// Records the result of a claim and wakes the waiting coordinator.
    /// Rejected like [`NodeQueue::renew`] when the token is not current.
    async fn complete(
        &self,
        item_id: &str,
        token: u64,
        result: NodeResult,
    ) -> Result<(), StoreError>;

    /// Withdraws an item (the node timed out, was cancelled or its run
    /// ended): a worker running it sees its next renewal rejected, and its
    /// completion is rejected. Cancelling an unknown item is not an error.
    async fn cancel(&self, item_id: &str) -> Result<(), StoreError>;

    /// Withdraws every item of `run_id`, as [`NodeQueue::cancel`] does one;
    /// returns how many there were. A coordinator resuming a run calls it
    /// first, so attempts a dead coordinator handed out stop instead of
    /// running for nobody.
    async fn cancel_run(&self, run_id: &str) -> Result<u64, StoreError>;

    /// Waits until the item has a result, takes it and removes the item.
    /// Errors with [`StoreError::NotFound`] when the item was cancelled or
    /// never enqueued. Cancel-safe: dropping the future loses nothing.
    async fn wait_result(&self, item_id: &str) -> Result<NodeResult, StoreError>;

    /// Bumped when items become claimable (enqueued); idle workers wait on
    /// it instead of polling. Expired leases raise no signal: workers also
    /// look again after a lease period.
    fn work_signal(&self) -> tokio::sync::watch::Receiver<u64>;

    /// A human-readable location, for messages.
    fn location(&self) -> String;
}
