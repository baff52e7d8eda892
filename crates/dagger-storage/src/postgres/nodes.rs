//! [`NodeQueue`] over Postgres: the `node_queue` table, shared by a
//! dispatching coordinator and worker processes on any machine.
//!
//! Claims take their candidates `FOR UPDATE SKIP LOCKED`, so concurrent
//! claimers never wait on each other nor take the same item; each claim
//! increments the item's token, and renewals and completions are
//! conditional on it (an `UPDATE … WHERE token = $n`), so the completion of
//! a worker whose lease expired and was claimed again is rejected. An
//! enqueue sends `NOTIFY dagger_nodes` with `<schema> work`, a completion or
//! cancel `<schema> done <item>`; one listener thread per store turns them
//! into [`NodeQueue::work_signal`] bumps and wake-ups of the task waiting
//! for that item, so neither workers nor the coordinator poll (waiters still
//! look again every few seconds, in case a notification was lost while the
//! listener reconnected).

use super::PostgresStore;
use super::conn::{PgFail, decode, listen_loop, wide};
use dagger_core::store::{NodeClaim, NodeQueue, NodeResult, NodeWorkItem};
use dagger_core::{StoreError, now_millis};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, watch};

use super::writer::NODE_CHANNEL as CHANNEL;

/// How long a waiter trusts notifications before it looks again anyway.
const RECHECK: Duration = Duration::from_secs(5);

/// The wake-up side of LISTEN/NOTIFY for the node queue.
pub(crate) struct NodeSignal {
    work: watch::Sender<u64>,
    /// Items whose result was taken and whose row's removal is queued.
    taken: Arc<Mutex<HashSet<String>>>,
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    listener: std::sync::Once,
    /// Dropped with the store; the listener thread stops when it is gone.
    alive: Arc<()>,
}

impl NodeSignal {
    pub(crate) fn new() -> Self {
        Self {
            work: watch::Sender::new(0),
            taken: Arc::default(),
            waiters: Arc::default(),
            listener: std::sync::Once::new(),
            alive: Arc::new(()),
        }
    }
}

/// Removes a waiter's entry when its wait ends (returns or is dropped).
struct Waiting<'a> {
    waiters: &'a Mutex<HashMap<String, Arc<Notify>>>,
    item_id: &'a str,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.waiters.lock().remove(self.item_id);
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

fn not_found(item_id: &str) -> StoreError {
    StoreError::NotFound {
        entity: "node work item",
        id: item_id.to_string(),
    }
}

/// The rejection of a renewal or completion whose conditional update
/// matched nothing: the item is gone, or its token moved on.
fn rejection(
    client: &mut impl postgres::GenericClient,
    stmts: &mut super::conn::StmtCache,
    item_id: &str,
    token: u64,
) -> Result<StoreError, PgFail> {
    let stmt = stmts.get(client, "SELECT token FROM node_queue WHERE item_id = $1")?;
    let row = client.query_opt(&stmt, &[&item_id])?;
    Ok(match row {
        None => not_found(item_id),
        Some(row) => StoreError::StaleToken {
            entity: "node work item",
            id: item_id.to_string(),
            held: token,
            current: u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
        },
    })
}

impl PostgresStore {
    fn start_node_listener(&self) {
        let config = self.config().clone();
        let schema = self
            .schema()
            .map(str::to_string)
            .unwrap_or_else(|| "public".to_string());
        let work = self.inner.nodes.work.clone();
        let waiters = self.inner.nodes.waiters.clone();
        let alive = Arc::downgrade(&self.inner.nodes.alive);
        let location = self.location().to_string();
        let spawned = std::thread::Builder::new()
            .name("dagger-pg-nodes".into())
            .spawn(move || listen(&config, &schema, &work, &waiters, &alive, &location));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the postgres node LISTEN thread; node waiters rely on their timers");
        }
    }

    fn ensure_node_listener(&self) {
        self.inner
            .nodes
            .listener
            .call_once(|| self.start_node_listener());
    }

    /// Takes the result of a finished item: `Ok(Some)` and the row's
    /// removal is queued (committed with the next batch of the group-commit
    /// queue: the node's record follows right after), `Ok(None)` while it is
    /// open, `NotFound` when there is no such item.
    async fn take_result(&self, item_id: &str) -> Result<Option<NodeResult>, StoreError> {
        let taken = self.inner.nodes.taken.clone();
        if taken.lock().contains(item_id) {
            // Taken already: once the removal is committed, it is gone.
            self.settle_records().await?;
        }
        let result = self.read_result(item_id).await?;
        if result.is_some() {
            let id = item_id.to_string();
            taken.lock().insert(id.clone());
            self.queue_grouped(Box::new(move |tx, stmts| {
                let stmt = stmts.get(
                    tx,
                    "DELETE FROM node_queue WHERE item_id = $1 AND state = 'done'",
                )?;
                tx.execute(&stmt, &[&id])?;
                taken.lock().remove(&id);
                Ok(())
            }));
        }
        Ok(result)
    }

    /// The result of a finished item, `Ok(None)` while it is open,
    /// `NotFound` when there is no such item.
    async fn read_result(&self, item_id: &str) -> Result<Option<NodeResult>, StoreError> {
        let id = item_id.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT result FROM node_queue WHERE item_id = $1 AND state = 'done'",
            )?;
            if let Some(row) = c.client.query_opt(&stmt, &[&id])? {
                let text: Option<String> = row.try_get(0)?;
                let result = serde_json::from_str(text.as_deref().unwrap_or("null"))
                    .map_err(|e| decode(format!("result of node work item `{id}`"), e))?;
                return Ok(Some(result));
            }
            let stmt = c
                .stmts
                .get(&mut c.client, "SELECT 1 FROM node_queue WHERE item_id = $1")?;
            match c.client.query_opt(&stmt, &[&id])? {
                Some(_) => Ok(None),
                None => Err(PgFail::Store(not_found(&id))),
            }
        })
        .await
    }
}

