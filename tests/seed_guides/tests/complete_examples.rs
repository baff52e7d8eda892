//! Seed 003, "Complete Examples" and the "Complete Migration Example". The
//! examples open SQLite files and write files relative to the working
//! directory, so this test binary runs in a temporary directory of its own
//! ([`enter`]), where the workflow files they load are written.
//!
//! Each block is adapted; its `// seed block (adapted: ...)` line names the
//! changes, and docs/seed-guide.md says why each is needed. What the
//! examples use without defining (a source adapter, an LLM client, a
//! transform configuration, a monitor hook, the tool actions) is set-up
//! written around them.

use dagger::prelude::*;
use std::path::PathBuf;
use std::sync::LazyLock;

/// The directory every test of this binary works in, with the workflow
/// files the blocks load.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = tempfile::tempdir().map_or_else(|e| panic!("tempdir: {e}"), |d| d.keep());
    let files = [
        (
            "pipeline.yaml",
            "name: data_pipeline\nnodes:\n  - id: fetch\n    action: fetch_data\n    inputs: [{ name: source, reference: inputs.data_source }]\n  - id: validate\n    action: validate_data\n    dependencies: [fetch]\n    inputs: [{ name: data, reference: fetch.raw_data }]\n  - id: transform\n    action: transform_data\n    dependencies: [validate]\n    inputs: [{ name: data, reference: validate.valid_data }]\n",
        ),
        (
            "workflow.yaml",
            "name: workflow\nnodes:\n  - { id: start, action: process }\n",
        ),
    ];
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

/// The run `run_id` recorded in the SQLite file `file`, with its nodes.
async fn recorded(
    file: &str,
    run_id: &str,
) -> Result<(
    dagger::base::store::RunRecord,
    Vec<dagger::base::store::NodeRunRecord>,
)> {
    let store = SqliteStore::open(&format!("sqlite:{}", DIR.join(file).display())).await?;
    let stores = store.stores();
    let run = stores
        .runs
        .get_run(&run_id.into())
        .await?
        .ok_or_else(|| format!("{run_id} is not recorded in {file}"))?;
    let nodes = stores.runs.node_runs(&run_id.into()).await?;
    Ok((run, nodes))
}

mod example_1 {
    //! "Example 1: Data Processing Pipeline with Coordinator".
    use std::sync::Mutex;

    /// Sources the adapter was asked for.
    pub(super) static FETCHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// The guide's `SourceAdapter` (not shown): returns three records, one
    /// of them empty.
    pub(super) struct SourceAdapter;

    impl SourceAdapter {
        pub(super) fn new() -> Self {
            Self
        }

        pub(super) async fn fetch(&self, source: &str) -> anyhow::Result<Vec<String>> {
            FETCHED
                .lock()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .push(source.to_string());
            Ok(vec!["alice".into(), String::new(), "bob".into()])
        }
    }

    /// The guide's `TransformConfig` (not shown): upper-cases.
    #[derive(Default)]
    pub(super) struct TransformConfig {
        pub(super) transform_type: &'static str,
    }

    impl TransformConfig {
        pub(super) fn apply(&self, item: &str) -> String {
            item.to_uppercase()
        }
    }

    /// The guide's `MonitorHook::new()` (its Monitoring Hook section shows
    /// a hook without a constructor): counts events.
    pub(super) struct MonitorHook(std::sync::atomic::AtomicUsize);

    impl MonitorHook {
        pub(super) fn new() -> Self {
            Self(std::sync::atomic::AtomicUsize::new(0))
        }
    }

