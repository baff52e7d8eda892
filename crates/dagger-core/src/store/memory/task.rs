//! Task Agent jobs and tasks in memory, with the indexes a scheduler needs
//! (ready queue per job, lease and retry timers, counts), so that claiming
//! is O(log n) rather than a scan of the job.
//!
//! A transaction runs under the store's mutex and writes in place, keeping an
//! undo log; when the closure fails the log is replayed backwards, so a failed
//! transaction leaves nothing behind.

use super::MemoryStore;
use crate::error::StoreError;
use crate::ids::{JobId, TaskId};
use crate::status::{JobStatus, TaskStatus};
use crate::store::PruneReport;
use crate::store::task::{
    AttemptError, BreakerRecord, JobCounts, JobRecord, TaskRecord, TaskStore, TaskTx,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

type ReadyKey = (Reverse<i32>, u64, TaskId);

/// Per-job indexes.
#[derive(Default)]
struct JobIndex {
    /// Task ids in insertion order.
    order: Vec<TaskId>,
    /// Ready tasks by priority then insertion order.
    ready: BTreeSet<ReadyKey>,
    /// InProgress tasks by lease expiry.
    leases: BTreeSet<(i64, TaskId)>,
    /// Ready tasks that carry a `not_before`, by that time.
    delayed: BTreeSet<(i64, TaskId)>,
    counts: JobCounts,
}

enum Undo {
    Task(TaskId, Option<Box<TaskRecord>>),
    Job(JobId, Option<JobRecord>),
    /// An attempt error appended to this task's history.
    AttemptError(TaskId),
    Breaker(String, Option<BreakerRecord>),
}

pub(super) struct TaskTables {
    changed: tokio::sync::watch::Sender<u64>,
    jobs: HashMap<JobId, JobRecord>,
    job_order: Vec<JobId>,
    tasks: HashMap<TaskId, TaskRecord>,
    dependents: HashMap<TaskId, Vec<TaskId>>,
    index: HashMap<JobId, JobIndex>,
    seq: u64,
    attempt_errors: HashMap<TaskId, Vec<AttemptError>>,
    breakers: BTreeMap<String, BreakerRecord>,
}

fn is_open(s: TaskStatus) -> bool {
    matches!(
        s,
        TaskStatus::Pending | TaskStatus::Ready | TaskStatus::Blocked | TaskStatus::InProgress
    )
}

fn is_unsuccessful(s: TaskStatus) -> bool {
    matches!(
        s,
        TaskStatus::Failed | TaskStatus::Rejected | TaskStatus::Cancelled
    )
}

impl Default for TaskTables {
    fn default() -> Self {
        Self {
            changed: tokio::sync::watch::Sender::new(0),
            jobs: HashMap::new(),
            job_order: Vec::new(),
            tasks: HashMap::new(),
            dependents: HashMap::new(),
            index: HashMap::new(),
            seq: 0,
            attempt_errors: HashMap::new(),
            breakers: BTreeMap::new(),
        }
    }
}

impl TaskTables {
    /// Removes the jobs that ended and were last updated before
    /// `cutoff_ms` with their tasks, edges and dead letters, adding the
    /// counts to `report` (with `dry_run`, counting only).
    pub(super) fn prune(&mut self, cutoff_ms: i64, dry_run: bool, report: &mut PruneReport) {
        let gone: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.status.is_terminal() && j.updated_at < cutoff_ms)
            .map(|j| j.job_id.clone())
            .collect();
        for job in &gone {
            let order = self
                .index
                .get(job)
                .map(|ix| ix.order.clone())
                .unwrap_or_default();
            report.task_jobs += 1;
            report.tasks += order.len() as u64;
            for id in &order {
                report.task_dependencies += self
                    .tasks
                    .get(id)
                    .map_or(0, |t| t.dependencies.len() as u64);
                report.task_dead_letters +=
                    self.attempt_errors.get(id).map_or(0, |e| e.len() as u64);
            }
            if dry_run {
                continue;
            }
            for id in &order {
                if let Some(t) = self.tasks.remove(id) {
                    self.index_remove(&t);
                }
                self.attempt_errors.remove(id);
                self.dependents.remove(id);
            }
            self.index.remove(job);
            self.jobs.remove(job);
        }
        if !dry_run {
            self.job_order.retain(|j| !gone.contains(j));
        }
    }

    fn index_add(&mut self, t: &TaskRecord) {
        let ix = self.index.entry(t.job_id.clone()).or_default();
        ix.counts.total += 1;
        if is_open(t.status) {
            ix.counts.open += 1;
        }
        if is_unsuccessful(t.status) {
            ix.counts.unsuccessful += 1;
        }
        match t.status {
            TaskStatus::Ready => {
                ix.ready
                    .insert((Reverse(t.priority), t.seq, t.task_id.clone()));
                if let Some(nb) = t.not_before {
                    ix.delayed.insert((nb, t.task_id.clone()));
                }
            }
            TaskStatus::InProgress => {
                ix.counts.in_progress += 1;
                ix.leases
                    .insert((t.lease_expires_at.unwrap_or(i64::MAX), t.task_id.clone()));
            }
            _ => {}
        }
        for dep in &t.dependencies {
            let list = self.dependents.entry(dep.clone()).or_default();
            if !list.contains(&t.task_id) {
                list.push(t.task_id.clone());
            }
        }
    }

    fn index_remove(&mut self, t: &TaskRecord) {
        let Some(ix) = self.index.get_mut(&t.job_id) else {
            return;
        };
        ix.counts.total -= 1;
        if is_open(t.status) {
            ix.counts.open -= 1;
        }
        if is_unsuccessful(t.status) {
            ix.counts.unsuccessful -= 1;
        }
        match t.status {
            TaskStatus::Ready => {
                ix.ready
                    .remove(&(Reverse(t.priority), t.seq, t.task_id.clone()));
                if let Some(nb) = t.not_before {
                    ix.delayed.remove(&(nb, t.task_id.clone()));
                }
            }
            TaskStatus::InProgress => {
                ix.counts.in_progress -= 1;
                ix.leases
                    .remove(&(t.lease_expires_at.unwrap_or(i64::MAX), t.task_id.clone()));
            }
            _ => {}
        }
        for dep in &t.dependencies {
            if let Some(list) = self.dependents.get_mut(dep) {
                list.retain(|d| d != &t.task_id);
            }
        }
    }

    /// Replaces (or with `None` removes) a task, keeping indexes right.
    fn set_task(&mut self, id: &TaskId, rec: Option<TaskRecord>) -> Option<TaskRecord> {
        let old = self.tasks.remove(id);
        if let Some(o) = &old {
            self.index_remove(o);
        }
        match rec {
            Some(r) => {
                if old.is_none() {
                    self.index
                        .entry(r.job_id.clone())
                        .or_default()
                        .order
                        .push(r.task_id.clone());
                }
                self.index_add(&r);
                self.tasks.insert(id.clone(), r);
            }
            None => {
                if let Some(o) = &old
                    && let Some(ix) = self.index.get_mut(&o.job_id)
                {
                    ix.order.retain(|t| t != id);
                }
            }
        }
        old
    }

    fn set_job(&mut self, id: &JobId, rec: Option<JobRecord>) -> Option<JobRecord> {
        match rec {
            Some(r) => {
                let old = self.jobs.insert(id.clone(), r);
                if old.is_none() {
                    self.job_order.push(id.clone());
                }
                old
            }
            None => {
                self.job_order.retain(|j| j != id);
                self.jobs.remove(id)
            }
        }
    }
}

