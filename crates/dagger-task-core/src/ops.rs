//! The scheduling rules, written once against [`TaskTx`] so that every
//! backend (memory, SQLite, Postgres) applies them atomically and
//! identically. Each function validates before it writes; the store's
//! transaction makes a failure leave nothing behind either way.

use crate::breaker::{self, CircuitBreaker};
use crate::error::TaskError;
use crate::event::TaskEvent;
use dagger_core::store::{AttemptError, JobRecord, TaskRecord, TaskStore, TaskTx};
use dagger_core::{JobId, JobStatus, TaskId, TaskStatus};
use std::collections::{HashMap, HashSet, VecDeque};

/// Runs `f` in one store transaction, keeping its typed error
/// ([`dagger_core::store::transact`] with the error type pinned).
pub(crate) fn run<T: Send>(
    store: &dyn TaskStore,
    f: impl FnMut(&mut dyn TaskTx) -> Result<T, TaskError> + Send,
) -> Result<T, TaskError> {
    dagger_core::store::transact(store, f)
}

/// Runs a read-only `f` against the store's consistent view
/// ([`dagger_core::store::read`] with the error type pinned).
pub(crate) fn read<T: Send>(
    store: &dyn TaskStore,
    f: impl FnMut(&mut dyn TaskTx) -> Result<T, TaskError> + Send,
) -> Result<T, TaskError> {
    dagger_core::store::read(store, f)
}

fn task_or(tx: &mut dyn TaskTx, id: &TaskId) -> Result<TaskRecord, TaskError> {
    tx.task(id)?
        .ok_or_else(|| TaskError::TaskNotFound(id.to_string()))
}

/// Marks the job as changed (the stall detector's notion of progress).
pub(crate) fn touch_job(tx: &mut dyn TaskTx, job_id: &JobId, now: i64) -> Result<(), TaskError> {
    Ok(tx.touch_job(job_id, now)?)
}

/// The job, created (Running, not started) if it does not exist; an error if it ended.
pub(crate) fn open_job(
    tx: &mut dyn TaskTx,
    job_id: &JobId,
    now: i64,
) -> Result<JobRecord, TaskError> {
    match tx.job(job_id)? {
        Some(job) if job.status.is_terminal() => Err(TaskError::JobFinished {
            job: job_id.to_string(),
            status: job.status,
        }),
        Some(job) => Ok(job),
        None => {
            let job = JobRecord {
                job_id: job_id.clone(),
                status: JobStatus::Running,
                allowed_agents: None,
                config: serde_json::Value::Null,
                started: false,
                reason: None,
                created_at: now,
                updated_at: now,
            };
            tx.put_job(&job)?;
            Ok(job)
        }
    }
}

/// Inserts a batch of new tasks (all in one job) after checking ids,
/// parents, dependencies and cycles. `check_agent` vets each task's agent
/// against the registry and the job's allowed list.
pub(crate) fn insert_tasks(
    tx: &mut dyn TaskTx,
    job_id: &JobId,
    mut tasks: Vec<TaskRecord>,
    now: i64,
    check_agent: &dyn Fn(&JobRecord, &TaskRecord) -> Result<(), TaskError>,
) -> Result<Vec<TaskId>, TaskError> {
    let job = open_job(tx, job_id, now)?;
    let batch: HashMap<TaskId, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task_id.clone(), i))
        .collect();
    let mut existing: HashMap<TaskId, TaskRecord> = HashMap::new();
    // One lookup for the whole batch (all are expected to be new).
    tx.prefetch(&tasks.iter().collect::<Vec<_>>())?;
    for (i, t) in tasks.iter().enumerate() {
        check_agent(&job, t)?;
        if batch.get(&t.task_id) != Some(&i) || tx.task(&t.task_id)?.is_some() {
            return Err(TaskError::DuplicateTask(t.task_id.to_string()));
        }
        if let Some(p) = &t.parent_id
            && !batch.contains_key(p)
            && tx.task(p)?.is_none()
        {
            return Err(TaskError::ParentNotFound {
                task: t.task_id.to_string(),
                parent: p.to_string(),
            });
        }
        for d in &t.dependencies {
            if d == &t.task_id {
                return Err(TaskError::Cycle {
                    path: vec![d.to_string(), d.to_string()],
                });
            }
            if batch.contains_key(d) || existing.contains_key(d) {
                continue;
            }
            let dep = tx.task(d)?.ok_or_else(|| TaskError::DependencyNotFound {
                task: t.task_id.to_string(),
                dependency: d.to_string(),
            })?;
            check_dependency(&t.task_id, job_id, &dep)?;
            existing.insert(d.clone(), dep);
        }
    }
    // Existing tasks cannot depend on new ones, so a cycle lies within the batch.
    if let Some(path) = batch_cycle(&tasks, &batch) {
        return Err(TaskError::Cycle { path });
    }
    for t in &mut tasks {
        let all_done = t
            .dependencies
            .iter()
            .all(|d| existing.get(d).is_some_and(|r| r.status.is_done()));
        t.status = if all_done {
            TaskStatus::Ready
        } else {
            TaskStatus::Pending
        };
        t.seq = tx.next_seq()?;
        t.created_at = now;
        t.updated_at = now;
        tx.put_task(t)?;
    }
    touch_job(tx, job_id, now)?;
    Ok(tasks.into_iter().map(|t| t.task_id).collect())
}

