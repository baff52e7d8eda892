//! The started executor: agents with their queues, the channel table
//! (the routing cache: patterns are matched once per channel, when it is
//! first used), in-flight accounting and the publish path.

use crate::agent::PubSubAgent;
use crate::config::{DEAD_LETTER_CHANNEL, PubSubConfig};
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::error::PubSubError;
use crate::message::{ChannelName, Message};
use crate::pattern::Pattern;
use crate::queue::{BoundedQueue, Pushed};
use crate::transport::{Delivery, Remote, Transport};
use dagger_core::store::MessageLog;
use dagger_core::{Cache, JsonSchema, MessageId, trace_context};
use dashmap::DashMap;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// Hashes channel names: they are short and not attacker-chosen keys of a
/// long-lived map, so a fast non-keyed hash is the right trade.
type NameHash = foldhash::fast::RandomState;

/// `v` as a lower-case hyphenated UUID (8-4-4-4-12 hex digits), written
/// straight into a stack buffer two digits per table look-up: the text `uuid`
/// produces, at a fraction of the cost (ids are made once per message).
fn hyphenated_uuid(v: u128) -> [u8; 36] {
    /// Where each byte's two digits go.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    const DIGITS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [HEX[i >> 4], HEX[i & 0xf]];
            i += 1;
        }
        t
    };
    let mut out = [b'-'; 36];
    for (byte, at) in v.to_be_bytes().into_iter().zip(AT) {
        let [hi, lo] = DIGITS[usize::from(byte)];
        out[at] = hi;
        out[at + 1] = lo;
    }
    out
}

/// A message in flight, shared by all of its subscribers.
pub(crate) struct Envelope {
    pub(crate) message: Message,
    pub(crate) channel: Arc<Channel>,
    /// Offset in the channel's log; 0 when the channel is not durable.
    pub(crate) offset: u64,
    /// Set on a delivery from a [`Transport`], which waits for its outcome.
    pub(crate) remote: Option<Box<Remote>>,
}

impl Envelope {
    /// Done with `env`: when this was its last holder, empties it (its
    /// payload and headers are freed now, the small fields when it is
    /// reused) and moves it to `retired` for [`Runtime::recycle`].
    pub(crate) fn retire(mut env: Arc<Self>, retired: &mut Vec<Arc<Self>>) {
        if let Some(e) = Arc::get_mut(&mut env)
            && e.remote.is_none()
        {
            e.message.payload = Value::Null;
            e.message.headers = BTreeMap::new();
            e.message.source = None;
            e.message.correlation_id = None;
            retired.push(env);
        }
    }
}

/// A publish in progress. The common in-memory case completes without
/// awaiting anything; the rest (log appends, waiting for queue room) is a
/// boxed future. Keeping the awaited part out of line keeps every publish
/// future small, so no large memcpy happens per message.
pub(crate) enum Publish<'a> {
    /// Finished.
    Done(Result<MessageId, PubSubError>),
    /// Finishes when this future does.
    Wait(Pin<Box<dyn Future<Output = Result<MessageId, PubSubError>> + Send + 'a>>),
}

impl Publish<'_> {
    /// Completes the publish.
    pub(crate) async fn finish(self) -> Result<MessageId, PubSubError> {
        match self {
            Publish::Done(r) => r,
            Publish::Wait(f) => f.await,
        }
    }
}

/// A message some subscribers had no room for yet.
pub(crate) struct Waiting {
    env: Arc<Envelope>,
    full: Vec<usize>,
}

/// One channel: its subscribers, resolved once, and its counters.
pub(crate) struct Channel {
    pub(crate) name: Arc<str>,
    pub(crate) subscribers: Box<[usize]>,
    pub(crate) durable: bool,
    /// Carried by the transport: published messages go there, not to local queues.
    pub(crate) remote: bool,
    /// Held from log append to enqueue so subscribers see log order.
    append_lock: tokio::sync::Mutex<()>,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    /// The same counts through the `metrics` facade.
    pub(crate) exported: dagger_core::metrics::ChannelMetrics,
}

/// A registered agent, as the runtime keeps it.
pub(crate) struct AgentRuntime {
    pub(crate) agent: Arc<dyn PubSubAgent>,
    pub(crate) name: Arc<str>,
    pub(crate) subscriptions: Vec<Pattern>,
    pub(crate) publications: Vec<Pattern>,
    pub(crate) input_schema: Option<JsonSchema>,
    pub(crate) output_schema: Option<JsonSchema>,
    pub(crate) queue: BoundedQueue<Arc<Envelope>>,
    pub(crate) processed: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
}

