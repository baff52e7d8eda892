//! Group commit of finished attempts. Workers hand their results to their
//! job's loop ([`deliver`]), which records everything waiting in the same
//! store transaction as its next claims: one transaction (and on Postgres one
//! job-row lock and one commit) then serves many completions and the claims
//! that replace them. Once the loop has ended, results go to one committer
//! task per manager instead, which records them in a transaction of their own.

use crate::error::TaskError;
use crate::event::TaskEvent;
use crate::job::JobRuntime;
use crate::manager::TaskManager;
use crate::ops::{self, AttemptEnd, Recorded};
use dagger_core::store::{TaskRecord, TaskStore};
use dagger_core::{ErrorClass, RetryPolicy, now_millis};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most attempts recorded in one transaction.
const MAX_BATCH: usize = 512;

/// Stale-lease reports kept for [`TaskManager::take_stale_completions`].
const STALE_KEPT: usize = 1024;

/// A finished attempt waiting to be recorded.
pub(crate) struct Pending {
    /// Keeps the manager alive until the attempt is recorded.
    pub(crate) manager: TaskManager,
    pub(crate) rt: Arc<JobRuntime>,
    /// The task as its claim returned it (its attempt number is the fencing token).
    pub(crate) claimed: TaskRecord,
    pub(crate) end: AttemptEnd,
    pub(crate) class: ErrorClass,
}

/// A finished attempt as its job loop keeps it: without the manager and
/// the job runtime, which the loop has (a queue inside the runtime holding
/// them would be a reference cycle if the runtime were dropped unfinished).
pub(crate) struct Finished {
    claimed: TaskRecord,
    end: AttemptEnd,
    class: ErrorClass,
}

impl Finished {
    /// Back to a [`Pending`] of `m` and `rt`.
    pub(crate) fn pending(self, m: &TaskManager, rt: &Arc<JobRuntime>) -> Pending {
        Pending {
            manager: m.clone(),
            rt: rt.clone(),
            claimed: self.claimed,
            end: self.end,
            class: self.class,
        }
    }
}

/// Hands `p` to its job loop (recorded with the loop's next claims), or to
/// the manager's committer once that loop has ended.
pub(crate) fn deliver(m: &TaskManager, p: Pending) {
    let rt = p.rt.clone();
    let p = {
        let mut inbox = rt.inbox.lock();
        if inbox.closed {
            p
        } else {
            inbox.attempts.push(Finished {
                claimed: p.claimed,
                end: p.end,
                class: p.class,
            });
            drop(inbox);
            rt.notify.notify_one();
            return;
        }
    };
    submit(m, p);
}

/// Queues `p` for the manager's committer, starting one if needed.
pub(crate) fn submit(m: &TaskManager, p: Pending) {
    let mut slot = m.inner.committer.lock();
    let p = match slot.as_ref() {
        Some(tx) => match tx.send(p) {
            Ok(()) => return,
            // The committer's runtime is gone; start a new one on this runtime.
            Err(mpsc::error::SendError(p)) => p,
        },
        None => p,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(rx));
    let _ = tx.send(p);
    *slot = Some(tx);
}

async fn run(mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let store = batch[0].manager.inner.store.clone();
        let (results, events) = record(store.as_ref(), &batch);
        batch[0].manager.emit(events);
        for (p, result) in batch.drain(..).zip(results) {
            let rt = p.rt.clone();
            finish(p, result);
            rt.notify.notify_one();
        }
    }
}

/// When the task may run again after a failure of `class`, under `policy`
/// (a task's own `max_retries` overrides the policy's count).
pub(crate) fn retry_at(policy: &RetryPolicy, class: ErrorClass, t: &TaskRecord) -> Option<i64> {
    let again = match t.max_retries {
        Some(max) => class != ErrorClass::Permanent && t.failures <= max,
        None => policy.should_retry(t.failures, class),
    };
    again.then(|| {
        let delay = policy.delay_for(t.failures).as_millis();
        now_millis().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
    })
}

