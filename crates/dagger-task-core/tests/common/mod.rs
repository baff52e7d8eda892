//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use dagger_core::{BoxError, Cache};
use dagger_task_core::{
    FnAgent, StallAction, TaskAgentRegistry, TaskContext, TaskManager, TaskOutcome,
};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Registers a closure agent.
pub fn register<F, Fut>(registry: &TaskAgentRegistry, name: &str, f: F)
where
    F: Fn(Value, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TaskOutcome, BoxError>> + Send + 'static,
{
    registry
        .register_agent(Arc::new(FnAgent::new(name, f)))
        .expect("fresh name");
}

/// An in-memory manager with a long heartbeat (no stalls unless a test wants one).
pub fn manager(registry: &TaskAgentRegistry) -> TaskManager {
    TaskManager::in_memory(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        Cache::new(),
        registry.clone(),
    )
}

/// Waits for a job, failing the test after 20 s instead of hanging.
pub async fn finish(handle: &dagger_task_core::JobHandle) -> dagger_core::JobStatus {
    tokio::time::timeout(Duration::from_secs(20), handle.wait())
        .await
        .expect("job did not end within 20 s")
}
