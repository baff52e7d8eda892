//! Many managers (workers) on one in-memory store: no task runs twice at
//! the same time, none is lost, dependencies are respected.

mod common;

use common::{finish, register};
use dagger_core::Cache;
use dagger_core::store::MemoryStore;
use dagger_task_core::{
    JobConfig, JobStatus, StallAction, TaskAgentRegistry, TaskContext, TaskManager, TaskOutcome,
    TaskSpec, TaskStatus, TaskStore,
};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Default)]
struct Ledger {
    running: Mutex<HashSet<String>>,
    runs: Mutex<HashMap<String, usize>>,
    done: Mutex<HashSet<String>>,
    overlaps: AtomicUsize,
    order_violations: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_managers_share_a_job_without_double_runs_or_losses() {
    const TASKS: usize = 600;
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let ledger = Arc::new(Ledger::default());
    let mut managers = Vec::new();
    for _ in 0..8 {
        let registry = TaskAgentRegistry::new();
        let l = ledger.clone();
        register(&registry, "work", move |_v, ctx: TaskContext| {
            let l = l.clone();
            async move {
                let id = ctx.task_id().to_string();
                let task = ctx.manager().get_task_by_id(&id).ok_or("gone")?;
                let done = l.done.lock().clone();
                if task.dependencies.iter().any(|d| !done.contains(d.as_str())) {
                    l.order_violations.fetch_add(1, Ordering::SeqCst);
                }
                if !l.running.lock().insert(id.clone()) {
                    l.overlaps.fetch_add(1, Ordering::SeqCst);
                }
                *l.runs.lock().entry(id.clone()).or_default() += 1;
                tokio::task::yield_now().await;
                l.running.lock().remove(&id);
                l.done.lock().insert(id);
                Ok(TaskOutcome::Completed(json!(null)))
            }
        });
        managers.push(TaskManager::new(
            Duration::from_secs(60),
            StallAction::TerminateJob,
            Cache::new(),
            registry,
            store.clone(),
        ));
    }
    // A layered graph: each task depends on up to two tasks of the layer before.
    let specs: Vec<TaskSpec> = (0..TASKS)
        .map(|i| {
            let mut s = TaskSpec::new("j", "work", format!("t{i}"))
                .id(format!("t{i}"))
                .priority((i % 3) as i32);
            if i >= 50 {
                s = s
                    .depends_on(format!("t{}", i - 50))
                    .depends_on(format!("t{}", (i * 7) % (i - 49)));
            }
            s
        })
        .collect();
    let cfg = JobConfig {
        max_concurrency: 4,
        lease_ms: 10_000,
        ..JobConfig::default()
    };
    let mut handles = vec![managers[0].start_job("j", specs, None, Some(cfg)).unwrap()];
    for m in &managers[1..] {
        handles.push(m.resume_job("j").unwrap());
    }
    for h in &handles {
        assert_eq!(finish(h).await, JobStatus::Completed(true));
    }
    assert_eq!(
        ledger.overlaps.load(Ordering::SeqCst),
        0,
        "a task ran twice at once"
    );
    assert_eq!(
        ledger.order_violations.load(Ordering::SeqCst),
        0,
        "ran before a dependency"
    );
    let runs = ledger.runs.lock();
    assert_eq!(runs.len(), TASKS, "every task ran");
    assert!(
        runs.values().all(|n| *n == 1),
        "no lease expired, so exactly once"
    );
    let tasks = managers[0].get_job_tasks("j").unwrap();
    assert_eq!(tasks.len(), TASKS);
    assert!(
        tasks
            .iter()
            .all(|t| t.status == TaskStatus::Completed && t.attempts == 1)
    );
    for m in &managers {
        assert!(m.take_stale_completions().is_empty());
    }
}
