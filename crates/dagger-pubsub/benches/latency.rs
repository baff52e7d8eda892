//! P4 of shared/bench/WORKLOADS.md: publish at a fixed 100k msg/s and measure
//! publish-to-handler latency (p50/p99/p99.9), with one deliberately slow
//! consumer (drop-oldest) on the same channel to show memory stays bounded.
//!
//! cargo bench -p dagger-pubsub --bench latency

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::runtime;
use dagger_core::BoxError;
use dagger_pubsub::{
    CancellationToken, Message, Overflow, PubSubAgent, PubSubConfig, PubSubContext, PubSubExecutor,
};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: u64 = 100_000;
const SECONDS: u64 = 3;

struct Timed {
    base: Instant,
    samples: Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl PubSubAgent for Timed {
    fn name(&self) -> &str {
        "timed"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["p4".into()]
    }
    fn publications(&self) -> Vec<String> {
        Vec::new()
    }
    async fn handle_message(&self, _: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        let now = self.base.elapsed().as_nanos() as u64;
        let sent = m.payload.as_u64().unwrap_or(now);
        self.samples.lock().push(now.saturating_sub(sent));
        Ok(())
    }
}

/// Takes 1 ms per message: 100x slower than the publish rate.
struct Slow;

#[async_trait::async_trait]
impl PubSubAgent for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["p4".into()]
    }
    fn publications(&self) -> Vec<String> {
        Vec::new()
    }
    async fn handle_message(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1_000.0
}

fn main() {
    let rt = runtime();
    let base = Instant::now();
    let timed = Arc::new(Timed {
        base,
        samples: Mutex::new(Vec::with_capacity((RATE * SECONDS) as usize)),
    });
    let mut config = PubSubConfig {
        queue_capacity: 1024,
        ..PubSubConfig::default()
    };
    config
        .agent_overflow
        .insert("slow".into(), Overflow::DropOldest);
    let ex = Arc::new(PubSubExecutor::new(config).unwrap());
    ex.register_agent(timed.clone()).unwrap();
    ex.register_agent(Arc::new(Slow)).unwrap();
    let rss_before = rss_kib();
    let total = RATE * SECONDS;
    let (behind, rss_mid) = rt.block_on({
        let ex = ex.clone();
        async move {
            tokio::spawn(async move {
                let start = Instant::now();
                let interval = Duration::from_nanos(1_000_000_000 / RATE);
                let mut max_behind = Duration::ZERO;
                let mut rss_mid = 0;
                for i in 0..total {
                    let due = start + interval * i as u32;
                    // Pace by yielding: timers are too coarse for 10 µs steps,
                    // and yielding lets the woken subscriber run on this
                    // worker (tokio's LIFO slot is not stolen by the other).
                    loop {
                        let now = Instant::now();
                        if now >= due {
                            max_behind = max_behind.max(now - due);
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    let sent = base.elapsed().as_nanos() as u64;
                    ex.publish("p4", serde_json::json!(sent)).await.unwrap();
                    if i == total / 2 {
                        rss_mid = rss_kib();
                    }
                }
                let _ = ex.run(CancellationToken::new()).await;
                (max_behind, rss_mid)
            })
            .await
            .unwrap()
        }
    });
    let metrics = ex.metrics();
    let rss_after = rss_kib();
    let mut samples = std::mem::take(&mut *timed.samples.lock());
    samples.sort_unstable();
    let slow = &metrics.agents["slow"];
    println!(
        "RESULT workload=P4 engine=dagger rate={RATE} messages={} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} publisher_max_behind_us={:.0} slow_queue_high_water={} slow_dropped={} rss_kib_before={rss_before} rss_kib_mid={rss_mid} rss_kib_after={rss_after}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
        percentile(&samples, 1.0),
        behind.as_secs_f64() * 1e6,
        slow.queue_high_water,
        slow.dropped,
    );
}
