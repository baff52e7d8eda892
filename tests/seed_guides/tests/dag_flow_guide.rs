//! Seed 003, the DAG Flow implementation guide: its code blocks, one test per
//! section, each named after the section. Between the `seed block` markers a
//! test holds the block as the guide prints it; around it, the set-up the
//! guide leaves out (an executor, actions, a workflow) and assertions on what
//! the guide's prose promises. `docs/seed-guide.md` lists every section: the
//! test that holds it, or why it has none yet.

use dagger::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An action that returns its inputs (the guide's workflows name actions it
/// never defines).
struct Echo(&'static str);

#[async_trait]
impl NodeAction for Echo {
    fn name(&self) -> &str {
        self.0
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        Ok(NodeOutput::success(ctx.inputs.to_value()))
    }
}

/// An action that returns its inputs as its one declared output.
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

fn registry(actions: &[&'static str]) -> ActionRegistry {
    let registry = ActionRegistry::new();
    for name in actions {
        registry.register(Arc::new(Echo(name)));
    }
    registry
}

async fn executor(actions: &[&'static str]) -> DagExecutor {
    match DagExecutor::new(None, registry(actions), Stores::memory()).await {
        Ok(executor) => executor,
        Err(e) => panic!("executor: {e}"),
    }
}

/// "Working with Workflows / Loading Workflows": from a file, from a string,
/// several workflows into one executor. Paths are relative to this crate
/// (cargo runs tests there).
#[tokio::test]
async fn loading_workflows() -> Result<()> {
    let mut executor = executor(&[]).await;
    // seed block
    // Load from file
    executor.load_yaml_file("workflows/pipeline.yaml")?;

    // Load from string
    let yaml_content = std::fs::read_to_string("pipeline.yaml")?;
    executor.load_yaml_string(&yaml_content)?;

    // Load multiple workflows
    executor.load_yaml_file("workflow1.yaml")?;
    executor.load_yaml_file("workflow2.yaml")?;
    // end of seed block
    let mut names = executor.list_dags();
    names.sort();
    assert_eq!(
        names,
        [
            "data_processing_pipeline",
            "pipeline",
            "workflow1",
            "workflow2"
        ]
    );
    Ok(())
}

/// "YAML Workflow Structure": the guide's five-node pipeline
/// (`workflows/pipeline.yaml`, the block verbatim) loads with its metadata,
/// and runs: the two analyses in parallel after the transform, the report last.
#[tokio::test]
async fn yaml_workflow_structure() -> Result<()> {
    let registry = ActionRegistry::new();
    for (action, output) in [
        ("validate_data", "valid_data"),
        ("handle_validation_error", "handled"),
        ("transform_customer_data", "transformed"),
        ("analyze_type_a", "analysis_a"),
        ("analyze_type_b", "analysis_b"),
        ("generate_report", "final_report"),
    ] {
        registry.register(Arc::new(Stage(action, output)));
    }
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_file("workflows/pipeline.yaml")?;
    let meta = executor.get_dag_metadata("data_processing_pipeline")?;
    assert_eq!(meta.author, "Engineering Team");
    assert_eq!(meta.version, "1.0.0");
    assert_eq!(meta.tags, ["production", "customer_data", "etl"]);
    assert_eq!(meta.node_count, 5);
    assert_eq!(
        executor.list_dags_by_tags(&["customer_data", "etl"]),
        ["data_processing_pipeline"]
    );

    let cache = Cache::new();
    insert_value(&cache, "inputs", "customer_data", json!([{"id": 1}]))?;
    let report = execute_dag(&mut executor, &cache, "data_processing_pipeline").await?;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.completed_nodes(), 5);
    // The data flows along the references: the report saw both analyses,
    // each of which saw the transform's output of the validated run input.
    let input = json!({"data": {"data": {"raw_data": [{"id": 1}]}}});
    let final_report = cache
        .get("combine_results", "final_report")
        .ok_or("combine_results has no final_report")?;
    assert_eq!(
        *final_report,
        json!({"analysis_a": input, "analysis_b": input})
    );
    Ok(())
}

/// "Cache Operations / Writing to Cache": simple values, a JSON structure,
/// a node's namespace; every value reads back as written.
#[test]
fn writing_to_cache() -> Result<()> {
    // seed block
    use dagger::{Cache, insert_value};

    // Create cache
    let cache = Cache::new();

    // Write simple values
    insert_value(&cache, "inputs", "username", "john_doe")?;
    insert_value(&cache, "inputs", "age", 30)?;
    insert_value(&cache, "inputs", "active", true)?;

    // Write complex structures
    let config = json!({
        "timeout": 30,
        "retries": 3,
        "endpoints": ["api1.example.com", "api2.example.com"]
    });
    insert_value(&cache, "inputs", "config", config)?;

    // Write to node-specific namespace
    insert_value(&cache, "node1", "status", "completed")?;
    insert_value(&cache, "node1", "result", vec![1, 2, 3, 4, 5])?;
    // end of seed block

    let get = |ns: &str, key: &str| cache.get(ns, key).map(|v| (*v).clone());
    assert_eq!(get("inputs", "username"), Some(json!("john_doe")));
    assert_eq!(get("inputs", "age"), Some(json!(30)));
    assert_eq!(get("inputs", "active"), Some(json!(true)));
    assert_eq!(
        get("inputs", "config").map(|c| c["retries"].clone()),
        Some(json!(3))
    );
    assert_eq!(get("node1", "result"), Some(json!([1, 2, 3, 4, 5])));
    assert_eq!(*get_value_from_cache(&cache, "inputs", "age")?, json!(30));
    Ok(())
}

/// "Cache Persistence": a snapshot saved under a workflow's name loads back
/// into a new cache, also in a new executor on the same database; the cache
/// prints as JSON.
#[tokio::test]
async fn cache_persistence() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("workflows.db").display());
    let open = || async {
        let store = SqliteStore::open(&url).await?;
        Ok::<_, BoxError>(DagExecutor::new(None, ActionRegistry::new(), store).await?)
    };
    let executor = open().await?;
    let cache = Cache::new();
    insert_value(&cache, "node1", "result", vec![1, 2, 3])?;
    // seed block
    // Manual cache snapshot
    executor
        .save_cache_snapshot("workflow_name", &cache)
        .await?;

    // Load cache from previous execution
    let restored_cache = executor.load_cache_snapshot("workflow_name").await?;

    // Get cache as JSON for debugging
    let cache_json = serialize_cache_to_prettyjson(&cache)?;
    println!("Cache contents:\n{}", cache_json);
    // end of seed block
    assert_eq!(restored_cache.to_json(), cache.to_json());
    let printed: serde_json::Value = serde_json::from_str(&cache_json)?;
    assert_eq!(printed["node1"]["result"], json!([1, 2, 3]));
    drop(executor);
    // "After a crash": a new executor on the same database finds it.
    let again = open().await?.load_cache_snapshot("workflow_name").await?;
    assert_eq!(again.to_json(), cache.to_json());
    Ok(())
}

/// Hands a batch of commands to the coordinator once node `start` completes.
struct Batch(std::sync::Mutex<Option<Vec<ExecutorCommand>>>);

#[async_trait]
impl EventHook for Batch {
    async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        match event {
            ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "start" => self
                .0
                .lock()
                .ok()
                .and_then(|mut c| c.take())
                .unwrap_or_default(),
            _ => vec![],
        }
    }
}

