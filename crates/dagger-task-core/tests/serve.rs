//! Worker mode: `TaskManager::serve` picks up jobs other managers submitted
//! or started on a shared store, only for the agents it has.

mod common;

use common::*;
use dagger_core::Cache;
use dagger_core::store::{MemoryStore, TaskStore};
use dagger_task_core::{
    JobStatus, StallAction, TaskAgentRegistry, TaskManager, TaskOutcome, TaskSpec,
};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn on(store: &Arc<dyn TaskStore>, registry: &TaskAgentRegistry) -> TaskManager {
    TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        registry.clone(),
        store.clone(),
    )
}

/// A registry with `name`, whose agent records `(worker, task input)` in `log`.
fn recording(
    worker: &'static str,
    name: &str,
    log: &Arc<Mutex<Vec<(String, String)>>>,
) -> TaskAgentRegistry {
    let registry = TaskAgentRegistry::new();
    let log = log.clone();
    register(&registry, name, move |input, _ctx| {
        let log = log.clone();
        async move {
            log.lock().push((worker.to_string(), input.to_string()));
            Ok(TaskOutcome::Completed(json!({"by": worker})))
        }
    });
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_managers_run_submitted_jobs_for_their_agents_only() {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let serve = |m: TaskManager| {
        let stop = stop.clone();
        tokio::spawn(async move { m.serve(stop).await.unwrap() })
    };
    let x = serve(on(&store, &recording("wx", "x", &log)));
    let y = serve(on(&store, &recording("wy", "y", &log)));
    let idle = serve(on(&store, &recording("wz", "z", &log)));

    // The submitter has no agents at all.
    let submitter = on(&store, &TaskAgentRegistry::new());
    let job = submitter
        .submit_job(
            "pool-job",
            vec![
                TaskSpec::new("pool-job", "x", "one").input(json!(1)),
                TaskSpec::new("pool-job", "y", "two").input(json!(2)),
                TaskSpec::new("pool-job", "x", "three").input(json!(3)),
            ],
            Some(vec!["x".into(), "y".into()]),
            None,
        )
        .unwrap();
    let handle = submitter.resume_job(job.as_str()).unwrap();
    assert_eq!(finish(&handle).await, JobStatus::Completed(true));
    let mut ran = log.lock().clone();
    ran.sort();
    assert_eq!(
        ran,
        vec![
            ("wx".to_string(), "1".to_string()),
            ("wx".to_string(), "3".to_string()),
            ("wy".to_string(), "2".to_string()),
        ],
        "each task ran once, on a worker with its agent"
    );
    stop.cancel();
    for t in [x, y, idle] {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_after_serve_began_is_picked_up_without_polling() {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let worker = on(&store, &recording("w", "x", &log));
    let served = {
        let stop = stop.clone();
        tokio::spawn(async move { worker.serve(stop).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let submitter = on(&store, &TaskAgentRegistry::new());
    submitter
        .submit_job("late", vec![TaskSpec::new("late", "x", "t")], None, None)
        .unwrap();
    // The memory store signals changes, which wake the serve loop.
    let started = std::time::Instant::now();
    loop {
        if submitter.job_status("late").unwrap() == JobStatus::Completed(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "job not served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log.lock().len(), 1);
    stop.cancel();
    served.await.unwrap();
}

#[tokio::test]
async fn submit_checks_allowed_agents_but_not_the_registry() {
    let submitter = TaskManager::in_memory(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        TaskAgentRegistry::new(),
    );
    let err = submitter
        .submit_job(
            "j",
            vec![TaskSpec::new("j", "b", "t")],
            Some(vec!["a".into()]),
            None,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("not allowed") || format!("{err:?}").contains("AgentNotAllowed"),
        "{err}"
    );
    let err = submitter
        .start_job("k", vec![TaskSpec::new("k", "a", "t")], None, None)
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("UnknownAgent"),
        "start_job still needs the agent: {err:?}"
    );
}
