//! Job configuration, stall actions and the stall report.

use crate::breaker::CircuitBreaker;
use crate::error::TaskError;
use dagger_core::{JobId, RetryPolicy, TaskId, TaskStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a job runs. Stored with the job, so a manager that resumes it after a
/// restart uses the same settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobConfig {
    /// Tasks of the job this manager runs at once (at least 1).
    pub max_concurrency: usize,
    /// Per agent name: tasks of that agent this manager runs at once in the job.
    pub agent_concurrency: BTreeMap<String, usize>,
    /// Lease length in milliseconds; a worker renews at a third of it. Keep
    /// it below the manager's heartbeat, or a crashed worker's tasks (which
    /// come back when their lease expires) make the job look stalled first.
    pub lease_ms: u64,
    /// Retries of failed attempts (a task's `max_retries` overrides the count).
    pub retry: RetryPolicy,
    /// End the job (cancelling open tasks) at the first task that fails for
    /// good, instead of letting independent tasks finish.
    pub fail_fast: bool,
    /// The agent [`StallAction::NotifyPlanningAgent`] gives the stall report to.
    pub planning_agent: String,
    /// A per-agent circuit breaker for this job's tasks (`None`, the
    /// default: off). See [`CircuitBreaker`].
    pub circuit_breaker: Option<CircuitBreaker>,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 16,
            agent_concurrency: BTreeMap::new(),
            lease_ms: 30_000,
            retry: RetryPolicy::default(),
            fail_fast: false,
            planning_agent: "planning_agent".to_string(),
            circuit_breaker: None,
        }
    }
}

impl JobConfig {
    pub(crate) fn validate(&self, job: &JobId) -> Result<(), TaskError> {
        let bad = |reason: &str| TaskError::InvalidConfig {
            job: job.to_string(),
            reason: reason.to_string(),
        };
        if self.max_concurrency == 0 {
            return Err(bad("max_concurrency must be at least 1"));
        }
        if let Some((agent, _)) = self.agent_concurrency.iter().find(|(_, n)| **n == 0) {
            return Err(bad(&format!(
                "agent_concurrency of `{agent}` must be at least 1"
            )));
        }
        if self.lease_ms < 3 {
            return Err(bad("lease_ms must be at least 3"));
        }
        if let Some(b) = &self.circuit_breaker {
            if b.failure_threshold == 0 {
                return Err(bad("circuit_breaker.failure_threshold must be at least 1"));
            }
            if b.cool_down_ms == 0 {
                return Err(bad("circuit_breaker.cool_down_ms must be at least 1"));
            }
        }
        Ok(())
    }
}

/// One open task in a [`StallReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StalledTask {
    /// The task.
    pub task_id: TaskId,
    /// Its agent.
    pub agent: String,
    /// Its description.
    pub description: String,
    /// Its status.
    pub status: TaskStatus,
    /// Dependencies that are not done.
    pub waiting_on: Vec<TaskId>,
    /// Its last error.
    pub error: Option<String>,
}

/// What a stalled job looks like, given to the stall action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallReport {
    /// The job.
    pub job_id: JobId,
    /// Milliseconds since the job last made progress.
    pub idle_ms: u64,
    /// Tasks that are not finished.
    pub open_tasks: Vec<StalledTask>,
}

/// A user callback run when a job stalls.
pub type StallCallback = Arc<dyn Fn(&StallReport) + Send + Sync>;

/// What to do when a job makes no progress for the heartbeat interval.
#[derive(Clone)]
pub enum StallAction {
    /// Add a task for the job's planning agent ([`JobConfig::planning_agent`])
    /// whose input is `{"stall_report": <StallReport>}`. If that agent is not
    /// registered or not allowed, the job is terminated instead, saying why.
    NotifyPlanningAgent,
    /// End the job as failed, cancelling its open tasks.
    TerminateJob,
    /// Call this function with the report; the job keeps running.
    Custom(StallCallback),
}

impl std::fmt::Debug for StallAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotifyPlanningAgent => f.write_str("NotifyPlanningAgent"),
            Self::TerminateJob => f.write_str("TerminateJob"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