/// "Dynamic Graph Growth / Batch Node Addition": the three nodes are added
/// at once after `start` and run, `aggregate` after both processes.
#[tokio::test]
async fn batch_node_addition() -> Result<()> {
    // seed block
    // Add multiple nodes atomically
    let commands = vec![ExecutorCommand::AddNodes {
        dag_name: "workflow".to_string(),
        specs: vec![
            NodeSpec::new("process_1").with_deps(vec!["start"]),
            NodeSpec::new("process_2").with_deps(vec!["start"]),
            NodeSpec::new("aggregate").with_deps(vec!["process_1", "process_2"]),
        ],
    }];
    // end of seed block
    let mut executor = executor(&["begin", "process_1", "process_2", "aggregate"]).await;
    executor.load_yaml_string("name: workflow\nnodes:\n  - id: start\n    action: begin\n")?;
    let hooks: Vec<Arc<dyn EventHook>> =
        vec![Arc::new(Batch(std::sync::Mutex::new(Some(commands))))];
    let coordinator = Coordinator::new(hooks, 100, 100);
    let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    let report = coordinator
        .run_parallel(
            &mut executor,
            &Cache::new(),
            "workflow",
            "run_001",
            cancel_rx,
        )
        .await?;
    assert!(report.succeeded(), "{report:?}");
    let mut ran: Vec<&str> = report.nodes.iter().map(|n| n.id.as_str()).collect();
    ran.sort_unstable();
    assert_eq!(ran, ["aggregate", "process_1", "process_2", "start"]);
    assert!(
        report
            .get_node_state("aggregate")
            .is_some_and(|n| n.added_at_runtime)
    );
    Ok(())
}

/// Counts node starts, to show the coordinator ran every node.
struct Starts(Arc<AtomicUsize>);

#[async_trait]
impl EventHook for Starts {
    async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        if matches!(event, ExecutionEvent::NodeStarted { .. }) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        vec![]
    }
}

