//! Durable channels over a MessageLog: logged before the publish returns,
//! redelivered after a restart, replayable from an offset. Each check runs
//! on the in-memory log, and with `--features postgres-tests` on the
//! Postgres log too (a restart there opens a new store, as a new process
//! would). The SQLite log's SIGKILL test is `durable_crash.rs`.

mod common;

use common::{Behaviour, TestAgent, payloads};
use dagger_core::BoxError;
use dagger_core::store::{MemoryStore, MessageLog};
use dagger_pubsub::{
    CancellationToken, Message, PubSubContext, PubSubError, PubSubExecutor, RunOutcome,
};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;

struct Gate(Arc<Semaphore>);

#[async_trait::async_trait]
impl Behaviour for Gate {
    async fn on(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        self.0.acquire().await?.forget();
        Ok(())
    }
}

fn executor(log: &Arc<dyn MessageLog>) -> PubSubExecutor {
    PubSubExecutor::builder()
        .durable("orders.>")
        .message_log(log.clone())
        .build()
        .expect("valid durable configuration")
}

fn memory_log() -> Arc<dyn MessageLog> {
    Arc::new(MemoryStore::new())
}

#[tokio::test]
async fn a_publish_returns_only_after_the_message_is_logged() {
    publish_returns_after_logging(memory_log()).await;
}

#[tokio::test]
async fn after_a_restart_undelivered_messages_are_delivered_and_replay_works() {
    let log = memory_log();
    restart_redelivers_and_replays(log.clone(), log).await;
}

#[tokio::test]
async fn batches_are_logged_in_one_append_with_dense_offsets() {
    batches_get_dense_offsets(memory_log()).await;
}

async fn publish_returns_after_logging(log: Arc<dyn MessageLog>) {
    let ex = executor(&log);
    let gate = Arc::new(Semaphore::new(0));
    TestAgent::new("worker", &["orders.>", "plain"], &[], Gate(gate.clone())).register(&ex);
    let id = ex.publish("orders.new", json!({"n": 1})).await.unwrap();
    // The handler has not run (the gate is shut), yet the message is in the log.
    let logged = log.read_from("orders.new", 1, 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].message_id, id);
    assert_eq!(logged[0].payload, json!({"n": 1}));
    assert_eq!(log.committed("orders.new", "worker").await.unwrap(), None);
    ex.publish("plain", json!(2)).await.unwrap();
    assert_eq!(
        log.channels().await.unwrap(),
        ["orders.new"],
        "only durable channels are logged"
    );
    gate.add_permits(10);
    ex.run(CancellationToken::new()).await.unwrap();
    assert_eq!(
        log.committed("orders.new", "worker").await.unwrap(),
        Some(1)
    );
    assert!(ex.metrics().channels["orders.new"].durable);
}

