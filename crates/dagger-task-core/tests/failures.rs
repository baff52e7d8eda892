//! Retries, failure propagation, fail-fast, schemas and timeouts.

mod common;

use common::{finish, manager, register};
use dagger_core::{BackoffStrategy, JsonSchema, Permanent, RetryPolicy};
use dagger_task_core::{
    FnAgent, JobConfig, JobStatus, TaskAgentRegistry, TaskContext, TaskOutcome, TaskSpec,
    TaskStatus,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn flaky(registry: &TaskAgentRegistry, fail_times: u32) -> Arc<AtomicU32> {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    register(registry, "flaky", move |_v, _ctx: TaskContext| {
        let c = c.clone();
        async move {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= fail_times {
                Err(format!("boom {n}").into())
            } else {
                Ok(TaskOutcome::Completed(json!(n)))
            }
        }
    });
    calls
}

fn retrying(max_attempts: u32) -> JobConfig {
    JobConfig {
        retry: RetryPolicy {
            max_attempts,
            strategy: BackoffStrategy::Linear,
            base_delay_ms: 20,
            ..RetryPolicy::default()
        },
        ..JobConfig::default()
    }
}

#[tokio::test]
async fn failed_attempts_are_retried_by_the_policy() {
    let registry = TaskAgentRegistry::new();
    let calls = flaky(&registry, 2);
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "flaky", "t").id("t")],
            None,
            Some(retrying(3)),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let t = m.get_task_by_id("t").unwrap();
    assert_eq!((t.failures, t.attempts), (2, 3));
    assert_eq!(t.output, Some(json!(3)));
}

#[tokio::test]
async fn task_max_retries_overrides_the_policy_count() {
    let registry = TaskAgentRegistry::new();
    let calls = flaky(&registry, 10);
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "flaky", "t").id("t").max_retries(1)],
            None,
            Some(retrying(5)),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one try plus one retry");
    let t = m.get_task_by_id("t").unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.as_deref(), Some("boom 2"));
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let registry = TaskAgentRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    register(&registry, "perm", move |_v, _c| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Err(Permanent::new("bad request").into())
        }
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![TaskSpec::new("j", "perm", "t").id("t")],
            None,
            Some(retrying(5)),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_task_fails_its_dependents_and_the_job_ends() {
    let registry = TaskAgentRegistry::new();
    flaky(&registry, 100);
    register(&registry, "ok", |v, _c| async move {
        Ok(TaskOutcome::Completed(v))
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "flaky", "root").id("root"),
                TaskSpec::new("j", "ok", "mid").id("mid").depends_on("root"),
                TaskSpec::new("j", "ok", "leaf")
                    .id("leaf")
                    .depends_on("mid"),
                TaskSpec::new("j", "ok", "independent").id("ind"),
            ],
            None,
            None,
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    let mid = m.get_task_by_id("mid").unwrap();
    assert_eq!(mid.status, TaskStatus::Failed);
    assert_eq!(mid.error.as_deref(), Some("dependency `root` failed"));
    let leaf = m.get_task_by_id("leaf").unwrap();
    assert_eq!(leaf.error.as_deref(), Some("dependency `mid` failed"));
    assert_eq!(
        m.get_task_by_id("ind").unwrap().status,
        TaskStatus::Completed
    );
    assert_eq!(m.job_status("j").unwrap(), JobStatus::Completed(false));
}

#[tokio::test]
async fn fail_fast_cancels_independent_work() {
    let registry = TaskAgentRegistry::new();
    flaky(&registry, 100);
    register(&registry, "slow", |_v, ctx: TaskContext| async move {
        ctx.cancel_token().cancelled().await;
        Ok(TaskOutcome::Completed(json!("never recorded")))
    });
    let m = manager(&registry);
    let cfg = JobConfig {
        fail_fast: true,
        ..JobConfig::default()
    };
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "slow", "s").id("s"),
                TaskSpec::new("j", "flaky", "f").id("f"),
            ],
            None,
            Some(cfg),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    let s = m.get_task_by_id("s").unwrap();
    assert_eq!(s.status, TaskStatus::Cancelled);
    assert_eq!(
        s.error.as_deref(),
        Some("a task failed and the job is fail-fast")
    );
}

