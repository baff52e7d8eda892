//! Shared by the NATS integration tests: the server URL and skip rule, unique
//! stream names, and a scriptable agent.
// Test helpers: panicking on a bad fixture is the point, and not every test uses every helper.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use dagger_core::{BoxError, JsonSchema};
use dagger_nats::{NatsBridge, NatsConfig, NatsError};
use dagger_pubsub::{Message, PubSubAgent, PubSubContext};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Env var naming the stream a child process must use.
pub const CHILD_STREAM: &str = "DAGGER_NATS_TEST_STREAM";

pub fn nats_url() -> String {
    std::env::var("DAGGER_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A fresh configuration: a stream and subject prefixes no other test (or
/// earlier run) uses, so tests run in parallel and repeatedly.
pub fn fresh_config(test: &str) -> NatsConfig {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    config_for(&format!(
        "DAGGER_TEST_{}_{}",
        test.to_uppercase(),
        &suffix[..12]
    ))
}

/// The configuration of stream `stream` (what a child process rebuilds).
pub fn config_for(stream: &str) -> NatsConfig {
    let lower = stream.to_lowercase();
    NatsConfig::new(stream)
        .subject_prefix(lower.clone())
        .dead_letter_prefix(format!("{lower}_dl"))
}

/// Connects, or — when the server is unreachable — fails naming the URL,
/// unless `DAGGER_TEST_SKIP_SERVERS=1`, where it says why and returns `None`.
pub async fn connect(config: NatsConfig) -> Option<NatsBridge> {
    let url = nats_url();
    match NatsBridge::connect(&url, config).await {
        Ok(b) => Some(b),
        Err(e @ NatsError::Connect { .. }) => {
            if std::env::var("DAGGER_TEST_SKIP_SERVERS").as_deref() == Ok("1") {
                eprintln!(
                    "skipped: NATS server at {url} is unreachable ({e}); DAGGER_TEST_SKIP_SERVERS=1"
                );
                None
            } else {
                panic!(
                    "NATS server at {url} is unreachable: {e}. Start it (nats-server -js) or set DAGGER_TEST_SKIP_SERVERS=1"
                )
            }
        }
        Err(e) => panic!("cannot set up NATS stream at {url}: {e}"),
    }
}

/// What a [`ScriptedAgent`] does with a message after reporting it.
#[derive(Clone)]
pub enum Script {
    /// Nothing more.
    Record,
    /// Fails every time.
    Fail,
    /// Publishes `{"n": n, "from": <agent>}` to this channel.
    Answer(String),
    /// Handles this many messages, then never finishes the next one.
    HangAfter(usize),
}

/// An agent that sends every message it is handed to a channel (the test's
/// ear), then follows its script.
pub struct ScriptedAgent {
    pub name: String,
    pub subs: Vec<String>,
    pub pubs: Vec<String>,
    pub script: Script,
    pub input: Option<JsonSchema>,
    pub handled: AtomicUsize,
    pub seen: mpsc::UnboundedSender<Message>,
}

impl ScriptedAgent {
    pub fn new(
        name: &str,
        subs: &[&str],
        pubs: &[&str],
        script: Script,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Message>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                name: name.into(),
                subs: subs.iter().map(|s| s.to_string()).collect(),
                pubs: pubs.iter().map(|s| s.to_string()).collect(),
                script,
                input: None,
                handled: AtomicUsize::new(0),
                seen: tx,
            }),
            rx,
        )
    }
}

#[async_trait::async_trait]
impl PubSubAgent for ScriptedAgent {
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
    async fn handle_message(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        match &self.script {
            Script::Record => {}
            Script::Fail => {
                let _ = self.seen.send(m.clone());
                return Err(format!("cannot handle {}", m.payload).into());
            }
            Script::Answer(to) => {
                let n = m.payload["n"].clone();
                ctx.publish(to, serde_json::json!({"n": n, "from": self.name}))
                    .await?;
            }
            Script::HangAfter(k) => {
                if self.handled.load(Ordering::SeqCst) == *k {
                    std::future::pending::<()>().await;
                }
            }
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        let _ = self.seen.send(m.clone());
        Ok(())
    }
}

/// The next message the agent reports, or a failure naming what was awaited.
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Message>, what: &str) -> Message {
    tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("agent gone while waiting for {what}"))
}
