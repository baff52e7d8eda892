//! Poison work: a panicking agent fails its attempt; expired leases count as
//! attempts; a task that failed its last attempt is a dead letter that can
//! be listed and re-driven; per-agent circuit breakers; the manager-wide
//! bound on running tasks.

mod common;

use common::{finish, manager, register};
use dagger_core::store::MemoryStore;
use dagger_core::{BackoffStrategy, Cache, RetryPolicy};
use dagger_task_core::{
    BreakerState, CircuitBreaker, JobConfig, JobStatus, StallAction, TaskAgentRegistry,
    TaskContext, TaskError, TaskEvent, TaskManager, TaskOutcome, TaskSpec, TaskStatus, TaskStore,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

fn immediate(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        strategy: BackoffStrategy::Immediate,
        ..RetryPolicy::default()
    }
}

fn config(max_attempts: u32) -> JobConfig {
    JobConfig {
        retry: immediate(max_attempts),
        ..JobConfig::default()
    }
}

/// Waits for `f` to hold, failing the test after 20 s.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event, failing the test after 20 s.
async fn next_event(rx: &mut tokio::sync::broadcast::Receiver<TaskEvent>) -> TaskEvent {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no event within 20 s")
        .expect("event channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_agent_fails_its_attempts_then_the_task() {
    let registry = TaskAgentRegistry::new();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    register(&registry, "bomb", move |_v, _ctx: TaskContext| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n < 100 {
                panic!("boom {n}");
            }
            Ok(TaskOutcome::Completed(json!(n)))
        }
    });
    register(&registry, "after", |v, _c| async move {
        Ok(TaskOutcome::Completed(v))
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "bomb", "t").id("t"),
                TaskSpec::new("j", "after", "u").id("u").depends_on("t"),
            ],
            None,
            Some(config(3)),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "three attempts, no more");
    let t = m.get_task_by_id("t").unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.attempts, 3);
    assert_eq!(t.error.as_deref(), Some("agent `bomb` panicked: boom 3"));
    let u = m.get_task_by_id("u").unwrap();
    assert_eq!(u.status, TaskStatus::Failed);
    assert_eq!(u.error.as_deref(), Some("dependency `t` failed"));
    let errors: Vec<_> = m
        .attempt_errors("t")
        .unwrap()
        .into_iter()
        .map(|e| (e.attempt, e.error))
        .collect();
    assert_eq!(
        errors,
        [1, 2, 3].map(|n| (n, format!("agent `bomb` panicked: boom {n}")))
    );
}

fn manager_on(store: Arc<dyn TaskStore>, registry: &TaskAgentRegistry) -> TaskManager {
    TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        registry.clone(),
        store,
    )
}

/// Each round, a manager on its own runtime claims the task and "dies"
/// mid-attempt (its runtime is dropped: no renewal, no result), as a
/// crashed or hung worker would. Its lease expires; the next manager
/// counts that as a failed attempt. After `max_attempts` the task is Failed
/// with the reason, instead of being re-leased without end.
#[test]
fn repeated_lease_expiries_fail_the_task_after_max_attempts() {
    let store: Arc<dyn TaskStore> = Arc::new(MemoryStore::new());
    let cfg = JobConfig {
        lease_ms: 150,
        ..config(3)
    };
    for round in 0..3 {
        let store = store.clone();
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let started = Arc::new(tokio::sync::Notify::new());
            let registry = TaskAgentRegistry::new();
            let s = started.clone();
            register(&registry, "hang", move |_v, _c: TaskContext| {
                let s = s.clone();
                async move {
                    s.notify_one();
                    std::future::pending::<()>().await;
                    Ok(TaskOutcome::Completed(json!(null)))
                }
            });
            let m = manager_on(store, &registry);
            rt.block_on(async {
                let _h = if round == 0 {
                    m.start_job(
                        "j",
                        vec![TaskSpec::new("j", "hang", "t").id("t")],
                        None,
                        Some(cfg),
                    )
                    .unwrap()
                } else {
                    m.resume_job("j").unwrap()
                };
                tokio::time::timeout(Duration::from_secs(20), started.notified())
                    .await
                    .expect("the task was claimed again");
            });
            rt.shutdown_background();
        })
        .join()
        .unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = TaskAgentRegistry::new();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        register(&registry, "hang", move |_v, _c: TaskContext| {
            r.store(true, Ordering::SeqCst);
            async { Ok(TaskOutcome::Completed(json!("ran a fourth time"))) }
        });
        let m = manager_on(store.clone(), &registry);
        let h = m.resume_job("j").unwrap();
        assert_eq!(finish(&h).await, JobStatus::Completed(false));
        assert!(!ran.load(Ordering::SeqCst), "no fourth attempt");
        let t = m.get_task_by_id("t").unwrap();
        assert_eq!(t.status, TaskStatus::Failed);
        assert_eq!((t.attempts, t.failures), (3, 3));
        let e = t.error.unwrap();
        assert!(e.starts_with("lease of attempt 3 (worker `"), "{e}");
        assert!(e.ends_with("`) expired"), "{e}");
        let dead = m.dead_letters(Some("j")).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    });
}