/// Publishes on `log`, stops mid-stream, then starts again on `restarted`
/// (the same log, reopened).
async fn restart_redelivers_and_replays(log: Arc<dyn MessageLog>, restarted: Arc<dyn MessageLog>) {
    let mut ids = Vec::new();
    {
        let ex = executor(&log);
        let gate = Arc::new(Semaphore::new(3));
        let seen = TestAgent::new("worker", &["orders.*"], &[], Gate(gate)).register(&ex);
        for i in 0..3 {
            ids.push(ex.publish("orders.new", json!(i)).await.unwrap());
        }
        assert_eq!(
            ex.run(CancellationToken::new()).await.unwrap(),
            RunOutcome::Quiescent
        );
        assert_eq!(payloads(&seen).len(), 3);
        // Two more are accepted but the agent never gets to handle them.
        for i in 3..5 {
            ids.push(ex.publish("orders.new", json!(i)).await.unwrap());
        }
        assert_eq!(
            log.committed("orders.new", "worker").await.unwrap(),
            Some(3)
        );
        // Dropped without shutdown: the process "dies" with work queued.
    }
    let log = restarted;
    let ex = executor(&log);
    let seen = TestAgent::recorder("worker", &["orders.*"]).register(&ex);
    let fresh = TestAgent::recorder("auditor", &["orders.new"]).register(&ex);
    assert_eq!(
        ex.run(CancellationToken::new()).await.unwrap(),
        RunOutcome::Quiescent
    );
    {
        let seen = seen.lock();
        let got: Vec<_> = seen
            .iter()
            .map(|m| (m.id.clone(), m.payload.clone()))
            .collect();
        assert_eq!(
            got,
            [(ids[3].clone(), json!(3)), (ids[4].clone(), json!(4))]
        );
    }
    // A subscriber that never committed gets the whole log.
    assert_eq!(
        payloads(&fresh),
        (0..5).map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert_eq!(
        log.committed("orders.new", "worker").await.unwrap(),
        Some(5)
    );

    // Replay from offset 4 re-delivers offsets 4 and 5, in order.
    assert_eq!(ex.replay("orders.new", "worker", 4).await.unwrap(), 2);
    ex.run(CancellationToken::new()).await.unwrap();
    let tail: Vec<_> = payloads(&seen).into_iter().skip(2).collect();
    assert_eq!(tail, [json!(3), json!(4)]);
    assert_eq!(
        log.committed("orders.new", "worker").await.unwrap(),
        Some(5),
        "replay never moves a cursor back"
    );

    let err = ex.replay("plain", "worker", 1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "channel `plain` is not durable: there is no log to replay"
    );
    let err = ex.replay("orders.new", "ghost", 1).await.unwrap_err();
    assert!(matches!(err, PubSubError::UnknownAgent { ref agent } if agent == "ghost"));
}

async fn batches_get_dense_offsets(log: Arc<dyn MessageLog>) {
    let ex = executor(&log);
    let seen = TestAgent::recorder("worker", &["orders.>"]).register(&ex);
    let ids = ex
        .publish_batch("orders.bulk", (0..10).map(|i| json!(i)).collect())
        .await
        .unwrap();
    assert_eq!(ids.len(), 10);
    ex.run(CancellationToken::new()).await.unwrap();
    let logged = log.read_from("orders.bulk", 1, 100).await.unwrap();
    assert_eq!(
        logged.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        payloads(&seen),
        (0..10).map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert_eq!(
        log.committed("orders.bulk", "worker").await.unwrap(),
        Some(10)
    );
}

#[cfg(feature = "postgres-tests")]
mod postgres {
    use super::*;
    use dagger_storage::{PostgresOptions, PostgresStore};

    /// A store on `schema` of the test server (created if missing); `None`
    /// when the server is unreachable and `DAGGER_TEST_SKIP_SERVERS=1`.
    async fn open(schema: &str) -> Option<PostgresStore> {
        let url = std::env::var("DAGGER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let options = PostgresOptions {
            schema: Some(schema.to_string()),
            ..PostgresOptions::default()
        };
        match PostgresStore::connect_with(&url, options).await {
            Ok(store) => Some(store),
            Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1") => {
                eprintln!("skipping: PostgreSQL at {url} is unreachable ({e})");
                None
            }
            Err(e) => panic!(
                "PostgreSQL at {url} is unreachable: {e} (set DAGGER_TEST_SKIP_SERVERS=1 to skip)"
            ),
        }
    }

    /// A schema name no other test or run uses.
    fn unique_schema(test: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("t_pubsub_{test}_{}_{nanos}", std::process::id())
    }

    #[tokio::test]
    async fn a_publish_returns_only_after_the_message_is_logged_on_postgres() {
        let Some(store) = open(&unique_schema("logged")).await else {
            return;
        };
        publish_returns_after_logging(Arc::new(store.clone())).await;
        store.drop_schema().await.unwrap();
    }

    #[tokio::test]
    async fn after_a_restart_on_postgres_undelivered_messages_are_delivered_and_replay_works() {
        let schema = unique_schema("restart");
        let Some(first) = open(&schema).await else {
            return;
        };
        let Some(second) = open(&schema).await else {
            return;
        };
        restart_redelivers_and_replays(Arc::new(first), Arc::new(second.clone())).await;
        second.drop_schema().await.unwrap();
    }

    #[tokio::test]
    async fn batches_are_logged_in_one_append_with_dense_offsets_on_postgres() {
        let Some(store) = open(&unique_schema("batch")).await else {
            return;
        };
        batches_get_dense_offsets(Arc::new(store.clone())).await;
        store.drop_schema().await.unwrap();
    }
}
