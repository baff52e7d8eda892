use super::artifact::{ArtifactId, ArtifactStore};
use super::attempt::{AttemptQuery, AttemptRecord};
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
    /// The process executing the run and its lease, while one does
    /// (`None` once the run stopped or before anyone claimed it).
    #[serde(default)]
    pub owner: Option<RunOwner>,
    /// The run this one was re-run or forked from, when it was (see
    /// [`RunLineage`]); `None` for a run started afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<RunLineage>,
}

/// Where a re-run came from: the recorded run it re-ran and the node it was
/// forked from. A run keeps its lineage for its whole life; the runs forked
/// from a run are found with [`RunStore::child_runs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLineage {
    /// The run this one re-ran.
    pub parent_run_id: RunId,
    /// The node the re-run started from: it and everything downstream ran
    /// again, the rest reused the parent's outputs. `None` when everything ran again.
    pub forked_from_node: Option<NodeId>,
}

impl RunRecord {
    /// When the run's owner was last known alive (its lease's expiry), if
    /// the run is not finished, has an owner and that owner's lease lapsed
    /// before `now` (ms since the epoch): the run is *orphaned*, its process
    /// died without recording an end. Derived at read time, never stored.
    pub fn orphaned_since(&self, now: i64) -> Option<i64> {
        if self.status.is_terminal() {
            return None;
        }
        self.owner
            .as_ref()
            .filter(|o| o.lease_expires_at <= now)
            .map(|o| o.lease_expires_at)
    }

    /// The owner whose lease is still live at `now`, if any.
    pub fn live_owner(&self, now: i64) -> Option<&RunOwner> {
        self.owner.as_ref().filter(|o| o.lease_expires_at > now)
    }

    /// The state to show a person: the stored status, or `Orphaned` for an
    /// unfinished run whose owner's lease lapsed (see [`Self::orphaned_since`]).
    pub fn display_status(&self, now: i64) -> &'static str {
        if self.orphaned_since(now).is_some() {
            "Orphaned"
        } else {
            self.status.as_str()
        }
    }
}

/// The process that executes a run, holding it with a lease it renews.
/// Another process may take the run over only once the lease lapsed; each
/// take-over increments the fencing `token`, so a stale owner's renewals and
/// its final write are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOwner {
    /// Unique per claim (host, pid and a random part).
    pub owner_id: String,
    /// The owner's host name.
    pub host: String,
    /// The owner's process id.
    pub pid: u32,
    /// The fencing token of this ownership; a store sets it on a claim.
    pub token: u64,
    /// When the lease lapses unless renewed (ms since the epoch).
    pub lease_expires_at: i64,
}

/// The answer to [`RunStore::claim_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunClaim {
    /// The caller owns the run now, with this token and lease.
    Claimed(RunOwner),
    /// Another owner's lease is live; nothing changed.
    Held(RunOwner),
}

/// The answer to [`RunStore::create_keyed_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedCreate {
    /// The run was recorded and the key now names it.
    Created,
    /// The key names this other run; nothing was recorded.
    Existing(RunId),
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

