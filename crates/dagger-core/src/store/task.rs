//! The Task Agent store: jobs, tasks and their dependencies.
//!
//! The trait is transactional and synchronous on purpose. Agents call the
//! task manager synchronously from inside their `execute` (the seed's research
//! agent adds a dependency to its own task and returns), and several
//! processes may share one database, so every state change must be one atomic
//! read-check-write against the authoritative store. A backend therefore
//! offers [`TaskStore::transact`]: it runs a closure against a [`TaskTx`]
//! view of its tables and commits all of the closure's writes, or none of
//! them when it returns an error. The scheduling rules (dependencies, leases,
//! failure propagation) are written once, in `dagger-task-core`, against
//! [`TaskTx`]; backends only provide storage and indexes.

use crate::error::StoreError;
use crate::ids::{JobId, TaskId};
use crate::status::{JobStatus, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The level of a task in a job's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TaskType {
    /// A top-level goal of the job.
    Objective,
    /// A user-visible slice of an objective.
    Story,
    /// A unit of work (the default).
    #[default]
    Task,
    /// A part of a task.
    Subtask,
}

impl TaskType {
    /// The name as written in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Objective => "Objective",
            Self::Story => "Story",
            Self::Task => "Task",
            Self::Subtask => "Subtask",
        }
    }

    /// Parses the name written by [`TaskType::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Objective, Self::Story, Self::Task, Self::Subtask]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub job_id: JobId,
    /// Running until it ends.
    pub status: JobStatus,
    /// Agents the job's tasks may run on (`None`: any registered agent).
    pub allowed_agents: Option<Vec<String>>,
    /// The job's configuration, as JSON (owned by `dagger-task-core`).
    pub config: Value,
    /// Whether a manager has started the job (tasks may be added before).
    pub started: bool,
    /// Why the job ended as it did.
    pub reason: Option<String>,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last change of the job or any of its tasks (ms since the epoch).
    pub updated_at: i64,
}

/// One task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's id.
    pub task_id: TaskId,
    /// The job it belongs to.
    pub job_id: JobId,
    /// The task that created it or that it refines.
    pub parent_id: Option<TaskId>,
    /// Its level in the plan.
    pub task_type: TaskType,
    /// The agent that runs it.
    pub agent: String,
    /// What to do.
    pub description: String,
    /// How a reviewer decides whether the output is acceptable.
    pub acceptance_criteria: Option<String>,
    /// The agent's input.
    pub input: Value,
    /// The agent's output, once completed.
    pub output: Option<Value>,
    /// The last error, or why the task was failed or cancelled.
    pub error: Option<String>,
    /// Tasks whose outputs this task needs, in the order they were added.
    pub dependencies: Vec<TaskId>,
    /// Higher runs first.
    pub priority: i32,
    /// Insertion order, assigned by the store: FIFO within a priority.
    pub seq: u64,
    /// Current status.
    pub status: TaskStatus,
    /// Number of claims so far; the current claim's fencing token.
    pub attempts: u32,
    /// Failed attempts so far (what the retry policy counts).
    pub failures: u32,
    /// Retries allowed after the first failure (`None`: the job's policy decides).
    pub max_retries: Option<u32>,
    /// Per-attempt time limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The worker holding the lease while InProgress.
    pub lease_owner: Option<String>,
    /// When the lease ends (ms since the epoch) unless renewed.
    pub lease_expires_at: Option<i64>,
    /// A Ready task is not claimed before this time (retry back-off).
    pub not_before: Option<i64>,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// Start of the current or last attempt.
    pub started_at: Option<i64>,
    /// When it reached Completed, Failed or Cancelled.
    pub finished_at: Option<i64>,
    /// The W3C trace context of the span that created the task (see
    /// [`crate::trace_context`]); the agent's span is its child.
    pub traceparent: Option<String>,
}

/// The error of one failed attempt of a task, kept for dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The task.
    pub task_id: TaskId,
    /// Its job.
    pub job_id: JobId,
    /// The attempt (claim number) that failed.
    pub attempt: u32,
    /// Why it failed: the agent's error, `panicked: <msg>`, a timeout, an
    /// expired lease.
    pub error: String,
    /// When it was recorded (ms since the epoch).
    pub at: i64,
}

/// The state of an agent's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum BreakerState {
    /// Tasks of the agent are claimed as usual.
    #[default]
    Closed,
    /// Too many consecutive failures: no task of the agent is claimed
    /// before the cool-down ends.
    Open,
    /// The cool-down has ended and one trial task runs: its success closes
    /// the breaker, its failure opens it again.
    HalfOpen,
}

