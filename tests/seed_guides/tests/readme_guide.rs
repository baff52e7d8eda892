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

/// "Simple Task Agent Example", the manager's set-up in the primary form
/// (the block itself, `TaskManager::new(.., None)`, is in
/// `task_agent_guide.rs`): `in_memory` is the `None` case, and a store
/// opened first (`SqliteStore::open(..).await?`) reports a bad location at
/// once, where `Some(path)` reports it at the first operation.
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

/// Returns its inputs as its one declared output.
struct Stage(&'static str, &'static str);

#[async_trait]
impl NodeAction for Stage {
    fn name(&self) -> &str {
        self.0
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        Ok(NodeOutput::success(
            json!({ self.1: ctx.inputs.to_value() }),
        ))
    }
}

/// "DAG Flow: YAML Workflow Example": the README's `data_pipeline`
/// (`workflows/data_pipeline.yaml`, the block verbatim) loads and runs its
/// three steps in order, each on the one before's output and the run's
/// inputs (the README's function actions are the retired API; stand-ins
/// return their inputs as their declared output).
#[tokio::test]
async fn yaml_workflow_example() -> Result<()> {
    let registry = ActionRegistry::new();
    for (action, output) in [
        ("extract_customers", "raw_data"),
        ("clean_and_transform", "clean_data"),
        ("load_to_warehouse", "loaded_count"),
    ] {
        registry.register(Arc::new(Stage(action, output)));
    }
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_file("workflows/data_pipeline.yaml")?;
    let cache = Cache::new();
    insert_value(&cache, "inputs", "database_url", "postgresql://...")?;
    insert_value(&cache, "inputs", "target_table", "customers_clean")?;
    let report = execute_dag(&mut executor, &cache, "data_pipeline")
        .await?
        .into_result()?;
    let order: Vec<&str> = report.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(order, ["extract_data", "transform_data", "load_data"]);
    assert_eq!(
        *get_value_from_cache(&cache, "load_data", "loaded_count")?,
        json!({
            "data": {"data": {"source_db": "postgresql://..."}},
            "target_table": "customers_clean"
        })
    );
    let extract = report.get_node_state("extract_data").ok_or("no node")?;
    assert_eq!(extract.status, NodeStatus::Completed);
    Ok(())
}

/// "Visualization / DAG Flow Visualization", adapted by one change:
/// `.await` before the `?` (ours reads the recorded run, so it is async,
/// as in 003 and 002). The DOT shows the README's three nodes completed.
#[tokio::test]
async fn dag_flow_visualization() -> Result<()> {
    let registry = ActionRegistry::new();
    for name in ["a", "b"] {
        registry.register(Arc::new(Stage(name, "out")));
    }
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_string(
        "name: workflow_name\nnodes:\n  - { id: extract_data, action: a }\n  - { id: transform_data, action: b, dependencies: [extract_data] }\n  - { id: load_data, action: b, dependencies: [transform_data] }\n",
    )?;
    let report = execute_dag(&mut executor, &Cache::new(), "workflow_name")
        .await?
        .into_result()?;
    assert_eq!(report.completed_nodes(), 3);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("workflow.dot");
    // seed block (adapted: `.await?` for `?`; the file in a temporary directory)
    // Generate DOT graph for a DAG execution
    let dot_output = executor.serialize_tree_to_dot("workflow_name").await?;
    std::fs::write(&file, dot_output)?;
    // end of seed block
    let dot = std::fs::read_to_string(&file)?;
    assert!(
        dot.contains("\"extract_data\" -> \"transform_data\""),
        "{dot}"
    );
    assert!(dot.contains("\"transform_data\" -> \"load_data\""), "{dot}");
    assert_eq!(dot.matches("Completed").count(), 3, "{dot}");
    Ok(())
}

/// "Visualization / Task Agent Execution Graph", as written: the graph of
/// a job draws its tasks and their dependency.
#[tokio::test]
async fn task_agent_execution_graph() -> Result<()> {
    let agents = TaskAgentRegistry::new();
    agents.register_agent(Arc::new(dagger::task_core::FnAgent::new(
        "noop",
        |input, _ctx| async move { Ok(TaskOutcome::Completed(input)) },
    )))?;
    let task_manager = TaskManager::new(
        Duration::from_secs(30),
        StallAction::NotifyPlanningAgent,
        Cache::new(),
        agents,
        None,
    );
    let first = task_manager.add_task(TaskSpec::new("job_id", "noop", "first"))?;
    task_manager.add_task(
        TaskSpec::new("job_id", "noop", "second").dependencies(vec![first.to_string()]),
    )?;
    let handle = task_manager.start_job("job_id", vec![], None, None)?;
    let status = tokio::time::timeout(Duration::from_secs(60), handle.wait()).await?;
    assert_eq!(status, JobStatus::Completed(true));
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("execution.dot");
    // seed block (the file in a temporary directory)
    // Generate execution graph for a job
    let dot_graph = task_manager.get_dot_graph(Some("job_id"))?;
    std::fs::write(&file, dot_graph)?;
    // end of seed block
    let dot = std::fs::read_to_string(&file)?;
    assert!(dot.contains("digraph"), "{dot}");
    assert!(dot.contains(first.as_str()), "{dot}");
    Ok(())
}

