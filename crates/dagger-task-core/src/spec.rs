//! [`TaskSpec`]: the builder for new tasks.

use dagger_core::store::{TaskRecord, TaskType};
use dagger_core::{JobId, TaskId, TaskStatus};
use serde_json::Value;
use std::time::Duration;

/// A task to add to a job.
///
/// ```
/// use dagger_task_core::{TaskSpec, TaskType};
/// let spec = TaskSpec::new("job-1", "research_agent", "Research Rust")
///     .input(serde_json::json!({"topic": "rust"}))
///     .task_type(TaskType::Objective)
///     .priority(5);
/// assert_eq!(spec.agent(), "research_agent");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub(crate) task_id: Option<TaskId>,
    pub(crate) job_id: JobId,
    pub(crate) agent: String,
    pub(crate) description: String,
    pub(crate) input: Value,
    pub(crate) dependencies: Vec<TaskId>,
    pub(crate) parent_id: Option<TaskId>,
    pub(crate) task_type: TaskType,
    pub(crate) acceptance_criteria: Option<String>,
    pub(crate) priority: i32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_retries: Option<u32>,
}

impl TaskSpec {
    /// A task of `job` for `agent` with a description; input `null`.
    pub fn new(
        job: impl Into<JobId>,
        agent: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            task_id: None,
            job_id: job.into(),
            agent: agent.into(),
            description: description.into(),
            input: Value::Null,
            dependencies: Vec::new(),
            parent_id: None,
            task_type: TaskType::Task,
            acceptance_criteria: None,
            priority: 0,
            timeout: None,
            max_retries: None,
        }
    }

    /// Uses this id instead of a generated one.
    pub fn id(mut self, id: impl Into<TaskId>) -> Self {
        self.task_id = Some(id.into());
        self
    }
    /// The agent's input.
    pub fn input(mut self, input: Value) -> Self {
        self.input = input;
        self
    }
    /// Adds a dependency.
    pub fn depends_on(mut self, task: impl Into<TaskId>) -> Self {
        self.dependencies.push(task.into());
        self
    }
    /// Adds dependencies.
    pub fn dependencies<I, T>(mut self, tasks: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<TaskId>,
    {
        self.dependencies.extend(tasks.into_iter().map(Into::into));
        self
    }
    /// The parent task.
    pub fn parent(mut self, task: impl Into<TaskId>) -> Self {
        self.parent_id = Some(task.into());
        self
    }
    /// The level in the plan.
    pub fn task_type(mut self, t: TaskType) -> Self {
        self.task_type = t;
        self
    }
    /// How a reviewer judges the output.
    pub fn acceptance_criteria(mut self, c: impl Into<String>) -> Self {
        self.acceptance_criteria = Some(c.into());
        self
    }
    /// Higher runs first; default 0.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    /// Time limit of one attempt; a timed-out attempt fails.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Retries after the first failure (overrides the job's retry policy count).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }
    /// The agent name.
    pub fn agent(&self) -> &str {
        &self.agent
    }
    /// The job.
    pub fn job(&self) -> &JobId {
        &self.job_id
    }

    pub(crate) fn into_record(self) -> TaskRecord {
        TaskRecord {
            task_id: self.task_id.unwrap_or_else(TaskId::generate),
            job_id: self.job_id,
            parent_id: self.parent_id,
            task_type: self.task_type,
            agent: self.agent,
            description: self.description,
            acceptance_criteria: self.acceptance_criteria,
            input: self.input,
            output: None,
            error: None,
            dependencies: self.dependencies,
            priority: self.priority,
            seq: 0,
            status: TaskStatus::Pending,
            attempts: 0,
            failures: 0,
            max_retries: self.max_retries,
            timeout_ms: self
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            lease_owner: None,
            lease_expires_at: None,
            not_before: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            finished_at: None,
            traceparent: dagger_core::trace_context::current(),
        }
    }
}
