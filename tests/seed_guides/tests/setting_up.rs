//! Seed 003, "Quick Start" and "Setting Up the System": the blocks that build
//! an executor from a SQLite location (`"sqlite:workflows.db"`). They write
//! files relative to the working directory, so this test binary runs in a
//! temporary directory of its own ([`enter`]); the workflow files the
//! blocks load are written there.
//!
//! The Quick Start registers its action in a registry it never hands to the
//! executor (`Arc::new(Default::default())`, the "legacy registry"): that is
//! the process registry, which sees every registration of the process (see
//! `ActionRegistry`'s documentation and docs/seed-guide.md).

use dagger::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// The directory every test of this binary works in, with the workflow
/// files the blocks load.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = tempfile::tempdir().map_or_else(|e| panic!("tempdir: {e}"), |d| d.keep());
    let files = [(
        "workflow.yaml",
        "name: my_workflow\nnodes:\n  - { id: first, action: my_action }\n  - { id: second, action: my_action, dependencies: [first] }\n",
    )];
    for (name, text) in files {
        if let Err(e) = std::fs::write(dir.join(name), text) {
            panic!("writing {name}: {e}");
        }
    }
    dir
});

/// Makes the temporary directory the working directory (the same one for
/// every test, so tests running in parallel agree).
fn enter() -> PathBuf {
    if let Err(e) = std::env::set_current_dir(&*DIR) {
        panic!("entering {}: {e}", DIR.display());
    }
    DIR.clone()
}

/// The Quick Start's action (it names `MyAction` without defining it).
struct MyAction;

#[async_trait]
impl NodeAction for MyAction {
    fn name(&self) -> &str {
        "my_action"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        Ok(NodeOutput::success(json!({ "ran": ctx.node_id.as_str() })))
    }
}

/// Node starts the Quick Start's hook saw.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// The Quick Start's hook: counts node starts.
struct MyHook;

#[async_trait]
impl EventHook for MyHook {
    async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        if matches!(event, ExecutionEvent::NodeStarted { .. }) {
            STARTED.fetch_add(1, Ordering::SeqCst);
        }
        vec![]
    }
}

mod quick_start {
    //! The Quick Start block: its `main`, renamed so the test can call it.
    use super::{MyAction, MyHook};
    use dagger::prelude::*;

    // seed block
    use dagger::coord::{
        ActionRegistry, Coordinator, EventHook, ExecutionEvent, ExecutorCommand, HookContext,
        NodeAction, NodeCtx, NodeOutput,
    };
    use dagger::dag_flow::{Cache, DagConfig, DagExecutor};
    use std::sync::Arc;
    use tokio::sync::oneshot;

    // #[tokio::main]
    #[allow(unused_must_use)] // the guide discards the run's report
    pub(crate) async fn main() -> Result<()> {
        // 1. Create action registry and register actions
        let registry = ActionRegistry::new();
        registry.register(Arc::new(MyAction));

        // 2. Create hooks for dynamic behavior
        let hooks = vec![Arc::new(MyHook) as Arc<dyn EventHook>];

        // 3. Create coordinator
        let coordinator = Coordinator::new(hooks, 100, 100);

        // 4. Create executor and load workflow
        let mut executor = DagExecutor::new(
            None,
            Arc::new(Default::default()), // Legacy registry (being phased out)
            "sqlite:workflows.db",
        )
        .await?;
        executor.load_yaml_file("workflow.yaml")?;

        // 5. Execute with coordinator
        let cache = Cache::new();
        let (_tx, rx) = oneshot::channel();
        coordinator
            .run_parallel(&mut executor, &cache, "my_workflow", "run_001", rx)
            .await?;

        Ok(())
    }
    // end of seed block

    /// The block's imports it does not use itself (the guide lists them for
    /// the reader's own actions and hooks).
    #[allow(dead_code)]
    type Unused = (
        Box<dyn NodeAction>,
        ExecutionEvent,
        ExecutorCommand,
        HookContext,
        NodeCtx,
        NodeOutput,
        DagConfig,
    );
}

