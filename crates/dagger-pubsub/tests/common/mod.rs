//! Test agents shared by the integration tests.
// Test helpers: panicking on a bad fixture is the point, and not every test uses every helper.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::needless_pass_by_value
)]

use dagger_core::{BoxError, JsonSchema};
use dagger_pubsub::{Message, PubSubAgent, PubSubContext};
use parking_lot::Mutex;
use std::sync::Arc;

/// What an agent does after recording a message.
#[async_trait::async_trait]
pub trait Behaviour: Send + Sync + 'static {
    async fn on(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError>;
}

/// Only records.
pub struct Record;

#[async_trait::async_trait]
impl Behaviour for Record {
    async fn on(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A configurable agent that records every message it is handed.
pub struct TestAgent<B> {
    pub name: String,
    pub subs: Vec<String>,
    pub pubs: Vec<String>,
    pub input: Option<JsonSchema>,
    pub output: Option<JsonSchema>,
    pub seen: Arc<Mutex<Vec<Message>>>,
    pub behaviour: B,
}

impl TestAgent<Record> {
    pub fn recorder(name: &str, subs: &[&str]) -> Self {
        Self::new(name, subs, &[], Record)
    }
}

impl<B: Behaviour> TestAgent<B> {
    pub fn new(name: &str, subs: &[&str], pubs: &[&str], behaviour: B) -> Self {
        Self {
            name: name.into(),
            subs: subs.iter().map(|s| s.to_string()).collect(),
            pubs: pubs.iter().map(|s| s.to_string()).collect(),
            input: None,
            output: None,
            seen: Arc::default(),
            behaviour,
        }
    }

    pub fn input(mut self, schema: serde_json::Value) -> Self {
        self.input = Some(JsonSchema::compile(&schema, Some(&self.name)).unwrap());
        self
    }

    pub fn output(mut self, schema: serde_json::Value) -> Self {
        self.output = Some(JsonSchema::compile(&schema, Some(&self.name)).unwrap());
        self
    }

    /// Registers the agent and returns its record of messages.
    pub fn register(self, ex: &dagger_pubsub::PubSubExecutor) -> Arc<Mutex<Vec<Message>>> {
        let seen = self.seen.clone();
        ex.register_agent(Arc::new(self)).unwrap();
        seen
    }
}

#[async_trait::async_trait]
impl<B: Behaviour> PubSubAgent for TestAgent<B> {
    fn name(&self) -> &str {
        &self.name
    }
    fn subscriptions(&self) -> Vec<String> {
        self.subs.clone()
    }
    fn publications(&self) -> Vec<String> {
        self.pubs.clone()
    }
    fn input_schema(&self) -> Option<&JsonSchema> {
        self.input.as_ref()
    }
    fn output_schema(&self) -> Option<&JsonSchema> {
        self.output.as_ref()
    }
    async fn handle_message(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        self.seen.lock().push(m.clone());
        self.behaviour.on(ctx, m).await
    }
}

pub fn payloads(seen: &Mutex<Vec<Message>>) -> Vec<serde_json::Value> {
    seen.lock().iter().map(|m| m.payload.clone()).collect()
}