fn check_dependency(task: &TaskId, job: &JobId, dep: &TaskRecord) -> Result<(), TaskError> {
    if &dep.job_id != job {
        return Err(TaskError::CrossJobDependency {
            task: task.to_string(),
            job: job.to_string(),
            dependency: dep.task_id.to_string(),
            other_job: dep.job_id.to_string(),
        });
    }
    if matches!(dep.status, TaskStatus::Failed | TaskStatus::Cancelled) {
        return Err(TaskError::DependencyFailed {
            task: task.to_string(),
            dependency: dep.task_id.to_string(),
            status: dep.status,
        });
    }
    Ok(())
}

/// A cycle among the batch's own dependency edges, as a path.
fn batch_cycle(tasks: &[TaskRecord], batch: &HashMap<TaskId, usize>) -> Option<Vec<String>> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; tasks.len()];
    for start in 0..tasks.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some((node, next)) = stack.last_mut() {
            let deps = &tasks[*node].dependencies;
            if *next >= deps.len() {
                state[*node] = 2;
                stack.pop();
                continue;
            }
            let d = &deps[*next];
            *next += 1;
            let Some(&j) = batch.get(d) else { continue };
            match state[j] {
                0 => {
                    state[j] = 1;
                    stack.push((j, 0));
                }
                1 => {
                    let from = stack.iter().position(|(n, _)| *n == j).unwrap_or(0);
                    let mut path: Vec<String> = stack[from..]
                        .iter()
                        .map(|(n, _)| tasks[*n].task_id.to_string())
                        .collect();
                    path.push(tasks[j].task_id.to_string());
                    return Some(path);
                }
                _ => {}
            }
        }
    }
    None
}

/// Makes `task` depend on `dep`. A Ready task whose new dependency is not
/// done becomes Blocked; a running task is left to its worker, which sees
/// the new dependency when the agent returns.
pub(crate) fn add_dependency(
    tx: &mut dyn TaskTx,
    task_id: &TaskId,
    dep_id: &TaskId,
    now: i64,
) -> Result<(), TaskError> {
    let mut task = task_or(tx, task_id)?;
    let dep = tx
        .task(dep_id)?
        .ok_or_else(|| TaskError::DependencyNotFound {
            task: task_id.to_string(),
            dependency: dep_id.to_string(),
        })?;
    open_job(tx, &task.job_id, now)?;
    check_dependency(task_id, &task.job_id, &dep)?;
    if matches!(
        task.status,
        TaskStatus::Completed
            | TaskStatus::Accepted
            | TaskStatus::Failed
            | TaskStatus::Rejected
            | TaskStatus::Cancelled
    ) {
        return Err(TaskError::TaskFinished {
            task: task_id.to_string(),
            status: task.status,
        });
    }
    if task.dependencies.contains(dep_id) {
        return Ok(());
    }
    if let Some(path) = path_between(tx, dep_id, task_id)? {
        let mut cycle = vec![task_id.to_string()];
        cycle.extend(path);
        return Err(TaskError::Cycle { path: cycle });
    }
    task.dependencies.push(dep_id.clone());
    if task.status == TaskStatus::Ready && !dep.status.is_done() {
        task.status = task
            .status
            .transition(task_id.as_str(), TaskStatus::Blocked)?;
        task.not_before = None;
    }
    task.updated_at = now;
    tx.put_task(&task)?;
    touch_job(tx, &task.job_id, now)
}

