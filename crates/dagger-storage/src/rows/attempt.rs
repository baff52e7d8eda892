//! The columns of a `node_attempts` row: every ended attempt of every node.

use crate::rows::{from_json, to_json};
use dagger_core::store::{ArtifactId, AttemptLogs, AttemptOutcome, AttemptRecord};
use dagger_core::{NodeId, RunId, StoreError};
use serde_json::Value;

/// The columns of `node_attempts` in the order of [`AttemptRow`].
macro_rules! attempt_columns {
    () => {
        "run_id, node_id, invocation_key, attempt, action, outcome, error, output, \
         output_artifact_id, started_at, finished_at, logs"
    };
}
pub(crate) use attempt_columns;

/// An attempt as its columns hold it.
pub(crate) struct AttemptRow {
    pub(crate) run_id: String,
    pub(crate) node_id: String,
    pub(crate) invocation_key: String,
    pub(crate) attempt: i64,
    pub(crate) action: String,
    pub(crate) outcome: String,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) output_artifact_id: Option<String>,
    pub(crate) started_at: i64,
    pub(crate) finished_at: i64,
    pub(crate) logs: Option<String>,
}

impl AttemptRow {
    /// The columns of `record` (`output` and `logs` are NULL when empty).
    pub(crate) fn encode(record: &AttemptRecord) -> Result<Self, StoreError> {
        let what = |col: &str| {
            format!(
                "{col} of attempt {} of node `{}`",
                record.attempt, record.node_id
            )
        };
        Ok(Self {
            run_id: record.run_id.to_string(),
            node_id: record.node_id.to_string(),
            invocation_key: record.invocation_key.clone(),
            attempt: i64::from(record.attempt),
            action: record.action.clone(),
            outcome: record.outcome.as_str().to_string(),
            error: record.error.clone(),
            output: match &record.output {
                Value::Null => None,
                v => Some(to_json(&what("output"), v)?),
            },
            output_artifact_id: record.output_artifact_id.as_ref().map(ToString::to_string),
            started_at: record.started_at,
            finished_at: record.finished_at,
            logs: if record.logs.is_empty() {
                None
            } else {
                Some(to_json(&what("logs"), &record.logs)?)
            },
        })
    }

    /// The record these columns hold.
    pub(crate) fn decode(self) -> Result<AttemptRecord, StoreError> {
        let what = |col: &str| {
            format!(
                "{col} of attempt {} of node `{}` in run `{}`",
                self.attempt, self.node_id, self.run_id
            )
        };
        let outcome = AttemptOutcome::parse(&self.outcome).ok_or_else(|| StoreError::Decode {
            what: what("outcome"),
            reason: format!("unknown outcome `{}`", self.outcome),
        })?;
        let output = match &self.output {
            Some(text) => from_json(&what("output"), text)?,
            None => Value::Null,
        };
        let logs: AttemptLogs = match &self.logs {
            Some(text) => from_json(&what("logs"), text)?,
            None => AttemptLogs::default(),
        };
        Ok(AttemptRecord {
            run_id: RunId::from(self.run_id.as_str()),
            node_id: NodeId::from(self.node_id.as_str()),
            invocation_key: self.invocation_key,
            attempt: u32::try_from(self.attempt).unwrap_or(u32::MAX),
            action: self.action,
            outcome,
            error: self.error,
            output,
            output_artifact_id: self.output_artifact_id.map(ArtifactId::from_hex),
            started_at: self.started_at,
            finished_at: self.finished_at,
            logs,
        })
    }
}
