//! One behavioural suite for every `MessageLog` backend (in-memory, SQLite,
//! Postgres): dense offsets, reads from an offset, monotonic cursors, the
//! channel and subscriber listings, and concurrent appenders.

use dagger_core::MessageId;
use dagger_core::store::{MessageLog, MessageRecord};
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// A record with every optional field set for even `n`.
pub(crate) fn record(n: i64) -> MessageRecord {
    let mut headers = BTreeMap::new();
    headers.insert("n".to_string(), n.to_string());
    MessageRecord {
        offset: 0,
        channel: String::new(),
        message_id: MessageId::from(format!("m{n}")),
        source: (n % 2 == 0).then(|| "agent".to_string()),
        payload: json!({"n": n, "text": "é\"quoted\"\n"}),
        timestamp: 1_000 + n,
        correlation_id: (n % 2 == 0).then(|| format!("c{n}")),
        causation_id: (n > 0).then(|| MessageId::from(format!("m{}", n - 1))),
        headers,
        depth: n as u32,
    }
}

/// Runs every check; `p` keeps channel names apart when a backend is
/// shared. `settle` waits for queued cursor commits (a `Batched` SQLite
/// store's flush; nothing elsewhere).
pub(crate) async fn run_message_log_suite<F, Fut>(log: &dyn MessageLog, p: &str, settle: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    offsets_are_dense_per_channel(log, p).await;
    records_round_trip(log, p).await;
    channels_are_listed_in_byte_order(log, p).await;
    cursors_never_move_backwards(log, p, &settle).await;
}

async fn offsets_are_dense_per_channel(log: &dyn MessageLog, p: &str) {
    let (a, b) = (format!("{p}.dense.a"), format!("{p}.dense.b"));
    assert_eq!(log.last_offset(&a).await.unwrap(), 0);
    assert_eq!(
        log.append(&a, Vec::new()).await.unwrap(),
        1,
        "empty batch on a new channel: the first offset"
    );
    assert!(
        !log.channels().await.unwrap().contains(&a),
        "an empty batch creates no channel"
    );
    assert_eq!(log.append(&a, vec![record(0), record(1)]).await.unwrap(), 1);
    assert_eq!(log.append(&b, vec![record(5)]).await.unwrap(), 1);
    assert_eq!(log.append(&a, vec![record(2)]).await.unwrap(), 3);
    assert_eq!(log.append(&a, Vec::new()).await.unwrap(), 4);
    assert_eq!(log.last_offset(&a).await.unwrap(), 3);
    assert_eq!(log.last_offset(&b).await.unwrap(), 1);

    let offsets = |records: Vec<MessageRecord>| -> Vec<u64> {
        records.into_iter().map(|r| r.offset).collect()
    };
    assert_eq!(offsets(log.read_from(&a, 1, 10).await.unwrap()), [1, 2, 3]);
    assert_eq!(
        offsets(log.read_from(&a, 0, 10).await.unwrap()),
        [1, 2, 3],
        "offset 0 is before the first message"
    );
    assert_eq!(offsets(log.read_from(&a, 2, 1).await.unwrap()), [2]);
    assert!(log.read_from(&a, 4, 10).await.unwrap().is_empty());
    assert!(log.read_from(&a, 1, 0).await.unwrap().is_empty());
    assert!(
        log.read_from(&format!("{p}.dense.none"), 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn records_round_trip(log: &dyn MessageLog, p: &str) {
    let channel = format!("{p}.round-trip");
    let mut sent: Vec<MessageRecord> = (0..4).map(record).collect();
    // The offset and channel given are ignored.
    sent[1].offset = 77;
    sent[1].channel = "elsewhere".into();
    sent[2].headers.clear();
    sent[3].payload = json!(null);
    assert_eq!(log.append(&channel, sent.clone()).await.unwrap(), 1);
    let got = log.read_from(&channel, 1, 10).await.unwrap();
    let expected: Vec<MessageRecord> = sent
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.offset = i as u64 + 1;
            r.channel = channel.clone();
            r
        })
        .collect();
    assert_eq!(got, expected, "every field round-trips");
}

async fn channels_are_listed_in_byte_order(log: &dyn MessageLog, p: &str) {
    let names = [
        format!("{p}.order.Zeta"),
        format!("{p}.order.alpha"),
        format!("{p}.order.Äpfel"),
        format!("{p}.order._x"),
    ];
    for name in &names {
        log.append(name, vec![record(1)]).await.unwrap();
    }
    let listed: Vec<String> = log
        .channels()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.starts_with(&format!("{p}.order.")))
        .collect();
    let mut bytewise = names.to_vec();
    bytewise.sort();
    assert_eq!(listed, bytewise, "sorted by bytes, not by a locale");
}