/// A dependency path `from -> ... -> to` (following dependencies), if any.
fn path_between(
    tx: &mut dyn TaskTx,
    from: &TaskId,
    to: &TaskId,
) -> Result<Option<Vec<String>>, TaskError> {
    let mut prev: HashMap<TaskId, TaskId> = HashMap::new();
    let mut seen: HashSet<TaskId> = HashSet::from([from.clone()]);
    let mut queue = VecDeque::from([from.clone()]);
    while let Some(id) = queue.pop_front() {
        if &id == to {
            let mut path = vec![id.to_string()];
            let mut cur = id;
            while let Some(p) = prev.get(&cur) {
                path.push(p.to_string());
                cur = p.clone();
            }
            path.reverse();
            return Ok(Some(path));
        }
        let Some(t) = tx.task(&id)? else { continue };
        for d in t.dependencies {
            if seen.insert(d.clone()) {
                prev.insert(d.clone(), id.clone());
                queue.push_back(d);
            }
        }
    }
    Ok(None)
}

/// A status change requested by a user or an agent. Completing releases
/// dependents; failing or cancelling fails them.
pub(crate) fn set_status(
    tx: &mut dyn TaskTx,
    task_id: &TaskId,
    to: TaskStatus,
    now: i64,
) -> Result<(), TaskError> {
    let mut task = task_or(tx, task_id)?;
    open_job(tx, &task.job_id, now)?;
    task.status = task.status.transition(task_id.as_str(), to)?;
    if to != TaskStatus::InProgress && to != TaskStatus::Blocked {
        task.lease_owner = None;
        task.lease_expires_at = None;
    }
    task.updated_at = now;
    if matches!(
        to,
        TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
    ) {
        task.finished_at = Some(now);
    }
    tx.put_task(&task)?;
    settle(tx, &task, now)?;
    touch_job(tx, &task.job_id, now)
}

/// After `task` changed: release or fail its dependents.
fn settle(tx: &mut dyn TaskTx, task: &TaskRecord, now: i64) -> Result<(), TaskError> {
    if task.status.is_done() {
        release_dependents(tx, &task.task_id, now)?;
    } else if matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
        // A Rejected task may be reworked (Rejected -> Ready), so its
        // dependents wait; if nobody reworks it, stall detection reports it.
        fail_dependents(tx, &task.task_id, now)?;
    }
    Ok(())
}

/// Dependents of `task_id` whose dependencies are now all done become Ready.
fn release_dependents(tx: &mut dyn TaskTx, task_id: &TaskId, now: i64) -> Result<(), TaskError> {
    for d in tx.dependents(task_id)? {
        let Some(mut dep) = tx.task(&d)? else {
            continue;
        };
        if !matches!(dep.status, TaskStatus::Pending | TaskStatus::Blocked) {
            continue;
        }
        let mut all_done = true;
        for x in &dep.dependencies {
            if !tx.task(x)?.is_some_and(|r| r.status.is_done()) {
                all_done = false;
                break;
            }
        }
        if all_done {
            dep.status = dep.status.transition(d.as_str(), TaskStatus::Ready)?;
            dep.updated_at = now;
            tx.put_task(&dep)?;
        }
    }
    Ok(())
}

