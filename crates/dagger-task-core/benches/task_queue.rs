//! Task Agent workloads Q1–Q4 of `shared/bench/WORKLOADS.md` on embedded
//! SQLite (and Q1 in memory for reference). Q5 (SIGKILL and resume) is the
//! `crash_resume` bench; its correctness is tested in
//! `dagger-storage/tests/task_store.rs`. `DAGGER_BENCH_Q1_ONCE=<workers>`
//! runs Q1 once outside criterion (for profilers).
//!
//! `DAGGER_BENCH_TASKS` sets the Q1/Q2 size (default 10,000; the workload
//! says 100,000).
//!
//! `Q1_run_io_tasks` is Q1 with tasks that each wait [`IO_TASK`] (what an
//! agent calling a model or a web service does): no-op tasks are bound by
//! the SQLite file's one writer whatever the number of workers, so this is
//! where adding workers can and should add throughput, up to that bound.

#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use dagger_core::store::MemoryStore;
use dagger_core::{BoxError, Cache, JobStatus};
use dagger_storage::{SqliteOptions, SqliteStore};
use dagger_task_core::{
    FnAgent, JobConfig, StallAction, TaskAgentRegistry, TaskContext, TaskManager, TaskOutcome,
    TaskSpec, TaskStore,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tasks_n() -> usize {
    std::env::var("DAGGER_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// How long each task of `Q1_run_io_tasks` waits.
const IO_TASK: Duration = Duration::from_millis(5);

/// Agents `noop` and `io` (waits [`IO_TASK`]).
fn registry() -> TaskAgentRegistry {
    let r = TaskAgentRegistry::new();
    r.register_agent(Arc::new(FnAgent::new("noop", |_v, _c| async move {
        Ok::<_, BoxError>(TaskOutcome::Completed(json!(null)))
    })))
    .expect("register");
    r.register_agent(Arc::new(FnAgent::new("io", |_v, _c| async move {
        tokio::time::sleep(IO_TASK).await;
        Ok::<_, BoxError>(TaskOutcome::Completed(json!(null)))
    })))
    .expect("register");
    r
}

fn manager(store: Arc<dyn TaskStore>, registry: TaskAgentRegistry) -> TaskManager {
    TaskManager::new(
        Duration::from_secs(600),
        StallAction::TerminateJob,
        Cache::new(),
        registry,
        store,
    )
}

struct Db {
    _dir: tempfile::TempDir,
    location: String,
}

fn sqlite() -> (Db, Arc<dyn TaskStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = format!("sqlite:{}", dir.path().join("q.db").display());
    let store = SqliteStore::open_blocking(&location, SqliteOptions::default()).expect("open");
    (
        Db {
            _dir: dir,
            location,
        },
        Arc::new(store),
    )
}

fn reopen(db: &Db) -> Arc<dyn TaskStore> {
    Arc::new(SqliteStore::open_blocking(&db.location, SqliteOptions::default()).expect("open"))
}

fn noop_specs(job: &str, n: usize) -> Vec<TaskSpec> {
    agent_specs(job, "noop", n)
}

fn agent_specs(job: &str, agent: &str, n: usize) -> Vec<TaskSpec> {
    (0..n)
        .map(|i| TaskSpec::new(job, agent, "").id(format!("t{i}")))
        .collect()
}

/// The runtime every Task Agent bench runs on: tokio, 2 worker threads.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt")
}

/// The job settings of Q1 and Q4: 64 task slots per worker.
fn job_config() -> JobConfig {
    JobConfig {
        max_concurrency: 64,
        ..JobConfig::default()
    }
}

/// A fresh SQLite file holding job `q1` of `n` tasks for `agent`, and one
/// store handle on it per worker (the first is the one that inserted them).
fn filled_job(n: usize, agent: &str, workers: usize) -> (Db, Vec<Arc<dyn TaskStore>>) {
    let (db, store) = sqlite();
    manager(store.clone(), registry())
        .add_tasks(agent_specs("q1", agent, n))
        .expect("insert");
    let stores = (0..workers)
        .map(|i| if i == 0 { store.clone() } else { reopen(&db) })
        .collect();
    (db, stores)
}

/// Runs job `job` (already filled) with `workers` managers on `stores`.
async fn run_job(stores: Vec<Arc<dyn TaskStore>>, job: &str, cfg: JobConfig) {
    let mut handles = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        let m = manager(store, registry());
        let h = if i == 0 {
            m.start_job(job, vec![], None, Some(cfg.clone()))
                .expect("start")
        } else {
            m.resume_job(job).expect("join")
        };
        handles.push((m, h));
    }
    for (_m, h) in &handles {
        assert_eq!(h.wait().await, JobStatus::Completed(true));
    }
}

fn q1(c: &mut Criterion) {
    let n = tasks_n();
    let rt = runtime();
    let mut g = c.benchmark_group("Q1_run_noop_tasks");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    let cfg = job_config();
    q1_sqlite_workers(&mut g, &rt, n, "noop", &cfg);
    g.bench_function(BenchmarkId::new("memory", 1), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
                manager(store.clone(), registry())
                    .add_tasks(noop_specs("q1", n))
                    .expect("insert");
                let start = Instant::now();
                rt.block_on(run_job(vec![store], "q1", cfg.clone()));
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    let mut g = c.benchmark_group("Q1_run_io_tasks");
    let n = n.min(10_000);
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    q1_sqlite_workers(&mut g, &rt, n, "io", &cfg);
    g.finish();
}

/// Runs `n` tasks of `agent` on SQLite with 1, 2 and 4 workers.
fn q1_sqlite_workers(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    n: usize,
    agent: &str,
    cfg: &JobConfig,
) {
    for workers in [1usize, 2, 4] {
        g.bench_with_input(BenchmarkId::new("sqlite", workers), &workers, |b, &w| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_db, stores) = filled_job(n, agent, w);
                    let start = Instant::now();
                    rt.block_on(run_job(stores, "q1", cfg.clone()));
                    total += start.elapsed();
                }
                total
            })
        });
    }
}

