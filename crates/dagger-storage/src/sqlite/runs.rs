//! [`RunStore`] over SQLite: `flow_runs`, `node_runs`, `node_attempts`
//! (see `attempts.rs`) and `run_controls`.
//!
//! Run-state writes (`update_run`, `put_node_run`) go through
//! [`SqliteStore::write_durable`]: queued in `Batched` mode (a failure shows
//! at the next `flush`), acknowledged after commit in `Sync` mode.
//! `create_run` and `push_control` always wait for their commit, because
//! their callers act on the answer (a taken id, a sequence number).

use crate::error::{decode, is_foreign_key};
use crate::rows::run::{
    NodeRow, RunRow, decode_owner, node_columns, node_metadata, run_columns, run_not_found,
};
use crate::rows::wide;
use crate::rows::{from_json, to_json};
use crate::sqlite::artifacts::{INLINE_LIMIT, insert_inline_artifact};
use crate::sqlite::{ErrorMapper, SqliteStore};
use dagger_core::store::{
    ArtifactId, ArtifactStore, AttemptQuery, AttemptRecord, ControlRequest, KeyedCreate,
    NodeRunRecord, RunClaim, RunOwner, RunQuery, RunRecord, RunStore, RunUpdate, SignalRecord,
    decision_conflict, stale_run_token,
};
use dagger_core::{RunId, RunStatus, StoreError, now_millis};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

impl RunRow {
    /// Reads the columns in `run_columns!` order.
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            run_id: row.get(0)?,
            workflow: row.get(1)?,
            definition: row.get(2)?,
            inputs: row.get(3)?,
            config: row.get(4)?,
            status: row.get(5)?,
            reason: row.get(6)?,
            created_at: row.get(7)?,
            updated_at: row.get(8)?,
            finished_at: row.get(9)?,
            owner_id: row.get(10)?,
            owner_host: row.get(11)?,
            owner_pid: row.get(12)?,
            owner_token: row.get(13)?,
            lease_expires_at: row.get(14)?,
            parent_run_id: row.get(15)?,
            forked_from_node: row.get(16)?,
        })
    }
}

impl NodeRow {
    /// Reads the columns in `node_columns!` order.
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            run_id: row.get(0)?,
            node_id: row.get(1)?,
            invocation_key: row.get(2)?,
            action: row.get(3)?,
            attempt: row.get(4)?,
            state: row.get(5)?,
            input_hash: row.get(6)?,
            output_artifact_id: row.get(7)?,
            error: row.get(8)?,
            started_at: row.get(9)?,
            finished_at: row.get(10)?,
            metadata: row.get(11)?,
        })
    }
}

/// Started records queued but not written yet, by node invocation, each
/// with the ticket of the job that will write it. A newer started record of
/// the same invocation (a retry) replaces an older one, whose job then finds
/// a different ticket and writes nothing, so records still land in order.
#[derive(Default)]
pub(crate) struct PendingStarts {
    held: parking_lot::Mutex<HashMap<String, (u64, NodeRunRecord)>>,
    next_ticket: AtomicU64,
}

impl PendingStarts {
    fn key(record: &NodeRunRecord) -> String {
        let mut key = String::with_capacity(
            record.run_id.as_str().len()
                + record.node_id.as_str().len()
                + record.invocation_key.len()
                + 2,
        );
        key.push_str(record.run_id.as_str());
        key.push('\0');
        key.push_str(record.node_id.as_str());
        key.push('\0');
        key.push_str(&record.invocation_key);
        key
    }

    /// Holds `record` until its job or the completion takes it; returns the job's ticket.
    fn hold(&self, key: String, record: NodeRunRecord) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.held.lock().insert(key, (ticket, record));
        ticket
    }

    /// Takes the record held under `key`: any (`None`), or only the one of `ticket`.
    fn take(&self, key: &str, ticket: Option<u64>) -> Option<NodeRunRecord> {
        let mut held = self.held.lock();
        match held.get(key) {
            Some((t, _)) if ticket.is_none_or(|want| want == *t) => {
                held.remove(key).map(|(_, record)| record)
            }
            _ => None,
        }
    }
}