/// "Execution Control / Coordinator-Based Execution": `run_parallel` runs
/// the workflow under the given run id and hooks see every node. As written
/// the block warns twice: `cancel_tx` is unused (dropping it does not cancel
/// the run) and the returned report is discarded (`#[must_use]`: a run that
/// ran, failed or not, is an `Ok` report; `report.into_result()?` is the form
/// that turns a failed run into an error, see docs/dag-flow.md).
#[tokio::test]
#[allow(unused_variables, unused_must_use)] // the guide's unused `cancel_tx` and discarded report
async fn coordinator_based_execution() -> Result<()> {
    let mut executor = executor(&["step"]).await;
    executor.load_yaml_string(
        "name: workflow_name\nnodes:\n  - { id: a, action: step }\n  - { id: b, action: step }\n  - { id: c, action: step, dependencies: [a, b] }\n",
    )?;
    let starts = Arc::new(AtomicUsize::new(0));
    let coordinator = Coordinator::new(vec![Arc::new(Starts(starts.clone()))], 100, 100);
    let cache = Cache::new();
    // seed block
    use dagger::coord::Coordinator;

    // Execute with the coordinator
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();

    // Run parallel execution via coordinator
    coordinator
        .run_parallel(
            &mut executor,
            &cache,
            "workflow_name",
            "run_001", // Unique run ID
            cancel_rx,
        )
        .await?;
    // end of seed block
    assert_eq!(starts.load(Ordering::SeqCst), 3);
    let run = executor
        .stores()
        .runs
        .get_run(&"run_001".into())
        .await?
        .ok_or("run_001 not recorded")?;
    assert_eq!(run.status, RunStatus::Completed);
    Ok(())
}

/// The guide's `threshold`, a value of the user's.
const THRESHOLD: f64 = 0.5;

mod migration_guide {
    //! "Migration Guide": the new patterns (the old ones are the retired API).
    use super::THRESHOLD as threshold;
    use dagger::prelude::*;
    use std::sync::Arc;

    // seed block ("New Pattern (Pure Computation)")
    // NEW - No executor access
    struct MyAction;

    #[async_trait]
    #[allow(unused_variables)] // the guide's `ctx`, unused
    impl NodeAction for MyAction {
        fn name(&self) -> &str {
            "my_action"
        }

        async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
            // Pure computation only
            // Return data, let hooks handle control flow
            Ok(NodeOutput::success(json!({
                "result": "computed_value",
                "needs_validation": true  // Hook can read this
            })))
        }
    }
    // end of seed block

    // seed block ("New Pattern (Hook-Based Control)")
    // NEW - Control flow in hook
    struct ConditionalHook;

    #[async_trait]
    #[allow(clippy::collapsible_if)] // the guide's nested `if`s
    impl EventHook for ConditionalHook {
        async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
            if let ExecutionEvent::NodeCompleted { outcome, .. } = event {
                if let Some(value) = outcome.outputs["value"].as_f64() {
                    if value > threshold {
                        return vec![ExecutorCommand::AddNode {
                            dag_name: ctx.dag_name.clone(),
                            spec: NodeSpec::new("extra_step"),
                        }];
                    }
                }
            }
            vec![]
        }
    }
    // end of seed block

    /// The action returns its data; the hook adds `extra_step` only after a
    /// node whose `value` exceeds the threshold.
    #[tokio::test]
    async fn new_patterns() -> Result<()> {
        let registry = ActionRegistry::new();
        registry.register(Arc::new(MyAction));
        registry.register(Arc::new(super::Echo("extra_step")));
        registry.register(Arc::new(super::Echo("measure")));
        let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
        executor.load_yaml_string(
            "name: wf\nnodes:\n  - { id: compute, action: my_action }\n  - { id: measure, action: measure, inputs: [{ name: value, value: 0.9 }] }\n",
        )?;
        let coordinator = Coordinator::new(vec![Arc::new(ConditionalHook)], 100, 100);
        let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        let cache = Cache::new();
        let report = coordinator
            .run_parallel(&mut executor, &cache, "wf", "run_1", cancel_rx)
            .await?
            .into_result()?;
        assert_eq!(
            *get_value_from_cache(&cache, "compute", "needs_validation")?,
            json!(true)
        );
        // `measure` output 0.9 > 0.5: one `extra_step`; `compute` has no value.
        let added: Vec<&str> = report
            .nodes
            .iter()
            .filter(|n| n.added_at_runtime)
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(added, ["extra_step"]);
        Ok(())
    }
}

