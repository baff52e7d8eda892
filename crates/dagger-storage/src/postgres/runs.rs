//! [`RunStore`] over Postgres: `flow_runs`, `node_runs`, `node_attempts`
//! (see `attempts.rs`) and `run_controls`.
//! Node and attempt records go through the group-commit queue (`writer.rs`):
//! many of them share one commit. Every other write is its own statement or
//! transaction, made after the records queued before it, and returns after
//! commit; reads of node records see the queued ones.

use super::PostgresStore;
use super::artifacts::INSERT_ARTIFACT;
use super::conn::{PgConn, PgFail, wide};
use super::writer::Op;
use crate::rows::narrow;
use crate::rows::run::{
    NodeRow, RunRow, decode_owner, node_columns, node_metadata, run_columns, run_not_found,
};
use crate::rows::{from_json, to_json};
use dagger_core::store::{
    ArtifactId, ArtifactStore, AttemptQuery, AttemptRecord, ControlRequest, KeyedCreate,
    NodeRunRecord, RunClaim, RunOwner, RunQuery, RunRecord, RunStore, RunUpdate, SignalRecord,
    decision_conflict, stale_run_token,
};
use dagger_core::{RunId, RunStatus, StoreError, now_millis};
use postgres::Row;
use postgres::error::SqlState;

const SELECT_RUN: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM flow_runs WHERE run_id = $1"
);

const INSERT_RUN: &str = "INSERT INTO flow_runs (run_id, workflow, definition, inputs, config, \
     status, reason, created_at, updated_at, finished_at, owner_id, owner_host, owner_pid, \
     owner_token, lease_expires_at, parent_run_id, forked_from_node) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT DO NOTHING";

/// The parameters of [`INSERT_RUN`].
fn run_params(row: &RunRow) -> [&(dyn postgres::types::ToSql + Sync); 17] {
    [
        &row.run_id,
        &row.workflow,
        &row.definition,
        &row.inputs,
        &row.config,
        &row.status,
        &row.reason,
        &row.created_at,
        &row.updated_at,
        &row.finished_at,
        &row.owner_id,
        &row.owner_host,
        &row.owner_pid,
        &row.owner_token,
        &row.lease_expires_at,
        &row.parent_run_id,
        &row.forked_from_node,
    ]
}

/// The error for a taken run id.
fn taken(row: &RunRow) -> StoreError {
    StoreError::AlreadyExists {
        entity: "run",
        id: row.run_id.clone(),
    }
}

const SELECT_CHILDREN: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM flow_runs WHERE parent_run_id = $1 ORDER BY created_at, seq"
);

const SELECT_NODES: &str = concat!(
    "SELECT ",
    node_columns!(),
    " FROM node_runs WHERE run_id = $1 ORDER BY node_id, invocation_key"
);

const UPSERT_NODE: &str = concat!(
    "INSERT INTO node_runs (",
    node_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (run_id, node_id, invocation_key) DO UPDATE SET \
       action = excluded.action, attempt = excluded.attempt, state = excluded.state, \
       input_hash = excluded.input_hash, output_artifact_id = excluded.output_artifact_id, \
       error = excluded.error, started_at = excluded.started_at, \
       finished_at = excluded.finished_at, metadata = excluded.metadata"
);