struct MemTx<'a> {
    t: &'a mut TaskTables,
    undo: Vec<Undo>,
    /// See [`TaskTx::quiet`].
    quiet: bool,
    /// Wrote a Ready task or a job: job loops must hear of it.
    loud: bool,
}

impl TaskTx for MemTx<'_> {
    fn job(&mut self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.t.jobs.get(job_id).cloned())
    }

    fn put_job(&mut self, job: &JobRecord) -> Result<(), StoreError> {
        self.loud = true;
        let old = self.t.set_job(&job.job_id, Some(job.clone()));
        self.undo.push(Undo::Job(job.job_id.clone(), old));
        Ok(())
    }

    fn jobs_with_status(&mut self, status: JobStatus) -> Result<Vec<JobId>, StoreError> {
        Ok(self
            .t
            .job_order
            .iter()
            .filter(|j| self.t.jobs.get(*j).is_some_and(|r| r.status == status))
            .cloned()
            .collect())
    }

    fn task(&mut self, task_id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.t.tasks.get(task_id).cloned())
    }

    fn put_task(&mut self, task: &TaskRecord) -> Result<(), StoreError> {
        self.loud |= task.status == TaskStatus::Ready;
        let old = self.t.set_task(&task.task_id, Some(task.clone()));
        self.undo
            .push(Undo::Task(task.task_id.clone(), old.map(Box::new)));
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        self.t.seq += 1;
        Ok(self.t.seq)
    }

    fn job_tasks(&mut self, job_id: &JobId) -> Result<Vec<TaskRecord>, StoreError> {
        Ok(self
            .t
            .index
            .get(job_id)
            .map(|ix| {
                ix.order
                    .iter()
                    .filter_map(|id| self.t.tasks.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn dependents(&mut self, task_id: &TaskId) -> Result<Vec<TaskId>, StoreError> {
        Ok(self.t.dependents.get(task_id).cloned().unwrap_or_default())
    }

    fn ready_tasks(
        &mut self,
        job_id: &JobId,
        now: i64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let Some(ix) = self.t.index.get(job_id) else {
            return Ok(Vec::new());
        };
        Ok(ix
            .ready
            .iter()
            .filter_map(|(_, _, id)| self.t.tasks.get(id))
            .filter(|t| t.not_before.is_none_or(|nb| nb <= now))
            .take(limit)
            .cloned()
            .collect())
    }

    fn expired_leases(&mut self, job_id: &JobId, now: i64) -> Result<Vec<TaskRecord>, StoreError> {
        let Some(ix) = self.t.index.get(job_id) else {
            return Ok(Vec::new());
        };
        Ok(ix
            .leases
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| self.t.tasks.get(id).cloned())
            .collect())
    }

    fn next_deadline(&mut self, job_id: &JobId, now: i64) -> Result<Option<i64>, StoreError> {
        let Some(ix) = self.t.index.get(job_id) else {
            return Ok(None);
        };
        let lease = ix.leases.iter().next().map(|(at, _)| *at);
        let retry = ix.delayed.iter().map(|(at, _)| *at).find(|at| *at > now);
        Ok(match (lease, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn quiet(&mut self) {
        self.quiet = true;
    }

    fn add_attempt_error(&mut self, error: &AttemptError) -> Result<(), StoreError> {
        self.t
            .attempt_errors
            .entry(error.task_id.clone())
            .or_default()
            .push(error.clone());
        self.undo.push(Undo::AttemptError(error.task_id.clone()));
        Ok(())
    }

    fn attempt_errors(&mut self, task_id: &TaskId) -> Result<Vec<AttemptError>, StoreError> {
        Ok(self
            .t
            .attempt_errors
            .get(task_id)
            .cloned()
            .unwrap_or_default())
    }

    fn breaker(&mut self, agent: &str) -> Result<Option<BreakerRecord>, StoreError> {
        Ok(self.t.breakers.get(agent).cloned())
    }

    fn put_breaker(&mut self, breaker: &BreakerRecord) -> Result<(), StoreError> {
        let old = self
            .t
            .breakers
            .insert(breaker.agent.clone(), breaker.clone());
        self.undo.push(Undo::Breaker(breaker.agent.clone(), old));
        Ok(())
    }

    fn breakers(&mut self) -> Result<Vec<BreakerRecord>, StoreError> {
        Ok(self.t.breakers.values().cloned().collect())
    }

    fn job_counts(&mut self, job_id: &JobId) -> Result<JobCounts, StoreError> {
        Ok(self
            .t
            .index
            .get(job_id)
            .map(|ix| ix.counts)
            .unwrap_or_default())
    }
}

impl TaskStore for MemoryStore {
    fn transact(
        &self,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        let mut guard = self.tasks.lock();
        let mut tx = MemTx {
            t: &mut guard,
            undo: Vec::new(),
            quiet: false,
            loud: false,
        };
        let result = f(&mut tx);
        if result.is_ok() {
            if !tx.undo.is_empty() && (tx.loud || !tx.quiet) {
                tx.t.changed.send_modify(|n| *n = n.wrapping_add(1));
            }
        } else {
            let MemTx { t, undo, .. } = tx;
            for u in undo.into_iter().rev() {
                match u {
                    Undo::Task(id, old) => {
                        t.set_task(&id, old.map(|b| *b));
                    }
                    Undo::Job(id, old) => {
                        t.set_job(&id, old);
                    }
                    Undo::AttemptError(id) => {
                        if let Some(list) = t.attempt_errors.get_mut(&id) {
                            list.pop();
                        }
                    }
                    Undo::Breaker(agent, old) => match old {
                        Some(b) => {
                            t.breakers.insert(agent, b);
                        }
                        None => {
                            t.breakers.remove(&agent);
                        }
                    },
                }
            }
        }
        result
    }

    fn location(&self) -> String {
        "memory".to_string()
    }

    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.tasks.lock().changed.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::task::{TaskType, transact};
    use serde_json::json;

    fn task(id: &str, job: &str, priority: i32, seq: u64) -> TaskRecord {
        TaskRecord {
            task_id: id.into(),
            job_id: job.into(),
            parent_id: None,
            task_type: TaskType::Task,
            agent: "a".into(),
            description: String::new(),
            acceptance_criteria: None,
            input: json!(null),
            output: None,
            error: None,
            dependencies: vec![],
            priority,
            seq,
            status: TaskStatus::Ready,
            attempts: 0,
            failures: 0,
            max_retries: None,
            timeout_ms: None,
            lease_owner: None,
            lease_expires_at: None,
            not_before: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            finished_at: None,
            traceparent: None,
        }
    }

    #[test]
    fn ready_order_is_priority_then_fifo_and_rollback_restores_indexes() {
        let store = MemoryStore::new();
        transact(&store, |tx| {
            tx.put_task(&task("low", "j", 0, 1))?;
            tx.put_task(&task("high", "j", 5, 2))?;
            tx.put_task(&task("low2", "j", 0, 3))
        })
        .unwrap();
        let err = transact(&store, |tx| {
            let mut t = task("high", "j", 5, 2);
            t.status = TaskStatus::InProgress;
            t.lease_expires_at = Some(10);
            tx.put_task(&t)?;
            tx.put_task(&task("new", "j", 9, 4))?;
            Err::<(), _>(StoreError::Conflict("abort".into()))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "abort");
        let ids = transact(&store, |tx| {
            let ready = tx.ready_tasks(&"j".into(), 0, 10)?;
            let counts = tx.job_counts(&"j".into())?;
            let expired = tx.expired_leases(&"j".into(), 100)?;
            assert!(expired.is_empty(), "rolled-back lease must not remain");
            assert_eq!(counts.total, 3);
            assert_eq!(counts.in_progress, 0);
            Ok::<_, StoreError>(
                ready
                    .into_iter()
                    .map(|t| t.task_id.to_string())
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap();
        assert_eq!(ids, ["high", "low", "low2"]);
    }
}