    #[dagger::async_trait]
    impl dagger::coord::EventHook for MonitorHook {
        async fn handle(
            &self,
            _ctx: &dagger::coord::HookContext,
            _event: &dagger::coord::ExecutionEvent,
        ) -> Vec<dagger::coord::ExecutorCommand> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            vec![]
        }
    }

    pub(super) mod block {
        use super::{MonitorHook, SourceAdapter, TransformConfig};
        use anyhow::anyhow;
        use dagger::prelude::BoxError;

        // seed block (adapted: `Result<NodeOutput, BoxError>` in the three
        // actions, no `?` after `cache.insert(..)`, `max_parallel_nodes: 4`)
        use anyhow::Result;
        use async_trait::async_trait;
        use dagger::coord::*;
        #[allow(unused_imports)] // what the block uses of it, `dagger::coord` has too
        use dagger::dag_flow::*;
        use serde_json::json;
        use std::sync::Arc;

        // Define Actions
        struct FetchDataAction {
            source_adapter: Arc<SourceAdapter>,
        }

        #[async_trait]
        impl NodeAction for FetchDataAction {
            fn name(&self) -> &str {
                "fetch_data"
            }

            async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
                let source = ctx
                    .inputs
                    .get("source")
                    .and_then(|v| v.as_str())
                    .unwrap_or("default");

                // Fetch data from source
                let data = self.source_adapter.fetch(source).await?;

                Ok(NodeOutput::success(json!({
                    "raw_data": data,
                    "fetch_time": chrono::Utc::now(),
                    "record_count": data.len()
                })))
            }
        }

        struct ValidateDataAction;

        #[async_trait]
        impl NodeAction for ValidateDataAction {
            fn name(&self) -> &str {
                "validate_data"
            }

            async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
                let data: Vec<String> = serde_json::from_value(
                    ctx.inputs
                        .get("data")
                        .ok_or_else(|| anyhow!("Missing data"))?
                        .clone(),
                )?;

                // Validate each record
                let valid_data: Vec<String> =
                    data.into_iter().filter(|item| !item.is_empty()).collect();

                if valid_data.is_empty() {
                    return Ok(NodeOutput::failure("No valid data found"));
                }

                Ok(NodeOutput::success(json!({
                    "valid_data": valid_data,
                    "validation_passed": true,
                    "invalid_count": 0
                })))
            }
        }

        struct TransformDataAction {
            transform_config: TransformConfig,
        }

        #[async_trait]
        impl NodeAction for TransformDataAction {
            fn name(&self) -> &str {
                "transform_data"
            }

            async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
                let data: Vec<String> = serde_json::from_value(
                    ctx.inputs
                        .get("data")
                        .ok_or_else(|| anyhow!("Missing data"))?
                        .clone(),
                )?;

                // Transform data
                let transformed: Vec<String> = data
                    .iter()
                    .map(|item| self.transform_config.apply(item))
                    .collect();

                Ok(NodeOutput::success(json!({
                    "transformed": transformed,
                    "transform_type": self.transform_config.transform_type
                })))
            }
        }

        // Define Hooks
        struct ValidationHook;

        #[async_trait]
        #[allow(
            clippy::single_match,
            clippy::collapsible_if,
            clippy::collapsible_match
        )] // the guide's one-arm `match` and nested `if`s
        impl EventHook for ValidationHook {
            async fn handle(
                &self,
                ctx: &HookContext,
                event: &ExecutionEvent,
            ) -> Vec<ExecutorCommand> {
                match event {
                    ExecutionEvent::NodeCompleted { node, outcome } => {
                        if node.node_id == "validate" {
                            if !outcome.success {
                                // Add error recovery node
                                return vec![ExecutorCommand::AddNode {
                                    dag_name: ctx.dag_name.clone(),
                                    spec: NodeSpec::new("handle_validation_error")
                                        .with_deps(vec![node.node_id.clone()]),
                                }];
                            }
                        }
                    }
                    _ => {}
                }
                vec![]
            }
        }

        // #[tokio::main]
        #[allow(unused_must_use)] // the guide discards the run's report
        pub(crate) async fn main() -> Result<()> {
            // 1. Setup action registry
            let action_registry = ActionRegistry::new();
            action_registry.register(Arc::new(FetchDataAction {
                source_adapter: Arc::new(SourceAdapter::new()),
            }));
            action_registry.register(Arc::new(ValidateDataAction));
            action_registry.register(Arc::new(TransformDataAction {
                transform_config: TransformConfig::default(),
            }));

            // 2. Create hooks
            let hooks = vec![
                Arc::new(ValidationHook) as Arc<dyn EventHook>,
                Arc::new(MonitorHook::new()),
            ];

            // 3. Create coordinator
            let coordinator = Coordinator::new(hooks, 100, 100);

            // 4. Setup executor
            let config = DagConfig {
                enable_parallel_execution: true,
                max_parallel_nodes: 4,
                ..Default::default()
            };

            let mut executor = DagExecutor::new(
                Some(config),
                Arc::new(Default::default()), // Legacy registry
                "sqlite:pipeline.db",
            )
            .await?;

            // 5. Load workflow
            executor.load_yaml_file("pipeline.yaml")?;

            // 6. Prepare cache with inputs
            let cache = Cache::new();
            cache.insert("inputs", "data_source", json!("database"));
            cache.insert("inputs", "output_destination", json!("warehouse"));

            // 7. Execute with coordinator
            let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();

            println!("Starting parallel pipeline execution...");

            // Run via coordinator for parallel execution
            coordinator
                .run_parallel(&mut executor, &cache, "data_pipeline", "run_001", cancel_rx)
                .await?;

            println!("\nPipeline completed successfully!");

            // Generate visualization
            let dot = executor.serialize_tree_to_dot("data_pipeline").await?;
            std::fs::write("pipeline.dot", dot)?;

            Ok(())
        }
        // end of seed block
    }
}

