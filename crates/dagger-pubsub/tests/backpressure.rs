//! Backpressure: bounded queues; a slow subscriber slows its publishers, or
//! drops its oldest messages (counted) when so configured.
//!
//! These tests run on a paused clock: `sleep` returns only once every task is
//! blocked, which is how "the publisher is stuck" is observed without timing.

mod common;

use common::{Behaviour, TestAgent, payloads};
use dagger_core::BoxError;
use dagger_pubsub::{
    CancellationToken, Message, Overflow, PubSubConfig, PubSubContext, PubSubExecutor,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Handles one message per permit.
struct Gate(Arc<Semaphore>);

#[async_trait::async_trait]
impl Behaviour for Gate {
    async fn on(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        self.0.acquire().await?.forget();
        Ok(())
    }
}

const CAPACITY: usize = 4;
const BATCH: usize = 2;
const N: u64 = 100;

fn config() -> PubSubConfig {
    PubSubConfig {
        queue_capacity: CAPACITY,
        max_batch: BATCH,
        ..PubSubConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_blocks_the_publisher_and_memory_stays_bounded() {
    let ex = Arc::new(PubSubExecutor::new(config()).unwrap());
    let gate = Arc::new(Semaphore::new(0));
    let slow = TestAgent::new("slow", &["ticks"], &[], Gate(gate.clone())).register(&ex);
    let fast = TestAgent::recorder("fast", &["ticks"]).register(&ex);
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let ex = ex.clone();
        let published = published.clone();
        tokio::spawn(async move {
            for i in 0..N {
                ex.publish("ticks", json!(i)).await.unwrap();
                published.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Returns once nothing can make progress: the publisher waits for room.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stuck_at = published.load(Ordering::SeqCst);
    assert!(
        stuck_at <= (CAPACITY + BATCH) as u64,
        "publisher got {stuck_at} messages past a slow subscriber of capacity {CAPACITY}"
    );
    assert!(!publisher.is_finished());
    let m = ex.metrics();
    assert_eq!(m.agents["slow"].queue_len, CAPACITY);

    // Release the slow agent a few messages at a time: the publisher follows.
    gate.add_permits(10);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = published.load(Ordering::SeqCst);
    assert_eq!(
        after,
        stuck_at + 10,
        "each handled message makes room for one more"
    );

    gate.add_permits(N as usize);
    publisher.await.unwrap();
    ex.run(CancellationToken::new()).await.unwrap();
    let expected: Vec<_> = (0..N).map(|i| json!(i)).collect();
    assert_eq!(payloads(&slow), expected);
    assert_eq!(payloads(&fast), expected);
    let m = ex.metrics();
    assert!(m.agents["slow"].queue_high_water <= CAPACITY);
    assert!(m.agents["fast"].queue_high_water <= CAPACITY);
    assert_eq!(m.agents["slow"].dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_never_blocks_and_counts_what_it_drops() {
    let mut cfg = config();
    cfg.agent_overflow
        .insert("slow".into(), Overflow::DropOldest);
    let ex = PubSubExecutor::new(cfg).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let slow = TestAgent::new("slow", &["ticks"], &[], Gate(gate.clone())).register(&ex);
    let fast = TestAgent::recorder("fast", &["ticks"]).register(&ex);
    // Would hang here if the slow agent's queue made the publisher wait.
    for i in 0..N {
        ex.publish("ticks", json!(i)).await.unwrap();
    }
    gate.add_permits(N as usize);
    ex.run(CancellationToken::new()).await.unwrap();

    let got: Vec<u64> = payloads(&slow)
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let m = ex.metrics();
    assert_eq!(m.agents["slow"].dropped, N - got.len() as u64);
    assert!(m.agents["slow"].dropped >= N - (CAPACITY + BATCH) as u64);
    // What survives is in order and ends with the newest messages.
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(&got[got.len() - CAPACITY..], &[96, 97, 98, 99]);
    assert!(m.agents["slow"].queue_high_water <= CAPACITY);
    assert_eq!(
        payloads(&fast).len() as u64,
        N,
        "the fast subscriber loses nothing"
    );
    assert_eq!(m.in_flight, 0);
}
