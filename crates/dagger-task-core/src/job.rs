//! The job loop and [`JobHandle`].
//!
//! One loop per job and manager. Each turn is one store transaction: record
//! the attempts its workers finished since the last turn (see `commit.rs`),
//! end the job if it is cancelled, finished or (fail-fast) failed, return
//! expired leases to Ready, claim as many Ready tasks as the concurrency
//! limits allow, and compute the next deadline (a lease expiring, a delayed
//! retry, the stall heartbeat). Then it sleeps until a worker or an API call
//! notifies it, or the deadline passes: no polling.

use crate::TaskError;
use crate::breaker::Gate;
use crate::commit::{self, Finished};
use crate::config::{JobConfig, StallAction, StallReport, StalledTask};
use crate::event::TaskEvent;
use crate::manager::TaskManager;
use crate::ops;
use crate::spec::TaskSpec;
use crate::worker;
use dagger_core::StoreError;
use dagger_core::store::TaskRecord;
use dagger_core::{ErrorClass, JobId, JobStatus, TaskStatus, now_millis};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Tasks this manager runs for a job right now.
#[derive(Default)]
pub(crate) struct Running {
    pub(crate) total: usize,
    pub(crate) per_agent: HashMap<String, usize>,
}

pub(crate) struct JobRuntime {
    pub(crate) job_id: JobId,
    pub(crate) notify: Notify,
    /// Set by [`JobHandle::cancel`].
    cancel: CancellationToken,
    /// Cancelled when the loop ends: stops this job's running agents.
    pub(crate) stop: CancellationToken,
    status: watch::Sender<JobStatus>,
    pub(crate) config: JobConfig,
    allowed: Option<Vec<String>>,
    pub(crate) running: Mutex<Running>,
    /// Attempts finished by this job's workers, for the next turn.
    pub(crate) inbox: Mutex<Inbox>,
}

/// Finished attempts waiting for the job loop.
#[derive(Default)]
pub(crate) struct Inbox {
    /// Set when the loop has ended: results go to the committer instead.
    pub(crate) closed: bool,
    pub(crate) attempts: Vec<Finished>,
}

impl JobRuntime {
    pub(crate) fn handle(&self) -> JobHandle {
        JobHandle {
            job_id: self.job_id.clone(),
            status: self.status.subscribe(),
            cancel: self.cancel.clone(),
        }
    }
}

/// Follows and controls one job.
#[derive(Debug, Clone)]
pub struct JobHandle {
    job_id: JobId,
    status: watch::Receiver<JobStatus>,
    cancel: CancellationToken,
}

impl JobHandle {
    pub(crate) fn finished(job_id: JobId, status: JobStatus) -> Self {
        let (_tx, rx) = watch::channel(status);
        Self {
            job_id,
            status: rx,
            cancel: CancellationToken::new(),
        }
    }

    /// The job.
    pub fn job_id(&self) -> &JobId {
        &self.job_id
    }

    /// The job's status now.
    pub async fn get_status(&self) -> JobStatus {
        self.status()
    }

    /// The job's status now, without awaiting.
    pub fn status(&self) -> JobStatus {
        *self.status.borrow()
    }

    /// Asks the job to stop: open tasks are cancelled, running agents see
    /// their cancel token fire, and the job ends `Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Resolves with the final status once the job ends.
    pub async fn wait(&self) -> JobStatus {
        let mut rx = self.status.clone();
        let waited = rx.wait_for(|s| s.is_terminal()).await.map(|s| *s);
        waited.unwrap_or_else(|_| *rx.borrow())
    }
}

pub(crate) fn spawn(
    manager: &TaskManager,
    job_id: JobId,
    config: JobConfig,
    allowed: Option<Vec<String>>,
    cancel: CancellationToken,
) -> JobHandle {
    let (status, _) = watch::channel(JobStatus::Running);
    let rt = Arc::new(JobRuntime {
        job_id: job_id.clone(),
        notify: Notify::new(),
        cancel,
        stop: CancellationToken::new(),
        status,
        config,
        allowed,
        running: Mutex::new(Running::default()),
        inbox: Mutex::new(Inbox::default()),
    });
    let handle = rt.handle();
    manager.inner.jobs.lock().insert(job_id, rt.clone());
    tokio::spawn(drive(manager.clone(), rt));
    handle
}

