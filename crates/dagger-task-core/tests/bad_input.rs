//! Bad input is a typed error naming the culprit, and nothing is half-written.

mod common;

use common::{manager, register};
use dagger_task_core::{
    JobStatus, TaskAgentRegistry, TaskError, TaskOutcome, TaskSpec, TaskStatus,
};
use serde_json::json;

fn setup() -> (TaskAgentRegistry, dagger_task_core::TaskManager) {
    let registry = TaskAgentRegistry::new();
    register(&registry, "echo", |input, _ctx| async move {
        Ok(TaskOutcome::Completed(input))
    });
    let m = manager(&registry);
    (registry, m)
}

#[test]
fn unknown_agent_is_rejected_and_nothing_is_written() {
    let (_r, m) = setup();
    let err = m
        .add_tasks(vec![
            TaskSpec::new("j", "echo", "fine").id("a"),
            TaskSpec::new("j", "nobody", "bad").id("b"),
        ])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `b`: agent `nobody` is not registered"
    );
    assert!(matches!(err, TaskError::UnknownAgent { ref agent, .. } if agent == "nobody"));
    assert!(
        m.get_task_by_id("a").is_none(),
        "batch must be all or nothing"
    );
}

#[test]
fn missing_dependency_is_rejected() {
    let (_r, m) = setup();
    let err = m
        .add_task(TaskSpec::new("j", "echo", "x").id("a").depends_on("ghost"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `a` depends on `ghost`, which does not exist"
    );
    assert!(m.get_task_by_id("a").is_none());
    let err = m.add_dependency("a", "ghost").unwrap_err();
    assert!(matches!(err, TaskError::TaskNotFound(ref t) if t == "a"));
}

#[test]
fn cycles_are_rejected_with_their_path() {
    let (_r, m) = setup();
    let err = m
        .add_tasks(vec![
            TaskSpec::new("j", "echo", "a").id("a").depends_on("b"),
            TaskSpec::new("j", "echo", "b").id("b").depends_on("a"),
        ])
        .unwrap_err();
    assert!(matches!(err, TaskError::Cycle { .. }), "{err}");
    assert!(m.get_task_by_id("a").is_none());

    m.add_task(TaskSpec::new("j", "echo", "a").id("a")).unwrap();
    m.add_task(TaskSpec::new("j", "echo", "b").id("b").depends_on("a"))
        .unwrap();
    m.add_task(TaskSpec::new("j", "echo", "c").id("c").depends_on("b"))
        .unwrap();
    let err = m.add_dependency("a", "c").unwrap_err();
    assert_eq!(err.to_string(), "dependency cycle: a -> c -> b -> a");
    assert!(m.get_task_by_id("a").unwrap().dependencies.is_empty());
    let err = m.add_dependency("a", "a").unwrap_err();
    assert_eq!(err.to_string(), "dependency cycle: a -> a");
}

#[test]
fn duplicate_ids_and_agents_are_rejected() {
    let (r, m) = setup();
    m.add_task(TaskSpec::new("j", "echo", "a").id("a")).unwrap();
    let err = m
        .add_task(TaskSpec::new("j", "echo", "a").id("a"))
        .unwrap_err();
    assert_eq!(err.to_string(), "task `a` already exists");
    let err = r
        .register_agent(std::sync::Arc::new(dagger_task_core::FnAgent::new(
            "echo",
            |v, _c| async move { Ok(TaskOutcome::Completed(v)) },
        )))
        .unwrap_err();
    assert_eq!(err.to_string(), "agent `echo` is already registered");
}

#[test]
fn illegal_transitions_are_typed_errors() {
    let (_r, m) = setup();
    m.add_task(TaskSpec::new("j", "echo", "a").id("a")).unwrap();
    assert_eq!(m.get_task_by_id("a").unwrap().status, TaskStatus::Ready);
    let err = m
        .update_task_status("a", TaskStatus::Completed)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "illegal task transition for `a`: Ready -> Completed"
    );
    assert!(matches!(err, TaskError::Status(_)));
    assert_eq!(m.get_task_by_id("a").unwrap().status, TaskStatus::Ready);
}

#[tokio::test]
async fn tasks_cannot_be_added_to_a_finished_job() {
    let (_r, m) = setup();
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "echo", "a").id("a")],
            None,
            None,
        )
        .unwrap();
    assert_eq!(common::finish(&h).await, JobStatus::Completed(true));
    let err = m
        .add_task(TaskSpec::new("j", "echo", "late").id("late"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "job `j` has ended (Succeeded); it accepts no more tasks"
    );
    assert!(m.get_task_by_id("late").is_none());
    let err = m.start_job("j", vec![], None, None).unwrap_err();
    assert!(matches!(err, TaskError::JobFinished { .. }), "{err}");
}

#[tokio::test]
async fn agents_outside_the_allowed_list_are_rejected() {
    let (r, m) = setup();
    register(
        &r,
        "other",
        |v, _c| async move { Ok(TaskOutcome::Completed(v)) },
    );
    m.add_task(TaskSpec::new("j", "other", "early").id("early"))
        .unwrap();
    let err = m
        .start_job("j", vec![], Some(vec!["echo".to_string()]), None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `early`: agent `other` is not allowed in job `j`"
    );
    let h = m
        .start_job("k", vec![], Some(vec!["echo".to_string()]), None)
        .unwrap();
    let err = m
        .add_task(TaskSpec::new("k", "other", "x").id("x"))
        .unwrap_err();
    assert!(matches!(err, TaskError::AgentNotAllowed { ref job, .. } if job == "k"));
    m.add_task(TaskSpec::new("k", "echo", "y").id("y")).unwrap();
    h.cancel();
    assert_eq!(common::finish(&h).await, JobStatus::Cancelled);
}

#[test]
fn start_job_outside_a_runtime_is_an_error() {
    let (_r, m) = setup();
    let err = m.start_job("j", vec![], None, None).unwrap_err();
    assert!(matches!(err, TaskError::NoRuntime));
}

#[test]
fn dependency_outputs_require_done_dependencies() {
    let (_r, m) = setup();
    m.add_task(TaskSpec::new("j", "echo", "a").id("a").input(json!(1)))
        .unwrap();
    m.add_task(TaskSpec::new("j", "echo", "b").id("b").depends_on("a"))
        .unwrap();
    assert_eq!(m.get_task_by_id("b").unwrap().status, TaskStatus::Pending);
    let err = m.get_dependency_outputs("b").unwrap_err();
    assert_eq!(
        err.to_string(),
        "task `b`: dependency `a` has no output yet (it is Ready)"
    );
}
