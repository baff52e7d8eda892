//! `dagger worker --resume-orphans` on Postgres: a `dagger run` killed with
//! SIGKILL leaves its run orphaned once its lease lapsed; a worker started
//! with `--resume-orphans` takes it over and completes it, running only
//! what had not completed.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_storage::{PostgresOptions, PostgresStore};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

use pg_sandbox::PgSandbox;

/// A schema of the test's own (dropped at the end) and a directory.
impl PgSandbox {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.command(env!("CARGO_BIN_EXE_dagger"), args);
        c.env_remove("DAGGER_RUN_LEASE");
        c
    }

    fn spawn(&mut self, args: &[&str]) -> u32 {
        let child = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn show(&self, run_id: &str) -> Option<Value> {
        let out = self
            .cmd(&["runs", "show", run_id, "--json"])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn wait_for(&self, run_id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = self.show(run_id).filter(|v| pred(v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn executions(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("executions.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn node_status<'a>(v: &'a Value, id: &str) -> &'a str {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == id)
        .and_then(|n| n["status"].as_str())
        .unwrap_or("?")
}

#[test]
fn worker_with_resume_orphans_completes_a_killed_run() {
    let Some(mut s) = PgSandbox::new("orphans", "worker") else {
        return;
    };
    let log = s.dir.path().join("executions.log");
    let mut yaml = String::from("name: chain\nnodes:\n");
    for (id, dep) in [("one", None), ("two", Some("one")), ("three", Some("two"))] {
        yaml.push_str(&format!("  - id: {id}\n    action: shell\n"));
        if let Some(dep) = dep {
            yaml.push_str(&format!("    dependencies: [{dep}]\n"));
        }
        yaml.push_str(&format!(
            "    inputs:\n      - name: command\n        value: echo $DAGGER_NODE_ID >> {}; sleep 0.2\n",
            log.display()
        ));
    }
    let wf = s.dir.path().join("chain.yaml");
    std::fs::write(&wf, yaml).unwrap();

    // The run executes its nodes itself (--local), so the kill stops them too.
    let wf = wf.to_str().unwrap().to_string();
    let pid = s.spawn(&[
        "run",
        &wf,
        "--local",
        "--run-id",
        "orphan",
        "--run-lease",
        "1",
    ]);
    s.wait_for("orphan", "`one` running", |v| {
        node_status(v, "one") == "Running"
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.executions().is_empty() {
        assert!(Instant::now() < deadline, "`one` never logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let v = s.wait_for("orphan", "the lease to lapse", |v| v["state"] == "Orphaned");
    assert_eq!(v["owner"]["pid"], pid);

    s.spawn(&[
        "worker",
        "--lease",
        "1",
        "--resume-orphans",
        "0.2",
        "--run-lease",
        "1",
    ]);
    let v = s.wait_for("orphan", "the orphan to complete", |v| {
        v["status"] == "Completed"
    });
    assert_eq!(v["owner"], Value::Null);
    assert_eq!(s.executions(), ["one", "one", "two", "three"]);
}
