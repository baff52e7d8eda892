//! Counters of a running executor, per channel and per agent.

use crate::runtime::Runtime;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// Counters of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelMetrics {
    /// Messages accepted on the channel.
    pub published: u64,
    /// Deliveries whose handler succeeded (one message with three subscribers counts up to three).
    pub delivered: u64,
    /// Messages of this channel that were dead-lettered (by any subscriber or at publish).
    pub dead_lettered: u64,
    /// The agents subscribed to the channel.
    pub subscribers: Vec<String>,
    /// Whether the channel is logged.
    pub durable: bool,
}

/// Counters of one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentMetrics {
    /// Deliveries taken from the queue and finished (handled or dead-lettered).
    pub processed: u64,
    /// Handler attempts that failed (retried or not).
    pub failed_attempts: u64,
    /// Messages dead-lettered on this agent's account (as receiver or publisher).
    pub dead_lettered: u64,
    /// Messages dropped from the agent's queue by the drop-oldest policy.
    pub dropped: u64,
    /// Messages in the queue now.
    pub queue_len: usize,
    /// The longest the queue has been.
    pub queue_high_water: usize,
}

/// A snapshot of every counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PubSubMetrics {
    /// Per channel, by name.
    pub channels: BTreeMap<String, ChannelMetrics>,
    /// Per agent, by name.
    pub agents: BTreeMap<String, AgentMetrics>,
    /// Deliveries queued or running.
    pub in_flight: u64,
    /// Durable offset commits that failed.
    pub commit_errors: u64,
}

impl PubSubMetrics {
    pub(crate) fn of(rt: &Runtime) -> Self {
        let channels = rt
            .channels
            .iter()
            .map(|c| {
                let c = c.value();
                (
                    c.name.to_string(),
                    ChannelMetrics {
                        published: c.published.load(Ordering::Relaxed),
                        delivered: c.delivered.load(Ordering::Relaxed),
                        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
                        subscribers: c
                            .subscribers
                            .iter()
                            .map(|&s| rt.agents[s].name.to_string())
                            .collect(),
                        durable: c.durable,
                    },
                )
            })
            .collect();
        let agents = rt
            .agents
            .iter()
            .map(|a| {
                (
                    a.name.to_string(),
                    AgentMetrics {
                        processed: a.processed.load(Ordering::Relaxed),
                        failed_attempts: a.failed_attempts.load(Ordering::Relaxed),
                        dead_lettered: a.dead_lettered.load(Ordering::Relaxed),
                        dropped: a.queue.dropped(),
                        queue_len: a.queue.len(),
                        queue_high_water: a.queue.high_water(),
                    },
                )
            })
            .collect();
        Self {
            channels,
            agents,
            in_flight: rt.in_flight(),
            commit_errors: rt.commit_errors.load(Ordering::Relaxed),
        }
    }
}
