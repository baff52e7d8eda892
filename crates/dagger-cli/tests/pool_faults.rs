//! Partitions and freezes in a pool of `dagger worker` processes sharing
//! Postgres, for the DAG node queue and for Task Agent jobs. Worker A holds
//! two attempts (a short and a long one) when the fault strikes: it is cut
//! off from Postgres by a TCP proxy it reaches the server through
//! (`support/tcp_proxy.rs`), or frozen with SIGSTOP. Worker B reaches the
//! server directly. The leases lapse, B takes both items over, A's late
//! completion (or renewal) is refused, the run or job completes with one
//! accepted result per node or task, and A, reconnected or continued, goes
//! on to execute new work.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_core::store::AttemptQuery;
use dagger_core::{Cache, JobStatus, RunId};
use dagger_storage::{PostgresOptions, PostgresStore};
use dagger_task_core::{JobConfig, StallAction, TaskAgentRegistry, TaskManager, TaskSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;
#[path = "support/tcp_proxy.rs"]
mod tcp_proxy;

use pg_sandbox::PgSandbox;
use tcp_proxy::TcpProxy;

/// Lease of both workers (renewed every second).
const LEASE: &str = "3";
/// Generous: the machine running the tests may be loaded.
const LIMIT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// Worker A reaches Postgres through a proxy that is cut.
    Partition,
    /// Worker A is stopped with SIGSTOP.
    Freeze,
}

/// The test's sandbox, worker A and (for a partition) its proxy.
struct Pool {
    sandbox: PgSandbox,
    fault: Fault,
    proxy: Option<TcpProxy>,
    /// Worker A's pid (the first process started).
    a: u32,
}

impl Pool {
    /// A sandbox with worker A started (`--agents shell,echo`).
    fn new(test: &str, fault: Fault) -> Option<Self> {
        let mut sandbox = PgSandbox::new("faults", test)?;
        std::fs::create_dir(sandbox.dir.path().join("marks")).unwrap();
        let proxy = (fault == Fault::Partition)
            .then(|| TcpProxy::start(&tcp_proxy::upstream_of(&pg_sandbox::url())));
        let mut cmd = sandbox.worker_command(env!("CARGO_BIN_EXE_dagger"), &worker_args());
        if let Some(proxy) = &proxy {
            cmd.env(
                "DAGGER_DB",
                tcp_proxy::through(&pg_sandbox::url(), proxy.port()),
            );
        }
        let a = sandbox.start(cmd);
        Some(Self {
            sandbox,
            fault,
            proxy,
            a,
        })
    }

    fn marks(&self) -> PathBuf {
        self.sandbox.dir.path().join("marks")
    }

    /// Starts worker B (direct to Postgres); returns its pid.
    fn start_b(&mut self) -> u32 {
        self.sandbox
            .spawn_worker(env!("CARGO_BIN_EXE_dagger"), &worker_args())
    }

    /// Cuts A off from Postgres, or freezes it.
    fn strike(&self) {
        match self.fault {
            Fault::Partition => self.proxy.as_ref().unwrap().cut(),
            Fault::Freeze => kill(Pid::from_raw(self.a as i32), Signal::SIGSTOP).unwrap(),
        }
    }

    /// Reconnects A, or continues it.
    fn heal(&self) {
        match self.fault {
            Fault::Partition => {
                let proxy = self.proxy.as_ref().unwrap();
                assert!(
                    proxy.refused() > 0,
                    "worker A tried to reconnect during the cut"
                );
                proxy.restore();
            }
            Fault::Freeze => kill(Pid::from_raw(self.a as i32), Signal::SIGCONT).unwrap(),
        }
    }

