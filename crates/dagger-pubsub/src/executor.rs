//! The public executor: registration, publishing, running, shutdown, replay.

use crate::agent::PubSubAgent;
use crate::config::PubSubConfig;
use crate::dead_letter::DeadLetter;
use crate::error::PubSubError;
use crate::message::{Message, PublishOptions};
use crate::metrics::PubSubMetrics;
use crate::pattern::Pattern;
use crate::queue::BoundedQueue;
use crate::runtime::{AgentRuntime, Envelope, Publish, Runtime};
use crate::transport::{Delivery, Transport};
use dagger_core::store::MessageLog;
use dagger_core::{Cache, MessageId};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How [`PubSubExecutor::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every accepted message was handled or dead-lettered and nothing is running.
    Quiescent,
    /// The cancellation token fired first; agents keep handling what is queued.
    Cancelled,
}

/// An agent waiting for the executor to start.
struct Registered {
    agent: Arc<dyn PubSubAgent>,
    subscriptions: Vec<Pattern>,
    publications: Vec<Pattern>,
}

/// Runs Pub/Sub agents: routes each published message to every subscriber's
/// bounded queue, and each agent's worker handles its queue in order.
///
/// The executor starts on its first [`publish`](Self::publish) or
/// [`run`](Self::run) (inside a Tokio runtime); agents are registered before.
pub struct PubSubExecutor {
    config: PubSubConfig,
    durable_patterns: Vec<Pattern>,
    log: Option<Arc<dyn MessageLog>>,
    transport: Mutex<Option<Arc<dyn Transport>>>,
    cache: Cache,
    pending: Mutex<Vec<Registered>>,
    runtime: OnceCell<Arc<Runtime>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    accepting: AtomicBool,
}

impl std::fmt::Debug for PubSubExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubExecutor")
            .field("config", &self.config)
            .field("started", &self.runtime.initialized())
            .finish_non_exhaustive()
    }
}

/// Builds a [`PubSubExecutor`] with a message log or a shared cache.
#[derive(Default)]
pub struct PubSubExecutorBuilder {
    config: PubSubConfig,
    log: Option<Arc<dyn MessageLog>>,
    cache: Option<Cache>,
}

impl std::fmt::Debug for PubSubExecutorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubExecutorBuilder")
            .field("config", &self.config)
            .field("log", &self.log.is_some())
            .finish_non_exhaustive()
    }
}

impl PubSubExecutorBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: PubSubConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the capacity of every subscriber queue.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.queue_capacity = capacity;
        self
    }

    /// Sets the retry policy of handlers.
    pub fn retry(mut self, retry: dagger_core::RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Sets the causation depth limit.
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.config.max_depth = depth;
        self
    }

    /// Makes channels matching `pattern` durable (needs a [`message_log`](Self::message_log)).
    pub fn durable(mut self, pattern: impl Into<String>) -> Self {
        self.config.durable_channels.push(pattern.into());
        self
    }

    /// The log durable channels are written to.
    pub fn message_log(mut self, log: Arc<dyn MessageLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// The cache handlers see through [`crate::PubSubContext::cache`].
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Checks the configuration and builds the executor.
    pub fn build(self) -> Result<PubSubExecutor, PubSubError> {
        self.config.check().map_err(PubSubError::InvalidConfig)?;
        if !self.config.durable_channels.is_empty() && self.log.is_none() {
            return Err(PubSubError::NoMessageLog {
                patterns: self.config.durable_channels.clone(),
            });
        }
        let durable_patterns = self
            .config
            .durable_channels
            .iter()
            .map(|p| {
                Pattern::parse(p).map_err(|reason| {
                    PubSubError::InvalidConfig(format!("durable channel pattern `{p}`: {reason}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PubSubExecutor {
            config: self.config,
            durable_patterns,
            log: self.log,
            transport: Mutex::new(None),
            cache: self.cache.unwrap_or_default(),
            pending: Mutex::new(Vec::new()),
            runtime: OnceCell::new(),
            workers: Mutex::new(Vec::new()),
            accepting: AtomicBool::new(true),
        })
    }
}

impl PubSubExecutor {
    /// An executor with `config` and no message log.
    pub fn new(config: PubSubConfig) -> Result<Self, PubSubError> {
        Self::builder().config(config).build()
    }

    /// A builder, for a message log or a shared cache.
    pub fn builder() -> PubSubExecutorBuilder {
        PubSubExecutorBuilder::default()
    }

    /// The executor's configuration.
    pub fn config(&self) -> &PubSubConfig {
        &self.config
    }

    /// The cache handlers share.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Registers an agent. Its name must be unique and its patterns valid;
    /// agents can only be added before the executor starts.
    pub fn register_agent(&self, agent: Arc<dyn PubSubAgent>) -> Result<(), PubSubError> {
        let name = agent.name().to_string();
        if self.runtime.initialized() {
            return Err(PubSubError::AlreadyStarted { agent: name });
        }
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(PubSubError::InvalidAgentName {
                agent: name,
                reason: "it must be non-empty and free of control characters".into(),
            });
        }
        let parse = |patterns: Vec<String>| {
            patterns
                .into_iter()
                .map(|p| {
                    Pattern::parse(&p).map_err(|reason| PubSubError::InvalidPattern {
                        agent: name.clone(),
                        pattern: p.clone(),
                        reason,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let subscriptions = parse(agent.subscriptions())?;
        let publications = parse(agent.publications())?;
        let mut pending = self.pending.lock();
        if pending.iter().any(|r| r.agent.name() == name) {
            return Err(PubSubError::DuplicateAgent { agent: name });
        }
        pending.push(Registered {
            agent,
            subscriptions,
            publications,
        });
        Ok(())
    }

    /// The registered agents' names with their subscription patterns, in
    /// registration order (what a transport needs to subscribe for them).
    pub fn agent_subscriptions(&self) -> Vec<(String, Vec<String>)> {
        match self.runtime.get() {
            Some(rt) => rt
                .agents
                .iter()
                .map(|a| (a.name.to_string(), a.agent.subscriptions()))
                .collect(),
            None => self
                .pending
                .lock()
                .iter()
                .map(|r| (r.agent.name().to_string(), r.agent.subscriptions()))
                .collect(),
        }
    }

    /// Sets the transport that carries some channels to other processes (see
    /// [`Transport`]). Like agents, it can only be set before the executor
    /// starts, and only once.
    pub fn set_transport(&self, transport: Arc<dyn Transport>) -> Result<(), PubSubError> {
        if self.runtime.initialized() {
            return Err(PubSubError::TransportAfterStart);
        }
        let mut slot = self.transport.lock();
        if slot.is_some() {
            return Err(PubSubError::TransportAlreadySet);
        }
        *slot = Some(transport);
        Ok(())
    }

    /// Hands `message`, received from the transport, to agent `agent` alone
    /// (it bypasses routing: the transport already chose the subscriber).
    /// `last_delivery` says whether a handler failure dead-letters the message
    /// (true) or is reported as [`crate::DeliveryOutcome::Failed`] for the
    /// transport to redeliver. Returns once the message is queued (waiting
    /// while the agent's queue is full); the [`Delivery`] resolves when the
    /// agent is done with it.
    pub async fn deliver(
        &self,
        agent: &str,
        message: Message,
        last_delivery: bool,
    ) -> Result<Delivery, PubSubError> {
        self.accept(&message.channel)?;
        let rt = self.started().await?;
        let idx = rt
            .agent_index(agent)
            .ok_or_else(|| PubSubError::UnknownAgent {
                agent: agent.to_string(),
            })?;
        rt.deliver_remote(idx, message, last_delivery).await
    }

    /// Starts the workers (once) and delivers what durable channels hold undelivered.
    async fn started(&self) -> Result<&Arc<Runtime>, PubSubError> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        // Boxed: the start-up future is large and runs once.
        Box::pin(self.start()).await
    }

    async fn start(&self) -> Result<&Arc<Runtime>, PubSubError> {
        self.runtime
            .get_or_try_init(|| async {
                let registered = std::mem::take(&mut *self.pending.lock());
                let agents = registered
                    .into_iter()
                    .map(|r| {
                        let name: Arc<str> = Arc::from(r.agent.name());
                        AgentRuntime {
                            input_schema: r.agent.input_schema().cloned(),
                            output_schema: r.agent.output_schema().cloned(),
                            queue: BoundedQueue::new(
                                self.config.queue_capacity,
                                self.config.overflow_for(&name),
                            ),
                            name,
                            agent: r.agent,
                            subscriptions: r.subscriptions,
                            publications: r.publications,
                            processed: AtomicU64::new(0),
                            failed_attempts: AtomicU64::new(0),
                            dead_lettered: AtomicU64::new(0),
                        }
                    })
                    .collect();
                let rt = Arc::new(Runtime::new(
                    self.config.clone(),
                    agents,
                    self.durable_patterns.clone(),
                    self.log.clone(),
                    self.transport.lock().clone(),
                    self.cache.clone(),
                ));
                let placeholder_channel = rt.channel(crate::config::DEAD_LETTER_CHANNEL);
                let mut spawned = Vec::with_capacity(rt.agents.len());
                for i in 0..rt.agents.len() {
                    let placeholder = Arc::new(Envelope {
                        message: rt.new_message(
                            &placeholder_channel,
                            Value::Null,
                            None,
                            None,
                            None,
                            BTreeMap::new(),
                        ),
                        channel: placeholder_channel.clone(),
                        offset: 0,
                        remote: None,
                    });
                    spawned.push(tokio::spawn(crate::worker::run_worker(
                        rt.clone(),
                        i,
                        placeholder,
                    )));
                }
                self.workers.lock().extend(spawned);
                rt.recover().await?;
                Ok(rt)
            })
            .await
    }

    fn accept(&self, channel: &str) -> Result<(), PubSubError> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(PubSubError::ShuttingDown {
                channel: channel.to_string(),
            });
        }
        Ok(())
    }

    /// Publishes `payload` to `channel` as an external publisher (any channel
    /// may be used; it is created on first use). Returns once every
    /// subscriber has the message queued — and, on a durable channel, once
    /// the message is in the log. Waits while a subscriber queue is full.
    pub async fn publish(&self, channel: &str, payload: Value) -> Result<MessageId, PubSubError> {
        self.begin_publish(channel, payload, PublishOptions::default())
            .finish()
            .await
    }

    /// [`publish`](Self::publish) with a correlation id and headers.
    pub async fn publish_with(
        &self,
        channel: &str,
        payload: Value,
        options: PublishOptions,
    ) -> Result<MessageId, PubSubError> {
        self.begin_publish(channel, payload, options).finish().await
    }

    /// Does what can be done without awaiting; see [`Publish`].
    fn begin_publish<'a>(
        &'a self,
        channel: &'a str,
        payload: Value,
        options: PublishOptions,
    ) -> Publish<'a> {
        if let Err(e) = self.accept(channel) {
            return Publish::Done(Err(e));
        }
        let Some(rt) = self.runtime.get() else {
            return Publish::Wait(Box::pin(async move {
                let rt = self.started().await?;
                Self::publish_on(rt, channel, payload, options)
                    .finish()
                    .await
            }));
        };
        Self::publish_on(rt, channel, payload, options)
    }

    fn publish_on<'a>(
        rt: &'a Runtime,
        channel: &str,
        payload: Value,
        options: PublishOptions,
    ) -> Publish<'a> {
        let ch = match rt.channel_checked(channel) {
            Ok(ch) => ch,
            Err(e) => return Publish::Done(Err(e)),
        };
        let message = rt.new_message(
            &ch,
            payload,
            None,
            None,
            options.correlation_id,
            options.headers,
        );
        rt.dispatch(ch, message, None)
    }

    /// Publishes several payloads to `channel` in order; on a durable channel
    /// they are logged in one append (one commit), which is how durable
    /// publishing reaches high rates.
    pub async fn publish_batch(
        &self,
        channel: &str,
        payloads: Vec<Value>,
    ) -> Result<Vec<MessageId>, PubSubError> {
        self.accept(channel)?;
        let rt = self.started().await?;
        let ch = rt.channel_checked(channel)?;
        let messages: Vec<Message> = payloads
            .into_iter()
            .map(|p| rt.new_message(&ch, p, None, None, None, BTreeMap::new()))
            .collect();
        rt.dispatch_batch(&ch, messages).await
    }

    /// Starts the executor if needed and waits until it is quiescent (every
    /// accepted message handled or dead-lettered, no handler running) or
    /// `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) -> Result<RunOutcome, PubSubError> {
        let rt = self.started().await?;
        Ok(if rt.wait_idle(&cancel).await {
            RunOutcome::Quiescent
        } else {
            RunOutcome::Cancelled
        })
    }

    /// Stops accepting external messages, lets the agents finish every
    /// accepted message (and what they publish while doing so), then stops
    /// the workers. Returns the final metrics.
    pub async fn shutdown(&self) -> Result<PubSubMetrics, PubSubError> {
        self.accepting.store(false, Ordering::Release);
        if let Some(rt) = self.runtime.get() {
            rt.wait_idle(&CancellationToken::new()).await;
            for a in rt.agents.iter() {
                a.queue.close();
            }
            let workers = std::mem::take(&mut *self.workers.lock());
            for w in workers {
                if let Err(e) = w.await {
                    tracing::error!(error = %e, "pub/sub worker ended abnormally");
                }
            }
        }
        Ok(self.metrics())
    }

    /// Re-delivers the logged messages of durable `channel` from offset `from`
    /// (1 is the first message) to `agent`; returns how many were queued.
    pub async fn replay(&self, channel: &str, agent: &str, from: u64) -> Result<u64, PubSubError> {
        self.accept(channel)?;
        let rt = self.started().await?;
        let idx = rt
            .agent_index(agent)
            .ok_or_else(|| PubSubError::UnknownAgent {
                agent: agent.to_string(),
            })?;
        let ch = rt.channel_checked(channel)?;
        if !ch.durable {
            return Err(PubSubError::NotDurable {
                channel: channel.to_string(),
            });
        }
        rt.redeliver(&ch, idx, from).await
    }

    /// The most recent dead letters (up to `dead_letter_retention`), oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.runtime
            .get()
            .map(|rt| rt.dead_letters())
            .unwrap_or_default()
    }

    /// Counters per channel and per agent.
    pub fn metrics(&self) -> PubSubMetrics {
        match self.runtime.get() {
            Some(rt) => PubSubMetrics::of(rt),
            None => PubSubMetrics::default(),
        }
    }

    /// The agents, the channels in use and declared, and message counts, as DOT.
    pub fn to_dot(&self) -> String {
        match self.runtime.get() {
            Some(rt) => crate::dot::render_started(rt),
            None => {
                let pending = self.pending.lock();
                let agents: Vec<crate::dot::AgentView<'_>> = pending
                    .iter()
                    .map(|r| crate::dot::AgentView {
                        name: r.agent.name(),
                        description: r.agent.description(),
                        subscriptions: &r.subscriptions,
                        publications: &r.publications,
                        processed: 0,
                    })
                    .collect();
                crate::dot::render(&agents, &[])
            }
        }
    }
}

impl Drop for PubSubExecutor {
    /// Dropping without [`shutdown`](PubSubExecutor::shutdown) abandons queued
    /// messages (a durable channel redelivers them on the next start).
    fn drop(&mut self) {
        for w in self.workers.get_mut().drain(..) {
            w.abort();
        }
    }
}
