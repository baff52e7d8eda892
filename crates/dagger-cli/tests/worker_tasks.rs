//! `dagger worker --concurrency N` bounds the Task Agent tasks it runs at
//! once across all jobs, not only its node attempts (on Postgres).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_core::store::TaskStore;
use dagger_core::{Cache, JobStatus};
use dagger_storage::{PostgresOptions, PostgresStore};
use dagger_task_core::{StallAction, TaskAgentRegistry, TaskManager, TaskSpec};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

use pg_sandbox::PgSandbox;

#[test]
fn worker_concurrency_bounds_tasks_across_jobs() {
    let Some(mut sandbox) = PgSandbox::new("wt", "conc") else {
        return;
    };
    sandbox.spawn_worker(
        env!("CARGO_BIN_EXE_dagger"),
        &["--concurrency", "2", "--agents", "shell"],
    );
    let tasks: Arc<dyn TaskStore> = Arc::new(sandbox.store.clone());
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
    drop(sandbox);
}
