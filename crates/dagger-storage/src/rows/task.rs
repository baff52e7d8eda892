//! The columns of the Task Agent tables (`task_jobs`, `tasks`,
//! `task_breakers`): jobs, tasks and per-agent circuit breakers.

use crate::error::decode;
use crate::rows::narrow;
use dagger_core::store::{BreakerRecord, BreakerState, JobRecord, TaskRecord, TaskType};
use dagger_core::{JobId, JobStatus, StoreError, TaskId, TaskStatus};

/// A job row's columns (after its id).
pub(crate) struct JobRow {
    pub(crate) status: String,
    pub(crate) allowed_agents: Option<String>,
    pub(crate) config: String,
    pub(crate) started: bool,
    pub(crate) reason: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl JobRow {
    /// The record of job `job_id` these columns hold.
    pub(crate) fn decode(self, job_id: &JobId) -> Result<JobRecord, StoreError> {
        let what = || format!("job `{job_id}`");
        Ok(JobRecord {
            job_id: job_id.clone(),
            status: JobStatus::parse(&self.status)
                .ok_or_else(|| decode(what(), format!("unknown status `{}`", self.status)))?,
            allowed_agents: self
                .allowed_agents
                .map(|a| serde_json::from_str(&a).map_err(|e| decode(what(), e)))
                .transpose()?,
            config: serde_json::from_str(&self.config).map_err(|e| decode(what(), e))?,
            started: self.started,
            reason: self.reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// How a backend keeps a task's dependency ids: SQLite as a JSON array in
/// a text column, Postgres as a `text[]`.
pub(crate) enum Dependencies {
    /// A JSON array of ids.
    Json(String),
    /// The ids themselves.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    List(Vec<String>),
}

/// A task row's columns, in the order both backends select them.
pub(crate) struct TaskRow {
    pub(crate) task_id: String,
    pub(crate) job_id: String,
    pub(crate) parent_id: Option<String>,
    pub(crate) task_type: String,
    pub(crate) agent: String,
    pub(crate) description: String,
    pub(crate) acceptance_criteria: Option<String>,
    pub(crate) input: String,
    pub(crate) output: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) priority: i32,
    pub(crate) seq: i64,
    pub(crate) status: String,
    pub(crate) attempts: i64,
    pub(crate) failures: i64,
    pub(crate) max_retries: Option<i64>,
    pub(crate) timeout_ms: Option<i64>,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_at: Option<i64>,
    pub(crate) not_before: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    pub(crate) dependencies: Dependencies,
    pub(crate) traceparent: Option<String>,
}

impl TaskRow {
    /// The record these columns hold.
    pub(crate) fn decode(self) -> Result<TaskRecord, StoreError> {
        let what = format!("task `{}`", self.task_id);
        let json = |s: &str| serde_json::from_str(s).map_err(|e| decode(&what, e));
        let dependencies: Vec<TaskId> = match &self.dependencies {
            Dependencies::Json(text) => serde_json::from_str(text).map_err(|e| decode(&what, e))?,
            Dependencies::List(ids) => ids.iter().map(TaskId::from).collect(),
        };
        Ok(TaskRecord {
            task_type: TaskType::parse(&self.task_type)
                .ok_or_else(|| decode(&what, format!("unknown type `{}`", self.task_type)))?,
            status: TaskStatus::parse(&self.status)
                .ok_or_else(|| decode(&what, format!("unknown status `{}`", self.status)))?,
            input: json(&self.input)?,
            output: self.output.as_deref().map(json).transpose()?,
            dependencies,
            seq: narrow(&what, self.seq)?,
            attempts: narrow(&what, self.attempts)?,
            failures: narrow(&what, self.failures)?,
            max_retries: self.max_retries.map(|v| narrow(&what, v)).transpose()?,
            timeout_ms: self.timeout_ms.map(|v| narrow(&what, v)).transpose()?,
            job_id: self.job_id.into(),
            parent_id: self.parent_id.map(TaskId::from),
            agent: self.agent,
            description: self.description,
            acceptance_criteria: self.acceptance_criteria,
            error: self.error,
            priority: self.priority,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            not_before: self.not_before,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            traceparent: self.traceparent,
            task_id: self.task_id.into(),
        })
    }
}

/// `t`'s dependency ids as the JSON array SQLite stores.
pub(crate) fn deps_json(t: &TaskRecord) -> Result<String, StoreError> {
    serde_json::to_string(&t.dependencies).map_err(|e| decode(format!("task `{}`", t.task_id), e))
}

/// A circuit breaker row's columns.
pub(crate) struct BreakerRow {
    pub(crate) agent: String,
    pub(crate) state: String,
    pub(crate) consecutive_failures: i64,
    pub(crate) until: Option<i64>,
    pub(crate) last_error: Option<String>,
    pub(crate) updated_at: i64,
}

impl BreakerRow {
    /// The record these columns hold.
    pub(crate) fn decode(self) -> Result<BreakerRecord, StoreError> {
        let what = format!("circuit breaker of agent `{}`", self.agent);
        Ok(BreakerRecord {
            state: BreakerState::parse(&self.state)
                .ok_or_else(|| decode(&what, format!("unknown state `{}`", self.state)))?,
            consecutive_failures: narrow(&what, self.consecutive_failures)?,
            until: self.until,
            last_error: self.last_error,
            updated_at: self.updated_at,
            agent: self.agent,
        })
    }
}
