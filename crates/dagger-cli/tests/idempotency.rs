//! `dagger run --idempotency-key`: processes racing to start a run under
//! one key record exactly one run and all answer with its id, on SQLite and
//! on Postgres; a later start with the key answers with that run and
//! starts nothing; `--key-policy skip` starts a new run once the keyed run
//! finished.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

#[path = "support/schema.rs"]
mod schema;

const WORKFLOW: &str = "name: keyed\nnodes:\n  - id: nap\n    action: sleep\n    inputs: [{name: seconds, value: 0.3}]\n";

/// `dagger ARGS` on `db` in `dir`.
fn dagger(dir: &std::path::Path, db: &str, schema: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
    c.args(args).current_dir(dir).env("DAGGER_DB", db);
    if let Some(schema) = schema {
        c.env("DAGGER_PG_SCHEMA", schema);
    }
    c
}

/// The run id a `run --json` answered with (its report, or the run the key names).
fn run_id_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    if v.get("started").is_some() {
        schema::assert_matches("already_started", &v);
    } else {
        schema::assert_matches("report", &v);
    }
    v["run_id"].as_str().unwrap().to_string()
}

/// Starts `n` processes at once with key `key`; returns each one's answer.
fn race(dir: &std::path::Path, db: &str, schema: Option<&str>, key: &str, n: usize) -> Vec<String> {
    let wf = dir.join("keyed.yaml");
    std::fs::write(&wf, WORKFLOW).unwrap();
    let wf = wf.display().to_string();
    let mut children = Vec::new();
    for _ in 0..n {
        let mut args = vec!["run", &wf, "--json", "-q", "--idempotency-key", key];
        if schema.is_some() {
            args.push("--local");
        }
        children.push(
            dagger(dir, db, schema, &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    children
        .into_iter()
        .map(|c| run_id_of(&c.wait_with_output().unwrap()))
        .collect()
}

/// The ids of the recorded runs of `keyed`.
fn recorded(dir: &std::path::Path, db: &str, schema: Option<&str>) -> BTreeSet<String> {
    let out = dagger(dir, db, schema, &["runs", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v
        .as_array()
        .or_else(|| v["runs"].as_array())
        .unwrap()
        .clone();
    list.iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect()
}

fn check_one_run(dir: &std::path::Path, db: &str, schema: Option<&str>) {
    let answers = race(dir, db, schema, "order-4711", 4);
    let ids: BTreeSet<_> = answers.iter().cloned().collect();
    assert_eq!(
        ids.len(),
        1,
        "every process answers with one run: {answers:?}"
    );
    assert_eq!(recorded(dir, db, schema), ids, "exactly one run recorded");

    // Later: the same run, nothing started.
    let again = race(dir, db, schema, "order-4711", 1);
    assert_eq!(again[0], answers[0]);
    assert_eq!(recorded(dir, db, schema).len(), 1);

    // `skip`: the keyed run finished, so a start records a new run.
    let wf = dir.join("keyed.yaml").display().to_string();
    let mut args = vec![
        "run",
        &wf,
        "--json",
        "-q",
        "--idempotency-key",
        "order-4711",
        "--key-policy",
        "skip",
    ];
    if schema.is_some() {
        args.push("--local");
    }
    let next = run_id_of(&dagger(dir, db, schema, &args).output().unwrap());
    assert_ne!(next, answers[0]);
    assert_eq!(recorded(dir, db, schema).len(), 2);
}

#[test]
fn racing_processes_start_one_run_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("runs.db").display());
    check_one_run(dir.path(), &db, None);
}

#[cfg(feature = "postgres")]
#[test]
fn racing_processes_start_one_run_on_postgres() {
    use dagger_storage::{PostgresOptions, PostgresStore};
    let url = std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!("t_keys_{}", std::process::id());
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        ..PostgresOptions::default()
    };
    let store = match PostgresStore::connect_blocking(&url, &options) {
        Ok(s) => s,
        Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1") => {
            eprintln!("skipping: PostgreSQL unreachable ({e})");
            return;
        }
        Err(e) => panic!("PostgreSQL at {url} is unreachable: {e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    check_one_run(dir.path(), &url, Some(&schema));
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.drop_schema())
        .unwrap();
}