impl BreakerState {
    /// The name as written in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "Closed",
            Self::Open => "Open",
            Self::HalfOpen => "HalfOpen",
        }
    }

    /// Parses the name written by [`BreakerState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Closed, Self::Open, Self::HalfOpen]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent's circuit breaker as stored (shared by every worker of the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerRecord {
    /// The agent.
    pub agent: String,
    /// Its state.
    pub state: BreakerState,
    /// Failed attempts in a row since the last success.
    pub consecutive_failures: u32,
    /// Open: when the cool-down ends. HalfOpen: when the trial may be
    /// replaced by another one (its claim is considered lost).
    pub until: Option<i64>,
    /// The last error that counted.
    pub last_error: Option<String>,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
}

/// Counts of a job's tasks, for completion and stall decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Every task of the job.
    pub total: usize,
    /// Tasks that can still change without outside help: Pending, Ready,
    /// Blocked, InProgress.
    pub open: usize,
    /// Tasks InProgress.
    pub in_progress: usize,
    /// Tasks Failed, Rejected or Cancelled.
    pub unsuccessful: usize,
}

/// A view of the task tables inside one transaction. Reads see the
/// transaction's own writes.
pub trait TaskTx {
    /// Reads a job.
    fn job(&mut self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError>;
    /// Inserts or replaces a job.
    fn put_job(&mut self, job: &JobRecord) -> Result<(), StoreError>;
    /// Ids of jobs with this status, oldest first.
    fn jobs_with_status(&mut self, status: JobStatus) -> Result<Vec<JobId>, StoreError>;
    /// Reads a task.
    fn task(&mut self, task_id: &TaskId) -> Result<Option<TaskRecord>, StoreError>;
    /// Inserts or replaces a task (dependencies included).
    fn put_task(&mut self, task: &TaskRecord) -> Result<(), StoreError>;
    /// Re-reads into `task` what changes after a task is inserted (status,
    /// attempts, failures, dependencies, output, error, lease and times);
    /// `false` when the task is gone. The columns set at insertion (agent,
    /// description, input, priority, …) never change, so a caller holding
    /// the task as it was claimed already has them and a backend may skip
    /// reading and decoding them; the default reads the whole row.
    fn refresh_task(&mut self, task: &mut TaskRecord) -> Result<bool, StoreError> {
        match self.task(&task.task_id)? {
            Some(stored) => {
                *task = stored;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    /// Says that the transaction is about to read and write these tasks
    /// (a batch of finished attempts, tasks being inserted): a backend may
    /// read and lock them all in one round trip and answer the reads that
    /// follow from memory. Only a hint: reads and writes behave the same
    /// with or without it. The default does nothing.
    fn prefetch(&mut self, tasks: &[&TaskRecord]) -> Result<(), StoreError> {
        let _ = tasks;
        Ok(())
    }
    /// A fresh insertion sequence number.
    fn next_seq(&mut self) -> Result<u64, StoreError>;
    /// Every task of a job, in insertion order.
    fn job_tasks(&mut self, job_id: &JobId) -> Result<Vec<TaskRecord>, StoreError>;
    /// Ids of the tasks that depend on `task_id`.
    fn dependents(&mut self, task_id: &TaskId) -> Result<Vec<TaskId>, StoreError>;
    /// Up to `limit` Ready tasks of a job whose `not_before` has passed,
    /// highest priority first, FIFO within a priority.
    fn ready_tasks(
        &mut self,
        job_id: &JobId,
        now: i64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError>;
    /// InProgress tasks of a job whose lease ended at or before `now`.
    fn expired_leases(&mut self, job_id: &JobId, now: i64) -> Result<Vec<TaskRecord>, StoreError>;
    /// The earliest future time something of this job changes by itself: a
    /// lease expiring or a delayed retry becoming claimable.
    fn next_deadline(&mut self, job_id: &JobId, now: i64) -> Result<Option<i64>, StoreError>;
    /// Counts of the job's tasks.
    fn job_counts(&mut self, job_id: &JobId) -> Result<JobCounts, StoreError>;

    /// Appends the error of a failed attempt to its task's history.
    fn add_attempt_error(&mut self, error: &AttemptError) -> Result<(), StoreError>;
    /// Every recorded attempt error of a task, oldest first.
    fn attempt_errors(&mut self, task_id: &TaskId) -> Result<Vec<AttemptError>, StoreError>;
    /// An agent's circuit breaker, if one was ever recorded.
    fn breaker(&mut self, agent: &str) -> Result<Option<BreakerRecord>, StoreError>;
    /// Inserts or replaces an agent's circuit breaker.
    fn put_breaker(&mut self, breaker: &BreakerRecord) -> Result<(), StoreError>;
    /// Every recorded circuit breaker, by agent name.
    fn breakers(&mut self) -> Result<Vec<BreakerRecord>, StoreError>;

    /// Dead letters: Failed tasks (of `job`, or of every job) whose last
    /// attempt failed (an attempt error is recorded for their current
    /// attempt), in insertion order. The default reads every job's tasks;
    /// backends may answer from an index.
    fn dead_letters(&mut self, job: Option<&JobId>) -> Result<Vec<TaskRecord>, StoreError> {
        let jobs = match job {
            Some(j) => vec![j.clone()],
            None => {
                let mut all = Vec::new();
                for s in [
                    JobStatus::Running,
                    JobStatus::Completed(false),
                    JobStatus::Completed(true),
                    JobStatus::Cancelled,
                ] {
                    all.extend(self.jobs_with_status(s)?);
                }
                all
            }
        };
        let mut out = Vec::new();
        for j in jobs {
            for t in self.job_tasks(&j)? {
                if t.status == TaskStatus::Failed
                    && self
                        .attempt_errors(&t.task_id)?
                        .iter()
                        .any(|e| e.attempt == t.attempts)
                {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    /// Marks the transaction as one only its caller needs to hear of (a
    /// claim, a lease renewal, a recorded attempt: the caller wakes its own
    /// job loop). Unless it also writes a Ready task or a job, the store
    /// then leaves [`TaskStore::change_signal`] alone, so that job loops are
    /// not woken for nothing (a loop would otherwise wake on its own claims).
    /// Backends without a signal ignore it.
    fn quiet(&mut self) {}

    /// Sets the job's `updated_at` (its last progress) if the job exists.
    fn touch_job(&mut self, job_id: &JobId, now: i64) -> Result<(), StoreError> {
        if let Some(mut job) = self.job(job_id)? {
            job.updated_at = now;
            self.put_job(&job)?;
        }
        Ok(())
    }
}

/// Stores Task Agent jobs and tasks. See the module docs for why it is
/// synchronous and transactional.
pub trait TaskStore: Send + Sync + 'static {
    /// Runs `f` in one transaction: all its writes are committed when it
    /// returns `Ok`, none when it returns `Err` (the error is passed on).
    /// A backend may call `f` more than once (after a busy retry), so `f`
    /// must not have side effects outside the transaction.
    fn transact(
        &self,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError>;

    /// Runs `f`, which only reads, against a consistent view. Backends may
    /// run it without taking the write lock; by default it is a transaction.
    fn read(
        &self,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        self.transact(f)
    }

    /// A human-readable location (`memory`, `sqlite:path`), for messages.
    fn location(&self) -> String;

    /// A counter the store bumps after each committed transaction, so that
    /// job loops sharing the store in this process wake on each other's
    /// changes. `None` when the backend cannot signal; loops then rely on
    /// their lease and heartbeat timers.
    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Runs `f` in one transaction of `store` and returns its value.
///
/// `f` may fail with any error that a [`StoreError`] converts into (a
/// caller's own error type, or `StoreError` itself): its error rolls the
/// transaction back and is returned as it was, not flattened into a
/// `StoreError`. The one adapter from typed closures to
/// [`TaskStore::transact`]; [`read`] is its read-only twin.
pub fn transact<T: Send, E: From<StoreError> + Send>(
    store: &dyn TaskStore,
    f: impl FnMut(&mut dyn TaskTx) -> Result<T, E> + Send,
) -> Result<T, E> {
    capture("transaction", f, |body| store.transact(body))
}

/// Runs `f`, which only reads, against a consistent view of `store` (see
/// [`TaskStore::read`]) and returns its value; errors as in [`transact`].
pub fn read<T: Send, E: From<StoreError> + Send>(
    store: &dyn TaskStore,
    f: impl FnMut(&mut dyn TaskTx) -> Result<T, E> + Send,
) -> Result<T, E> {
    capture("read", f, |body| store.read(body))
}

/// The body a store runs inside its transaction.
type TxBody<'a> = dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send + 'a;

/// Hands `f` to a store entry point (`transact` or `read`) and brings back
/// `f`'s own value or error; an error of `f` aborts the store call.
fn capture<T: Send, E: From<StoreError> + Send>(
    what: &str,
    mut f: impl FnMut(&mut dyn TaskTx) -> Result<T, E> + Send,
    call: impl FnOnce(&mut TxBody<'_>) -> Result<(), StoreError>,
) -> Result<T, E> {
    let mut out: Option<Result<T, E>> = None;
    let done = call(&mut |tx| match f(tx) {
        Ok(v) => {
            out = Some(Ok(v));
            Ok(())
        }
        Err(e) => {
            out = Some(Err(e));
            // Only aborts the transaction: the caller gets `f`'s own error.
            Err(StoreError::Conflict(format!("{what} aborted by its body")))
        }
    });
    match (done, out) {
        (_, Some(Err(e))) => Err(e),
        (Ok(()), Some(Ok(v))) => Ok(v),
        (Err(e), _) => Err(e.into()),
        (Ok(()), None) => Err(StoreError::Conflict(format!("{what} produced no result")).into()),
    }
}