/// A signal sent to a run (`dagger signal`; see `docs/signals.md`). A
/// node that waits for it (`wait_for:`) takes it; the store keeps it until
/// the run is pruned, and the record of the node that took it names it
/// (`signal_seq` in its metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// Numbers the run's signals from 1, in the order they were stored.
    pub seq: u64,
    /// The signal's name.
    pub name: String,
    /// Its payload.
    pub payload: Value,
    /// When it was stored (ms since the epoch).
    pub sent_at: i64,
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
    /// Records a new run under idempotency key `key` of its workflow, in one
    /// atomic step: the key is bound to `run.run_id` and the run recorded, or
    /// neither. When the key is bound already, nothing is recorded and the
    /// bound run's id comes back ([`KeyedCreate::Existing`]), unless it is
    /// `replace`: then the key is re-bound to the new run (a compare-and-set,
    /// so of two processes replacing the same run exactly one succeeds). Of
    /// concurrent calls with one key, in one process or many, exactly one
    /// records its run. The write is committed before this returns.
    async fn create_keyed_run(
        &self,
        run: RunRecord,
        key: &str,
        replace: Option<&RunId>,
    ) -> Result<KeyedCreate, StoreError>;
    /// Applies a partial update; [`StoreError::NotFound`] if there is no such run.
    async fn update_run(&self, run_id: &RunId, update: RunUpdate) -> Result<(), StoreError>;
    /// Reads one run.
    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>, StoreError>;
    /// Lists runs, newest first.
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError>;
    /// The runs whose [`RunLineage::parent_run_id`] is `run_id` (re-runs and
    /// forks of it), oldest first. The default reads every run; stores
    /// answer it from an index.
    async fn child_runs(&self, run_id: &RunId) -> Result<Vec<RunRecord>, StoreError> {
        let mut children: Vec<RunRecord> = self
            .list_runs(&RunQuery::default())
            .await?
            .into_iter()
            .filter(|r| {
                r.lineage
                    .as_ref()
                    .is_some_and(|l| &l.parent_run_id == run_id)
            })
            .collect();
        children.reverse();
        Ok(children)
    }
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
    /// Records one ended attempt, replacing a record of the same run, node,
    /// invocation and attempt number. Like
    /// [`put_node_started`](Self::put_node_started) a store may only queue
    /// it, in order: it is committed with the node record written next (one
    /// commit for both), and an error shows at a later write or
    /// [`flush`](Self::flush). [`StoreError::NotFound`] for an unknown run.
    async fn put_attempt(&self, record: AttemptRecord) -> Result<(), StoreError>;
    /// The recorded attempts of a run that match `query`, ordered by node,
    /// invocation and attempt number (empty for an unknown run).
    async fn attempts(
        &self,
        run_id: &RunId,
        query: &AttemptQuery,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
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
    /// Stores signal `name` with `payload` for run `run_id`; returns its
    /// sequence number (the run's signals are numbered from 1).
    /// [`StoreError::NotFound`] for an unknown run. Committed before it returns.
    async fn push_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: Value,
    ) -> Result<u64, StoreError>;
    /// The signals of a run with a sequence number above `after`, in order.
    async fn signals_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<SignalRecord>, StoreError>;
    /// The output of an earlier completed execution of `action` with this input hash.
    async fn find_memoized(
        &self,
        action: &str,
        input_hash: &str,
    ) -> Result<Option<ArtifactId>, StoreError>;
    /// Waits until every write queued so far is committed.
    async fn flush(&self) -> Result<(), StoreError>;
    /// Takes run `run_id` for `owner` (whose `token` is ignored) when it has
    /// no owner, its owner's lease lapsed by the store's clock, or its owner
    /// is `dead_owner` (an owner id the caller knows to be gone, e.g. a
    /// process of this host that no longer exists): sets the
    /// owner with the next fencing token and returns
    /// [`RunClaim::Claimed`]. Otherwise returns [`RunClaim::Held`] with the
    /// current owner and changes nothing. Of concurrent claims exactly one
    /// wins (a compare-and-set). [`StoreError::NotFound`] for an unknown run.
    /// The write is committed before this returns.
    async fn claim_run(
        &self,
        run_id: &RunId,
        owner: RunOwner,
        dead_owner: Option<&str>,
    ) -> Result<RunClaim, StoreError>;
    /// Extends the lease of the ownership holding `token` to
    /// `lease_expires_at` (committed before it returns);
    /// [`StoreError::StaleToken`] when another claim took the run over or it
    /// was released.
    async fn renew_run(
        &self,
        run_id: &RunId,
        token: u64,
        lease_expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Applies `update` and clears the owner in one write, only if the
    /// ownership holding `token` still holds the run (so a stale owner never
    /// records the run's end over its successor); [`StoreError::StaleToken`]
    /// otherwise, with nothing written. Ordered after this store's earlier
    /// writes and committed before it returns.
    async fn release_run(
        &self,
        run_id: &RunId,
        token: u64,
        update: RunUpdate,
    ) -> Result<(), StoreError>;
}

/// The [`StoreError::StaleToken`] of run `run_id`.
pub fn stale_run_token(run_id: &RunId, held: u64, current: u64) -> StoreError {
    StoreError::StaleToken {
        entity: "run",
        id: run_id.to_string(),
        held,
        current,
    }
}
