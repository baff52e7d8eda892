//! One owner per run, process by process: a resume of a live run is refused
//! naming its owner; of two concurrent resumes of a killed run exactly one
//! runs the nodes; a killed run shows as Orphaned once its lease lapsed and
//! `dagger serve --resume-orphans` takes it over to completion.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/sandbox.rs"]
mod sandbox;

use sandbox::{Sandbox, repo};

impl Sandbox {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
        c.args(args)
            .current_dir(repo())
            .env_remove("DAGGER_RUN_LEASE")
            .env("DAGGER_DB", self.db());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
    /// Waits (up to 30 s) until `runs show --json` satisfies `pred`.
    fn wait_for(&self, run_id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.run(&["runs", "show", run_id, "--json"]);
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                if pred(&v) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    /// A chain `one -> two -> three` of shell nodes, each appending its id to
    /// `executions.log` when it starts and sleeping `secs`.
    fn chain(&self, secs: f64) -> PathBuf {
        let log = self.path("executions.log");
        let mut yaml = String::from("name: chain\nnodes:\n");
        for (id, dep) in [("one", None), ("two", Some("one")), ("three", Some("two"))] {
            yaml.push_str(&format!("  - id: {id}\n    action: shell\n"));
            if let Some(dep) = dep {
                yaml.push_str(&format!("    dependencies: [{dep}]\n"));
            }
            yaml.push_str(&format!(
                "    inputs:\n      - name: command\n        value: echo $DAGGER_NODE_ID >> {}; sleep {secs}\n",
                log.display()
            ));
        }
        let path = self.path("chain.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }
    /// The node ids logged so far, in order.
    fn executions(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("executions.log"))
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Starts `run` of the chain as `run_id` and SIGKILLs it while `one` runs.
fn kill_mid_run(s: &Sandbox, run_id: &str, secs: f64, extra: &[&str]) {
    let wf = s.chain(secs);
    let mut args = vec!["run", wf.to_str().unwrap(), "--run-id", run_id];
    args.extend_from_slice(extra);
    let mut child = s.spawn(&args);
    s.wait_for(run_id, "`one` running", |v| {
        node_status(v, "one") == "Running"
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.executions().is_empty() {
        assert!(Instant::now() < deadline, "`one` never logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: nothing records the run's end
    child.wait().unwrap();
}

#[test]
fn a_resume_of_a_live_run_is_refused_naming_its_owner() {
    let s = Sandbox::new();
    let wf = s.chain(60.0);
    let mut child = s.spawn(&["run", wf.to_str().unwrap(), "--run-id", "live"]);
    let v = s.wait_for("live", "`one` running", |v| {
        node_status(v, "one") == "Running"
    });
    assert_eq!(v["state"], "Running");
    assert_eq!(v["owner"]["pid"], child.id());

    let out = s.run(&["resume", "live"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("run `live` is owned by pid {}", child.id())),
        "{text}"
    );
    assert!(text.contains("lease is live until"), "{text}");
    assert!(text.contains("refusing to resume"), "{text}");
    assert_eq!(s.executions(), ["one"], "the refused resume ran nothing");

    assert!(s.run(&["cancel", "live"]).status.success());
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let v = s.wait_for("live", "cancelled", |v| v["status"] == "Cancelled");
    assert_eq!(v["owner"], Value::Null, "the run's end releases it");
}

#[test]
fn of_two_concurrent_resumes_of_a_killed_run_exactly_one_runs_the_nodes() {
    let s = Sandbox::new();
    kill_mid_run(&s, "killed", 0.3, &[]);
    assert_eq!(s.executions(), ["one"]);

    let resumes: Vec<Child> = (0..2)
        .map(|_| s.spawn(&["resume", "killed", "--json"]))
        .collect();
    let outs: Vec<Output> = resumes
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    let refused: Vec<&Output> = outs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(
        (won.len(), refused.len()),
        (1, 1),
        "exactly one resume wins: {:?}",
        outs.iter().map(stderr).collect::<Vec<_>>()
    );
    let report: Value = serde_json::from_slice(&won[0].stdout).unwrap();
    assert_eq!(report["status"], "Completed");
    assert_eq!(refused[0].status.code(), Some(1));
    assert!(
        stderr(refused[0]).contains("refusing to resume it: a run has one owner"),
        "{}",
        stderr(refused[0])
    );
    // `one` was cut short by the kill and ran again once; the rest ran once.
    assert_eq!(s.executions(), ["one", "one", "two", "three"]);
}

#[test]
fn a_killed_run_shows_orphaned_and_serve_with_resume_orphans_completes_it() {
    let s = Sandbox::new();
    kill_mid_run(&s, "orphan", 0.2, &["--run-lease", "1"]);
    let v = s.wait_for("orphan", "the lease to lapse", |v| v["state"] == "Orphaned");
    assert_eq!(v["status"], "Running", "the stored status is untouched");
    assert!(v["orphaned_since"].is_i64(), "{v}");
    let show = s.run(&["runs", "show", "orphan"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("status    Orphaned"), "{text}");
    assert!(text.contains("gone since"), "{text}");
    let list = s.run(&["runs", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("orphan ") && l.contains("Orphaned")),
        "{text}"
    );
    // `Orphaned` is a derived state, yet it filters like a status.
    let orphans = s.run(&["runs", "list", "--status", "Orphaned"]);
    let text = String::from_utf8_lossy(&orphans.stdout);
    assert!(orphans.status.success(), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("orphan ")).count(),
        1,
        "{text}"
    );
    let completed = s.run(&["runs", "list", "--status", "Completed"]);
    assert!(
        !String::from_utf8_lossy(&completed.stdout).contains("orphan "),
        "an orphan is not listed as Completed"
    );

    let mut serve = s.spawn(&["serve", "--addr", "127.0.0.1:0", "--resume-orphans", "0.2"]);
    let v = s.wait_for("orphan", "the orphan to complete", |v| {
        v["status"] == "Completed"
    });
    serve.kill().unwrap();
    let _ = serve.wait();
    assert_eq!(v["state"], "Completed");
    assert_eq!(v["owner"], Value::Null);
    assert_eq!(s.executions(), ["one", "one", "two", "three"]);
}