fn q2(c: &mut Criterion) {
    let n = tasks_n().min(10_000);
    let mut g = c.benchmark_group("Q2_enqueue");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    g.bench_function("sqlite_single", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_db, store) = sqlite();
                let m = manager(store, registry());
                let start = Instant::now();
                for s in noop_specs("q2", n) {
                    m.add_task(s).expect("add");
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("sqlite_batched", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_db, store) = sqlite();
                let m = manager(store, registry());
                let start = Instant::now();
                for chunk in noop_specs("q2", n).chunks(1000) {
                    m.add_tasks(chunk.to_vec()).expect("add");
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// Q4: each of `roots` agents creates 10 child tasks at run time, depends
/// on them, and completes when they are done: 11 tasks per root.
fn q4(c: &mut Criterion) {
    let roots = tasks_n().min(10_000) / 11;
    let rt = runtime();
    let mut g = c.benchmark_group("Q4_dynamic_tree");
    g.sample_size(10)
        .throughput(Throughput::Elements((roots * 11) as u64));
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_db, store) = sqlite();
                let r = registry();
                r.register_agent(Arc::new(FnAgent::new(
                    "parent",
                    |_v, ctx: TaskContext| async move {
                        let m = ctx.manager();
                        let me = ctx.task_id().as_str();
                        if ctx.attempt() > 1 {
                            return Ok(TaskOutcome::Completed(json!(null)));
                        }
                        let kids: Vec<TaskSpec> = (0..10)
                            .map(|_| TaskSpec::new(ctx.job_id().clone(), "noop", "").parent(me))
                            .collect();
                        for kid in m.add_tasks(kids)? {
                            m.add_dependency(me, kid.as_str())?;
                        }
                        Ok(TaskOutcome::WaitingForDependencies)
                    },
                )))
                .expect("register");
                let m = manager(store, r);
                let specs = (0..roots)
                    .map(|i| TaskSpec::new("q4", "parent", "").id(format!("p{i}")))
                    .collect();
                m.add_tasks(specs).expect("insert");
                let start = Instant::now();
                rt.block_on(async {
                    let h = m
                        .start_job("q4", vec![], None, Some(job_config()))
                        .expect("start");
                    assert_eq!(h.wait().await, JobStatus::Completed(true));
                });
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, q1, q2, q4);

/// Q3: enqueue → agent start latency at about half of the measured
/// single-worker capacity; prints p50 and p99.
fn q3_latency() {
    let rt = runtime();
    let (_db, store) = sqlite();
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::<u64>::new()));
    let r = TaskAgentRegistry::new();
    let l = latencies.clone();
    r.register_agent(Arc::new(FnAgent::new("probe", move |input, _c| {
        let l = l.clone();
        async move {
            let sent = input["sent_us"].as_u64().unwrap_or(0);
            l.lock().push(now_us().saturating_sub(sent));
            Ok::<_, BoxError>(TaskOutcome::Completed(json!(null)))
        }
    })))
    .expect("register");
    // Keeps the job open between arrivals (a job with no open task ends).
    r.register_agent(Arc::new(FnAgent::new(
        "hold",
        |_v, ctx: TaskContext| async move {
            ctx.cancel_token().cancelled().await;
            Ok::<_, BoxError>(TaskOutcome::Completed(json!(null)))
        },
    )))
    .expect("register");
    let m = manager(store, r);
    let n = std::env::var("DAGGER_BENCH_Q3_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000usize);
    let rate_per_s = std::env::var("DAGGER_BENCH_Q3_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000u64);
    rt.block_on(async {
        let h = m
            .start_job(
                "q3",
                vec![TaskSpec::new("q3", "hold", "keep open")],
                None,
                Some(job_config()),
            )
            .expect("start");
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate_per_s));
        for i in 0..n {
            tick.tick().await;
            m.add_task(
                TaskSpec::new("q3", "probe", "")
                    .id(format!("t{i}"))
                    .input(json!({"sent_us": now_us()})),
            )
            .expect("add");
        }
        while latencies.lock().len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        h.cancel();
        h.wait().await;
    });
    let mut v = latencies.lock().clone();
    v.sort_unstable();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    println!(
        "RESULT workload=Q3 engine=dagger store=sqlite rate_per_s={rate_per_s} tasks={n} p50_us={} p99_us={}",
        p(0.5),
        p(0.99)
    );
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Q1 once, outside criterion (for profilers such as callgrind): `workers`
/// managers on one SQLite file run `DAGGER_BENCH_TASKS` no-op tasks.
fn q1_once(workers: usize) {
    let n = tasks_n();
    let rt = runtime();
    let (_db, stores) = filled_job(n, "noop", workers);
    let start = Instant::now();
    rt.block_on(run_job(stores, "q1", job_config()));
    let secs = start.elapsed().as_secs_f64();
    println!(
        "RESULT workload=Q1 engine=dagger store=sqlite tasks={n} workers={workers} tasks_per_s={:.0}",
        n as f64 / secs
    );
}

fn main() {
    if let Some(w) = std::env::var("DAGGER_BENCH_Q1_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        q1_once(w);
        return;
    }
    if std::env::var("DAGGER_BENCH_Q3").is_ok() {
        q3_latency();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
