//! Messages per second through the Postgres `MessageLog`: appends of one
//! message awaited one at a time, batches of 100, 4 concurrent appenders on
//! one channel (they serialize on the channel's counter row), and replaying
//! 1 000 messages from an offset.
//!
//! `cargo bench -p dagger-storage --features postgres --bench postgres_messages`
//! (`DAGGER_TEST_POSTGRES_URL`). Without the feature the bench does nothing.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

#[cfg(feature = "postgres")]
mod messages {
    use criterion::{BenchmarkId, Criterion, Throughput};
    use dagger_core::MessageId;
    use dagger_core::store::{MessageLog, MessageRecord};
    use dagger_storage::{PostgresOptions, PostgresStore};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// A message of about 150 bytes, like a small agent event.
    fn message(n: u64) -> MessageRecord {
        MessageRecord {
            offset: 0,
            channel: String::new(),
            message_id: MessageId::from(format!("bench-{n}")),
            source: Some("producer".into()),
            payload: json!({"order": n, "items": ["a", "b"], "total": 12.5}),
            timestamp: 1_700_000_000_000,
            correlation_id: Some("corr".into()),
            causation_id: None,
            headers: BTreeMap::new(),
            depth: 0,
        }
    }

    fn open(runtime: &tokio::runtime::Runtime) -> PostgresStore {
        let url = std::env::var("DAGGER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let options = PostgresOptions {
            schema: Some(format!("bench_messages_{}", std::process::id())),
            ..PostgresOptions::default()
        };
        match runtime.block_on(PostgresStore::connect_with(&url, options)) {
            Ok(store) => store,
            Err(e) => {
                eprintln!("postgres_messages: {e}");
                std::process::exit(2);
            }
        }
    }

    pub(super) fn bench(c: &mut Criterion) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let store = open(&runtime);
        let mut group = c.benchmark_group("postgres_messages");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));

        let appends = 100;
        group.throughput(Throughput::Elements(appends));
        group.bench_function(BenchmarkId::new("append", "1_per_call"), |b| {
            b.to_async(&runtime).iter(|| async {
                for n in 0..appends {
                    store
                        .append("single", vec![message(n)])
                        .await
                        .expect("append");
                }
            });
        });

        let batches = 10;
        group.throughput(Throughput::Elements(batches * 100));
        group.bench_function(BenchmarkId::new("append", "100_per_call"), |b| {
            b.to_async(&runtime).iter(|| async {
                for _ in 0..batches {
                    let batch = (0..100).map(message).collect();
                    store.append("batched", batch).await.expect("append");
                }
            });
        });

        let per_task = 50;
        group.throughput(Throughput::Elements(4 * per_task));
        group.bench_function(BenchmarkId::new("append", "4_concurrent_1_per_call"), |b| {
            b.to_async(&runtime).iter(|| async {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            for n in 0..per_task {
                                store
                                    .append("shared", vec![message(n)])
                                    .await
                                    .expect("append");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("appender");
                }
            });
        });

        let replayed = 1_000;
        runtime
            .block_on(store.append("replay", (0..replayed).map(message).collect()))
            .expect("seed the replayed channel");
        group.throughput(Throughput::Elements(replayed));
        group.bench_function(BenchmarkId::new("read_from", "1000"), |b| {
            b.to_async(&runtime).iter(|| async {
                let got = store
                    .read_from("replay", 1, replayed as usize)
                    .await
                    .expect("read");
                assert_eq!(got.len(), replayed as usize);
            });
        });
        group.finish();
        runtime
            .block_on(store.drop_schema())
            .expect("drop the bench schema");
    }
}

#[cfg(feature = "postgres")]
criterion::criterion_group!(benches, messages::bench);
#[cfg(feature = "postgres")]
criterion::criterion_main!(benches);

#[cfg(not(feature = "postgres"))]
fn main() {}