/// An executor on a fresh SQLite file (a resume needs a store that
/// records the run), with `actions` as [`Echo`]s plus `extra`.
async fn file_executor(
    dir: &tempfile::TempDir,
    config: Option<DagConfig>,
    actions: &[&'static str],
    extra: Vec<Arc<dyn NodeAction>>,
) -> Result<DagExecutor> {
    let registry = registry(actions);
    for action in extra {
        registry.register(action);
    }
    let location = format!("sqlite:{}", dir.path().join("runs.db").display());
    Ok(DagExecutor::new(config, registry, location).await?)
}

mod adding_nodes {
    //! "Dynamic Graph Growth / Adding Nodes During Execution".
    use dagger::prelude::*;
    use std::sync::Arc;

    // seed block
    struct DynamicBuilderHook;

    #[async_trait]
    #[allow(clippy::single_match, clippy::collapsible_match)] // the guide's one-arm `match`
    impl EventHook for DynamicBuilderHook {
        async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
            match event {
                ExecutionEvent::NodeCompleted { node, outcome } => {
                    if node.node_id == "analyze_task" {
                        // Build workflow based on analysis
                        let mut commands = vec![];

                        if let Some(steps) = outcome.outputs["steps"].as_array() {
                            for (i, step) in steps.iter().enumerate() {
                                commands.push(ExecutorCommand::AddNode {
                                    dag_name: ctx.dag_name.clone(),
                                    spec: NodeSpec::new(step["action"].as_str().unwrap())
                                        .with_id(format!("step_{}", i))
                                        .with_deps(if i == 0 {
                                            vec![node.node_id.clone()]
                                        } else {
                                            vec![format!("step_{}", i - 1)]
                                        })
                                        .with_inputs(step["inputs"].clone()),
                                });
                            }
                        }

                        return commands;
                    }
                }
                _ => {}
            }
            vec![]
        }
    }
    // end of seed block

    /// The analysis names two steps; the hook chains them after it, each
    /// with its inputs, and both run in order.
    #[tokio::test]
    async fn adding_nodes_during_execution() -> Result<()> {
        let registry = super::registry(&["fetch", "summarize"]);
        registry.register(Arc::new(super::Fixed(
            "analyze",
            json!({"steps": [
                {"action": "fetch", "inputs": {"url": "a"}},
                {"action": "summarize", "inputs": {"words": 10}},
            ]}),
        )));
        let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
        executor
            .load_yaml_string("name: agent\nnodes:\n  - { id: analyze_task, action: analyze }\n")?;
        let coordinator = Coordinator::new(vec![Arc::new(DynamicBuilderHook)], 100, 100);
        let cache = Cache::new();
        let (_tx, rx) = tokio::sync::oneshot::channel();
        let report = coordinator
            .run_parallel(&mut executor, &cache, "agent", "run_1", rx)
            .await?
            .into_result()?;
        let ids: Vec<&str> = report.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["analyze_task", "step_0", "step_1"]);
        assert_eq!(*get_value_from_cache(&cache, "step_0", "url")?, json!("a"));
        assert_eq!(*get_value_from_cache(&cache, "step_1", "words")?, json!(10));
        Ok(())
    }
}

/// An action that always returns the same outputs.
struct Fixed(&'static str, serde_json::Value);

#[async_trait]
impl NodeAction for Fixed {
    fn name(&self) -> &str {
        self.0
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        Ok(NodeOutput::success(self.1.clone()))
    }
}

mod pause_and_resume {
    //! "Pause and Resume": the hook that pauses a branch for a human, the
    //! action that reads the answer, and "Resume from Pause".
    use dagger::prelude::*;
    use std::sync::Arc;
    use tokio::sync::Mutex;

    // seed block ("Implementing Pauseable Workflows with Hooks")
    struct HumanInterventionHook {
        intervention_required: Arc<Mutex<bool>>,
    }

    #[async_trait]
    #[allow(unused_variables, clippy::single_match, clippy::collapsible_match)] // the guide's one-arm `match`
    impl EventHook for HumanInterventionHook {
        async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
            match event {
                ExecutionEvent::NodeCompleted { node, outcome } => {
                    // Check if human review is needed
                    if outcome.outputs.get("needs_review") == Some(&json!(true)) {
                        *self.intervention_required.lock().await = true;

                        // Pause the branch
                        return vec![ExecutorCommand::PauseBranch {
                            branch_id: node.node_id.clone(),
                            reason: Some("Human review required".to_string()),
                        }];
                    }
                }
                _ => {}
            }
            vec![]
        }
    }

    // Resume after human input
    struct ResumeAction;

    #[async_trait]
    impl NodeAction for ResumeAction {
        fn name(&self) -> &str {
            "resume_after_review"
        }

        async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
            // Process human input
            let approval = ctx
                .inputs
                .get("approval")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);

            if approval {
                // Return command to resume
                Ok(NodeOutput::success(json!({
                    "action": "resume",
                    "branch": ctx.inputs["branch_id"]
                })))
            } else {
                Ok(NodeOutput::success(json!({
                    "action": "cancel",
                    "reason": "Not approved"
                })))
            }
        }
    }
    // end of seed block

    const WORKFLOW: &str = r#"
