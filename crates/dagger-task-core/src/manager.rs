//! [`TaskManager`]: the synchronous task API agents and programs call, and
//! the entry points that start and resume jobs.
//!
//! Every method goes straight to the [`TaskStore`] in one transaction; the
//! manager keeps no second copy of task state. That is what lets several
//! managers (threads or processes) share one store, and it is why the store
//! trait is synchronous: agents call these methods synchronously from inside
//! `execute`, as the seed's research agent does.

use crate::agent::TaskAgentRegistry;
use crate::config::{JobConfig, StallAction};
use crate::error::TaskError;
use crate::event::TaskEvent;
use crate::job::{self, JobHandle, JobRuntime};
use crate::ops::{self, Redriven};
use crate::spec::TaskSpec;
use crate::store_source::TaskStoreSource;
use dagger_core::store::{
    AttemptError, BreakerRecord, BreakerState, JobRecord, MemoryStore, TaskRecord, TaskStore,
    TaskType,
};
use dagger_core::{Cache, JobId, JobStatus, TaskId, TaskStatus, now_millis};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A task that failed its last attempt, kept with every attempt's error.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The task (Failed; its `error` is the last attempt's).
    pub task: TaskRecord,
    /// Every recorded attempt error, oldest first.
    pub errors: Vec<AttemptError>,
}

/// Events kept for a slow subscriber before it lags.
const EVENT_CAPACITY: usize = 1024;

/// A task as stored (the seed calls it `Task`).
pub type Task = TaskRecord;

/// Runs jobs of tasks on registered agents, persisting everything in a [`TaskStore`].
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct TaskManager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) heartbeat: Duration,
    pub(crate) stall_action: StallAction,
    pub(crate) cache: Cache,
    pub(crate) registry: TaskAgentRegistry,
    pub(crate) store: Arc<dyn TaskStore>,
    /// This manager's worker identity, written into leases.
    pub(crate) owner: String,
    pub(crate) jobs: Mutex<HashMap<JobId, Arc<JobRuntime>>>,
    pub(crate) stale: Mutex<Vec<TaskError>>,
    /// The group committer of finished attempts (see `commit.rs`).
    pub(crate) committer: Mutex<Option<tokio::sync::mpsc::UnboundedSender<crate::commit::Pending>>>,
    /// The bound on tasks running at once across all jobs of this manager.
    pub(crate) slots: Slots,
    /// Subscribers of [`TaskManager::subscribe`].
    pub(crate) events: tokio::sync::broadcast::Sender<TaskEvent>,
    /// Handed to agents as [`crate::TaskContext::app_data`].
    pub(crate) app_data: parking_lot::RwLock<Option<Arc<dyn std::any::Any + Send + Sync>>>,
}

/// Tasks this manager runs at once across all its jobs, against an optional
/// bound ([`TaskManager::set_max_concurrent_tasks`]). A job loop reserves
/// slots before it claims and gives back those it did not use; a finished
/// attempt gives back its own.
#[derive(Default)]
pub(crate) struct Slots {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// `None`: unbounded.
    max: Option<usize>,
    used: usize,
}

impl Slots {
    /// Reserves up to `want` slots; returns how many were granted.
    pub(crate) fn reserve(&self, want: usize) -> usize {
        let mut s = self.state.lock();
        let granted = match s.max {
            Some(max) => want.min(max.saturating_sub(s.used)),
            None => want,
        };
        s.used = s.used.saturating_add(granted);
        granted
    }

    /// Gives back `n` slots.
    pub(crate) fn release(&self, n: usize) {
        let mut s = self.state.lock();
        s.used = s.used.saturating_sub(n);
    }

    /// Whether a bound is set (a freed slot may then be wanted by another job).
    pub(crate) fn bounded(&self) -> bool {
        self.state.lock().max.is_some()
    }
}

