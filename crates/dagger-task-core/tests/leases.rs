//! Leases: expiry returns a task to Ready, a stale completion is rejected and
//! reported, and a new manager on the same store continues a crashed job.

mod common;

use common::{finish, register};
use dagger_core::store::MemoryStore;
use dagger_core::{Cache, RetryPolicy};
use dagger_task_core::{
    JobConfig, JobStatus, StallAction, TaskAgentRegistry, TaskContext, TaskError, TaskManager,
    TaskOutcome, TaskSpec, TaskStatus, TaskStore,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn manager_on(store: Arc<dyn TaskStore>, registry: &TaskAgentRegistry) -> TaskManager {
    TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        registry.clone(),
        store,
    )
}

/// Runs `f` on a fresh single-threaded runtime on its own thread.
fn on_own_runtime<F: FnOnce(tokio::runtime::Runtime) + Send + 'static>(
    f: F,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        f(rt)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_reclaimed_and_the_stale_completion_rejected() {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (stale_tx, stale_rx) = std::sync::mpsc::channel::<Vec<TaskError>>();
    let a_store = store.clone();
    // Worker A blocks its whole runtime thread, so it cannot renew its lease.
    let a = on_own_runtime(move |rt| {
        let registry = TaskAgentRegistry::new();
        register(&registry, "work", move |_v, _c: TaskContext| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_millis(800));
                Ok(TaskOutcome::Completed(json!("from A")))
            }
        });
        let m = manager_on(a_store, &registry);
        rt.block_on(async {
            let cfg = JobConfig {
                lease_ms: 150,
                // The expired lease counts as an attempt: allow a second.
                retry: RetryPolicy::attempts(2),
                ..JobConfig::default()
            };
            let h = m
                .start_job(
                    "j",
                    vec![TaskSpec::new("j", "work", "t").id("t")],
                    None,
                    Some(cfg),
                )
                .unwrap();
            finish(&h).await;
        });
        let _ = stale_tx.send(m.take_stale_completions());
    });
    started_rx.recv().unwrap();
    let registry = TaskAgentRegistry::new();
    register(&registry, "work", |_v, ctx: TaskContext| async move {
        Ok(TaskOutcome::Completed(
            json!({"from": "B", "attempt": ctx.attempt()}),
        ))
    });
    let b = manager_on(store.clone(), &registry);
    let h = b.resume_job("j").unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    let t = b.get_task_by_id("t").unwrap();
    assert_eq!(t.output, Some(json!({"from": "B", "attempt": 2})));
    a.join().unwrap();
    let stale = stale_rx.recv().unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(
        stale[0].to_string(),
        "stale lease on task `t`: attempt 1 is no longer current (task is Completed at attempt 2)"
    );
    assert_eq!(
        b.get_task_by_id("t").unwrap().output,
        Some(json!({"from": "B", "attempt": 2})),
        "A's late result must not overwrite B's"
    );
}

#[test]
fn a_new_manager_continues_a_crashed_job() {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let a_store = store.clone();
    // Manager A's runtime is dropped mid-task: nothing of A runs again and it
    // records nothing, as if its process had been killed.
    let a = on_own_runtime(move |rt| {
        let started = Arc::new(tokio::sync::Notify::new());
        let registry = TaskAgentRegistry::new();
        let s = started.clone();
        register(&registry, "work", move |_v, _c: TaskContext| {
            let s = s.clone();
            async move {
                s.notify_one();
                std::future::pending::<()>().await;
                Ok(TaskOutcome::Completed(json!(null)))
            }
        });
        register(&registry, "after", |v, _c| async move {
            Ok(TaskOutcome::Completed(v))
        });
        let m = manager_on(a_store, &registry);
        let cfg = JobConfig {
            lease_ms: 200,
            // The expired lease counts as an attempt: allow a second.
            retry: RetryPolicy::attempts(2),
            ..JobConfig::default()
        };
        rt.block_on(async {
            let _h = m
                .start_job(
                    "j",
                    vec![
                        TaskSpec::new("j", "work", "t").id("t"),
                        TaskSpec::new("j", "after", "u")
                            .id("u")
                            .depends_on("t")
                            .input(json!(7)),
                    ],
                    None,
                    Some(cfg),
                )
                .unwrap();
            started.notified().await;
        });
        rt.shutdown_background();
    });
    a.join().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = TaskAgentRegistry::new();
        register(&registry, "work", |_v, ctx: TaskContext| async move {
            Ok(TaskOutcome::Completed(json!(ctx.attempt())))
        });
        register(&registry, "after", |v, _c| async move {
            Ok(TaskOutcome::Completed(v))
        });
        let b = manager_on(store.clone(), &registry);
        assert_eq!(
            b.get_task_by_id("t").unwrap().status,
            TaskStatus::InProgress
        );
        let handles = b.resume_jobs().unwrap();
        assert_eq!(handles.len(), 1);
        assert_eq!(finish(&handles[0]).await, JobStatus::Completed(true));
        assert_eq!(b.get_task_by_id("t").unwrap().output, Some(json!(2)));
        assert_eq!(b.get_task_by_id("u").unwrap().output, Some(json!(7)));
        assert!(
            b.resume_jobs().unwrap().is_empty(),
            "nothing left to resume"
        );
    });
}