/// Every open transitive dependent of `task_id` fails, naming the dependency that failed.
fn fail_dependents(tx: &mut dyn TaskTx, task_id: &TaskId, now: i64) -> Result<(), TaskError> {
    let mut queue = VecDeque::from([task_id.clone()]);
    while let Some(failed) = queue.pop_front() {
        for d in tx.dependents(&failed)? {
            let Some(mut dep) = tx.task(&d)? else {
                continue;
            };
            if !matches!(
                dep.status,
                TaskStatus::Pending
                    | TaskStatus::Ready
                    | TaskStatus::Blocked
                    | TaskStatus::InProgress
            ) {
                continue;
            }
            dep.status = dep.status.transition(d.as_str(), TaskStatus::Failed)?;
            dep.error = Some(format!("dependency `{failed}` failed"));
            dep.lease_owner = None;
            dep.lease_expires_at = None;
            dep.finished_at = Some(now);
            dep.updated_at = now;
            tx.put_task(&dep)?;
            queue.push_back(d);
        }
    }
    Ok(())
}

/// Claims up to `max` of the best Ready tasks of a running job that
/// `accept` agrees to run (it is called in priority order and may count
/// what it accepted), each under a lease until `now + lease_ms`. The new
/// attempt number is the lease's fencing token.
pub(crate) fn claim_many(
    tx: &mut dyn TaskTx,
    job_id: &JobId,
    owner: &str,
    now: i64,
    lease_ms: u64,
    max: usize,
    accept: &mut dyn FnMut(&TaskRecord) -> bool,
) -> Result<Vec<TaskRecord>, TaskError> {
    if max == 0
        || !tx
            .job(job_id)?
            .is_some_and(|j| j.status == JobStatus::Running)
    {
        return Ok(Vec::new());
    }
    // Read no more candidates than can be claimed; tasks `accept` skips stay
    // Ready (and come back on a re-read), so read further only past them.
    let mut skipped: HashSet<TaskId> = HashSet::new();
    let mut claimed = Vec::new();
    let mut limit = max;
    loop {
        let ready = tx.ready_tasks(job_id, now, limit)?;
        let exhausted = ready.len() < limit;
        for mut task in ready {
            if claimed.len() == max {
                break;
            }
            if skipped.contains(&task.task_id) {
                continue;
            }
            if !accept(&task) {
                skipped.insert(task.task_id.clone());
                continue;
            }
            task.status = task
                .status
                .transition(task.task_id.as_str(), TaskStatus::InProgress)?;
            task.attempts += 1;
            task.lease_owner = Some(owner.to_string());
            task.lease_expires_at =
                Some(now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX)));
            task.not_before = None;
            task.started_at = Some(now);
            task.updated_at = now;
            tx.put_task(&task)?;
            claimed.push(task);
        }
        if claimed.len() == max || exhausted {
            break;
        }
        // Claimed tasks are no longer Ready: the next read needs room for
        // what is still wanted beyond the skipped ones.
        limit = skipped
            .len()
            .saturating_add(max - claimed.len())
            .saturating_add(limit);
    }
    if !claimed.is_empty() {
        touch_job(tx, job_id, now)?;
    }
    Ok(claimed)
}

/// The task if `token` is still its current claim, else [`TaskError::StaleLease`].
fn fenced(tx: &mut dyn TaskTx, task_id: &TaskId, token: u32) -> Result<TaskRecord, TaskError> {
    let task = task_or(tx, task_id)?;
    held(task, token)
}

/// `task` as stored now, if the claim it was read under is still current,
/// else [`TaskError::StaleLease`]. Reads only what changes after insertion.
fn fenced_claim(tx: &mut dyn TaskTx, claimed: &TaskRecord) -> Result<TaskRecord, TaskError> {
    let mut task = claimed.clone();
    if !tx.refresh_task(&mut task)? {
        return Err(TaskError::TaskNotFound(claimed.task_id.to_string()));
    }
    held(task, claimed.attempts)
}

fn held(task: TaskRecord, token: u32) -> Result<TaskRecord, TaskError> {
    let held = matches!(task.status, TaskStatus::InProgress | TaskStatus::Blocked)
        && task.attempts == token;
    if !held {
        return Err(TaskError::StaleLease {
            task: task.task_id.to_string(),
            held: token,
            current: task.attempts,
            status: task.status,
        });
    }
    Ok(task)
}