/// The memo lookup. `state = 'Completed'` and `input_hash = ?2` (which
/// implies `input_hash IS NOT NULL`) let SQLite use the partial index
/// `node_runs_memo` (migration 0008).
pub(crate) const MEMO_LOOKUP: &str = "SELECT output_artifact_id FROM node_runs \
     WHERE action = ?1 AND input_hash = ?2 AND state = 'Completed' \
       AND output_artifact_id IS NOT NULL \
     LIMIT 1";

/// Inserts or replaces a node run, in one statement.
fn upsert_node_run(
    tx: &Connection,
    record: &NodeRunRecord,
    metadata: &str,
    store: &ErrorMapper,
) -> Result<(), StoreError> {
    let result = tx
        .prepare_cached(concat!(
            "INSERT INTO node_runs (",
            node_columns!(),
            ") \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (run_id, node_id, invocation_key) DO UPDATE SET \
               action = excluded.action, attempt = excluded.attempt, \
               state = excluded.state, input_hash = excluded.input_hash, \
               output_artifact_id = excluded.output_artifact_id, \
               error = excluded.error, started_at = excluded.started_at, \
               finished_at = excluded.finished_at, metadata = excluded.metadata"
        ))
        .and_then(|mut s| {
            s.execute(params![
                record.run_id.as_str(),
                record.node_id.as_str(),
                record.invocation_key,
                record.action,
                record.attempt,
                record.state.as_str(),
                record.input_hash,
                record.output_artifact_id.as_ref().map(ArtifactId::as_str),
                record.error,
                record.started_at,
                record.finished_at,
                metadata,
            ])
        });
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_foreign_key(&e) => {
            // Either the run or the output artifact is unknown; say which.
            if !run_exists(tx, record.run_id.as_str()).map_err(|e| store.map_err(e))? {
                return Err(run_not_found(record.run_id.as_str()));
            }
            Err(StoreError::NotFound {
                entity: "artifact",
                id: record
                    .output_artifact_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            })
        }
        Err(e) => Err(store.map_err(e)),
    }
}

