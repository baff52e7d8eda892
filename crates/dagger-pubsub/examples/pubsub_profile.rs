//! A fixed amount of P1/P2 work (shared/bench/WORKLOADS.md) for profilers:
//! `valgrind --tool=callgrind target/release/examples/pubsub_profile 4 200000`
//! publishes 200,000 16-byte messages to 4 subscribers and waits until every
//! delivery is handled. Prints the wall-clock rate (meaningless under valgrind).

use dagger_core::BoxError;
use dagger_pubsub::{CancellationToken, Message, PubSubAgent, PubSubContext, PubSubExecutor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

struct Counter {
    name: String,
    seen: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl PubSubAgent for Counter {
    fn name(&self) -> &str {
        &self.name
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["bench".into()]
    }
    fn publications(&self) -> Vec<String> {
        Vec::new()
    }
    async fn handle_message(&self, _: &PubSubContext, _: &Message) -> Result<(), BoxError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let subscribers: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let messages: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let bytes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ex = Arc::new(PubSubExecutor::new(Default::default())?);
    let seen = Arc::new(AtomicU64::new(0));
    for s in 0..subscribers {
        ex.register_agent(Arc::new(Counter {
            name: format!("s{s}"),
            seen: seen.clone(),
        }))?;
    }
    let payload = serde_json::Value::String("x".repeat(bytes.saturating_sub(2)));
    let cpu_before = cpu_seconds();
    let elapsed = rt.block_on({
        let ex = ex.clone();
        async move {
            tokio::spawn(async move {
                let start = Instant::now();
                for _ in 0..messages {
                    ex.publish("bench", payload.clone()).await?;
                }
                ex.run(CancellationToken::new()).await?;
                Ok::<_, BoxError>(start.elapsed())
            })
            .await?
        }
    })?;
    let cpu = cpu_seconds() - cpu_before;
    rt.block_on(ex.shutdown())?;
    assert_eq!(seen.load(Ordering::Relaxed), messages * subscribers);
    let deliveries = (messages * subscribers) as f64;
    println!(
        "subscribers={subscribers} messages={messages} deliveries_per_s={:.0} messages_per_s={:.0} cpu_ns_per_delivery={:.0}",
        deliveries / elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64(),
        cpu * 1e9 / deliveries,
    );
    Ok(())
}

/// CPU time (user + system) of the whole process so far, from
/// `/proc/self/stat` (clock ticks of 10 ms): less sensitive to other load
/// on the machine than wall-clock time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
