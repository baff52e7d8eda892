//! The message that travels over channels.

use dagger_core::MessageId;
use dagger_core::store::MessageRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The name of the channel a [`Message`] was published to. Every message of a
/// channel shares the channel's one copy of the name (publishing a message
/// does not copy it); it reads as a `&str` and compares with strings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelName(Arc<str>);

impl ChannelName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Shares `name` without copying it.
    pub(crate) fn shared(name: &Arc<str>) -> Self {
        Self(Arc::clone(name))
    }
}

impl std::ops::Deref for ChannelName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for ChannelName {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl From<String> for ChannelName {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

impl From<&String> for ChannelName {
    fn from(s: &String) -> Self {
        Self(s.as_str().into())
    }
}

impl From<ChannelName> for String {
    fn from(c: ChannelName) -> Self {
        c.0.to_string()
    }
}

impl PartialEq<str> for ChannelName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ChannelName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for ChannelName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<ChannelName> for str {
    fn eq(&self, other: &ChannelName) -> bool {
        self == &*other.0
    }
}

impl PartialEq<ChannelName> for &str {
    fn eq(&self, other: &ChannelName) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<ChannelName> for String {
    fn eq(&self, other: &ChannelName) -> bool {
        **self == *other.0
    }
}

/// One message on one channel. Subscribers share it: it is never copied per
/// delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique, time-ordered id.
    pub id: MessageId,
    /// The channel it was published to.
    pub channel: ChannelName,
    /// The publishing agent; `None` for an external publisher (and for dead letters).
    pub source: Option<String>,
    /// The payload.
    pub payload: Value,
    /// Publish time, in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Shared by every message of one conversation: an agent's publications
    /// inherit the correlation id of the message it is handling.
    pub correlation_id: Option<String>,
    /// The message whose handling published this one.
    pub causation_id: Option<MessageId>,
    /// Free-form headers.
    pub headers: BTreeMap<String, String>,
    /// Causation depth: 0 for an external publish, the parent's depth + 1 for
    /// an agent's publish. Bounded by `PubSubConfig::max_depth`.
    pub depth: u32,
}

impl Message {
    /// The record kept in a durable channel's log (offset assigned by the log).
    pub(crate) fn to_record(&self) -> MessageRecord {
        MessageRecord {
            offset: 0,
            channel: self.channel.to_string(),
            message_id: self.id.clone(),
            source: self.source.clone(),
            payload: self.payload.clone(),
            timestamp: self.timestamp,
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            headers: self.headers.clone(),
            depth: self.depth,
        }
    }

    /// The message a log record holds.
    pub(crate) fn from_record(r: MessageRecord) -> Self {
        Self {
            id: r.message_id,
            channel: ChannelName::from(r.channel),
            source: r.source,
            payload: r.payload,
            timestamp: r.timestamp,
            correlation_id: r.correlation_id,
            causation_id: r.causation_id,
            headers: r.headers,
            depth: r.depth,
        }
    }
}

/// Options of an external publish beyond channel and payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Correlation id for the conversation this message starts.
    pub correlation_id: Option<String>,
    /// Headers to attach.
    pub headers: BTreeMap<String, String>,
}
