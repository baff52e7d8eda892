//! Criterion benches of the DAG Flow workloads of `WORKLOADS.md` on Dagger:
//! D1, D2, D3, D4 (fan and dense), D5 (YAML parse + validate, apart from
//! the run), D6 (D1 persisted to SQLite, Batched and Sync) and D7 (three
//! 100 ms sleeps, parallel vs sequential). Each iteration is one whole run;
//! only the run is timed (building the workflow is not), and the throughput
//! is in nodes, so criterion reports nodes per second.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dagger_benches::engines::dagger;
use dagger_benches::shape::Shape;
use dagger_benches::workload::{Dag, Engine};
use dagger_benches::{on_workers, runtime};
use dagger_core::Stores;
use dagger_dag_flow::{DagConfig, InputSpec, load_yaml_str};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn run_engine(
    c: &mut Criterion,
    group: &str,
    name: &str,
    engine: Engine,
    shape: Shape,
    samples: usize,
) {
    let rt = runtime();
    let shape = Arc::new(shape);
    let mut g = c.benchmark_group(group);
    g.sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(shape.len() as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| on_workers(&rt, engine.build_and_run(shape.clone())).run)
                .sum()
        });
    });
    g.finish();
}

fn d1_d4(c: &mut Criterion) {
    run_engine(
        c,
        "D1",
        "layered_100x100x2",
        Engine::Dagger,
        Dag::D1.shape(),
        20,
    );
    run_engine(c, "D2", "chain_10000", Engine::Dagger, Dag::D2.shape(), 20);
    run_engine(
        c,
        "D3",
        "layered_1000x100x2",
        Engine::Dagger,
        Dag::D3.shape(),
        10,
    );
    run_engine(c, "D4", "fan_10000", Engine::Dagger, Dag::D4Fan.shape(), 20);
    run_engine(
        c,
        "D4",
        "dense_32x32",
        Engine::Dagger,
        Dag::D4Dense.shape(),
        20,
    );
}

fn d5(c: &mut Criterion) {
    let shape = Dag::D1.shape();
    let text = dagger::yaml(&shape);
    let mut g = c.benchmark_group("D5");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(shape.len() as u64));
    g.bench_function("parse_validate", |b| {
        b.iter(|| load_yaml_str(&text, "d1.yaml").expect("valid YAML"));
    });
    // The run of the same loaded workflow, for the parse/run ratio.
    let rt = runtime();
    let wf = load_yaml_str(&text, "d1.yaml").expect("valid YAML");
    g.bench_function("run", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut ex = on_workers(
                    &rt,
                    dagger::executor(wf.clone(), dagger::config(), Stores::memory()),
                );
                let nodes = shape.len();
                total += on_workers(&rt, async move {
                    let t = Instant::now();
                    dagger::run(&mut ex, nodes).await;
                    t.elapsed()
                });
            }
            total
        });
    });
    g.finish();
}

fn d6(c: &mut Criterion) {
    run_engine(
        c,
        "D6",
        "sqlite_batched",
        Engine::DaggerSqliteBatched,
        Dag::D6.shape(),
        10,
    );
    run_engine(
        c,
        "D6",
        "sqlite_sync",
        Engine::DaggerSqliteSync,
        Dag::D6.shape(),
        10,
    );
}

fn d7(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("D7");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for parallel in [true, false] {
        let mut wf = dagger::workflow(&Shape::independent(3));
        for n in &mut wf.nodes {
            n.action = "sleep".into();
            n.inputs = vec![InputSpec::literal("ms", 100.into())];
        }
        let config = DagConfig {
            enable_parallel_execution: parallel,
            ..dagger::config()
        };
        let name = if parallel { "parallel" } else { "sequential" };
        g.bench_with_input(
            BenchmarkId::new("three_100ms_sleeps", name),
            &wf,
            |b, wf| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut ex = on_workers(
                            &rt,
                            dagger::executor(wf.clone(), config.clone(), Stores::memory()),
                        );
                        total += on_workers(&rt, async move {
                            let t = Instant::now();
                            dagger::run(&mut ex, 3).await;
                            t.elapsed()
                        });
                    }
                    total
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, d1_d4, d5, d6, d7);
criterion_main!(benches);