/// "Quick Start": the block runs `my_workflow` to completion in
/// `workflows.db`, its action (registered in a registry the executor is
/// never given) ran for both nodes, and its hook saw both starts.
#[tokio::test]
async fn quick_start() -> Result<()> {
    let dir = enter();
    quick_start::main().await?;
    assert_eq!(STARTED.load(Ordering::SeqCst), 2);
    let store =
        SqliteStore::open(&format!("sqlite:{}", dir.join("workflows.db").display())).await?;
    let run = store
        .stores()
        .runs
        .get_run(&"run_001".into())
        .await?
        .ok_or("run_001 is not recorded in workflows.db")?;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.workflow, "my_workflow");
    Ok(())
}

/// An action named `name` that returns its inputs.
struct Named(&'static str);

#[async_trait]
impl NodeAction for Named {
    fn name(&self) -> &str {
        self.0
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        Ok(NodeOutput::success(ctx.inputs.to_value()))
    }
}

/// A hook that answers nothing (the guide's planner, monitor and error
/// hooks are shown in later sections).
struct Quiet;

#[async_trait]
impl EventHook for Quiet {
    async fn handle(&self, _ctx: &HookContext, _event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        vec![]
    }
}

/// "Setting Up the System / Basic Setup": the coordinator and an executor
/// recording in `workflows.db` that sees the three registered actions
/// through its legacy registry, and runs a workflow of them.
#[tokio::test]
async fn basic_setup() -> Result<()> {
    enter();
    #[allow(non_snake_case)]
    let (ProcessAction, ValidateAction, TransformAction) = (
        Named("process_data"),
        Named("validate_input"),
        Named("transform_text"),
    );
    #[allow(non_snake_case)]
    let (PlannerHook, MonitorHook, ErrorHook) = (Quiet, Quiet, Quiet);
    // seed block
    use dagger::coord::{ActionRegistry, Coordinator, EventHook};
    use dagger::dag_flow::{DagConfig, DagExecutor};
    use std::sync::Arc;

    // 1. Create action registry
    let action_registry = ActionRegistry::new();

    // 2. Register your actions
    action_registry.register(Arc::new(ProcessAction));
    action_registry.register(Arc::new(ValidateAction));
    action_registry.register(Arc::new(TransformAction));

    // 3. Create hooks for dynamic behavior
    let hooks: Vec<Arc<dyn EventHook>> = vec![
        Arc::new(PlannerHook), // Add nodes based on results
        Arc::new(MonitorHook), // Track execution
        Arc::new(ErrorHook),   // Handle failures
    ];

    // 4. Create coordinator with capacity for channels
    let coordinator = Coordinator::new(
        hooks, 100, // Event channel capacity
        100, // Command channel capacity
    );

    // 5. Create executor
    let mut executor = DagExecutor::new(
        None,
        Arc::new(Default::default()), // Legacy registry
        "sqlite:workflows.db",
    )
    .await?;
    // end of seed block
    let _: Option<DagConfig> = None; // imported by the guide, unused by its block
    assert_ne!(executor.stores().durability, Durability::Memory);
    for name in ["process_data", "validate_input", "transform_text"] {
        assert!(executor.registry().contains(name), "{name}");
    }
    executor.load_yaml_string(
        "name: setup\nnodes:\n  - { id: v, action: validate_input, inputs: [{ name: x, value: 1 }] }\n  - { id: t, action: transform_text, dependencies: [v], inputs: [{ name: x, reference: v.x }] }\n  - { id: p, action: process_data, dependencies: [t], inputs: [{ name: x, reference: t.x }] }\n",
    )?;
    let cache = Cache::new();
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let report = coordinator
        .run_parallel(&mut executor, &cache, "setup", "setup_run", rx)
        .await?
        .into_result()?;
    assert_eq!(report.completed_nodes(), 3);
    assert_eq!(*get_value_from_cache(&cache, "p", "x")?, json!(1));
    Ok(())
}

/// Fails every attempt with "upstream returned 503".
struct Unavailable;

#[async_trait]
impl NodeAction for Unavailable {
    fn name(&self) -> &str {
        "call_api"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        Err("upstream returned 503".into())
    }
}

/// "Visualization and Debugging": after a run, the DOT of the workflow
/// shows each node's state, the metrics name the slowest node, and the
/// failed node's state gives its status, attempts and last error.
#[tokio::test]
async fn visualization_and_debugging() -> Result<()> {
    enter();
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Named("prepare")));
    registry.register(Arc::new(Unavailable));
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_string(
        "name: workflow_name\nnodes:\n  - { id: prepare, action: prepare }\n  - { id: node_id, action: call_api, dependencies: [prepare], try_count: 2 }\n",
    )?;
    let report = execute_dag(&mut executor, &Cache::new(), "workflow_name").await?;
    assert_eq!(report.status, RunStatus::Failed);
    // seed block
    // Generate DOT graph for visualization
    let dot_graph = executor.serialize_tree_to_dot("workflow_name").await?;
    std::fs::write("workflow.dot", dot_graph)?;
    // Convert to PNG: dot -Tpng workflow.dot -o workflow.png

    // Get execution metrics
    let metrics = executor.get_execution_metrics("workflow_name")?;
    println!("Average node execution time: {:?}", metrics.avg_node_time);
    println!("Slowest node: {}", metrics.slowest_node);
    println!("Cache hit rate: {:.2}%", metrics.cache_hit_rate * 100.0);

    // Debug specific node
    let node_state = executor.get_node_state("workflow_name", "node_id")?;
    println!("Node status: {:?}", node_state.status);
    println!("Attempts: {}", node_state.attempts);
    println!("Last error: {:?}", node_state.last_error);
    // end of seed block
    let dot = std::fs::read_to_string("workflow.dot")?;
    assert!(dot.contains("\"prepare\" -> \"node_id\""), "{dot}");
    assert!(
        dot.contains("Completed · attempts 1") && dot.contains("Failed · attempts 2"),
        "{dot}"
    );
    assert!(["prepare", "node_id"].contains(&metrics.slowest_node.as_str()));
    assert_eq!(metrics.cache_hit_rate, 0.0);
    assert_eq!((metrics.nodes_completed, metrics.nodes_failed), (1, 1));
    assert_eq!(node_state.status, NodeStatus::Failed);
    assert_eq!(node_state.attempts, 2);
    assert!(
        node_state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("upstream returned 503")),
        "{:?}",
        node_state.last_error
    );
    Ok(())
}

