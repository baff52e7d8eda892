//! P4 of shared/bench/WORKLOADS.md: publish at a fixed 100k msg/s and measure
//! latency to the handler (p50/p99/p99.9), with one deliberately slow
//! consumer (drop-oldest) on the same channel to show memory stays bounded.
//!
//! Two latencies are reported per message, both ending when the fast
//! subscriber's handler starts:
//! - `publish_*`: from the moment `publish` was called (the actual publish
//!   time): what the executor adds;
//! - `scheduled_*`: from the message's slot in the fixed 100k/s schedule, so a
//!   publisher that falls behind (a descheduled thread, a stall) counts
//!   against the figure instead of hiding it (no coordinated omission).
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
    /// (from publish, from schedule), nanoseconds.
    samples: Mutex<Vec<(u64, u64)>>,
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
        let at = |i: usize| m.payload.get(i).and_then(|v| v.as_u64()).unwrap_or(now);
        let (due, sent) = (at(0), at(1));
        self.samples
            .lock()
            .push((now.saturating_sub(sent), now.saturating_sub(due)));
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
                    let due_ns = due.duration_since(base).as_nanos() as u64;
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
                    ex.publish("p4", serde_json::json!([due_ns, sent]))
                        .await
                        .unwrap();
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
    let samples = std::mem::take(&mut *timed.samples.lock());
    let mut from_publish: Vec<u64> = samples.iter().map(|s| s.0).collect();
    let mut from_schedule: Vec<u64> = samples.iter().map(|s| s.1).collect();
    from_publish.sort_unstable();
    from_schedule.sort_unstable();
    let slow = &metrics.agents["slow"];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "RESULT workload=P4 engine=dagger rate={RATE} messages={} publish_p50_us={:.1} publish_p99_us={:.1} publish_p999_us={:.1} publish_max_us={:.1} scheduled_p50_us={:.1} scheduled_p99_us={:.1} scheduled_p999_us={:.1} publisher_max_behind_us={:.0} slow_queue_high_water={} slow_dropped={} rss_kib_before={rss_before} rss_kib_mid={rss_mid} rss_kib_after={rss_after} loadavg_1m={}",
        from_publish.len(),
        percentile(&from_publish, 0.50),
        percentile(&from_publish, 0.99),
        percentile(&from_publish, 0.999),
        percentile(&from_publish, 1.0),
        percentile(&from_schedule, 0.50),
        percentile(&from_schedule, 0.99),
        percentile(&from_schedule, 0.999),
        behind.as_secs_f64() * 1e6,
        slow.queue_high_water,
        slow.dropped,
        load.split_whitespace().next().unwrap_or("?"),
    );
}
