//! P1 of shared/bench/WORKLOADS.md over NATS JetStream: one publisher, one
//! subscriber agent, every message crossing the server (published with an
//! acknowledged JetStream publish, pulled by a durable consumer, handled,
//! acknowledged). Payloads of 16 B and 1 KiB.
//!
//! cargo bench -p dagger-nats --bench p1_nats
//! (server: DAGGER_TEST_NATS_URL, default nats://127.0.0.1:4222)

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dagger_core::BoxError;
use dagger_nats::{NatsBridge, NatsConfig};
use dagger_pubsub::{Message, PubSubAgent, PubSubContext, PubSubExecutor};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Publishes are sent in batches of this many (pipelined, then all acks awaited).
const BATCH: usize = 1_000;

struct Counter {
    seen: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

#[async_trait::async_trait]
impl PubSubAgent for Counter {
    fn name(&self) -> &str {
        "p1_subscriber"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["p1".into()]
    }
    fn publications(&self) -> Vec<String> {
        Vec::new()
    }
    async fn handle_message(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.target.load(Ordering::Relaxed) {
            self.reached.notify_one();
        }
        Ok(())
    }
}

fn payload(bytes: usize) -> Value {
    // `{"d":"…"}` is 8 bytes of framing around the string.
    json!({"d": "x".repeat(bytes.saturating_sub(8))})
}

fn p1(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url =
        std::env::var("DAGGER_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mut g = c.benchmark_group("P1_nats_1to1");
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for bytes in [16usize, 1024] {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let stream = format!("DAGGER_BENCH_P1_{}", &suffix[..12]);
        let config = NatsConfig::new(&stream)
            .subject_prefix(stream.to_lowercase())
            .dead_letter_prefix(format!("{}_dl", stream.to_lowercase()));
        let bridge = match rt.block_on(NatsBridge::connect(&url, config)) {
            Ok(b) => b,
            Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").as_deref() == Ok("1") => {
                eprintln!(
                    "skipped: NATS server at {url} is unreachable ({e}); DAGGER_TEST_SKIP_SERVERS=1"
                );
                return;
            }
            Err(e) => panic!("NATS server at {url}: {e}"),
        };
        let ex = Arc::new(PubSubExecutor::builder().build().unwrap());
        let counter = Arc::new(Counter {
            seen: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: Notify::new(),
        });
        ex.register_agent(counter.clone()).unwrap();
        let attachment = rt.block_on(bridge.attach(&ex, &["p1"])).unwrap();
        let body = payload(bytes);
        g.bench_function(BenchmarkId::new("payload_bytes", bytes), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let target = counter.seen.load(Ordering::Relaxed) + iters;
                    counter.target.store(target, Ordering::Relaxed);
                    let start = Instant::now();
                    let mut left = iters as usize;
                    while left > 0 {
                        let n = left.min(BATCH);
                        ex.publish_batch("p1", vec![body.clone(); n]).await.unwrap();
                        left -= n;
                    }
                    while counter.seen.load(Ordering::Relaxed) < target {
                        counter.reached.notified().await;
                    }
                    start.elapsed()
                })
            });
        });
        rt.block_on(async {
            attachment.stop().await;
            ex.shutdown().await.unwrap();
            bridge.delete_stream().await.unwrap();
        });
    }
    g.finish();
}

criterion_group!(benches, p1);
criterion_main!(benches);