    /// Waits for `f`; fails naming `what`, with both workers' logs.
    fn wait(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !f(self) {
            assert!(
                start.elapsed() < LIMIT,
                "{what} did not happen within {LIMIT:?}\n--- worker A:\n{}\n--- worker B:\n{}",
                self.log_a(),
                self.sandbox.log_of(1)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A's stderr so far.
    fn log_a(&self) -> String {
        self.sandbox.log_of(0)
    }

    /// Fails unless worker A is still running.
    fn assert_a_alive(&mut self) {
        let status = self.sandbox.children[0].try_wait().unwrap();
        assert!(
            status.is_none(),
            "worker A exited ({status:?}): {}",
            self.log_a()
        );
    }

    /// Stops worker B (the second process) with SIGTERM and waits for it.
    fn stop_b(&mut self) {
        let b = &mut self.sandbox.children[1];
        kill(Pid::from_raw(b.id() as i32), Signal::SIGTERM).unwrap();
        let start = Instant::now();
        while b.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < LIMIT, "worker B did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn worker_args() -> Vec<&'static str> {
    vec![
        "--lease",
        LEASE,
        "--concurrency",
        "2",
        "--agents",
        "shell,echo",
    ]
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < LIMIT,
            "{what} did not happen within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exists(dir: &Path, name: &str) -> bool {
    dir.join(name).exists()
}

/// A shell command writing `start.<name>.<worker pid>` and, after `secs`
/// of sleep, `end.<name>.<worker pid>` into `marks` (each written aside and
/// renamed, so a killed shell leaves no half mark), then printing the
/// worker's pid (the shell's parent).
fn marked(name: &str, marks: &Path, secs: f64) -> String {
    let d = marks.display();
    format!(
        "m() {{ date +%s%N > {d}/.$1.{name}.$PPID && mv {d}/.$1.{name}.$PPID {d}/$1.{name}.$PPID; }}; \
         m start; sleep {secs}; m end; echo $PPID"
    )
}

fn wait_output(mut child: Child) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run did not finish within {LIMIT:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// What A's log says after it met its lost work again: a refused
/// completion, a refused renewal, or (cut off) a lease it let go itself.
fn a_refused_stale_work(log: &str) -> bool {
    log.contains("completion rejected")
        || log.contains("withdrawn or taken over")
        || log.contains("discarded work under a stale lease")
}

fn node_queue(fault: Fault, test: &str) {
    let Some(mut pool) = Pool::new(test, fault) else {
        return;
    };
    let marks = pool.marks();
    let node = |id: &str, secs: f64| {
        format!(
            "  - id: {id}\n    action: shell\n    inputs:\n      - name: command\n        value: '{}'\n",
            marked(id, &marks, secs)
        )
    };
    let yaml = format!(
        "name: faults\nnodes:\n{}{}  - id: last\n    action: echo\n    dependencies: [short, long]\n    inputs:\n      - name: from\n        reference: short.stdout\n",
        node("short", 0.5),
        node("long", 8.0)
    );
    let wf = pool.sandbox.dir.path().join("wf.yaml");
    std::fs::write(&wf, yaml).unwrap();
    let run = pool
        .sandbox
        .command(
            env!("CARGO_BIN_EXE_dagger"),
            &["run", "--json", "--run-id", "faults", wf.to_str().unwrap()],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let a = pool.a;
    wait_until("worker A started both nodes", || {
        exists(&marks, &format!("start.short.{a}")) && exists(&marks, &format!("start.long.{a}"))
    });
    pool.strike();
    let b = pool.start_b();
    // B takes both over once A's leases lapse.
    wait_until("worker B finished the short node", || {
        exists(&marks, &format!("end.short.{b}"))
    });
    wait_until("worker B started the long node", || {
        exists(&marks, &format!("start.long.{b}"))
    });
    if fault == Fault::Partition {
        // Cut off, A let the long attempt go when its lease lapsed: the
        // shell was killed, it never ended.
        pool.wait("worker A gave up its lapsed lease", |p| {
            p.log_a().contains("lease lapsed without a renewal")
        });
    }
    pool.heal();
    pool.wait("worker A met its stale work again", |p| {
        a_refused_stale_work(&p.log_a())
    });
    if fault == Fault::Partition {
        // The short node's result waited out the cut, then was refused.
        assert!(
            pool.log_a().contains("completion rejected"),
            "{}",
            pool.log_a()
        );
    }
    let out = wait_output(run);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], json!("Completed"));
    assert!(
        !exists(&marks, &format!("end.long.{a}")),
        "A's long attempt was stopped, not run to its end"
    );
    assert!(exists(&marks, &format!("end.long.{b}")));

    // One accepted result per node, B's: one recorded attempt each.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = pool.sandbox.store.stores();
    let run_id = RunId::from("faults");
    let attempts = rt
        .block_on(stores.runs.attempts(&run_id, &AttemptQuery::default()))
        .unwrap();
    let mut nodes: Vec<&str> = attempts
        .iter()
        .map(|r| r.node_id.as_str())
        .filter(|n| *n != "last")
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["long", "short"], "{attempts:?}");
    let node_runs = rt.block_on(stores.runs.node_runs(&run_id)).unwrap();
    for id in ["short", "long"] {
        let record = node_runs.iter().find(|r| r.node_id.as_str() == id).unwrap();
        let bytes = rt
            .block_on(
                stores
                    .artifacts
                    .get_artifact(record.output_artifact_id.as_ref().unwrap()),
            )
            .unwrap();
        let output: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(output["stdout"], json!(b.to_string()), "{id}: {output}");
    }

    // A reconnected (or was continued) and goes on working: with B gone, a
    // new run is executed by A.
    pool.assert_a_alive();
    pool.stop_b();
    let again = pool.sandbox.dir.path().join("again.yaml");
    std::fs::write(
        &again,
        format!(
            "name: again\nnodes:\n  - id: again\n    action: shell\n    inputs:\n      - name: command\n        value: '{}'\n",
            marked("again", &marks, 0.0)
        ),
    )
    .unwrap();
    let run = pool
        .sandbox
        .command(
            env!("CARGO_BIN_EXE_dagger"),
            &["run", "--json", again.to_str().unwrap()],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(run);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        pool.log_a()
    );
    assert!(exists(&marks, &format!("end.again.{a}")));
    pool.assert_a_alive();
}

#[test]
fn a_partitioned_worker_loses_its_nodes_its_late_completion_is_refused_and_it_reconnects() {
    node_queue(Fault::Partition, "npart");
}

#[test]
fn a_frozen_worker_loses_its_nodes_its_late_work_is_refused_and_it_goes_on() {
    node_queue(Fault::Freeze, "nfreeze");
}

fn task_queue(fault: Fault, test: &str) {
    let Some(mut pool) = Pool::new(test, fault) else {
        return;
    };
    let marks = pool.marks();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let manager = TaskManager::new(
        Duration::from_secs(600),
        StallAction::TerminateJob,
        Cache::new(),
        TaskAgentRegistry::new(),
        std::sync::Arc::new(pool.sandbox.store.clone()),
    );
    // An expired lease counts as a failed attempt: allow a few.
    let config = JobConfig {
        lease_ms: 3_000,
        retry: dagger_core::RetryPolicy::attempts(4),
        ..JobConfig::default()
    };
    let task = |job: &str, id: &str, secs: f64| {
        TaskSpec::new(job, "shell", id)
            .id(id)
            .input(json!({ "command": marked(id, &marks, secs) }))
    };
    manager
        .submit_job(
            "faults",
            vec![task("faults", "short", 0.5), task("faults", "long", 8.0)],
            Some(vec!["shell".into()]),
            Some(config.clone()),
        )
        .unwrap();
    let handle = manager.resume_job("faults").unwrap();
    let a = pool.a;
    wait_until("worker A started both tasks", || {
        exists(&marks, &format!("start.short.{a}")) && exists(&marks, &format!("start.long.{a}"))
    });
    pool.strike();
    let b = pool.start_b();
    wait_until("worker B finished the short task", || {
        exists(&marks, &format!("end.short.{b}"))
    });
    wait_until("worker B started the long task", || {
        exists(&marks, &format!("start.long.{b}"))
    });
    pool.heal();
    pool.wait("worker A met its stale work again", |p| {
        a_refused_stale_work(&p.log_a())
    });
    let status = rt
        .block_on(tokio::time::timeout(LIMIT, handle.wait()))
        .expect("the job finished");
    assert_eq!(status, JobStatus::Completed(true));
    for id in ["short", "long"] {
        let record = manager.task(id).unwrap().unwrap();
        // A's lapsed attempt, then B's: B's result is the one kept.
        assert_eq!(record.attempts, 2, "{id}: {record:?}");
        assert_eq!(
            record.output.as_ref().unwrap()["stdout"],
            json!(b.to_string()),
            "{id}: {record:?}"
        );
    }

    // A goes on working: with B gone, a new job runs on A.
    pool.assert_a_alive();
    pool.stop_b();
    manager
        .submit_job(
            "again",
            vec![task("again", "again", 0.0)],
            Some(vec!["shell".into()]),
            Some(config),
        )
        .unwrap();
    let handle = manager.resume_job("again").unwrap();
    let status = rt
        .block_on(tokio::time::timeout(LIMIT, handle.wait()))
        .expect("the second job finished");
    assert_eq!(status, JobStatus::Completed(true), "{}", pool.log_a());
    let again = manager.task("again").unwrap().unwrap();
    assert_eq!(again.output.unwrap()["stdout"], json!(a.to_string()));
    pool.assert_a_alive();
}

#[test]
fn a_partitioned_task_worker_loses_its_tasks_its_late_work_is_refused_and_it_reconnects() {
    task_queue(Fault::Partition, "tpart");
}

#[test]
fn a_frozen_task_worker_loses_its_tasks_its_late_work_is_refused_and_it_goes_on() {
    task_queue(Fault::Freeze, "tfreeze");
}