/// Whether `flaky` fails (until the "outage" is over).
static OUTAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
/// Executions of `extract`.
static EXTRACTS: AtomicUsize = AtomicUsize::new(0);

/// Counts its executions.
struct Extract;

#[async_trait]
impl NodeAction for Extract {
    fn name(&self) -> &str {
        "extract"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        EXTRACTS.fetch_add(1, Ordering::SeqCst);
        Ok(NodeOutput::success(json!({ "rows": 3 })))
    }
}

/// Fails while [`OUTAGE`] is set.
struct Flaky;

#[async_trait]
impl NodeAction for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        if OUTAGE.load(Ordering::SeqCst) {
            return Err("warehouse offline".into());
        }
        Ok(NodeOutput::success(json!({ "loaded": ctx.inputs["rows"] })))
    }
}

/// "Checkpoint and Recovery": a run paused by a failure (`on_failure:
/// pause`) is checkpointed; a new executor recovers it from
/// `workflows.db` and resumes it once the outage is over: only the failed
/// node runs again, with the first node's output restored.
#[tokio::test]
async fn checkpoint_and_recovery() -> Result<()> {
    enter();
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Extract));
    registry.register(Arc::new(Flaky));
    let config = DagConfig {
        on_failure: OnFailure::Pause,
        ..DagConfig::default()
    };
    let mut executor =
        DagExecutor::new(Some(config), registry.clone(), "sqlite:workflows.db").await?;
    executor.load_yaml_string(
        "name: workflow_name\nnodes:\n  - { id: extract, action: extract }\n  - { id: load, action: flaky, dependencies: [extract], inputs: [{ name: rows, reference: extract.rows }] }\n",
    )?;
    let first = execute_dag(&mut executor, &Cache::new(), "workflow_name").await?;
    assert_eq!(first.status, RunStatus::Paused, "{first:?}");
    OUTAGE.store(false, Ordering::SeqCst);
    let cache = Cache::new();
    let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    // seed block
    // Save execution state
    executor.save_execution_snapshot("workflow_name").await?;

    // Recover from checkpoint
    let executor =
        DagExecutor::recover_from_snapshot("workflow_name", registry, "sqlite:workflows.db")
            .await?;

    // Continue execution from last checkpoint
    let report = executor.resume_execution(&cache, cancel_rx).await?;
    // end of seed block
    assert_eq!(report.run_id, first.run_id);
    assert_eq!(report.completed_nodes(), 2);
    assert_eq!(
        EXTRACTS.load(Ordering::SeqCst),
        1,
        "extract is not run again"
    );
    assert_eq!(*get_value_from_cache(&cache, "load", "loaded")?, json!(3));
    Ok(())
}

