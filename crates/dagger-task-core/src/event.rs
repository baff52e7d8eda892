//! What the task manager tells its subscribers ([`TaskManager::subscribe`]).
//!
//! [`TaskManager::subscribe`]: crate::TaskManager::subscribe

use dagger_core::{JobId, TaskId};
use serde::{Deserialize, Serialize};

/// An event of the task manager. Events are emitted by the manager whose
/// transaction caused them, after it committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TaskEvent {
    /// A task failed its last attempt and is kept as a dead letter
    /// ([`crate::TaskManager::dead_letters`]).
    DeadLettered {
        /// Its job.
        job_id: JobId,
        /// The task.
        task_id: TaskId,
        /// Its attempts so far.
        attempts: u32,
        /// The last attempt's error.
        error: String,
    },
    /// An agent's circuit breaker opened: its tasks wait until `until`.
    CircuitOpened {
        /// The agent.
        agent: String,
        /// Failed attempts in a row.
        consecutive_failures: u32,
        /// When the cool-down ends (ms since the epoch).
        until: i64,
        /// The failure that opened it.
        last_error: String,
    },
    /// The cool-down ended: one trial task of the agent was claimed.
    CircuitHalfOpen {
        /// The agent.
        agent: String,
        /// The trial task.
        task_id: TaskId,
    },
    /// A success closed an agent's circuit breaker.
    CircuitClosed {
        /// The agent.
        agent: String,
    },
}
