//! Task Agent jobs on Postgres across threads and worker PROCESSES sharing
//! one queue: no task lost, none running twice at once, a SIGKILLed worker's
//! tasks finished by the others, stale completions of a frozen worker
//! rejected; plus the two Postgres mechanisms underneath (SKIP LOCKED claims
//! and LISTEN/NOTIFY wake-ups).
#![cfg(feature = "postgres")]

mod common;

// `open(schema)`: a store on `schema`, `None` when servers may be skipped.
use common::postgres::{drop_schema_blocking, open_blocking as open, unique_schema, url};
use dagger_core::store::{BreakerRecord, BreakerState, TaskStore, transact};
use dagger_core::{BoxError, Cache, JobId, JobStatus, TaskStatus};
use dagger_storage::PostgresStore;
use dagger_task_core::{
    CircuitBreaker, FnAgent, JobConfig, StallAction, TaskAgentRegistry, TaskContext, TaskManager,
    TaskOutcome, TaskSpec,
};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const JOB: &str = "shared";

fn shared(store: &PostgresStore) -> Arc<dyn TaskStore> {
    Arc::new(store.clone())
}

/// An agent that proves exclusivity with the file system: it creates
/// `running/<task>` with O_EXCL (fails if another worker, in any process,
/// runs the task now), records the run in `runs/<task>.<pid>.<attempt>`,
/// works `work_ms` (blocking the thread when `blocking`, so a SIGSTOP
/// freezes it mid-task), and outputs its input and attempt.
fn exclusive_agent(dir: PathBuf, work_ms: u64, blocking: bool) -> FnAgent {
    FnAgent::new("work", move |input, ctx: TaskContext| {
        let dir = dir.clone();
        async move {
            let id = ctx.task_id().to_string();
            let run = format!("{id}.{}.{}", std::process::id(), ctx.attempt());
            std::fs::write(dir.join("runs").join(&run), b"")?;
            let marker = dir.join("running").join(&id);
            let exclusive = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok();
            if !exclusive && !blocking {
                std::fs::write(dir.join("overlap"), &id)?;
            }
            if blocking {
                std::thread::sleep(Duration::from_millis(work_ms));
            } else {
                tokio::time::sleep(Duration::from_millis(work_ms)).await;
            }
            let _ = std::fs::remove_file(&marker);
            std::fs::write(dir.join("finished").join(&run), b"")?;
            Ok::<_, BoxError>(TaskOutcome::Completed(
                json!({"n": input, "attempt": ctx.attempt()}),
            ))
        }
    })
}

fn manager(store: Arc<dyn TaskStore>, agent: FnAgent, heartbeat: Duration) -> TaskManager {
    let registry = TaskAgentRegistry::new();
    registry.register_agent(Arc::new(agent)).expect("register");
    TaskManager::new(
        heartbeat,
        StallAction::TerminateJob,
        Cache::new(),
        registry,
        store,
    )
}

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["running", "runs", "finished"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    dir
}

/// Adds `n` tasks to the shared job (chains of `chain`), plus `extra`
/// specs, and stores the job's config, without running anything.
fn seed_job(
    store: Arc<dyn TaskStore>,
    dir: &Path,
    n: usize,
    chain: usize,
    extra: Vec<TaskSpec>,
    cfg: JobConfig,
) {
    let m = manager(
        store,
        exclusive_agent(dir.to_path_buf(), 0, false),
        Duration::from_secs(60),
    );
    // Known here so that `gate` tasks can be added; no worker registers it.
    m.registry()
        .register_agent(Arc::new(FnAgent::new("gate", |input, _ctx| async move {
            Ok::<_, BoxError>(TaskOutcome::Completed(input))
        })))
        .expect("register gate");
    let mut specs: Vec<TaskSpec> = (0..n)
        .map(|i| {
            let s = TaskSpec::new(JOB, "work", format!("task {i}"))
                .id(format!("t{i}"))
                .input(json!(i));
            if i % chain == 0 {
                s
            } else {
                s.depends_on(format!("t{}", i - 1))
            }
        })
        .collect();
    specs.extend(extra);
    m.add_tasks(specs).expect("add tasks");
    let rt = common::current_thread_runtime();
    rt.block_on(async {
        let h = m.start_job(JOB, vec![], None, Some(cfg)).expect("start");
        drop(h);
    });
    // The runtime stops before the job loop is polled; anything claimed
    // anyway is recovered by lease expiry.
    rt.shutdown_background();
}