/// Attempts of [`FailsOnce`].
static FAILS_ONCE_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

/// Fails its first attempt, then succeeds.
struct FailsOnce;

#[async_trait]
impl NodeAction for FailsOnce {
    fn name(&self) -> &str {
        "fails_once"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        if FAILS_ONCE_ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("first attempt fails".into());
        }
        Ok(NodeOutput::success(json!({ "ok": true })))
    }
}

/// "Configuration Options / Custom Configuration": the seed's fields take
/// effect on the run: `max_attempts: Some(3)` retries a failed node, after
/// the exponential strategy's first delay of two whole seconds; the
/// executor's policy gives the strategy's delays (2, 4, 8 … 60 s), and the
/// timeout, human wait and snapshot interval are whole seconds / minutes.
#[tokio::test]
async fn custom_configuration() -> Result<()> {
    enter();
    let registry = ActionRegistry::new();
    registry.register(Arc::new(FailsOnce));
    // seed block
    use dagger::{DagConfig, OnFailure, RetryStrategy};

    let config = DagConfig {
        // Parallel execution settings
        enable_parallel_execution: true,
        max_parallel_nodes: 4,

        // Retry configuration
        max_attempts: Some(3),
        retry_strategy: RetryStrategy::Exponential {
            initial_delay_secs: 2,
            max_delay_secs: 60,
            multiplier: 2.0,
        },

        // Failure handling
        on_failure: OnFailure::Continue, // Continue, Halt, or Pause

        // Timeouts
        timeout_seconds: Some(3600), // Global timeout

        // Human intervention
        human_wait_minutes: Some(30),
        human_timeout_action: HumanTimeoutAction::Autopilot,

        // Resource limits
        max_tokens: Some(100_000),
        max_iterations: Some(10),

        // Cache settings
        enable_incremental_cache: true,
        cache_snapshot_interval: 60, // seconds

        ..Default::default()
    };

    let mut executor = DagExecutor::new(Some(config), registry, "sqlite:workflows.db").await?;
    // end of seed block
    let policy = executor.config().retry_policy(None);
    assert_eq!(policy.max_attempts, 3);
    let delays: Vec<u64> = (1..=7).map(|a| policy.delay_for(a).as_secs()).collect();
    assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(executor.config().timeout_seconds, Some(3600));
    executor.load_yaml_string("name: configured\nnodes:\n  - { id: f, action: fails_once }\n")?;
    let started = std::time::Instant::now();
    let report = execute_dag(&mut executor, &Cache::new(), "configured")
        .await?
        .into_result()?;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the retry waited the strategy's first delay"
    );
    let node = report.get_node_state("f").ok_or("no node f")?;
    assert_eq!((node.status, node.attempts), (NodeStatus::Completed, 2));
    Ok(())
}
