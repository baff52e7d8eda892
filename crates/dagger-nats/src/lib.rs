//! Dagger Pub/Sub across processes over NATS JetStream.
//!
//! A [`NatsBridge`] connects to a server and creates (or opens) one stream.
//! [`NatsBridge::attach`] makes it carry the channels matching some patterns
//! for a [`dagger_pubsub::PubSubExecutor`]: the same `PubSubAgent`s then
//! talk across processes.
//!
//! - Channel `c` is subject `<subject_prefix>.c`; Dagger patterns are NATS
//!   patterns (`*` one segment, `>` the rest).
//! - Every attached agent subscription gets a durable pull consumer named
//!   after the agent and the subscription: a restarted process continues it,
//!   and replicas of one agent in several processes share its messages.
//! - A message is acknowledged only after the agent's handler finished. A
//!   failed handler (after the executor's own retries) is negatively
//!   acknowledged and redelivered after `redelivery_delay`; its last
//!   delivery (`max_deliver`) dead-letters it locally and on
//!   `<dead_letter_prefix>.c` with the reason. Schema violations and
//!   permanent errors dead-letter at once.
//! - Publishes carry the Dagger message id as `Nats-Msg-Id`, so the stream
//!   drops a second publish of the same message within `duplicate_window`.
//! - Delivery is at least once: a handler that finished but whose ack was
//!   lost (a crash in between) sees the message again.

mod bridge;
mod config;
mod consumer;
mod error;
mod subject;

pub use bridge::{Attachment, NatsBridge, Sent};
pub use config::NatsConfig;
pub use error::NatsError;
