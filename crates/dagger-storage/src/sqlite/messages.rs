//! [`MessageLog`] over SQLite: the `messages` table holds each durable
//! channel's log (offset = `seq`, dense from 1), `message_offsets` each
//! subscriber's committed offset.
//!
//! An append waits for its group commit whatever the durability mode, since
//! the publisher is acknowledged after it; offset commits follow the mode
//! (queued in `Batched`), because losing one only means a redelivery.

use crate::rows::message::{MessageRow, message_columns, to_u64};
use crate::rows::wide;
use crate::sqlite::SqliteStore;
use dagger_core::StoreError;
use dagger_core::store::{MessageLog, MessageRecord};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

impl MessageRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            message_id: r.get(1)?,
            source: r.get(2)?,
            payload: r.get(3)?,
            timestamp: r.get(4)?,
            correlation_id: r.get(5)?,
            causation_id: r.get(6)?,
            headers: r.get(7)?,
            depth: r.get(8)?,
        })
    }
}

#[async_trait::async_trait]
impl MessageLog for SqliteStore {
    async fn append(&self, channel: &str, records: Vec<MessageRecord>) -> Result<u64, StoreError> {
        let rows = records
            .into_iter()
            .map(|r| MessageRow::encode(channel, r))
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
        let key = channel.to_string();
        let store = self.clone();
        let rows = self
            .read(move |c| {
                c.prepare_cached(concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM messages WHERE channel = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3"
                ))
                .and_then(|mut s| {
                    s.query_map(
                        params![key, wide(from), wide(limit as u64)],
                        MessageRow::read,
                    )?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| store.map_err(e))
            })
            .await?;
        rows.into_iter().map(|r| r.decode(channel)).collect()
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
                    wide(offset),
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

    async fn subscribers(&self, channel: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let channel = channel.to_string();
        let store = self.clone();
        self.read(move |c| {
            c.prepare_cached("SELECT subscriber, committed FROM message_offsets WHERE channel = ?1")
                .and_then(|mut s| {
                    s.query_map(params![channel], |r| {
                        Ok((r.get::<_, String>(0)?, to_u64(r.get::<_, i64>(1)?)))
                    })?
                    .collect::<Result<BTreeMap<_, _>, _>>()
                })
                .map_err(|e| store.map_err(e))
        })
        .await
    }
}
