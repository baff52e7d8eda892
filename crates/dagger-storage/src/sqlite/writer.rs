//! The single writer thread. It drains a queue of write jobs into batched
//! transactions (group commit): one `BEGIN IMMEDIATE ... COMMIT` per batch,
//! each job in its own savepoint so one failing job does not undo the others.
//! Jobs of one statement skip the savepoint: SQLite already undoes a failed
//! statement by itself, and the savepoint pair cost as much as the insert.
//! Jobs commit in submission order, so what is on disk after a crash is
//! always a prefix of what was submitted.

use crate::error::{map_sqlite, with_waited};
use dagger_core::StoreError;
use parking_lot::Mutex;
use rusqlite::{Connection, Transaction};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 4096;

pub(crate) type AnyResult = Result<Box<dyn Any + Send>, StoreError>;
pub(crate) type Work = Box<dyn FnOnce(&Transaction<'_>) -> AnyResult + Send>;

pub(crate) enum Reply {
    /// Nobody waits; errors are kept for the next `flush`.
    None,
    /// An async caller.
    Async(tokio::sync::oneshot::Sender<AnyResult>),
    /// A blocking caller.
    Blocking(mpsc::SyncSender<AnyResult>),
}

impl Reply {
    fn send(self, result: AnyResult, deferred: &Mutex<Option<StoreError>>) {
        match self {
            Reply::None => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "queued store write failed");
                    deferred.lock().get_or_insert(e);
                }
            }
            Reply::Async(tx) => {
                let _ = tx.send(result);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// How a job is kept apart from the other jobs of its batch when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// In its own savepoint, rolled back when the job fails.
    Savepoint,
    /// None needed: the job runs at most one statement that changes the
    /// database (or several whose effects may stay when a later one fails,
    /// like a content-addressed artifact row nothing refers to yet).
    Statement,
}

pub(crate) enum Job {
    Write {
        work: Work,
        reply: Reply,
        isolation: Isolation,
    },
    /// Replies once everything queued before it is committed.
    Flush(Reply),
}

impl Job {
    fn into_reply(self) -> Reply {
        match self {
            Job::Write { reply, .. } | Job::Flush(reply) => reply,
        }
    }
}

/// What the writer thread shares with the store handles.
pub(crate) struct Shared {
    /// The database's name for error messages.
    pub(crate) location: String,
    /// The first error of a fire-and-forget job since the last flush.
    pub(crate) deferred: Arc<Mutex<Option<StoreError>>>,
    /// Jobs taken off the queue and finished (committed or failed), counted
    /// in queue order; readers compare it with the number submitted.
    pub(crate) processed: Arc<AtomicU64>,
    /// The configured busy timeout, reported in [`StoreError::Locked`].
    pub(crate) busy_timeout_ms: u64,
    /// This process's write lock on the file: task transactions queue on it
    /// instead of meeting this thread on SQLite's lock (whose busy handler
    /// sleeps), and the checkpointer takes it to let the WAL restart.
    pub(crate) file: Arc<crate::sqlite::tasks::FileShared>,
}

/// Runs the writer loop until every sender is dropped.
pub(crate) fn run(mut conn: Connection, rx: &mpsc::Receiver<Job>, shared: &Shared) {
    let mut batch: Vec<Job> = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let replies = {
            let _writing = shared.file.write.lock();
            let began = std::time::Instant::now();
            let replies = commit_batch(&mut conn, std::mem::take(&mut batch), shared);
            dagger_core::metrics::store_commit(
                "sqlite",
                replies.len(),
                began.elapsed().as_secs_f64(),
            );
            replies
        };
        shared.processed.fetch_add(count, Ordering::AcqRel);
        for (result, reply) in replies {
            reply.send(result, &shared.deferred);
        }
    }
}