fn runs(dir: &Path, sub: &str) -> Vec<String> {
    std::fs::read_dir(dir.join(sub))
        .expect("runs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every work task completed with the output of its current attempt (a
/// stale completion, had it been accepted, would carry an older one).
fn assert_all_done(store: &Arc<dyn TaskStore>, dir: &Path, n: usize, overlap_allowed: bool) {
    if !overlap_allowed {
        assert!(
            !dir.join("overlap").exists(),
            "a task ran twice at the same time"
        );
    }
    let tasks = transact(store.as_ref(), |tx| tx.job_tasks(&JobId::from(JOB))).expect("tasks");
    let work: Vec<_> = tasks.iter().filter(|t| t.agent == "work").collect();
    assert_eq!(work.len(), n);
    for t in work {
        assert_eq!(t.status, TaskStatus::Completed, "{}", t.task_id);
        let i: usize = t.task_id.as_str()[1..].parse().expect("num");
        assert_eq!(
            t.output,
            Some(json!({"n": i, "attempt": t.attempts})),
            "{} holds the output of its current attempt",
            t.task_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_round_trips_through_postgres() {
    let Some(store) = common::postgres::fresh_store("tasks_rt").await else {
        return;
    };
    let dir = scratch();
    let m = manager(
        shared(&store),
        exclusive_agent(dir.path().to_path_buf(), 0, false),
        Duration::from_secs(60),
    );
    m.add_task(
        TaskSpec::new("j", "work", "a")
            .id("t0")
            .input(json!(0))
            .priority(3),
    )
    .unwrap();
    m.add_task(
        TaskSpec::new("j", "work", "b")
            .id("t1")
            .input(json!(1))
            .depends_on("t0")
            .acceptance_criteria("ok"),
    )
    .unwrap();
    let err = m.add_dependency("t0", "t1").unwrap_err();
    assert_eq!(err.to_string(), "dependency cycle: t0 -> t1 -> t0");
    let h = m
        .start_job("j", vec![], Some(vec!["work".into()]), None)
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), h.wait())
        .await
        .expect("job ends");
    assert_eq!(status, JobStatus::Completed(true));
    drop(m);
    // A manager on a second pool sees everything.
    let again = common::postgres::same_schema(&store).await;
    let m = manager(
        shared(&again),
        exclusive_agent(dir.path().to_path_buf(), 0, false),
        Duration::from_secs(60),
    );
    let b = m.get_task_by_id("t1").unwrap();
    assert_eq!(b.dependencies, vec![dagger_core::TaskId::from("t0")]);
    assert_eq!(b.output, Some(json!({"n": 1, "attempt": 1})));
    let err = m.add_task(TaskSpec::new("j", "work", "late")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "job `j` has ended (Succeeded); it accepts no more tasks"
    );
    store.drop_schema().await.unwrap();
}

#[test]
fn claims_skip_task_rows_locked_by_another_session() {
    let schema = unique_schema("skip_locked");
    let Some(store) = open(&schema) else {
        return;
    };
    let dir = scratch();
    seed_job(
        shared(&store),
        dir.path(),
        2,
        1,
        vec![],
        JobConfig::default(),
    );
    // Another session (an operator's psql, say) holds the first task's row.
    let mut holder = Command::new("psql")
        .arg(url())
        .args(["-qAt", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("psql");
    let mut stdin = holder.stdin.take().expect("stdin");
    use std::io::Write;
    writeln!(
        stdin,
        "SET search_path TO {schema}; BEGIN; SELECT task_id FROM tasks WHERE task_id = 't0' FOR UPDATE;"
    )
    .expect("write");
    stdin.flush().expect("flush");
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().expect("a line").expect("utf-8"), "t0");

    // The claim query skips that row instead of waiting for it.
    let job = JobId::from(JOB);
    let ready = transact(&store, |tx| tx.ready_tasks(&job, i64::MAX, 5)).expect("claim");
    let ids: Vec<&str> = ready.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["t1"]);

    writeln!(stdin, "COMMIT;").expect("write");
    drop(stdin);
    assert!(holder.wait().expect("psql exits").success());
    let after = transact(&store, |tx| tx.ready_tasks(&job, i64::MAX, 5)).expect("claim");
    assert_eq!(after.len(), 2, "both claimable once the lock is gone");
    drop_schema_blocking(store);
}

#[test]
fn a_change_in_one_process_wakes_listeners_in_another() {
    let schema = unique_schema("notify");
    let Some(listener) = open(&schema) else {
        return;
    };
    let writer = open(&schema).expect("second pool");
    let mut rx = listener.change_signal().expect("postgres signals changes");
    let rt = common::current_thread_runtime();
    // The listener thread says once that it is listening.
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("listener connected")
            .expect("sender alive");
    });
    let before = *rx.borrow_and_update();
    // A write through the other pool (another process would do the same).
    let dir = scratch();
    seed_job(
        shared(&writer),
        dir.path(),
        1,
        1,
        vec![],
        JobConfig::default(),
    );
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("NOTIFY woke the listener")
            .expect("sender alive");
    });
    assert_ne!(*rx.borrow(), before);
    rt.block_on(listener.drop_schema()).expect("drop");
}