/// The write of a node record, after the row of its output's artifact
/// when `output` is given (content addressed: should the record fail, a row
/// nothing refers to is harmless, as after a separate `put_artifact`).
fn node_op(record: NodeRunRecord, output: Option<Vec<u8>>) -> Result<Op, StoreError> {
    let metadata = node_metadata(&record)?;
    Ok(Box::new(move |tx, stmts| {
        if let (Some(bytes), Some(id)) = (&output, &record.output_artifact_id) {
            let stmt = stmts.get(tx, INSERT_ARTIFACT)?;
            tx.execute(
                &stmt,
                &[&id.as_str(), &wide(bytes.len()), bytes, &now_millis()],
            )?;
        }
        let stmt = stmts.get(tx, UPSERT_NODE)?;
        let result = tx.execute(
            &stmt,
            &[
                &record.run_id.as_str(),
                &record.node_id.as_str(),
                &record.invocation_key,
                &record.action,
                &i64::from(record.attempt),
                &record.state.as_str(),
                &record.input_hash,
                &record.output_artifact_id.as_ref().map(ArtifactId::as_str),
                &record.error,
                &record.started_at,
                &record.finished_at,
                &metadata,
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                // The constraint says which reference is unknown.
                let constraint = e
                    .as_db_error()
                    .and_then(|d| d.constraint())
                    .unwrap_or_default();
                if constraint.contains("output_artifact") {
                    Err(StoreError::NotFound {
                        entity: "artifact",
                        id: record
                            .output_artifact_id
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                    }
                    .into())
                } else {
                    Err(run_not_found(record.run_id.as_str()).into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }))
}

/// The `SET` list of `update_run` and `release_run`: `$2`..`$8` bind the
/// [`RunUpdate`]. A NULL parameter leaves a column unchanged; the `*_set`
/// flags let `Some(None)` clear a nullable column.
macro_rules! update_columns {
    () => {
        "status = COALESCE($2::text, status), \
         reason = CASE WHEN $3::bool THEN $4::text ELSE reason END, \
         definition = COALESCE($5::text, definition), \
         finished_at = CASE WHEN $6::bool THEN $7::bigint ELSE finished_at END, \
         updated_at = GREATEST($8::bigint, updated_at)"
    };
}

/// Applies `update` to run `run_id` in one statement; with `release`, only
/// while the ownership holding that token holds the run, clearing the owner
/// too (`release_run`). Returns the number of rows changed.
fn apply_run_update(
    c: &mut PgConn,
    run_id: &str,
    update: &RunUpdate,
    definition: Option<&str>,
    release: Option<u64>,
) -> Result<u64, PgFail> {
    const UPDATE: &str = concat!(
        "UPDATE flow_runs SET ",
        update_columns!(),
        " WHERE run_id = $1"
    );
    const RELEASE: &str = concat!(
        "UPDATE flow_runs SET ",
        update_columns!(),
        ", owner_id = NULL, owner_host = NULL, owner_pid = NULL, lease_expires_at = NULL \
         WHERE run_id = $1 AND owner_token = $9 AND owner_id IS NOT NULL"
    );
    let status = update.status.map(RunStatus::as_str);
    let reason_set = update.reason.is_some();
    let reason = update.reason.clone().flatten();
    let finished_set = update.finished_at.is_some();
    let finished_at = update.finished_at.flatten();
    let now = now_millis();
    let token = release.map(wide);
    let mut values: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
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
    let stmt = c.stmts.get(
        &mut c.client,
        if release.is_some() { RELEASE } else { UPDATE },
    )?;
    Ok(c.client.execute(&stmt, &values)?)
}

/// The owner of run `run_id` and its last fencing token; `None` for an unknown run.
fn read_owner(
    client: &mut impl postgres::GenericClient,
    run_id: &str,
) -> Result<Option<(Option<RunOwner>, u64)>, PgFail> {
    let Some(row) = client.query_opt(
        "SELECT owner_id, owner_host, owner_pid, owner_token, lease_expires_at \
         FROM flow_runs WHERE run_id = $1",
        &[&run_id],
    )?
    else {
        return Ok(None);
    };
    let token: i64 = row.try_get(3)?;
    let owner = decode_owner(
        run_id,
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        token,
        row.try_get(4)?,
    )?;
    Ok(Some((owner, u64::try_from(token).unwrap_or_default())))
}

/// Reads the columns in `run_columns!` order.
fn read_run(row: &Row) -> Result<RunRow, postgres::Error> {
    Ok(RunRow {
        run_id: row.try_get(0)?,
        workflow: row.try_get(1)?,
        definition: row.try_get(2)?,
        inputs: row.try_get(3)?,
        config: row.try_get(4)?,
        status: row.try_get(5)?,
        reason: row.try_get(6)?,
        created_at: row.try_get(7)?,
        updated_at: row.try_get(8)?,
        finished_at: row.try_get(9)?,
        owner_id: row.try_get(10)?,
        owner_host: row.try_get(11)?,
        owner_pid: row.try_get(12)?,
        owner_token: row.try_get(13)?,
        lease_expires_at: row.try_get(14)?,
        parent_run_id: row.try_get(15)?,
        forked_from_node: row.try_get(16)?,
    })
}

/// Reads the columns in `node_columns!` order.
fn read_node(row: &Row) -> Result<NodeRow, postgres::Error> {
    Ok(NodeRow {
        run_id: row.try_get(0)?,
        node_id: row.try_get(1)?,
        invocation_key: row.try_get(2)?,
        action: row.try_get(3)?,
        attempt: row.try_get(4)?,
        state: row.try_get(5)?,
        input_hash: row.try_get(6)?,
        output_artifact_id: row.try_get(7)?,
        error: row.try_get(8)?,
        started_at: row.try_get(9)?,
        finished_at: row.try_get(10)?,
        metadata: row.try_get(11)?,
    })
}

fn decode_run(row: &Row) -> Result<RunRecord, PgFail> {
    Ok(read_run(row)?.decode()?)
}

fn decode_node(row: &Row) -> Result<NodeRunRecord, PgFail> {
    Ok(read_node(row)?.decode()?)
}

/// The `list_runs` statement for the filters set; placeholders are numbered
/// in order, after `$1` (limit) and `$2` (offset).
fn list_sql(query: &RunQuery) -> String {
    let mut filters = Vec::new();
    if query.status.is_some() {
        filters.push(format!("status = ${}", filters.len() + 3));
    }
    if query.workflow.is_some() {
        filters.push(format!("workflow = ${}", filters.len() + 3));
    }
    let filter = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    format!(
        "SELECT {} FROM flow_runs {filter} \
         ORDER BY created_at DESC, seq DESC LIMIT $1 OFFSET $2",
        run_columns!()
    )
}

#[async_trait::async_trait]
impl RunStore for PostgresStore {
    async fn create_run(&self, run: RunRecord) -> Result<(), StoreError> {
        let row = RunRow::encode(&run)?;
        self.with_write(move |c| {
            let stmt = c.stmts.get(&mut c.client, INSERT_RUN)?;
            if c.client.execute(&stmt, &run_params(&row))? == 0 {
                return Err(taken(&row).into());
            }
            Ok(())
        })
        .await
    }

    async fn create_keyed_run(
        &self,
        run: RunRecord,
        key: &str,
        replace: Option<&RunId>,
    ) -> Result<KeyedCreate, StoreError> {
        let row = RunRow::encode(&run)?;
        let key = key.to_string();
        let replace = replace.map(|r| r.to_string());
        self.with_write(move |c| {
            let mut tx = c.client.transaction()?;
            let now = now_millis();
            let slot: [&(dyn postgres::types::ToSql + Sync); 4] =
                [&row.workflow, &key, &row.run_id, &now];
            // The primary key makes a concurrent binder wait for this
            // transaction and then find the key taken.
            let mut bound = tx.execute(
                "INSERT INTO flow_run_keys (workflow, key, run_id, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &slot,
            )? == 1;
            if let (false, Some(old)) = (bound, &replace) {
                bound = tx.execute(
                    "UPDATE flow_run_keys SET run_id = $3, created_at = $4 \
                     WHERE workflow = $1 AND key = $2 AND run_id = $5",
                    &[&row.workflow, &key, &row.run_id, &now, old],
                )? == 1;
            }
            if !bound {
                let holder: String = tx
                    .query_one(
                        "SELECT run_id FROM flow_run_keys WHERE workflow = $1 AND key = $2",
                        &[&row.workflow, &key],
                    )?
                    .get(0);
                return Ok(KeyedCreate::Existing(RunId::from(holder)));
            }
            if tx.execute(INSERT_RUN, &run_params(&row))? == 0 {
                return Err(taken(&row).into());
            }
            tx.commit()?;
            Ok(KeyedCreate::Created)
        })
        .await
    }

    async fn update_run(&self, run_id: &RunId, update: RunUpdate) -> Result<(), StoreError> {
        self.settle_records().await?;
        let definition = update
            .definition
            .as_ref()
            .map(|d| to_json(&format!("definition of run `{run_id}`"), d))
            .transpose()?;
        let run_id = run_id.clone();
        self.with_write(move |c| {
            let changed =
                apply_run_update(c, run_id.as_str(), &update, definition.as_deref(), None)?;
            if changed == 0 {
                return Err(run_not_found(run_id.as_str()).into());
            }
            Ok(())
        })
        .await
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        let run_id = run_id.clone();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(&mut c.client, SELECT_RUN)?;
            c.client
                .query_opt(&stmt, &[&run_id.as_str()])?
                .map(|row| decode_run(&row))
                .transpose()
        })
        .await
    }

    async fn child_runs(&self, run_id: &RunId) -> Result<Vec<RunRecord>, StoreError> {
        let run_id = run_id.clone();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(&mut c.client, SELECT_CHILDREN)?;
            c.client
                .query(&stmt, &[&run_id.as_str()])?
                .iter()
                .map(decode_run)
                .collect()
        })
        .await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        let sql = list_sql(query);
        let limit: Option<i64> = query.limit.map(wide);
        let offset = wide(query.offset);
        let status = query.status.map(RunStatus::as_str);
        let workflow = query.workflow.clone();
        self.with_conn(move |c| {
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&limit, &offset];
            if let Some(s) = &status {
                params.push(s);
            }
            if let Some(w) = &workflow {
                params.push(w);
            }
            c.client
                .query(sql.as_str(), &params)?
                .iter()
                .map(decode_run)
                .collect()
        })
        .await
    }

    async fn put_node_run(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        let op = node_op(record, None)?;
        self.write_grouped(op).await
    }

    async fn put_node_started(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        // Queued: committed with the next batch (see `RunStore`).
        self.queue_grouped(node_op(record, None)?);
        Ok(())
    }

    async fn put_completed_node_run(
        &self,
        artifacts: &dyn ArtifactStore,
        output: Vec<u8>,
        mut record: NodeRunRecord,
    ) -> Result<ArtifactId, StoreError> {
        // One write (in one batch) for both when the artifacts live in this
        // very store (`Stores::from(PostgresStore)`).
        let here = std::ptr::addr_eq(std::ptr::from_ref(artifacts), std::ptr::from_ref(self));
        if !here {
            let id = artifacts.put_artifact(output).await?;
            record.output_artifact_id = Some(id.clone());
            self.put_node_run(record).await?;
            return Ok(id);
        }
        let id = ArtifactId::of(&output);
        record.output_artifact_id = Some(id.clone());
        let op = node_op(record, Some(output))?;
        self.write_grouped(op).await?;
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
        self.select_attempts(run_id, query).await
    }

    async fn node_runs(&self, run_id: &RunId) -> Result<Vec<NodeRunRecord>, StoreError> {
        self.settle_records().await?;
        let run_id = run_id.clone();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(&mut c.client, SELECT_NODES)?;
            c.client
                .query(&stmt, &[&run_id.as_str()])?
                .iter()
                .map(decode_node)
                .collect()
        })
        .await
    }

    async fn push_control(
        &self,
        run_id: &RunId,
        request: ControlRequest,
    ) -> Result<u64, StoreError> {
        let text = to_json(&format!("control request for run `{run_id}`"), &request)?;
        let run_id = run_id.clone();
        self.settle_records().await?;
        self.with_conn(move |c| {
            let lock = c.stmts.get(
                &mut c.client,
                "SELECT 1 FROM flow_runs WHERE run_id = $1 FOR NO KEY UPDATE",
            )?;
            let insert = c.stmts.get(
                &mut c.client,
                "INSERT INTO run_controls (run_id, seq, request, created_at) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3 FROM run_controls \
                 WHERE run_id = $1 RETURNING seq",
            )?;
            let earlier = c.stmts.get(
                &mut c.client,
                "SELECT seq, request, created_at FROM run_controls WHERE run_id = $1 ORDER BY seq",
            )?;
            let mut tx = c.client.transaction()?;
            // The row lock serializes pushers of one run, so MAX + 1 cannot race.
            if tx.query_opt(&lock, &[&run_id.as_str()])?.is_none() {
                return Err(run_not_found(run_id.as_str()).into());
            }
            // Under the same lock, two decisions of one node cannot both be
            // recorded: the first wins.
            if request.decided_node().is_some() {
                for row in tx.query(&earlier, &[&run_id.as_str()])? {
                    let seq: i64 = row.try_get(0)?;
                    let text: String = row.try_get(1)?;
                    let at_ms: i64 = row.try_get(2)?;
                    let what = format!("control request {seq} of run `{run_id}`");
                    let seq = narrow(&what, seq)?;
                    let earlier: ControlRequest = from_json(&what, &text)?;
                    if let Some(e) = decision_conflict(&run_id, &request, seq, &earlier, at_ms) {
                        return Err(e.into());
                    }
                }
            }
            let seq: i64 = tx
                .query_one(&insert, &[&run_id.as_str(), &text, &now_millis()])?
                .try_get(0)?;
            tx.commit()?;
            Ok(narrow("control sequence number", seq)?)
        })
        .await
    }

    async fn controls_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<(u64, ControlRequest)>, StoreError> {
        let run_id = run_id.clone();
        let after = wide(after);
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT seq, request FROM run_controls WHERE run_id = $1 AND seq > $2 \
                 ORDER BY seq",
            )?;
            c.client
                .query(&stmt, &[&run_id.as_str(), &after])?
                .iter()
                .map(|row| {
                    let seq: i64 = row.try_get(0)?;
                    let text: String = row.try_get(1)?;
                    let what = format!("control request {seq} of run `{run_id}`");
                    Ok((narrow(&what, seq)?, from_json(&what, &text)?))
                })
                .collect()
        })
        .await
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
        self.settle_records().await?;
        self.with_conn(move |c| {
            let lock = c.stmts.get(
                &mut c.client,
                "SELECT 1 FROM flow_runs WHERE run_id = $1 FOR NO KEY UPDATE",
            )?;
            let insert = c.stmts.get(
                &mut c.client,
                "INSERT INTO run_signals (run_id, seq, name, payload, created_at) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM run_signals \
                 WHERE run_id = $1 RETURNING seq",
            )?;
            let mut tx = c.client.transaction()?;
            // The row lock serializes senders to one run, so MAX + 1 cannot race.
            if tx.query_opt(&lock, &[&run_id.as_str()])?.is_none() {
                return Err(run_not_found(run_id.as_str()).into());
            }
            let seq: i64 = tx
                .query_one(&insert, &[&run_id.as_str(), &name, &text, &now_millis()])?
                .try_get(0)?;
            tx.commit()?;
            Ok(narrow("signal sequence number", seq)?)
        })
        .await
    }

    async fn signals_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<SignalRecord>, StoreError> {
        let run_id = run_id.clone();
        let after = wide(after);
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT seq, name, payload, created_at FROM run_signals \
                 WHERE run_id = $1 AND seq > $2 ORDER BY seq",
            )?;
            c.client
                .query(&stmt, &[&run_id.as_str(), &after])?
                .iter()
                .map(|row| {
                    let seq: i64 = row.try_get(0)?;
                    let text: String = row.try_get(2)?;
                    let what = format!("signal {seq} of run `{run_id}`");
                    Ok(SignalRecord {
                        seq: narrow(&what, seq)?,
                        name: row.try_get(1)?,
                        payload: from_json(&what, &text)?,
                        sent_at: row.try_get(3)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn find_memoized(
        &self,
        action: &str,
        input_hash: &str,
    ) -> Result<Option<ArtifactId>, StoreError> {
        let action = action.to_string();
        let input_hash = input_hash.to_string();
        self.settle_records().await?;
        self.with_conn(move |c| {
            // `state = 'Completed'` and `input_hash = $2` match the partial index `node_runs_memo`.
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT output_artifact_id FROM node_runs \
                 WHERE action = $1 AND input_hash = $2 AND state = 'Completed' \
                   AND output_artifact_id IS NOT NULL LIMIT 1",
            )?;
            let found = c.client.query_opt(&stmt, &[&action, &input_hash])?;
            Ok(found
                .map(|row| row.try_get::<_, String>(0))
                .transpose()?
                .map(ArtifactId::from_hex))
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.flush_records().await
    }

    async fn claim_run(
        &self,
        run_id: &RunId,
        owner: RunOwner,
        dead_owner: Option<&str>,
    ) -> Result<RunClaim, StoreError> {
        let run_id = run_id.clone();
        let dead_owner = dead_owner.map(str::to_string);
        self.with_conn(move |c| {
            // A concurrent claim of the same row waits for this one's commit
            // and then re-checks the condition against the new lease, so
            // exactly one of them takes the run.
            let stmt = c.stmts.get(
                &mut c.client,
                "UPDATE flow_runs SET owner_id = $2, owner_host = $3, owner_pid = $4, \
                   lease_expires_at = $5, owner_token = owner_token + 1, \
                   updated_at = GREATEST($6, updated_at) \
                 WHERE run_id = $1 \
                   AND (owner_id IS NULL OR lease_expires_at <= $6 OR owner_id = $7) \
                 RETURNING owner_token",
            )?;
            // The owner may release the run between the update and the read
            // of who holds it; the claim then simply tries again.
            for _ in 0..3 {
                let taken = c.client.query_opt(
                    &stmt,
                    &[
                        &run_id.as_str(),
                        &owner.owner_id,
                        &owner.host,
                        &i64::from(owner.pid),
                        &owner.lease_expires_at,
                        &now_millis(),
                        &dead_owner,
                    ],
                )?;
                if let Some(row) = taken {
                    let token: i64 = row.try_get(0)?;
                    return Ok(RunClaim::Claimed(RunOwner {
                        token: narrow("owner token", token)?,
                        ..owner.clone()
                    }));
                }
                match read_owner(&mut c.client, run_id.as_str())? {
                    None => return Err(run_not_found(run_id.as_str()).into()),
                    // A retried claim whose first try committed.
                    Some((Some(current), _)) if current.owner_id == owner.owner_id => {
                        return Ok(RunClaim::Claimed(current));
                    }
                    Some((Some(current), _)) => return Ok(RunClaim::Held(current)),
                    Some((None, _)) => {}
                }
            }
            Err(StoreError::Conflict(format!(
                "run `{run_id}` was claimed and released repeatedly while this claim ran; \
                 claim it again"
            ))
            .into())
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
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "UPDATE flow_runs SET lease_expires_at = $3 \
                 WHERE run_id = $1 AND owner_token = $2 AND owner_id IS NOT NULL",
            )?;
            let changed = c
                .client
                .execute(&stmt, &[&run_id.as_str(), &wide(token), &lease_expires_at])?;
            if changed == 1 {
                return Ok(());
            }
            match read_owner(&mut c.client, run_id.as_str())? {
                None => Err(run_not_found(run_id.as_str()).into()),
                Some((_, current)) => Err(stale_run_token(&run_id, token, current).into()),
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
        self.settle_records().await?;
        self.with_write(move |c| {
            let changed = apply_run_update(
                c,
                run_id.as_str(),
                &update,
                definition.as_deref(),
                Some(token),
            )?;
            if changed == 1 {
                return Ok(());
            }
            match read_owner(&mut c.client, run_id.as_str())? {
                None => Err(run_not_found(run_id.as_str()).into()),
                Some((_, current)) => Err(stale_run_token(&run_id, token, current).into()),
            }
        })
        .await
    }
}
