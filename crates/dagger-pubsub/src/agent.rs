//! The agent trait: what a Pub/Sub participant declares and does.

use crate::context::PubSubContext;
use crate::message::Message;
use dagger_core::{BoxError, JsonSchema};

/// An agent that reacts to messages on the channels it subscribes to and
/// publishes to the channels it declares.
///
/// Subscriptions and publications are exact channel names or patterns:
/// `orders.*` matches one segment, `orders.>` one or more trailing segments.
/// Schemas are compiled once (a [`JsonSchema`] is already compiled) and read
/// once, when the agent is registered.
#[async_trait::async_trait]
pub trait PubSubAgent: Send + Sync + 'static {
    /// The agent's unique name.
    fn name(&self) -> &str;
    /// What the agent does (shown in DOT output).
    fn description(&self) -> &str {
        ""
    }
    /// Channel names or patterns the agent receives messages from.
    fn subscriptions(&self) -> Vec<String>;
    /// Channel names or patterns the agent may publish to.
    fn publications(&self) -> Vec<String>;
    /// Every message delivered to this agent must match this schema; one that
    /// does not is dead-lettered instead.
    fn input_schema(&self) -> Option<&JsonSchema> {
        None
    }
    /// Every payload this agent publishes must match this schema; one that
    /// does not is dead-lettered and `publish` returns an error.
    fn output_schema(&self) -> Option<&JsonSchema> {
        None
    }
    /// Handles one message. An error is retried per the executor's retry
    /// policy, then the message is dead-lettered with it.
    async fn handle_message(&self, ctx: &PubSubContext, message: &Message) -> Result<(), BoxError>;
}