/// A dead letter keeps every attempt's error, is listed, and re-driving it
/// gives it a fresh attempt budget, brings back the dependents that failed
/// because of it, and reopens the job that ended failed because of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_redriven() {
    let registry = TaskAgentRegistry::new();
    let healthy = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU32::new(0));
    let (h2, c2) = (healthy.clone(), calls.clone());
    register(&registry, "flaky", move |_v, _ctx: TaskContext| {
        let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
        let ok = h2.load(Ordering::SeqCst);
        async move {
            if ok {
                Ok(TaskOutcome::Completed(json!("fixed")))
            } else {
                Err(format!("down {n}").into())
            }
        }
    });
    // Runs until the job's end cancels it the first time; at once after.
    let slow_calls = Arc::new(AtomicU32::new(0));
    let sc = slow_calls.clone();
    register(&registry, "slow", move |_v, _c| {
        let first = sc.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok(TaskOutcome::Completed(json!("slow")))
        }
    });
    register(&registry, "echo", |v, _c| async move {
        Ok(TaskOutcome::Completed(v))
    });
    let m = manager(&registry);
    let cfg = JobConfig {
        fail_fast: true,
        ..config(2)
    };
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "flaky", "t").id("t"),
                TaskSpec::new("j", "echo", "u")
                    .id("u")
                    .depends_on("t")
                    .input(json!(1)),
                TaskSpec::new("j", "echo", "w")
                    .id("w")
                    .depends_on("u")
                    .input(json!(2)),
                TaskSpec::new("j", "slow", "s").id("s"),
            ],
            None,
            Some(cfg),
        )
        .unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    assert_eq!(m.get_task_by_id("s").unwrap().status, TaskStatus::Cancelled);

    let dead = m.dead_letters(None).unwrap();
    assert_eq!(
        dead.len(),
        1,
        "only t failed an attempt of its own: {dead:?}"
    );
    assert_eq!(dead[0].task.task_id.as_str(), "t");
    let errors: Vec<_> = dead[0].errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(errors, ["down 1", "down 2"]);
    assert_eq!(m.dead_letters(Some("other")).unwrap().len(), 0);

    // Not dead letters: failed by propagation, or never failed.
    match m.retry_dead("u") {
        Err(TaskError::NotDeadLetter { task, .. }) => assert_eq!(task, "u"),
        other => panic!("expected NotDeadLetter, got {other:?}"),
    }
    assert!(matches!(
        m.retry_dead("nope"),
        Err(TaskError::TaskNotFound(_))
    ));

    healthy.store(true, Ordering::SeqCst);
    let redriven = m.retry_dead("t").unwrap();
    assert!(redriven.job_reopened);
    let mut reset: Vec<_> = redriven.reset.iter().map(|t| t.to_string()).collect();
    reset.sort();
    assert_eq!(reset, ["s", "u", "w"]);
    assert_eq!(m.job_status("j").unwrap(), JobStatus::Running);
    let t = m.get_task_by_id("t").unwrap();
    assert_eq!(
        (t.status, t.failures, t.error.clone()),
        (TaskStatus::Ready, 0, None)
    );
    assert!(m.dead_letters(None).unwrap().is_empty());

    // The job needs a loop again.
    let h = m.resume_job("j").unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(m.get_task_by_id("t").unwrap().status, TaskStatus::Completed);
    assert_eq!(m.get_task_by_id("w").unwrap().output, Some(json!(2)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Its history keeps every attempt, the re-driven one's included.
    assert_eq!(m.attempt_errors("t").unwrap().len(), 2);
    assert_eq!(m.get_task_by_id("t").unwrap().attempts, 3);
}

#[tokio::test]
async fn a_job_that_was_cancelled_is_not_reopened() {
    let registry = TaskAgentRegistry::new();
    register(&registry, "bad", |_v, _c| async move {
        Err::<TaskOutcome, _>("bad".into())
    });
    register(&registry, "slow", |_v, _c| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(TaskOutcome::Completed(json!(null)))
    });
    let m = manager(&registry);
    let h = m
        .start_job(
            "j",
            vec![
                TaskSpec::new("j", "bad", "t").id("t"),
                TaskSpec::new("j", "slow", "s").id("s"),
            ],
            None,
            None,
        )
        .unwrap();
    until("t failed", || {
        m.get_task_by_id("t").unwrap().status == TaskStatus::Failed
    })
    .await;
    h.cancel();
    assert_eq!(finish(&h).await, JobStatus::Cancelled);
    match m.retry_dead("t") {
        Err(TaskError::JobFinished { job, status }) => {
            assert_eq!((job.as_str(), status), ("j", JobStatus::Cancelled));
        }
        other => panic!("expected JobFinished, got {other:?}"),
    }
}

