//! Rows per second through the SQLite writer: one transaction per row
//! (each write awaited before the next is sent) against group commit
//! (writes queued back to back, or awaited by many concurrent callers), in
//! `Batched` (`synchronous=NORMAL`) and `Sync` (`synchronous=FULL`) modes.
//!
//! The database lives on the same file system as the build (not tmpfs), so
//! `Sync` pays real fsyncs.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dagger_core::StoreError;
use dagger_core::store::Durability;
use dagger_storage::{SqliteOptions, SqliteStore};
use rusqlite::Transaction;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

static NEXT: AtomicI64 = AtomicI64::new(0);

fn open(dir: &std::path::Path, durability: Durability) -> SqliteStore {
    let location = format!("sqlite:{}", dir.join("bench.db").display());
    let store = SqliteStore::open_blocking(
        &location,
        SqliteOptions {
            durability,
            ..SqliteOptions::default()
        },
    )
    .expect("open bench database");
    store
        .write_blocking(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS rows (i INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
            )
            .map_err(|e| StoreError::Conflict(e.to_string()))
        })
        .expect("create bench table");
    store
}

/// One row of about 100 bytes, the size of a small node-run record.
fn insert_row(
    store: &SqliteStore,
) -> impl FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send + 'static {
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    let store = store.clone();
    move |tx| {
        tx.prepare_cached("INSERT INTO rows (i, payload) VALUES (?1, ?2)")
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    i,
                    "node-completed {\"tokens\": 12, \"output\": \"0123456789abcdef0123456789abcdef\"}"
                ])
            })
            .map(drop)
            .map_err(|e| store.map_err(e))
    }
}

fn writer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("writer");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    for (mode, durability) in [("batched", Durability::Batched), ("sync", Durability::Sync)] {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench directory");
        let store = open(dir.path(), durability);

        // One transaction per row: each write waits for its own commit.
        let rows = if durability == Durability::Sync {
            50
        } else {
            500
        };
        group.throughput(Throughput::Elements(rows));
        group.bench_function(BenchmarkId::new("single_tx_per_row", mode), |b| {
            b.iter(|| {
                for _ in 0..rows {
                    store.write_blocking(insert_row(&store)).expect("write");
                }
            });
        });

        // Group commit: rows queued back to back, one flush at the end.
        let rows = 10_000;
        group.throughput(Throughput::Elements(rows));
        group.bench_function(BenchmarkId::new("group_commit_queued", mode), |b| {
            b.iter(|| {
                for _ in 0..rows {
                    store.submit(insert_row(&store)).expect("submit");
                }
                runtime.block_on(store.flush()).expect("flush");
            });
        });

        // Group commit with 64 concurrent callers, each awaiting its commit
        // (how `Sync` keeps up with many nodes completing at once).
        let rows = if durability == Durability::Sync {
            2_048
        } else {
            8_192
        };
        group.throughput(Throughput::Elements(rows));
        group.bench_function(BenchmarkId::new("group_commit_64_awaiting", mode), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let store = store.clone();
                            tokio::spawn(async move {
                                for _ in 0..rows / 64 {
                                    store.write(insert_row(&store)).await.expect("write");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("task");
                    }
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, writer);
criterion_main!(benches);
