//! `dagger tasks dead` lists the Task Agent's dead letters with every
//! attempt's error; `dagger tasks retry ID` re-drives one (and refuses a
//! task that is not one, naming it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dagger_core::{BoxError, Cache, JobStatus, RetryPolicy, TaskStatus};
use dagger_storage::SqliteStore;
use dagger_task_core::{
    FnAgent, JobConfig, StallAction, TaskAgentRegistry, TaskManager, TaskOutcome, TaskSpec,
};
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

fn dagger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dagger"))
        .args(args)
        .env_remove("DAGGER_DB")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn manager(db: &str, healthy: bool) -> TaskManager {
    let store = SqliteStore::open(db).await.unwrap();
    let registry = TaskAgentRegistry::new();
    registry
        .register_agent(Arc::new(FnAgent::new(
            "bad",
            move |_v: Value, ctx| async move {
                if healthy {
                    Ok(TaskOutcome::Completed(json!("fixed")))
                } else {
                    let n = dagger_task_core::TaskContext::attempt(&ctx);
                    Err(BoxError::from(format!("disk on fire ({n})")))
                }
            },
        )))
        .unwrap();
    registry
        .register_agent(Arc::new(FnAgent::new(
            "echo",
            |v: Value, _ctx| async move { Ok(TaskOutcome::Completed(v)) },
        )))
        .unwrap();
    TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        registry,
        Arc::new(store),
    )
}

#[test]
fn tasks_dead_lists_and_tasks_retry_redrives() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("tasks.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let m = manager(&db, false).await;
        let cfg = JobConfig {
            retry: RetryPolicy {
                base_delay_ms: 1,
                ..RetryPolicy::attempts(2)
            },
            ..JobConfig::default()
        };
        let h = m
            .start_job(
                "j",
                vec![
                    TaskSpec::new("j", "bad", "write the report").id("t"),
                    TaskSpec::new("j", "echo", "publish")
                        .id("u")
                        .depends_on("t"),
                ],
                None,
                Some(cfg),
            )
            .unwrap();
        let end = tokio::time::timeout(Duration::from_secs(20), h.wait())
            .await
            .unwrap();
        assert_eq!(end, JobStatus::Completed(false));
    });

    let out = dagger(&["tasks", "dead", "--db", &db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed.contains("t  job j  agent bad  attempts 2  write the report"),
        "{listed}"
    );
    assert!(listed.contains("attempt 1 at "), "{listed}");
    assert!(listed.contains(": disk on fire (1)"), "{listed}");
    assert!(listed.contains(": disk on fire (2)"), "{listed}");
    assert!(
        !listed.contains("publish"),
        "u failed by propagation: {listed}"
    );

    let out = dagger(&["tasks", "dead", "--job", "other", "--db", &db]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "no dead letters in job other");

    let out = dagger(&["tasks", "dead", "--json", "--db", &db]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["task_id"], "t");
    assert_eq!(v[0]["errors"].as_array().unwrap().len(), 2);
    assert_eq!(v[0]["errors"][1]["error"], "disk on fire (2)");

    let out = dagger(&["tasks", "retry", "u", "--db", &db]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot re-drive task `u`: task `u` is not a dead letter: it is Failed"),
        "{err}"
    );

    let out = dagger(&["tasks", "retry", "t", "--db", &db]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("task t of job j is Ready again"), "{said}");
    assert!(said.contains("brought back: u"), "{said}");
    assert!(said.contains("job j was reopened"), "{said}");

    let out = dagger(&["tasks", "retry", "t", "--db", &db]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a re-driven task is no dead letter"
    );

    rt.block_on(async {
        let m = manager(&db, true).await;
        assert_eq!(m.job_status("j").unwrap(), JobStatus::Running);
        assert_eq!(m.get_task_by_id("t").unwrap().status, TaskStatus::Ready);
        assert_eq!(m.get_task_by_id("u").unwrap().status, TaskStatus::Pending);
        let h = m.resume_job("j").unwrap();
        let end = tokio::time::timeout(Duration::from_secs(20), h.wait())
            .await
            .unwrap();
        assert_eq!(end, JobStatus::Completed(true));
        assert_eq!(m.get_task_by_id("u").unwrap().output, Some(json!(null)));
    });
}
