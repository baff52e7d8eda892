//! Durable timers and signals, process by process, on SQLite and on
//! Postgres: a `sleep` node fires after a `kill -9` and `dagger resume` at
//! its recorded time (not early; at once when the time passed while nothing
//! ran); a sleeping node holds no slot; a signal sent while no process runs
//! the run is delivered after resume; a signal sent before the node waits
//! is kept; a signal wait's timeout fails, skips or continues; a payload the
//! node's schema refuses is refused naming run, node and signal; a
//! broadcast reaches every waiting run of the workflow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_storage::{PostgresOptions, PostgresStore};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;
#[path = "support/sandbox.rs"]
mod sandbox;
#[path = "support/schema.rs"]
mod schema;

use pg_sandbox::PgSandbox;
use sandbox::Sandbox;

/// A store for one test: a SQLite file or a Postgres schema of its own.
enum Env {
    Sqlite(Sandbox),
    Pg(PgSandbox),
}

impl Env {
    fn sqlite() -> Option<Self> {
        Some(Env::Sqlite(Sandbox::new()))
    }

    fn pg(test: &str) -> Option<Self> {
        PgSandbox::new("waits", test).map(Env::Pg)
    }

    fn dir(&self) -> &Path {
        match self {
            Env::Sqlite(s) => s.dir.path(),
            Env::Pg(p) => p.dir.path(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
        c.args(args)
            .current_dir(self.dir())
            .env_remove("DAGGER_RUN_LEASE");
        match self {
            Env::Sqlite(s) => {
                c.env("DAGGER_DB", s.db());
            }
            Env::Pg(p) => {
                c.env("DAGGER_DB", pg_sandbox::url())
                    .env("DAGGER_PG_SCHEMA", &p.schema);
                // Nodes run in the coordinating process, not on a worker pool.
                if matches!(args.first(), Some(&"run" | &"resume")) {
                    c.arg("--local");
                }
            }
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Starts `dagger ARGS`; the process is killed when the result is dropped.
    fn spawn(&self, args: &[&str]) -> Killed {
        Killed(
            self.cmd(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn show(&self, run_id: &str) -> Option<Value> {
        let out = self.run(&["runs", "show", run_id, "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Waits (up to 60 s) until `runs show --json` satisfies `pred`.
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

    /// The milliseconds a `stamp` node wrote to `<name>.t`.
    fn stamp(&self, name: &str) -> i64 {
        let text = std::fs::read_to_string(self.dir().join(format!("{name}.t"))).unwrap();
        text.trim().parse().unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn node<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == id)
        .unwrap()
}

fn status<'a>(v: &'a Value, id: &str) -> &'a str {
    node(v, id)["status"].as_str().unwrap()
}

/// A shell node writing the time (ms) it ran to `<id>.t`.
fn stamp_node(id: &str, deps: &[&str]) -> String {
    format!(
        "  - id: {id}\n    dependencies: [{}]\n    action: shell\n    inputs:\n      - name: command\n        value: \"date +%s%3N > {id}.t\"\n",
        deps.join(", ")
    )
}

/// Waits until `child` exits; its exit code.
fn finish(mut child: Killed) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the process did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ----- timers -------------------------------------------------------------------------

/// `nap` sleeps `secs`, then `after` stamps the time. Starts it as `run_id`,
/// waits until `nap` waits, SIGKILLs the process; returns the recorded wake-up time.
fn killed_while_sleeping(env: &Env, run_id: &str, secs: u32) -> i64 {
    let wf = format!(
        "name: napper\nnodes:\n  - id: nap\n    sleep: {secs}s\n{}",
        stamp_node("after", &["nap"])
    );
    let path = env.write("napper.yaml", &wf);
    let mut child = env.spawn(&["run", path.to_str().unwrap(), "--run-id", run_id]);
    let v = env.wait_for(run_id, "nap waits", |v| status(v, "nap") == "Waiting");
    let wake_at = node(&v, "nap")["wake_at"].as_i64().expect("wake_at shown");
    schema::assert_matches("run_detail", &v);
    // The human form names the wake-up time too.
    let text = ok(&env.run(&["runs", "show", run_id]));
    assert!(text.contains("waiting until"), "{text}");
    child.0.kill().unwrap(); // SIGKILL: nothing records the run's end
    child.0.wait().unwrap();
    wake_at
}

fn a_timer_fires_at_its_recorded_time_after_kill_and_resume(env: &Env) {
    let started = now_ms();
    let wake_at = killed_while_sleeping(env, "t-early", 4);
    assert!(wake_at >= started + 4_000, "{wake_at} vs {started}");
    // Resumed at once: the timer keeps its recorded time; it fires then, not early.
    let out = env.run(&["resume", "t-early", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "Completed", "{report}");
    let after = env.stamp("after");
    assert!(
        after >= wake_at,
        "after ran at {after}, before the wake-up {wake_at}"
    );
    assert!(
        after < wake_at + 30_000,
        "after ran at {after}, long past {wake_at}"
    );
}

fn an_overdue_timer_fires_at_once_on_resume(env: &Env) {
    let wake_at = killed_while_sleeping(env, "t-late", 5);
    while now_ms() < wake_at + 500 {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The time passed while nothing ran: the resume does not sleep again.
    let resumed = now_ms();
    let out = env.run(&["resume", "t-late", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "Completed", "{report}");
    let after = env.stamp("after");
    assert!(
        after < resumed + 5_000,
        "after ran at {after}: the resume at {resumed} slept the full 5 s again"
    );
}

fn a_sleeping_node_holds_no_slot(env: &Env) {
    let wf = format!(
        "name: slots\nconfig:\n  max_parallel_nodes: 1\nnodes:\n  - id: nap\n    sleep: 6s\n{}{}",
        stamp_node("work", &[]),
        stamp_node("after", &["nap"])
    );
    let path = env.write("slots.yaml", &wf);
    ok(&env.run(&["run", path.to_str().unwrap(), "--run-id", "slots"]));
    // `work` ran while `nap` slept, in the one slot there is.
    let (work, after) = (env.stamp("work"), env.stamp("after"));
    assert!(
        work + 3_000 < after,
        "work at {work} did not run while nap slept (after at {after})"
    );
}

// ----- signals ------------------------------------------------------------------------

/// `pay` waits for signal `paid` (with `extra` fields), `ship` writes the
/// payload's `amount` to `shipped.txt`.
fn pay_workflow(env: &Env, name: &str, first: bool, extra: &str) -> PathBuf {
    let mut wf = format!("name: {name}\nnodes:\n");
    if first {
        wf.push_str(
            "  - id: first\n    action: shell\n    inputs:\n      - name: command\n        value: sleep 2\n",
        );
    }
    wf.push_str(&format!(
        "  - id: pay\n    dependencies: [{}]\n    wait_for:\n      signal: paid\n{extra}",
        if first { "first" } else { "" }
    ));
    wf.push_str(
        "  - id: ship\n    dependencies: [pay]\n    action: shell\n    inputs:\n      - name: amount\n        reference: pay.amount\n      - name: command\n        value: \"echo $DAGGER_INPUT_AMOUNT > shipped-$DAGGER_RUN_ID.txt\"\n",
    );
    env.write(&format!("{name}.yaml"), &wf)
}

fn a_signal_sent_while_nothing_runs_is_delivered_after_resume(env: &Env) {
    let wf = pay_workflow(env, "shop", false, "");
    let mut child = env.spawn(&["run", wf.to_str().unwrap(), "--run-id", "s-down"]);
    let v = env.wait_for("s-down", "pay waits", |v| {
        status(v, "pay") == "Waiting" && node(v, "pay")["signal"] == "paid"
    });
    schema::assert_matches("run_detail", &v);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let out = ok(&env.run(&["signal", "s-down", "paid", "--data", r#"{"amount": 42}"#]));
    assert!(out.contains("signal paid sent to run s-down"), "{out}");
    let out = env.run(&["resume", "s-down", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "Completed", "{report}");
    assert_eq!(env.read("shipped-s-down.txt"), "42");
}

fn a_signal_sent_before_the_node_waits_is_delivered(env: &Env) {
    let wf = pay_workflow(env, "shop_first", true, "");
    let child = env.spawn(&["run", wf.to_str().unwrap(), "--run-id", "s-early"]);
    env.wait_for("s-early", "first runs", |v| status(v, "first") == "Running");
    ok(&env.run(&["signal", "s-early", "paid", "--data", r#"{"amount": 7}"#]));
    assert_eq!(finish(child), 0);
    let v = env.show("s-early").unwrap();
    assert_eq!(v["status"], "Completed", "{v}");
    assert_eq!(env.read("shipped-s-early.txt"), "7");
}

fn a_signal_timeout_fails_skips_or_continues(env: &Env) {
    for (policy, run, pay, ship) in [
        ("fail", "Failed", "Failed", "Skipped"),
        ("skip", "Completed", "Skipped", "Skipped"),
        ("continue", "Completed", "Completed", "Completed"),
    ] {
        let wf = format!(
            "name: timeout_{policy}\nnodes:\n  - id: pay\n    wait_for:\n      signal: paid\n      timeout: 1s\n      on_timeout: {policy}\n{}",
            stamp_node("ship", &["pay"])
        );
        let wf = env.write(&format!("timeout_{policy}.yaml"), &wf);
        let run_id = format!("to-{policy}");
        env.run(&["run", wf.to_str().unwrap(), "--run-id", &run_id]);
        let v = env.show(&run_id).unwrap();
        assert_eq!(v["status"], run, "{policy}: {v}");
        assert_eq!(status(&v, "pay"), pay, "{policy}: {v}");
        assert_eq!(status(&v, "ship"), ship, "{policy}: {v}");
        if policy == "fail" {
            let error = node(&v, "pay")["error"].as_str().unwrap();
            assert!(
                error.contains("no signal `paid` arrived within 1s"),
                "{error}"
            );
        }
    }
}

fn a_payload_the_schema_refuses_is_refused_naming_run_node_and_signal(env: &Env) {
    let extra = "      schema: { type: object, required: [amount], properties: { amount: { type: integer } } }\n";
    let wf = pay_workflow(env, "strict", false, extra);
    let child = env.spawn(&["run", wf.to_str().unwrap(), "--run-id", "s-schema"]);
    env.wait_for("s-schema", "pay waits", |v| status(v, "pay") == "Waiting");
    let out = env.run(&[
        "signal",
        "s-schema",
        "paid",
        "--data",
        r#"{"amount": "lots"}"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("run `s-schema`: node `pay` refused signal `paid`"),
        "{err}"
    );
    let out = env.run(&["signal", "s-schema", "nope", "--data", "{}"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run `s-schema` has no node that waits for signal `nope`"),
        "{err}"
    );
    ok(&env.run(&["signal", "s-schema", "paid", "--data", r#"{"amount": 3}"#]));
    assert_eq!(finish(child), 0);
    assert_eq!(env.read("shipped-s-schema.txt"), "3");
}

fn a_broadcast_reaches_every_waiting_run_of_the_workflow(env: &Env) {
    let wf = pay_workflow(env, "fleet", false, "");
    let other = pay_workflow(env, "other_fleet", false, "");
    let children: Vec<Killed> = ["b-1", "b-2"]
        .iter()
        .map(|id| env.spawn(&["run", wf.to_str().unwrap(), "--run-id", id]))
        .collect();
    let stray = env.spawn(&["run", other.to_str().unwrap(), "--run-id", "b-other"]);
    for id in ["b-1", "b-2", "b-other"] {
        env.wait_for(id, "pay waits", |v| status(v, "pay") == "Waiting");
    }
    let out = ok(&env.run(&[
        "signal",
        "--workflow",
        "fleet",
        "paid",
        "--data",
        r#"{"amount": 5}"#,
    ]));
    assert!(
        out.contains("sent to run b-1") && out.contains("sent to run b-2"),
        "{out}"
    );
    assert!(!out.contains("b-other"), "{out}");
    for child in children {
        assert_eq!(finish(child), 0);
    }
    assert_eq!(env.read("shipped-b-1.txt"), "5");
    assert_eq!(env.read("shipped-b-2.txt"), "5");
    assert_eq!(status(&env.show("b-other").unwrap(), "pay"), "Waiting");
    drop(stray);
}

/// A child killed when dropped (also when the test fails first), before
/// the store's schema is dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                if let Some(env) = super::Env::sqlite() {
                    super::$name(&env);
                }
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(env) = super::Env::pg(&stringify!($name)[..12]) {
                    super::$name(&env);
                }
            })*
        }
    };
}

on_both!(
    a_timer_fires_at_its_recorded_time_after_kill_and_resume,
    an_overdue_timer_fires_at_once_on_resume,
    a_sleeping_node_holds_no_slot,
    a_signal_sent_while_nothing_runs_is_delivered_after_resume,
    a_signal_sent_before_the_node_waits_is_delivered,
    a_signal_timeout_fails_skips_or_continues,
    a_payload_the_schema_refuses_is_refused_naming_run_node_and_signal,
    a_broadcast_reaches_every_waiting_run_of_the_workflow,
);
