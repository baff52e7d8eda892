//! The message log behind durable Pub/Sub channels: an append-only log per
//! channel with dense offsets, plus one committed offset per subscriber.

use crate::error::StoreError;
use crate::ids::MessageId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One message as kept in the log of a durable channel.
///
/// Offsets are per channel, dense and start at 1; offset 0 means "before the
/// first message", so a subscriber that committed 0 has handled nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Position in the channel's log (assigned by [`MessageLog::append`]; ignored on input).
    pub offset: u64,
    /// The channel the message was published to.
    pub channel: String,
    /// The message's id.
    pub message_id: MessageId,
    /// The publishing agent, `None` for an external publisher.
    pub source: Option<String>,
    /// The payload.
    pub payload: Value,
    /// Publish time (ms since the epoch).
    pub timestamp: i64,
    /// Correlation id shared by a conversation of messages.
    pub correlation_id: Option<String>,
    /// The message whose handling published this one.
    pub causation_id: Option<MessageId>,
    /// Free-form headers.
    pub headers: BTreeMap<String, String>,
    /// Causation depth (0 for an external publish).
    pub depth: u32,
}

/// An append-only log of messages per channel with per-subscriber cursors.
///
/// `append` returns only once the records are as durable as the store's
/// [`crate::Durability`] promises, so a publisher acknowledged after `append`
/// never loses its message to a crash.
#[async_trait::async_trait]
pub trait MessageLog: Send + Sync + 'static {
    /// Appends `records` to `channel` in order and returns the offset given to
    /// the first one; the others follow densely. Each record's `offset` and
    /// `channel` fields are ignored. An empty batch returns the next offset
    /// and writes nothing.
    async fn append(&self, channel: &str, records: Vec<MessageRecord>) -> Result<u64, StoreError>;
    /// Up to `limit` records of `channel` with an offset of at least `from`, in offset order.
    async fn read_from(
        &self,
        channel: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// The highest offset of `channel` (0 when it has no message).
    async fn last_offset(&self, channel: &str) -> Result<u64, StoreError>;
    /// Records that `subscriber` has handled `channel` up to and including
    /// `offset`. Cursors never move backwards: a lower offset is ignored.
    async fn commit(&self, channel: &str, subscriber: &str, offset: u64) -> Result<(), StoreError>;
    /// The committed offset of `subscriber` on `channel` (`None`: never committed).
    async fn committed(&self, channel: &str, subscriber: &str) -> Result<Option<u64>, StoreError>;
    /// Every channel that has at least one message, sorted by name.
    async fn channels(&self) -> Result<Vec<String>, StoreError>;
    /// The subscribers of `channel` that have committed an offset there,
    /// each with its committed offset, by name. A subscriber that never
    /// committed (it has handled nothing yet) is not known to the log.
    async fn subscribers(&self, channel: &str) -> Result<BTreeMap<String, u64>, StoreError>;
}