/// Extends a lease; fails with [`TaskError::StaleLease`] when it was lost.
pub(crate) fn renew(
    tx: &mut dyn TaskTx,
    task_id: &TaskId,
    token: u32,
    until: i64,
) -> Result<(), TaskError> {
    tx.quiet();
    let mut task = fenced(tx, task_id, token)?;
    if task.status == TaskStatus::InProgress {
        task.lease_expires_at = Some(until);
        tx.put_task(&task)?;
    }
    Ok(())
}

/// How an attempt ended, as the worker saw it.
pub(crate) enum AttemptEnd {
    /// The agent returned this (schema-valid) output.
    Output(serde_json::Value),
    /// The agent asked to wait for dependencies.
    Waiting,
    /// The attempt failed with this message.
    Failed(String),
}

/// What was recorded for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Completed; dependents released.
    Completed,
    /// Waiting for dependencies: now Blocked or (all done) Ready.
    Waiting(TaskStatus),
    /// Failed; will be retried.
    Retrying,
    /// Failed for good; dependents failed.
    Failed,
}

/// Records an attempt of `claimed` (the task as its claim returned it; the
/// attempt number is the fencing token). An agent that gave its task new
/// dependencies (more than it had when claimed) or set it Blocked is
/// waiting for them, whatever it returned: the seed's agents return an
/// error string such as "needs_more_info" after doing so.
pub(crate) fn record_attempt(
    tx: &mut dyn TaskTx,
    claimed: &TaskRecord,
    end: &AttemptEnd,
    now: i64,
    retry_at: &dyn Fn(&TaskRecord) -> Option<i64>,
    breaker_cfg: Option<&CircuitBreaker>,
    events: &mut Vec<TaskEvent>,
) -> Result<Recorded, TaskError> {
    let deps_at_claim = claimed.dependencies.len();
    let task_id = &claimed.task_id;
    let mut task = fenced_claim(tx, claimed)?;
    let self_blocked =
        task.status == TaskStatus::Blocked || task.dependencies.len() > deps_at_claim;
    task.lease_owner = None;
    task.lease_expires_at = None;
    task.updated_at = now;
    let recorded = match end {
        _ if self_blocked => waiting(tx, &mut task, deps_at_claim)?,
        AttemptEnd::Waiting => waiting(tx, &mut task, deps_at_claim)?,
        AttemptEnd::Output(v) => {
            task.status = task
                .status
                .transition(task_id.as_str(), TaskStatus::Completed)?;
            task.output = Some(v.clone());
            task.error = None;
            task.finished_at = Some(now);
            Recorded::Completed
        }
        AttemptEnd::Failed(message) => {
            if let Some(cfg) = breaker_cfg {
                events.extend(breaker::on_failure(tx, cfg, &task.agent, message, now)?);
            }
            fail_attempt(tx, &mut task, message, now, retry_at, events)?
        }
    };
    if let (Some(_), Recorded::Completed | Recorded::Waiting(_)) = (breaker_cfg, recorded) {
        events.extend(breaker::on_success(tx, &task.agent, now)?);
    }
    tx.put_task(&task)?;
    settle(tx, &task, now)?;
    touch_job(tx, &task.job_id, now)?;
    Ok(recorded)
}

/// Counts a failed attempt of `task` (InProgress): its error joins the
/// task's history, and the task is retried (Ready, maybe after a delay) or,
/// its attempts spent, Failed: a dead letter. The caller writes the task.
fn fail_attempt(
    tx: &mut dyn TaskTx,
    task: &mut TaskRecord,
    message: &str,
    now: i64,
    retry_at: &dyn Fn(&TaskRecord) -> Option<i64>,
    events: &mut Vec<TaskEvent>,
) -> Result<Recorded, TaskError> {
    task.failures += 1;
    task.error = Some(message.to_string());
    tx.add_attempt_error(&AttemptError {
        task_id: task.task_id.clone(),
        job_id: task.job_id.clone(),
        attempt: task.attempts,
        error: message.to_string(),
        at: now,
    })?;
    Ok(match retry_at(task) {
        Some(at) => {
            task.status = task
                .status
                .transition(task.task_id.as_str(), TaskStatus::Ready)?;
            task.not_before = (at > now).then_some(at);
            Recorded::Retrying
        }
        None => {
            task.status = task
                .status
                .transition(task.task_id.as_str(), TaskStatus::Failed)?;
            task.finished_at = Some(now);
            events.push(TaskEvent::DeadLettered {
                job_id: task.job_id.clone(),
                task_id: task.task_id.clone(),
                attempts: task.attempts,
                error: message.to_string(),
            });
            Recorded::Failed
        }
    })
}