#[tokio::test]
async fn schema_violations_fail_the_task_with_the_schema_error() {
    let registry = TaskAgentRegistry::new();
    let input =
        JsonSchema::compile(&json!({"type": "object", "required": ["a"]}), Some("calc")).unwrap();
    let output = JsonSchema::compile(
        &json!({"type": "object", "properties": {"result": {"type": "number"}}}),
        Some("calc"),
    )
    .unwrap();
    let agent = FnAgent::new("calc", |v, _c| async move {
        Ok(TaskOutcome::Completed(json!({"result": v["a"].clone()})))
    })
    .with_input_schema(input)
    .with_output_schema(output);
    registry.register("calc", Box::new(agent)).unwrap();
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "calc", "no a")
                    .id("bad_in")
                    .input(json!({"b": 1})),
                TaskSpec::new("j", "calc", "string a")
                    .id("bad_out")
                    .input(json!({"a": "x"})),
                TaskSpec::new("j", "calc", "good")
                    .id("good")
                    .input(json!({"a": 2})),
            ],
            None,
            Some(retrying(3)),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    let bad_in = m.get_task_by_id("bad_in").unwrap();
    assert_eq!(bad_in.status, TaskStatus::Failed);
    assert_eq!(
        bad_in.attempts, 1,
        "schema errors are not retried by default"
    );
    let e = bad_in.error.unwrap();
    assert!(
        e.starts_with(
            "task `bad_in`: input of agent `calc` violates its schema: schema violation at ``"
        ),
        "{e}"
    );
    assert!(e.contains("required"), "{e}");
    let e = m.get_task_by_id("bad_out").unwrap().error.unwrap();
    assert!(e.starts_with("task `bad_out`: output of agent `calc` violates its schema: schema violation at `/result`"), "{e}");
    assert_eq!(
        m.get_task_by_id("good").unwrap().output,
        Some(json!({"result": 2}))
    );
}

#[tokio::test]
async fn a_timed_out_attempt_fails() {
    let registry = TaskAgentRegistry::new();
    register(&registry, "hang", |_v, _c| async move {
        std::future::pending::<()>().await;
        Ok(TaskOutcome::Completed(json!(null)))
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "hang", "t")
                    .id("t")
                    .timeout(Duration::from_millis(50)),
            ],
            None,
            None,
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    assert_eq!(
        m.get_task_by_id("t").unwrap().error.as_deref(),
        Some("attempt timed out after 50 ms")
    );
}

#[tokio::test]
async fn cancel_ends_the_job_and_stops_running_agents() {
    let registry = TaskAgentRegistry::new();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Arc::new(parking_lot::Mutex::new(Some(tx)));
    register(&registry, "wait", move |_v, ctx: TaskContext| {
        let tx = tx.clone();
        async move {
            if let Some(tx) = tx.lock().take() {
                let _ = tx.send(());
            }
            ctx.cancel_token().cancelled().await;
            Ok(TaskOutcome::Completed(json!(null)))
        }
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "wait", "t").id("t"),
                TaskSpec::new("j", "wait", "u").id("u").depends_on("t"),
            ],
            None,
            None,
        )
        .unwrap();
    rx.await.unwrap();
    assert_eq!(h.get_status().await, JobStatus::Running);
    h.cancel();
    assert_eq!(finish(&h).await, JobStatus::Cancelled);
    assert_eq!(m.get_task_by_id("t").unwrap().status, TaskStatus::Cancelled);
    assert_eq!(m.get_task_by_id("u").unwrap().status, TaskStatus::Cancelled);
    assert!(
        m.take_stale_completions().is_empty(),
        "a cancel is not a stale lease"
    );
}
