//! Errors of the Pub/Sub executor. Each names its culprit: the agent, channel
//! or pattern involved.

use dagger_core::{SchemaViolation, StoreError};

/// What can go wrong registering agents, publishing and running.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// Two agents share a name.
    #[error("an agent named `{agent}` is already registered")]
    DuplicateAgent {
        /// The name.
        agent: String,
    },
    /// An agent's name is empty or otherwise unusable.
    #[error("invalid agent name `{agent}`: {reason}")]
    InvalidAgentName {
        /// The name as given.
        agent: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Agents can only be registered before the executor starts (its first publish or run).
    #[error("cannot register agent `{agent}`: the executor has already started")]
    AlreadyStarted {
        /// The agent that came too late.
        agent: String,
    },
    /// A subscription or publication pattern is malformed.
    #[error("agent `{agent}`: invalid channel pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The agent declaring it.
        agent: String,
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A channel name given to publish is malformed (empty, empty segment, wildcard).
    #[error("invalid channel name `{channel}`: {reason}")]
    InvalidChannel {
        /// The channel name.
        channel: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An agent published to a channel its `publications()` does not declare.
    #[error("agent `{agent}` may not publish to `{channel}`: it declares only [{declared}]")]
    UndeclaredPublication {
        /// The publishing agent.
        agent: String,
        /// The channel it tried.
        channel: String,
        /// Its declared publications, comma separated.
        declared: String,
    },
    /// An agent's output violates its output schema; the message was dead-lettered.
    #[error("output of agent `{agent}` to `{channel}` violates its output schema: {violation}")]
    OutputSchemaViolation {
        /// The publishing agent.
        agent: String,
        /// The channel.
        channel: String,
        /// Where and how the payload is wrong.
        violation: SchemaViolation,
    },
    /// The message would exceed the causation depth limit; it was dead-lettered.
    #[error(
        "message to `{channel}` from `{agent}` exceeds the causation depth limit of {limit} (a publish loop?)"
    )]
    DepthLimitExceeded {
        /// The publishing agent.
        agent: String,
        /// The channel.
        channel: String,
        /// The configured limit.
        limit: u32,
    },
    /// The executor is shutting down and accepts no new external messages.
    #[error("the executor is shutting down: message to `{channel}` refused")]
    ShuttingDown {
        /// The channel published to.
        channel: String,
    },
    /// A configuration value is out of range.
    #[error("invalid pub/sub configuration: {0}")]
    InvalidConfig(String),
    /// A durable channel is configured but no message log was given.
    #[error("durable channels {patterns:?} are configured but the executor has no message log")]
    NoMessageLog {
        /// The durable channel patterns.
        patterns: Vec<String>,
    },
    /// Replay asked for an agent that is not registered.
    #[error("no agent named `{agent}` is registered")]
    UnknownAgent {
        /// The name asked for.
        agent: String,
    },
    /// Replay asked for a channel that is not durable.
    #[error("channel `{channel}` is not durable: there is no log to replay")]
    NotDurable {
        /// The channel.
        channel: String,
    },
    /// The transport refused or failed to send a message.
    #[error("transport failed on channel `{channel}`: {source}")]
    Transport {
        /// The channel published to.
        channel: String,
        /// The transport's error.
        source: dagger_core::BoxError,
    },
    /// [`crate::PubSubExecutor::set_transport`] was called after the executor started.
    #[error("cannot set a transport: the executor has already started")]
    TransportAfterStart,
    /// [`crate::PubSubExecutor::set_transport`] was called twice.
    #[error("a transport is already set on this executor")]
    TransportAlreadySet,
    /// The message log failed.
    #[error("message log failed on channel `{channel}`: {source}")]
    Store {
        /// The channel being written or read.
        channel: String,
        /// The store's error.
        source: StoreError,
    },
}
