//! `dagger run` with declared inputs and `dagger rerun` end to end: inputs
//! checked before any node runs, `--help-inputs`, re-runs that reuse
//! upstream outputs (counted by a marker file each execution appends to),
//! changed inputs and lineage in `runs show`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dagger"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("DAGGER_DB")
            .env(
                "DAGGER_DB",
                format!("sqlite:{}", self.path("runs.db").display()),
            )
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }
    fn show(&self, run_id: &str) -> Value {
        serde_json::from_slice(&self.ok(&["runs", "show", run_id, "--json"]).stdout).unwrap()
    }
    /// Each line of the marker file names one execution of a node.
    fn executions(&self, node: &str) -> usize {
        std::fs::read_to_string(self.path("marker"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == node)
            .count()
    }
    /// `up` -> `down`; both append their id to the marker file. `down`
    /// prints the declared input `greeting` and `up`'s output.
    fn workflow(&self) -> PathBuf {
        let marker = self.path("marker");
        let text = format!(
            "\
name: rerun_demo
inputs:
  - name: greeting
    type: string
    default: hello
    description: what down says
  - name: times
    type: integer
    default: 1
nodes:
  - id: up
    action: shell
    inputs:
      - name: command
        value: echo up >> '{m}'; echo 21
  - id: down
    dependencies: [up]
    action: shell
    inputs:
      - name: command
        value: echo down >> '{m}'; echo \"$DAGGER_INPUT_GREETING $DAGGER_INPUT_N\"
      - {{name: greeting, reference: inputs.greeting}}
      - {{name: n, reference: up.stdout}}
",
            m = marker.display()
        );
        let path = self.path("wf.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

fn node<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == id)
        .unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn run_checks_declared_inputs_before_any_node_runs() {
    let s = Sandbox::new();
    let wf = s.workflow();
    let wf = path_str(&wf);

    let help = s.ok(&["run", wf, "--help-inputs"]);
    assert_eq!(
        text(&help.stdout),
        "inputs of workflow `rerun_demo`:\n\
         \x20 greeting  string   default \"hello\"  what down says\n\
         \x20 times     integer  default 1\n"
    );

    let bad = s.run(&["run", wf, "--input", "times=many", "--input", "greting=hi"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    let err = text(&bad.stderr);
    assert!(
        err.contains("error: workflow `rerun_demo`: input `times` must be of type integer: got a string; unknown input `greting`; did you mean `greeting`?"),
        "{err}"
    );
    assert!(err.contains("inputs of workflow `rerun_demo`:"), "{err}");
    assert_eq!(s.executions("up"), 0, "no node ran");
    let runs = s.ok(&["runs", "list"]);
    assert_eq!(text(&runs.stdout).lines().count(), 1, "no run was recorded");

    // A reference to an input the workflow does not declare fails validation.
    let undeclared = std::fs::read_to_string(wf)
        .unwrap()
        .replace("reference: inputs.greeting", "reference: inputs.greet");
    std::fs::write(s.path("bad.yaml"), undeclared).unwrap();
    let out = s.run(&["validate", path_str(&s.path("bad.yaml"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(
            "bad.yaml:22:37: node `down`, input `greeting`: `inputs.greet` names run input \
             `greet`, which the workflow's `inputs:` does not declare; did you mean `greeting`?"
        ),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn rerun_from_a_node_reuses_upstream_outputs_and_records_lineage() {
    let s = Sandbox::new();
    let wf = s.workflow();
    let first = s.ok(&["run", path_str(&wf), "--run-id", "parent", "--json"]);
    assert_eq!(report(&first)["status"], "Completed");
    assert_eq!((s.executions("up"), s.executions("down")), (1, 1));
    assert_eq!(
        s.show("parent")["inputs"]["greeting"],
        "hello",
        "default recorded"
    );

    let again = s.ok(&[
        "rerun",
        "parent",
        "--from",
        "down",
        "--input",
        "greeting=bye",
        "--run-id",
        "child",
        "--json",
    ]);
    let again = report(&again);
    assert_eq!(again["status"], "Completed", "{again}");
    assert_eq!(
        (s.executions("up"), s.executions("down")),
        (1, 2),
        "`up` is reused, `down` runs again"
    );
    let child = s.show("child");
    assert_eq!(child["parent_run_id"], "parent");
    assert_eq!(child["forked_from_node"], "down");
    assert_eq!(child["inputs"]["greeting"], "bye");
    assert_eq!(node(&child, "up")["status"], "Completed");
    let parent = s.show("parent");
    assert_eq!(parent["parent_run_id"], Value::Null);
    assert_eq!(parent["children"][0]["run_id"], "child");
    assert_eq!(parent["children"][0]["forked_from_node"], "down");
    let human = text(&s.ok(&["runs", "show", "child"]).stdout);
    assert!(
        human.contains("parent    parent (forked from node `down`)"),
        "{human}"
    );
    // The changed input reached the node that ran again, with the reused output.
    let summary = text(&s.ok(&["runs", "show", "child", "--json"]).stdout);
    assert!(summary.contains("\"greeting\": \"bye\""), "{summary}");

    // Without --from, everything runs again.
    s.ok(&["rerun", "parent", "--run-id", "all"]);
    assert_eq!((s.executions("up"), s.executions("down")), (2, 3));
    assert_eq!(s.show("all")["forked_from_node"], Value::Null);

    let unknown = s.run(&["rerun", "parent", "--from", "dwn"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("run `parent` has no node `dwn` (did you mean `down`?)"),
        "{}",
        text(&unknown.stderr)
    );
    let bad = s.run(&["rerun", "parent", "--input", "times=x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("input `times` must be of type integer"),
        "{}",
        text(&bad.stderr)
    );
    assert_eq!(s.executions("up"), 2, "a refused re-run runs nothing");
}

#[test]
fn a_failed_run_suggests_rerun_not_resume() {
    let s = Sandbox::new();
    std::fs::write(
        s.path("fail.yaml"),
        "name: failing\nnodes:\n  - id: a\n    action: shell\n    try_count: 1\n    inputs:\n      - {name: command, value: exit 3}\n",
    )
    .unwrap();
    let out = s.run(&["run", path_str(&s.path("fail.yaml")), "--run-id", "f"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("re-run with: dagger rerun f --from a [--input KEY=VALUE]"),
        "{stdout}"
    );
    assert!(!stdout.contains("dagger resume"), "{stdout}");
}