fn run_exists(conn: &Connection, run_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM flow_runs WHERE run_id = ?1")?
        .query_row([run_id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

/// The `SET` list of `update_run` and `release_run`: `?2`..`?8` are the
/// [`RunUpdate`] as bound by [`apply_run_update`]. `?n IS NULL` selects "leave
/// unchanged"; the `*_set` flags let a `Some(None)` clear a nullable column.
macro_rules! update_columns {
    () => {
        "status = COALESCE(?2, status), \
         reason = CASE WHEN ?3 THEN ?4 ELSE reason END, \
         definition = COALESCE(?5, definition), \
         finished_at = CASE WHEN ?6 THEN ?7 ELSE finished_at END, \
         updated_at = ?8"
    };
}

/// Applies `update` to run `run_id` in one statement; with `release`, only
/// while the ownership holding that token holds the run, clearing the owner
/// too (`release_run`). Returns the number of rows changed.
fn apply_run_update(
    tx: &Connection,
    run_id: &str,
    update: RunUpdate,
    definition: Option<String>,
    release: Option<u64>,
    store: &ErrorMapper,
) -> Result<usize, StoreError> {
    const UPDATE: &str = concat!(
        "UPDATE flow_runs SET ",
        update_columns!(),
        " WHERE run_id = ?1"
    );
    const RELEASE: &str = concat!(
        "UPDATE flow_runs SET ",
        update_columns!(),
        ", owner_id = NULL, owner_host = NULL, owner_pid = NULL, lease_expires_at = NULL \
         WHERE run_id = ?1 AND owner_token = ?9 AND owner_id IS NOT NULL"
    );
    let status = update.status.map(RunStatus::as_str);
    let reason_set = update.reason.is_some();
    let reason = update.reason.flatten();
    let finished_set = update.finished_at.is_some();
    let finished_at = update.finished_at.flatten();
    let now = now_millis();
    let token = release.map(wide);
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
        &run_id,
        &status,
        &reason_set,
        &reason,
        &definition,
        &finished_set,
        &finished_at,
        &now,
    ];
    if let Some(token) = &token {
        values.push(token);
    }
    tx.prepare_cached(if release.is_some() { RELEASE } else { UPDATE })
        .and_then(|mut s| s.execute(&*values))
        .map_err(|e| store.map_err(e))
}

/// The owner of run `run_id` as stored, and its last fencing token; `None`
/// for an unknown run.
fn read_owner(
    conn: &Connection,
    run_id: &str,
    store: &ErrorMapper,
) -> Result<Option<(Option<RunOwner>, u64)>, StoreError> {
    let row: Option<OwnerCols> = conn
        .prepare_cached(
            "SELECT owner_id, owner_host, owner_pid, owner_token, lease_expires_at \
             FROM flow_runs WHERE run_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(|e| store.map_err(e))?;
    let Some((id, host, pid, token, lease)) = row else {
        return Ok(None);
    };
    let current = u64::try_from(token).unwrap_or_default();
    Ok(Some((
        decode_owner(run_id, id, host, pid, token, lease)?,
        current,
    )))
}

type OwnerCols = (
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
);

/// `list_runs` statements, one per filter combination so each can use its
/// index (`flow_runs_by_status`, `flow_runs_by_workflow`, `flow_runs_by_created`).
fn list_sql(query: &RunQuery) -> String {
    let filter = match (query.status.is_some(), query.workflow.is_some()) {
        (false, false) => "",
        (true, false) => "WHERE status = ?3",
        (false, true) => "WHERE workflow = ?4",
        (true, true) => "WHERE status = ?3 AND workflow = ?4",
    };
    // `rowid` breaks ties between runs created in the same millisecond, newest first.
    format!(
        "SELECT {} FROM flow_runs {filter} \
         ORDER BY created_at DESC, rowid DESC LIMIT ?1 OFFSET ?2",
        run_columns!()
    )
}

#[async_trait::async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, run: RunRecord) -> Result<(), StoreError> {
        let row = RunRow::encode(&run)?;
        let store = self.error_mapper();
        self.write(move |tx| insert_new_run(tx, &row, &store)).await
    }

    async fn create_keyed_run(
        &self,
        run: RunRecord,
        key: &str,
        replace: Option<&RunId>,
    ) -> Result<KeyedCreate, StoreError> {
        let row = RunRow::encode(&run)?;
        let store = self.error_mapper();
        let key = key.to_string();
        let replace = replace.map(|r| r.to_string());
        self.write(move |tx| {
            let slot = (row.workflow.as_str(), key.as_str(), row.run_id.as_str());
            if let Some(bound) = bind_key(tx, slot, replace.as_deref(), &store)? {
                return Ok(KeyedCreate::Existing(RunId::from(bound)));
            }
            insert_new_run(tx, &row, &store)?;
            Ok(KeyedCreate::Created)
        })
        .await
    }

    async fn update_run(&self, run_id: &RunId, update: RunUpdate) -> Result<(), StoreError> {
        let definition = update
            .definition
            .as_ref()
            .map(|d| to_json(&format!("definition of run `{run_id}`"), d))
            .transpose()?;
        let run_id = run_id.clone();
        let store = self.error_mapper();
        self.write_durable(move |tx| {
            let changed = apply_run_update(tx, run_id.as_str(), update, definition, None, &store)?;
            if changed == 0 {
                return Err(run_not_found(run_id.as_str()));
            }
            Ok(())
        })
        .await
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        let run_id = run_id.clone();
        let store = self.error_mapper();
        let row = self
            .read(move |c| {
                c.prepare_cached(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM flow_runs WHERE run_id = ?1"
                ))
                .and_then(|mut s| s.query_row([run_id.as_str()], RunRow::read).optional())
                .map_err(|e| store.map_err(e))
            })
            .await?;
        row.map(RunRow::decode).transpose()
    }

    async fn child_runs(&self, run_id: &RunId) -> Result<Vec<RunRecord>, StoreError> {
        let run_id = run_id.clone();
        let store = self.error_mapper();
        let rows = self
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(concat!(
                        "SELECT ",
                        run_columns!(),
                        " FROM flow_runs WHERE parent_run_id = ?1 ORDER BY created_at, rowid"
                    ))
                    .map_err(|e| store.map_err(e))?;
                let rows = stmt
                    .query_map([run_id.as_str()], RunRow::read)
                    .map_err(|e| store.map_err(e))?;
                rows.map(|r| r.map_err(|e| store.map_err(e)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        rows.into_iter().map(RunRow::decode).collect()
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        let sql = list_sql(query);
        let limit = query
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let status = query.status.map(RunStatus::as_str);
        let workflow = query.workflow.clone();
        let store = self.error_mapper();
        let rows = self
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(|e| store.map_err(e))?;
                // A filter's parameter is in the statement exactly when the
                // filter is set (an unused `?3` before `?4` stays NULL).
                let bound = stmt
                    .raw_bind_parameter(1, limit)
                    .and_then(|()| stmt.raw_bind_parameter(2, offset))
                    .and_then(|()| status.map_or(Ok(()), |s| stmt.raw_bind_parameter(3, s)))
                    .and_then(|()| {
                        workflow
                            .as_ref()
                            .map_or(Ok(()), |w| stmt.raw_bind_parameter(4, w))
                    });
                bound.map_err(|e| store.map_err(e))?;
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(|e| store.map_err(e))? {
                    out.push(RunRow::read(row).map_err(|e| store.map_err(e))?);
                }
                Ok(out)
            })
            .await?;
        rows.into_iter().map(RunRow::decode).collect()
    }

    async fn put_node_run(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        let metadata = node_metadata(&record)?;
        let store = self.error_mapper();
        self.write_durable_statement(move |tx| upsert_node_run(tx, &record, &metadata, &store))
            .await
    }

    async fn put_node_started(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        let metadata = node_metadata(&record)?;
        let store = self.error_mapper();
        let pending = self.inner.pending_starts.clone();
        let key = PendingStarts::key(&record);
        let ticket = pending.hold(key.clone(), record);
        // Queued even with `Sync`: the completion that follows waits for a
        // later commit of the same queue. When the completion comes before
        // the writer reaches this job, it takes the record and the job
        // writes nothing (one upsert per node instead of two).
        self.submit_statement(move |tx| match pending.take(&key, Some(ticket)) {
            Some(record) => upsert_node_run(tx, &record, &metadata, &store),
            None => Ok(()),
        })
    }

    async fn put_completed_node_run(
        &self,
        artifacts: &dyn ArtifactStore,
        output: Vec<u8>,
        mut record: NodeRunRecord,
    ) -> Result<ArtifactId, StoreError> {
        // One write for both when the artifacts live in this very store
        // (`Stores::from(SqliteStore)`) and the output is kept inline.
        let here = std::ptr::addr_eq(std::ptr::from_ref(artifacts), std::ptr::from_ref(self));
        if !here || output.len() >= INLINE_LIMIT {
            let id = artifacts.put_artifact(output).await?;
            record.output_artifact_id = Some(id.clone());
            self.put_node_run(record).await?;
            return Ok(id);
        }
        let id = ArtifactId::of(&output);
        record.output_artifact_id = Some(id.clone());
        // This record replaces the attempt's started record: if that one is
        // still waiting for the writer, it need not be written at all.
        self.inner
            .pending_starts
            .take(&PendingStarts::key(&record), None);
        let metadata = node_metadata(&record)?;
        let store = self.error_mapper();
        let key = id.clone();
        // The artifact row may stay if the record fails: it is content
        // addressed and harmless, as after a separate `put_artifact`.
        self.write_durable_statement(move |tx| {
            insert_inline_artifact(tx, &key, &output, &store)?;
            upsert_node_run(tx, &record, &metadata, &store)
        })
        .await?;
        Ok(id)
    }

    async fn put_attempt(&self, record: AttemptRecord) -> Result<(), StoreError> {
        self.queue_attempt(&record)
    }

    async fn attempts(
        &self,
        run_id: &RunId,
        query: &AttemptQuery,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read_attempts(run_id, query).await
    }

    async fn node_runs(&self, run_id: &RunId) -> Result<Vec<NodeRunRecord>, StoreError> {
        let run_id = run_id.clone();
        let store = self.error_mapper();
        let rows = self
            .read(move |c| {
                c.prepare_cached(concat!(
                    "SELECT ",
                    node_columns!(),
                    " FROM node_runs WHERE run_id = ?1 ORDER BY node_id, invocation_key"
                ))
                .and_then(|mut s| {
                    s.query_map([run_id.as_str()], NodeRow::read)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| store.map_err(e))
            })
            .await?;
        rows.into_iter().map(NodeRow::decode).collect()
    }

    async fn push_control(
        &self,
        run_id: &RunId,
        request: ControlRequest,
    ) -> Result<u64, StoreError> {
        let text = to_json(&format!("control request for run `{run_id}`"), &request)?;
        let run_id = run_id.clone();
        let store = self.error_mapper();
        self.write(move |tx| {
            let sql = |e| store.map_err(e);
            if !run_exists(tx, run_id.as_str()).map_err(sql)? {
                return Err(run_not_found(run_id.as_str()));
            }
            // The writer holds the write lock, so MAX + 1 cannot race, even
            // with another process pushing to the same database; nor can two
            // decisions of one node: the first recorded wins.
            if request.decided_node().is_some() {
                let earlier: Vec<(i64, String, i64)> = tx
                    .prepare_cached(
                        "SELECT seq, request, created_at FROM run_controls \
                         WHERE run_id = ?1 ORDER BY seq",
                    )
                    .and_then(|mut s| {
                        s.query_map([run_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                            .collect()
                    })
                    .map_err(sql)?;
                for (seq, text, at_ms) in earlier {
                    let what = format!("control request {seq} of run `{run_id}`");
                    let seq = u64::try_from(seq).map_err(|_| decode(&what, seq))?;
                    let earlier: ControlRequest = from_json(&what, &text)?;
                    if let Some(e) = decision_conflict(&run_id, &request, seq, &earlier, at_ms) {
                        return Err(e);
                    }
                }
            }
            let seq: i64 = tx
                .prepare_cached(
                    "INSERT INTO run_controls (run_id, seq, request, created_at) \
                     SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3 FROM run_controls \
                     WHERE run_id = ?1 RETURNING seq",
                )
                .and_then(|mut s| {
                    s.query_row(params![run_id.as_str(), text, now_millis()], |r| r.get(0))
                })
                .map_err(sql)?;
            u64::try_from(seq).map_err(|_| decode("control sequence number", seq))
        })
        .await
    }

    async fn controls_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<(u64, ControlRequest)>, StoreError> {
        let run_id = run_id.clone();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let store = self.error_mapper();
        let rows: Vec<(i64, String)> = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT seq, request FROM run_controls WHERE run_id = ?1 AND seq > ?2 \
                     ORDER BY seq",
                )
                .and_then(|mut s| {
                    s.query_map(params![run_id.as_str(), after], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect()
                })
                .map_err(|e| store.map_err(e))
            })
            .await?;
        rows.into_iter()
            .map(|(seq, text)| {
                let what = format!("control request {seq}");
                let seq = u64::try_from(seq).map_err(|_| decode(&what, seq))?;
                Ok((seq, from_json(&what, &text)?))
            })
            .collect()
    }

    async fn push_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<u64, StoreError> {
        let text = to_json(&format!("signal `{name}` for run `{run_id}`"), &payload)?;
        let run_id = run_id.clone();
        let name = name.to_string();
        let store = self.error_mapper();
        self.write(move |tx| {
            let sql = |e| store.map_err(e);
            if !run_exists(tx, run_id.as_str()).map_err(sql)? {
                return Err(run_not_found(run_id.as_str()));
            }
            // The writer holds the write lock, so MAX + 1 cannot race.
            let seq: i64 = tx
                .prepare_cached(
                    "INSERT INTO run_signals (run_id, seq, name, payload, created_at) \
                     SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM run_signals \
                     WHERE run_id = ?1 RETURNING seq",
                )
                .and_then(|mut s| {
                    s.query_row(params![run_id.as_str(), name, text, now_millis()], |r| {
                        r.get(0)
                    })
                })
                .map_err(sql)?;
            u64::try_from(seq).map_err(|_| decode("signal sequence number", seq))
        })
        .await
    }

    async fn signals_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<SignalRecord>, StoreError> {
        let run_id = run_id.clone();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let store = self.error_mapper();
        let rows: Vec<(i64, String, String, i64)> = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT seq, name, payload, created_at FROM run_signals \
                     WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
                )
                .and_then(|mut s| {
                    s.query_map(params![run_id.as_str(), after], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect()
                })
                .map_err(|e| store.map_err(e))
            })
            .await?;
        rows.into_iter()
            .map(|(seq, name, text, sent_at)| {
                let what = format!("signal {seq}");
                Ok(SignalRecord {
                    seq: u64::try_from(seq).map_err(|_| decode(&what, seq))?,
                    name,
                    payload: from_json(&what, &text)?,
                    sent_at,
                })
            })
            .collect()
    }

    async fn find_memoized(
        &self,
        action: &str,
        input_hash: &str,
    ) -> Result<Option<ArtifactId>, StoreError> {
        let action = action.to_string();
        let input_hash = input_hash.to_string();
        let store = self.error_mapper();
        let found: Option<String> = self
            .read(move |c| {
                c.prepare_cached(MEMO_LOOKUP)
                    .and_then(|mut s| s.query_row([&action, &input_hash], |r| r.get(0)).optional())
                    .map_err(|e| store.map_err(e))
            })
            .await?;
        Ok(found.map(ArtifactId::from_hex))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        SqliteStore::flush(self).await
    }

    async fn claim_run(
        &self,
        run_id: &RunId,
        owner: RunOwner,
        dead_owner: Option<&str>,
    ) -> Result<RunClaim, StoreError> {
        let run_id = run_id.clone();
        let dead_owner = dead_owner.map(str::to_string);
        let store = self.error_mapper();
        // One statement in the writer's transaction (which holds the file's
        // write lock): the check and the take-over cannot interleave with
        // another claim, in this process or another.
        self.write(move |tx| {
            let now = now_millis();
            let token: Option<i64> = tx
                .prepare_cached(
                    "UPDATE flow_runs SET owner_id = ?2, owner_host = ?3, owner_pid = ?4, \
                       lease_expires_at = ?5, owner_token = owner_token + 1, updated_at = ?6 \
                     WHERE run_id = ?1 \
                       AND (owner_id IS NULL OR lease_expires_at <= ?6 OR owner_id = ?7) \
                     RETURNING owner_token",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![
                            run_id.as_str(),
                            owner.owner_id,
                            owner.host,
                            owner.pid,
                            owner.lease_expires_at,
                            now,
                            dead_owner,
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(|e| store.map_err(e))?;
            if let Some(token) = token {
                return Ok(RunClaim::Claimed(RunOwner {
                    token: u64::try_from(token).unwrap_or_default(),
                    ..owner
                }));
            }
            match read_owner(tx, run_id.as_str(), &store)? {
                None => Err(run_not_found(run_id.as_str())),
                Some((Some(current), _)) => Ok(RunClaim::Held(current)),
                // Unreachable inside the transaction: no owner means the update matched.
                Some((None, _)) => Err(StoreError::Conflict(format!(
                    "run `{run_id}`: claim found no owner but did not take the run"
                ))),
            }
        })
        .await
    }

    async fn renew_run(
        &self,
        run_id: &RunId,
        token: u64,
        lease_expires_at: i64,
    ) -> Result<(), StoreError> {
        let run_id = run_id.clone();
        let store = self.error_mapper();
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE flow_runs SET lease_expires_at = ?3 \
                     WHERE run_id = ?1 AND owner_token = ?2 AND owner_id IS NOT NULL",
                )
                .and_then(|mut s| {
                    s.execute(params![run_id.as_str(), wide(token), lease_expires_at])
                })
                .map_err(|e| store.map_err(e))?;
            if changed == 1 {
                return Ok(());
            }
            match read_owner(tx, run_id.as_str(), &store)? {
                None => Err(run_not_found(run_id.as_str())),
                Some((_, current)) => Err(stale_run_token(&run_id, token, current)),
            }
        })
        .await
    }

    async fn release_run(
        &self,
        run_id: &RunId,
        token: u64,
        update: RunUpdate,
    ) -> Result<(), StoreError> {
        let definition = update
            .definition
            .as_ref()
            .map(|d| to_json(&format!("definition of run `{run_id}`"), d))
            .transpose()?;
        let run_id = run_id.clone();
        let store = self.error_mapper();
        // `write` queues behind every earlier write of this store, so the
        // run's end lands after its node records.
        self.write(move |tx| {
            let changed =
                apply_run_update(tx, run_id.as_str(), update, definition, Some(token), &store)?;
            if changed == 1 {
                return Ok(());
            }
            match read_owner(tx, run_id.as_str(), &store)? {
                None => Err(run_not_found(run_id.as_str())),
                Some((_, current)) => Err(stale_run_token(&run_id, token, current)),
            }
        })
        .await
    }
}