/// Runs and commits one batch; returns each job's result with its reply, in
/// order. When the batch cannot commit, every job learns the cause: none of
/// them is on disk, so none may report success.
fn commit_batch(
    conn: &mut Connection,
    batch: Vec<Job>,
    shared: &Shared,
) -> Vec<(AnyResult, Reply)> {
    let location = shared.location.as_str();
    let fix = |e: StoreError| with_waited(e, shared.busy_timeout_ms);
    let sql = |e: rusqlite::Error| fix(map_sqlite(e, location));
    let mut results: Vec<(AnyResult, Reply)> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let outcome = (|| -> Result<(), StoreError> {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        for job in jobs.by_ref() {
            let (work, reply, isolation) = match job {
                Job::Write {
                    work,
                    reply,
                    isolation,
                } => (work, reply, isolation),
                Job::Flush(reply) => {
                    results.push((Ok(Box::new(())), reply));
                    continue;
                }
            };
            let savepoint = isolation == Isolation::Savepoint;
            if savepoint {
                run_cached(&tx, "SAVEPOINT job").map_err(sql)?;
            }
            let result = work(&tx).map_err(fix);
            match &result {
                Ok(_) if !savepoint => {}
                Ok(_) => run_cached(&tx, "RELEASE job").map_err(sql)?,
                Err(err) if tx.is_autocommit() => {
                    // SQLite rolled the whole transaction back (a full disk,
                    // an I/O error): the batch is lost, and this job's error
                    // is the cause every job of it must hear.
                    let cause = duplicate(err);
                    results.push((result, reply));
                    return Err(cause);
                }
                Err(_) if !savepoint => {}
                Err(_) => run_cached(&tx, "ROLLBACK TO job")
                    .and_then(|()| run_cached(&tx, "RELEASE job"))
                    .map_err(sql)?,
            }
            results.push((result, reply));
        }
        tx.commit().map_err(sql)
    })();
    let Err(cause) = outcome else {
        return results;
    };
    let mut failed: Vec<(AnyResult, Reply)> = results
        .into_iter()
        .map(|(_, reply)| (Err(duplicate(&cause)), reply))
        .collect();
    failed.extend(jobs.map(|job| (Err(duplicate(&cause)), job.into_reply())));
    if let Some((first, _)) = failed.first_mut() {
        *first = Err(cause);
    }
    failed
}

/// Runs a statement from the connection's cache: the savepoint statements
/// run twice per job, and parsing them each time is measurable.
fn run_cached(tx: &Transaction<'_>, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(drop)
}

/// A copy of `err` for each job of a failed batch (`StoreError` is not
/// `Clone`: it can hold an `io::Error`, which is copied by kind and message).
pub(crate) fn duplicate(err: &StoreError) -> StoreError {
    use StoreError as E;
    match err {
        E::InvalidLocation { location, reason } => E::InvalidLocation {
            location: location.clone(),
            reason: reason.clone(),
        },
        E::Open { location, reason } => E::Open {
            location: location.clone(),
            reason: reason.clone(),
        },
        E::Locked {
            location,
            waited_ms,
        } => E::Locked {
            location: location.clone(),
            waited_ms: *waited_ms,
        },
        E::ReadOnly { location } => E::ReadOnly {
            location: location.clone(),
        },
        E::DiskFull { location, file } => E::DiskFull {
            location: location.clone(),
            file: file.clone(),
        },
        E::NewerSchema {
            location,
            found,
            supported,
        } => E::NewerSchema {
            location: location.clone(),
            found: *found,
            supported: *supported,
        },
        E::MissingArtifact { id, path } => E::MissingArtifact {
            id: id.clone(),
            path: path.clone(),
        },
        E::CorruptArtifact { id, path, reason } => E::CorruptArtifact {
            id: id.clone(),
            path: path.clone(),
            reason: reason.clone(),
        },
        E::NotFound { entity, id } => E::NotFound {
            entity,
            id: id.clone(),
        },
        E::AlreadyExists { entity, id } => E::AlreadyExists {
            entity,
            id: id.clone(),
        },
        E::AlreadyDecided {
            run_id,
            node_id,
            decision,
            seq,
            at_ms,
        } => E::AlreadyDecided {
            run_id: run_id.clone(),
            node_id: node_id.clone(),
            decision: decision.clone(),
            seq: *seq,
            at_ms: *at_ms,
        },
        E::StaleToken {
            entity,
            id,
            held,
            current,
        } => E::StaleToken {
            entity,
            id: id.clone(),
            held: *held,
            current: *current,
        },
        E::Conflict(msg) => E::Conflict(msg.clone()),
        E::Io { context, source } => E::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        E::Decode { what, reason } => E::Decode {
            what: what.clone(),
            reason: reason.clone(),
        },
        E::Closed { location } => E::Closed {
            location: location.clone(),
        },
        E::Backend { location, message } => E::Backend {
            location: location.clone(),
            message: message.clone(),
        },
    }
}