fn failing_agent(registry: &TaskAgentRegistry, name: &str, fail_first: u32) -> Arc<AtomicU32> {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    register(registry, name, move |_v, _ctx: TaskContext| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n <= fail_first {
                Err(format!("call {n} failed").into())
            } else {
                Ok(TaskOutcome::Completed(json!(n)))
            }
        }
    });
    calls
}

#[tokio::test]
async fn circuit_breakers_are_off_by_default() {
    let registry = TaskAgentRegistry::new();
    let calls = failing_agent(&registry, "down", u32::MAX);
    let m = manager(&registry);
    let mut events = m.subscribe();
    let tasks = (0..5)
        .map(|i| TaskSpec::new("j", "down", "t").id(format!("t{i}")))
        .collect();
    let h = m.start_job("j", tasks, None, None).unwrap();
    assert_eq!(finish(&h).await, JobStatus::Completed(false));
    assert_eq!(calls.load(Ordering::SeqCst), 5, "every task was tried");
    assert_eq!(m.circuit_state("down").unwrap(), BreakerState::Closed);
    assert!(m.circuit_breakers().unwrap().is_empty());
    for _ in 0..5 {
        assert!(matches!(
            next_event(&mut events).await,
            TaskEvent::DeadLettered { .. }
        ));
    }
    assert!(events.try_recv().is_err(), "no breaker events");
}

