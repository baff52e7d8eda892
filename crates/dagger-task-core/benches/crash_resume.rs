//! Q5 of `shared/bench/WORKLOADS.md` on embedded SQLite: a worker process
//! runs Q1 (no-op tasks in one job), is SIGKILLed once half of the tasks
//! have run, and a new manager (this process) resumes the job and finishes
//! it. Prints one `RESULT` line:
//!
//! - `lost`: tasks not Completed at the end, or Completed without any run
//!   of their agent (must be 0);
//! - `run_twice`: tasks whose agent ran more than once (at-least-once: the
//!   attempts in flight at the kill run again);
//! - `resume_ms`: from opening the store after the kill to the first task
//!   run by the new manager;
//! - `recovered_ms`: from the kill until every task the killed worker had
//!   claimed (claimed again after the restart) has finished (bounded by the
//!   lease, which the dead worker cannot renew);
//! - `in_flight`: those tasks;
//! - `finish_ms`: until the job ended.
//!
//! ```sh
//! cargo bench -p dagger-task-core --bench crash_resume
//! ```
//!
//! `DAGGER_BENCH_TASKS` (default 100,000), `DAGGER_BENCH_Q5_LEASE_MS`
//! (default 1,000), `DAGGER_BENCH_Q5_REPS` (default 1). The worker process is
//! this binary, re-run with `DAGGER_BENCH_Q5_CHILD` set. Every agent run is
//! appended (one unbuffered `write`) to a per-process file before the agent
//! returns, so a SIGKILL loses no record of a run.

#![allow(missing_docs)]

