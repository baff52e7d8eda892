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
