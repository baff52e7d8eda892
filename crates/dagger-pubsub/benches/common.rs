//! Agents shared by the Pub/Sub benches.
#![allow(dead_code, unreachable_pub, missing_docs)]

use dagger_core::BoxError;
use dagger_pubsub::{Message, PubSubAgent, PubSubContext};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts messages and does nothing else: the floor of a handler.
pub struct Counter {
    pub name: String,
    pub subs: Vec<String>,
    pub seen: AtomicU64,
}

impl Counter {
    pub fn new(name: impl Into<String>, subs: &[&str]) -> Self {
        Self {
            name: name.into(),
            subs: subs.iter().map(|s| s.to_string()).collect(),
            seen: AtomicU64::new(0),
        }
    }
}

#[async_trait::async_trait]
impl PubSubAgent for Counter {
    fn name(&self) -> &str {
        &self.name
    }
    fn subscriptions(&self) -> Vec<String> {
        self.subs.clone()
    }
    fn publications(&self) -> Vec<String> {
        Vec::new()
    }
    async fn handle_message(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The 2-worker runtime every workload runs on (the machine has 2 cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A string payload whose JSON text is `bytes` long.
pub fn payload(bytes: usize) -> serde_json::Value {
    serde_json::Value::String("x".repeat(bytes.saturating_sub(2)))
}
