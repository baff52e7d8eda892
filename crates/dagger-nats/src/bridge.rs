//! The bridge: one NATS connection and stream, a [`Transport`] for the
//! executor, and the durable consumers of the attached agents.

use crate::config::NatsConfig;
use crate::error::NatsError;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull, stream};
use dagger_core::{BoxError, trace_context};
use dagger_pubsub::{Message, PubSubExecutor, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the bridge's tasks share.
pub(crate) struct Inner {
    pub(crate) config: NatsConfig,
    pub(crate) js: jetstream::Context,
}

impl Inner {
    pub(crate) fn subject(&self, channel: &str) -> String {
        format!("{}.{channel}", self.config.subject_prefix)
    }

    /// Publishes already-encoded messages with their dedup ids (and trace
    /// context, as the `traceparent` header) and waits for every
    /// acknowledgement. Publishing all before awaiting any pipelines them.
    pub(crate) async fn publish_all(&self, items: Vec<Encoded>) -> Result<Vec<Sent>, NatsError> {
        let mut acks = Vec::with_capacity(items.len());
        for Encoded {
            subject,
            id,
            traceparent,
            body,
        } in items
        {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            if let Some(parent) = traceparent {
                headers.insert(trace_context::HEADER, parent.as_str());
            }
            let ack = self
                .js
                .publish_with_headers(subject.clone(), headers, body)
                .await
                .map_err(|e| NatsError::Publish {
                    subject: subject.clone(),
                    source: Box::new(e),
                })?;
            acks.push((subject, ack));
        }
        let mut sent = Vec::with_capacity(acks.len());
        for (subject, ack) in acks {
            let ack = ack.await.map_err(|e| NatsError::Publish {
                subject,
                source: Box::new(e),
            })?;
            sent.push(Sent {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            });
        }
        Ok(sent)
    }

    fn encode(&self, messages: &[Message]) -> Result<Vec<Encoded>, NatsError> {
        messages
            .iter()
            .map(|m| {
                let body = serde_json::to_vec(m).map_err(|source| NatsError::Encode {
                    channel: m.channel.to_string(),
                    message_id: m.id.to_string(),
                    source,
                })?;
                Ok(Encoded {
                    subject: self.subject(&m.channel),
                    id: m.id.to_string(),
                    traceparent: m.headers.get(trace_context::HEADER).cloned(),
                    body: body.into(),
                })
            })
            .collect()
    }
}

/// A message ready to publish.
pub(crate) struct Encoded {
    subject: String,
    /// The dedup id (`Nats-Msg-Id`).
    id: String,
    /// The message's trace context, also sent as a NATS header.
    traceparent: Option<String>,
    /// The message as JSON.
    body: bytes::Bytes,
}

/// What the stream said to a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The message's sequence number in the stream.
    pub sequence: u64,
    /// True when the stream already had a message with this id (within the
    /// duplicate window) and dropped this one.
    pub duplicate: bool,
}

/// A connection to NATS JetStream that carries Pub/Sub channels between
/// processes.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use dagger_nats::{NatsBridge, NatsConfig};
/// # use dagger_pubsub::PubSubExecutor;
/// # async fn demo(executor: Arc<PubSubExecutor>) -> Result<(), Box<dyn std::error::Error>> {
/// let bridge = NatsBridge::connect("nats://127.0.0.1:4222", NatsConfig::new("DAGGER")).await?;
/// // After registering the agents, before the executor starts:
/// let attachment = bridge.attach(&executor, &["orders.>"]).await?;
/// // ... publish and run as usual; then, to stop:
/// attachment.stop().await;
/// executor.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsBridge {
    inner: Arc<Inner>,
    stream: stream::Stream,
}

