//! The example application end to end: its binary (`dagger::cli::run()`)
//! runs, validates and lists the app's own actions, and resumes a run that
//! the app's library code recorded.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn app() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dagger-example-app"))
}

fn workflow(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workflows")
        .join(name)
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The lines of the trace file (one per execution), sorted.
fn executions(trace: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_app_runs_validates_and_lists_its_own_actions() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("runs.db").display());
    let out = app()
        .args(["validate"])
        .arg(workflow("stats.yaml"))
        .arg(workflow("gated.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let out = app()
        .arg("run")
        .arg(workflow("stats.yaml"))
        .args(["--db", &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sum 44.0, mean 4.0, max 9.0"),
        "{}",
        text(&out)
    );

    let out = app().args(["actions", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = |key: &str| -> Vec<String> {
        listing[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("actions"),
        [
            "echo",
            "fail",
            "parse_numbers",
            "shell",
            "sleep",
            "slow_stats"
        ]
    );
    assert_eq!(names("task_agents"), ["word_count"]);
    assert_eq!(
        listing["actions"][5]["input_schema"]["required"],
        serde_json::json!(["values"])
    );
}

#[test]
fn a_run_recorded_by_library_code_resumes_from_the_apps_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("runs.db").display());
    let gate = dir.path().join("gate");
    let trace = dir.path().join("trace");

    // The app's library code (no CLI) records a run that fails at `stats`.
    let out = Command::new(env!("CARGO_BIN_EXE_record_run"))
        .arg(workflow("gated.yaml"))
        .args([db.as_str(), "lib-run", &format!("gate={}", gate.display())])
        .env("EXAMPLE_APP_TRACE", &trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("run lib-run Failed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        executions(&trace),
        ["parse_numbers parse", "slow_stats stats"]
    );

    // The app's command resumes it: only the unfinished node runs again.
    std::fs::write(&gate, "open").unwrap();
    let out = app()
        .args(["resume", "lib-run", "--db", &db, "--json"])
        .env("EXAMPLE_APP_TRACE", &trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "Completed", "{}", text(&out));
    assert_eq!(
        executions(&trace),
        [
            "parse_numbers parse",
            "slow_stats stats",
            "slow_stats stats"
        ],
        "`parse` completed before the resume and did not run again"
    );

    let out = app()
        .args(["runs", "show", "lib-run", "--json", "--db", &db])
        .output()
        .unwrap();
    let show: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(show["status"], "Completed", "{}", text(&out));
}

#[test]
fn the_app_rejects_unknown_agents_naming_what_it_has() {
    let out = app()
        .args(["worker", "--db", "sqlite::memory:", "--agents", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no action or task agent `nope`") && err.contains("word_count"),
        "{}",
        text(&out)
    );
}
