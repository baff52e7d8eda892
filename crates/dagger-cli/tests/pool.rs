//! A pool of `dagger worker` processes sharing Postgres, end to end:
//! `dagger run --db postgres://…` dispatches nodes to the workers; a
//! SIGKILLed worker loses no node and no node runs twice at once; a frozen
//! worker's late completion is rejected; and a Task Agent job submitted by
//! a library `TaskManager` is run by the workers, only for their agents.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_storage::{PostgresOptions, PostgresStore};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

use pg_sandbox::PgSandbox;

/// The test's pool: its own schema (dropped at the end) and workers.
impl PgSandbox {
    fn pool(test: &str) -> Option<Self> {
        let pool = Self::new("pool", test)?;
        std::fs::create_dir(pool.dir.path().join("marks")).unwrap();
        Some(pool)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.command(env!("CARGO_BIN_EXE_dagger"), args)
    }

    fn marks(&self) -> PathBuf {
        self.dir.path().join("marks")
    }

    /// Starts a worker logging to `worker<i>.log`; returns its pid.
    fn worker(&mut self, extra: &[&str]) -> u32 {
        let mut args = vec!["--lease", "1", "--concurrency", "2"];
        args.extend_from_slice(extra);
        self.spawn_worker(env!("CARGO_BIN_EXE_dagger"), &args)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// The body of `GET /metrics` at `addr_path` (`ADDR/…`, as a worker logs it).
fn scrape(addr_path: &str) -> String {
    use std::io::{Read, Write};
    let addr = addr_path.split('/').next().unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A shell node that records `start.<node>.<worker pid>` and
/// `end.<node>.<worker pid>` holding `date +%s%N`, sleeping in between, and
/// outputs the worker's pid (the shell's parent). Each mark is written to a
/// hidden file and renamed, so a shell killed mid-write leaves no empty mark.
fn marked_node(id: &str, marks: &Path, secs: f64) -> String {
    format!(
        r#"  - id: {id}
    action: shell
    inputs:
      - name: command
        value: 'm() {{ date +%s%N > "$DAGGER_INPUT_MARKS/.$1.$DAGGER_NODE_ID.$PPID" && mv "$DAGGER_INPUT_MARKS/.$1.$DAGGER_NODE_ID.$PPID" "$DAGGER_INPUT_MARKS/$1.$DAGGER_NODE_ID.$PPID"; }}; m start; sleep {secs}; m end; echo $PPID'
      - name: marks
        value: "{}"
"#,
        marks.display()
    )
}

fn read_nanos(path: &Path) -> u128 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_pool_runs_the_workflow_and_survives_a_sigkilled_worker() {
    let Some(mut pool) = PgSandbox::pool("kill") else {
        return;
    };
    let marks = pool.marks();
    let nodes: Vec<String> = (1..=6).map(|i| format!("n{i}")).collect();
    let mut yaml = String::from("name: pool\nnodes:\n");
    for n in &nodes {
        yaml.push_str(&marked_node(n, &marks, 2.0));
    }
    yaml.push_str(&format!(
        "  - id: last\n    action: echo\n    dependencies: [{}]\n    inputs:\n      - name: from\n        reference: n1.stdout\n",
        nodes.join(", ")
    ));
    let wf = pool.write("wf.yaml", &yaml);
    let workers: BTreeSet<u32> = (0..3).map(|_| pool.worker(&[])).collect();

    let run = pool
        .cmd(&[
            "run",
            "--json",
            "--run-id",
            "pool-run",
            wf.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_pid = run.id();

    // Kill a worker (and its shells, as if its machine died) mid-node.
    wait_until("four nodes started", Duration::from_secs(30), || {
        files(&marks, "start.").len() >= 4
    });
    let first = files(&marks, "start.")[0].clone();
    let victim: u32 = first.rsplit('.').next().unwrap().parse().unwrap();
    assert!(workers.contains(&victim), "nodes run in worker processes");
    let index = pool.children.iter().position(|w| w.id() == victim).unwrap();
    // The worker dies first: were its shells killed first, it could still
    // report their deaths as node failures.
    let shells = children_of(victim);
    pool.children[index].kill().unwrap();
    pool.children[index].wait().unwrap();
    for child in shells {
        // Each shell leads its own process group.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let killed_at = now_nanos();

    let out = wait_output(run, Duration::from_secs(90));
    assert!(
        out.status.success(),
        "run failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], json!("Completed"));

    // Every node finished; each ran in a worker, never in `dagger run`.
    let mut attempts: BTreeMap<String, Vec<(u32, u128, Option<u128>)>> = BTreeMap::new();
    for name in files(&marks, "start.") {
        let mut parts = name.splitn(3, '.');
        parts.next();
        let node = parts.next().unwrap().to_string();
        let pid: u32 = parts.next().unwrap().parse().unwrap();
        assert_ne!(pid, run_pid, "{node} ran in the coordinator");
        assert!(workers.contains(&pid), "{node} ran outside the pool: {pid}");
        let start = read_nanos(&marks.join(&name));
        let end_path = marks.join(format!("end.{node}.{pid}"));
        let end = end_path.exists().then(|| read_nanos(&end_path));
        attempts.entry(node).or_default().push((pid, start, end));
    }
    assert_eq!(
        attempts.keys().cloned().collect::<Vec<_>>(),
        nodes,
        "no node lost"
    );
    let mut rerun = 0;
    for (node, runs) in &attempts {
        assert!(
            runs.iter().any(|r| r.2.is_some()),
            "{node} never finished: {runs:?}"
        );
        for (pid, start, end) in runs {
            match end {
                // Cut short: only the killed worker's attempts.
                None => {
                    assert_eq!(
                        *pid, victim,
                        "{node}: an unfinished attempt outside the victim"
                    );
                    for (other, s, _) in runs.iter().filter(|r| r.0 != victim) {
                        assert!(
                            *s > killed_at,
                            "{node} restarted on {other} before the kill: not exclusive"
                        );
                    }
                    rerun += 1;
                }
                Some(end) => {
                    for (_, s2, e2) in runs.iter().filter(|r| r.1 != *start) {
                        let e2 = e2.unwrap_or(killed_at);
                        assert!(
                            *end <= *s2 || e2 <= *start,
                            "{node} ran twice at the same time: {runs:?}"
                        );
                    }
                }
            }
        }
    }
    assert!(rerun >= 1, "the victim was running a node when killed");
    let stdout_of = |id: &str| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == json!(id))
            .map(|n| n["status"].clone())
            .unwrap()
    };
    for n in &nodes {
        assert_eq!(stdout_of(n), json!("Completed"));
    }
}

#[test]
fn a_frozen_workers_late_completion_is_rejected() {
    let Some(mut pool) = PgSandbox::pool("freeze") else {
        return;
    };
    let marks = pool.marks();
    let yaml = format!("name: freeze\nnodes:\n{}", marked_node("only", &marks, 2.5));
    let wf = pool.write("wf.yaml", &yaml);
    let first = pool.worker(&[]);
    let run = pool
        .cmd(&["run", "--json", wf.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the node started", Duration::from_secs(30), || {
        !files(&marks, "start.only.").is_empty()
    });
    // Freeze the worker (not its shell): its lease expires, another worker
    // takes the node over and completes it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let second = pool.worker(&["--metrics-addr", "127.0.0.1:0"]);
    let out = wait_output(run, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], json!("Completed"));
    let view = pool
        .cmd(&["runs", "show", report["run_id"].as_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        view.status.success(),
        "{}",
        String::from_utf8_lossy(&view.stderr)
    );
    assert!(
        files(&marks, "start.only.").contains(&format!("start.only.{second}")),
        "the second worker took the node over"
    );
    // The second worker counted the lease it took over.
    let metrics = scrape(&pool.wait_log(1, "metrics on http://"));
    assert!(
        metrics
            .lines()
            .any(|l| l == "dagger_lease_expiries_total{queue=\"nodes\"} 1"),
        "{metrics}"
    );
    // Thaw: the first worker's result is refused, its lease long gone.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    wait_until(
        "the late completion was refused",
        Duration::from_secs(20),
        || {
            let log = pool.log_of(0);
            log.contains("completion rejected") || log.contains("taken over")
        },
    );
    // The run's output is the second worker's.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stores = pool.store.stores();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let node_runs = rt
        .block_on(
            stores
                .runs
                .node_runs(&dagger_core::RunId::from(run_id.as_str())),
        )
        .unwrap();
    let only = node_runs
        .iter()
        .find(|r| r.node_id.as_str() == "only")
        .unwrap();
    let artifact = only.output_artifact_id.clone().unwrap();
    let bytes = rt
        .block_on(stores.artifacts.get_artifact(&artifact))
        .unwrap();
    let output: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(output["stdout"], json!(second.to_string()), "{output}");
}

#[test]
fn workers_run_a_task_job_a_library_manager_submitted() {
    let Some(mut pool) = PgSandbox::pool("tasks") else {
        return;
    };
    let echo_only = pool.worker(&["--agents", "echo"]);
    let any = pool.worker(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store: std::sync::Arc<dyn dagger_core::store::TaskStore> =
        std::sync::Arc::new(pool.store.clone());
    let manager = dagger_task_core::TaskManager::new(
        Duration::from_secs(60),
        dagger_task_core::StallAction::TerminateJob,
        dagger_core::Cache::new(),
        dagger_task_core::TaskAgentRegistry::new(),
        store,
    );
    let job = "pool-job";
    let mut specs: Vec<dagger_task_core::TaskSpec> = (0..3)
        .map(|i| {
            dagger_task_core::TaskSpec::new(job, "shell", format!("shell {i}"))
                .id(format!("shell-{i}"))
                .input(json!({"command": "echo $PPID"}))
        })
        .collect();
    specs.push(
        dagger_task_core::TaskSpec::new(job, "echo", "echo")
            .id("echo-0")
            .input(json!({"x": 1})),
    );
    let status = rt.block_on(async {
        manager
            .submit_job(job, specs, Some(vec!["shell".into(), "echo".into()]), None)
            .unwrap();
        let handle = manager.resume_job(job).unwrap();
        tokio::time::timeout(Duration::from_secs(60), handle.wait())
            .await
            .expect("the pool finished the job")
    });
    assert_eq!(status, dagger_task_core::JobStatus::Completed(true));
    for i in 0..3 {
        let task = manager.task(format!("shell-{i}")).unwrap().unwrap();
        let output = task.output.unwrap();
        assert_eq!(
            output["stdout"],
            json!(any.to_string()),
            "shell tasks run only on the worker that has `shell`, not on {echo_only}"
        );
    }
    let echo = manager.task("echo-0").unwrap().unwrap();
    assert_eq!(echo.output, Some(json!({"x": 1})));
}

/// Pids whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so split after `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(&pid.to_string()) {
            out.push(child);
        }
    }
    out
}

fn wait_output(mut child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "run did not finish within {limit:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn worker_needs_postgres_and_known_agents() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("runs.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_dagger"))
        .args(["worker", "--db", &db])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("postgres://"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dagger"))
        .args(["worker", "--db", &db, "--agents", "shell,nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no action or task agent `nope`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