name: review
nodes:
  - { id: draft, action: write_draft }
  - id: publish
    action: resume_after_review
    dependencies: [draft]
    inputs: [{ name: approval, value: true }, { name: branch_id, value: draft }]
"#;

    /// The draft asks for review: the hook pauses its branch and the run
    /// stops paused before `publish`. "Resume from Pause" finds the
    /// executor paused, adds the human's answer and resumes: `publish` runs
    /// (approved) and the run completes.
    #[tokio::test]
    #[allow(unused_variables, unused_must_use)] // the guide's unused `cancel_tx` and report
    async fn resume_from_pause() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let extra: Vec<Arc<dyn NodeAction>> = vec![
            Arc::new(ResumeAction),
            Arc::new(super::Fixed("write_draft", json!({"needs_review": true}))),
        ];
        let mut executor = super::file_executor(&dir, None, &[], extra).await?;
        executor.load_yaml_string(WORKFLOW)?;
        let intervention_required = Arc::new(Mutex::new(false));
        let hook = HumanInterventionHook {
            intervention_required: intervention_required.clone(),
        };
        let coordinator = Coordinator::new(vec![Arc::new(hook)], 100, 100);
        let cache = Cache::new();
        let (_tx, rx) = tokio::sync::oneshot::channel();
        let first = coordinator
            .run_parallel(&mut executor, &cache, "review", "run_1", rx)
            .await?;
        assert_eq!(first.status, RunStatus::Paused, "{first:?}");
        assert!(*intervention_required.lock().await);
        assert!(cache.get("publish", "action").is_none());
        let mut resumed = false;
        // seed block ("Resume from Pause")
        // Check if workflow is paused
        if executor.is_paused() {
            println!("Workflow is paused. Resuming...");

            // Optionally update cache with human input
            insert_value(&cache, "human_input", "approval", "approved")?;

            // Resume execution
            let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
            executor.resume_from_pause(&cache, cancel_rx).await?;
            // end of seed block
            resumed = true;
        }
        assert!(resumed, "the executor saw its run paused");
        assert!(!executor.is_paused());
        assert_eq!(
            executor.last_run("review").map(|r| r.status),
            Some(RunStatus::Completed)
        );
        assert_eq!(
            *get_value_from_cache(&cache, "publish", "action")?,
            json!("resume")
        );
        assert_eq!(
            *get_value_from_cache(&cache, "publish", "branch")?,
            json!("draft")
        );
        Ok(())
    }
}

/// Waits until the run is cancelled.
struct Hang;

#[async_trait]
impl NodeAction for Hang {
    fn name(&self) -> &str {
        "hang"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        ctx.cancel.cancelled().await;
        Err("cancelled".into())
    }
}

/// "Execution Control / Cancellation": a run that would never end is
/// cancelled after ten seconds through the guide's channel; the spawned
/// execution ends with the run cancelled (an error: it did not complete).
#[tokio::test]
#[allow(unused_imports)] // the guide imports `timeout` without using it
async fn cancellation() -> Result<()> {
    let mut executor = executor(&[]).await;
    executor.registry().register(Arc::new(Hang));
    executor.load_yaml_string("name: workflow\nnodes:\n  - { id: wait, action: hang }\n")?;
    let cache = Cache::new();
    // seed block
    use tokio::time::{Duration, timeout};

    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();

    // Spawn execution in background
    let executor_handle = tokio::spawn(async move {
        executor
            .execute_static_dag("workflow", &cache, cancel_rx)
            .await
    });

    // Cancel after some condition
    tokio::time::sleep(Duration::from_secs(10)).await;
    cancel_tx.send(()).ok();

    // Wait for graceful shutdown
    let result = executor_handle.await?;
    // end of seed block
    match result {
        Err(DagError::RunNotCompleted { reason, .. }) => {
            assert_eq!(reason, "Cancelled: run cancelled");
        }
        other => panic!("expected a cancelled run, got {other:?}"),
    }
    Ok(())
}

/// Records the most nodes running at once.
struct Gauge {
    now: AtomicUsize,
    max: Arc<AtomicUsize>,
}

#[async_trait]
impl NodeAction for Gauge {
    fn name(&self) -> &str {
        "gauge"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(NodeOutput::success(json!({})))
    }
}

