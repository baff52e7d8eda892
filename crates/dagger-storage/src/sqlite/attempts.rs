//! The `node_attempts` table over SQLite: every ended attempt of every
//! node (the columns are encoded by [`crate::rows::attempt`]).
//!
//! A record is queued on the writer like a started node record: it lands in
//! the same group commit as the node record written after it.

use crate::error::is_foreign_key;
use crate::rows::attempt::{AttemptRow, attempt_columns};
use crate::rows::run::run_not_found;
use crate::sqlite::SqliteStore;
use dagger_core::store::{AttemptQuery, AttemptRecord, sort_attempts};
use dagger_core::{RunId, StoreError};
use rusqlite::{Row, params};

impl AttemptRow {
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
