//! The message log in memory.

use super::MemoryStore;
use crate::error::StoreError;
use crate::store::{MessageLog, MessageRecord};
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
pub(super) struct MessageTables {
    /// Channel -> records in offset order, dense; a prune removes a prefix
    /// (never the last record), so the first record's offset says where
    /// the log starts.
    logs: BTreeMap<String, Vec<MessageRecord>>,
    /// (channel, subscriber) -> committed offset.
    cursors: HashMap<(String, String), u64>,
}

#[async_trait::async_trait]
impl MessageLog for MemoryStore {
    async fn append(&self, channel: &str, records: Vec<MessageRecord>) -> Result<u64, StoreError> {
        let mut t = self.messages.lock();
        let log = t.logs.entry(channel.to_string()).or_default();
        let first = log.last().map_or(0, |r| r.offset) + 1;
        for (i, mut r) in records.into_iter().enumerate() {
            r.offset = first + i as u64;
            r.channel = channel.to_string();
            log.push(r);
        }
        if log.is_empty() {
            t.logs.remove(channel);
        }
        Ok(first)
    }

    async fn read_from(
        &self,
        channel: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let t = self.messages.lock();
        let Some(log) = t.logs.get(channel) else {
            return Ok(Vec::new());
        };
        let base = log.first().map_or(1, |r| r.offset);
        let start = usize::try_from(from.max(base) - base).unwrap_or(usize::MAX);
        Ok(log.iter().skip(start).take(limit).cloned().collect())
    }

    async fn last_offset(&self, channel: &str) -> Result<u64, StoreError> {
        Ok(self
            .messages
            .lock()
            .logs
            .get(channel)
            .and_then(|l| l.last())
            .map_or(0, |r| r.offset))
    }

    async fn commit(&self, channel: &str, subscriber: &str, offset: u64) -> Result<(), StoreError> {
        let mut t = self.messages.lock();
        let cursor = t
            .cursors
            .entry((channel.to_string(), subscriber.to_string()))
            .or_insert(0);
        *cursor = (*cursor).max(offset);
        Ok(())
    }

    async fn committed(&self, channel: &str, subscriber: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .messages
            .lock()
            .cursors
            .get(&(channel.to_string(), subscriber.to_string()))
            .copied())
    }

    async fn channels(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.messages.lock().logs.keys().cloned().collect())
    }

    async fn subscribers(&self, channel: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(self
            .messages
            .lock()
            .cursors
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|((_, subscriber), offset)| (subscriber.clone(), *offset))
            .collect())
    }
}

/// Removes the messages of each channel published before `cutoff_ms` that
/// every subscriber committed, keeping the last (a prefix of each log);
/// returns how many (with `dry_run`, would be).
pub(super) fn prune(t: &mut MessageTables, cutoff_ms: i64, dry_run: bool) -> u64 {
    let mut removed = 0;
    for (channel, log) in t.logs.iter_mut() {
        let Some(passed) = t
            .cursors
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|(_, offset)| *offset)
            .min()
        else {
            continue;
        };
        let last = log.last().map_or(0, |r| r.offset);
        let n = log
            .iter()
            .take_while(|r| r.offset < last && r.offset <= passed && r.timestamp < cutoff_ms)
            .count();
        if !dry_run {
            log.drain(..n);
        }
        removed += n as u64;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;
    use serde_json::json;

    fn record(n: i64) -> MessageRecord {
        MessageRecord {
            offset: 0,
            channel: String::new(),
            message_id: MessageId::from(format!("m{n}")),
            source: None,
            payload: json!(n),
            timestamp: n,
            correlation_id: None,
            causation_id: None,
            headers: BTreeMap::new(),
            depth: 0,
        }
    }

    #[tokio::test]
    async fn offsets_are_dense_per_channel_and_reads_start_at_an_offset() {
        let s = MemoryStore::new();
        assert_eq!(s.append("a", vec![record(1), record(2)]).await.unwrap(), 1);
        assert_eq!(s.append("b", vec![record(9)]).await.unwrap(), 1);
        assert_eq!(s.append("a", vec![record(3)]).await.unwrap(), 3);
        assert_eq!(s.last_offset("a").await.unwrap(), 3);
        let got = s.read_from("a", 2, 10).await.unwrap();
        let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [2, 3]);
        assert_eq!(got[0].payload, json!(2));
        assert_eq!(got[0].channel, "a");
        assert_eq!(s.read_from("a", 1, 1).await.unwrap().len(), 1);
        assert_eq!(s.channels().await.unwrap(), ["a", "b"]);
        assert_eq!(s.append("c", Vec::new()).await.unwrap(), 1);
        assert_eq!(s.channels().await.unwrap(), ["a", "b"]);
    }

    #[tokio::test]
    async fn cursors_never_move_backwards() {
        let s = MemoryStore::new();
        assert_eq!(s.committed("a", "x").await.unwrap(), None);
        s.commit("a", "x", 5).await.unwrap();
        s.commit("a", "x", 3).await.unwrap();
        assert_eq!(s.committed("a", "x").await.unwrap(), Some(5));
        assert_eq!(s.committed("a", "y").await.unwrap(), None);
        s.commit("b", "z", 1).await.unwrap();
        let on_a = s.subscribers("a").await.unwrap();
        assert_eq!(on_a.into_iter().collect::<Vec<_>>(), [("x".to_string(), 5)]);
        assert!(s.subscribers("none").await.unwrap().is_empty());
    }
}
