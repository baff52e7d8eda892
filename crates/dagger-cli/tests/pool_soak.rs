//! Bounded queue tables: tasks pushed through a pool of `dagger worker
//! --prune-older-than` processes on Postgres leave the task and node-queue
//! tables once their job ended, so a long soak keeps them small. The
//! CI-sized test pushes 20,000 tasks (`DAGGER_SOAK_CI_TASKS`); the ignored
//! soak pushes `DAGGER_SOAK_TASKS` (default 1,000,000) and prints the table
//! sizes (see docs/performance.md, "Soak"):
//!
//! ```sh
//! DAGGER_SOAK_TASKS=1000000 cargo test --release -p dagger-cli --test pool_soak -- --ignored --nocapture
//! ```
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_core::{Cache, JobStatus};
use dagger_storage::{PostgresOptions, PostgresStore};
use dagger_task_core::{StallAction, TaskAgentRegistry, TaskManager, TaskSpec};
use serde_json::json;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

use pg_sandbox::PgSandbox;

/// The tables a finished task or node attempt must leave.
const QUEUE_TABLES: [&str; 6] = [
    "task_jobs",
    "tasks",
    "task_dependencies",
    "task_counts",
    "task_attempt_errors",
    "node_queue",
];

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A direct connection to the sandbox's schema, for sizes and counts.
fn client(schema: &str) -> postgres::Client {
    let mut c = postgres::Client::connect(&pg_sandbox::url(), postgres::NoTls).unwrap();
    c.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    c
}

/// Rows and total size (bytes, with indexes and TOAST) of each queue table.
fn sizes(c: &mut postgres::Client) -> Vec<(&'static str, i64, i64)> {
    QUEUE_TABLES
        .iter()
        .map(|t| {
            let row = c
                .query_one(
                    &format!("SELECT COUNT(*), pg_total_relation_size('{t}') FROM {t}"),
                    &[],
                )
                .unwrap();
            (*t, row.get(0), row.get(1))
        })
        .collect()
}

fn rows(c: &mut postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

/// Pushes `total` echo tasks in jobs of `job_size`, at most `outstanding`
/// jobs unfinished at once, through two workers pruning what ended more
/// than `keep` ago (long enough for this loop to see each job's end on a
/// loaded machine); checks every job succeeded and that the queue tables
/// hold nothing once the last job was pruned. Prints the throughput, the
/// most task rows seen at once and the tables' sizes at the end.
fn soak(test: &str, total: usize, job_size: usize, keep: &str) {
    let Some(mut sandbox) = PgSandbox::new("soak", test) else {
        return;
    };
    for _ in 0..2 {
        sandbox.spawn_worker(
            env!("CARGO_BIN_EXE_dagger"),
            &[
                "--agents",
                "echo",
                "--concurrency",
                "16",
                "--prune-older-than",
                keep,
            ],
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let manager = TaskManager::new(
        Duration::from_secs(600),
        StallAction::TerminateJob,
        Cache::new(),
        TaskAgentRegistry::new(),
        std::sync::Arc::new(sandbox.store.clone()),
    );
    let mut c = client(&sandbox.schema);
    let outstanding = 2;
    let jobs = total.div_ceil(job_size);
    let mut open: VecDeque<String> = VecDeque::new();
    let (mut submitted, mut succeeded, mut peak) = (0, 0, 0i64);
    let began = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    while succeeded < jobs {
        while open.len() < outstanding && submitted < jobs {
            let job = format!("soak-{submitted}");
            let n = job_size.min(total - submitted * job_size);
            let specs = (0..n)
                .map(|i| TaskSpec::new(job.as_str(), "echo", "t").input(json!({ "i": i })))
                .collect();
            manager
                .submit_job(job.as_str(), specs, Some(vec!["echo".into()]), None)
                .unwrap();
            open.push_back(job);
            submitted += 1;
            if submitted % 10 == 0 {
                eprintln!(
                    "soak: job {submitted} of {jobs} submitted after {:.0} s",
                    began.elapsed().as_secs_f64()
                );
            }
        }
        if last_sample.elapsed() >= Duration::from_secs(1) {
            peak = peak.max(rows(&mut c, "tasks"));
            last_sample = Instant::now();
        }
        let mut still = VecDeque::new();
        for job in open.drain(..) {
            match manager.job_status(job.as_str()) {
                Ok(JobStatus::Running) => still.push_back(job),
                Ok(JobStatus::Completed(true)) => {
                    succeeded += 1;
                    last_progress = Instant::now();
                }
                other => panic!("job {job} ended {other:?} (pruned before it was seen?)"),
            }
        }
        open = still;
        assert!(
            last_progress.elapsed() < Duration::from_secs(120),
            "no job finished for two minutes ({succeeded} of {jobs} done)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = began.elapsed();
    // Every job ended: the workers prune them within `keep` plus a turn.
    let drained = Instant::now();
    while QUEUE_TABLES.iter().any(|t| rows(&mut c, t) > 0) {
        assert!(
            drained.elapsed() < Duration::from_secs(120),
            "the queue tables still hold rows: {:?}",
            sizes(&mut c)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "soak: {total} tasks in {jobs} jobs of {job_size} in {:.1} s ({:.0} tasks/s), \
         at most {peak} task rows at once; at the end (rows, bytes, bytes after VACUUM):",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    // The deleted rows' space is the server's to reclaim (autovacuum; a
    // server may run without it, as the development machine's does).
    let before = sizes(&mut c);
    for t in QUEUE_TABLES {
        c.batch_execute(&format!("VACUUM {t}")).unwrap();
    }
    for ((table, n, bytes), (_, _, vacuumed)) in before.into_iter().zip(sizes(&mut c)) {
        println!("  {table:<20} {n:>8} rows {bytes:>12} bytes {vacuumed:>10} bytes");
    }
    drop(c);
    drop(sandbox);
}

#[test]
fn finished_tasks_leave_the_queue_tables() {
    let total = env_count("DAGGER_SOAK_CI_TASKS", 20_000);
    soak("ci", total, 2_000, "10s");
}

#[test]
#[ignore = "a long soak: DAGGER_SOAK_TASKS tasks (default 1,000,000); run with --ignored --nocapture"]
fn soak_keeps_the_queue_tables_small() {
    let total = env_count("DAGGER_SOAK_TASKS", 1_000_000);
    let job_size = env_count("DAGGER_SOAK_JOB", 10_000);
    soak("long", total, job_size, "30s");
}

#[test]
fn worker_refuses_a_malformed_prune_age() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dagger"))
        .args(["worker", "--prune-older-than", "soon"])
        .env(
            "DAGGER_DB",
            format!("sqlite:{}", dir.path().join("runs.db").display()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--prune-older-than") && stderr.contains("not a duration"),
        "{stderr}"
    );
}