/// Inserts run `row` unless its id is taken; the number of rows inserted.
fn insert_run(
    tx: &Transaction<'_>,
    row: &RunRow,
    store: &ErrorMapper,
) -> Result<usize, StoreError> {
    tx.prepare_cached(
        "INSERT INTO flow_runs (run_id, workflow, definition, inputs, config, status, \
             reason, created_at, updated_at, finished_at, owner_id, owner_host, \
             owner_pid, owner_token, lease_expires_at, parent_run_id, forked_from_node) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
             ?16, ?17) \
             ON CONFLICT DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.run_id,
            row.workflow,
            row.definition,
            row.inputs,
            row.config,
            row.status,
            row.reason,
            row.created_at,
            row.updated_at,
            row.finished_at,
            row.owner_id,
            row.owner_host,
            row.owner_pid,
            row.owner_token,
            row.lease_expires_at,
            row.parent_run_id,
            row.forked_from_node,
        ])
    })
    .map_err(|e| store.map_err(e))
}

/// [`insert_run`] refusing a taken id.
fn insert_new_run(
    tx: &Transaction<'_>,
    row: &RunRow,
    store: &ErrorMapper,
) -> Result<(), StoreError> {
    if insert_run(tx, row, store)? == 0 {
        return Err(StoreError::AlreadyExists {
            entity: "run",
            id: row.run_id.clone(),
        });
    }
    Ok(())
}

