//! The Task Agent store on SQLite: jobs survive a reopen, several managers
//! in threads and in separate processes share one file without running a
//! task twice at once or losing one, and a job whose process is SIGKILLed
//! mid-run is finished by a new manager.

mod common;

use dagger_core::{BoxError, Cache, JobStatus, TaskStatus};
use dagger_storage::{SqliteOptions, SqliteStore};
use dagger_task_core::{
    FnAgent, JobConfig, StallAction, TaskAgentRegistry, TaskContext, TaskManager, TaskOutcome,
    TaskSpec, TaskStore,
};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const JOB: &str = "shared";

fn open(path: &Path) -> Arc<dyn TaskStore> {
    let loc = format!("sqlite:{}", path.display());
    Arc::new(SqliteStore::open_blocking(&loc, SqliteOptions::default()).expect("open store"))
}

/// An agent that proves exclusivity with the file system: it creates
/// `running/<task>` with O_EXCL (fails if another worker, in any process,
/// runs the task now), records the run in `runs/`, and takes `work_ms`.
fn exclusive_agent(dir: PathBuf, work_ms: u64) -> FnAgent {
    FnAgent::new("work", move |input, ctx: TaskContext| {
        let dir = dir.clone();
        async move {
            let id = ctx.task_id().to_string();
            let marker = dir.join("running").join(&id);
            if std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_err()
            {
                std::fs::write(dir.join("overlap"), &id)?;
            }
            std::fs::write(
                dir.join("runs")
                    .join(format!("{id}.{}.{}", std::process::id(), ctx.attempt())),
                b"",
            )?;
            tokio::time::sleep(Duration::from_millis(work_ms)).await;
            let _ = std::fs::remove_file(&marker);
            Ok::<_, BoxError>(TaskOutcome::Completed(input))
        }
    })
}

fn manager(store: Arc<dyn TaskStore>, agent: FnAgent) -> TaskManager {
    let registry = TaskAgentRegistry::new();
    registry.register_agent(Arc::new(agent)).expect("register");
    // The heartbeat exceeds every lease used here: a crashed worker's tasks
    // come back by lease expiry before the job counts as stalled.
    TaskManager::new(
        Duration::from_secs(5),
        StallAction::TerminateJob,
        Cache::new(),
        registry,
        store,
    )
}

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("running")).expect("mkdir");
    std::fs::create_dir(dir.path().join("runs")).expect("mkdir");
    dir
}

/// Adds `n` tasks to the shared job (chains of 10), without starting it.
fn seed_job(store: Arc<dyn TaskStore>, dir: &Path, n: usize, lease_ms: u64) {
    let m = manager(store, exclusive_agent(dir.to_path_buf(), 0));
    let specs = (0..n)
        .map(|i| {
            let s = TaskSpec::new(JOB, "work", format!("task {i}"))
                .id(format!("t{i}"))
                .input(json!(i));
            if i % 10 == 0 {
                s
            } else {
                s.depends_on(format!("t{}", i - 1))
            }
        })
        .collect();
    m.add_tasks(specs).expect("add tasks");
    // Stored config for every manager that resumes the job.
    let rt = common::current_thread_runtime();
    rt.block_on(async {
        let cfg = JobConfig {
            lease_ms,
            max_concurrency: 4,
            // A killed worker's expired leases count as attempts: allow a second.
            retry: dagger_core::RetryPolicy::attempts(2),
            ..JobConfig::default()
        };
        let h = m.start_job(JOB, vec![], None, Some(cfg)).expect("start");
        drop(h);
    });
    // Dropping the runtime stops this manager before it claims anything
    // substantial; anything it claimed is recovered by lease expiry.
    rt.shutdown_background();
}

