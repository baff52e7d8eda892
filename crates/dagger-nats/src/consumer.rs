//! One durable pull consumer feeding one agent: pull, hand to the executor,
//! and acknowledge each message once the agent is done with it.
//!
//! Two tasks per consumer: the puller hands messages to the executor (which
//! waits while the agent's queue is full, so pulling follows the agent's
//! pace); the acknowledger awaits each outcome in delivery order (the agent
//! handles its queue in order) and acks, naks or dead-letters.

use crate::bridge::Inner;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use dagger_core::trace_context;
use dagger_pubsub::{
    DeadLetterReason, Delivery, DeliveryOutcome, Message, PubSubError, PubSubExecutor,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Who a consumer feeds.
pub(crate) struct Feed {
    pub(crate) inner: Arc<Inner>,
    pub(crate) executor: Arc<PubSubExecutor>,
    pub(crate) agent: String,
    pub(crate) name: String,
}

/// A pulled message waiting for its acknowledgement.
enum Pending {
    /// Handed to the agent.
    Delivered(Delivery),
    /// Not a usable Dagger message: dead-lettered without delivery.
    Undecodable(String),
}

/// Pulls until `cancel` fires, then waits for the acknowledger to finish.
pub(crate) async fn run(
    feed: Feed,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    cancel: CancellationToken,
) {
    let feed = Arc::new(feed);
    let config = &feed.inner.config;
    let (tx, rx) = mpsc::channel(config.max_ack_pending as usize);
    let acker = tokio::spawn(acknowledge(feed.clone(), rx));
    let messages = consumer
        .stream()
        .max_messages_per_batch(config.max_ack_pending as usize)
        .messages()
        .await;
    match messages {
        Ok(mut messages) => loop {
            let next = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                next = messages.next() => next,
            };
            let msg = match next {
                None => break,
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    // Missed heartbeats and the like: the stream re-pulls by itself.
                    tracing::warn!(consumer = %feed.name, error = %e, "NATS pull error");
                    continue;
                }
            };
            let delivered = msg.info().map_or(1, |i| i.delivered);
            let last = delivered >= i64::from(config.max_deliver);
            let pending = match serde_json::from_slice::<Message>(&msg.payload) {
                Err(e) => Pending::Undecodable(format!("not a Dagger message: {e}")),
                Ok(m) => match feed
                    .executor
                    .deliver(&feed.agent, with_trace(m, &msg), last)
                    .await
                {
                    Ok(d) => Pending::Delivered(d),
                    Err(e @ PubSubError::ShuttingDown { .. }) => {
                        // Leave the message unacknowledged for redelivery.
                        tracing::info!(consumer = %feed.name, error = %e, "executor shutting down; stopping");
                        break;
                    }
                    // The message itself is unusable (an invalid channel name).
                    Err(e) => Pending::Undecodable(e.to_string()),
                },
            };
            if tx.send((msg, pending)).await.is_err() {
                break;
            }
        },
        Err(e) => {
            tracing::error!(consumer = %feed.name, error = %e, "cannot pull from NATS consumer");
        }
    }
    drop(tx);
    if let Err(e) = acker.await {
        tracing::error!(consumer = %feed.name, error = %e, "NATS acknowledger ended abnormally");
    }
}

/// Acknowledges each pulled message once its outcome is known.
/// `m` with the `traceparent` of the NATS headers when its own headers
/// carry none (a message published by another client).
fn with_trace(mut m: Message, msg: &jetstream::Message) -> Message {
    if !m.headers.contains_key(trace_context::HEADER)
        && let Some(parent) = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(trace_context::HEADER))
    {
        m.headers
            .insert(trace_context::HEADER.to_string(), parent.to_string());
    }
    m
}

