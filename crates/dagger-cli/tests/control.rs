//! `dagger approve`, `reject` and `cancel` check their target the way the
//! HTTP API does (one shared check): unknown run or node (with a
//! suggestion), node not waiting, run already ended → exit 1 with a message
//! naming run and node; the first decision recorded for a node wins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
        c.args(args).current_dir(repo()).env(
            "DAGGER_DB",
            format!("sqlite:{}", self.dir.path().join("runs.db").display()),
        );
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
    fn show(&self, run_id: &str) -> Option<Value> {
        let out = self.run(&["runs", "show", run_id, "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }
    fn wait_for(&self, run_id: &str, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.show(run_id).is_some_and(|v| pred(&v)) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Exit 1 and stderr containing `needle`.
fn refused(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
}

fn node_status(v: &Value, id: &str) -> String {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == id)
        .and_then(|n| n["status"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// Starts `examples/workflows/approval.yaml` as `run_id` and waits until
/// `publish` waits for a human.
fn waiting_run(s: &Sandbox, run_id: &str) -> Child {
    let child = s.spawn(&[
        "run",
        "examples/workflows/approval.yaml",
        "--run-id",
        run_id,
    ]);
    s.wait_for(run_id, "publish waits for a human", |v| {
        v["status"] == "WaitingForHuman" && node_status(v, "publish") == "WaitingForHuman"
    });
    child
}

fn finish(mut child: Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn control_commands_check_their_target() {
    let s = Sandbox::new();
    let child = waiting_run(&s, "w-1");
    refused(
        &s.run(&["approve", "w-1", "publsh"]),
        "run `w-1` has no node `publsh` (did you mean `publish`?)",
    );
    refused(
        &s.run(&["reject", "w-1", "zzz"]),
        "run `w-1` has no node `zzz`",
    );
    refused(
        &s.run(&["approve", "w-1", "draft"]),
        "node `draft` of run `w-1` is not waiting for a human (it is Completed)",
    );
    refused(
        &s.run(&["approve", "nope", "publish"]),
        "run `nope` not found",
    );
    refused(
        &s.run(&["reject", "nope", "publish"]),
        "run `nope` not found",
    );

    let ok = s.run(&["approve", "w-1", "publish"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(finish(child), 0);
    refused(
        &s.run(&["cancel", "w-1"]),
        "run `w-1` already ended (Completed); there is nothing to cancel",
    );
    refused(
        &s.run(&["reject", "w-1", "publish"]),
        "run `w-1` already ended (Completed); there is nothing to reject (node `publish`)",
    );
}

#[test]
fn an_approval_before_the_node_waits_is_refused() {
    let s = Sandbox::new();
    let wf = s.write(
        "slow_review.yaml",
        "name: slow_review\nnodes:\n  - id: nap\n    action: sleep\n    inputs: [{name: seconds, value: 60}]\n  - id: review\n    action: echo\n    approval: ok?\n    dependencies: [nap]\n",
    );
    let mut child = s.spawn(&["run", wf.to_str().unwrap(), "--run-id", "pre-1"]);
    s.wait_for("pre-1", "nap running", |v| {
        node_status(v, "nap") == "Running"
    });
    refused(
        &s.run(&["approve", "pre-1", "review"]),
        "node `review` of run `pre-1` is not waiting for a human (it is Pending)",
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_first_decision_wins_and_the_later_one_says_what_was_decided() {
    let s = Sandbox::new();
    let child = waiting_run(&s, "d-1");
    // The run's process is gone (SIGKILL), so decisions pile up in the store
    // exactly as they would at the same moment.
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    let ok = s.run(&["approve", "d-1", "publish"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    refused(
        &s.run(&["reject", "d-1", "publish", "--reason", "changed my mind"]),
        "node `publish` of run `d-1` was already approved at 20",
    );
    refused(
        &s.run(&["approve", "d-1", "publish"]),
        "the first decision recorded wins",
    );
    // The resumed run follows the first decision.
    let out = s.run(&["resume", "d-1", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(node_status(&v, "publish"), "Completed");

    // Approve and reject sent at the same moment: exactly one exits 0.
    for round in 0..3 {
        let run_id = format!("race-{round}");
        let mut child = waiting_run(&s, &run_id);
        child.kill().unwrap();
        child.wait().unwrap();
        let a = s
            .cmd(&["approve", &run_id, "publish"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let r = s
            .cmd(&["reject", &run_id, "publish"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (a, r) = (a.wait_with_output().unwrap(), r.wait_with_output().unwrap());
        let wins = [&a, &r].iter().filter(|o| o.status.success()).count();
        assert_eq!(
            wins,
            1,
            "approve: {}\nreject: {}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&r.stderr)
        );
        let loser = if a.status.success() { &r } else { &a };
        refused(loser, "the first decision recorded wins");
    }
}