#[test]
fn managers_in_several_threads_share_one_queue() {
    const N: usize = 200;
    let schema = unique_schema("threads");
    let Some(store) = open(&schema) else {
        return;
    };
    let dir = scratch();
    let cfg = JobConfig {
        lease_ms: 10_000,
        max_concurrency: 4,
        ..JobConfig::default()
    };
    seed_job(shared(&store), dir.path(), N, 10, vec![], cfg);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (schema, d) = (schema.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let own = open(&schema).expect("open");
                let rt = common::current_thread_runtime();
                rt.block_on(async {
                    let m = manager(
                        shared(&own),
                        exclusive_agent(d, 1, false),
                        Duration::from_secs(60),
                    );
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
    assert_all_done(&shared(&store), dir.path(), N, false);
    assert_eq!(
        runs(dir.path(), "runs").len(),
        N,
        "with no lease expiry every task runs exactly once"
    );
    drop_schema_blocking(store);
}

/// Entry point of the worker processes (run only when a test spawns it).
#[test]
#[ignore = "spawned as a child process by the multi-process tests"]
fn child_worker() {
    let Ok(schema) = std::env::var("DAGGER_PG_SCHEMA") else {
        return;
    };
    let env = |k: &str| std::env::var(k).expect(k);
    let dir = PathBuf::from(env("DAGGER_TASK_DIR"));
    let work_ms: u64 = env("DAGGER_TASK_WORK_MS").parse().expect("ms");
    let blocking = std::env::var("DAGGER_TASK_BLOCKING").is_ok();
    let store = open(&schema).expect("open");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let m = manager(
            shared(&store),
            exclusive_agent(dir.clone(), work_ms, blocking),
            Duration::from_secs(60),
        );
        let h = m.resume_job(JOB).expect("resume");
        println!("ready");
        if blocking {
            // Frozen and thawed by the test: report the completions the
            // store rejected as stale, then leave (the job stays open).
            let mut stale = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while stale.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stale.extend(m.take_stale_completions());
            }
            for e in &stale {
                println!("stale {e}");
            }
            println!("done");
            return;
        }
        let status = h.wait().await;
        println!("done {status:?}");
    });
}

