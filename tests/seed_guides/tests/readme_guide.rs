//! Seed 000, the original README: its blocks outside the retired DAG API
//! (see docs/seed-guide.md). Blocks the README shows without imports rely on
//! `use dagger::prelude::*;` alone.

use dagger::base::ErrorClass;
use dagger::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// "Configuration / Resource Management": the block's limits take effect:
/// one hundred actions hold permits, the hundred-and-first waits until one
/// is released; the memory limit is the block's gigabyte.
#[tokio::test]
async fn resource_management() -> Result<()> {
    // seed block
    // Configure resource limits
    let resource_tracker = ResourceTracker::new();
    resource_tracker.set_memory_limit(1_000_000_000); // 1GB
    resource_tracker.set_task_limit(100);
    // end of seed block
    let metrics = resource_tracker.metrics();
    assert_eq!(
        (metrics.task_limit, metrics.memory_limit),
        (Some(100), Some(1_000_000_000))
    );
    let mut permits = Vec::new();
    for _ in 0..100 {
        permits.push(resource_tracker.acquire().await);
    }
    // `timeout` polls the acquisition once before it looks at the clock.
    let waiting = tokio::time::timeout(Duration::ZERO, resource_tracker.acquire()).await;
    assert!(waiting.is_err(), "the 101st action waits for a slot");
    permits.pop();
    let _permit = resource_tracker.acquire().await;
    assert_eq!(resource_tracker.metrics().peak_active, 100);
    Ok(())
}

/// "Configuration / Cache Configuration": a cache of at most 10 000 values
/// evicts the least recently used one when the 10 001st arrives (a value
/// read since its write stays).
#[test]
fn cache_configuration() -> Result<()> {
    // seed block
    // Configure cache settings
    let cache_config = CacheConfig {
        max_entries: 10_000,
        max_memory_mb: 256,
        eviction_policy: EvictionPolicy::LRU,
    };

    let cache = Cache::with_config(cache_config)?;
    // end of seed block
    for i in 0..10_000 {
        cache.insert("n", &format!("k{i}"), json!(i));
    }
    assert!(cache.get("n", "k0").is_some(), "k0 is now the most recent");
    cache.insert("n", "k10000", json!(10_000));
    assert_eq!((cache.len(), cache.evictions()), (10_000, 1));
    assert!(cache.get("n", "k1").is_none(), "k1 was least recently used");
    assert!(cache.get("n", "k0").is_some());
    Ok(())
}

/// "Configuration / Error Handling Strategies", adapted: the README's
/// `RetryPolicy { max_retries, base_delay, max_delay, backoff, retry_on:
/// vec!["timeout", "resource"] }` names fields our `RetryPolicy` does not
/// have (docs/seed-guide.md says why); this is the same policy in the real
/// form, and `OnFailure::Continue` is the README's `ErrorHandling::ContinueOnError`.
/// Three retries (four attempts) of timeouts and errors, 1 s doubling to at
/// most 60 s.
#[test]
fn error_handling_strategies() {
    use dagger::dag_flow::OnFailure;
    let retry_policy = RetryPolicy {
        max_attempts: 1 + 3,
        base_delay_ms: 1_000,
        max_delay_ms: 60_000,
        strategy: BackoffStrategy::Exponential,
        retry_on: vec![ErrorClass::Timeout, ErrorClass::Error],
        ..RetryPolicy::default()
    };
    let error_handling = OnFailure::Continue;
    let delays: Vec<u64> = (1..=8)
        .map(|a| retry_policy.delay_for(a).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert!(retry_policy.should_retry(3, ErrorClass::Timeout));
    assert!(
        !retry_policy.should_retry(4, ErrorClass::Timeout),
        "three retries"
    );
    assert!(!retry_policy.should_retry(1, ErrorClass::Schema));
    assert_eq!(error_handling, OnFailure::default());
}

/// "Simple Task Agent Example", the manager's set-up, adapted: the README
/// passes `None` (no database) as the last argument of an infallible
/// `TaskManager::new`; ours takes the opened store, and `in_memory` is the
/// `None` case. With a path, the store is opened first (and can fail):
/// `SqliteStore::open("sqlite:research_job_db").await?`.
#[tokio::test]
async fn simple_task_agent_setup() -> Result<()> {
    let cache = Cache::new();
    let agent_registry = TaskAgentRegistry::new();
    let task_manager = TaskManager::in_memory(
        Duration::from_secs(30),
        StallAction::NotifyPlanningAgent,
        cache,
        agent_registry,
    );
    let dir = tempfile::tempdir()?;
    let location = format!("sqlite:{}", dir.path().join("research_job_db").display());
    let store = Arc::new(SqliteStore::open(&location).await?);
    let durable = TaskManager::new(
        Duration::from_secs(60),
        StallAction::NotifyPlanningAgent,
        Cache::new(),
        TaskAgentRegistry::new(),
        store,
    );
    assert!(dir.path().join("research_job_db").exists());
    drop((task_manager, durable));
    Ok(())
}