/// "Example 1": the pipeline runs to completion in `pipeline.db` (its
/// actions, registered in a registry the executor is never given, are
/// found through the legacy registry): the adapter is asked for the
/// `data_source` input, validation drops the empty record, the transform
/// upper-cases the rest; `pipeline.dot` draws the three nodes completed.
#[tokio::test]
async fn complete_example_1() -> Result<()> {
    enter();
    example_1::block::main().await?;
    assert_eq!(
        *example_1::FETCHED.lock().map_err(|e| e.to_string())?,
        ["database"]
    );
    let (run, nodes) = recorded("pipeline.db", "run_001").await?;
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    let mut ids: Vec<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["fetch", "transform", "validate"]);
    let dot = std::fs::read_to_string("pipeline.dot")?;
    for edge in ["\"fetch\" -> \"validate\"", "\"validate\" -> \"transform\""] {
        assert!(dot.contains(edge), "{dot}");
    }
    assert_eq!(dot.matches("Completed").count(), 3, "{dot}");
    Ok(())
}

mod example_2 {
    //! "Example 2: Dynamic Workflow with Agent-Based Planning".
    use dagger::prelude::*;
    use serde::Serialize;
    use std::sync::Mutex;

    /// Nodes completed, in order (the monitor's record).
    pub(super) static COMPLETED: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// The guide's plan (not shown): steps, and whether tools are needed.
    #[derive(Serialize)]
    pub(super) struct Plan {
        pub(super) steps: Vec<serde_json::Value>,
        pub(super) tool_calls: bool,
    }

    /// The guide's `LlmClient` (not shown): a fixed two-step plan, the
    /// first step needing a tool.
    pub(super) struct LlmClient;

    impl LlmClient {
        pub(super) fn new() -> Self {
            Self
        }

        pub(super) async fn analyze_task(&self, task: &str) -> Result<Plan> {
            Ok(Plan {
                steps: vec![
                    json!({"instruction": format!("load data for: {task}"), "requires_tool": true, "tool_params": {"query": "sales"}}),
                    json!({"instruction": "write the report", "context": "q3"}),
                ],
                tool_calls: true,
            })
        }
    }

    /// The guide's tool, step and validation actions (not shown): they
    /// return their inputs.
    pub(super) struct ToolInvokeAction;
    pub(super) struct ExecuteStepAction;
    pub(super) struct ValidateResultAction;

