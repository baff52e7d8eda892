//! Errors of the NATS bridge. Each names its culprit: the server URL, the
//! stream, the consumer or the subject.

use dagger_core::BoxError;
use dagger_pubsub::PubSubError;

/// What can go wrong connecting, attaching and sending over NATS.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL given to [`crate::NatsBridge::connect`].
        url: String,
        /// The client's error.
        source: BoxError,
    },
    /// A configuration value is unusable.
    #[error("invalid NATS bridge configuration: {0}")]
    InvalidConfig(String),
    /// A channel pattern given to [`crate::NatsBridge::attach`] is malformed.
    #[error("invalid channel pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The JetStream stream could not be created or read.
    #[error("JetStream stream `{stream}`: {source}")]
    Stream {
        /// The stream name.
        stream: String,
        /// The server's or client's error.
        source: BoxError,
    },
    /// A durable consumer could not be created or read.
    #[error("JetStream consumer `{consumer}` on stream `{stream}`: {source}")]
    Consumer {
        /// The stream name.
        stream: String,
        /// The consumer name.
        consumer: String,
        /// The server's or client's error.
        source: BoxError,
    },
    /// A message could not be published (or its acknowledgement did not come).
    #[error("cannot publish to `{subject}`: {source}")]
    Publish {
        /// The subject published to.
        subject: String,
        /// The server's or client's error.
        source: BoxError,
    },
    /// A message could not be encoded as JSON.
    #[error("cannot encode message {message_id} of channel `{channel}`: {source}")]
    Encode {
        /// The channel.
        channel: String,
        /// The message id.
        message_id: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// The executor refused the transport (already started, or one is set).
    #[error("cannot attach to the executor: {0}")]
    Attach(#[source] PubSubError),
}