impl std::fmt::Debug for NatsBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBridge")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl NatsBridge {
    /// Connects to the server at `url` (failing at once when it is
    /// unreachable) and creates the stream when it does not exist; an
    /// existing stream is used as it is.
    pub async fn connect(url: &str, config: NatsConfig) -> Result<Self, NatsError> {
        config.check()?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| NatsError::Connect {
                url: url.to_string(),
                source: Box::new(e),
            })?;
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: config.stream.clone(),
                subjects: vec![
                    format!("{}.>", config.subject_prefix),
                    format!("{}.>", config.dead_letter_prefix),
                ],
                duplicate_window: config.duplicate_window,
                max_age: config.max_age.unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(|e| NatsError::Stream {
                stream: config.stream.clone(),
                source: Box::new(e),
            })?;
        Ok(Self {
            inner: Arc::new(Inner { config, js }),
            stream,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NatsConfig {
        &self.inner.config
    }

    /// The subject channel `channel` travels on.
    pub fn subject(&self, channel: &str) -> String {
        self.inner.subject(channel)
    }

    /// The subject dead letters of channel `channel` go to.
    pub fn dead_letter_subject(&self, channel: &str) -> String {
        format!("{}.{channel}", self.inner.config.dead_letter_prefix)
    }

    /// The JetStream context, for inspecting the stream (tests, tooling).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The stream, for inspecting messages (tests, tooling).
    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }

    /// Publishes `message` on its channel's subject with its id as
    /// `Nats-Msg-Id`, and waits for the stream's acknowledgement. A second
    /// publish of the same id within the duplicate window is dropped by the
    /// stream and reported as [`Sent::duplicate`].
    pub async fn send(&self, message: &Message) -> Result<Sent, NatsError> {
        let items = self.inner.encode(std::slice::from_ref(message))?;
        let mut sent = self.inner.publish_all(items).await?;
        sent.pop().ok_or_else(|| NatsError::Publish {
            subject: self.subject(&message.channel),
            source: "no acknowledgement".into(),
        })
    }

    /// Makes NATS carry the channels matching `patterns` for `executor`:
    /// messages published to them (by agents or externally) go to the stream
    /// instead of local queues, and every registered agent subscribing to
    /// one of them gets a durable pull consumer per such subscription,
    /// named after the agent and the subscription (so the same agent in a
    /// restarted or second process continues the same consumer, sharing its
    /// messages). Each message is acknowledged once the agent is done with it.
    ///
    /// Call it after registering the agents and before the executor starts.
    pub async fn attach(
        &self,
        executor: &Arc<PubSubExecutor>,
        patterns: &[&str],
    ) -> Result<Attachment, NatsError> {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_string()).collect();
        for p in &patterns {
            if let Some(reason) = crate::subject::problem(p, true) {
                return Err(NatsError::InvalidPattern {
                    pattern: p.clone(),
                    reason,
                });
            }
        }
        let mut consumers = Vec::new();
        for (agent, subscriptions) in executor.agent_subscriptions() {
            for sub in subscriptions {
                if patterns.iter().any(|p| crate::subject::intersect(p, &sub)) {
                    let name = crate::subject::consumer_name(&agent, &sub);
                    let consumer = self.consumer(&name, &sub).await?;
                    consumers.push((agent.clone(), name, consumer));
                }
            }
        }
        executor
            .set_transport(Arc::new(NatsTransport {
                inner: self.inner.clone(),
                patterns,
            }))
            .map_err(NatsError::Attach)?;
        let cancel = CancellationToken::new();
        let mut names = Vec::with_capacity(consumers.len());
        let mut tasks = Vec::with_capacity(consumers.len());
        for (agent, name, consumer) in consumers {
            tasks.push(tokio::spawn(crate::consumer::run(
                crate::consumer::Feed {
                    inner: self.inner.clone(),
                    executor: executor.clone(),
                    agent,
                    name: name.clone(),
                },
                consumer,
                cancel.clone(),
            )));
            names.push(name);
        }
        Ok(Attachment {
            cancel,
            tasks,
            consumers: names,
        })
    }

    async fn consumer(
        &self,
        name: &str,
        subscription: &str,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, NatsError> {
        let c = &self.inner.config;
        self.stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_string()),
                    filter_subject: self.subject(subscription),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: c.ack_wait,
                    max_deliver: i64::from(c.max_deliver),
                    max_ack_pending: i64::from(c.max_ack_pending),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| NatsError::Consumer {
                stream: c.stream.clone(),
                consumer: name.to_string(),
                source: Box::new(e),
            })
    }

    /// Deletes the stream with every message and consumer (tests, teardown).
    pub async fn delete_stream(&self) -> Result<(), NatsError> {
        self.inner
            .js
            .delete_stream(&self.inner.config.stream)
            .await
            .map(|_| ())
            .map_err(|e| NatsError::Stream {
                stream: self.inner.config.stream.clone(),
                source: Box::new(e),
            })
    }
}

/// The executor's side of the bridge: carries the attached patterns.
struct NatsTransport {
    inner: Arc<Inner>,
    patterns: Vec<String>,
}

#[async_trait::async_trait]
impl Transport for NatsTransport {
    fn carries(&self, channel: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| crate::subject::matches(p, channel))
    }

    async fn send(&self, message: &Message) -> Result<(), BoxError> {
        self.send_batch(std::slice::from_ref(message)).await
    }

    async fn send_batch(&self, messages: &[Message]) -> Result<(), BoxError> {
        let items = self.inner.encode(messages)?;
        self.inner.publish_all(items).await?;
        Ok(())
    }
}

/// The running consumers of one [`NatsBridge::attach`].
#[derive(Debug)]
pub struct Attachment {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    consumers: Vec<String>,
}

impl Attachment {
    /// The durable consumer names, one per attached agent subscription.
    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }

    /// Stops pulling, then waits until every message already handed to an
    /// agent is done and acknowledged (or negatively acknowledged). Call it
    /// before [`PubSubExecutor::shutdown`]. Messages pulled but not yet handed
    /// over are left unacknowledged: the server redelivers them after `ack_wait`.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "NATS consumer task ended abnormally");
            }
        }
    }
}

impl Drop for Attachment {
    /// Dropping without [`stop`](Attachment::stop) abandons unacknowledged
    /// messages; the server redelivers them after `ack_wait`.
    fn drop(&mut self) {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