/// "Execution Control / Parallel Execution Control": twelve independent
/// nodes never run more than four at once, limited by the coordinator
/// (the first statement, as written) or by the executor's configuration
/// (the second, adapted by one change: `max_parallel_nodes: 4` for the
/// guide's `Some(4)`, which contradicts its own Custom Configuration and
/// seed 002; a struct literal's field has one type, see
/// docs/seed-guide.md).
#[tokio::test]
async fn parallel_execution_control() -> Result<()> {
    let hooks: Vec<Arc<dyn EventHook>> = vec![];
    // seed block (first statement)
    // The coordinator always executes in parallel
    // Control concurrency via semaphore in coordinator

    let coordinator = Coordinator::new_with_concurrency(
        hooks, 100, // Event channel capacity
        100, // Command channel capacity
        4,   // Max parallel workers
    );
    // end of seed block
    let max = Arc::new(AtomicUsize::new(0));
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Gauge {
        now: AtomicUsize::new(0),
        max: max.clone(),
    }));
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    let nodes: String = (0..12)
        .map(|i| format!("  - {{ id: n{i}, action: gauge }}\n"))
        .collect();
    executor.load_yaml_string(&format!("name: wide\nnodes:\n{nodes}"))?;
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let report = coordinator
        .run_parallel(&mut executor, &Cache::new(), "wide", "run_1", rx)
        .await?
        .into_result()?;
    assert_eq!(report.completed_nodes(), 12);
    let max = max.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&max),
        "ran in parallel, at most four at once: {max}"
    );

    // seed block (second statement, adapted: `4` for `Some(4)`)
    // Or use DagConfig for executor-level control
    let config = DagConfig {
        max_parallel_nodes: 4,           // Limit concurrent nodes
        enable_parallel_execution: true, // Must be true for coordinator
        ..Default::default()
    };
    // end of seed block
    let max = Arc::new(AtomicUsize::new(0));
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Gauge {
        now: AtomicUsize::new(0),
        max: max.clone(),
    }));
    let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
    executor.load_yaml_string(&format!("name: wide\nnodes:\n{nodes}"))?;
    let report = execute_dag(&mut executor, &Cache::new(), "wide")
        .await?
        .into_result()?;
    assert_eq!(report.completed_nodes(), 12);
    let max = max.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&max),
        "the executor's limit: at most four at once: {max}"
    );
    Ok(())
}

/// Fails every time.
struct Broken;

#[async_trait]
impl NodeAction for Broken {
    fn name(&self) -> &str {
        "broken"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        Err("disk full".into())
    }
}

