//! The `dagger` process under signals and closed pipes: SIGTERM, SIGHUP
//! and SIGINT cancel cleanly (recorded reason, exit 128 + signal) and kill
//! the shell nodes' process groups; a closed stdout/stderr never hangs the
//! run nor makes the process panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/sandbox.rs"]
mod sandbox;

use sandbox::Sandbox;

impl Sandbox {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("DAGGER_DB", self.db());
        c
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
    fn show(&self, run_id: &str) -> Value {
        let out = self
            .cmd(&["runs", "show", run_id, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn wait_until(what: &str, f: impl FnMut() -> bool) {
    assert!(
        wait_for(Duration::from_secs(30), f),
        "timed out waiting for: {what}"
    );
}

/// Whether `f` holds within `limit` (polled every 20 ms).
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits for the process to end (bounded); kills it and fails if it does not.
fn wait_exit(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dagger did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` is alive (a zombie counts as dead).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// The process group of live process `pid` (field 5 of `/proc/PID/stat`).
#[cfg(feature = "postgres")]
fn group_of(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_string();
            rest.split_whitespace().nth(2)?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no process group for pid {pid}"))
}

fn read_pid(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// A workflow whose shell node starts `sleep 120` in the background (longer
/// than any wait of these tests), writes its pid to `pid_file`, and waits for it.
fn sleeper(s: &Sandbox, pid_file: &Path) -> PathBuf {
    s.write(
        "sleeper.yaml",
        &format!(
            "name: sleeper\nnodes:\n  - id: nap\n    action: shell\n    inputs:\n      - name: command\n        value: sleep 120 & echo $! > {}; wait\n  - id: after\n    action: echo\n    dependencies: [nap]\n",
            pid_file.display()
        ),
    )
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[test]
fn sigterm_cancels_the_run_records_the_signal_and_kills_the_shell_group() {
    let s = Sandbox::new();
    let pid_file = s.path("sleep.pid");
    let wf = sleeper(&s, &pid_file);
    let child = s.spawn(&["run", wf.to_str().unwrap(), "--run-id", "t-1"]);
    wait_until("the shell started sleep", || read_pid(&pid_file).is_some());
    let sleep_pid = read_pid(&pid_file).unwrap();
    assert!(alive(sleep_pid));
    signal(&child, Signal::SIGTERM);
    let out = wait_exit(child, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = s.show("t-1");
    assert_eq!(v["status"], "Cancelled");
    assert_eq!(v["reason"], "signal: SIGTERM");
    wait_until("the shell's sleep is gone", || !alive(sleep_pid));
}

#[test]
fn sighup_stops_a_resume_and_sigint_keeps_exit_130() {
    let s = Sandbox::new();
    let pid_file = s.path("sleep.pid");
    let wf = sleeper(&s, &pid_file);
    let child = s.spawn(&["run", wf.to_str().unwrap(), "--run-id", "h-1"]);
    wait_until("the shell started sleep", || read_pid(&pid_file).is_some());
    let first = read_pid(&pid_file).unwrap();
    signal(&child, Signal::SIGINT);
    let out = wait_exit(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(s.show("h-1")["reason"], "signal: SIGINT");
    wait_until("the first sleep is gone", || !alive(first));

    std::fs::remove_file(&pid_file).unwrap();
    let child = s.spawn(&["resume", "h-1"]);
    wait_until("the resumed shell started sleep", || {
        read_pid(&pid_file).is_some()
    });
    let second = read_pid(&pid_file).unwrap();
    signal(&child, Signal::SIGHUP);
    let out = wait_exit(child, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(129),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = s.show("h-1");
    assert_eq!(v["status"], "Cancelled");
    assert_eq!(v["reason"], "signal: SIGHUP");
    wait_until("the second sleep is gone", || !alive(second));
}

#[test]
fn a_closed_stdout_and_stderr_neither_hang_nor_panic_the_run() {
    let s = Sandbox::new();
    // Enough lines to overrun a pipe nobody reads; each node prints output too.
    let mut yaml = String::from("name: chatty\nnodes:\n");
    for i in 0..40 {
        yaml.push_str(&format!(
            "  - id: n{i}\n    action: shell\n    inputs:\n      - name: command\n        value: echo line-{i}\n"
        ));
    }
    let wf = s.write("chatty.yaml", &yaml);
    // Like `dagger run wf.yaml 2>&1 | head -3` once head has exited: both
    // streams go to a pipe whose reading end is closed.
    let mut child = s.spawn(&["run", wf.to_str().unwrap(), "--run-id", "p-1"]);
    drop(child.stdout.take());
    drop(child.stderr.take());
    let out = wait_exit(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "the run carries on to its end");
    let v = s.show("p-1");
    assert_eq!(v["status"], "Completed");
}

#[test]
fn a_sigkilled_runs_shell_group_is_killed_before_its_resume_runs() {
    let s = Sandbox::new();
    let pid_file = s.path("sleep.pid");
    let wf = sleeper(&s, &pid_file);
    let mut child = s.spawn(&["run", wf.to_str().unwrap(), "--run-id", "k-1"]);
    wait_until("the shell started sleep", || read_pid(&pid_file).is_some());
    let orphan = read_pid(&pid_file).unwrap();
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    assert!(alive(orphan), "a SIGKILL leaves the shell's group running");

    std::fs::remove_file(&pid_file).unwrap();
    let child = s.spawn(&["resume", "k-1"]);
    wait_until("the orphaned sleep is killed", || !alive(orphan));
    wait_until("the resumed shell started a new sleep", || {
        read_pid(&pid_file).is_some()
    });
    let fresh = read_pid(&pid_file).unwrap();
    assert!(alive(fresh), "the resume's own group is not an orphan");
    signal(&child, Signal::SIGTERM);
    let out = wait_exit(child, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(143));
    wait_until("the resumed sleep is gone", || !alive(fresh));
}

/// A fresh schema of the test PostgreSQL (`url`, schema name, its store);
/// `None` (the test skips) when the server is unreachable and
/// `DAGGER_TEST_SKIP_SERVERS=1`.
#[cfg(feature = "postgres")]
fn postgres_schema(prefix: &str) -> Option<(String, String, dagger_storage::PostgresStore)> {
    use dagger_storage::{PostgresOptions, PostgresStore};
    let url = std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("{prefix}{}_{nanos}", std::process::id());
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        ..PostgresOptions::default()
    };
    match PostgresStore::connect_blocking(&url, &options) {
        Ok(store) => Some((url, schema, store)),
        Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1") => {
            eprintln!("skipping: PostgreSQL at {url} is unreachable ({e})");
            None
        }
        Err(e) => panic!(
            "PostgreSQL at {url} is unreachable: {e} (set DAGGER_TEST_SKIP_SERVERS=1 to skip)"
        ),
    }
}

/// Spawns `dagger ARGS` in `s` on the Postgres `schema` at `url`.
#[cfg(feature = "postgres")]
fn spawn_on_postgres(s: &Sandbox, url: &str, schema: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dagger"))
        .args(args)
        .current_dir(s.dir.path())
        .env("DAGGER_PG_SCHEMA", schema)
        .env("DAGGER_DB", url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `dagger worker` (Postgres pool) on SIGTERM: exit 143, and the shell
/// node it was running dies with it.
#[cfg(feature = "postgres")]
#[test]
fn sigterm_stops_a_worker_with_exit_143_and_kills_its_shell_groups() {
    let Some((url, schema, store)) = postgres_schema("t_sig_worker_") else {
        return;
    };
    let s = Sandbox::new();
    let pid_file = s.path("sleep.pid");
    let wf = sleeper(&s, &pid_file);
    let pg = |args: &[&str]| spawn_on_postgres(&s, &url, &schema, args);
    let worker = pg(&["worker", "--lease", "1", "--concurrency", "1"]);
    let mut run = pg(&["run", wf.to_str().unwrap(), "--run-id", "w-1"]);
    wait_until("the worker's shell started sleep", || {
        read_pid(&pid_file).is_some()
    });
    let sleep_pid = read_pid(&pid_file).unwrap();
    signal(&worker, Signal::SIGTERM);
    let out = wait_exit(worker, Duration::from_secs(30));
    let _ = run.kill();
    let _ = run.wait();
    let dropped = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.drop_schema());
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the worker's sleep is gone", || !alive(sleep_pid));
    dropped.unwrap();
}

/// A `dagger worker` killed without a word (SIGKILL) leaves its shell
/// node's group re-parented to init; the next `dagger` process on the
/// machine (here a worker) kills it before running anything.
#[cfg(feature = "postgres")]
#[test]
fn the_next_worker_kills_the_shell_groups_a_sigkilled_worker_left() {
    let Some((url, schema, store)) = postgres_schema("t_kill_worker_") else {
        return;
    };
    let s = Sandbox::new();
    let pid_file = s.path("sleep.pid");
    let wf = sleeper(&s, &pid_file);
    let pg = |args: &[&str]| spawn_on_postgres(&s, &url, &schema, args);
    let worker = pg(&["worker", "--lease", "1", "--concurrency", "1"]);
    let mut run = pg(&["run", wf.to_str().unwrap(), "--run-id", "w-1"]);
    wait_until("the worker's shell started sleep", || {
        read_pid(&pid_file).is_some()
    });
    let sleep_pid = read_pid(&pid_file).unwrap();
    // The worker records the group right after starting the shell; a kill
    // before that record lands is the one window nothing can cover.
    let record = std::env::temp_dir()
        .join("dagger-shell-groups")
        .join(group_of(sleep_pid).to_string());
    wait_until("the worker recorded its shell's group", || {
        std::fs::metadata(&record).is_ok_and(|m| m.len() > 0)
    });
    signal(&worker, Signal::SIGKILL);
    let _ = wait_exit(worker, Duration::from_secs(30));
    // Its shell's group was re-parented to init; nothing else knows of it.
    assert!(alive(sleep_pid), "the SIGKILLed worker's sleep still runs");
    let next = pg(&["worker", "--lease", "1", "--concurrency", "1"]);
    let gone = wait_for(Duration::from_secs(30), || !alive(sleep_pid));
    signal(&next, Signal::SIGTERM);
    let _ = wait_exit(next, Duration::from_secs(30));
    let _ = run.kill();
    let _ = run.wait();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.drop_schema())
        .unwrap();
    assert!(
        gone,
        "the next worker killed the group the SIGKILLed one left"
    );
}
