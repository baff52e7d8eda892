//! P5 of shared/bench/WORKLOADS.md: a durable channel on SQLite (group
//! commit, durability Batched): messages per second published in batches of
//! 1,000 (each batch is one append, acknowledged after its commit) and
//! replayed from offset 1.
//!
//! cargo bench -p dagger-pubsub --bench durable

#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{Counter, payload, runtime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dagger_pubsub::{CancellationToken, PubSubExecutor};
use dagger_storage::SqliteStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: u64 = 1_000;

fn executor(store: &SqliteStore) -> PubSubExecutor {
    let ex = PubSubExecutor::builder()
        .durable("p5.>")
        .message_log(Arc::new(store.clone()))
        .build()
        .unwrap();
    ex.register_agent(Arc::new(Counter::new("sub", &["p5.>"])))
        .unwrap();
    ex
}

fn p5(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("P5_durable_sqlite");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("publish_batches_of_1000", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let store =
                    SqliteStore::open(&format!("sqlite:{}", dir.path().join("p5.db").display()))
                        .await
                        .unwrap();
                let ex = executor(&store);
                let body = payload(16);
                let start = Instant::now();
                for _ in 0..iters {
                    ex.publish_batch("p5.orders", vec![body.clone(); BATCH as usize])
                        .await
                        .unwrap();
                }
                ex.run(CancellationToken::new()).await.unwrap();
                let elapsed = start.elapsed();
                ex.shutdown().await.unwrap();
                elapsed
            })
        });
    });
    g.bench_function("replay_from_offset_1", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let store =
                    SqliteStore::open(&format!("sqlite:{}", dir.path().join("p5.db").display()))
                        .await
                        .unwrap();
                let ex = executor(&store);
                let body = payload(16);
                for _ in 0..iters {
                    ex.publish_batch("p5.orders", vec![body.clone(); BATCH as usize])
                        .await
                        .unwrap();
                }
                ex.run(CancellationToken::new()).await.unwrap();
                let start = Instant::now();
                let n = ex.replay("p5.orders", "sub", 1).await.unwrap();
                assert_eq!(n, iters * BATCH);
                ex.run(CancellationToken::new()).await.unwrap();
                let elapsed = start.elapsed();
                ex.shutdown().await.unwrap();
                elapsed
            })
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = p5
}
criterion_main!(benches);
