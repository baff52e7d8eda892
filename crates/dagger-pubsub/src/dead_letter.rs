//! Dead letters: messages that could not be delivered, with the reason.

use crate::message::Message;
use dagger_core::SchemaViolation;
use serde_json::{Value, json};

/// Why a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The payload violates the receiving agent's input schema.
    InputSchema {
        /// The receiving agent.
        agent: String,
        /// Where and how the payload is wrong.
        violation: SchemaViolation,
    },
    /// The payload violates the publishing agent's output schema.
    OutputSchema {
        /// The publishing agent.
        agent: String,
        /// Where and how the payload is wrong.
        violation: SchemaViolation,
    },
    /// The receiving agent's handler failed on every attempt.
    HandlerFailed {
        /// The receiving agent.
        agent: String,
        /// The last error.
        error: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Publishing the message would exceed the causation depth limit.
    DepthExceeded {
        /// The publishing agent.
        agent: String,
        /// The configured limit.
        limit: u32,
    },
}

impl DeadLetterReason {
    /// A short name of the reason (`input_schema`, `handler_failed`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InputSchema { .. } => "input_schema",
            Self::OutputSchema { .. } => "output_schema",
            Self::HandlerFailed { .. } => "handler_failed",
            Self::DepthExceeded { .. } => "depth_exceeded",
        }
    }
}

/// A message that was not delivered, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message as published.
    pub message: Message,
    /// Why it was dead-lettered.
    pub reason: DeadLetterReason,
}

impl DeadLetter {
    /// The payload of the message published on the dead-letter channel:
    /// `{"reason": kind, ...reason fields, "original": message}`.
    pub(crate) fn to_payload(&self) -> Value {
        let violation = |v: &SchemaViolation| json!({"instance_path": v.instance_path, "keyword": v.keyword, "message": v.message});
        let mut v = match &self.reason {
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
            DeadLetterReason::DepthExceeded { agent, limit } => {
                json!({"agent": agent, "limit": limit})
            }
        };
        if let Value::Object(map) = &mut v {
            map.insert("reason".into(), json!(self.reason.kind()));
            map.insert(
                "original".into(),
                serde_json::to_value(&self.message).unwrap_or(Value::Null),
            );
        }
        v
    }
}