/// "Error Handling / Error Recovery Patterns": the guide's `match` over a
/// run whose node fails, then the same call matched by the test: the
/// failure is `DagError::NodeExecutionError` naming the node; a run over
/// its `timeout_seconds` is `DagError::ExecutionTimeout`; a completed run
/// is `Ok` with its completed nodes.
#[tokio::test]
async fn error_recovery_patterns() -> Result<()> {
    let mut executor = executor(&["ok"]).await;
    executor.registry().register(Arc::new(Broken));
    executor.registry().register(Arc::new(Hang));
    executor.load_yaml_string(
        "name: workflow\nnodes:\n  - { id: fine, action: ok }\n  - { id: save, action: broken, dependencies: [fine] }\n",
    )?;
    let cache = Cache::new();
    let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    // seed block
    use dagger::{DagError, OnFailure};

    match executor
        .execute_static_dag("workflow", &cache, cancel_rx)
        .await
    {
        Ok(report) => {
            println!("Success: {} nodes completed", report.completed_nodes);
        }
        Err(DagError::ExecutionTimeout(msg)) => {
            eprintln!("Timeout: {}", msg);
            // Could resume with extended timeout
        }
        Err(DagError::ValidationError(msg)) => {
            eprintln!("Invalid workflow: {}", msg);
            // Fix workflow definition
        }
        Err(DagError::NodeExecutionError { node_id, error }) => {
            eprintln!("Node {} failed: {}", node_id, error);
            // Could retry specific node
        }
        Err(e) => {
            eprintln!("Unexpected error: {}", e);
        }
    }
    // end of seed block
    let _ = OnFailure::Continue; // imported by the guide, unused by its block
    executor.load_yaml_string(
        "name: slow\nconfig: { timeout_seconds: 1 }\nnodes:\n  - { id: wait, action: hang }\n",
    )?;
    executor.load_yaml_string(
        "name: good\nnodes:\n  - { id: a, action: ok }\n  - { id: b, action: ok }\n",
    )?;
    let run = |name: &'static str| {
        let mut executor = executor.clone();
        let cache = cache.clone();
        async move {
            let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
            executor.execute_static_dag(name, &cache, rx).await
        }
    };
    match run("workflow").await {
        Err(DagError::NodeExecutionError { node_id, error }) => {
            assert_eq!((node_id.as_str(), error.as_str()), ("save", "disk full"));
        }
        other => panic!("expected the node's failure, got {other:?}"),
    }
    match run("slow").await {
        Err(DagError::ExecutionTimeout(msg)) => {
            assert!(msg.contains("timed out after 1s"), "{msg}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let report = run("good").await?;
    assert_eq!(report.completed_nodes, 2);
    Ok(())
}

mod safe_node_addition {
    //! "Best Practices for Dynamic Nodes": the safe addition with error
    //! handling, on a loaded workflow before it runs (`DagExecutor::add_node`).
    use dagger::prelude::*;
    use tracing::{error, info, warn};

    /// The guide's block; its `dag_name`, `node_id`, `action` and `deps` are
    /// the parameters, and its `return`s need a function (anyhow's
    /// `Result`, as the guide's `anyhow!` implies).
    fn add(
        executor: &mut DagExecutor,
        dag_name: &str,
        node_id: &str,
        action: &str,
        deps: Vec<&str>,
    ) -> anyhow::Result<()> {
        use anyhow::anyhow;
        // seed block
        // Safe node addition with error handling
        match executor.add_node(dag_name, node_id, action, deps) {
            Ok(_) => info!("Successfully added node: {}", node_id),
            Err(DagError::NodeAlreadyExists(id)) => {
                warn!("Node {} already exists, skipping", id);
            }
            Err(DagError::DependencyNotFound(dep)) => {
                error!("Dependency {} not found", dep);
                return Err(anyhow!("Invalid dependency"));
            }
            Err(e) => return Err(e.into()),
        }
        // end of seed block
        Ok(())
    }

    /// A new node is added and runs after its dependency; a taken id is
    /// skipped (the workflow keeps one node of it); an unknown dependency
    /// is the guide's "Invalid dependency"; an unregistered action is
    /// refused with the validation message.
    #[tokio::test]
    async fn safe_node_addition() -> Result<()> {
        let mut executor = super::executor(&["fetch", "check"]).await;
        executor.load_yaml_string("name: w\nnodes:\n  - { id: first, action: fetch }\n")?;
        add(&mut executor, "w", "second", "check", vec!["first"])?;
        add(&mut executor, "w", "first", "check", vec![])?;
        let missing = add(&mut executor, "w", "third", "check", vec!["nope"]);
        assert_eq!(
            missing.map_err(|e| e.to_string()),
            Err("Invalid dependency".to_string())
        );
        let unknown = add(&mut executor, "w", "fourth", "send_mail", vec!["first"]);
        assert_eq!(
            unknown.map_err(|e| e.to_string()),
            Err(
                "invalid workflow: node `fourth`: action `send_mail` is not registered".to_string()
            )
        );
        let ids: Vec<String> = executor
            .workflow("w")?
            .def
            .nodes
            .iter()
            .map(|n| n.id.clone())
            .collect();
        assert_eq!(ids, ["first", "second"]);
        let report = execute_dag(&mut executor, &Cache::new(), "w")
            .await?
            .into_result()?;
        assert_eq!(report.completed_nodes(), 2);
        Ok(())
    }
}

/// "Error Handling / Retry Strategies": the three forms are values of
/// `DagConfig::retry_strategy`; the last one the block binds (`Immediate`)
/// retries a failing node at once, up to `max_attempts`. (Custom
/// Configuration's test runs the exponential form and its two-second
/// delay; `dagger_dag_flow::retry_strategy`'s unit tests give each form's
/// delays.)
#[tokio::test]
#[allow(unused_variables)] // the guide rebinds `retry_strategy` three times
async fn retry_strategies() -> Result<()> {
    // seed block
    use dagger::RetryStrategy;

    // Exponential backoff
    let retry_strategy = RetryStrategy::Exponential {
        initial_delay_secs: 2,
        max_delay_secs: 60,
        multiplier: 2.0,
    };

    // Linear backoff
    let retry_strategy = RetryStrategy::Linear { delay_secs: 5 };

    // Immediate retry
    let retry_strategy = RetryStrategy::Immediate;
    // end of seed block
    let config = DagConfig {
        max_attempts: Some(3),
        retry_strategy,
        ..DagConfig::default()
    };
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Broken));
    let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
    executor.load_yaml_string("name: retried\nnodes:\n  - { id: b, action: broken }\n")?;
    let started = std::time::Instant::now();
    let report = execute_dag(&mut executor, &Cache::new(), "retried").await?;
    let node = report.get_node_state("b").ok_or("no node b")?;
    assert_eq!((node.status, node.attempts), (NodeStatus::Failed, 3));
    assert_eq!(node.error.as_deref(), Some("disk full (after 3 attempts)"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "immediate retries do not wait the exponential or linear delays"
    );
    Ok(())
}

mod creating_actions {
    //! "Creating Actions": the guide's hand-written actions with one change
    //! each. They `use anyhow::Result;`, so `-> Result<NodeOutput>` is
    //! anyhow's, which is not the trait's `Result<NodeOutput, BoxError>`, and
    //! an impl must repeat the trait's return type. anyhow's `Result` takes
    //! the error as a second parameter, so the change is `Result<NodeOutput,
    //! BoxError>`; `?` on anyhow's errors (`anyhow!`) still works, since an
    //! `anyhow::Error` converts into a `BoxError`.
    use dagger::prelude::*;
    use serde_json::Value;
    use std::collections::HashMap;

    /// The guide's computation (it calls one it does not show).
    fn process_data(input: &Value) -> anyhow::Result<Value> {
        let n = input
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("data must be a number"))?;
        Ok(json!(n * 2))
    }

    mod the_new_node_action_trait {
        use super::process_data;
        use anyhow::anyhow;
        use dagger::prelude::BoxError;

        // seed block (the return type adapted as the module says)
        use anyhow::Result;
        use async_trait::async_trait;
        use dagger::coord::{NodeAction, NodeCtx, NodeOutput};
        #[allow(unused_imports)] // the guide imports `Value` without using it
        use serde_json::{Value, json};

        // Define an action (no &mut DagExecutor!)
        pub(super) struct ProcessAction;

        #[async_trait]
        impl NodeAction for ProcessAction {
            fn name(&self) -> &str {
                "process_data"
            }

            async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
                // Pure computation - no executor access
                println!("Processing node: {}", ctx.node_id);

                // Access inputs from context
                let input_value = ctx
                    .inputs
                    .get("data")
                    .ok_or_else(|| anyhow!("Missing input data"))?;

                // Perform computation
                let result = process_data(input_value)?;

                // Return output
                Ok(NodeOutput::success(json!({
                    "processed": result,
                    "timestamp": chrono::Utc::now()
                })))
            }
        }
        // end of seed block
    }

    use anyhow::anyhow;
    use serde::{Deserialize, Serialize};

    // seed block ("Action with Complex Types", the return type adapted)
    #[derive(Debug, Serialize, Deserialize)]
    struct ProcessingResult {
        status: String,
        data: Vec<String>,
        metadata: HashMap<String, Value>,
    }

    struct ComplexProcessor {
        #[allow(dead_code)] // the guide's field, unused by its action
        processor_id: String,
    }

    #[async_trait]
    impl NodeAction for ComplexProcessor {
        fn name(&self) -> &str {
            "complex_processor"
        }

        async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
            // Parse complex input from context
            let config: HashMap<String, Value> = serde_json::from_value(
                ctx.inputs
                    .get("config")
                    .ok_or_else(|| anyhow!("Missing config"))?
                    .clone(),
            )?;

            // Process data
            let result = ProcessingResult {
                status: "completed".to_string(),
                data: vec!["item1".to_string(), "item2".to_string()],
                metadata: config,
            };

            // Return complex output
            Ok(NodeOutput::success(serde_json::to_value(result)?))
        }
    }
    // end of seed block

    /// Both actions run; their anyhow errors (a missing input, a bad
    /// computation) fail the node with anyhow's message.
    #[tokio::test]
    async fn hand_written_actions_with_anyhow_errors() -> Result<()> {
        let action_registry = ActionRegistry::new();
        // seed block (the registration line of "The New NodeAction Trait")
        action_registry.register(Arc::new(the_new_node_action_trait::ProcessAction));
        // end of seed block
        action_registry.register(Arc::new(ComplexProcessor {
            processor_id: "p1".into(),
        }));
        let mut executor = DagExecutor::new(None, action_registry, Stores::memory()).await?;
        executor.load_yaml_string(
            "name: actions\nnodes:\n  - { id: p, action: process_data, inputs: [{ name: data, value: 21 }] }\n  - { id: c, action: complex_processor, inputs: [{ name: config, value: { k: v } }] }\n  - { id: bad, action: process_data, inputs: [{ name: data, value: text }] }\n  - { id: none, action: complex_processor }\n",
        )?;
        let cache = Cache::new();
        let report = execute_dag(&mut executor, &cache, "actions").await?;
        assert_eq!(*cache.get("p", "processed").ok_or("no output")?, json!(42));
        assert!(cache.get("p", "timestamp").is_some());
        assert_eq!(
            *cache.get("c", "status").ok_or("no status")?,
            json!("completed")
        );
        assert_eq!(
            *cache.get("c", "metadata").ok_or("no metadata")?,
            json!({"k": "v"})
        );
        for (node, message) in [("bad", "data must be a number"), ("none", "Missing config")] {
            let state = report.get_node_state(node).ok_or("no node")?;
            assert_eq!(state.status, NodeStatus::Failed, "{node}");
            assert_eq!(state.error.as_deref(), Some(message), "{node}");
        }
        Ok(())
    }

    use std::sync::Arc;
}