/// The task is Blocked while a dependency is open; if the agent added
/// dependencies that are all done already it is Ready to run again; if it
/// added none it stays Blocked until someone (a planner, a user) changes
/// it, which stall detection reports.
fn waiting(
    tx: &mut dyn TaskTx,
    task: &mut TaskRecord,
    deps_at_claim: usize,
) -> Result<Recorded, TaskError> {
    let mut all_done = true;
    for d in &task.dependencies {
        if !tx.task(d)?.is_some_and(|r| r.status.is_done()) {
            all_done = false;
            break;
        }
    }
    let grew = task.dependencies.len() > deps_at_claim;
    let to = if all_done && grew {
        TaskStatus::Ready
    } else {
        TaskStatus::Blocked
    };
    if task.status != to {
        task.status = task.status.transition(task.task_id.as_str(), to)?;
    }
    Ok(Recorded::Waiting(to))
}

/// Counts each expired lease of the job as a failed attempt (the worker
/// crashed, hung or lost the store): the task is retried like any failed
/// attempt (Ready again, the crashed worker's late completion being stale)
/// or, its attempts spent, Failed with the reason, failing its dependents.
/// Returns the expired tasks.
pub(crate) fn expire_leases(
    tx: &mut dyn TaskTx,
    job_id: &JobId,
    now: i64,
    retry_at: &dyn Fn(&TaskRecord) -> Option<i64>,
    breaker_cfg: Option<&CircuitBreaker>,
    events: &mut Vec<TaskEvent>,
) -> Result<Vec<TaskId>, TaskError> {
    let expired = tx.expired_leases(job_id, now)?;
    let mut ids = Vec::with_capacity(expired.len());
    for mut t in expired {
        let message = format!(
            "lease of attempt {} (worker `{}`) expired",
            t.attempts,
            t.lease_owner.as_deref().unwrap_or("?")
        );
        if let Some(cfg) = breaker_cfg {
            events.extend(breaker::on_failure(tx, cfg, &t.agent, &message, now)?);
        }
        fail_attempt(tx, &mut t, &message, now, retry_at, events)?;
        t.lease_owner = None;
        t.lease_expires_at = None;
        t.updated_at = now;
        tx.put_task(&t)?;
        settle(tx, &t, now)?;
        ids.push(t.task_id);
    }
    if !ids.is_empty() {
        touch_job(tx, job_id, now)?;
    }
    Ok(ids)
}

/// Ends a running job. Open tasks are cancelled with `reason` (they could
/// never run). Returns the job's final status, which is the existing one if
/// another manager ended it first.
pub(crate) fn finish_job(
    tx: &mut dyn TaskTx,
    job_id: &JobId,
    status: JobStatus,
    reason: Option<&str>,
    now: i64,
) -> Result<JobStatus, TaskError> {
    let mut job = tx
        .job(job_id)?
        .ok_or_else(|| TaskError::JobNotFound(job_id.to_string()))?;
    if job.status.is_terminal() {
        return Ok(job.status);
    }
    job.status = job.status.transition(job_id.as_str(), status)?;
    job.reason = reason.map(str::to_string);
    job.updated_at = now;
    tx.put_job(&job)?;
    // A job that ends because every task finished has nothing to cancel:
    // skip reading all of its tasks.
    if tx.job_counts(job_id)?.open == 0 {
        return Ok(status);
    }
    for mut t in tx.job_tasks(job_id)? {
        if matches!(
            t.status,
            TaskStatus::Pending | TaskStatus::Ready | TaskStatus::Blocked | TaskStatus::InProgress
        ) {
            t.status = t
                .status
                .transition(t.task_id.as_str(), TaskStatus::Cancelled)?;
            t.error = Some(reason.unwrap_or("job ended").to_string());
            t.lease_owner = None;
            t.lease_expires_at = None;
            t.finished_at = Some(now);
            t.updated_at = now;
            tx.put_task(&t)?;
        }
    }
    Ok(status)
}

