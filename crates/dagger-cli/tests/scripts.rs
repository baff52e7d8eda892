//! The `dagger` command for scripts: every `--json` output against the one
//! documented schema (docs/schemas/cli.schema.json), enum arguments in any
//! case, run-id prefixes, `validate DIR` and globs, read-only commands that
//! create no database, shell completions.

use serde_json::Value;
use std::process::{Command, Output};

#[path = "support/sandbox.rs"]
mod sandbox;

use sandbox::{Sandbox, repo};

impl Sandbox {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dagger"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("DAGGER_DB")
            .output()
            .unwrap()
    }
    /// Runs `args`, expecting exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Checks `value` against `$defs/<def>` of the documented schema; panics
/// with every violation.
fn assert_matches(def: &str, value: &Value) {
    let text = std::fs::read_to_string(repo().join("docs/schemas/cli.schema.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    assert!(
        schema["$defs"].get(def).is_some(),
        "the schema has no `{def}`"
    );
    schema["$ref"] = Value::String(format!("#/$defs/{def}"));
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{def}: {}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(value).unwrap()
    );
}

const FLAKY: &str = "name: mixed
nodes:
  - id: greet
    action: echo
    inputs: [{ name: text, value: hi }]
  - id: boom
    action: fail
    dependencies: [greet]
    inputs: [{ name: message, value: kaput }]
";

