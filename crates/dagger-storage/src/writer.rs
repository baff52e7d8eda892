//! The single writer thread. It drains a queue of write jobs into batched
//! transactions (group commit): one `BEGIN IMMEDIATE ... COMMIT` per batch,
//! each job in its own savepoint so one failing job does not undo the others.
//! Jobs commit in submission order, so what is on disk after a crash is
//! always a prefix of what was submitted.

use crate::error::map_sqlite;
use dagger_core::StoreError;
use parking_lot::Mutex;
use rusqlite::{Connection, Transaction};
use std::any::Any;
use std::sync::Arc;
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

pub(crate) enum Job {
    Write {
        work: Work,
        reply: Reply,
    },
    /// Replies once everything queued before it is committed.
    Flush(Reply),
}

/// Runs the writer loop until every sender is dropped.
pub(crate) fn run(
    mut conn: Connection,
    rx: mpsc::Receiver<Job>,
    location: String,
    deferred: Arc<Mutex<Option<StoreError>>>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, &location, &deferred);
    }
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    location: &str,
    deferred: &Mutex<Option<StoreError>>,
) {
    let mut results: Vec<(AnyResult, Reply)> = Vec::with_capacity(batch.len());
    let outcome = (|| -> Result<(), StoreError> {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| map_sqlite(e, location))?;
        for job in batch.drain(..) {
            match job {
                Job::Write { work, reply } => {
                    tx.execute_batch("SAVEPOINT job")
                        .map_err(|e| map_sqlite(e, location))?;
                    let result = work(&tx);
                    let end = if result.is_ok() {
                        "RELEASE job"
                    } else {
                        "ROLLBACK TO job; RELEASE job"
                    };
                    tx.execute_batch(end).map_err(|e| map_sqlite(e, location))?;
                    results.push((result, reply));
                }
                Job::Flush(reply) => results.push((Ok(Box::new(())), reply)),
            }
        }
        tx.commit().map_err(|e| map_sqlite(e, location))
    })();
    match outcome {
        Ok(()) => {
            for (result, reply) in results {
                reply.send(result, deferred);
            }
        }
        Err(err) => {
            // The whole batch rolled back: every job learns it, none is half-written.
            let msg = err.to_string();
            let mut err = Some(err);
            for (_, reply) in results {
                let e = err.take().unwrap_or_else(|| clone_error(&msg, location));
                reply.send(Err(e), deferred);
            }
            for job in batch.drain(..) {
                let reply = match job {
                    Job::Write { reply, .. } | Job::Flush(reply) => reply,
                };
                reply.send(Err(clone_error(&msg, location)), deferred);
            }
        }
    }
}

/// `StoreError` is not `Clone` (it can hold an `io::Error`); batch failures
/// are re-created from their message, keeping the typed variants that matter.
fn clone_error(msg: &str, location: &str) -> StoreError {
    let location = location.to_string();
    if msg.contains("is full") {
        StoreError::DiskFull { location }
    } else if msg.contains("read-only") {
        StoreError::ReadOnly { location }
    } else if msg.contains("is locked") {
        StoreError::Locked {
            location,
            waited_ms: crate::error::BUSY_TIMEOUT_MS,
        }
    } else {
        StoreError::Backend {
            location,
            message: msg.to_string(),
        }
    }
}