/// The listener thread: `LISTEN dagger_nodes` on a dedicated connection.
/// After (re)connecting it wakes everyone, since notifications sent
/// meanwhile are lost; the one-second timeout only lets it notice that its
/// store was dropped.
fn listen(
    config: &postgres::Config,
    schema: &str,
    work: &watch::Sender<u64>,
    waiters: &Mutex<HashMap<String, Arc<Notify>>>,
    alive: &Weak<()>,
    location: &str,
) {
    let wake_all = || {
        work.send_modify(|n| *n = n.wrapping_add(1));
        for n in waiters.lock().values() {
            n.notify_one();
        }
    };
    listen_loop(
        config,
        CHANNEL,
        alive,
        location,
        "node queue",
        wake_all,
        |payload| {
            let mut parts = payload.splitn(3, ' ');
            if parts.next() != Some(schema) {
                return;
            }
            match (parts.next(), parts.next()) {
                (Some("work"), _) => work.send_modify(|v| *v = v.wrapping_add(1)),
                (Some("done"), Some(item)) => {
                    if let Some(n) = waiters.lock().get(item) {
                        n.notify_one();
                    }
                }
                _ => {}
            }
        },
    );
}

#[async_trait::async_trait]
impl NodeQueue for PostgresStore {
    async fn enqueue(&self, item: NodeWorkItem) -> Result<(), StoreError> {
        let json = serde_json::to_string(&item)
            .map_err(|e| decode(format!("node work item `{}`", item.item_id), e))?;
        // Through the group-commit queue: enqueues made at once share one
        // commit and one notification.
        let (id, run_id, action) = (item.item_id.clone(), item.run_id.to_string(), item.action);
        self.write_noted(
            Box::new(move |tx, stmts| {
                let stmt = stmts.get(
                    tx,
                    "INSERT INTO node_queue (item_id, run_id, action, item, state, created_at, \
                       updated_at) VALUES ($1, $2, $3, $4, 'queued', $5, $5) \
                     ON CONFLICT (item_id) DO UPDATE SET item = excluded.item, state = 'queued', \
                       worker = NULL, lease_expires_at = NULL, result = NULL, \
                       updated_at = excluded.updated_at",
                )?;
                tx.execute(&stmt, &[&id, &run_id, &action, &json, &now_millis()])?;
                Ok(())
            }),
            Some("work".to_string()),
        )
        .await?;
        self.inner
            .nodes
            .work
            .send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn claim(
        &self,
        worker: &str,
        actions: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<NodeClaim>, StoreError> {
        if limit == 0 || actions.is_empty() {
            return Ok(Vec::new());
        }
        let worker = worker.to_string();
        let actions = actions.to_vec();
        let lease = lease_ms(lease);
        let limit = wide(limit);
        self.with_conn(move |c| {
            let now = now_millis();
            let expires = now.saturating_add(lease);
            let stmt = c.stmts.get(
                &mut c.client,
                "WITH picked AS ( \
                   SELECT item_id, state FROM node_queue \
                   WHERE action = ANY($1) AND state <> 'done' \
                     AND (state = 'queued' OR lease_expires_at <= $2) \
                   ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE node_queue q SET state = 'claimed', token = q.token + 1, worker = $4, \
                   lease_expires_at = $5, updated_at = $2 \
                 FROM picked WHERE q.item_id = picked.item_id \
                 RETURNING q.item, q.token, q.seq, picked.state = 'claimed'",
            )?;
            let rows = c
                .client
                .query(&stmt, &[&actions, &now, &limit, &worker, &expires])?;
            let mut claims = Vec::with_capacity(rows.len());
            let mut ordered: Vec<(i64, NodeClaim)> = Vec::with_capacity(rows.len());
            // Items taken over from a holder whose lease ran out.
            let mut expired = 0u64;
            for row in rows {
                if row.try_get::<_, bool>(3)? {
                    expired += 1;
                }
                let text: String = row.try_get(0)?;
                let item: NodeWorkItem = serde_json::from_str(&text)
                    .map_err(|e| decode("a claimed node work item", e))?;
                let token: i64 = row.try_get(1)?;
                ordered.push((
                    row.try_get(2)?,
                    NodeClaim {
                        item,
                        token: u64::try_from(token).unwrap_or(0),
                        lease_expires_at: expires,
                    },
                ));
            }
            dagger_core::metrics::lease_expiries("nodes", expired);
            ordered.sort_by_key(|(seq, _)| *seq);
            claims.extend(ordered.into_iter().map(|(_, c)| c));
            Ok(claims)
        })
        .await
    }

    async fn renew(&self, item_id: &str, token: u64, lease: Duration) -> Result<i64, StoreError> {
        let id = item_id.to_string();
        let lease = lease_ms(lease);
        self.with_conn(move |c| {
            let expires = now_millis().saturating_add(lease);
            let stmt = c.stmts.get(
                &mut c.client,
                "UPDATE node_queue SET lease_expires_at = $3, updated_at = $4 \
                 WHERE item_id = $1 AND token = $2 AND state = 'claimed'",
            )?;
            let n = c
                .client
                .execute(&stmt, &[&id, &wide(token), &expires, &now_millis()])?;
            if n == 1 {
                Ok(expires)
            } else {
                Err(PgFail::Store(rejection(
                    &mut c.client,
                    &mut c.stmts,
                    &id,
                    token,
                )?))
            }
        })
        .await
    }

    async fn complete(
        &self,
        item_id: &str,
        token: u64,
        result: NodeResult,
    ) -> Result<(), StoreError> {
        let id = item_id.to_string();
        let json = serde_json::to_string(&result)
            .map_err(|e| decode(format!("result of node work item `{id}`"), e))?;
        // Through the group-commit queue (completions made at once share
        // one commit and one notification statement); the waiter is
        // notified after the commit, so it finds the result.
        let note = format!("done {id}");
        self.write_noted(
            Box::new(move |tx, stmts| {
                let stmt = stmts.get(
                    tx,
                    "UPDATE node_queue SET state = 'done', result = $3, lease_expires_at = NULL, \
                       updated_at = $4 \
                     WHERE item_id = $1 AND token = $2 AND state = 'claimed'",
                )?;
                let n = tx.execute(&stmt, &[&id, &wide(token), &json, &now_millis()])?;
                if n != 1 {
                    return Err(PgFail::Store(rejection(tx, stmts, &id, token)?));
                }
                Ok(())
            }),
            Some(note),
        )
        .await
    }

    async fn cancel(&self, item_id: &str) -> Result<(), StoreError> {
        let id = item_id.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "WITH gone AS (DELETE FROM node_queue WHERE item_id = $1 RETURNING item_id) \
                 SELECT pg_notify($2, current_schema() || ' done ' || item_id) FROM gone",
            )?;
            c.client.execute(&stmt, &[&id, &CHANNEL])?;
            Ok(())
        })
        .await
    }

    async fn cancel_run(&self, run_id: &str) -> Result<u64, StoreError> {
        let run_id = run_id.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "WITH gone AS (DELETE FROM node_queue WHERE run_id = $1 RETURNING item_id) \
                 SELECT pg_notify($2, current_schema() || ' done ' || item_id) FROM gone",
            )?;
            Ok(c.client.execute(&stmt, &[&run_id, &CHANNEL])?)
        })
        .await
    }

    async fn wait_result(&self, item_id: &str) -> Result<NodeResult, StoreError> {
        self.ensure_node_listener();
        let notify = Arc::new(Notify::new());
        self.inner
            .nodes
            .waiters
            .lock()
            .insert(item_id.to_string(), notify.clone());
        let _waiting = Waiting {
            waiters: &self.inner.nodes.waiters,
            item_id,
        };
        loop {
            if let Some(result) = self.take_result(item_id).await? {
                return Ok(result);
            }
            // `notify_one` keeps a permit, so a wake-up between the check
            // and this wait is not lost.
            let _ = tokio::time::timeout(RECHECK, notify.notified()).await;
        }
    }

    fn work_signal(&self) -> watch::Receiver<u64> {
        self.ensure_node_listener();
        self.inner.nodes.work.subscribe()
    }

    fn location(&self) -> String {
        PostgresStore::location(self).to_string()
    }
}
