//! Stall detection: no progress for the heartbeat triggers the StallAction.

mod common;

use common::{finish, register};
use dagger_core::Cache;
use dagger_task_core::{
    JobConfig, JobStatus, StallAction, StallReport, TaskAgentRegistry, TaskContext, TaskManager,
    TaskOutcome, TaskSpec, TaskStatus,
};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// An agent that parks its own task as Blocked (no dependencies) the first
/// time, and completes the second time.
fn stuck_agent(registry: &TaskAgentRegistry) {
    register(registry, "stuck", |_v, ctx: TaskContext| async move {
        if ctx.attempt() == 1 {
            ctx.manager()
                .update_task_status(ctx.task_id().as_str(), TaskStatus::Blocked)?;
            return Err("waiting for a human".into());
        }
        Ok(TaskOutcome::Completed(json!("unstuck")))
    });
}

fn manager(registry: &TaskAgentRegistry, action: StallAction) -> TaskManager {
    TaskManager::in_memory(
        Duration::from_millis(200),
        action,
        Cache::new(),
        registry.clone(),
    )
}

#[tokio::test]
async fn notify_planning_agent_adds_a_task_with_the_stall_report() {
    let registry = TaskAgentRegistry::new();
    stuck_agent(&registry);
    let reports = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let r = reports.clone();
    register(&registry, "planner", move |input, ctx: TaskContext| {
        let r = r.clone();
        async move {
            r.lock().push(input.clone());
            let report: StallReport = serde_json::from_value(input["stall_report"].clone())?;
            for t in report
                .open_tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Blocked)
            {
                ctx.manager()
                    .update_task_status(t.task_id.as_str(), TaskStatus::Ready)?;
            }
            Ok(TaskOutcome::Completed(json!("replanned")))
        }
    });
    let m = manager(&registry, StallAction::NotifyPlanningAgent);
    let cfg = JobConfig {
        planning_agent: "planner".into(),
        ..JobConfig::default()
    };
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "stuck", "s").id("s")],
            None,
            Some(cfg),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    let reports = reports.lock();
    assert_eq!(reports.len(), 1);
    let report = &reports[0]["stall_report"];
    assert_eq!(report["job_id"], "j");
    assert!(report["idle_ms"].as_u64().unwrap() >= 200);
    assert_eq!(report["open_tasks"][0]["task_id"], "s");
    assert_eq!(report["open_tasks"][0]["status"], "Blocked");
    assert_eq!(
        m.get_task_by_id("s").unwrap().output,
        Some(json!("unstuck"))
    );
}

#[tokio::test]
async fn an_unavailable_planning_agent_terminates_the_job_saying_why() {
    let registry = TaskAgentRegistry::new();
    stuck_agent(&registry);
    let m = manager(&registry, StallAction::NotifyPlanningAgent);
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "stuck", "s").id("s")],
            None,
            None,
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    let e = m.get_task_by_id("s").unwrap().error.unwrap();
    assert!(
        e.contains("the planning agent `planning_agent` could not be notified: task"),
        "{e}"
    );
    assert!(
        e.ends_with("agent `planning_agent` is not registered"),
        "{e}"
    );
}

#[tokio::test]
async fn terminate_job_ends_a_stalled_job() {
    let registry = TaskAgentRegistry::new();
    stuck_agent(&registry);
    let m = manager(&registry, StallAction::TerminateJob);
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "stuck", "s").id("s")],
            None,
            None,
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    let s = m.get_task_by_id("s").unwrap();
    assert_eq!(s.status, TaskStatus::Cancelled);
    assert!(s.error.unwrap().starts_with("stalled: no progress for "));
}

#[tokio::test]
async fn custom_callback_receives_the_report_and_the_job_keeps_running() {
    let registry = TaskAgentRegistry::new();
    stuck_agent(&registry);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StallReport>();
    let action = StallAction::Custom(Arc::new(move |r: &StallReport| {
        let _ = tx.send(r.clone());
    }));
    let m = manager(&registry, action);
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "stuck", "s").id("s")],
            None,
            None,
        )
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.open_tasks.len(), 1);
    assert_eq!(first.open_tasks[0].error.as_deref(), None);
    let second = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.job_id.as_str(), "j");
    assert_eq!(h.status(), JobStatus::Running);
    m.update_task_status("s", TaskStatus::Ready).unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
}