impl TaskManager {
    /// A manager over `store`: an opened store (`Arc<SqliteStore>`,
    /// `Arc<dyn TaskStore>`, ...), or `None` (in memory) / `Some(path)` (a
    /// SQLite file opened at the first operation, see [`TaskStoreSource`]).
    /// A job with no progress for `heartbeat_interval` triggers
    /// `stall_action`; completed outputs are also put in `cache`
    /// (namespace: job id, key: task id).
    pub fn new(
        heartbeat_interval: Duration,
        stall_action: StallAction,
        cache: Cache,
        agent_registry: TaskAgentRegistry,
        store: impl Into<TaskStoreSource>,
    ) -> Self {
        let store = store.into().into_store();
        Self {
            inner: Arc::new(Inner {
                heartbeat: heartbeat_interval.max(Duration::from_millis(1)),
                stall_action,
                cache,
                registry: agent_registry,
                store,
                owner: format!("{}:{}", std::process::id(), TaskId::generate()),
                jobs: Mutex::new(HashMap::new()),
                stale: Mutex::new(Vec::new()),
                committer: Mutex::new(None),
                slots: Slots::default(),
                events: tokio::sync::broadcast::channel(EVENT_CAPACITY).0,
                app_data: parking_lot::RwLock::new(None),
            }),
        }
    }

    /// Makes `data` available to agents through
    /// [`crate::TaskContext::app_data`] (replacing earlier data; clones of
    /// this manager share it).
    pub fn with_app_data<T: std::any::Any + Send + Sync>(self, data: T) -> Self {
        self.with_shared_app_data(Arc::new(data))
    }

    /// [`Self::with_app_data`] for data already shared (type-erased).
    pub fn with_shared_app_data(self, data: Arc<dyn std::any::Any + Send + Sync>) -> Self {
        *self.inner.app_data.write() = Some(data);
        self
    }

    /// The application data, shared.
    pub fn app_data(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.inner.app_data.read().clone()
    }

    /// A manager over a fresh in-memory store (nothing survives the process).
    pub fn in_memory(
        heartbeat_interval: Duration,
        stall_action: StallAction,
        cache: Cache,
        agent_registry: TaskAgentRegistry,
    ) -> Self {
        Self::new(
            heartbeat_interval,
            stall_action,
            cache,
            agent_registry,
            Arc::new(MemoryStore::new()),
        )
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TaskStore> {
        &self.inner.store
    }
    /// The cache completed outputs are written to.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }
    /// The agent registry.
    pub fn registry(&self) -> &TaskAgentRegistry {
        &self.inner.registry
    }

    /// Bounds the tasks this manager runs at once across all its jobs
    /// (`None`: only each job's [`JobConfig::max_concurrency`] bounds them).
    /// Applies to claims made from now on.
    pub fn set_max_concurrent_tasks(&self, max: Option<usize>) {
        self.inner.slots.state.lock().max = max;
        // A larger bound may let waiting jobs claim.
        self.wake_all();
    }

    /// Events of this manager (dead letters, circuit breakers) from now on.
    /// A subscriber that falls more than 1024 events behind loses the
    /// oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TaskEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) fn emit(&self, events: Vec<TaskEvent>) {
        for e in events {
            // No subscriber is not an error.
            let _ = self.inner.events.send(e);
        }
    }

    /// Wakes every job loop of this manager.
    pub(crate) fn wake_all(&self) {
        for rt in self.inner.jobs.lock().values() {
            rt.notify.notify_one();
        }
    }

    /// Completions, failures and renewals this manager discarded because
    /// their lease was no longer current (each a [`TaskError::StaleLease`]),
    /// oldest first (the latest 1024 are kept); taking them clears the list.
    pub fn take_stale_completions(&self) -> Vec<TaskError> {
        std::mem::take(&mut *self.inner.stale.lock())
    }