mod custom_error_types {
    //! "Advanced Usage / Custom Error Types", as written (the user's crate
    //! depends on `thiserror`, as the block's derive says).
    use dagger::prelude::*;

    // seed block
    #[derive(Debug, thiserror::Error)]
    pub enum MyWorkflowError {
        #[error("Data validation failed: {0}")]
        ValidationError(String),
        #[error("External service unavailable")]
        ServiceUnavailable,
        #[error("Processing timeout")]
        Timeout,
    }

    // Convert to DaggerError
    impl From<MyWorkflowError> for DaggerError {
        fn from(err: MyWorkflowError) -> Self {
            DaggerError::ExecutionError(err.to_string())
        }
    }
    // end of seed block

    fn check(ok: bool) -> Result<(), DaggerError> {
        if !ok {
            Err(MyWorkflowError::ValidationError("empty batch".into()))?;
        }
        Ok(())
    }

    /// `?` turns the user's error into a `DaggerError::ExecutionError`
    /// carrying its message.
    #[test]
    fn custom_error_types() {
        assert!(check(true).is_ok());
        let err = check(false).err();
        assert!(
            matches!(&err, Some(DaggerError::ExecutionError(m)) if m == "Data validation failed: empty batch"),
            "{err:?}"
        );
        for (e, text) in [
            (
                MyWorkflowError::ServiceUnavailable,
                "execution error: External service unavailable",
            ),
            (
                MyWorkflowError::Timeout,
                "execution error: Processing timeout",
            ),
        ] {
            assert_eq!(DaggerError::from(e).to_string(), text);
        }
    }
}

mod custom_agents_with_state {
    //! "Advanced Usage / Custom Agents with State", as written:
    //! `#[task_agent]` on an `impl` block. The block uses `Arc`, `RwLock`,
    //! `HashMap` and `Value` without importing them (the README's first
    //! block imports `std::sync::{Arc, RwLock}` and `HashMap`).
    use dagger::prelude::*;
    use serde_json::Value;
    use std::collections::HashMap;
    use std::sync::{Arc, RwLock};
    use std::time::Duration;

    // seed block
    #[allow(unreachable_pub)] // the README's `pub`, in a test
    pub struct StatefulAgent {
        state: Arc<RwLock<HashMap<String, Value>>>,
    }

    #[task_agent(
        name = "stateful_processor",
        description = "Agent that maintains state between executions"
    )]
    impl StatefulAgent {
        #[allow(unused_variables)] // the README's unused `job_id`
        async fn execute(
            &self,
            input: Value,
            task_id: &str,
            job_id: &str,
        ) -> Result<Value, String> {
            let mut state = self.state.write().unwrap();

            // Update state based on input
            state.insert(task_id.to_string(), input.clone());

            // Process based on accumulated state
            let result = self.process_with_state(&state, &input)?;

            Ok(result)
        }
    }
    // end of seed block

    impl StatefulAgent {
        /// The README's `process_with_state` (not shown): how many inputs
        /// the agent has seen, and this one.
        fn process_with_state(
            &self,
            state: &HashMap<String, Value>,
            input: &Value,
        ) -> Result<Value, String> {
            Ok(json!({ "seen": state.len(), "input": input }))
        }
    }

    /// The agent keeps its state between tasks: the second task's result
    /// counts both.
    #[tokio::test]
    async fn custom_agents_with_state() -> Result<()> {
        let state = Arc::new(RwLock::new(HashMap::new()));
        let agents = TaskAgentRegistry::new();
        agents.register_agent(Arc::new(StatefulAgent {
            state: state.clone(),
        }))?;
        let manager = TaskManager::new(
            Duration::from_secs(30),
            StallAction::NotifyPlanningAgent,
            Cache::new(),
            agents,
            None,
        );
        let mut seen = Vec::new();
        for (job, n) in [("first", 1), ("second", 2)] {
            let task =
                manager.add_objective(job, "process", "stateful_processor", json!({ "n": n }))?;
            let handle = manager.start_job(job, vec![], None, None)?;
            let status = tokio::time::timeout(Duration::from_secs(60), handle.wait()).await?;
            assert_eq!(status, JobStatus::Completed(true));
            let task = manager.get_task_by_id(task.as_str()).ok_or("no task")?;
            seen.push(task.output.ok_or("no output")?["seen"].clone());
        }
        assert_eq!(seen, [json!(1), json!(2)]);
        assert_eq!(state.read().map_err(|e| e.to_string())?.len(), 2);
        Ok(())
    }
}