/// Records one attempt under its fencing token; events it causes are
/// added to `events`.
pub(crate) fn record_one(
    tx: &mut dyn dagger_core::store::TaskTx,
    p: &Pending,
    now: i64,
    events: &mut Vec<TaskEvent>,
) -> Result<Recorded, TaskError> {
    let cfg = &p.rt.config;
    ops::record_attempt(
        tx,
        &p.claimed,
        &p.end,
        now,
        &|t| retry_at(&cfg.retry, p.class, t),
        cfg.circuit_breaker.as_ref(),
        events,
    )
}

/// Records the batch in one transaction. A stale lease is refused before
/// anything of that attempt is written, so it stays that attempt's result;
/// any other error aborts the batch, which is then recorded one by one.
pub(crate) fn record(
    store: &dyn TaskStore,
    batch: &[Pending],
) -> (Vec<Result<Recorded, TaskError>>, Vec<TaskEvent>) {
    // The committing manager wakes its own loops (`finish`); released or
    // retried tasks (Ready) still wake the others.
    let together = ops::run(store, |tx| {
        tx.quiet();
        let now = now_millis();
        let mut events = Vec::new();
        let mut out = Vec::with_capacity(batch.len());
        let claimed: Vec<&TaskRecord> = batch.iter().map(|p| &p.claimed).collect();
        tx.prefetch(&claimed)?;
        for p in batch {
            match record_one(tx, p, now, &mut events) {
                Err(e @ TaskError::StaleLease { .. }) => out.push(Err(e)),
                Err(e) => return Err(e),
                Ok(r) => out.push(Ok(r)),
            }
        }
        Ok((out, events))
    });
    match together {
        Ok(results) => results,
        Err(_) if batch.len() > 1 => {
            let mut all = Vec::new();
            let results = batch
                .iter()
                .map(|p| {
                    let (r, events) = ops::run(store, |tx| {
                        tx.quiet();
                        let mut events = Vec::new();
                        let r = record_one(tx, p, now_millis(), &mut events)?;
                        Ok((r, events))
                    })
                    .map_or_else(|e| (Err(e), Vec::new()), |(r, ev)| (Ok(r), ev));
                    all.extend(events);
                    r
                })
                .collect();
            (results, all)
        }
        Err(e) => (vec![Err(e)], Vec::new()),
    }
}

/// What follows a recorded attempt in this process: its slot is given back,
/// its output goes to the cache, a stale lease is reported. The caller wakes the job loop if needed.
pub(crate) fn finish(p: Pending, result: Result<Recorded, TaskError>) {
    // The attempt held one of the manager's slots until now; another job
    // of this manager may want it.
    p.manager.inner.slots.release(1);
    if p.manager.inner.slots.bounded() {
        p.manager.wake_all();
    }
    match result {
        Ok(Recorded::Completed) => {
            if let AttemptEnd::Output(v) = p.end {
                p.manager.inner.cache.insert(
                    p.claimed.job_id.as_str(),
                    p.claimed.task_id.as_str(),
                    v,
                );
            }
        }
        Ok(_) => {}
        Err(e @ TaskError::StaleLease { .. }) => {
            metrics::counter!(dagger_core::metrics::STALE_COMPLETIONS, "queue" => "tasks")
                .increment(1);
            if !p.rt.stop.is_cancelled() {
                report_stale(&p.manager, e);
            }
        }
        Err(e) => {
            tracing::error!(task = %p.claimed.task_id, error = %e, "recording the attempt failed")
        }
    }
}

/// Keeps a stale-lease report for the user (bounded) and logs it.
pub(crate) fn report_stale(m: &TaskManager, e: TaskError) {
    tracing::warn!(error = %e, "discarded work under a stale lease");
    let mut stale = m.inner.stale.lock();
    if stale.len() >= STALE_KEPT {
        stale.remove(0);
    }
    stale.push(e);
}
