//! Executor configuration.

use dagger_core::{BackoffStrategy, ErrorClass, RetryPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The channel every dead letter is published to. Subscribe to it (by exact
/// name) to observe failures; [`crate::PubSubExecutor::dead_letters`] keeps the
/// most recent ones too.
pub const DEAD_LETTER_CHANNEL: &str = "dead_letter";

/// What a full subscriber queue does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// The publisher waits until the subscriber makes room (backpressure).
    #[default]
    Block,
    /// The oldest queued message is dropped and counted; the publisher never waits.
    DropOldest,
}

/// How the executor queues, retries and bounds messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PubSubConfig {
    /// Messages each subscriber queue holds before its overflow policy applies (≥ 1).
    pub queue_capacity: usize,
    /// Most messages a worker takes from its queue at once (≥ 1). A
    /// subscriber holds at most `queue_capacity + max_batch` messages.
    pub max_batch: usize,
    /// The overflow policy of every subscriber queue...
    pub overflow: Overflow,
    /// ...except the agents named here.
    pub agent_overflow: BTreeMap<String, Overflow>,
    /// Retries of a failing handler before its message is dead-lettered.
    pub retry: RetryPolicy,
    /// Largest causation depth a message may have (≥ 1); deeper ones are
    /// dead-lettered, which stops agents answering each other forever.
    pub max_depth: u32,
    /// How many dead letters [`crate::PubSubExecutor::dead_letters`] keeps (the newest).
    pub dead_letter_retention: usize,
    /// Channel names or patterns whose messages are appended to the message
    /// log before the publish returns. Requires a message log.
    pub durable_channels: Vec<String>,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            max_batch: 256,
            overflow: Overflow::Block,
            agent_overflow: BTreeMap::new(),
            retry: RetryPolicy {
                max_attempts: 3,
                strategy: BackoffStrategy::Exponential,
                base_delay_ms: 10,
                max_delay_ms: 1_000,
                multiplier: 2.0,
                jitter: dagger_core::Jitter::None,
                retry_on: vec![ErrorClass::Error, ErrorClass::Timeout],
            },
            max_depth: 32,
            dead_letter_retention: 1_000,
            durable_channels: Vec::new(),
        }
    }
}

impl PubSubConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.queue_capacity == 0 {
            return Err("queue_capacity must be at least 1".into());
        }
        if self.max_batch == 0 {
            return Err("max_batch must be at least 1".into());
        }
        if self.max_depth == 0 {
            return Err("max_depth must be at least 1".into());
        }
        Ok(())
    }

    pub(crate) fn overflow_for(&self, agent: &str) -> Overflow {
        self.agent_overflow
            .get(agent)
            .copied()
            .unwrap_or(self.overflow)
    }
}