    fn agent_check(&self) -> impl Fn(&JobRecord, &TaskRecord) -> Result<(), TaskError> + '_ {
        move |job, task| {
            if !self.inner.registry.contains(&task.agent) {
                return Err(TaskError::UnknownAgent {
                    task: task.task_id.to_string(),
                    agent: task.agent.clone(),
                });
            }
            if let Some(allowed) = &job.allowed_agents
                && !allowed.contains(&task.agent)
            {
                return Err(TaskError::AgentNotAllowed {
                    task: task.task_id.to_string(),
                    agent: task.agent.clone(),
                    job: job.job_id.to_string(),
                });
            }
            Ok(())
        }
    }

    pub(crate) fn wake(&self, job_id: &JobId) {
        if let Some(rt) = self.inner.jobs.lock().get(job_id) {
            rt.notify.notify_one();
        }
    }

    /// Adds one task; returns its id. The job is created if it does not exist
    /// yet (tasks may be added before [`TaskManager::start_job`]).
    pub fn add_task(&self, spec: TaskSpec) -> Result<TaskId, TaskError> {
        let mut ids = self.add_tasks(vec![spec])?;
        ids.pop().ok_or_else(|| {
            TaskError::Store(dagger_core::StoreError::Conflict("no task added".into()))
        })
    }

    /// Adds tasks atomically: all of them or, on any error, none. They may
    /// depend on each other; they must belong to one job.
    pub fn add_tasks(&self, specs: Vec<TaskSpec>) -> Result<Vec<TaskId>, TaskError> {
        let Some(job_id) = specs.first().map(|s| s.job_id.clone()) else {
            return Ok(Vec::new());
        };
        if let Some(other) = specs.iter().find(|s| s.job_id != job_id) {
            return Err(TaskError::InvalidConfig {
                job: other.job_id.to_string(),
                reason: format!("a batch of tasks must belong to one job (`{job_id}`)"),
            });
        }
        let records: Vec<TaskRecord> = specs.into_iter().map(TaskSpec::into_record).collect();
        let check = self.agent_check();
        let ids = ops::run(self.inner.store.as_ref(), |tx| {
            ops::insert_tasks(tx, &job_id, records.clone(), now_millis(), &check)
        })?;
        self.wake(&job_id);
        Ok(ids)
    }

    /// Adds an [`TaskType::Objective`] task; the seed's short form.
    pub fn add_objective(
        &self,
        job_id: impl Into<JobId>,
        description: impl Into<String>,
        agent: impl Into<String>,
        input: Value,
    ) -> Result<String, TaskError> {
        let spec = TaskSpec::new(job_id, agent, description)
            .input(input)
            .task_type(TaskType::Objective);
        self.add_task(spec).map(|id| id.to_string())
    }

    /// The seed's long form of [`TaskManager::add_task`]; prefer [`TaskSpec`].
    /// `task_id` picks the id (generated when `None`); `max_retries` of 0
    /// leaves the count to the job's retry policy.
    #[allow(clippy::too_many_arguments)]
    pub fn add_task_with_type(
        &self,
        job_id: String,
        description: String,
        agent: String,
        dependencies: Vec<String>,
        input: Value,
        parent_task_id: Option<String>,
        acceptance_criteria: Option<String>,
        task_type: TaskType,
        timeout: Option<Duration>,
        priority: i32,
        task_id: Option<String>,
        max_retries: u32,
    ) -> Result<String, TaskError> {
        let mut spec = TaskSpec::new(job_id, agent, description)
            .input(input)
            .dependencies(dependencies)
            .task_type(task_type)
            .priority(priority);
        if let Some(p) = parent_task_id {
            spec = spec.parent(p);
        }
        if let Some(c) = acceptance_criteria {
            spec = spec.acceptance_criteria(c);
        }
        if let Some(t) = timeout {
            spec = spec.timeout(t);
        }
        if let Some(id) = task_id {
            spec = spec.id(id);
        }
        if max_retries > 0 {
            spec = spec.max_retries(max_retries);
        }
        self.add_task(spec).map(|id| id.to_string())
    }

    /// Makes `task_id` depend on `dependency_id`. A cycle, a missing task or a
    /// finished task or job is an error and changes nothing.
    pub fn add_dependency(
        &self,
        task_id: impl Into<TaskId>,
        dependency_id: impl Into<TaskId>,
    ) -> Result<(), TaskError> {
        let (t, d): (TaskId, TaskId) = (task_id.into(), dependency_id.into());
        let job = ops::run(self.inner.store.as_ref(), |tx| {
            ops::add_dependency(tx, &t, &d, now_millis())?;
            Ok(tx.task(&t)?.map(|r| r.job_id))
        })?;
        if let Some(job) = job {
            self.wake(&job);
        }
        Ok(())
    }

    /// Changes a task's status; only legal transitions are accepted
    /// ([`TaskError::Status`] otherwise). Completing releases dependents;
    /// failing or cancelling fails them.
    pub fn update_task_status(
        &self,
        task_id: impl Into<TaskId>,
        status: TaskStatus,
    ) -> Result<(), TaskError> {
        let t: TaskId = task_id.into();
        let job = ops::run(self.inner.store.as_ref(), |tx| {
            ops::set_status(tx, &t, status, now_millis())?;
            Ok(tx.task(&t)?.map(|r| r.job_id))
        })?;
        if let Some(job) = job {
            self.wake(&job);
        }
        Ok(())
    }

    /// The task, or an error when the store fails.
    pub fn task(&self, task_id: impl Into<TaskId>) -> Result<Option<Task>, TaskError> {
        let t: TaskId = task_id.into();
        ops::read(self.inner.store.as_ref(), |tx| Ok(tx.task(&t)?))
    }

    /// The task, if it exists (a store failure is logged and gives `None`;
    /// use [`TaskManager::task`] to see it).
    pub fn get_task_by_id(&self, task_id: impl Into<TaskId>) -> Option<Task> {
        let t: TaskId = task_id.into();
        self.task(&t)
            .inspect_err(|e| tracing::error!(task = %t, error = %e, "reading task failed"))
            .ok()
            .flatten()
    }

    /// Outputs of the task's dependencies, in the order they were added.
    /// Every dependency must be done ([`TaskError::DependencyNotDone`]).
    pub fn get_dependency_outputs(
        &self,
        task_id: impl Into<TaskId>,
    ) -> Result<Vec<Value>, TaskError> {
        let t: TaskId = task_id.into();
        ops::read(self.inner.store.as_ref(), |tx| {
            let task = tx
                .task(&t)?
                .ok_or_else(|| TaskError::TaskNotFound(t.to_string()))?;
            let mut out = Vec::with_capacity(task.dependencies.len());
            for d in &task.dependencies {
                let dep = tx.task(d)?.ok_or_else(|| TaskError::DependencyNotFound {
                    task: t.to_string(),
                    dependency: d.to_string(),
                })?;
                match dep.output {
                    Some(v) if dep.status.is_done() => out.push(v),
                    _ => {
                        return Err(TaskError::DependencyNotDone {
                            task: t.to_string(),
                            dependency: d.to_string(),
                            status: dep.status,
                        });
                    }
                }
            }
            Ok(out)
        })
    }

    /// Every task of a job, in insertion order.
    pub fn get_job_tasks(&self, job_id: impl Into<JobId>) -> Result<Vec<Task>, TaskError> {
        let j: JobId = job_id.into();
        ops::read(self.inner.store.as_ref(), |tx| Ok(tx.job_tasks(&j)?))
    }

    /// Tasks whose parent is `task_id`.
    pub fn get_child_tasks(&self, task_id: impl Into<TaskId>) -> Result<Vec<Task>, TaskError> {
        let t: TaskId = task_id.into();
        ops::read(self.inner.store.as_ref(), |tx| {
            let task = tx
                .task(&t)?
                .ok_or_else(|| TaskError::TaskNotFound(t.to_string()))?;
            Ok(tx
                .job_tasks(&task.job_id)?
                .into_iter()
                .filter(|c| c.parent_id.as_ref() == Some(&t))
                .collect())
        })
    }

    /// Tasks of a job with this type.
    pub fn get_tasks_by_type(
        &self,
        job_id: impl Into<JobId>,
        task_type: TaskType,
    ) -> Result<Vec<Task>, TaskError> {
        Ok(self
            .get_job_tasks(job_id)?
            .into_iter()
            .filter(|t| t.task_type == task_type)
            .collect())
    }

    /// Ready tasks of a job in the order they would be claimed.
    pub fn get_ready_tasks_for_job(
        &self,
        job_id: impl Into<JobId>,
    ) -> Result<Vec<Task>, TaskError> {
        let j: JobId = job_id.into();
        ops::read(self.inner.store.as_ref(), |tx| {
            Ok(tx.ready_tasks(&j, i64::MAX, usize::MAX)?)
        })
    }

    /// The job's stored status.
    pub fn job_status(&self, job_id: impl Into<JobId>) -> Result<JobStatus, TaskError> {
        let j: JobId = job_id.into();
        ops::read(self.inner.store.as_ref(), |tx| {
            tx.job(&j)?
                .map(|r| r.status)
                .ok_or_else(|| TaskError::JobNotFound(j.to_string()))
        })
    }

    /// Dead letters: tasks (of `job`, or of every job) that failed their
    /// last attempt, each with every attempt's error, oldest first.
    pub fn dead_letters(&self, job: Option<&str>) -> Result<Vec<DeadLetter>, TaskError> {
        let job = job.map(JobId::from);
        ops::read(self.inner.store.as_ref(), |tx| {
            let mut out = Vec::new();
            for task in tx.dead_letters(job.as_ref())? {
                let errors = tx.attempt_errors(&task.task_id)?;
                out.push(DeadLetter { task, errors });
            }
            Ok(out)
        })
    }

    /// Every recorded error of a task's attempts, oldest first.
    pub fn attempt_errors(
        &self,
        task_id: impl Into<TaskId>,
    ) -> Result<Vec<AttemptError>, TaskError> {
        let t: TaskId = task_id.into();
        ops::read(self.inner.store.as_ref(), |tx| Ok(tx.attempt_errors(&t)?))
    }

    /// Re-drives a dead letter: the task goes back to Ready with a fresh
    /// attempt budget (its failures are reset; the attempt number, its
    /// lease's fencing token, keeps counting, and its earlier errors stay
    /// in [`TaskManager::attempt_errors`]). Its dependents that failed
    /// because of it (transitively) go back to Pending. If its job had
    /// ended failed, the job is reopened (Running) and the tasks the job's
    /// end cancelled come back too; a job that was cancelled is not
    /// reopened ([`TaskError::JobFinished`]). A task that is not a dead
    /// letter is refused ([`TaskError::NotDeadLetter`]).
    ///
    /// A reopened job needs a loop to run it: [`TaskManager::resume_job`]
    /// here, or a worker pool serving the store ([`TaskManager::serve`]).
    pub fn retry_dead(&self, task_id: impl Into<TaskId>) -> Result<Redriven, TaskError> {
        let t: TaskId = task_id.into();
        let done = ops::run(self.inner.store.as_ref(), |tx| {
            ops::redrive(tx, &t, now_millis())
        })?;
        self.wake(&done.job_id);
        Ok(done)
    }

    /// An agent's circuit breaker as stored (`None`: never recorded, i.e. closed).
    pub fn circuit_breaker(&self, agent: &str) -> Result<Option<BreakerRecord>, TaskError> {
        ops::read(self.inner.store.as_ref(), |tx| Ok(tx.breaker(agent)?))
    }

    /// The state of an agent's circuit breaker (Closed when none was recorded).
    pub fn circuit_state(&self, agent: &str) -> Result<BreakerState, TaskError> {
        Ok(self
            .circuit_breaker(agent)?
            .map_or(BreakerState::Closed, |b| b.state))
    }

    /// Every recorded circuit breaker, by agent.
    pub fn circuit_breakers(&self) -> Result<Vec<BreakerRecord>, TaskError> {
        ops::read(self.inner.store.as_ref(), |tx| Ok(tx.breakers()?))
    }

    /// Starts a job: records its allowed agents (`None`: any registered
    /// agent) and configuration, adds `initial_tasks`, and runs it on the
    /// current Tokio runtime. Tasks added earlier must use allowed agents.
    pub fn start_job(
        &self,
        job_id: impl Into<JobId>,
        initial_tasks: Vec<TaskSpec>,
        allowed_agents: Option<Vec<String>>,
        config: Option<JobConfig>,
    ) -> Result<JobHandle, TaskError> {
        self.start_job_with_cancel(
            job_id,
            initial_tasks,
            allowed_agents,
            config,
            CancellationToken::new(),
        )
    }

    /// [`TaskManager::start_job`], and the job is cancelled (as by
    /// [`JobHandle::cancel`]) when `cancel` is: the one cancellation type
    /// DAG runs (`RunRequest::cancel_token`) and the pub/sub executor
    /// (`PubSubExecutor::run`) take too, so one token stops all three. The
    /// job watches a child of `cancel`: [`JobHandle::cancel`] stops this
    /// job only.
    pub fn start_job_with_cancel(
        &self,
        job_id: impl Into<JobId>,
        initial_tasks: Vec<TaskSpec>,
        allowed_agents: Option<Vec<String>>,
        config: Option<JobConfig>,
        cancel: CancellationToken,
    ) -> Result<JobHandle, TaskError> {
        let job_id = job_id.into();
        tokio::runtime::Handle::try_current().map_err(|_| TaskError::NoRuntime)?;
        if self.inner.jobs.lock().contains_key(&job_id) {
            return Err(TaskError::JobAlreadyStarted(job_id.to_string()));
        }
        let config =
            self.record_start(&job_id, initial_tasks, allowed_agents.clone(), config, true)?;
        Ok(job::spawn(
            self,
            job_id,
            config,
            allowed_agents,
            cancel.child_token(),
        ))
    }

    /// Records a started job like [`TaskManager::start_job`] but leaves
    /// running it to the workers of the pool ([`TaskManager::serve`], in
    /// this or other processes sharing the store). Agents need not be
    /// registered here (only the allowed agents are checked). Follow the
    /// job with [`TaskManager::job_status`], or with [`TaskManager::resume_job`]
    /// whose handle can be awaited (this manager then runs tasks only for
    /// the agents it has registered).
    pub fn submit_job(
        &self,
        job_id: impl Into<JobId>,
        initial_tasks: Vec<TaskSpec>,
        allowed_agents: Option<Vec<String>>,
        config: Option<JobConfig>,
    ) -> Result<JobId, TaskError> {
        let job_id = job_id.into();
        self.record_start(&job_id, initial_tasks, allowed_agents, config, false)?;
        Ok(job_id)
    }

    /// Writes a job as started with its tasks; returns its configuration.
    /// `registered_only`: each task's agent must be registered here.
    fn record_start(
        &self,
        job_id: &JobId,
        initial_tasks: Vec<TaskSpec>,
        allowed_agents: Option<Vec<String>>,
        config: Option<JobConfig>,
        registered_only: bool,
    ) -> Result<JobConfig, TaskError> {
        let config = config.unwrap_or_default();
        config.validate(job_id)?;
        if let Some(s) = initial_tasks.iter().find(|s| &s.job_id != job_id) {
            return Err(TaskError::InvalidConfig {
                job: job_id.to_string(),
                reason: format!(
                    "initial task for `{}` belongs to job `{}`",
                    s.agent, s.job_id
                ),
            });
        }
        let config_json = serde_json::to_value(&config).map_err(|e| TaskError::InvalidConfig {
            job: job_id.to_string(),
            reason: e.to_string(),
        })?;
        let records: Vec<TaskRecord> = initial_tasks
            .into_iter()
            .map(TaskSpec::into_record)
            .collect();
        let registered = self.agent_check();
        let check = |job: &JobRecord, task: &TaskRecord| -> Result<(), TaskError> {
            if registered_only {
                return registered(job, task);
            }
            match &job.allowed_agents {
                Some(allowed) if !allowed.contains(&task.agent) => {
                    Err(TaskError::AgentNotAllowed {
                        task: task.task_id.to_string(),
                        agent: task.agent.clone(),
                        job: job.job_id.to_string(),
                    })
                }
                _ => Ok(()),
            }
        };
        ops::run(self.inner.store.as_ref(), |tx| {
            let now = now_millis();
            let mut job = ops::open_job(tx, job_id, now)?;
            if job.started {
                return Err(TaskError::JobAlreadyStarted(job_id.to_string()));
            }
            job.started = true;
            job.allowed_agents = allowed_agents.clone();
            job.config = config_json.clone();
            job.updated_at = now;
            tx.put_job(&job)?;
            for t in tx.job_tasks(job_id)? {
                check(&job, &t)?;
            }
            ops::insert_tasks(tx, job_id, records.clone(), now, &check)?;
            Ok(())
        })?;
        Ok(config)
    }

    /// Continues a job from the store (after a restart, or to add this
    /// manager's workers to a job another manager runs). A job that ended
    /// gives a handle reporting its final status.
    pub fn resume_job(&self, job_id: impl Into<JobId>) -> Result<JobHandle, TaskError> {
        tokio::runtime::Handle::try_current().map_err(|_| TaskError::NoRuntime)?;
        let j: JobId = job_id.into();
        if let Some(rt) = self.inner.jobs.lock().get(&j) {
            return Ok(rt.handle());
        }
        let job = ops::run(self.inner.store.as_ref(), |tx| {
            tx.job(&j)?
                .ok_or_else(|| TaskError::JobNotFound(j.to_string()))
        })?;
        if job.status.is_terminal() {
            return Ok(JobHandle::finished(j, job.status));
        }
        let config: JobConfig = if job.config.is_null() {
            JobConfig::default()
        } else {
            serde_json::from_value(job.config.clone()).map_err(|e| TaskError::InvalidConfig {
                job: j.to_string(),
                reason: format!("stored configuration cannot be read: {e}"),
            })?
        };
        Ok(job::spawn(
            self,
            j,
            config,
            job.allowed_agents,
            CancellationToken::new(),
        ))
    }

    /// Continues every started job that has not ended; returns their handles.
    pub fn resume_jobs(&self) -> Result<Vec<JobHandle>, TaskError> {
        let ids = ops::run(self.inner.store.as_ref(), |tx| {
            let mut ids = Vec::new();
            for id in tx.jobs_with_status(JobStatus::Running)? {
                if tx.job(&id)?.is_some_and(|j| j.started) {
                    ids.push(id);
                }
            }
            Ok(ids)
        })?;
        ids.iter().map(|id| self.resume_job(id.as_str())).collect()
    }

    /// The job's tasks as a DOT digraph (every job when `None`): agents,
    /// statuses as colours, attempts, errors, dependency edges.
    pub fn get_dot_graph(&self, job_id: Option<&str>) -> Result<String, TaskError> {
        let tasks = match job_id {
            Some(j) => self.get_job_tasks(j)?,
            None => ops::run(self.inner.store.as_ref(), |tx| {
                let mut all = Vec::new();
                for s in [
                    JobStatus::Running,
                    JobStatus::Completed(true),
                    JobStatus::Completed(false),
                    JobStatus::Cancelled,
                ] {
                    for j in tx.jobs_with_status(s)? {
                        all.extend(tx.job_tasks(&j)?);
                    }
                }
                Ok(all)
            })?,
        };
        Ok(crate::dot::render(job_id.unwrap_or("all_jobs"), &tasks))
    }
}

impl std::fmt::Debug for TaskManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskManager")
            .field("owner", &self.inner.owner)
            .field("store", &self.inner.store.location())
            .field("stall_action", &self.inner.stall_action)
            .finish_non_exhaustive()
    }
}