fn runs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("runs"))
        .expect("runs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn assert_all_done(store: Arc<dyn TaskStore>, dir: &Path, n: usize) -> Vec<String> {
    assert!(
        !dir.join("overlap").exists(),
        "a task ran twice at the same time"
    );
    let m = manager(store, exclusive_agent(dir.to_path_buf(), 0));
    assert_eq!(m.job_status(JOB).expect("job"), JobStatus::Completed(true));
    let tasks = m.get_job_tasks(JOB).expect("tasks");
    assert_eq!(tasks.len(), n);
    for t in &tasks {
        assert_eq!(t.status, TaskStatus::Completed, "{}", t.task_id);
        assert_eq!(
            t.output,
            Some(json!(
                t.task_id.as_str()[1..].parse::<usize>().expect("num")
            ))
        );
    }
    let runs = runs(dir);
    for i in 0..n {
        assert!(
            runs.iter().any(|r| r.starts_with(&format!("t{i}."))),
            "t{i} never ran"
        );
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_jobs_round_trip_through_sqlite() {
    let dir = scratch();
    let path = dir.path().join("tasks.db");
    let store = open(&path);
    let m = manager(store.clone(), exclusive_agent(dir.path().to_path_buf(), 0));
    m.add_task(
        TaskSpec::new("j", "work", "a")
            .id("a")
            .input(json!({"x": [1, 2]}))
            .priority(3),
    )
    .unwrap();
    m.add_task(
        TaskSpec::new("j", "work", "b")
            .id("b")
            .depends_on("a")
            .acceptance_criteria("ok"),
    )
    .unwrap();
    let err = m.add_dependency("a", "b").unwrap_err();
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> a");
    let h = m
        .start_job("j", vec![], Some(vec!["work".into()]), None)
        .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(20), h.wait())
            .await
            .unwrap(),
        JobStatus::Completed(true)
    );
    drop(m);
    // A fresh handle on the file sees everything.
    let m = manager(open(&path), exclusive_agent(dir.path().to_path_buf(), 0));
    let b = m.get_task_by_id("b").unwrap();
    assert_eq!(b.dependencies, vec![dagger_core::TaskId::from("a")]);
    assert_eq!(b.acceptance_criteria.as_deref(), Some("ok"));
    assert_eq!(
        m.get_task_by_id("a").unwrap().output,
        Some(json!({"x": [1, 2]}))
    );
    let err = m.add_task(TaskSpec::new("j", "work", "late")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "job `j` has ended (Succeeded); it accepts no more tasks"
    );
    assert!(
        m.get_dot_graph(Some("j"))
            .unwrap()
            .contains("\"a\" -> \"b\";")
    );
}

#[test]
fn managers_in_several_threads_share_one_file() {
    const N: usize = 300;
    let dir = scratch();
    let path = dir.path().join("tasks.db");
    seed_job(open(&path), dir.path(), N, 10_000);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (path, d) = (path.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let rt = common::current_thread_runtime();
                rt.block_on(async {
                    let m = manager(open(&path), exclusive_agent(d, 1));
                    let h = m.resume_job(JOB).expect("resume");
                    tokio::time::timeout(Duration::from_secs(60), h.wait())
                        .await
                        .expect("job ends")
                })
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), JobStatus::Completed(true));
    }
    let runs = assert_all_done(open(&path), dir.path(), N);
    assert_eq!(
        runs.len(),
        N,
        "with no lease expiry every task runs exactly once"
    );
}

/// Entry point of the child processes (run only when a test spawns it).
#[test]
#[ignore = "spawned as a child process by the multi-process tests"]
fn child_worker() {
    let Ok(path) = std::env::var("DAGGER_TASK_DB") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("DAGGER_TASK_DIR").expect("dir"));
    let work_ms: u64 = std::env::var("DAGGER_TASK_WORK_MS")
        .expect("ms")
        .parse()
        .expect("ms");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let m = manager(
            open(Path::new(&path)),
            exclusive_agent(dir.clone(), work_ms),
        );
        let h = m.resume_job(JOB).expect("resume");
        println!("ready");
        let status = h.wait().await;
        println!("done {status:?}");
    });
}

