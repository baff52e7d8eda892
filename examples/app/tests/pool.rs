//! The example application as a Postgres worker pool: `run --db
//! postgres://…` dispatches the app's own actions to the app's `worker`
//! processes, and a worker runs the tasks of the app's task agent.
//!
//! Needs the PostgreSQL of `DAGGER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test works in its own
//! schema, dropped at the end. `DAGGER_TEST_SKIP_SERVERS=1` skips when the
//! server is unreachable.

use dagger::storage::{PostgresOptions, PostgresStore};
use dagger::task_core::{JobStatus, StallAction, TaskAgentRegistry, TaskManager, TaskSpec};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[path = "../../../crates/dagger-cli/tests/support/pg_sandbox.rs"]
mod pg_sandbox;

use pg_sandbox::PgSandbox;

/// The test's pool: its own schema (dropped at the end) and app workers.
impl PgSandbox {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.command(env!("CARGO_BIN_EXE_dagger-example-app"), args);
        c.env_remove("EXAMPLE_APP_TRACE");
        c
    }

    fn trace(&self) -> PathBuf {
        self.dir.path().join("trace")
    }

    /// Starts an app worker that records its executions in the trace.
    fn worker(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("worker.log")).unwrap();
        let child = self
            .cmd(&["worker", "--lease", "1", "--concurrency", "2"])
            .env("EXAMPLE_APP_TRACE", self.trace())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn worker_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }
}

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
fn the_apps_workers_run_its_actions_and_its_task_agent() {
    let Some(mut pool) = PgSandbox::new("app", "worker") else {
        return;
    };
    pool.worker();
    let workflow = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/stats.yaml");

    // The run dispatches every node to the pool; this process executes none
    // (it has no trace file), the worker executes the app's actions.
    let out = pool
        .cmd(&["run", workflow.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nworker:\n{}",
        text(&out),
        pool.worker_log()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dispatching nodes to the worker pool"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sum 44.0, mean 4.0, max 9.0"),
        "{}",
        text(&out)
    );
    assert_eq!(
        executions(&pool.trace()),
        ["parse_numbers parse", "slow_stats stats"]
    );

    // A library manager submits a job for the app's task agent (and one
    // of its actions, which serves as a task agent too); the worker runs it.
    let manager = TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        dagger::Cache::new(),
        TaskAgentRegistry::new(),
        Arc::new(pool.store.clone()),
    );
    let job = "words";
    let specs = vec![
        TaskSpec::new(job, "word_count", "count")
            .id("count")
            .input(json!({"text": "the app's own agent ran here"})),
        TaskSpec::new(job, "parse_numbers", "parse")
            .id("parse")
            .input(json!({"text": "1 2 3"})),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        manager
            .submit_job(
                job,
                specs,
                Some(vec!["word_count".into(), "parse_numbers".into()]),
                None,
            )
            .unwrap();
        let handle = manager.resume_job(job).unwrap();
        tokio::time::timeout(Duration::from_secs(60), handle.wait())
            .await
            .expect("the pool finished the job")
    });
    assert_eq!(
        status,
        JobStatus::Completed(true),
        "worker:\n{}",
        pool.worker_log()
    );
    let count = manager.task("count").unwrap().unwrap();
    assert_eq!(count.output, Some(json!({"words": 6})));
    let parse = manager.task("parse").unwrap().unwrap();
    assert_eq!(parse.output.unwrap()["values"], json!([1.0, 2.0, 3.0]));
    assert_eq!(
        executions(&pool.trace()),
        [
            "parse_numbers parse",
            "parse_numbers parse",
            "slow_stats stats",
            "word_count count"
        ]
    );
}