    macro_rules! echo {
        ($ty:ty, $name:literal) => {
            #[async_trait]
            impl NodeAction for $ty {
                fn name(&self) -> &str {
                    $name
                }

                async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
                    Ok(NodeOutput::success(ctx.inputs.to_value()))
                }
            }
        };
    }
    echo!(ToolInvokeAction, "invoke_tool");
    echo!(ExecuteStepAction, "execute_step");
    echo!(ValidateResultAction, "validate_result");

    /// The guide's `ExecutionMonitor` hook (not shown): records completions.
    pub(super) struct ExecutionMonitor;

    #[async_trait]
    impl EventHook for ExecutionMonitor {
        async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
            if let ExecutionEvent::NodeCompleted { node, .. } = event
                && let Ok(mut done) = COMPLETED.lock()
            {
                done.push(node.node_id.clone());
            }
            vec![]
        }
    }

    pub(super) mod block {
        use super::{
            ExecuteStepAction, ExecutionMonitor, LlmClient, ToolInvokeAction, ValidateResultAction,
        };
        // The block uses these without importing them.
        use anyhow::anyhow;
        use dagger::prelude::*;
        use std::sync::Arc;
        use tokio::sync::oneshot;

        // seed block (adapted: `as Arc<dyn EventHook>` on the first hook,
        // no `?` after `cache.insert(..)`)
        use async_trait::async_trait;
        #[allow(unused_imports)] // what the block uses of them, the prelude has too
        use dagger::coord::*;
        #[allow(unused_imports)]
        use dagger::dag_flow::*;

        // Agent that analyzes and plans workflow
        struct PlannerAgent {
            llm_client: Arc<LlmClient>,
        }

        #[async_trait]
        impl NodeAction for PlannerAgent {
            fn name(&self) -> &str {
                "planner_agent"
            }

            async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
                let task = ctx
                    .inputs
                    .get("task")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| anyhow!("Missing task"))?;

                // Analyze task and generate plan
                let plan = self.llm_client.analyze_task(task).await?;

                Ok(NodeOutput::success(json!({
                    "plan": plan,
                    "steps": plan.steps,
                    "requires_tools": plan.tool_calls
                })))
            }
        }

        // Hook that builds workflow from plan
        struct WorkflowBuilderHook;

        #[async_trait]
        #[allow(clippy::single_match, clippy::collapsible_match)] // the guide's one-arm `match`
        impl EventHook for WorkflowBuilderHook {
            async fn handle(
                &self,
                ctx: &HookContext,
                event: &ExecutionEvent,
            ) -> Vec<ExecutorCommand> {
                match event {
                    ExecutionEvent::NodeCompleted { node, outcome } => {
                        if node.node_id == "planner" {
                            let mut commands = vec![];

                            // Read the plan
                            if let Some(steps) = outcome.outputs["steps"].as_array() {
                                let mut prev_node = node.node_id.clone();

                                for (i, step) in steps.iter().enumerate() {
                                    let step_id = format!("step_{}", i);

                                    // Add tool invocation node if needed
                                    if step["requires_tool"].as_bool().unwrap_or(false) {
                                        let tool_id = format!("tool_{}", i);
                                        commands.push(ExecutorCommand::AddNode {
                                            dag_name: ctx.dag_name.clone(),
                                            spec: NodeSpec::new("invoke_tool")
                                                .with_id(tool_id.clone())
                                                .with_deps(vec![prev_node.clone()])
                                                .with_inputs(step["tool_params"].clone()),
                                        });
                                        prev_node = tool_id;
                                    }

                                    // Add execution step
                                    commands.push(ExecutorCommand::AddNode {
                                        dag_name: ctx.dag_name.clone(),
                                        spec: NodeSpec::new("execute_step")
                                            .with_id(step_id.clone())
                                            .with_deps(vec![prev_node])
                                            .with_inputs(json!({
                                                "instruction": step["instruction"],
                                                "context": step["context"]
                                            })),
                                    });

                                    prev_node = step_id;
                                }

                                // Add final validation
                                commands.push(ExecutorCommand::AddNode {
                                    dag_name: ctx.dag_name.clone(),
                                    spec: NodeSpec::new("validate_result")
                                        .with_deps(vec![prev_node]),
                                });
                            }

                            return commands;
                        }
                    }
                    _ => {}
                }
                vec![]
            }
        }

        // Main execution
        // #[tokio::main]
        #[allow(unused_must_use)] // the guide discards the run's report
        pub(crate) async fn main() -> Result<()> {
            // Register actions
            let registry = ActionRegistry::new();
            registry.register(Arc::new(PlannerAgent {
                llm_client: Arc::new(LlmClient::new()),
            }));
            registry.register(Arc::new(ToolInvokeAction));
            registry.register(Arc::new(ExecuteStepAction));
            registry.register(Arc::new(ValidateResultAction));

            // Create hooks
            let hooks = vec![
                Arc::new(WorkflowBuilderHook) as Arc<dyn EventHook>,
                Arc::new(ExecutionMonitor),
            ];

            // Create coordinator
            let coordinator = Coordinator::new(hooks, 200, 200);

            // Start with minimal DAG
            let initial_dag = r#"
    name: agent_workflow
    nodes:
      - id: planner
        action: planner_agent
        inputs:
          - name: task
            reference: inputs.task
    "#;

            let mut executor =
                DagExecutor::new(None, Arc::new(Default::default()), "sqlite:agent.db").await?;

            executor.load_yaml_string(initial_dag)?;

            // Set the task
            let cache = Cache::new();
            cache.insert(
                "inputs",
                "task",
                json!("Analyze sales data and create report"),
            );

            // Execute - workflow will be built dynamically
            let (_tx, rx) = oneshot::channel();
            coordinator
                .run_parallel(&mut executor, &cache, "agent_workflow", "run_001", rx)
                .await?;

            Ok(())
        }
        // end of seed block
    }
}