/// What one turn of the loop decided.
struct Turn {
    end: Option<JobStatus>,
    events: Vec<TaskEvent>,
    claimed: Vec<TaskRecord>,
    deadline: Option<i64>,
    idle_ms: Option<u64>,
    /// Leases found expired in this turn.
    expired: usize,
}

async fn drive(m: TaskManager, rt: Arc<JobRuntime>) {
    let mut changes = m.inner.store.change_signal();
    let mut backoff = Duration::from_millis(50);
    let final_status = loop {
        if let Some(c) = &mut changes {
            c.borrow_and_update();
        }
        let turn = match turn(&m, &rt) {
            Ok(t) => {
                backoff = Duration::from_millis(50);
                t
            }
            Err(TaskError::Store(StoreError::Closed { .. })) => {
                tracing::error!(job = %rt.job_id, "job loop stopped: the store is closed");
                break None;
            }
            Err(e) => {
                // A transient store failure (locked, full): state is as
                // stored, so retry the turn after a growing pause.
                tracing::error!(job = %rt.job_id, error = %e, retry_in_ms = backoff.as_millis() as u64, "job turn failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = rt.cancel.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        for task in turn.claimed {
            tokio::spawn(worker::run(m.clone(), rt.clone(), task));
        }
        if let Some(s) = turn.end {
            break Some(s);
        }
        if let Some(idle) = turn.idle_ms {
            on_stall(&m, &rt, idle);
            continue;
        }
        let sleep = async {
            match turn.deadline {
                Some(at) => {
                    let ms = u64::try_from(at.saturating_sub(now_millis())).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let changed = async {
            let alive = match &mut changes {
                Some(c) => c.changed().await.is_ok(),
                None => false,
            };
            if !alive {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = rt.notify.notified() => {}
            () = changed => {}
            () = sleep => {}
            () = rt.cancel.cancelled() => {}
        }
    };
    // Results that arrive from now on (and any not taken yet) are recorded
    // by the manager's committer.
    let left = {
        let mut inbox = rt.inbox.lock();
        inbox.closed = true;
        std::mem::take(&mut inbox.attempts)
    };
    for f in left {
        commit::submit(&m, f.pending(&m, &rt));
    }
    rt.stop.cancel();
    m.inner.jobs.lock().remove(&rt.job_id);
    if let Some(s) = final_status {
        rt.status.send_replace(s);
    }
}

fn turn(m: &TaskManager, rt: &Arc<JobRuntime>) -> Result<Turn, crate::TaskError> {
    let cfg = &rt.config;
    let heartbeat = i64::try_from(m.inner.heartbeat.as_millis()).unwrap_or(i64::MAX);
    let cancelled = rt.cancel.is_cancelled();
    let (running_total, per_agent) = {
        let r = rt.running.lock();
        (r.total, r.per_agent.clone())
    };
    let registry = &m.inner.registry;
    let owner = m.inner.owner.as_str();
    // Slots of the manager-wide bound, reserved for this turn's claims (the
    // unused ones are given back once it is known how many were claimed).
    let slots = m
        .inner
        .slots
        .reserve(cfg.max_concurrency.saturating_sub(running_total));
    let decide = |tx: &mut dyn dagger_core::store::TaskTx, now: i64| -> Result<Turn, TaskError> {
        let job_id = &rt.job_id;
        let job = tx
            .job(job_id)?
            .ok_or_else(|| crate::TaskError::JobNotFound(job_id.to_string()))?;
        let end = |s, reason: Option<&str>, tx: &mut dyn dagger_core::store::TaskTx| {
            ops::finish_job(tx, job_id, s, reason, now)
        };
        if job.status.is_terminal() {
            return Ok(done(job.status));
        }
        if cancelled {
            return Ok(done(end(JobStatus::Cancelled, Some("job cancelled"), tx)?));
        }
        let mut events = Vec::new();
        // An expired lease is a failed attempt that ran out of time.
        let retry = |t: &TaskRecord| commit::retry_at(&cfg.retry, ErrorClass::Timeout, t);
        let breaker = cfg.circuit_breaker.as_ref();
        let expired = ops::expire_leases(tx, job_id, now, &retry, breaker, &mut events)?.len();
        let counts = tx.job_counts(job_id)?;
        if counts.unsuccessful > 0 && cfg.fail_fast {
            let reason = "a task failed and the job is fail-fast";
            let mut turn = done(end(JobStatus::Completed(false), Some(reason), tx)?);
            turn.events = events;
            turn.expired = expired;
            return Ok(turn);
        }
        if counts.open == 0 {
            let ok = counts.unsuccessful == 0;
            let mut turn = done(end(JobStatus::Completed(ok), None, tx)?);
            turn.events = events;
            turn.expired = expired;
            return Ok(turn);
        }
        let mut gate = breaker.map(|b| Gate::read(tx, *b, now)).transpose()?;
        let mut agents = per_agent.clone();
        let mut accept = |t: &TaskRecord| {
            let limit = cfg
                .agent_concurrency
                .get(&t.agent)
                .copied()
                .unwrap_or(usize::MAX);
            let running = agents.entry(t.agent.clone()).or_default();
            // The breaker's gate last: admitting a half-open trial counts it.
            let ok = *running < limit
                && registry.contains(&t.agent)
                && rt.allowed.as_ref().is_none_or(|a| a.contains(&t.agent))
                && gate.as_mut().is_none_or(|g| g.admit(&t.agent));
            if ok {
                *running += 1;
            }
            ok
        };
        let room = cfg.max_concurrency.saturating_sub(running_total).min(slots);
        let claimed = ops::claim_many(tx, job_id, owner, now, cfg.lease_ms, room, &mut accept)?;
        let mut deadline = stall_deadline(tx, job_id, now, heartbeat)?;
        if let Some(g) = gate {
            deadline.1 = g.next_deadline().map_or(deadline.1, |d| d.min(deadline.1));
            events.extend(g.commit(tx, &claimed)?);
        }
        let (updated_at, deadline) = deadline;
        let stall_at = updated_at.saturating_add(heartbeat);
        let idle_ms = (claimed.is_empty() && now >= stall_at)
            .then(|| u64::try_from(now - updated_at).unwrap_or(0));
        Ok(Turn {
            end: None,
            events,
            claimed,
            deadline: Some(deadline),
            idle_ms,
            expired,
        })
    };
    let batch: Vec<_> = std::mem::take(&mut rt.inbox.lock().attempts)
        .into_iter()
        .map(|f| f.pending(m, rt))
        .collect();
    let together = ops::run(m.inner.store.as_ref(), |tx| {
        // Claims and recorded attempts concern this loop only; released or
        // returned tasks (Ready) and a finished job still wake the others.
        tx.quiet();
        let now = now_millis();
        let mut events = Vec::new();
        let mut recorded = Vec::with_capacity(batch.len());
        let claimed: Vec<&TaskRecord> = batch.iter().map(|p| &p.claimed).collect();
        tx.prefetch(&claimed)?;
        for p in &batch {
            match commit::record_one(tx, p, now, &mut events) {
                Err(e @ TaskError::StaleLease { .. }) => recorded.push(Err(e)),
                Err(e) => return Err(e),
                Ok(r) => recorded.push(Ok(r)),
            }
        }
        let mut turn = decide(tx, now)?;
        events.append(&mut turn.events);
        turn.events = events;
        Ok((recorded, turn))
    });
    let mut turn = match together {
        Ok((recorded, turn)) => {
            for (p, r) in batch.into_iter().zip(recorded) {
                commit::finish(p, r);
            }
            turn
        }
        Err(e) => {
            m.inner.slots.release(slots);
            // Record the attempts on their own (one by one if need be), so
            // that the turn's failure does not hold them back.
            if !batch.is_empty() {
                let (results, events) = commit::record(m.inner.store.as_ref(), &batch);
                for (p, r) in batch.into_iter().zip(results) {
                    commit::finish(p, r);
                }
                m.emit(events);
            }
            return Err(e);
        }
    };
    m.inner
        .slots
        .release(slots.saturating_sub(turn.claimed.len()));
    m.emit(std::mem::take(&mut turn.events));
    count_turn(&turn);
    let mut r = rt.running.lock();
    for t in &turn.claimed {
        r.total += 1;
        *r.per_agent.entry(t.agent.clone()).or_default() += 1;
    }
    Ok(turn)
}

/// Counts a committed turn's claims and expired leases.
fn count_turn(turn: &Turn) {
    use dagger_core::metrics::CLAIMS;
    if !turn.claimed.is_empty() {
        metrics::counter!(CLAIMS, "queue" => "tasks").increment(turn.claimed.len() as u64);
    }
    dagger_core::metrics::lease_expiries("tasks", turn.expired as u64);
}

/// The job's last progress and the next moment its loop must wake by itself
/// (a lease expiring, a delayed retry, the stall heartbeat).
fn stall_deadline(
    tx: &mut dyn dagger_core::store::TaskTx,
    job_id: &JobId,
    now: i64,
    heartbeat: i64,
) -> Result<(i64, i64), TaskError> {
    let updated_at = tx.job(job_id)?.map_or(now, |j| j.updated_at);
    let stall_at = updated_at.saturating_add(heartbeat);
    let deadline = match tx.next_deadline(job_id, now)? {
        Some(d) => d.min(stall_at),
        None => stall_at,
    };
    Ok((updated_at, deadline))
}

fn done(status: JobStatus) -> Turn {
    Turn {
        end: Some(status),
        events: Vec::new(),
        claimed: Vec::new(),
        deadline: None,
        idle_ms: None,
        expired: 0,
    }
}

fn stall_report(
    m: &TaskManager,
    rt: &JobRuntime,
    idle_ms: u64,
) -> Result<StallReport, crate::TaskError> {
    let tasks = m.get_job_tasks(rt.job_id.as_str())?;
    let status: HashMap<_, _> = tasks
        .iter()
        .map(|t| (t.task_id.clone(), t.status))
        .collect();
    let open_tasks = tasks
        .iter()
        .filter(|t| {
            matches!(
                t.status,
                TaskStatus::Pending
                    | TaskStatus::Ready
                    | TaskStatus::Blocked
                    | TaskStatus::InProgress
            )
        })
        .map(|t| StalledTask {
            task_id: t.task_id.clone(),
            agent: t.agent.clone(),
            description: t.description.clone(),
            status: t.status,
            waiting_on: t
                .dependencies
                .iter()
                .filter(|d| !status.get(*d).is_some_and(|s| s.is_done()))
                .cloned()
                .collect(),
            error: t.error.clone(),
        })
        .collect();
    Ok(StallReport {
        job_id: rt.job_id.clone(),
        idle_ms,
        open_tasks,
    })
}

fn on_stall(m: &TaskManager, rt: &JobRuntime, idle_ms: u64) {
    let result = stall_report(m, rt, idle_ms).and_then(|report| {
        tracing::warn!(job = %rt.job_id, idle_ms, open = report.open_tasks.len(), "job stalled");
        match &m.inner.stall_action {
            StallAction::TerminateJob => terminate(m, rt, &format!("stalled: no progress for {idle_ms} ms")),
            StallAction::Custom(callback) => {
                callback(&report);
                touch(m, rt)
            }
            StallAction::NotifyPlanningAgent => {
                let planner = rt.config.planning_agent.clone();
                let input = serde_json::json!({ "stall_report": report });
                let spec = TaskSpec::new(rt.job_id.clone(), planner.clone(), format!("Job `{}` stalled: re-plan", rt.job_id))
                    .input(input)
                    .priority(i32::MAX);
                match m.add_task(spec) {
                    Ok(_) => Ok(()),
                    Err(e) => terminate(
                        m,
                        rt,
                        &format!("stalled for {idle_ms} ms and the planning agent `{planner}` could not be notified: {e}"),
                    ),
                }
            }
        }
    });
    if let Err(e) = result {
        tracing::error!(job = %rt.job_id, error = %e, "stall action failed");
        // Avoid re-firing in a tight loop: count the attempt as activity.
        let _ = touch(m, rt);
    }
}

fn terminate(m: &TaskManager, rt: &JobRuntime, reason: &str) -> Result<(), crate::TaskError> {
    ops::run(m.inner.store.as_ref(), |tx| {
        ops::finish_job(
            tx,
            &rt.job_id,
            JobStatus::Completed(false),
            Some(reason),
            now_millis(),
        )
    })?;
    Ok(())
}

fn touch(m: &TaskManager, rt: &JobRuntime) -> Result<(), crate::TaskError> {
    ops::run(m.inner.store.as_ref(), |tx| {
        ops::touch_job(tx, &rt.job_id, now_millis())
    })
}