/// Threshold 2: two failures in a row open the breaker; the agent's tasks
/// wait for the cool-down (no attempt is burnt meanwhile); then one trial
/// runs (half-open): it fails, so the breaker opens again; the next trial
/// succeeds and closes it, and the waiting tasks run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_breaker_opens_half_opens_and_closes() {
    let registry = TaskAgentRegistry::new();
    let calls = failing_agent(&registry, "flaky", 3);
    let m = manager(&registry);
    let mut events = m.subscribe();
    let cool_down = Duration::from_millis(400);
    let cfg = JobConfig {
        max_concurrency: 1,
        circuit_breaker: Some(CircuitBreaker::new(2, cool_down)),
        ..config(10)
    };
    let tasks = (0..3)
        .map(|i| TaskSpec::new("j", "flaky", "t").id(format!("t{i}")))
        .collect();
    let h = m.start_job("j", tasks, None, Some(cfg)).unwrap();

    let TaskEvent::CircuitOpened {
        agent,
        consecutive_failures,
        until: first_until,
        last_error,
    } = next_event(&mut events).await
    else {
        panic!("expected CircuitOpened first")
    };
    assert_eq!(
        (agent.as_str(), consecutive_failures, last_error.as_str()),
        ("flaky", 2, "call 2 failed")
    );
    // Visible through the API while open; no attempt is made meanwhile.
    let b = m.circuit_breaker("flaky").unwrap().unwrap();
    assert_eq!(b.state, BreakerState::Open);
    assert_eq!(b.until, Some(first_until));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let TaskEvent::CircuitHalfOpen { agent, task_id } = next_event(&mut events).await else {
        panic!("expected CircuitHalfOpen")
    };
    assert_eq!(agent, "flaky");
    assert!(
        dagger_core::now_millis() >= first_until,
        "the trial waited for the cool-down"
    );
    assert_eq!(task_id.as_str(), "t0", "the retried task is the trial");
    // The trial (call 3) fails: open again, for another cool-down.
    let TaskEvent::CircuitOpened {
        consecutive_failures,
        until: second_until,
        ..
    } = next_event(&mut events).await
    else {
        panic!("expected CircuitOpened again")
    };
    assert_eq!(consecutive_failures, 3);
    assert!(second_until >= first_until);
    assert!(matches!(
        next_event(&mut events).await,
        TaskEvent::CircuitHalfOpen { .. }
    ));
    assert!(dagger_core::now_millis() >= second_until);
    assert_eq!(
        next_event(&mut events).await,
        TaskEvent::CircuitClosed {
            agent: "flaky".into()
        }
    );
    assert_eq!(finish(&h).await, JobStatus::Completed(true));
    assert_eq!(calls.load(Ordering::SeqCst), 6, "3 failures, then 3 tasks");
    let t0 = m.get_task_by_id("t0").unwrap();
    assert_eq!(t0.attempts, 4, "the breaker kept t0 from burning attempts");
    for t in ["t1", "t2"] {
        assert_eq!(m.get_task_by_id(t).unwrap().attempts, 1);
    }
    let b = m.circuit_breaker("flaky").unwrap().unwrap();
    assert_eq!((b.state, b.consecutive_failures), (BreakerState::Closed, 0));
}

#[test]
fn a_circuit_breaker_setting_is_validated() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let m = manager(&TaskAgentRegistry::new());
        let cfg = JobConfig {
            circuit_breaker: Some(CircuitBreaker::new(0, Duration::from_secs(1))),
            ..JobConfig::default()
        };
        let e = m.start_job("j", vec![], None, Some(cfg)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "job `j`: invalid configuration: circuit_breaker.failure_threshold must be at least 1"
        );
    });
}

/// `set_max_concurrent_tasks` bounds the tasks a manager runs at once across
/// all its jobs (each job alone would run 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_bounds_running_tasks_across_jobs() {
    let registry = TaskAgentRegistry::new();
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (n2, m2) = (now.clone(), max.clone());
    register(&registry, "work", move |_v, _c: TaskContext| {
        let (now, max) = (n2.clone(), m2.clone());
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(TaskOutcome::Completed(json!(null)))
        }
    });
    let m = manager(&registry);
    m.set_max_concurrent_tasks(Some(3));
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|j| {
            let tasks = (0..8)
                .map(|i| TaskSpec::new(j, "work", "t").id(format!("{j}{i}")))
                .collect();
            m.start_job(j, tasks, None, None).unwrap()
        })
        .collect();
    for h in &handles {
        assert_eq!(finish(h).await, JobStatus::Completed(true));
    }
    let seen = max.load(Ordering::SeqCst);
    assert!(seen <= 3, "{seen} tasks ran at once with a bound of 3");
    assert!(seen >= 2, "the bound is shared, not one at a time: {seen}");
}
