//! The `node_attempts` table over SQLite, and the column encoding the
//! Postgres store shares: every ended attempt of every node.
//!
//! A record is queued on the writer like a started node record: it lands in
//! the same group commit as the node record written after it.

use crate::error::is_foreign_key;
use crate::rows::run::{from_json, run_not_found, to_json};
use crate::sqlite::SqliteStore;
use dagger_core::store::{
    ArtifactId, AttemptLogs, AttemptOutcome, AttemptQuery, AttemptRecord, sort_attempts,
};
use dagger_core::{NodeId, RunId, StoreError};
use rusqlite::{Row, params};
use serde_json::Value;

/// The columns of `node_attempts` in the order of [`AttemptRow`].
macro_rules! attempt_columns {
    () => {
        "run_id, node_id, invocation_key, attempt, action, outcome, error, output, \
         output_artifact_id, started_at, finished_at, logs"
    };
}
#[cfg_attr(not(feature = "postgres"), allow(unused_imports))]
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

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            run_id: row.get(0)?,
            node_id: row.get(1)?,
            invocation_key: row.get(2)?,
            attempt: row.get(3)?,
            action: row.get(4)?,
            outcome: row.get(5)?,
            error: row.get(6)?,
            output: row.get(7)?,
            output_artifact_id: row.get(8)?,
            started_at: row.get(9)?,
            finished_at: row.get(10)?,
            logs: row.get(11)?,
        })
    }
}

impl SqliteStore {
    /// Queues `record` (see `RunStore::put_attempt`).
    pub(crate) fn queue_attempt(&self, record: &AttemptRecord) -> Result<(), StoreError> {
        let row = AttemptRow::encode(record)?;
        let store = self.error_mapper();
        self.submit_statement(move |tx| {
            let result = tx
                .prepare_cached(concat!(
                    "INSERT OR REPLACE INTO node_attempts (",
                    attempt_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        row.run_id,
                        row.node_id,
                        row.invocation_key,
                        row.attempt,
                        row.action,
                        row.outcome,
                        row.error,
                        row.output,
                        row.output_artifact_id,
                        row.started_at,
                        row.finished_at,
                        row.logs,
                    ])
                });
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_foreign_key(&e) => Err(run_not_found(&row.run_id)),
                Err(e) => Err(store.map_err(e)),
            }
        })
    }

    /// The attempts of `run_id` matching `query` (see `RunStore::attempts`).
    pub(crate) async fn read_attempts(
        &self,
        run_id: &RunId,
        query: &AttemptQuery,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let run_id = run_id.to_string();
        let node = query.node_id.as_ref().map(ToString::to_string);
        let attempt = query.attempt.map(i64::from);
        let store = self.error_mapper();
        let rows = self
            .read(move |c| {
                c.prepare_cached(concat!(
                    "SELECT ",
                    attempt_columns!(),
                    " FROM node_attempts WHERE run_id = ?1 \
                       AND (?2 IS NULL OR node_id = ?2) AND (?3 IS NULL OR attempt = ?3)"
                ))
                .and_then(|mut s| {
                    s.query_map(params![run_id, node, attempt], AttemptRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| store.map_err(e))
            })
            .await?;
        let mut out = rows
            .into_iter()
            .map(AttemptRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        sort_attempts(&mut out);
        Ok(out)
    }
}