/// "Example 2": the planner's plan becomes the workflow: a tool node for
/// the step that needs one, the two steps in order, then the validation,
/// each after the one before; the run completes in `agent.db`.
#[tokio::test]
async fn complete_example_2() -> Result<()> {
    enter();
    example_2::block::main().await?;
    let completed = example_2::COMPLETED
        .lock()
        .map_err(|e| e.to_string())?
        .clone();
    assert_eq!(
        completed,
        ["planner", "tool_0", "step_0", "step_1", "validate_result"]
    );
    let (run, nodes) = recorded("agent.db", "run_001").await?;
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(nodes.len(), 5);
    Ok(())
}

mod migration_example {
    //! "Complete Migration Example", its new half. The block is malformed:
    //! a second code fence opens inside the first, the old half is the
    //! retired API (`register_action!`, function actions taking the
    //! executor), `rx` is never made, both functions end in `.await?`
    //! where a `Result<()>` is due, and the hook's command is a `{ ... }`
    //! placeholder.

    // seed block (adapted: the nested fence and the old half dropped, `rx`
    // made, `Ok(())` after the run, the hook's `{ ... }` filled in for the
    // node `start`, `ctx` unused in the action)
    use dagger::prelude::*;
    use std::sync::Arc;

    // NEW SYSTEM
    pub(super) struct NewSystem;

    impl NewSystem {
        #[allow(unused_must_use)] // the guide discards the run's report
        pub(super) async fn run_new() -> Result<()> {
            // 1. Create action registry
            let registry = ActionRegistry::new();
            registry.register(Arc::new(ProcessAction));

            // 2. Create hooks
            let hooks = vec![Arc::new(DynamicBuilderHook) as Arc<dyn EventHook>];

            // 3. Create coordinator
            let coordinator = Coordinator::new(hooks, 100, 100);

            // 4. Create executor
            let mut executor = DagExecutor::new(None, Arc::new(Default::default()), "db").await?;

            executor.load_yaml_file("workflow.yaml")?;

            // 5. Run with coordinator
            let cache = Cache::new();
            let (_tx, rx) = tokio::sync::oneshot::channel();
            coordinator
                .run_parallel(&mut executor, &cache, "workflow", "run_001", rx)
                .await?;
            Ok(())
        }
    }

    struct ProcessAction;

    #[async_trait]
    impl NodeAction for ProcessAction {
        fn name(&self) -> &str {
            "process"
        }

        async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
            // Pure computation
            Ok(NodeOutput::success(json!({"processed": true})))
        }
    }

    struct DynamicBuilderHook;

    #[async_trait]
    impl EventHook for DynamicBuilderHook {
        async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
            // Dynamic node addition via commands
            match event {
                ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "start" => {
                    vec![ExecutorCommand::AddNode {
                        dag_name: ctx.dag_name.clone(),
                        spec: NodeSpec::new("process")
                            .with_id("more")
                            .with_deps(vec!["start"]),
                    }]
                }
                _ => vec![],
            }
        }
    }
    // end of seed block
}

/// "Complete Migration Example": the new system runs `workflow.yaml` in
/// the SQLite file `db`, its hook adding a node that runs after `start`.
#[tokio::test]
async fn complete_migration_example() -> Result<()> {
    enter();
    migration_example::NewSystem::run_new().await?;
    let (run, nodes) = recorded("db", "run_001").await?;
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    let mut ids: Vec<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["more", "start"]);
    Ok(())
}