fn spawn_child(path: &Path, dir: &Path, work_ms: u64) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DAGGER_TASK_DB", path)
        .env("DAGGER_TASK_DIR", dir)
        .env("DAGGER_TASK_WORK_MS", work_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

#[test]
fn separate_processes_share_one_file() {
    const N: usize = 200;
    let dir = scratch();
    let path = dir.path().join("tasks.db");
    seed_job(open(&path), dir.path(), N, 10_000);
    let children: Vec<_> = (0..3).map(|_| spawn_child(&path, dir.path(), 2)).collect();
    for mut c in children {
        let out = c.stdout.take().expect("stdout");
        let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
        assert!(c.wait().expect("child exit").success());
        assert!(
            lines.iter().any(|l| l == "done Completed(true)"),
            "{lines:?}"
        );
    }
    let runs = assert_all_done(open(&path), dir.path(), N);
    assert_eq!(runs.len(), N, "every task ran exactly once");
    let pids: std::collections::HashSet<&str> =
        runs.iter().filter_map(|r| r.split('.').nth(1)).collect();
    assert!(
        pids.len() >= 2,
        "work was shared between processes: {pids:?}"
    );
}

#[test]
fn a_sigkilled_worker_process_loses_no_task() {
    const N: usize = 100;
    let dir = scratch();
    let path = dir.path().join("tasks.db");
    seed_job(open(&path), dir.path(), N, 1_000);
    let mut child = spawn_child(&path, dir.path(), 20);
    let out = child.stdout.take().expect("stdout");
    let lines = BufReader::new(out).lines();
    assert!(
        lines.map_while(Result::ok).any(|l| l.ends_with("ready")),
        "child did not start"
    );
    // Kill once about half of the tasks have started.
    let runs_dir = dir.path().join("runs");
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        // The only wait on time in this test: watching the child's progress.
        loop {
            let n = std::fs::read_dir(&runs_dir).map(|d| d.count()).unwrap_or(0);
            if n >= N / 2 {
                let _ = tx.send(n);
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let started = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child made progress");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    watcher.join().expect("watcher");
    assert!(started < N, "killed mid-job");

    let store = open(&path);
    let in_progress: Vec<String> =
        manager(store.clone(), exclusive_agent(dir.path().to_path_buf(), 0))
            .get_job_tasks(JOB)
            .expect("tasks")
            .into_iter()
            .filter(|t| t.status == TaskStatus::InProgress)
            .map(|t| t.task_id.to_string())
            .collect();
    let _ = std::fs::remove_dir_all(dir.path().join("running"));
    std::fs::create_dir(dir.path().join("running")).expect("mkdir");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let resumed = std::time::Instant::now();
    let status = rt.block_on(async {
        let m = manager(store.clone(), exclusive_agent(dir.path().to_path_buf(), 0));
        let handles = m.resume_jobs().expect("resume");
        assert_eq!(handles.len(), 1);
        tokio::time::timeout(Duration::from_secs(60), handles[0].wait())
            .await
            .expect("job ends")
    });
    assert_eq!(status, JobStatus::Completed(true));
    assert!(resumed.elapsed() < Duration::from_secs(30));
    let runs = assert_all_done(store, dir.path(), N);
    // At-least-once: tasks in progress at the kill (and any whose lease
    // expired under load) ran again, but every run held its own claim (a
    // claim may have no run: the kill can land between claim and start).
    let tasks = manager(open(&path), exclusive_agent(dir.path().to_path_buf(), 0))
        .get_job_tasks(JOB)
        .expect("tasks");
    for t in &tasks {
        let prefix = format!("{}.", t.task_id);
        let n = runs.iter().filter(|r| r.starts_with(&prefix)).count();
        assert!(
            n >= 1 && n as u32 <= t.attempts,
            "{}: {n} runs, {} claims",
            t.task_id,
            t.attempts
        );
    }
    for t in tasks
        .iter()
        .filter(|t| in_progress.contains(&t.task_id.to_string()))
    {
        assert!(t.attempts >= 2, "{} was in progress at the kill", t.task_id);
    }
}