use dagger_core::{BoxError, Cache, JobStatus, TaskStatus};
use dagger_storage::{SqliteOptions, SqliteStore};
use dagger_task_core::{
    FnAgent, JobConfig, StallAction, TaskAgentRegistry, TaskManager, TaskOutcome, TaskSpec,
    TaskStore,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const JOB: &str = "q5";
const CHILD: &str = "DAGGER_BENCH_Q5_CHILD";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(db: &Path) -> Arc<dyn TaskStore> {
    let location = format!("sqlite:{}", db.display());
    Arc::new(SqliteStore::open_blocking(&location, SqliteOptions::default()).expect("open"))
}

/// A no-op agent that appends its task id to `log` and counts its runs.
fn manager(store: Arc<dyn TaskStore>, log: &Path, runs: Arc<AtomicU64>) -> TaskManager {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("run log");
    let file = Arc::new(parking_lot::Mutex::new(file));
    let registry = TaskAgentRegistry::new();
    registry
        .register_agent(Arc::new(FnAgent::new("noop", move |_v, ctx| {
            let file = file.clone();
            let runs = runs.clone();
            async move {
                let line = format!("{}\n", ctx.task_id());
                file.lock().write_all(line.as_bytes())?;
                runs.fetch_add(1, Ordering::Relaxed);
                Ok::<_, BoxError>(TaskOutcome::Completed(serde_json::Value::Null))
            }
        })))
        .expect("register");
    TaskManager::new(
        Duration::from_secs(600),
        StallAction::TerminateJob,
        Cache::new(),
        registry,
        store,
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The worker process: starts the job and reports its progress on stdout
/// until it is killed.
fn child(dir: &Path) {
    let lease_ms = env_or("DAGGER_BENCH_Q5_LEASE_MS", 1_000u64);
    let runs = Arc::new(AtomicU64::new(0));
    let log = dir.join(format!("runs.{}", std::process::id()));
    let m = manager(open(&dir.join("q5.db")), &log, runs.clone());
    runtime().block_on(async move {
        let cfg = JobConfig {
            max_concurrency: 64,
            lease_ms,
            // The killed worker's expired leases count as attempts.
            retry: dagger_core::RetryPolicy::attempts(3),
            ..JobConfig::default()
        };
        let h = m.start_job(JOB, vec![], None, Some(cfg)).expect("start");
        let mut out = std::io::stdout();
        loop {
            let _ = writeln!(out, "ran {}", runs.load(Ordering::Relaxed));
            let _ = out.flush();
            tokio::select! {
                _ = h.wait() => break,
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    });
}

/// Runs of each task, from every process's run log.
fn read_runs(dir: &Path) -> HashMap<String, u32> {
    let mut runs = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path: PathBuf = entry.expect("entry").path();
        let is_log = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("runs."));
        if !is_log {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("run log");
        for line in text.lines() {
            *runs.entry(line.to_string()).or_default() += 1;
        }
    }
    runs
}

struct Outcome {
    killed_at: u64,
    in_flight: usize,
    lost: usize,
    run_twice: usize,
    resume_ms: f64,
    recovered_ms: f64,
    finish_ms: f64,
}

fn once(n: usize) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("q5.db");
    {
        let specs: Vec<TaskSpec> = (0..n)
            .map(|i| TaskSpec::new(JOB, "noop", "").id(format!("t{i}")))
            .collect();
        let m = manager(open(&db), &dir.path().join("seed.log"), Arc::default());
        for chunk in specs.chunks(10_000) {
            m.add_tasks(chunk.to_vec()).expect("insert");
        }
    }
    let exe = std::env::current_exe().expect("bench binary");
    let mut child = Command::new(exe)
        .env(CHILD, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let out = child.stdout.take().expect("stdout");
    let half = (n / 2) as u64;
    let mut killed_at = 0;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let ran: u64 = line
            .strip_prefix("ran ")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if ran >= half {
            killed_at = ran;
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(killed_at > 0, "the worker made no progress");

    // The restart: open the store, make a manager, resume the job.
    let restart = Instant::now();
    let killed_ms = dagger_core::now_millis();
    let store = open(&db);
    let runs = Arc::new(AtomicU64::new(0));
    let m = manager(store, &dir.path().join("runs.resumed"), runs.clone());
    let mut in_flight = 0;
    let (resume, finish, recovered) = runtime().block_on(async {
        let handles = m.resume_jobs().expect("resume");
        assert_eq!(handles.len(), 1, "one job to resume");
        let mut resume = None;
        loop {
            if resume.is_none() && runs.load(Ordering::Relaxed) > 0 {
                resume = Some(restart.elapsed());
            }
            tokio::select! {
                s = handles[0].wait() => {
                    assert_eq!(s, JobStatus::Completed(true));
                    break;
                }
                () = tokio::time::sleep(Duration::from_micros(200)) => {}
            }
        }
        let finish = restart.elapsed();
        // The tasks the killed worker had claimed were claimed again; when
        // the last of them finished.
        let tasks = m.get_job_tasks(JOB).expect("tasks");
        let again: Vec<_> = tasks.iter().filter(|t| t.attempts > 1).collect();
        let recovered = again.iter().filter_map(|t| t.finished_at).max();
        in_flight = again.len();
        (resume.unwrap_or(finish), finish, recovered)
    });
    let tasks = m.get_job_tasks(JOB).expect("tasks");
    let runs = read_runs(dir.path());
    let lost = tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Completed || !runs.contains_key(t.task_id.as_str()))
        .count();
    let run_twice = runs.values().filter(|&&r| r > 1).count();
    Outcome {
        killed_at,
        in_flight,
        lost,
        run_twice,
        resume_ms: resume.as_secs_f64() * 1e3,
        recovered_ms: recovered.map_or(0.0, |at| (at - killed_ms).max(0) as f64),
        finish_ms: finish.as_secs_f64() * 1e3,
    }
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
        return;
    }
    // `cargo test` runs benches without `--bench` only to see them start.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_or("DAGGER_BENCH_TASKS", 100_000usize);
    let lease_ms = env_or("DAGGER_BENCH_Q5_LEASE_MS", 1_000u64);
    for _ in 0..env_or("DAGGER_BENCH_Q5_REPS", 1usize) {
        let o = once(n);
        println!(
            "RESULT workload=Q5 engine=dagger store=sqlite tasks={n} lease_ms={lease_ms} \
             killed_after={} in_flight={} lost={} run_twice={} resume_ms={:.1} \
             recovered_ms={:.0} finish_ms={:.0}",
            o.killed_at, o.in_flight, o.lost, o.run_twice, o.resume_ms, o.recovered_ms, o.finish_ms
        );
    }
}
