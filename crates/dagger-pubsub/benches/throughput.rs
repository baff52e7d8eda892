//! P1–P3 of shared/bench/WORKLOADS.md: in-memory throughput and routing cost.
//!
//! cargo bench -p dagger-pubsub --bench throughput

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Counter, payload, runtime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dagger_pubsub::{CancellationToken, PubSubConfig, PubSubExecutor};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Publishes `iters` messages to `channel(i)` from one task, waits until all
/// are handled, and returns the elapsed time.
fn publish_and_drain(
    rt: &tokio::runtime::Runtime,
    ex: PubSubExecutor,
    iters: u64,
    channels: Arc<Vec<String>>,
    body: serde_json::Value,
) -> Duration {
    let ex = Arc::new(ex);
    rt.block_on(async move {
        let start = Instant::now();
        let publisher = {
            let ex = ex.clone();
            tokio::spawn(async move {
                let n = channels.len() as u64;
                for i in 0..iters {
                    ex.publish(&channels[(i % n) as usize], body.clone())
                        .await
                        .unwrap();
                }
                ex.run(CancellationToken::new()).await.unwrap();
            })
        };
        publisher.await.unwrap();
        let elapsed = start.elapsed();
        ex.shutdown().await.unwrap();
        elapsed
    })
}

fn p1(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("P1_1to1");
    g.throughput(Throughput::Elements(1));
    for bytes in [16usize, 1024] {
        g.bench_function(BenchmarkId::new("payload_bytes", bytes), |b| {
            b.iter_custom(|iters| {
                let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
                ex.register_agent(Arc::new(Counter::new("sub", &["p1"])))
                    .unwrap();
                publish_and_drain(&rt, ex, iters, Arc::new(vec!["p1".into()]), payload(bytes))
            });
        });
    }
    g.finish();
}

fn p2(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("P2_fanout");
    for subs in [1u64, 4, 16, 64] {
        // Throughput is deliveries: one message counts once per subscriber.
        g.throughput(Throughput::Elements(subs));
        g.bench_function(BenchmarkId::new("subscribers", subs), |b| {
            b.iter_custom(|iters| {
                let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
                for s in 0..subs {
                    ex.register_agent(Arc::new(Counter::new(format!("s{s}"), &["p2"])))
                        .unwrap();
                }
                publish_and_drain(&rt, ex, iters, Arc::new(vec!["p2".into()]), payload(16))
            });
        });
    }
    g.finish();
}

fn p3(c: &mut Criterion) {
    let rt = runtime();
    // 10,000 channels `region.{r}.{kind}.{n}`; wildcard subscribers by region,
    // by kind, and one catch-all.
    let channels: Arc<Vec<String>> = Arc::new(
        (0..10_000)
            .map(|i| {
                format!(
                    "region.r{}.{}.c{}",
                    i % 10,
                    ["orders", "invoices"][i % 2],
                    i
                )
            })
            .collect(),
    );
    let mut g = c.benchmark_group("P3_routing");
    g.throughput(Throughput::Elements(1));
    g.bench_function("10k_channels_wildcards", |b| {
        b.iter_custom(|iters| {
            let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
            ex.register_agent(Arc::new(Counter::new("r0", &["region.r0.>"])))
                .unwrap();
            ex.register_agent(Arc::new(Counter::new("orders", &["region.*.orders.*"])))
                .unwrap();
            ex.register_agent(Arc::new(Counter::new("all", &["region.>"])))
                .unwrap();
            publish_and_drain(&rt, ex, iters, channels.clone(), payload(16))
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = p1, p2, p3
}
criterion_main!(benches);