async fn cursors_never_move_backwards<F, Fut>(log: &dyn MessageLog, p: &str, settle: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let (a, b) = (format!("{p}.cursor.a"), format!("{p}.cursor.b"));
    assert_eq!(log.committed(&a, "x").await.unwrap(), None);
    assert!(log.subscribers(&a).await.unwrap().is_empty());
    log.commit(&a, "x", 5).await.unwrap();
    log.commit(&a, "x", 3).await.unwrap();
    log.commit(&a, "y", 0).await.unwrap();
    log.commit(&b, "z", 2).await.unwrap();
    settle().await;
    assert_eq!(log.committed(&a, "x").await.unwrap(), Some(5));
    assert_eq!(
        log.committed(&a, "y").await.unwrap(),
        Some(0),
        "committed 0: known, handled nothing"
    );
    assert_eq!(log.committed(&a, "z").await.unwrap(), None);
    assert_eq!(
        log.subscribers(&a).await.unwrap(),
        BTreeMap::from([("x".to_string(), 5), ("y".to_string(), 0)])
    );
    log.commit(&a, "x", 9).await.unwrap();
    settle().await;
    assert_eq!(log.committed(&a, "x").await.unwrap(), Some(9));
    assert_eq!(
        log.subscribers(&b).await.unwrap(),
        BTreeMap::from([("z".to_string(), 2)])
    );
}

/// Appenders: how many tasks, appends each, records per append.
const APPENDERS: u64 = 4;
const APPENDS: u64 = 8;
const BATCH: u64 = 3;

/// Appenders on `writers` (taken in turn: on Postgres and SQLite, separate
/// stores stand for separate processes) append to one channel at once while
/// a reader follows the log from offset 1. Every append gets its own dense
/// range, the log holds each batch in order at the offsets returned, and
/// the reader, asking from the next offset it expects, never finds a gap:
/// what it has read is always a prefix of the final log.
pub(crate) async fn concurrent_appends_are_dense_and_replayable(
    writers: &[Arc<dyn MessageLog>],
    reader: Arc<dyn MessageLog>,
    p: &str,
) {
    let channel = format!("{p}.concurrent");
    let total = APPENDERS * APPENDS * BATCH;
    let follower = {
        let (reader, channel) = (reader.clone(), channel.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut next = 1;
            let mut idle_reads = 0u32;
            while next <= total {
                let got = reader.read_from(&channel, next, 7).await.unwrap();
                for r in got {
                    assert_eq!(r.offset, next, "the reader never skips an offset");
                    next += 1;
                    seen.push(r.message_id);
                }
                idle_reads += 1;
                assert!(idle_reads < 200_000, "the reader stalled at offset {next}");
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut tasks = Vec::new();
    for t in 0..APPENDERS {
        let log = writers[t as usize % writers.len()].clone();
        let channel = channel.clone();
        tasks.push(tokio::spawn(async move {
            let mut firsts = Vec::new();
            for a in 0..APPENDS {
                let batch = (0..BATCH)
                    .map(|i| {
                        let mut r = record(1);
                        r.message_id = MessageId::from(format!("t{t}-a{a}-i{i}"));
                        r
                    })
                    .collect();
                firsts.push((a, log.append(&channel, batch).await.unwrap()));
            }
            (t, firsts)
        }));
    }
    let mut expected = BTreeMap::new();
    for task in tasks {
        let (t, firsts) = task.await.unwrap();
        for (a, first) in firsts {
            for i in 0..BATCH {
                let taken = expected.insert(first + i, format!("t{t}-a{a}-i{i}"));
                assert_eq!(taken, None, "offset {} was handed out twice", first + i);
            }
        }
    }
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>(),
        "the ranges handed out cover 1..={total} without a gap"
    );
    assert_eq!(reader.last_offset(&channel).await.unwrap(), total);
    let log: Vec<(u64, String)> = reader
        .read_from(&channel, 1, total as usize + 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.offset, r.message_id.to_string()))
        .collect();
    assert_eq!(log, expected.clone().into_iter().collect::<Vec<_>>());
    let seen = follower.await.unwrap();
    assert_eq!(
        seen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        expected.into_values().collect::<Vec<_>>(),
        "the follower read the log in offset order"
    );
}
