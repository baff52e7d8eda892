//! [`MessageLog`] over SQLite: the `messages` table holds each durable
//! channel's log (offset = `seq`, dense from 1), `message_offsets` each
//! subscriber's committed offset.
//!
//! An append waits for its group commit whatever the durability mode, since
//! the publisher is acknowledged after it; offset commits follow the mode
//! (queued in `Batched`), because losing one only means a redelivery.

use crate::error::decode;
use crate::sqlite::SqliteStore;
use dagger_core::store::{MessageLog, MessageRecord};
use dagger_core::{MessageId, StoreError};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

/// A record's columns, encoded off the writer thread.
struct Row {
    message_id: String,
    source: Option<String>,
    payload: String,
    timestamp: i64,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    headers: String,
    depth: i64,
}

fn encode(channel: &str, r: MessageRecord) -> Result<Row, StoreError> {
    let what = || format!("message `{}` on channel `{channel}`", r.message_id);
    Ok(Row {
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

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait::async_trait]
impl MessageLog for SqliteStore {
    async fn append(&self, channel: &str, records: Vec<MessageRecord>) -> Result<u64, StoreError> {
        let rows = records
            .into_iter()
            .map(|r| encode(channel, r))
            .collect::<Result<Vec<_>, _>>()?;
        let channel = channel.to_string();
        let store = self.clone();
        self.write(move |tx| {
            let sql = |e| store.map_err(e);
            let last: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE channel = ?1")
                .and_then(|mut s| s.query_row(params![channel], |r| r.get(0)))
                .map_err(sql)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO messages (channel, seq, message_id, source, payload, published_at, \
                     correlation_id, causation_id, headers, depth) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(sql)?;
            for (i, r) in rows.iter().enumerate() {
                insert
                    .execute(params![
                        channel,
                        last + 1 + i as i64,
                        r.message_id,
                        r.source,
                        r.payload,
                        r.timestamp,
                        r.correlation_id,
                        r.causation_id,
                        r.headers,
                        r.depth
                    ])
                    .map_err(sql)?;
            }
            Ok(to_u64(last + 1))
        })
        .await
    }

    async fn read_from(
        &self,
        channel: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let channel = channel.to_string();
        let store = self.clone();
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT seq, message_id, source, payload, published_at, correlation_id, \
                     causation_id, headers, depth FROM messages \
                     WHERE channel = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(|e| store.map_err(e))?;
            let rows = s
                .query_map(params![channel, to_i64(from), to_i64(limit as u64)], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(8)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| store.map_err(e))?;
            rows.into_iter()
                .map(
                    |(seq, id, source, payload, ts, corr, cause, headers, depth)| {
                        let what = || format!("message {seq} of channel `{channel}`");
                        Ok(MessageRecord {
                            offset: to_u64(seq),
                            channel: channel.clone(),
                            message_id: MessageId::from(id),
                            source,
                            payload: serde_json::from_str(&payload)
                                .map_err(|e| decode(what(), e))?,
                            timestamp: ts,
                            correlation_id: corr,
                            causation_id: cause.map(MessageId::from),
                            headers: serde_json::from_str::<BTreeMap<String, String>>(&headers)
                                .map_err(|e| decode(what(), e))?,
                            depth: u32::try_from(depth).unwrap_or(u32::MAX),
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn last_offset(&self, channel: &str) -> Result<u64, StoreError> {
        let channel = channel.to_string();
        let store = self.clone();
        self.read(move |c| {
            c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE channel = ?1")
                .and_then(|mut s| s.query_row(params![channel], |r| r.get::<_, i64>(0)))
                .map(to_u64)
                .map_err(|e| store.map_err(e))
        })
        .await
    }

    async fn commit(&self, channel: &str, subscriber: &str, offset: u64) -> Result<(), StoreError> {
        let channel = channel.to_string();
        let subscriber = subscriber.to_string();
        let store = self.clone();
        self.write_durable(move |tx| {
            tx.prepare_cached(
                "INSERT INTO message_offsets (channel, subscriber, committed, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (channel, subscriber) DO UPDATE SET \
                 committed = MAX(committed, excluded.committed), updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    channel,
                    subscriber,
                    to_i64(offset),
                    dagger_core::now_millis()
                ])
            })
            .map(drop)
            .map_err(|e| store.map_err(e))
        })
        .await
    }

    async fn committed(&self, channel: &str, subscriber: &str) -> Result<Option<u64>, StoreError> {
        let channel = channel.to_string();
        let subscriber = subscriber.to_string();
        let store = self.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT committed FROM message_offsets WHERE channel = ?1 AND subscriber = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![channel, subscriber], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map(|o| o.map(to_u64))
            .map_err(|e| store.map_err(e))
        })
        .await
    }

    async fn channels(&self) -> Result<Vec<String>, StoreError> {
        let store = self.clone();
        self.read(move |c| {
            c.prepare_cached("SELECT DISTINCT channel FROM messages ORDER BY channel")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| store.map_err(e))
        })
        .await
    }
}
