//! The scale-out path on Postgres: `Q1-PG` (no-op tasks of one job run by
//! worker processes sharing the task queue) and `D8` (the D1 shape recorded
//! in Postgres, its nodes executed by worker processes through the node
//! queue, or by the coordinator itself with `--local`).
//!
//! Worker processes are this program started again with
//! [`WORKER_FLAG`]; the program hands such a command line to
//! [`worker_main`] before anything else (`compare` does). Each test schema
//! is fresh per run and dropped after it. The server is
//! `DAGGER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

use super::Timing;
use super::dagger::{build, registry};
use crate::shape::Shape;
use dagger_coord::{Coordinator, NodeWorker};
use dagger_core::store::NodeQueue;
use dagger_core::{BoxError, Cache, RunId};
use dagger_storage::{PostgresOptions, PostgresStore};
use dagger_task_core::{
    FnAgent, JobConfig, JobStatus, StallAction, TaskAgentRegistry, TaskManager, TaskOutcome,
    TaskSpec,
};
use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The first argument of a worker process's command line.
pub const WORKER_FLAG: &str = "--pg-worker";

/// Task slots of each Q1-PG worker process (its job's `max_concurrency`),
/// as for Q1 on SQLite.
pub const SLOTS_PER_WORKER: usize = super::paradigms::Q1_SLOTS_PER_WORKER;

/// Node attempts each D8 worker process runs at once (`dagger worker --concurrency`).
pub const NODE_SLOTS_PER_WORKER: usize = 64;

const JOB: &str = "q1";

