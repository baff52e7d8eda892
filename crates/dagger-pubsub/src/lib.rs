//! Dagger Pub/Sub: agents that talk over channels.
//!
//! Agents implement [`PubSubAgent`]: they subscribe to channels (exact names
//! or patterns: `orders.*` for one segment, `orders.>` for one or more),
//! declare the channels they publish to, and optionally an input and an
//! output JSON Schema. A [`PubSubExecutor`] routes every published
//! [`Message`] to each subscriber's bounded queue; one worker per agent
//! handles its queue in order.
//!
//! Semantics:
//! - every subscriber receives each message once, in publish order per publisher;
//! - a message violating the receiver's input schema, or an output violating
//!   the publisher's output schema, is not delivered but dead-lettered on
//!   [`DEAD_LETTER_CHANNEL`] with the violation (instance path and keyword);
//! - a failing handler is retried per the [`dagger_core::RetryPolicy`], then its
//!   message is dead-lettered with the error; other messages keep flowing;
//! - publishing to an undeclared channel is [`PubSubError::UndeclaredPublication`];
//! - a full queue makes publishers wait ([`Overflow::Block`]) or drops its
//!   oldest message, counted ([`Overflow::DropOldest`]): memory stays bounded.
//!   Publishing into one's own queue and dead letters never wait (they could
//!   wait forever); a cycle of agents with full queues can still deadlock,
//!   which the depth limit makes unlikely;
//! - messages carry a causation depth; past `max_depth` they are dead-lettered,
//!   so two agents answering each other stop;
//! - durable channels are appended to a [`dagger_core::store::MessageLog`]
//!   before the publish returns; each subscriber commits its offset after
//!   handling, and a new executor on the same log redelivers what was not
//!   committed (so delivery is at least once across a crash);
//! - a [`Transport`] set with [`PubSubExecutor::set_transport`] carries the
//!   channels it claims to other processes: their messages leave through it
//!   and come back through [`PubSubExecutor::deliver`], one agent at a time,
//!   with a [`DeliveryOutcome`] so the transport acknowledges only handled ones.

mod agent;
mod annotated;
mod config;
mod context;
mod dead_letter;
mod dot;
mod error;
mod executor;
mod message;
mod metrics;
mod pattern;
mod queue;
mod runtime;
mod transport;
mod worker;

pub use agent::PubSubAgent;
#[doc(hidden)]
pub use annotated::AnnotatedPubSubAgent;
pub use annotated::{annotated_pubsub_agents, register_all_pubsub_agents};
pub use config::{DEAD_LETTER_CHANNEL, Overflow, PubSubConfig};
pub use context::PubSubContext;
pub use dead_letter::{DeadLetter, DeadLetterReason};
pub use error::PubSubError;
pub use executor::{PubSubExecutor, PubSubExecutorBuilder, RunOutcome};
pub use message::{ChannelName, Message, PublishOptions};
pub use metrics::{AgentMetrics, ChannelMetrics, PubSubMetrics};
pub use tokio_util::sync::CancellationToken;
pub use transport::{Delivery, DeliveryOutcome, Transport};
