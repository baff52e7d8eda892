//! Group commit of node records. Node and attempt records are queued and
//! one blocking task drains the queue: everything waiting goes into one
//! transaction (one commit, one WAL flush for all of them), in submission
//! order, and batches commit one after the other, so what is committed is
//! always a prefix of what was submitted. A caller that needs its record
//! durable waits for the commit of its batch; the records that
//! `RunStore` allows to be queued (a node started, an ended attempt) are not
//! waited for, and their errors are reported by the next
//! [`PostgresStore::flush_records`].
//!
//! When a batch fails, nothing of it is committed; its jobs then run one by
//! one, each in its own transaction, so each gets its own result.
//!
//! A job may carry a node-queue notification (`NOTIFY dagger_nodes`). They
//! are sent after the batch has committed, all in one statement of a
//! transaction of their own: a transaction that notifies holds the server's
//! notification lock until its commit is flushed, so notifying inside a
//! transaction that writes would serialize every writer on that flush; a
//! transaction that only notifies writes nothing to flush.

use super::PostgresStore;
use super::conn::{PgFail, StmtCache, is_connection_lost, map_pg};
use dagger_core::StoreError;
use parking_lot::Mutex;
use postgres::Transaction;
use tokio::sync::oneshot;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;

/// One write: its statements, run inside the batch's transaction (maybe
/// more than once: after a lost connection, or alone after the batch failed).
pub(crate) type Op =
    Box<dyn Fn(&mut Transaction<'_>, &mut StmtCache) -> Result<(), PgFail> + Send + Sync>;

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The channel of node-queue notifications.
pub(crate) const NODE_CHANNEL: &str = "dagger_nodes";

/// A queued job: a write, or (no op) a mark that replies once everything
/// queued before it is committed.
struct Job {
    op: Option<Op>,
    reply: Option<Reply>,
    /// Sent on [`NODE_CHANNEL`] (after the schema) once the write committed.
    note: Option<String>,
}

#[derive(Default)]
struct State {
    jobs: Vec<Job>,
    /// A task is draining the queue.
    busy: bool,
    /// The first error of a write nobody waited for.
    deferred: Option<StoreError>,
}

/// The queue of a store (shared by its clones).
#[derive(Default)]
pub(crate) struct Writer {
    state: Mutex<State>,
}

impl PostgresStore {
    /// Queues `op` and returns once it is committed, with its result.
    pub(crate) async fn write_grouped(&self, op: Op) -> Result<(), StoreError> {
        self.write_noted(op, None).await
    }

    /// [`Self::write_grouped`], then `note` on the node-queue channel.
    pub(crate) async fn write_noted(&self, op: Op, note: Option<String>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Some(op), Some(tx), note);
        rx.await.map_err(|_| self.writer_gone())?
    }

    /// Queues `op` without waiting; its error shows at the next
    /// [`Self::flush_records`].
    pub(crate) fn queue_grouped(&self, op: Op) {
        self.submit(Some(op), None, None);
    }

    /// Waits until everything queued so far is committed; the first error
    /// of a queued write nobody waited for, if any.
    pub(crate) async fn flush_records(&self) -> Result<(), StoreError> {
        self.settle_records().await?;
        match self.inner.writer.state.lock().deferred.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits until everything queued so far is committed (or failed): a
    /// write or read that must come after the queued records calls it
    /// first. Errors of queued writes stay for [`Self::flush_records`].
    pub(crate) async fn settle_records(&self) -> Result<(), StoreError> {
        let idle = {
            let s = self.inner.writer.state.lock();
            !s.busy && s.jobs.is_empty()
        };
        if idle {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.submit(None, Some(tx), None);
        rx.await.map_err(|_| self.writer_gone())?
    }

    fn writer_gone(&self) -> StoreError {
        StoreError::Backend {
            location: self.location().to_string(),
            message: "the record writer stopped".to_string(),
        }
    }

    fn submit(&self, op: Option<Op>, reply: Option<Reply>, note: Option<String>) {
        let start = {
            let mut s = self.inner.writer.state.lock();
            s.jobs.push(Job { op, reply, note });
            !std::mem::replace(&mut s.busy, true)
        };
        if start {
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.drain());
        }
    }

    /// Commits batches until the queue is empty.
    fn drain(&self) {
        loop {
            let batch: Vec<Job> = {
                let mut s = self.inner.writer.state.lock();
                if s.jobs.is_empty() {
                    s.busy = false;
                    return;
                }
                let n = s.jobs.len().min(MAX_BATCH);
                s.jobs.drain(..n).collect()
            };
            let writes = batch.iter().filter(|j| j.op.is_some()).count();
            let began = std::time::Instant::now();
            let result = self.commit(&batch);
            dagger_core::metrics::store_commit("postgres", writes, began.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    for job in batch {
                        self.reply(job.reply, Ok(()));
                    }
                }
                Err(e) if writes <= 1 => {
                    // The one write's error; marks only wait.
                    let mut e = Some(e);
                    for job in batch {
                        let r = match &job.op {
                            Some(_) => e.take().map_or(Ok(()), Err),
                            None => Ok(()),
                        };
                        self.reply(job.reply, r);
                    }
                }
                Err(_) => {
                    for job in batch {
                        let r = match &job.op {
                            Some(_) => self.commit(std::slice::from_ref(&job)),
                            None => Ok(()),
                        };
                        self.reply(job.reply, r);
                    }
                }
            }
        }
    }

    fn reply(&self, reply: Option<Reply>, result: Result<(), StoreError>) {
        match reply {
            Some(tx) => {
                let _ = tx.send(result);
            }
            None => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "queued node record write failed");
                    self.inner.writer.state.lock().deferred.get_or_insert(e);
                }
            }
        }
    }

    /// Runs the jobs' writes in one transaction, once more on a fresh
    /// connection if the first one was lost (the writes are upserts, so
    /// running them again is harmless even if the commit went through).
    fn commit(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let mut retried = false;
        loop {
            let mut conn = self.conn()?;
            let result = {
                let c = &mut *conn;
                c.client
                    .transaction()
                    .map_err(PgFail::from)
                    .and_then(|mut tx| {
                        for op in jobs.iter().filter_map(|j| j.op.as_ref()) {
                            op(&mut tx, &mut c.stmts)?;
                        }
                        tx.commit().map_err(PgFail::from)
                    })
            };
            match result {
                Ok(()) => {
                    self.announce(&mut conn, jobs);
                    return Ok(());
                }
                Err(PgFail::Store(e)) => return Err(e),
                Err(PgFail::Pg(e)) if !retried && is_connection_lost(&e) => {
                    tracing::warn!(location = %self.location(), error = %e,
                        "postgres connection lost; retrying the record batch on a fresh connection");
                    conn.mark_broken();
                    retried = true;
                }
                Err(PgFail::Pg(e)) => return Err(map_pg(&e, self.location())),
            }
        }
    }

    /// Sends the notifications of committed jobs, in one statement. A
    /// failure is only logged: the data is committed, and waiters look
    /// again on their own within seconds.
    fn announce(&self, conn: &mut super::conn::PgConn, jobs: &[Job]) {
        let mut notes: Vec<&str> = jobs.iter().filter_map(|j| j.note.as_deref()).collect();
        if notes.is_empty() {
            return;
        }
        notes.sort_unstable();
        notes.dedup();
        let sent = conn
            .stmts
            .get(
                &mut conn.client,
                "SELECT pg_notify($1, current_schema() || ' ' || n) FROM unnest($2::text[]) AS n",
            )
            .and_then(|stmt| conn.client.execute(&stmt, &[&NODE_CHANNEL, &notes]));
        if let Err(e) = sent {
            tracing::warn!(location = %self.location(), error = %e,
                "node-queue notifications not sent; waiters look again on their own");
        }
    }
}