/// Everything a started executor shares with its workers and contexts.
pub(crate) struct Runtime {
    pub(crate) config: PubSubConfig,
    pub(crate) agents: Box<[AgentRuntime]>,
    durable_patterns: Vec<Pattern>,
    pub(crate) log: Option<Arc<dyn MessageLog>>,
    transport: Option<Arc<dyn Transport>>,
    pub(crate) cache: Cache,
    pub(crate) channels: DashMap<Arc<str>, Arc<Channel>, NameHash>,
    /// Deliveries queued or being handled; 0 means quiescent.
    in_flight: AtomicU64,
    idle: Notify,
    dead_letters: Mutex<VecDeque<DeadLetter>>,
    pub(crate) commit_errors: AtomicU64,
    id_base: u128,
    next_id: AtomicU64,
    /// Envelopes whose last subscriber is done, kept for reuse: a message
    /// then costs no envelope allocation, and its memory is not freed on the
    /// subscriber's thread and allocated again on the publisher's.
    spare: Mutex<Vec<Arc<Envelope>>>,
}

/// Most envelopes [`Runtime::spare`] keeps (about one queue's worth).
const SPARE_ENVELOPES: usize = 1024;

impl Runtime {
    pub(crate) fn new(
        config: PubSubConfig,
        agents: Vec<AgentRuntime>,
        durable_patterns: Vec<Pattern>,
        log: Option<Arc<dyn MessageLog>>,
        transport: Option<Arc<dyn Transport>>,
        cache: Cache,
    ) -> Self {
        Self {
            config,
            agents: agents.into_boxed_slice(),
            durable_patterns,
            log,
            transport,
            cache,
            channels: DashMap::with_hasher(NameHash::default()),
            in_flight: AtomicU64::new(0),
            idle: Notify::new(),
            dead_letters: Mutex::new(VecDeque::new()),
            commit_errors: AtomicU64::new(0),
            id_base: uuid::Uuid::now_v7().as_u128(),
            next_id: AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// The channel named `name`; a new name is checked first.
    pub(crate) fn channel_checked(&self, name: &str) -> Result<Arc<Channel>, PubSubError> {
        if let Some(c) = self.channels.get(name) {
            return Ok(c.clone());
        }
        if let Some(reason) = crate::pattern::channel_problem(name) {
            return Err(PubSubError::InvalidChannel {
                channel: name.to_string(),
                reason,
            });
        }
        Ok(self.channel(name))
    }

    /// The channel named `name`, created (and routed) on first use.
    pub(crate) fn channel(&self, name: &str) -> Arc<Channel> {
        if let Some(c) = self.channels.get(name) {
            return c.clone();
        }
        let subscribers: Box<[usize]> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(_, a)| a.subscriptions.iter().any(|p| p.matches(name)))
            .map(|(i, _)| i)
            .collect();
        let remote =
            name != DEAD_LETTER_CHANNEL && self.transport.as_ref().is_some_and(|t| t.carries(name));
        let durable =
            !remote && self.log.is_some() && self.durable_patterns.iter().any(|p| p.matches(name));
        let name: Arc<str> = Arc::from(name);
        self.channels
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Channel {
                    exported: dagger_core::metrics::ChannelMetrics::new(&name),
                    name,
                    subscribers,
                    durable,
                    remote,
                    append_lock: tokio::sync::Mutex::new(()),
                    published: AtomicU64::new(0),
                    delivered: AtomicU64::new(0),
                    dead_lettered: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// A fresh message id: time-ordered within this executor, unique across executors.
    pub(crate) fn next_message_id(&self) -> MessageId {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let buf = hyphenated_uuid(self.id_base.wrapping_add(u128::from(n)));
        // Only ASCII hex digits and hyphens were written.
        MessageId::new(std::str::from_utf8(&buf).unwrap_or_default())
    }

    /// Builds a message for `channel`, with the `traceparent` header of
    /// the current span when it is traced and `headers` has none.
    pub(crate) fn new_message(
        &self,
        channel: &Channel,
        payload: Value,
        source: Option<&str>,
        parent: Option<&Message>,
        correlation_id: Option<String>,
        mut headers: BTreeMap<String, String>,
    ) -> Message {
        // Published inside a traced span: the subscribers' spans join it.
        if !headers.contains_key(trace_context::HEADER)
            && let Some(parent) = trace_context::current()
        {
            headers.insert(trace_context::HEADER.to_string(), parent);
        }
        Message {
            id: self.next_message_id(),
            channel: ChannelName::shared(&channel.name),
            source: source.map(str::to_string),
            payload,
            timestamp: dagger_core::now_millis(),
            correlation_id: correlation_id
                .or_else(|| parent.and_then(|p| p.correlation_id.clone())),
            causation_id: parent.map(|p| p.id.clone()),
            headers,
            depth: parent.map_or(0, |p| p.depth.saturating_add(1)),
        }
    }

    /// Publishes an accepted message: logs it when the channel is durable,
    /// then queues it for every subscriber. `publisher` is the publishing
    /// agent, whose own queue is never waited on.
    pub(crate) fn dispatch(
        &self,
        channel: Arc<Channel>,
        message: Message,
        publisher: Option<usize>,
    ) -> Publish<'_> {
        let id = message.id.clone();
        if channel.remote {
            return Publish::Wait(Box::pin(async move {
                self.send_remote(&channel, std::slice::from_ref(&message))
                    .await
                    .map(|()| id)
            }));
        }
        if channel.durable {
            return Publish::Wait(Box::pin(async move {
                self.dispatch_durable(&channel, vec![message], publisher)
                    .await
                    .map(|()| id)
            }));
        }
        match self.enqueue_now(&channel, message, 0, publisher, false) {
            None => Publish::Done(Ok(id)),
            Some(waiting) => Publish::Wait(Box::pin(async move {
                self.enqueue_wait(waiting).await;
                Ok(id)
            })),
        }
    }

    /// Publishes several messages to one channel, logging them in one append.
    pub(crate) async fn dispatch_batch(
        &self,
        channel: &Arc<Channel>,
        messages: Vec<Message>,
    ) -> Result<Vec<MessageId>, PubSubError> {
        let ids = messages.iter().map(|m| m.id.clone()).collect();
        if channel.remote {
            self.send_remote(channel, &messages).await?;
        } else if channel.durable {
            self.dispatch_durable(channel, messages, None).await?;
        } else {
            for m in messages {
                if let Some(waiting) = self.enqueue_now(channel, m, 0, None, false) {
                    self.enqueue_wait(waiting).await;
                }
            }
        }
        Ok(ids)
    }

    /// Appends to the log, then queues in log order (the append lock keeps
    /// concurrent publishers from interleaving between the two).
    async fn dispatch_durable(
        &self,
        channel: &Arc<Channel>,
        messages: Vec<Message>,
        publisher: Option<usize>,
    ) -> Result<(), PubSubError> {
        let _order = channel.append_lock.lock().await;
        let records = messages.iter().map(Message::to_record).collect();
        let first = self.append(channel, records).await?;
        for (i, m) in messages.into_iter().enumerate() {
            if let Some(waiting) = self.enqueue_now(channel, m, first + i as u64, publisher, false)
            {
                self.enqueue_wait(waiting).await;
            }
        }
        Ok(())
    }

    /// Hands messages of a carried channel to the transport.
    async fn send_remote(
        &self,
        channel: &Channel,
        messages: &[Message],
    ) -> Result<(), PubSubError> {
        let Some(transport) = &self.transport else {
            return Ok(());
        };
        let sent = match messages {
            [one] => transport.send(one).await,
            many => transport.send_batch(many).await,
        };
        sent.map_err(|source| PubSubError::Transport {
            channel: channel.name.to_string(),
            source,
        })?;
        channel
            .published
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        channel.exported.published.increment(messages.len() as u64);
        Ok(())
    }

    /// Queues `message`, received from the transport, for agent `agent` only.
    pub(crate) async fn deliver_remote(
        &self,
        agent: usize,
        message: Message,
        last_delivery: bool,
    ) -> Result<Delivery, PubSubError> {
        let channel = self.channel_checked(&message.channel)?;
        let (remote, rx) = Remote::new(last_delivery);
        let env = Arc::new(Envelope {
            message,
            channel,
            offset: 0,
            remote: Some(Box::new(remote)),
        });
        self.begin(1);
        self.push_to(agent, env, false).await;
        Ok(Delivery(rx))
    }

    async fn append(
        &self,
        channel: &Channel,
        records: Vec<dagger_core::store::MessageRecord>,
    ) -> Result<u64, PubSubError> {
        let Some(log) = &self.log else {
            return Ok(0);
        };
        log.append(&channel.name, records)
            .await
            .map_err(|source| PubSubError::Store {
                channel: channel.name.to_string(),
                source,
            })
    }

    /// Queues `message` for every subscriber that has room now; returns the
    /// subscribers that are full (with [`crate::Overflow::Block`]), for
    /// [`enqueue_wait`](Self::enqueue_wait).
    fn enqueue_now(
        &self,
        channel: &Arc<Channel>,
        message: Message,
        offset: u64,
        publisher: Option<usize>,
        force: bool,
    ) -> Option<Waiting> {
        channel.published.fetch_add(1, Ordering::Relaxed);
        channel.exported.published.increment(1);
        let subs = &channel.subscribers;
        if subs.is_empty() {
            return None;
        }
        self.in_flight
            .fetch_add(subs.len() as u64, Ordering::AcqRel);
        let env = self.envelope(Envelope {
            message,
            channel: channel.clone(),
            offset,
            remote: None,
        });
        let mut full: Vec<usize> = Vec::new();
        for &s in subs.iter() {
            let force = force || publisher == Some(s);
            match self.agents[s].queue.try_push(env.clone(), force) {
                Ok(Pushed::Queued) => {}
                Ok(Pushed::DroppedOldest(_)) | Err((_, true)) => self.finish(1),
                Err((_, false)) => full.push(s),
            }
        }
        (!full.is_empty()).then_some(Waiting { env, full })
    }

    /// `fresh` in a shared envelope, reusing a spare one when there is one.
    fn envelope(&self, fresh: Envelope) -> Arc<Envelope> {
        let spare = self.spare.lock().pop();
        match spare {
            Some(mut env) => match Arc::get_mut(&mut env) {
                Some(slot) => {
                    *slot = fresh;
                    env
                }
                None => Arc::new(fresh),
            },
            None => Arc::new(fresh),
        }
    }

    /// Takes back envelopes no subscriber holds any more (see
    /// [`Envelope::retire`]), up to [`SPARE_ENVELOPES`]; the rest are freed.
    pub(crate) fn recycle(&self, retired: &mut Vec<Arc<Envelope>>) {
        if retired.is_empty() {
            return;
        }
        let mut spare = self.spare.lock();
        let room = SPARE_ENVELOPES.saturating_sub(spare.len());
        let keep = retired.len().min(room);
        spare.extend(retired.drain(..keep));
        drop(spare);
        retired.clear();
    }

    /// Waits for room in each full subscriber queue, in turn.
    async fn enqueue_wait(&self, waiting: Waiting) {
        for s in waiting.full {
            self.push_to(s, waiting.env.clone(), false).await;
        }
    }

    /// Queues one delivery for agent `agent`; in-flight must already count it.
    pub(crate) async fn push_to(&self, agent: usize, env: Arc<Envelope>, force: bool) {
        match self.agents[agent].queue.push(env, force).await {
            Ok(Pushed::Queued) => {}
            Ok(Pushed::DroppedOldest(_)) | Err(_) => self.finish(1),
        }
    }

    /// Counts `n` more deliveries queued outside `enqueue` (recovery, replay).
    pub(crate) fn begin(&self, n: u64) {
        self.in_flight.fetch_add(n, Ordering::AcqRel);
    }

    /// Marks `n` deliveries as done; wakes `wait_idle` when none are left.
    pub(crate) fn finish(&self, n: u64) {
        if self.in_flight.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits until no delivery is queued or running, or `cancel` fires.
    /// Returns false when cancelled.
    pub(crate) async fn wait_idle(&self, cancel: &tokio_util::sync::CancellationToken) -> bool {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            tokio::select! {
                () = &mut notified => {}
                () = cancel.cancelled() => return false,
            }
        }
    }

    /// Dead-letters `message` (which was published to `channel`): counts it,
    /// keeps it for `dead_letters()`, and publishes a description of it on the
    /// dead-letter channel without ever waiting for queue room. A failure of a
    /// dead letter itself is only counted, so dead letters cannot loop.
    pub(crate) async fn dead_letter(
        &self,
        channel: &Channel,
        message: Message,
        reason: DeadLetterReason,
    ) {
        channel.dead_lettered.fetch_add(1, Ordering::Relaxed);
        channel.exported.dead_lettered.increment(1);
        let agent = match &reason {
            DeadLetterReason::InputSchema { agent, .. }
            | DeadLetterReason::OutputSchema { agent, .. }
            | DeadLetterReason::HandlerFailed { agent, .. }
            | DeadLetterReason::DepthExceeded { agent, .. } => agent.clone(),
        };
        if let Some(a) = self.agents.iter().find(|a| *a.name == *agent) {
            a.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(channel = %channel.name, message_id = %message.id, reason = reason.kind(), %agent, "message dead-lettered");
        if &*channel.name == DEAD_LETTER_CHANNEL {
            return;
        }
        let letter = DeadLetter { message, reason };
        let payload = letter.to_payload();
        let dl_channel = self.channel(DEAD_LETTER_CHANNEL);
        let mut headers = BTreeMap::new();
        headers.insert(
            "dead-letter-reason".to_string(),
            letter.reason.kind().to_string(),
        );
        let mut dl = self.new_message(
            &dl_channel,
            payload,
            None,
            Some(&letter.message),
            None,
            headers,
        );
        dl.depth = letter.message.depth;
        {
            let mut kept = self.dead_letters.lock();
            if self.config.dead_letter_retention > 0 {
                if kept.len() == self.config.dead_letter_retention {
                    kept.pop_front();
                }
                kept.push_back(letter);
            }
        }
        if dl_channel.durable {
            let _order = dl_channel.append_lock.lock().await;
            match self.append(&dl_channel, vec![dl.to_record()]).await {
                // Forced: a dead letter never waits for room, so it cannot deadlock.
                Ok(offset) => {
                    self.enqueue_now(&dl_channel, dl, offset, None, true);
                }
                Err(e) => tracing::error!(error = %e, "cannot log a dead letter"),
            }
        } else {
            self.enqueue_now(&dl_channel, dl, 0, None, true);
        }
    }

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.lock().iter().cloned().collect()
    }

    pub(crate) fn agent_index(&self, name: &str) -> Option<usize> {
        self.agents.iter().position(|a| &*a.name == name)
    }

    /// Queues the logged messages of `channel` from offset `from` for agent
    /// `agent`; returns how many.
    pub(crate) async fn redeliver(
        &self,
        channel: &Arc<Channel>,
        agent: usize,
        from: u64,
    ) -> Result<u64, PubSubError> {
        let Some(log) = &self.log else {
            return Ok(0);
        };
        const PAGE: usize = 1024;
        let mut next = from.max(1);
        let mut count = 0u64;
        loop {
            let page = log
                .read_from(&channel.name, next, PAGE)
                .await
                .map_err(|source| PubSubError::Store {
                    channel: channel.name.to_string(),
                    source,
                })?;
            let n = page.len();
            for record in page {
                next = record.offset + 1;
                let offset = record.offset;
                let env = Arc::new(Envelope {
                    message: Message::from_record(record),
                    channel: channel.clone(),
                    offset,
                    remote: None,
                });
                self.begin(1);
                self.push_to(agent, env, false).await;
                count += 1;
            }
            if n < PAGE {
                return Ok(count);
            }
        }
    }

    /// Delivers, after a restart, what each subscriber of each logged durable
    /// channel has not committed.
    pub(crate) async fn recover(&self) -> Result<(), PubSubError> {
        let Some(log) = self.log.clone() else {
            return Ok(());
        };
        let names = log.channels().await.map_err(|source| PubSubError::Store {
            channel: "*".into(),
            source,
        })?;
        for name in names {
            let channel = self.channel(&name);
            if !channel.durable {
                continue;
            }
            for &s in channel.subscribers.iter() {
                let committed = log
                    .committed(&name, &self.agents[s].name)
                    .await
                    .map_err(|source| PubSubError::Store {
                        channel: name.clone(),
                        source,
                    })?
                    .unwrap_or(0);
                let n = self.redeliver(&channel, s, committed + 1).await?;
                if n > 0 {
                    tracing::info!(channel = %name, agent = %self.agents[s].name, messages = n, "redelivering after restart");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::hyphenated_uuid;

    #[test]
    fn ids_are_formatted_like_uuid_does() {
        for v in [
            0u128,
            u128::MAX,
            uuid::Uuid::now_v7().as_u128(),
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            let ours = hyphenated_uuid(v);
            assert_eq!(
                std::str::from_utf8(&ours).unwrap(),
                uuid::Uuid::from_u128(v).hyphenated().to_string()
            );
        }
    }
}
