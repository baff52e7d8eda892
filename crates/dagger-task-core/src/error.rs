//! The errors of the Task Agent crate. Every variant names its culprit.

use dagger_core::{SchemaViolation, StatusError, StoreError};

/// Errors of the task manager, its registry and its jobs.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No agent is registered under this name.
    #[error("task `{task}`: agent `{agent}` is not registered")]
    UnknownAgent {
        /// The task that names the agent (`-` when none yet).
        task: String,
        /// The agent name.
        agent: String,
    },
    /// The agent exists but the job does not allow it.
    #[error("task `{task}`: agent `{agent}` is not allowed in job `{job}`")]
    AgentNotAllowed {
        /// The task.
        task: String,
        /// The agent name.
        agent: String,
        /// The job.
        job: String,
    },
    /// An agent with this name is registered already.
    #[error("agent `{0}` is already registered")]
    DuplicateAgent(String),
    /// A task with this id exists already.
    #[error("task `{0}` already exists")]
    DuplicateTask(String),
    /// No task has this id.
    #[error("task `{0}` not found")]
    TaskNotFound(String),
    /// No job has this id.
    #[error("job `{0}` not found")]
    JobNotFound(String),
    /// A task names a dependency that does not exist.
    #[error("task `{task}` depends on `{dependency}`, which does not exist")]
    DependencyNotFound {
        /// The dependent task.
        task: String,
        /// The missing dependency.
        dependency: String,
    },
    /// A dependency belongs to another job.
    #[error("task `{task}` (job `{job}`) cannot depend on `{dependency}` of job `{other_job}`")]
    CrossJobDependency {
        /// The dependent task.
        task: String,
        /// Its job.
        job: String,
        /// The dependency.
        dependency: String,
        /// The dependency's job.
        other_job: String,
    },
    /// The dependency already ended unsuccessfully, so the task could never run.
    #[error("task `{task}` cannot depend on `{dependency}`: it is {status}")]
    DependencyFailed {
        /// The dependent task.
        task: String,
        /// The failed dependency.
        dependency: String,
        /// The dependency's status.
        status: dagger_core::TaskStatus,
    },
    /// A parent task that does not exist.
    #[error("task `{task}` names parent `{parent}`, which does not exist")]
    ParentNotFound {
        /// The child task.
        task: String,
        /// The missing parent.
        parent: String,
    },
    /// The dependency would close a cycle; `path` lists it from the first task back to itself.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The cycle's task ids, first repeated at the end.
        path: Vec<String>,
    },
    /// A dependency output was asked for before the dependency completed.
    #[error("task `{task}`: dependency `{dependency}` has no output yet (it is {status})")]
    DependencyNotDone {
        /// The dependent task.
        task: String,
        /// The dependency.
        dependency: String,
        /// Its status.
        status: dagger_core::TaskStatus,
    },
    /// The job has ended; it accepts no more tasks or changes.
    #[error("job `{job}` has ended ({status}); it accepts no more tasks")]
    JobFinished {
        /// The job.
        job: String,
        /// Its final status.
        status: dagger_core::JobStatus,
    },
    /// The task has ended; dependencies can no longer be added to it.
    #[error("task `{task}` has ended ({status})")]
    TaskFinished {
        /// The task.
        task: String,
        /// Its status.
        status: dagger_core::TaskStatus,
    },
    /// The job was started already (by this manager, or by an earlier
    /// process on the same store).
    #[error("job `{0}` has already been started; use `resume_job` to continue it")]
    JobAlreadyStarted(String),
    /// A completion, failure or renewal carried a fencing token that is no
    /// longer current: the lease expired and the task was reclaimed, or the
    /// task was cancelled or failed meanwhile. The result was discarded.
    #[error(
        "stale lease on task `{task}`: attempt {held} is no longer current (task is {status} at attempt {current})"
    )]
    StaleLease {
        /// The task.
        task: String,
        /// The token (attempt) presented.
        held: u32,
        /// The task's current attempt.
        current: u32,
        /// The task's current status.
        status: dagger_core::TaskStatus,
    },
    /// Only a task that failed its last attempt (a dead letter) can be re-driven.
    #[error("task `{task}` is not a dead letter: it is {status}{why}")]
    NotDeadLetter {
        /// The task.
        task: String,
        /// Its status.
        status: dagger_core::TaskStatus,
        /// More on why (empty, or starting with `; `).
        why: String,
    },
    /// Input or output did not match the agent's schema.
    #[error("task `{task}`: {direction} of agent `{agent}` violates its schema: {violation}")]
    Schema {
        /// The task.
        task: String,
        /// The agent.
        agent: String,
        /// `input` or `output`.
        direction: &'static str,
        /// The violation.
        violation: Box<SchemaViolation>,
    },
    /// A job configuration value is invalid.
    #[error("job `{job}`: invalid configuration: {reason}")]
    InvalidConfig {
        /// The job.
        job: String,
        /// What is wrong.
        reason: String,
    },
    /// `start_job` or `resume_jobs` was called outside a Tokio runtime.
    #[error("no Tokio runtime: start jobs from inside a runtime")]
    NoRuntime,
    /// An illegal status transition.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
