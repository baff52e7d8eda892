//! `node_attempts` over Postgres: every ended attempt of every node (the
//! columns are encoded as for SQLite, see `crate::attempts`).

use super::PostgresStore;
use super::conn::PgFail;
use crate::rows::attempt::{AttemptRow, attempt_columns};
use crate::rows::run::run_not_found;
use dagger_core::store::{AttemptQuery, AttemptRecord, sort_attempts};
use dagger_core::{RunId, StoreError};
use postgres::error::SqlState;

const UPSERT_ATTEMPT: &str = concat!(
    "INSERT INTO node_attempts (",
    attempt_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (run_id, node_id, invocation_key, attempt) DO UPDATE SET \
       action = excluded.action, outcome = excluded.outcome, error = excluded.error, \
       output = excluded.output, output_artifact_id = excluded.output_artifact_id, \
       started_at = excluded.started_at, finished_at = excluded.finished_at, \
       logs = excluded.logs"
);

const SELECT_ATTEMPTS: &str = concat!(
    "SELECT ",
    attempt_columns!(),
    " FROM node_attempts WHERE run_id = $1 \
       AND ($2::text IS NULL OR node_id = $2) AND ($3::bigint IS NULL OR attempt = $3)"
);

impl PostgresStore {
    /// Queues `record` (see `RunStore::put_attempt`): it is committed with
    /// the next batch of node records, and its error shows at a later
    /// `flush`.
    pub(crate) fn queue_attempt(&self, record: &AttemptRecord) -> Result<(), StoreError> {
        let row = AttemptRow::encode(record)?;
        self.queue_grouped(Box::new(move |tx, stmts| {
            let stmt = stmts.get(tx, UPSERT_ATTEMPT)?;
            let result = tx.execute(
                &stmt,
                &[
                    &row.run_id,
                    &row.node_id,
                    &row.invocation_key,
                    &row.attempt,
                    &row.action,
                    &row.outcome,
                    &row.error,
                    &row.output,
                    &row.output_artifact_id,
                    &row.started_at,
                    &row.finished_at,
                    &row.logs,
                ],
            );
            match result {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    Err(run_not_found(&row.run_id).into())
                }
                Err(e) => Err(e.into()),
            }
        }));
        Ok(())
    }

    /// The attempts of `run_id` matching `query` (see `RunStore::attempts`).
    pub(crate) async fn select_attempts(
        &self,
        run_id: &RunId,
        query: &AttemptQuery,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let run_id = run_id.to_string();
        let node = query.node_id.as_ref().map(ToString::to_string);
        let attempt = query.attempt.map(i64::from);
        // Queued records first, so that a reader sees its own writes.
        self.settle_records().await?;
        let mut out = self
            .with_conn(move |c| {
                let stmt = c.stmts.get(&mut c.client, SELECT_ATTEMPTS)?;
                c.client
                    .query(&stmt, &[&run_id, &node, &attempt])?
                    .iter()
                    .map(|r| -> Result<AttemptRecord, PgFail> {
                        let row = AttemptRow {
                            run_id: r.try_get(0)?,
                            node_id: r.try_get(1)?,
                            invocation_key: r.try_get(2)?,
                            attempt: r.try_get(3)?,
                            action: r.try_get(4)?,
                            outcome: r.try_get(5)?,
                            error: r.try_get(6)?,
                            output: r.try_get(7)?,
                            output_artifact_id: r.try_get(8)?,
                            started_at: r.try_get(9)?,
                            finished_at: r.try_get(10)?,
                            logs: r.try_get(11)?,
                        };
                        Ok(row.decode()?)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        sort_attempts(&mut out);
        Ok(out)
    }
}