/// What re-driving a dead letter changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// The re-driven task (Ready again, with a fresh attempt budget).
    pub task_id: TaskId,
    /// Its job.
    pub job_id: JobId,
    /// Whether the job had ended failed and was reopened (Running).
    pub job_reopened: bool,
    /// Other tasks brought back: dependents failed because of the task
    /// (now Pending), and, when the job was reopened, tasks its end had
    /// cancelled (Pending, or Ready when their dependencies are done).
    pub reset: Vec<TaskId>,
}

/// Re-drives a dead letter: see [`crate::TaskManager::retry_dead`].
pub(crate) fn redrive(
    tx: &mut dyn TaskTx,
    task_id: &TaskId,
    now: i64,
) -> Result<Redriven, TaskError> {
    let mut task = task_or(tx, task_id)?;
    let not_dead = |task: &TaskRecord, why: &str| TaskError::NotDeadLetter {
        task: task.task_id.to_string(),
        status: task.status,
        why: why.to_string(),
    };
    if task.status != TaskStatus::Failed {
        return Err(not_dead(&task, ""));
    }
    if !tx
        .attempt_errors(task_id)?
        .iter()
        .any(|e| e.attempt == task.attempts)
    {
        let why = match &task.error {
            Some(e) => format!("; it did not fail an attempt of its own ({e})"),
            None => "; it did not fail an attempt of its own".to_string(),
        };
        return Err(not_dead(&task, &why));
    }
    let mut job = tx
        .job(&task.job_id)?
        .ok_or_else(|| TaskError::JobNotFound(task.job_id.to_string()))?;
    let job_reopened = match job.status {
        JobStatus::Running => false,
        JobStatus::Completed(false) => true,
        status => {
            return Err(TaskError::JobFinished {
                job: job.job_id.to_string(),
                status,
            });
        }
    };
    // Failed is final for every other path; a re-drive is the one way out.
    task.status = TaskStatus::Ready;
    task.failures = 0;
    task.error = None;
    task.not_before = None;
    task.finished_at = None;
    task.lease_owner = None;
    task.lease_expires_at = None;
    task.updated_at = now;
    tx.put_task(&task)?;
    let mut reset = Vec::new();
    let mut queue = VecDeque::from([task_id.clone()]);
    while let Some(failed) = queue.pop_front() {
        let because = format!("dependency `{failed}` failed");
        for d in tx.dependents(&failed)? {
            let Some(mut dep) = tx.task(&d)? else {
                continue;
            };
            if dep.status != TaskStatus::Failed || dep.error.as_deref() != Some(because.as_str()) {
                continue;
            }
            dep.status = TaskStatus::Pending;
            dep.error = None;
            dep.finished_at = None;
            dep.updated_at = now;
            tx.put_task(&dep)?;
            reset.push(d.clone());
            queue.push_back(d);
        }
    }
    if job_reopened {
        let cancelled_because = job
            .reason
            .clone()
            .unwrap_or_else(|| "job ended".to_string());
        job.status = JobStatus::Running;
        job.reason = None;
        job.updated_at = now;
        tx.put_job(&job)?;
        for mut t in tx.job_tasks(&job.job_id)? {
            if t.status != TaskStatus::Cancelled
                || t.error.as_deref() != Some(cancelled_because.as_str())
            {
                continue;
            }
            let mut all_done = true;
            for d in &t.dependencies {
                if !tx.task(d)?.is_some_and(|r| r.status.is_done()) {
                    all_done = false;
                    break;
                }
            }
            t.status = if all_done {
                TaskStatus::Ready
            } else {
                TaskStatus::Pending
            };
            t.error = None;
            t.finished_at = None;
            t.updated_at = now;
            tx.put_task(&t)?;
            reset.push(t.task_id);
        }
    }
    touch_job(tx, &job.job_id, now)?;
    Ok(Redriven {
        task_id: task_id.clone(),
        job_id: job.job_id,
        job_reopened,
        reset,
    })
}
