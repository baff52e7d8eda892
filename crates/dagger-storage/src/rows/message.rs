//! The columns of a `messages` row: one record of a durable channel's log.

use crate::error::decode;
use dagger_core::store::MessageRecord;
use dagger_core::{MessageId, StoreError};
use std::collections::BTreeMap;

/// A record's columns as stored (SQLite and Postgres keep the same ones),
/// encoded off the writer thread and decoded outside the row callback so
/// that a bad JSON column becomes a [`StoreError::Decode`] naming it.
pub(crate) struct MessageRow {
    pub(crate) seq: i64,
    pub(crate) message_id: String,
    pub(crate) source: Option<String>,
    pub(crate) payload: String,
    pub(crate) timestamp: i64,
    pub(crate) correlation_id: Option<String>,
    pub(crate) causation_id: Option<String>,
    pub(crate) headers: String,
    pub(crate) depth: i64,
}

/// The columns [`MessageRow`] is read from, in order (both backends).
macro_rules! message_columns {
    () => {
        "seq, message_id, source, payload, published_at, \
         correlation_id, causation_id, headers, depth"
    };
}
pub(crate) use message_columns;

impl MessageRow {
    /// The columns of `r` (its `offset` is ignored: `seq` is assigned on append).
    pub(crate) fn encode(channel: &str, r: MessageRecord) -> Result<Self, StoreError> {
        let what = || format!("message `{}` on channel `{channel}`", r.message_id);
        Ok(Self {
            seq: 0,
            payload: serde_json::to_string(&r.payload).map_err(|e| decode(what(), e))?,
            headers: serde_json::to_string(&r.headers).map_err(|e| decode(what(), e))?,
            message_id: r.message_id.to_string(),
            source: r.source,
            timestamp: r.timestamp,
            correlation_id: r.correlation_id,
            causation_id: r.causation_id.map(|c| c.to_string()),
            depth: i64::from(r.depth),
        })
    }

    /// The record this row of `channel` holds.
    pub(crate) fn decode(self, channel: &str) -> Result<MessageRecord, StoreError> {
        let what = || format!("message {} of channel `{channel}`", self.seq);
        Ok(MessageRecord {
            offset: to_u64(self.seq),
            channel: channel.to_string(),
            message_id: MessageId::from(self.message_id),
            source: self.source,
            payload: serde_json::from_str(&self.payload).map_err(|e| decode(what(), e))?,
            timestamp: self.timestamp,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id.map(MessageId::from),
            headers: serde_json::from_str::<BTreeMap<String, String>>(&self.headers)
                .map_err(|e| decode(what(), e))?,
            depth: u32::try_from(self.depth).unwrap_or(u32::MAX),
        })
    }
}

/// A stored offset (a negative one, never written, reads as 0).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