async fn acknowledge(feed: Arc<Feed>, mut rx: mpsc::Receiver<(jetstream::Message, Pending)>) {
    let config = &feed.inner.config;
    while let Some((msg, pending)) = rx.recv().await {
        let kind = match pending {
            Pending::Delivered(d) => match d.outcome().await {
                DeliveryOutcome::Handled => AckKind::Ack,
                DeliveryOutcome::Failed { error, attempts } => {
                    tracing::debug!(consumer = %feed.name, %error, attempts, "handler failed; NATS will redeliver");
                    AckKind::Nak(Some(config.redelivery_delay))
                }
                DeliveryOutcome::Dropped => AckKind::Nak(None),
                DeliveryOutcome::DeadLettered(reason) => {
                    dead_letter(&feed, &msg, reason_json(&reason)).await
                }
            },
            Pending::Undecodable(error) => {
                let reason = json!({"reason": "undecodable", "agent": feed.agent, "error": error});
                dead_letter(&feed, &msg, reason).await
            }
        };
        // A termination is confirmed by the server: once `stop` returns, a
        // dead-lettered message is certainly not redelivered.
        let acked = if matches!(kind, AckKind::Term) {
            msg.double_ack_with(kind).await
        } else {
            msg.ack_with(kind).await
        };
        if let Err(e) = acked {
            tracing::warn!(consumer = %feed.name, error = %e, "cannot acknowledge; NATS will redeliver");
        }
    }
}

/// Publishes a dead letter for `msg` and says how to acknowledge `msg`:
/// terminate it once the dead letter is stored, redeliver it if storing failed.
async fn dead_letter(feed: &Feed, msg: &jetstream::Message, mut reason: Value) -> AckKind {
    let config = &feed.inner.config;
    let channel = msg
        .subject
        .as_str()
        .strip_prefix(&format!("{}.", config.subject_prefix))
        .unwrap_or(msg.subject.as_str())
        .to_string();
    let info = msg.info().ok();
    let sequence = info.as_ref().map_or(0, |i| i.stream_sequence);
    if let Value::Object(map) = &mut reason {
        map.insert("channel".into(), json!(channel));
        map.insert("consumer".into(), json!(feed.name));
        map.insert("stream_sequence".into(), json!(sequence));
        map.insert(
            "delivered".into(),
            json!(info.as_ref().map_or(1, |i| i.delivered)),
        );
        let original = serde_json::from_slice::<Value>(&msg.payload)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&msg.payload)));
        map.insert("original".into(), original);
    }
    let subject = format!("{}.{channel}", config.dead_letter_prefix);
    let body = match serde_json::to_vec(&reason) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(consumer = %feed.name, error = %e, "cannot encode a dead letter");
            return AckKind::Term;
        }
    };
    let mut headers = HeaderMap::new();
    // One dead letter per message and consumer, even if this is retried.
    let id = format!("dead-letter:{}:{sequence}", feed.name);
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    if let Some(kind) = reason.get("reason").and_then(Value::as_str) {
        headers.insert("Dagger-Dead-Letter-Reason", kind);
    }
    let published = match feed
        .inner
        .js
        .publish_with_headers(subject.clone(), headers, body.into())
        .await
    {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match published {
        Ok(()) => {
            tracing::warn!(consumer = %feed.name, %subject, "message dead-lettered on NATS");
            AckKind::Term
        }
        Err(error) => {
            tracing::error!(consumer = %feed.name, %subject, %error, "cannot publish a dead letter; leaving the message for redelivery");
            AckKind::Nak(Some(config.redelivery_delay))
        }
    }
}

/// The reason as JSON: `{"reason": kind, "agent": ..., details}`.
fn reason_json(reason: &DeadLetterReason) -> Value {
    let violation = |v: &dagger_core::SchemaViolation| json!({"instance_path": v.instance_path, "keyword": v.keyword, "message": v.message});
    let mut v = match reason {
        DeadLetterReason::InputSchema {
            agent,
            violation: x,
        }
        | DeadLetterReason::OutputSchema {
            agent,
            violation: x,
        } => {
            json!({"agent": agent, "violation": violation(x)})
        }
        DeadLetterReason::HandlerFailed {
            agent,
            error,
            attempts,
        } => json!({"agent": agent, "error": error, "attempts": attempts}),
        DeadLetterReason::DepthExceeded { agent, limit } => json!({"agent": agent, "limit": limit}),
    };
    if let Value::Object(map) = &mut v {
        map.insert("reason".into(), json!(reason.kind()));
    }
    v
}
