//! Q1 on Postgres (`../shared/bench/WORKLOADS.md`): insert N no-op tasks in
//! one job, then run them with 1, 2 and 4 worker processes sharing the
//! queue; prints tasks per second for each. A plain harness (not criterion):
//! one sample is seconds long and spawns processes.
//!
//! `cargo bench -p dagger-storage --features postgres --bench postgres_q1`
//! (`DAGGER_Q1_TASKS`, default 2000; `DAGGER_TEST_POSTGRES_URL`).
//! Without the feature the bench does nothing.

#[cfg(feature = "postgres")]
mod q1 {
    use dagger_core::store::TaskStore;
    use dagger_core::{BoxError, Cache, JobStatus};
    use dagger_storage::{PostgresOptions, PostgresStore};
    use dagger_task_core::{
        FnAgent, JobConfig, StallAction, TaskAgentRegistry, TaskManager, TaskOutcome, TaskSpec,
    };
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const JOB: &str = "q1";

    fn url() -> String {
        std::env::var("DAGGER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    fn open(schema: &str) -> PostgresStore {
        let options = PostgresOptions {
            schema: Some(schema.to_string()),
            ..PostgresOptions::default()
        };
        match PostgresStore::connect_blocking(&url(), &options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("postgres_q1: {e}");
                std::process::exit(2);
            }
        }
    }

    fn manager(store: &PostgresStore) -> TaskManager {
        let registry = TaskAgentRegistry::new();
        let noop = FnAgent::new("noop", |input, _ctx| async move {
            Ok::<_, BoxError>(TaskOutcome::Completed(input))
        });
        if let Err(e) = registry.register_agent(Arc::new(noop)) {
            eprintln!("postgres_q1: {e}");
            std::process::exit(2);
        }
        let store: Arc<dyn TaskStore> = Arc::new(store.clone());
        TaskManager::new(
            Duration::from_secs(600),
            StallAction::TerminateJob,
            Cache::new(),
            registry,
            store,
        )
    }

    /// The worker process: resume the job, run until it ends.
    pub(super) fn worker(schema: &str) {
        let store = open(schema);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let m = manager(&store);
            match m.resume_job(JOB) {
                Ok(h) => {
                    let status = h.wait().await;
                    assert_eq!(status, JobStatus::Completed(true));
                }
                Err(e) => eprintln!("worker: {e}"),
            }
        });
    }

    fn seed(schema: &str, n: usize) {
        let store = open(schema);
        let m = manager(&store);
        let specs: Vec<TaskSpec> = (0..n)
            .map(|i| TaskSpec::new(JOB, "noop", "no-op").input(serde_json::json!(i)))
            .collect();
        for chunk in specs.chunks(1000) {
            m.add_tasks(chunk.to_vec()).expect("add tasks");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let cfg = JobConfig {
                max_concurrency: 16,
                lease_ms: 30_000,
                ..JobConfig::default()
            };
            drop(m.start_job(JOB, vec![], None, Some(cfg)).expect("start"));
        });
        rt.shutdown_background();
    }

    pub(super) fn run() {
        let n: usize = std::env::var("DAGGER_Q1_TASKS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        let exe = std::env::current_exe().expect("bench binary");
        println!("Q1 on Postgres ({}), {n} no-op tasks in one job", url());
        for workers in [1usize, 2, 4] {
            let schema = format!("q1_bench_{}_{workers}", std::process::id());
            seed(&schema, n);
            let start = Instant::now();
            let children: Vec<_> = (0..workers)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .env("DAGGER_Q1_WORKER", &schema)
                        .spawn()
                        .expect("spawn worker")
                })
                .collect();
            for mut c in children {
                assert!(c.wait().expect("worker exit").success());
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "  {workers} worker process(es): {secs:>7.2} s, {:>8.0} tasks/s",
                n as f64 / secs
            );
            let store = open(&schema);
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            if let Err(e) = rt.block_on(store.drop_schema()) {
                eprintln!("postgres_q1: dropping `{schema}`: {e}");
            }
        }
    }
}

fn main() {
    #[cfg(feature = "postgres")]
    {
        if let Ok(schema) = std::env::var("DAGGER_Q1_WORKER") {
            q1::worker(&schema);
            return;
        }
        // `cargo bench` passes `--bench`; `cargo test` runs benches with
        // no such flag only to check they start, so do nothing then.
        if std::env::args().any(|a| a == "--bench") {
            q1::run();
        }
    }
}