#[test]
fn runs_list_json_matches_the_documented_schema_as_does_every_json_output() {
    let s = Sandbox::new();
    let wf = s.write("mixed.yaml", FLAKY);
    let wf = wf.to_str().unwrap();

    // No database yet: an empty list, and none is created.
    let out = s.run(&["runs", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
    assert_matches("run_list", &list);
    assert!(
        stderr(&out).contains("no database at .dagger/dagger.db"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path(".dagger").exists(), "runs list created a database");

    let out = s.run(&["run", wf, "--json", "--run-id", "mixed-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_matches("report", &report);
    assert_eq!(report["workflow"], "mixed");
    assert_eq!(report["nodes"][1]["node_id"], "boom");

    let list: Value = serde_json::from_str(&s.ok(&["runs", "list", "--json"])).unwrap();
    assert_matches("run_list", &list);
    assert_eq!(list[0]["run_id"], "mixed-1");
    assert_eq!(list[0]["workflow"], "mixed");
    assert_eq!(list[0]["status"], "Failed");
    assert_eq!(list[0]["state"], "Failed");

    let show: Value = serde_json::from_str(&s.ok(&["runs", "show", "mixed-1", "--json"])).unwrap();
    assert_matches("run_detail", &show);
    assert_eq!(show["workflow"], "mixed");
    assert_eq!(show["nodes"][0]["node_id"], "greet");

    let resumed = s.run(&["rerun", "mixed-1", "--run-id", "mixed-2", "--json"]);
    let resumed: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_matches("report", &resumed);
    let show: Value = serde_json::from_str(&s.ok(&["runs", "show", "mixed-1", "--json"])).unwrap();
    assert_eq!(show["children"][0]["run_id"], "mixed-2");
    assert_matches("run_detail", &show);

    let logs = s.ok(&["logs", "mixed-1", "--json"]);
    assert_eq!(logs.lines().count(), 2, "{logs}");
    for line in logs.lines() {
        assert_matches("attempt", &serde_json::from_str(line).unwrap());
    }
    let listing: Value = serde_json::from_str(&s.ok(&["actions", "--json"])).unwrap();
    assert_matches("listing", &listing);
    let dead: Value = serde_json::from_str(&s.ok(&["tasks", "dead", "--json"])).unwrap();
    assert_matches("dead_letter_list", &dead);

    let bad = s.write(
        "bad.yaml",
        "name: b\nnodes:\n  - id: a\n    action: teleport\n",
    );
    let out = s.run(&["validate", "--json", wf, bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let validation: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_matches("validation", &validation);
    assert_eq!(validation["problems"][0]["line"], 4);

    // A key the schema does not know fails the check (the test can fail).
    let mut drifted = list[0].clone();
    drifted["dag_name"] = Value::from("mixed");
    let text = std::fs::read_to_string(repo().join("docs/schemas/cli.schema.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    schema["$ref"] = Value::from("#/$defs/run");
    assert!(
        !jsonschema::validator_for(&schema)
            .unwrap()
            .is_valid(&drifted)
    );
}

#[test]
fn read_only_commands_create_no_database() {
    let s = Sandbox::new();
    let out = s.run(&["runs", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "the header only");
    for args in [
        &["runs", "show", "r1"][..],
        &["logs", "r1"],
        &["dot", "--run", "r1"],
        &["cancel", "r1"],
        &["approve", "r1", "n"],
        &["resume", "r1"],
        &["rerun", "r1"],
    ] {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("run `r1` not found: no database at .dagger/dagger.db"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = s.run(&["tasks", "dead"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!s.path(".dagger").exists(), "a read created a database");
}

#[test]
fn statuses_are_accepted_in_any_case_and_bad_ones_list_the_valid_values() {
    let s = Sandbox::new();
    let wf = s.write("mixed.yaml", FLAKY);
    s.run(&["run", wf.to_str().unwrap(), "--run-id", "f-1"]);
    let ok = s.write("ok.yaml", "name: ok\nnodes:\n  - id: a\n    action: echo\n");
    s.ok(&["run", ok.to_str().unwrap(), "--run-id", "ok-1"]);
    for spelling in ["failed", "FAILED", "Failed"] {
        let text = s.ok(&["runs", "list", "--status", spelling]);
        assert!(text.contains("f-1") && !text.contains("ok-1"), "{text}");
    }
    let text = s.ok(&["runs", "list", "--status", "waitingforhuman"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    let out = s.run(&["runs", "list", "--status", "broken"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "[possible values: Pending, Running, Paused, WaitingForHuman, Completed, Failed, Cancelled, Orphaned]"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_unique_run_id_prefix_names_the_run_and_an_ambiguous_one_lists_the_candidates() {
    let s = Sandbox::new();
    let ok = s.write("ok.yaml", "name: ok\nnodes:\n  - id: a\n    action: echo\n");
    for id in ["abc-1", "abc-2", "xyz-1"] {
        s.ok(&["run", ok.to_str().unwrap(), "--run-id", id]);
    }
    let show: Value = serde_json::from_str(&s.ok(&["runs", "show", "xy", "--json"])).unwrap();
    assert_eq!(show["run_id"], "xyz-1");
    assert!(s.ok(&["logs", "xyz"]).contains("=== node a"));
    assert!(s.ok(&["dot", "--run", "x"]).contains("digraph"));
    // An exact id wins over being a prefix of another.
    s.ok(&["run", ok.to_str().unwrap(), "--run-id", "abc"]);
    let show: Value = serde_json::from_str(&s.ok(&["runs", "show", "abc", "--json"])).unwrap();
    assert_eq!(show["run_id"], "abc");
    let out = s.run(&["runs", "show", "abc-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("run id `abc-` is ambiguous: it could be `abc-1`, `abc-2`"),
        "{}",
        stderr(&out)
    );
    let out = s.run(&["runs", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("run `nope` not found"));
}

#[test]
fn validate_takes_directories_and_glob_patterns() {
    let s = Sandbox::new();
    let good = "name: g\nnodes:\n  - id: a\n    action: echo\n";
    s.write("flows/one.yaml", good);
    s.write("flows/two.yml", &good.replace("name: g", "name: h"));
    s.write("flows/notes.txt", "not a workflow");
    s.write("flows/deep/three.yaml", &good.replace("name: g", "name: i"));
    assert_eq!(
        s.ok(&["validate", "flows"]).trim_end(),
        "2 workflow file(s) valid"
    );
    assert_eq!(
        s.ok(&["validate", "flows/**/*.yaml"]).trim_end(),
        "2 workflow file(s) valid"
    );
    s.write(
        "flows/deep/broken.yaml",
        "name: b\nnodes:\n  - id: a\n    action: teleport\n",
    );
    let out = s.run(&["validate", "flows/*.yaml", "flows/deep"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("flows/deep/broken.yaml:4:13: node `a`: unknown action"),
        "{}",
        stdout(&out)
    );
    let out = s.run(&["validate", "nothing/*.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no file matches `nothing/*.yaml`"));
    std::fs::create_dir(s.path("empty")).unwrap();
    let out = s.run(&["validate", "empty"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no *.yaml or *.yml file in directory empty"));
}

#[test]
fn completions_name_the_subcommands() {
    let s = Sandbox::new();
    let bash = s.ok(&["completions", "bash"]);
    for sub in ["validate", "run", "resume", "runs", "logs", "completions"] {
        assert!(bash.contains(sub), "bash completion lacks `{sub}`");
    }
    assert!(bash.contains("complete -F _dagger"), "{bash}");
    assert!(s.ok(&["completions", "ZSH"]).starts_with("#compdef dagger"));
    assert!(
        s.ok(&["completions", "fish"])
            .contains("complete -c dagger")
    );
    assert_eq!(s.run(&["completions", "tcsh"]).status.code(), Some(2));
}
