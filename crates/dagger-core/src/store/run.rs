use super::artifact::{ArtifactId, ArtifactStore};
use crate::error::StoreError;
use crate::ids::{NodeId, RunId};
use crate::status::{NodeStatus, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One DAG Flow run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: RunId,
    /// The workflow's name.
    pub workflow: String,
    /// A snapshot of the workflow definition as JSON, including nodes added
    /// at run time, so a resumed run is not confused by an edited file.
    pub definition: Value,
    /// The run's inputs (`inputs.<key>` references resolve here).
    pub inputs: Value,
    /// The effective configuration of the run.
    pub config: Value,
    /// The run's status.
    pub status: RunStatus,
    /// Why the run ended as it did (failure, cancel, budget), when it did.
    pub reason: Option<String>,
    /// When the run was created (ms since the epoch).
    pub created_at: i64,
    /// When the run last changed (ms since the epoch).
    pub updated_at: i64,
    /// When the run finished (ms since the epoch).
    pub finished_at: Option<i64>,
}

/// A partial update of a [`RunRecord`]; `None` fields are left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUpdate {
    /// New status.
    pub status: Option<RunStatus>,
    /// New reason (use `Some(None)` to clear it).
    pub reason: Option<Option<String>>,
    /// New definition snapshot (after the graph grew).
    pub definition: Option<Value>,
    /// New finish time.
    pub finished_at: Option<Option<i64>>,
}

/// Filters for listing runs. Results are newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// At most this many runs (`None`: all).
    pub limit: Option<usize>,
    /// Skip this many runs first.
    pub offset: usize,
}

/// One execution (invocation) of one node in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRunRecord {
    /// The run.
    pub run_id: RunId,
    /// The node.
    pub node_id: NodeId,
    /// Distinguishes the invocations of a fanned-out node (`""` for a plain node).
    pub invocation_key: String,
    /// The action the node runs.
    pub action: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// The node's state.
    pub state: NodeStatus,
    /// Hash of the resolved inputs (for memoization).
    pub input_hash: Option<String>,
    /// Where the output is stored.
    pub output_artifact_id: Option<ArtifactId>,
    /// The error or skip/cancel reason.
    pub error: Option<String>,
    /// Start of the current attempt (ms since the epoch).
    pub started_at: Option<i64>,
    /// End of the node (ms since the epoch).
    pub finished_at: Option<i64>,
    /// Free-form metadata (tokens, cache hit, prompt of a human wait...).
    pub metadata: Value,
}

/// A request to a running (or stopped) run from outside its process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Stop the run, cancelling running nodes.
    Cancel {
        /// Why.
        reason: String,
    },
    /// Approve a node waiting for a human, with optional input.
    Approve {
        /// The waiting node.
        node_id: NodeId,
        /// Input given by the human.
        input: Option<Value>,
    },
    /// Reject a node waiting for a human.
    Reject {
        /// The waiting node.
        node_id: NodeId,
        /// Why.
        reason: String,
    },
}

impl ControlRequest {
    /// The node an approval or rejection decides; `None` for a cancel.
    pub fn decided_node(&self) -> Option<&NodeId> {
        match self {
            Self::Cancel { .. } => None,
            Self::Approve { node_id, .. } | Self::Reject { node_id, .. } => Some(node_id),
        }
    }

    /// The decision in words: `approved` or `rejected: <reason>`; `None` for a cancel.
    pub fn decision(&self) -> Option<String> {
        match self {
            Self::Cancel { .. } => None,
            Self::Approve { .. } => Some("approved".into()),
            Self::Reject { reason, .. } => Some(format!("rejected: {reason}")),
        }
    }
}

/// What a store's [`RunStore::push_control`] returns for `request` when an
/// earlier request of the run (`earlier`, number `seq`, recorded at `at_ms`)
/// already decided the same node: [`StoreError::AlreadyDecided`]. `None` when
/// the two do not decide the same node. Stores call it, under the lock that
/// orders their control requests, for each earlier request of the run: the
/// first decision recorded wins.
pub fn decision_conflict(
    run_id: &RunId,
    request: &ControlRequest,
    seq: u64,
    earlier: &ControlRequest,
    at_ms: i64,
) -> Option<StoreError> {
    let node = request.decided_node()?;
    if earlier.decided_node() != Some(node) {
        return None;
    }
    Some(StoreError::AlreadyDecided {
        run_id: run_id.to_string(),
        node_id: node.to_string(),
        decision: earlier.decision()?,
        seq,
        at_ms,
    })
}

/// Stores runs, their node executions and out-of-process control requests.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Records a new run; [`StoreError::AlreadyExists`] if the id is taken.
    async fn create_run(&self, run: RunRecord) -> Result<(), StoreError>;
    /// Applies a partial update; [`StoreError::NotFound`] if there is no such run.
    async fn update_run(&self, run_id: &RunId, update: RunUpdate) -> Result<(), StoreError>;
    /// Reads one run.
    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>, StoreError>;
    /// Lists runs, newest first.
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError>;
    /// Inserts or replaces the record of `(run, node, invocation_key)`.
    async fn put_node_run(&self, record: NodeRunRecord) -> Result<(), StoreError>;
    /// Records that a node attempt started ([`put_node_run`](Self::put_node_run)
    /// of a `Running` record). A store may only queue it, even with
    /// `Durability::Sync`: the record gives a resumed run the number of an
    /// attempt that was in flight, and an in-flight attempt may run again
    /// after a crash anyway. Its error, if any, is then reported by a later
    /// write or [`flush`](Self::flush). It is still kept in order: once a
    /// later write of the same store is durable, so is this record.
    async fn put_node_started(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        self.put_node_run(record).await
    }
    /// Records a completed node run with its output: stores `output` in
    /// `artifacts`, points `record.output_artifact_id` at it and writes the
    /// record; returns the artifact's id. The output is never durable later
    /// than the record. A store that also holds `artifacts` may do both in
    /// one write (one commit to wait for instead of two).
    async fn put_completed_node_run(
        &self,
        artifacts: &dyn ArtifactStore,
        output: Vec<u8>,
        mut record: NodeRunRecord,
    ) -> Result<ArtifactId, StoreError> {
        let id = artifacts.put_artifact(output).await?;
        record.output_artifact_id = Some(id.clone());
        self.put_node_run(record).await?;
        Ok(id)
    }
    /// Every node record of a run.
    async fn node_runs(&self, run_id: &RunId) -> Result<Vec<NodeRunRecord>, StoreError>;
    /// Queues a control request for a run; returns its sequence number. An
    /// approval or rejection of a node an earlier request already decided is
    /// refused with [`StoreError::AlreadyDecided`] (see [`decision_conflict`]),
    /// atomically: of two concurrent decisions exactly one is recorded.
    async fn push_control(
        &self,
        run_id: &RunId,
        request: ControlRequest,
    ) -> Result<u64, StoreError>;
    /// Control requests of a run with a sequence number above `after`, in order.
    async fn controls_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<(u64, ControlRequest)>, StoreError>;
    /// The output of an earlier completed execution of `action` with this input hash.
    async fn find_memoized(
        &self,
        action: &str,
        input_hash: &str,
    ) -> Result<Option<ArtifactId>, StoreError>;
    /// Waits until every write queued so far is committed.
    async fn flush(&self) -> Result<(), StoreError>;
}
