//! Durable channels on SQLite survive SIGKILL: a child process (this test
//! binary re-executed in child mode) publishes to a durable channel, printing
//! each acknowledged id, while its agent handles a few messages and then
//! hangs. The parent kills it mid-stream, reopens the database and checks
//! that every acknowledged message is in the log, that a new executor
//! delivers exactly what was not committed, and that replay works.

mod common;

use common::{Behaviour, TestAgent};
use dagger_core::BoxError;
use dagger_core::store::MessageLog;
use dagger_pubsub::{CancellationToken, Message, PubSubContext, PubSubExecutor, RunOutcome};
use dagger_storage::SqliteStore;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use tokio::sync::Semaphore;

const CHILD_DB: &str = "DAGGER_PUBSUB_CRASH_DB";
const CHANNEL: &str = "jobs.new";
const HANDLED_BEFORE_HANG: usize = 40;

/// Handles one message per permit, then waits forever.
struct Gate(Arc<Semaphore>);

#[async_trait::async_trait]
impl Behaviour for Gate {
    async fn on(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        self.0.acquire().await?.forget();
        Ok(())
    }
}

fn executor(store: &SqliteStore) -> PubSubExecutor {
    PubSubExecutor::builder()
        .durable("jobs.>")
        .queue_capacity(64)
        .message_log(Arc::new(store.clone()))
        .build()
        .expect("valid configuration")
}

#[tokio::test]
#[ignore = "child process of `killed_publisher_loses_no_acknowledged_message`"]
async fn crash_child() {
    let path = std::env::var(CHILD_DB).expect("run by the parent test");
    let store = SqliteStore::open(&format!("sqlite:{path}")).await.unwrap();
    let ex = Arc::new(executor(&store));
    let gate = Arc::new(Semaphore::new(HANDLED_BEFORE_HANG));
    TestAgent::new("worker", &["jobs.*"], &[], Gate(gate)).register(&ex);
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let id = ex.publish(CHANNEL, json!({"n": i})).await.unwrap();
        writeln!(out, "ACK {id}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_publisher_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pubsub.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest prints `test crash_child ... ` without a newline before
        // the child's first line, so look for the marker anywhere.
        if let Some((_, id)) = line.split_once("ACK ") {
            acked.push(id.to_string());
            // The child can get 40 (handled) + 1 (in hand) + 64 (queued)
            // acknowledged before it blocks: kill it mid-stream, before that.
            if acked.len() == 100 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = SqliteStore::open(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let last = store.last_offset(CHANNEL).await.unwrap();
    let logged = store.read_from(CHANNEL, 1, usize::MAX).await.unwrap();
    assert_eq!(logged.len() as u64, last);
    let logged_ids: Vec<String> = logged.iter().map(|r| r.message_id.to_string()).collect();
    // Every acknowledged publish is in the log, in publish order.
    assert!(logged_ids.len() >= acked.len());
    assert_eq!(&logged_ids[..acked.len()], &acked[..]);
    let committed = store
        .committed(CHANNEL, "worker")
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(
        committed <= HANDLED_BEFORE_HANG as u64,
        "committed {committed} but only {HANDLED_BEFORE_HANG} were handled"
    );

    // Restart: the worker gets exactly what it had not committed, in order.
    let ex = executor(&store);
    let seen = TestAgent::recorder("worker", &["jobs.*"]).register(&ex);
    assert_eq!(
        ex.run(CancellationToken::new()).await.unwrap(),
        RunOutcome::Quiescent
    );
    let redelivered: Vec<String> = seen.lock().iter().map(|m| m.id.to_string()).collect();
    assert_eq!(redelivered, logged_ids[committed as usize..]);
    assert_eq!(
        store.committed(CHANNEL, "worker").await.unwrap(),
        Some(last)
    );

    // Replay from offset 10 hands back offsets 10..=last.
    let n = ex.replay(CHANNEL, "worker", 10).await.unwrap();
    assert_eq!(n, last - 9);
    ex.run(CancellationToken::new()).await.unwrap();
    let replayed: Vec<String> = seen
        .lock()
        .iter()
        .skip(redelivered.len())
        .map(|m| m.id.to_string())
        .collect();
    assert_eq!(replayed, logged_ids[9..]);
    ex.shutdown().await.unwrap();
}
