//! Dagger's Task Agent paradigm: jobs of tasks run by named agents, with
//! dynamic dependencies, leases with fencing tokens, retries, failure
//! propagation, stall detection and persistence through a
//! [`TaskStore`].
//!
//! A [`TaskManager`] keeps no task state of its own: every change is one
//! transaction on the store, so a new manager on the same store (after a
//! crash, or in another process) continues the same jobs.

mod agent;
mod annotated;
mod breaker;
mod commit;
mod config;
mod dot;
mod error;
mod event;
mod job;
mod manager;
mod ops;
mod serve;
mod spec;
mod store_source;
mod worker;

pub use agent::{FnAgent, TaskAgent, TaskAgentRegistry, TaskContext, TaskOutcome};
#[doc(hidden)]
pub use annotated::AnnotatedTaskAgent;
pub use annotated::{annotated_task_agents, register_all_task_agents};
pub use breaker::CircuitBreaker;
pub use config::{JobConfig, StallAction, StallCallback, StallReport, StalledTask};
pub use dagger_core::store::{
    AttemptError, BreakerRecord, BreakerState, JobRecord, TaskStore, TaskType,
};
pub use dagger_core::{JobId, JobStatus, TaskId, TaskStatus};
pub use error::TaskError;
pub use event::TaskEvent;
pub use job::JobHandle;
pub use manager::{DeadLetter, Task, TaskManager};
pub use ops::Redriven;
pub use spec::TaskSpec;
pub use store_source::TaskStoreSource;
