//! [`MessageLog`] over Postgres: `message_channels` (each channel's last
//! offset), `messages` (the log, offset = `seq`, dense from 1) and
//! `message_offsets` (each subscriber's committed offset).
//!
//! An append is one statement: it bumps the channel's counter row and
//! inserts the batch under that row's lock, so appenders of a channel, from
//! any number of processes, get disjoint dense ranges and commit in offset
//! order. A reader therefore never sees offset `n + 1` before `n`, and a
//! subscriber replaying from its committed offset cannot skip a message.

use super::PostgresStore;
use super::conn::{PgFail, wide};
use crate::rows::message::{MessageRow, message_columns, to_u64};
use dagger_core::StoreError;
use dagger_core::store::{MessageLog, MessageRecord};
use std::collections::BTreeMap;

/// Bumps the counter by the batch size (`$2`), inserts the batch (the
/// arrays `$3..$10`, one element per record) at the offsets after the old
/// value, and returns the first offset. Data-modifying `WITH` parts always
/// run to completion, so `inserted` runs although nothing reads it.
const APPEND: &str = "WITH bumped AS ( \
       INSERT INTO message_channels (channel, last_offset) VALUES ($1, $2::bigint) \
       ON CONFLICT (channel) DO UPDATE \
         SET last_offset = message_channels.last_offset + excluded.last_offset \
       RETURNING last_offset - $2::bigint AS base \
     ), inserted AS ( \
       INSERT INTO messages (channel, seq, message_id, source, payload, published_at, \
         correlation_id, causation_id, headers, depth) \
       SELECT $1, bumped.base + r.n, r.message_id, r.source, r.payload, r.published_at, \
         r.correlation_id, r.causation_id, r.headers, r.depth \
       FROM bumped, unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], \
         $8::text[], $9::text[], $10::bigint[]) WITH ORDINALITY \
         AS r(message_id, source, payload, published_at, correlation_id, causation_id, \
              headers, depth, n) \
     ) \
     SELECT base + 1 FROM bumped";

const LAST_OFFSET: &str = "SELECT last_offset FROM message_channels WHERE channel = $1";

const READ_FROM: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE channel = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
);

/// The batch as one array per column, for [`APPEND`].
#[derive(Default)]
struct Columns {
    message_id: Vec<String>,
    source: Vec<Option<String>>,
    payload: Vec<String>,
    timestamp: Vec<i64>,
    correlation_id: Vec<Option<String>>,
    causation_id: Vec<Option<String>>,
    headers: Vec<String>,
    depth: Vec<i64>,
}

impl Columns {
    fn of(rows: Vec<MessageRow>) -> Self {
        let mut c = Self::default();
        for r in rows {
            c.message_id.push(r.message_id);
            c.source.push(r.source);
            c.payload.push(r.payload);
            c.timestamp.push(r.timestamp);
            c.correlation_id.push(r.correlation_id);
            c.causation_id.push(r.causation_id);
            c.headers.push(r.headers);
            c.depth.push(r.depth);
        }
        c
    }

    fn len(&self) -> usize {
        self.message_id.len()
    }
}

fn read_row(row: &postgres::Row) -> Result<MessageRow, postgres::Error> {
    Ok(MessageRow {
        seq: row.try_get(0)?,
        message_id: row.try_get(1)?,
        source: row.try_get(2)?,
        payload: row.try_get(3)?,
        timestamp: row.try_get(4)?,
        correlation_id: row.try_get(5)?,
        causation_id: row.try_get(6)?,
        headers: row.try_get(7)?,
        depth: row.try_get(8)?,
    })
}

#[async_trait::async_trait]
impl MessageLog for PostgresStore {
    async fn append(&self, channel: &str, records: Vec<MessageRecord>) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(self.last_offset(channel).await? + 1);
        }
        let rows = records
            .into_iter()
            .map(|r| MessageRow::encode(channel, r))
            .collect::<Result<Vec<_>, _>>()?;
        let columns = Columns::of(rows);
        let count = wide(columns.len());
        let channel = channel.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(&mut c.client, APPEND)?;
            let first: i64 = c
                .client
                .query_one(
                    &stmt,
                    &[
                        &channel,
                        &count,
                        &columns.message_id,
                        &columns.source,
                        &columns.payload,
                        &columns.timestamp,
                        &columns.correlation_id,
                        &columns.causation_id,
                        &columns.headers,
                        &columns.depth,
                    ],
                )?
                .try_get(0)?;
            Ok(to_u64(first))
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
        let (from, limit) = (wide(from), wide(limit));
        self.with_conn(move |c| {
            let stmt = c.stmts.get(&mut c.client, READ_FROM)?;
            c.client
                .query(&stmt, &[&channel, &from, &limit])?
                .iter()
                .map(|row| Ok(read_row(row)?.decode(&channel)?))
                .collect()
        })
        .await
    }

    async fn last_offset(&self, channel: &str) -> Result<u64, StoreError> {
        let channel = channel.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(&mut c.client, LAST_OFFSET)?;
            let last = c.client.query_opt(&stmt, &[&channel])?;
            Ok(last
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()?
                .map_or(0, to_u64))
        })
        .await
    }

    async fn commit(&self, channel: &str, subscriber: &str, offset: u64) -> Result<(), StoreError> {
        let channel = channel.to_string();
        let subscriber = subscriber.to_string();
        let offset = wide(offset);
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "INSERT INTO message_offsets (channel, subscriber, committed, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (channel, subscriber) DO UPDATE SET \
                   committed = GREATEST(message_offsets.committed, excluded.committed), \
                   updated_at = excluded.updated_at",
            )?;
            c.client.execute(
                &stmt,
                &[&channel, &subscriber, &offset, &dagger_core::now_millis()],
            )?;
            Ok(())
        })
        .await
    }

    async fn committed(&self, channel: &str, subscriber: &str) -> Result<Option<u64>, StoreError> {
        let channel = channel.to_string();
        let subscriber = subscriber.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT committed FROM message_offsets WHERE channel = $1 AND subscriber = $2",
            )?;
            let found = c.client.query_opt(&stmt, &[&channel, &subscriber])?;
            Ok(found
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()?
                .map(to_u64))
        })
        .await
    }

    async fn channels(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|c| {
            // Byte order (`COLLATE "C"`), as the other backends sort, whatever
            // the database's collation.
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT channel FROM message_channels ORDER BY channel COLLATE \"C\"",
            )?;
            c.client
                .query(&stmt, &[])?
                .iter()
                .map(|row| Ok(row.try_get(0)?))
                .collect()
        })
        .await
    }

    async fn subscribers(&self, channel: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let channel = channel.to_string();
        self.with_conn(move |c| {
            let stmt = c.stmts.get(
                &mut c.client,
                "SELECT subscriber, committed FROM message_offsets WHERE channel = $1",
            )?;
            c.client
                .query(&stmt, &[&channel])?
                .iter()
                .map(|row| Ok((row.try_get(0)?, to_u64(row.try_get(1)?))))
                .collect::<Result<BTreeMap<_, _>, PgFail>>()
        })
        .await
    }
}
