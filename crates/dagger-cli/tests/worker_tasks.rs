//! `dagger worker --concurrency N` bounds the Task Agent tasks it runs at
//! once across all jobs, not only its node attempts (on Postgres).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_core::store::TaskStore;
use dagger_core::{Cache, JobStatus};
use dagger_storage::{PostgresOptions, PostgresStore};
use dagger_task_core::{StallAction, TaskAgentRegistry, TaskManager, TaskSpec};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn url() -> String {
    std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh schema, or `None` when the server is unreachable and
/// `DAGGER_TEST_SKIP_SERVERS=1` (the convention of `pool.rs`).
fn fresh(test: &str) -> Option<(String, PostgresStore)> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("t_wt_{test}_{}_{nanos}", std::process::id());
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        ..PostgresOptions::default()
    };
    match PostgresStore::connect_blocking(&url(), &options) {
        Ok(s) => Some((schema, s)),
        Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1") => {
            eprintln!("skipping: PostgreSQL at {} is unreachable ({e})", url());
            None
        }
        Err(e) => panic!(
            "PostgreSQL at {} is unreachable: {e} (set DAGGER_TEST_SKIP_SERVERS=1 to skip)",
            url()
        ),
    }
}

struct Cleanup {
    worker: Child,
    store: PostgresStore,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
        let store = self.store.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(store.drop_schema())
        })
        .join();
    }
}

#[test]
fn worker_concurrency_bounds_tasks_across_jobs() {
    let Some((schema, store)) = fresh("conc") else {
        return;
    };
    let worker = Command::new(env!("CARGO_BIN_EXE_dagger"))
        .args(["worker", "--concurrency", "2", "--agents", "shell"])
        .env("DAGGER_PG_SCHEMA", &schema)
        .env("DAGGER_DB", url())
        .env("DAGGER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(std::env::temp_dir().join(format!("{schema}.log"))).unwrap())
        .spawn()
        .unwrap();
    let cleanup = Cleanup {
        worker,
        store: store.clone(),
    };
    let tasks: Arc<dyn TaskStore> = Arc::new(store);
    let manager = TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        TaskAgentRegistry::new(),
        tasks,
    );
    // Each task writes its start and end time (ns) from inside its shell,
    // so the overlap counted is that of tasks actually executing.
    let marks = tempfile::tempdir().unwrap();
    let jobs = ["conc-a", "conc-b"];
    for job in jobs {
        let specs = (0..4)
            .map(|i| {
                let id = format!("{job}-{i}");
                let dir = marks.path().display();
                let command = format!(
                    "date +%s%N > {dir}/.s.{id} && mv {dir}/.s.{id} {dir}/start.{id}; \
                     sleep 0.4; date +%s%N > {dir}/.e.{id} && mv {dir}/.e.{id} {dir}/end.{id}"
                );
                TaskSpec::new(job, "shell", "nap")
                    .id(id)
                    .input(json!({ "command": command }))
            })
            .collect();
        manager
            .submit_job(job, specs, Some(vec!["shell".into()]), None)
            .unwrap();
    }
    let start = Instant::now();
    while jobs
        .iter()
        .any(|j| manager.job_status(*j).unwrap() == JobStatus::Running)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the worker did not finish both jobs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for job in jobs {
        assert_eq!(manager.job_status(job).unwrap(), JobStatus::Completed(true));
    }
    let read = |name: String| -> i128 {
        std::fs::read_to_string(marks.path().join(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .parse()
            .unwrap()
    };
    // (time, +1 start / -1 end); at equal times an end comes first.
    let mut edges: Vec<(i128, i32)> = Vec::new();
    for job in jobs {
        for i in 0..4 {
            edges.push((read(format!("start.{job}-{i}")), 1));
            edges.push((read(format!("end.{job}-{i}")), -1));
        }
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert!(
        most <= 2,
        "{most} tasks ran at once on a worker with --concurrency 2"
    );
    assert_eq!(most, 2, "two tasks do run at once");
    drop(cleanup);
}
