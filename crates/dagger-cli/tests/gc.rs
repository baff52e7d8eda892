//! `dagger gc`: old finished runs go, unfinished and recent ones stay,
//! `--dry-run` removes nothing, `--json` is a `gc_report`.

use dagger_core::store::{RunQuery, RunRecord, RunStore};
use dagger_core::{RunId, RunStatus};
use dagger_storage::SqliteStore;
use serde_json::{Value, json};
use std::process::{Command, Output};

#[path = "support/sandbox.rs"]
mod sandbox;
#[path = "support/schema.rs"]
mod schema;

use sandbox::Sandbox;

impl Sandbox {
    fn dagger(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dagger"))
            .args(args)
            .current_dir(self.dir.path())
            .env("DAGGER_DB", self.db())
            .output()
            .unwrap()
    }
}

fn old_run(id: &str, status: RunStatus) -> RunRecord {
    RunRecord {
        run_id: RunId::from(id),
        workflow: "old".to_string(),
        definition: json!({"name": "old", "nodes": []}),
        inputs: json!({}),
        config: json!({}),
        status,
        reason: None,
        created_at: 1_000,
        updated_at: 2_000,
        finished_at: status.is_terminal().then_some(2_000),
        owner: None,
        lineage: None,
    }
}

fn run_ids(rt: &tokio::runtime::Runtime, db: &str) -> Vec<String> {
    rt.block_on(async {
        let store = SqliteStore::open(db).await.unwrap();
        let mut ids: Vec<String> = store
            .list_runs(&RunQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.run_id.to_string())
            .collect();
        ids.sort();
        ids
    })
}

#[test]
fn gc_removes_old_finished_runs_only() {
    let s = Sandbox::new();
    let wf = s.write(
        "wf.yaml",
        "name: fresh\nnodes:\n  - id: a\n    action: echo\n",
    );
    let out = s.dagger(&["run", wf.to_str().unwrap(), "--quiet"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&s.db()).await.unwrap();
        store
            .create_run(old_run("old-done", RunStatus::Completed))
            .await
            .unwrap();
        store
            .create_run(old_run("old-paused", RunStatus::Paused))
            .await
            .unwrap();
        store
            .create_run(old_run("old-running", RunStatus::Running))
            .await
            .unwrap();
        store.flush().await.unwrap();
    });
    let before = run_ids(&rt, &s.db());
    assert_eq!(before.len(), 4);

    let out = s.dagger(&["gc", "--older-than", "30d", "--dry-run", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    schema::assert_matches("gc_report", &report);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["counts"]["runs"], 1);
    assert_eq!(run_ids(&rt, &s.db()), before, "a dry run removes nothing");

    let out = s.dagger(&["gc", "--older-than", "30d"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("KIND"), "{table}");
    let runs_row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("runs "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(runs_row, ["runs", "1"], "{table}");
    let after = run_ids(&rt, &s.db());
    assert!(!after.contains(&"old-done".to_string()), "{after:?}");
    assert!(after.contains(&"old-paused".to_string()), "{after:?}");
    assert!(after.contains(&"old-running".to_string()), "{after:?}");
    assert_eq!(after.len(), 3, "the fresh run stays: {after:?}");
}

#[test]
fn gc_refuses_a_malformed_duration_and_creates_no_database() {
    let s = Sandbox::new();
    let out = s.dagger(&["gc", "--older-than", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
    let out = s.dagger(&["gc", "--older-than", "1d", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["counts"]["runs"], 0);
    assert!(!s.path("runs.db").exists(), "gc creates no database");
}
