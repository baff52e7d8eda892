//! Errors of the facade: registering the annotated actions and agents.

use dagger_pubsub::PubSubError;
use dagger_task_core::TaskError;

/// Registering every annotated action or agent at once failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// Two `#[action]` functions, or an annotated function and an action
    /// already in the registry, share a name. Nothing was registered.
    #[error(
        "action `{name}` is defined more than once (by two `#[action]` functions, or one and an action already registered)"
    )]
    DuplicateAction {
        /// The shared name.
        name: String,
    },
    /// Two `#[task_agent]` functions, or an annotated function and an agent
    /// already in the registry, share a name. Nothing was registered.
    #[error(
        "task agent `{name}` is defined more than once (by two `#[task_agent]` functions, or one and an agent already registered)"
    )]
    DuplicateTaskAgent {
        /// The shared name.
        name: String,
    },
    /// Two `#[pubsub_agent]` functions share a name. Nothing was registered.
    #[error("pub/sub agent `{name}` is defined by two `#[pubsub_agent]` functions")]
    DuplicatePubSubAgent {
        /// The shared name.
        name: String,
    },
    /// The task agent registry refused an agent.
    #[error(transparent)]
    TaskAgent(Box<TaskError>),
    /// The pub/sub executor refused an agent (a name it already has, an
    /// invalid pattern, or an executor that has started).
    #[error(transparent)]
    PubSubAgent(Box<PubSubError>),
}

impl From<TaskError> for RegistrationError {
    fn from(err: TaskError) -> Self {
        Self::TaskAgent(Box::new(err))
    }
}

impl From<PubSubError> for RegistrationError {
    fn from(err: PubSubError) -> Self {
        Self::PubSubAgent(Box::new(err))
    }
}