fn spawn_child(schema: &str, dir: &Path, work_ms: u64, blocking: bool) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "child_worker",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("DAGGER_PG_SCHEMA", schema)
    .env("DAGGER_TASK_DIR", dir)
    .env("DAGGER_TASK_WORK_MS", work_ms.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if blocking {
        cmd.env("DAGGER_TASK_BLOCKING", "1");
    }
    cmd.spawn().expect("spawn child")
}

/// Reads the child's stdout until `want` (or EOF); returns the lines.
fn read_until(child: &mut Child, want: &str) -> Vec<String> {
    let out = child.stdout.as_mut().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines().map_while(Result::ok) {
        let hit = line.starts_with(want) || line.ends_with(want);
        lines.push(line);
        if hit {
            break;
        }
    }
    lines
}

/// Blocks until `dir/sub` holds at least `n` entries matching `pred`, or
/// panics after 60 s. Watching another process's progress is the one wait
/// on time here.
fn wait_for_runs(dir: &Path, n: usize, pred: impl Fn(&str) -> bool) -> usize {
    let start = std::time::Instant::now();
    loop {
        let count = runs(dir, "runs").iter().filter(|r| pred(r)).count();
        if count >= n {
            return count;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no progress: {count} of {n} runs"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn worker_processes_share_one_queue() {
    const N: usize = 200;
    let schema = unique_schema("procs");
    let Some(store) = open(&schema) else {
        return;
    };
    let dir = scratch();
    let cfg = JobConfig {
        lease_ms: 10_000,
        max_concurrency: 4,
        ..JobConfig::default()
    };
    seed_job(shared(&store), dir.path(), N, 10, vec![], cfg);
    let mut children: Vec<_> = (0..3)
        .map(|_| spawn_child(&schema, dir.path(), 2, false))
        .collect();
    for c in &mut children {
        let lines = read_until(c, "done");
        assert!(c.wait().expect("child exit").success());
        assert!(
            lines.iter().any(|l| l == "done Completed(true)"),
            "{lines:?}"
        );
    }
    assert_all_done(&shared(&store), dir.path(), N, false);
    let runs = runs(dir.path(), "runs");
    assert_eq!(runs.len(), N, "every task ran exactly once");
    let pids: std::collections::HashSet<&str> =
        runs.iter().filter_map(|r| r.split('.').nth(1)).collect();
    assert!(
        pids.len() >= 2,
        "work was shared between processes: {pids:?}"
    );
    drop_schema_blocking(store);
}

#[test]
fn a_sigkilled_worker_process_loses_no_task() {
    const N: usize = 100;
    let schema = unique_schema("sigkill");
    let Some(store) = open(&schema) else {
        return;
    };
    let dir = scratch();
    let cfg = JobConfig {
        // Long enough that a loaded machine does not expire live leases.
        lease_ms: 3_000,
        max_concurrency: 4,
        // The killed worker's expired leases count as attempts: allow a second.
        retry: dagger_core::RetryPolicy::attempts(2),
        ..JobConfig::default()
    };
    seed_job(shared(&store), dir.path(), N, 10, vec![], cfg);
    let mut victim = spawn_child(&schema, dir.path(), 20, false);
    let mut survivor = spawn_child(&schema, dir.path(), 20, false);
    assert!(
        read_until(&mut victim, "ready")
            .iter()
            .any(|l| l.ends_with("ready"))
    );
    let victim_pid = victim.id().to_string();
    // Kill the victim once it has started a good share of the tasks.
    wait_for_runs(dir.path(), 15, |r| r.split('.').nth(1) == Some(&victim_pid));
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaped");

    // The survivor finishes the job, the victim's claims included.
    let lines = read_until(&mut survivor, "done");
    assert!(survivor.wait().expect("exit").success());
    assert!(
        lines.iter().any(|l| l == "done Completed(true)"),
        "{lines:?}"
    );
    // The victim died holding `running/` markers: only its tasks may clash.
    let overlap = std::fs::read_to_string(dir.path().join("overlap")).unwrap_or_default();
    let _ = std::fs::remove_file(dir.path().join("overlap"));
    if !overlap.is_empty() {
        assert!(
            runs(dir.path(), "runs")
                .iter()
                .any(|r| r.starts_with(&format!("{overlap}.{victim_pid}."))),
            "overlap on `{overlap}`, which the victim never ran"
        );
    }
    assert_all_done(&shared(&store), dir.path(), N, false);
    // Only tasks the victim had started ran again.
    let all = runs(dir.path(), "runs");
    let mut per_task: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for r in &all {
        let mut parts = r.split('.');
        let (task, pid) = (parts.next().expect("task"), parts.next().expect("pid"));
        per_task.entry(task).or_default().push(pid);
    }
    for (task, pids) in &per_task {
        if pids.len() > 1 {
            assert!(
                pids.contains(&victim_pid.as_str()),
                "{task} ran {} times without the victim: {pids:?}",
                pids.len()
            );
        }
    }
    drop_schema_blocking(store);
}

#[test]
fn completions_of_a_frozen_worker_are_rejected_as_stale() {
    const N: usize = 8;
    let schema = unique_schema("stale");
    let Some(store) = open(&schema) else {
        return;
    };
    let dir = scratch();
    let cfg = JobConfig {
        lease_ms: 300,
        max_concurrency: 4,
        // The frozen worker's expired leases count as attempts: allow a second.
        retry: dagger_core::RetryPolicy::attempts(2),
        ..JobConfig::default()
    };
    // A task for an agent no worker has keeps the job open, so that the
    // thawed worker's completions reach the store after the others finished.
    let gate = TaskSpec::new(JOB, "gate", "held open").id("gate");
    seed_job(shared(&store), dir.path(), N, 1, vec![gate], cfg);
    let mut frozen = spawn_child(&schema, dir.path(), 1_500, true);
    assert!(
        read_until(&mut frozen, "ready")
            .iter()
            .any(|l| l.ends_with("ready"))
    );
    let pid = frozen.id().to_string();
    wait_for_runs(dir.path(), 2, |r| r.split('.').nth(1) == Some(&pid));
    let stop = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    stop("-STOP");

    // Another worker takes over the expired leases and does all the work.
    let rt_b = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let m = manager(
        shared(&store),
        exclusive_agent(dir.path().to_path_buf(), 0, false),
        Duration::from_secs(60),
    );
    rt_b.block_on(async {
        let h = m.resume_job(JOB).expect("resume");
        let done = async {
            loop {
                let tasks = m.get_job_tasks(JOB).expect("tasks");
                if tasks
                    .iter()
                    .filter(|t| t.agent == "work")
                    .all(|t| t.status == TaskStatus::Completed)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), done)
            .await
            .expect("the other worker finished the work");
        // Left running (not cancelled): the job must stay open.
        drop(h);
    });
    rt_b.shutdown_background();
    stop("-CONT");
    let lines = read_until(&mut frozen, "done");
    let _ = frozen.kill();
    frozen.wait().expect("reaped");
    let stale: Vec<&String> = lines.iter().filter(|l| l.starts_with("stale ")).collect();
    assert!(
        !stale.is_empty(),
        "the thawed worker's completions were rejected: {lines:?}"
    );
    for line in &stale {
        assert!(
            line.contains("stale lease on task `t")
                && line.contains("attempt 1 is no longer current"),
            "{line}"
        );
    }
    assert_all_done(&shared(&store), dir.path(), N, true);
    drop_schema_blocking(store);
}

/// Restarts the PostgreSQL server while two worker processes run a job:
/// the job still completes with every task done exactly as stored.
/// Opt-in (`DAGGER_TEST_PG_RESTART=1`): a restart disturbs every other user
/// of the server, including tests running at the same time.
#[test]
fn a_server_restart_under_load_loses_no_task() {
    if std::env::var("DAGGER_TEST_PG_RESTART").as_deref() != Ok("1") {
        eprintln!("skipping: set DAGGER_TEST_PG_RESTART=1 to restart the PostgreSQL server");
        return;
    }
    const N: usize = 200;
    let schema = unique_schema("restart");
    let Some(store) = open(&schema) else {
        return;
    };
    let dir = scratch();
    let cfg = JobConfig {
        lease_ms: 3_000,
        max_concurrency: 4,
        ..JobConfig::default()
    };
    seed_job(shared(&store), dir.path(), N, 10, vec![], cfg);
    let mut children: Vec<_> = (0..2)
        .map(|_| spawn_child(&schema, dir.path(), 10, false))
        .collect();
    wait_for_runs(dir.path(), N / 4, |_| true);
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql lists the installed versions")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("one PostgreSQL version");
    let restarted = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(restarted.success(), "pg_ctlcluster restart failed");
    let started = runs(dir.path(), "runs").len();
    assert!(started < N, "restarted mid-job ({started} of {N} started)");
    for c in &mut children {
        let lines = read_until(c, "done");
        assert!(c.wait().expect("child exit").success());
        assert!(
            lines.iter().any(|l| l == "done Completed(true)"),
            "{lines:?}"
        );
    }
    // Leases may have lapsed during the restart, so a task may have run
    // again; none is lost and each holds its current attempt's output.
    let store = open(&schema).expect("server is back");
    assert_all_done(&shared(&store), dir.path(), N, true);
    drop_schema_blocking(store);
}

/// Several workers (managers, each on its own pool) run jobs of one agent
/// whose breaker is open. When its cool-down ends they all wake at once and
/// claim in concurrent transactions of different jobs: exactly one trial
/// may run (half-open); the others keep waiting. The trial fails, so the
/// breaker opens again for a cool-down longer than the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trial_runs_when_an_open_breaker_cools_down_under_several_workers() {
    let Some(store) = common::postgres::fresh_store("breaker_trial").await else {
        return;
    };
    let now = dagger_core::now_millis();
    let until = now + 1_500;
    let open = BreakerRecord {
        agent: "flaky".into(),
        state: BreakerState::Open,
        consecutive_failures: 3,
        until: Some(until),
        last_error: Some("down".into()),
        updated_at: now,
    };
    let seed = shared(&store);
    tokio::task::spawn_blocking(move || transact(seed.as_ref(), |tx| tx.put_breaker(&open)))
        .await
        .unwrap()
        .unwrap();
    let trials = Arc::new(AtomicUsize::new(0));
    let cfg = JobConfig {
        circuit_breaker: Some(CircuitBreaker::new(1, Duration::from_secs(60))),
        ..JobConfig::default()
    };
    let mut workers = Vec::new();
    for w in 0..6 {
        let pool = common::postgres::same_schema(&store).await;
        let counted = trials.clone();
        let agent = FnAgent::new("flaky", move |_input, _ctx: TaskContext| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err::<TaskOutcome, BoxError>("still down".into())
            }
        });
        let m = manager(shared(&pool), agent, Duration::from_secs(60));
        let job = format!("job{w}");
        let tasks = (0..3)
            .map(|i| TaskSpec::new(job.as_str(), "flaky", "call").id(format!("{job}-t{i}")))
            .collect();
        let h = m.start_job(&job, tasks, None, Some(cfg.clone())).unwrap();
        workers.push((m, h));
    }
    // Time is under test here: the cool-down ends at `until`, the trial
    // takes 300 ms; wait well past both.
    let wait = u64::try_from(until - dagger_core::now_millis()).unwrap_or(0) + 2_000;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(
        trials.load(Ordering::SeqCst),
        1,
        "exactly one half-open trial runs across the workers"
    );
    let check = shared(&store);
    let after =
        tokio::task::spawn_blocking(move || transact(check.as_ref(), |tx| tx.breaker("flaky")))
            .await
            .unwrap()
            .unwrap()
            .expect("breaker");
    assert_eq!(
        after.state,
        BreakerState::Open,
        "the failed trial re-opened it"
    );
    for (_, h) in &workers {
        h.cancel();
    }
}