/// Binds `key` of `workflow` to `run_id` (or re-binds it from `replace`);
/// the run it names otherwise.
fn bind_key(
    tx: &Transaction<'_>,
    (workflow, key, run_id): (&str, &str, &str),
    replace: Option<&str>,
    store: &ErrorMapper,
) -> Result<Option<String>, StoreError> {
    let now = now_millis();
    let inserted = tx
        .execute(
            "INSERT INTO flow_run_keys (workflow, key, run_id, created_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![workflow, key, run_id, now],
        )
        .map_err(|e| store.map_err(e))?;
    if inserted == 1 {
        return Ok(None);
    }
    if let Some(old) = replace {
        let rebound = tx
            .execute(
                "UPDATE flow_run_keys SET run_id = ?3, created_at = ?4 \
                 WHERE workflow = ?1 AND key = ?2 AND run_id = ?5",
                params![workflow, key, run_id, now, old],
            )
            .map_err(|e| store.map_err(e))?;
        if rebound == 1 {
            return Ok(None);
        }
    }
    tx.query_row(
        "SELECT run_id FROM flow_run_keys WHERE workflow = ?1 AND key = ?2",
        params![workflow, key],
        |r| r.get(0),
    )
    .map(Some)
    .map_err(|e| store.map_err(e))
}