/// The server's URL.
pub fn url() -> String {
    std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

async fn open(schema: &str) -> PostgresStore {
    let options = PostgresOptions {
        schema: Some(schema.to_string()),
        ..PostgresOptions::default()
    };
    PostgresStore::connect_with(&url(), options)
        .await
        .unwrap_or_else(|e| panic!("Postgres at {} opens: {e}", url()))
}

fn fresh_schema(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench_{what}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A task manager on `store` whose agent `noop` waits `io` (if not zero)
/// and completes.
fn manager(store: &PostgresStore, io: Duration) -> TaskManager {
    let agents = TaskAgentRegistry::new();
    agents
        .register_agent(Arc::new(FnAgent::new(
            "noop",
            move |_input, _ctx| async move {
                if !io.is_zero() {
                    tokio::time::sleep(io).await;
                }
                Ok::<_, BoxError>(TaskOutcome::Completed(Value::Null))
            },
        )))
        .expect("agent registers");
    TaskManager::new(
        Duration::from_secs(600),
        StallAction::TerminateJob,
        Cache::new(),
        agents,
        Arc::new(store.clone()),
    )
}

/// Starts `n` worker processes of `kind` on `schema` (`extra`: further
/// arguments). They exit when their stdin closes (D8) or their job ends
/// (Q1-PG).
fn spawn_workers(kind: &str, schema: &str, extra: &[String], n: usize) -> Vec<Child> {
    let exe = std::env::current_exe().expect("own executable");
    (0..n)
        .map(|_| {
            Command::new(&exe)
                .args([WORKER_FLAG, kind, schema])
                .args(extra)
                .stdin(Stdio::piped())
                .spawn()
                .expect("worker process starts")
        })
        .collect()
}

fn reap(children: Vec<Child>) {
    for mut c in children {
        drop(c.stdin.take());
        let status = c.wait().expect("worker process exits");
        assert!(status.success(), "worker process failed: {status}");
    }
}

/// Q1-PG: `tasks` no-op tasks inserted in one job (timed as build), then
/// run by `workers` worker processes (each task waiting `io` first:
/// Q1-PG-io), each a task manager with its own
/// store handle joining the job with [`SLOTS_PER_WORKER`] slots (timed as
/// run, from starting the processes to the last one's exit).
pub async fn q1(tasks: usize, workers: usize, io: Duration) -> Timing {
    let schema = fresh_schema("q1");
    let store = open(&schema).await;
    let m = manager(&store, io);
    let t0 = Instant::now();
    // The task store is synchronous: its calls go to a blocking thread.
    let seeding = m.clone();
    tokio::task::spawn_blocking(move || {
        let specs: Vec<TaskSpec> = (0..tasks)
            .map(|i| TaskSpec::new(JOB, "noop", format!("task {i}")))
            .collect();
        for chunk in specs.chunks(1000) {
            seeding.add_tasks(chunk.to_vec()).expect("tasks insert");
        }
        let config = JobConfig {
            max_concurrency: SLOTS_PER_WORKER,
            lease_ms: 30_000,
            ..JobConfig::default()
        };
        // Recorded as started and left to the workers: this process runs none of it.
        seeding
            .submit_job(JOB, Vec::new(), None, Some(config))
            .expect("job starts");
    })
    .await
    .expect("seeding thread");
    let build = t0.elapsed();
    let t1 = Instant::now();
    let children = spawn_workers("q1", &schema, &[io.as_micros().to_string()], workers.max(1));
    tokio::task::spawn_blocking(move || reap(children))
        .await
        .expect("workers reaped");
    let run = t1.elapsed();
    let status = tokio::task::spawn_blocking(move || m.job_status(JOB))
        .await
        .expect("status thread")
        .expect("job status reads");
    assert_eq!(
        status,
        JobStatus::Completed(true),
        "Q1-PG job ended {status:?}"
    );
    drop_schema(store).await;
    Timing { build, run }
}

/// D8: `shape` recorded in Postgres. With `workers` = `Some(n)`, `n` worker
/// processes execute its nodes through the node queue ([`NODE_SLOTS_PER_WORKER`]
/// each, started before the timed run); with `None` the coordinator runs
/// them itself (`dagger run --local`).
pub async fn d8(shape: Arc<Shape>, workers: Option<usize>) -> Timing {
    let schema = fresh_schema("d8");
    let store = open(&schema).await;
    let children = workers.map(|n| spawn_workers("nodes", &schema, &[], n.max(1)));
    let t0 = Instant::now();
    let mut ex = build(&shape, store.stores()).await;
    let build_time = t0.elapsed();
    let mut coordinator = Coordinator::default();
    if children.is_some() {
        let queue: Arc<dyn NodeQueue> = Arc::new(store.clone());
        coordinator = coordinator.with_node_queue(queue);
    }
    let t1 = Instant::now();
    let cache = Cache::new();
    let report = coordinator
        .run_parallel(
            &mut ex,
            &cache,
            super::dagger::WORKFLOW,
            RunId::generate(),
            dagger_coord::RunCancel::never(),
        )
        .await
        .expect("D8 run starts");
    let run_time = t1.elapsed();
    assert!(report.succeeded(), "D8 run failed: {report:?}");
    assert_eq!(report.metrics.nodes_completed as usize, shape.len());
    if let Some(children) = children {
        tokio::task::spawn_blocking(move || reap(children))
            .await
            .expect("workers reaped");
    }
    drop(ex);
    drop_schema(store).await;
    Timing {
        build: build_time,
        run: run_time,
    }
}

async fn drop_schema(store: PostgresStore) {
    if let Err(e) = store.drop_schema().await {
        eprintln!("dropping a bench schema: {e}");
    }
}

/// A worker process: `args` are what followed [`WORKER_FLAG`]: `q1 SCHEMA
/// IO_MICROS` (join the job, run it to its end, each task waiting that long) or `nodes SCHEMA` (execute node
/// attempts until stdin closes).
pub fn worker_main(args: &[String]) -> std::process::ExitCode {
    let (Some(kind), Some(schema)) = (args.first(), args.get(1)) else {
        eprintln!("usage: {WORKER_FLAG} q1 SCHEMA IO_MICROS | nodes SCHEMA");
        return std::process::ExitCode::from(2);
    };
    let rt = crate::runtime();
    let kind = kind.clone();
    let schema = schema.clone();
    let io = Duration::from_micros(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0));
    crate::on_workers(&rt, async move {
        let store = open(&schema).await;
        match kind.as_str() {
            "q1" => {
                let m = manager(&store, io);
                let status = m.resume_job(JOB).expect("job resumes").wait().await;
                assert_eq!(status, JobStatus::Completed(true));
            }
            _ => {
                let stop = CancellationToken::new();
                let on_eof = stop.clone();
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = std::io::stdin().read_to_end(&mut sink);
                    on_eof.cancel();
                });
                let queue: Arc<dyn NodeQueue> = Arc::new(store.clone());
                NodeWorker::new(queue, registry())
                    .concurrency(NODE_SLOTS_PER_WORKER)
                    .lease(Duration::from_secs(10))
                    .run(stop)
                    .await
                    .expect("node worker runs");
            }
        }
    });
    std::process::ExitCode::SUCCESS
}
