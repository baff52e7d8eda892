//! What a handler sees: its own name, the message, the cache, and a way to publish.

use crate::dead_letter::DeadLetterReason;
use crate::error::PubSubError;
use crate::message::Message;
use crate::runtime::{Envelope, Runtime};
use dagger_core::{Cache, MessageId};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The context of one `handle_message` call.
pub struct PubSubContext {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) agent: usize,
    pub(crate) envelope: Arc<Envelope>,
}

impl std::fmt::Debug for PubSubContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubContext")
            .field("agent", &self.agent_name())
            .field("message", &self.envelope.message.id)
            .finish()
    }
}

impl PubSubContext {
    /// The name of the agent handling the message.
    pub fn agent_name(&self) -> &str {
        &self.rt.agents[self.agent].name
    }

    /// The correlation id of the message being handled (inherited by what the agent publishes).
    pub fn correlation_id(&self) -> Option<&str> {
        self.envelope.message.correlation_id.as_deref()
    }

    /// The message being handled.
    pub fn message(&self) -> &Message {
        &self.envelope.message
    }

    /// The executor's shared cache.
    pub fn cache(&self) -> &Cache {
        &self.rt.cache
    }

    /// Publishes `payload` to `channel`, which the agent must declare in its
    /// publications. The new message's causation id is the handled message,
    /// its correlation id is inherited and its depth is one more.
    ///
    /// Errors: [`PubSubError::UndeclaredPublication`], [`PubSubError::InvalidChannel`],
    /// and — after dead-lettering the message — [`PubSubError::OutputSchemaViolation`]
    /// or [`PubSubError::DepthLimitExceeded`]. Waits while a subscriber's
    /// queue is full (backpressure).
    pub async fn publish(&self, channel: &str, payload: Value) -> Result<MessageId, PubSubError> {
        self.publish_with_headers(channel, payload, BTreeMap::new())
            .await
    }

    /// [`publish`](Self::publish) with headers.
    pub async fn publish_with_headers(
        &self,
        channel: &str,
        payload: Value,
        headers: BTreeMap<String, String>,
    ) -> Result<MessageId, PubSubError> {
        let rt = &*self.rt;
        let me = &rt.agents[self.agent];
        if !me.publications.iter().any(|p| p.matches(channel)) {
            return Err(PubSubError::UndeclaredPublication {
                agent: me.name.to_string(),
                channel: channel.to_string(),
                declared: me
                    .publications
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let ch = rt.channel_checked(channel)?;
        let parent = &self.envelope.message;
        let message = rt.new_message(&ch, payload, Some(&me.name), Some(parent), None, headers);
        if message.depth > rt.config.max_depth {
            let limit = rt.config.max_depth;
            rt.dead_letter(
                &ch,
                message,
                DeadLetterReason::DepthExceeded {
                    agent: me.name.to_string(),
                    limit,
                },
            )
            .await;
            return Err(PubSubError::DepthLimitExceeded {
                agent: me.name.to_string(),
                channel: channel.to_string(),
                limit,
            });
        }
        if let Some(schema) = &me.output_schema
            && let Err(violation) = schema.validate(&message.payload)
        {
            rt.dead_letter(
                &ch,
                message,
                DeadLetterReason::OutputSchema {
                    agent: me.name.to_string(),
                    violation: violation.clone(),
                },
            )
            .await;
            return Err(PubSubError::OutputSchemaViolation {
                agent: me.name.to_string(),
                channel: channel.to_string(),
                violation,
            });
        }
        rt.dispatch(ch, message, Some(self.agent)).finish().await
    }
}
