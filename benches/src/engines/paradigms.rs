//! The Task Agent (Q1) and Pub/Sub (P1, P2) workloads on Dagger. They have
//! no peer in the comparison; their figures are rates.

use super::Timing;
use dagger_core::{BoxError, Cache};
use dagger_pubsub::{CancellationToken, Message, PubSubAgent, PubSubContext, PubSubExecutor};
use dagger_storage::{SqliteOptions, SqliteStore};
use dagger_task_core::{
    FnAgent, JobConfig, JobStatus, StallAction, TaskAgentRegistry, TaskManager, TaskOutcome,
    TaskSpec,
};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Task slots each Q1 worker runs at once (its job's `max_concurrency`).
pub const Q1_SLOTS_PER_WORKER: usize = 64;

/// Q1: inserts `tasks` no-op tasks in one job (timed as build), then runs
/// them with `workers` workers (timed as run). Each task waits `io`
/// (a sleep, as for an I/O call) before it completes; zero for Q1. A worker is what a `dagger
/// worker` process is: a task manager with its own store handle (its own
/// SQLite connections and writer thread) on the shared file, joining the
/// job with [`Q1_SLOTS_PER_WORKER`] slots. Default store options
/// (`Durability::Batched`).
pub async fn q1(tasks: usize, workers: usize, io: Duration) -> Timing {
    let dir = tempfile::tempdir().expect("temp dir");
    let location = format!("sqlite:{}", dir.path().join("q1.db").display());
    let mut managers = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let store = SqliteStore::open_with(&location, SqliteOptions::default())
            .await
            .expect("SQLite store opens");
        let registry = TaskAgentRegistry::new();
        registry
            .register_agent(Arc::new(FnAgent::new(
                "noop",
                move |_input, _ctx| async move {
                    if !io.is_zero() {
                        tokio::time::sleep(io).await;
                    }
                    Ok::<_, BoxError>(TaskOutcome::Completed(Value::Null))
                },
            )))
            .expect("agent registers");
        managers.push(TaskManager::new(
            Duration::from_secs(600),
            StallAction::TerminateJob,
            Cache::new(),
            registry,
            Arc::new(store),
        ));
    }
    let t0 = Instant::now();
    let specs = (0..tasks)
        .map(|i| TaskSpec::new("q1", "noop", format!("task {i}")))
        .collect();
    managers[0].add_tasks(specs).expect("tasks insert");
    let build = t0.elapsed();
    let t1 = Instant::now();
    let config = JobConfig {
        max_concurrency: Q1_SLOTS_PER_WORKER,
        ..JobConfig::default()
    };
    let mut handles = vec![
        managers[0]
            .start_job("q1", Vec::new(), None, Some(config))
            .expect("job starts"),
    ];
    for m in &managers[1..] {
        handles.push(m.resume_job("q1").expect("worker joins the job"));
    }
    for handle in handles {
        let status = handle.wait().await;
        assert_eq!(
            status,
            JobStatus::Completed(true),
            "Q1 job ended {status:?}"
        );
    }
    Timing {
        build,
        run: t1.elapsed(),
    }
}

/// Counts the messages it receives. Each subscriber has its own counter on
/// its own cache line: one counter shared by every subscriber would make the
/// bench's own bookkeeping bounce a cache line between cores per delivery.
#[repr(align(128))]
struct Counter {
    seen: AtomicU64,
    name: String,
}

#[async_trait::async_trait]
impl PubSubAgent for Counter {
    fn name(&self) -> &str {
        &self.name
    }

    fn subscriptions(&self) -> Vec<String> {
        vec!["bench".to_string()]
    }

    fn publications(&self) -> Vec<String> {
        Vec::new()
    }

    async fn handle_message(
        &self,
        _ctx: &PubSubContext,
        _message: &Message,
    ) -> Result<(), BoxError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// P1/P2: one external publisher sends `messages` payloads of
/// `payload_bytes` bytes (a JSON string) to one channel with `subscribers`
/// subscribed agents, and waits until every delivery is handled. The run
/// time covers publishing and handling; build is creating the executor and
/// registering the agents.
pub async fn pubsub(messages: usize, payload_bytes: usize, subscribers: usize) -> Timing {
    let t0 = Instant::now();
    let ex = PubSubExecutor::builder().build().expect("executor builds");
    let counters: Vec<Arc<Counter>> = (0..subscribers)
        .map(|s| {
            Arc::new(Counter {
                seen: AtomicU64::new(0),
                name: format!("sub{s}"),
            })
        })
        .collect();
    for c in &counters {
        ex.register_agent(c.clone()).expect("agent registers");
    }
    let payload = Value::String("x".repeat(payload_bytes));
    let build = t0.elapsed();
    let t1 = Instant::now();
    for _ in 0..messages {
        ex.publish("bench", payload.clone())
            .await
            .expect("publish succeeds");
    }
    ex.run(CancellationToken::new())
        .await
        .expect("executor runs");
    let run = t1.elapsed();
    assert_eq!(
        counters
            .iter()
            .map(|c| c.seen.load(Ordering::Relaxed))
            .sum::<u64>(),
        (messages * subscribers) as u64,
        "every delivery handled"
    );
    ex.shutdown().await.expect("executor shuts down");
    Timing { build, run }
}
