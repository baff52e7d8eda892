//! The columns of `flow_runs` and `node_runs` rows as both backends store
//! them, and their decoding into records: the SQLite and Postgres stores
//! read a row into these structs with their own client and share the rest,
//! so a bad column is reported the same way by both.

use crate::error::decode;
use crate::rows::{from_json, to_json};
use dagger_core::store::{ArtifactId, NodeRunRecord, RunLineage, RunOwner, RunRecord};
use dagger_core::{NodeId, NodeStatus, RunId, RunStatus, StoreError};

/// The columns of `flow_runs`, in the order each backend reads a [`RunRow`].
macro_rules! run_columns {
    () => {
        "run_id, workflow, definition, inputs, config, status, reason, \
         created_at, updated_at, finished_at, \
         owner_id, owner_host, owner_pid, owner_token, lease_expires_at, \
         parent_run_id, forked_from_node"
    };
}
pub(crate) use run_columns;

/// The columns of `node_runs`, in the order each backend reads a [`NodeRow`].
macro_rules! node_columns {
    () => {
        "run_id, node_id, invocation_key, action, attempt, state, \
         input_hash, output_artifact_id, error, started_at, finished_at, metadata"
    };
}
pub(crate) use node_columns;

/// The error for an unknown run.
pub(crate) fn run_not_found(run_id: &str) -> StoreError {
    StoreError::NotFound {
        entity: "run",
        id: run_id.to_string(),
    }
}

/// The raw columns of a `flow_runs` row, decoded outside the row callback
/// so that a bad JSON column becomes a [`StoreError::Decode`] naming it.
pub(crate) struct RunRow {
    pub(crate) run_id: String,
    pub(crate) workflow: String,
    pub(crate) definition: String,
    pub(crate) inputs: String,
    pub(crate) config: String,
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) finished_at: Option<i64>,
    pub(crate) owner_id: Option<String>,
    pub(crate) owner_host: Option<String>,
    pub(crate) owner_pid: Option<i64>,
    pub(crate) owner_token: i64,
    pub(crate) lease_expires_at: Option<i64>,
    pub(crate) parent_run_id: Option<String>,
    pub(crate) forked_from_node: Option<String>,
}

/// The owner columns of a `flow_runs` row (`owner_id`, `owner_host`,
/// `owner_pid`, `owner_token`, `lease_expires_at`) as a [`RunOwner`]; `None`
/// when nobody owns the run.
pub(crate) fn decode_owner(
    run_id: &str,
    id: Option<String>,
    host: Option<String>,
    pid: Option<i64>,
    token: i64,
    lease_expires_at: Option<i64>,
) -> Result<Option<RunOwner>, StoreError> {
    let Some(owner_id) = id else {
        return Ok(None);
    };
    let what = |col: &str| format!("run `{run_id}` column `{col}`");
    let pid = pid.unwrap_or_default();
    Ok(Some(RunOwner {
        owner_id,
        host: host.unwrap_or_default(),
        pid: u32::try_from(pid).map_err(|_| decode(what("owner_pid"), pid))?,
        token: u64::try_from(token).map_err(|_| decode(what("owner_token"), token))?,
        lease_expires_at: lease_expires_at.unwrap_or_default(),
    }))
}

impl RunRow {
    /// The columns of `run` (the JSON ones encoded, the owner and lineage
    /// spread over theirs).
    pub(crate) fn encode(run: &RunRecord) -> Result<Self, StoreError> {
        let what = format!("run `{}`", run.run_id);
        let owner = run.owner.as_ref();
        let lineage = run.lineage.as_ref();
        Ok(Self {
            run_id: run.run_id.to_string(),
            workflow: run.workflow.clone(),
            definition: to_json(&what, &run.definition)?,
            inputs: to_json(&what, &run.inputs)?,
            config: to_json(&what, &run.config)?,
            status: run.status.as_str().to_string(),
            reason: run.reason.clone(),
            created_at: run.created_at,
            updated_at: run.updated_at,
            finished_at: run.finished_at,
            owner_id: owner.map(|o| o.owner_id.clone()),
            owner_host: owner.map(|o| o.host.clone()),
            owner_pid: owner.map(|o| i64::from(o.pid)),
            owner_token: owner.map_or(0, |o| crate::rows::wide(o.token)),
            lease_expires_at: owner.map(|o| o.lease_expires_at),
            parent_run_id: lineage.map(|l| l.parent_run_id.to_string()),
            forked_from_node: lineage
                .and_then(|l| l.forked_from_node.as_ref().map(|n| n.to_string())),
        })
    }

    /// The record, or a [`StoreError::Decode`] naming the bad column.
    pub(crate) fn decode(self) -> Result<RunRecord, StoreError> {
        let what = |col: &str| format!("run `{}` column `{col}`", self.run_id);
        let status = RunStatus::parse(&self.status).ok_or_else(|| {
            decode(
                what("status"),
                format!("unknown run status `{}`", self.status),
            )
        })?;
        let owner = decode_owner(
            &self.run_id,
            self.owner_id,
            self.owner_host,
            self.owner_pid,
            self.owner_token,
            self.lease_expires_at,
        )?;
        let lineage = self.parent_run_id.map(|parent| RunLineage {
            parent_run_id: RunId::from(parent),
            forked_from_node: self.forked_from_node.map(NodeId::from),
        });
        Ok(RunRecord {
            owner,
            lineage,
            definition: from_json(&what("definition"), &self.definition)?,
            inputs: from_json(&what("inputs"), &self.inputs)?,
            config: from_json(&what("config"), &self.config)?,
            run_id: RunId::from(self.run_id),
            workflow: self.workflow,
            status,
            reason: self.reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        })
    }
}

/// The raw columns of a `node_runs` row.
pub(crate) struct NodeRow {
    pub(crate) run_id: String,
    pub(crate) node_id: String,
    pub(crate) invocation_key: String,
    pub(crate) action: String,
    pub(crate) attempt: i64,
    pub(crate) state: String,
    pub(crate) input_hash: Option<String>,
    pub(crate) output_artifact_id: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) metadata: String,
}

/// The `metadata` column of a node run.
pub(crate) fn node_metadata(record: &NodeRunRecord) -> Result<String, StoreError> {
    // The error's text is built only on failure: this runs twice per recorded node.
    serde_json::to_string(&record.metadata)
        .map_err(|e| decode(format!("metadata of node `{}`", record.node_id), e))
}

impl NodeRow {
    /// The record, or a [`StoreError::Decode`] naming the bad column.
    pub(crate) fn decode(self) -> Result<NodeRunRecord, StoreError> {
        let what = |col: &str| {
            format!(
                "node `{}` (invocation `{}`) of run `{}` column `{col}`",
                self.node_id, self.invocation_key, self.run_id
            )
        };
        let state = NodeStatus::parse(&self.state).ok_or_else(|| {
            decode(
                what("state"),
                format!("unknown node status `{}`", self.state),
            )
        })?;
        let attempt = u32::try_from(self.attempt)
            .map_err(|_| decode(what("attempt"), format!("{} is out of range", self.attempt)))?;
        Ok(NodeRunRecord {
            metadata: from_json(&what("metadata"), &self.metadata)?,
            run_id: RunId::from(self.run_id),
            node_id: NodeId::from(self.node_id),
            invocation_key: self.invocation_key,
            action: self.action,
            attempt,
            state,
            input_hash: self.input_hash,
            output_artifact_id: self.output_artifact_id.map(ArtifactId::from_hex),
            error: self.error,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}
