//! Seed 003, the DAG Flow implementation guide: "Action with Cache Access",
//! "Implementing Hooks" (the planner and the monitoring hook) and "Listing
//! and Filtering Workflows". Conventions as in `dag_flow_guide.rs`; see
//! docs/seed-guide.md.

use dagger::prelude::*;

/// An action that returns its inputs.
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

/// Fails every attempt with "source offline".
struct Offline;

#[async_trait]
impl NodeAction for Offline {
    fn name(&self) -> &str {
        "fetch"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        Err("source offline".into())
    }
}

mod action_with_cache_access {
    //! "Creating Actions / Action with Cache Access", as written. The block
    //! shows no imports: `Result` is the prelude's, and `anyhow!` comes
    //! from the guide's previous block (`use anyhow::anyhow`, added here).
    use anyhow::anyhow;
    use dagger::prelude::*;
    use std::sync::Arc;

    /// The guide's `TransformConfig` (not shown): which transform to apply.
    pub(super) struct TransformConfig {
        pub(super) mode: TransformMode,
    }

    /// The guide's `TransformMode` (not shown).
    pub(super) enum TransformMode {
        Upper,
        #[allow(dead_code)] // the guide's arm, not run here
        Lower,
        Reverse,
    }

    // seed block
    struct TransformAction {
        config: TransformConfig,
    }

    #[async_trait]
    impl NodeAction for TransformAction {
        fn name(&self) -> &str {
            "transform_text"
        }

        async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
            // Read from inputs
            let text = ctx
                .inputs
                .get("text")
                .and_then(|v| v.as_str())
                .ok_or_else(|| anyhow!("Missing text input"))?;

            // Access cache for additional data (read-only)
            if let Some(previous_result) = ctx.cache.get("previous_run", "result")? {
                println!("Found previous result: {:?}", previous_result);
            }

            // Transform the data
            let result = match self.config.mode {
                TransformMode::Upper => text.to_uppercase(),
                TransformMode::Lower => text.to_lowercase(),
                TransformMode::Reverse => text.chars().rev().collect(),
            };

            // Return multiple outputs
            Ok(NodeOutput::success(json!({
                "transformed": result,
                "original_length": text.len(),
                "processed_at": chrono::Utc::now(),
            })))
        }
    }
    // end of seed block

    /// In a run, the action transforms its input with the configured mode
    /// and returns its three outputs; the cache it reads is the run's (a
    /// previous result is there). Called where the run's cache is not (a
    /// remote worker's attempt), the read is an error that fails the
    /// attempt, instead of a silent `None`; a missing input is the guide's
    /// error.
    #[tokio::test]
    async fn action_with_cache_access() -> Result<()> {
        let registry = ActionRegistry::new();
        registry.register(Arc::new(TransformAction {
            config: TransformConfig {
                mode: TransformMode::Upper,
            },
        }));
        let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
        executor.load_yaml_string(
            "name: t\nnodes:\n  - { id: shout, action: transform_text, inputs: [{ name: text, value: hello }] }\n",
        )?;
        let cache = Cache::new();
        insert_value(&cache, "previous_run", "result", "HI")?;
        let report = execute_dag(&mut executor, &cache, "t")
            .await?
            .into_result()?;
        assert_eq!(report.completed_nodes(), 1);
        assert_eq!(
            *get_value_from_cache(&cache, "shout", "transformed")?,
            json!("HELLO")
        );
        assert_eq!(
            *get_value_from_cache(&cache, "shout", "original_length")?,
            json!(5)
        );
        assert!(cache.get("shout", "processed_at").is_some());

        let reverse = TransformAction {
            config: TransformConfig {
                mode: TransformMode::Reverse,
            },
        };
        let inputs = json!({"text": "abc"});
        let mut ctx = NodeCtx::for_test("r", inputs.as_object().cloned().unwrap_or_default());
        let out = reverse.execute(&ctx).await?;
        assert_eq!(out.outputs["transformed"], json!("cba"));
        ctx.cache = CacheView::unavailable();
        let err = reverse
            .execute(&ctx)
            .await
            .err()
            .ok_or("expected an error")?;
        assert!(err.to_string().contains("not available"), "{err}");
        let missing = NodeCtx::for_test("m", Default::default());
        let err = reverse
            .execute(&missing)
            .await
            .err()
            .ok_or("expected an error")?;
        assert_eq!(err.to_string(), "Missing text input");
        Ok(())
    }
}

mod event_hook_for_dynamic_behavior {
    //! "Implementing Hooks / EventHook for Dynamic Behavior", as written:
    //! `outcome.outputs.as_ref()` is `ValueAsRef::as_ref` (prelude): the
    //! outputs unless they are `null`.
    use dagger::prelude::*;
    use std::sync::Arc;

    // seed block
    use async_trait::async_trait;
    use dagger::coord::{EventHook, ExecutionEvent, ExecutorCommand, HookContext, NodeSpec};

    struct PlannerHook {
        #[allow(dead_code)] // the guide's field, unused by its hook
        max_depth: usize,
    }

    #[async_trait]
    #[allow(clippy::collapsible_if, clippy::collapsible_match)] // the guide's nested `if`s
    impl EventHook for PlannerHook {
        async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
            match event {
                ExecutionEvent::NodeCompleted { node, outcome } => {
                    // Check if this was an analysis node
                    if node.node_id.starts_with("analyze_") {
                        // Read the outcome to decide next steps
                        if let Some(analysis) = outcome.outputs.as_ref() {
                            if analysis["needs_validation"] == true {
                                // Add validation node
                                return vec![ExecutorCommand::AddNode {
                                    dag_name: ctx.dag_name.clone(),
                                    spec: NodeSpec::new("validate")
                                        .with_id(format!("validate_{}", node.node_id))
                                        .with_deps(vec![node.node_id.clone()])
                                        .with_inputs(json!({
                                            "data": analysis["data"]
                                        })),
                                }];
                            }
                        }
                    }
                }
                ExecutionEvent::NodeFailed { node, error } => {
                    // Add recovery node for failures
                    return vec![ExecutorCommand::AddNode {
                        dag_name: ctx.dag_name.clone(),
                        spec: NodeSpec::new("recover")
                            .with_id(format!("recover_{}", node.node_id))
                            .with_deps(vec![node.node_id.clone()])
                            .with_inputs(json!({
                                "failed_node": node.node_id,
                                "error": error
                            })),
                    }];
                }
                _ => {}
            }
            vec![]
        }

        async fn on_start(&self, ctx: &HookContext) -> Vec<ExecutorCommand> {
            println!("Starting workflow: {}", ctx.dag_name);
            vec![]
        }

        async fn on_complete(&self, ctx: &HookContext, success: bool) -> Vec<ExecutorCommand> {
            println!("Workflow {} completed: {}", ctx.dag_name, success);
            vec![]
        }
    }
    // end of seed block

    /// An analysis that asks for validation gets a validation node with its
    /// data; one that does not, none; a node that returns nothing (`null`
    /// outputs) is not an analysis to read. A failed node gets a recovery
    /// node that is told which node failed and why. (The recovery node
    /// depends on the failed node, so it runs only because the workflow
    /// marks that node `onfailure: true`: dependents of a failed node are
    /// skipped otherwise, added ones too; see docs/seed-guide.md.)
    #[tokio::test]
    async fn event_hook_for_dynamic_behavior() -> Result<()> {
        let registry = ActionRegistry::new();
        registry.register(Arc::new(super::Fixed(
            "analyze",
            json!({"needs_validation": true, "data": [1, 2]}),
        )));
        registry.register(Arc::new(super::Fixed(
            "glance",
            json!({"needs_validation": false}),
        )));
        registry.register(Arc::new(super::Fixed("nothing", json!(null))));
        registry.register(Arc::new(super::Echo("validate")));
        registry.register(Arc::new(super::Echo("recover")));
        registry.register(Arc::new(super::Offline));
        let config = DagConfig {
            on_failure: OnFailure::Continue,
            ..DagConfig::default()
        };
        let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
        executor.load_yaml_string(
            "name: plan\nnodes:\n  - { id: analyze_sales, action: analyze }\n  - { id: analyze_costs, action: glance }\n  - { id: analyze_void, action: nothing }\n  - { id: fetch, action: fetch, onfailure: true }\n",
        )?;
        let hooks: Vec<Arc<dyn EventHook>> = vec![Arc::new(PlannerHook { max_depth: 3 })];
        let coordinator = Coordinator::new(hooks, 100, 100);
        let cache = Cache::new();
        let (_tx, rx) = tokio::sync::oneshot::channel();
        let report = coordinator
            .run_parallel(&mut executor, &cache, "plan", "run_1", rx)
            .await?;
        let mut added: Vec<&str> = report
            .nodes
            .iter()
            .filter(|n| n.added_at_runtime)
            .map(|n| n.id.as_str())
            .collect();
        added.sort_unstable();
        assert_eq!(added, ["recover_fetch", "validate_analyze_sales"]);
        assert_eq!(
            *get_value_from_cache(&cache, "validate_analyze_sales", "data")?,
            json!([1, 2])
        );
        let recover = report
            .get_node_state("recover_fetch")
            .ok_or("no recover_fetch")?;
        assert_eq!(recover.status, NodeStatus::Completed, "{report:?}");
        assert_eq!(
            *get_value_from_cache(&cache, "recover_fetch", "failed_node")?,
            json!("fetch")
        );
        assert!(
            get_value_from_cache(&cache, "recover_fetch", "error")?
                .as_str()
                .is_some_and(|e| e.contains("source offline"))
        );
        Ok(())
    }
}

mod monitoring_hook {
    //! "Implementing Hooks / Monitoring Hook", adapted by one change: a
    //! `_ => {}` arm. The guide's `match` names three events; ours has more
    //! (retries, skips, run start and end, ...) and keeps growing, so no
    //! three-arm match over it can be exhaustive (docs/seed-guide.md).
    use dagger::prelude::*;
    use std::sync::Arc;
    use tokio::sync::Mutex;

    /// The guide's `ExecutionMetrics` (not shown): what the hook counts.
    #[derive(Debug, Default)]
    pub(super) struct ExecutionMetrics {
        pub(super) nodes_started: usize,
        pub(super) nodes_completed: usize,
        pub(super) nodes_failed: usize,
    }

    // seed block (adapted: a `_ => {}` arm added)
    pub(super) struct MonitorHook {
        pub(super) metrics: Arc<Mutex<ExecutionMetrics>>,
    }

    #[async_trait]
    impl EventHook for MonitorHook {
        async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
            let mut metrics = self.metrics.lock().await;

            match event {
                ExecutionEvent::NodeStarted { node } => {
                    metrics.nodes_started += 1;
                    println!("⚡ Started: {}", node.node_id);
                }
                ExecutionEvent::NodeCompleted { node, .. } => {
                    metrics.nodes_completed += 1;
                    println!("✅ Completed: {}", node.node_id);
                }
                ExecutionEvent::NodeFailed { node, error } => {
                    metrics.nodes_failed += 1;
                    println!("❌ Failed: {} - {}", node.node_id, error);
                }
                _ => {}
            }

            vec![] // Monitor doesn't generate commands
        }
    }
    // end of seed block

    /// Two nodes complete and one fails after two attempts: the hook
    /// counts four attempts started, two nodes completed, one failed.
    #[tokio::test]
    async fn monitoring_hook() -> Result<()> {
        let registry = ActionRegistry::new();
        registry.register(Arc::new(super::Echo("step")));
        registry.register(Arc::new(super::Offline));
        let config = DagConfig {
            on_failure: OnFailure::Continue,
            ..DagConfig::default()
        };
        let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
        executor.load_yaml_string(
            "name: watched\nnodes:\n  - { id: a, action: step }\n  - { id: b, action: step, dependencies: [a] }\n  - { id: f, action: fetch, try_count: 2 }\n",
        )?;
        let metrics = Arc::new(Mutex::new(ExecutionMetrics::default()));
        let hook = MonitorHook {
            metrics: metrics.clone(),
        };
        let coordinator = Coordinator::new(vec![Arc::new(hook)], 100, 100);
        let (_tx, rx) = tokio::sync::oneshot::channel();
        let report = coordinator
            .run_parallel(&mut executor, &Cache::new(), "watched", "run_1", rx)
            .await?;
        assert_eq!(report.status, RunStatus::Failed, "{report:?}");
        let m = metrics.lock().await;
        assert_eq!(
            (m.nodes_started, m.nodes_completed, m.nodes_failed),
            (4, 2, 1),
            "{m:?}"
        );
        Ok(())
    }
}

/// "Working with Workflows / Listing and Filtering Workflows", adapted by
/// one change: no `?` after `list_dags()` and `list_dags_by_tags(..)`,
/// which cannot fail and return the names (docs/seed-guide.md).
/// `get_dag_metadata(..)?` fails for a workflow that is not loaded.
#[tokio::test]
async fn listing_and_filtering_workflows() -> Result<()> {
    let mut executor = DagExecutor::new(None, ActionRegistry::new(), Stores::memory()).await?;
    executor.load_yaml_file("workflows/pipeline.yaml")?;
    executor.load_yaml_file("workflow1.yaml")?;
    // seed block (adapted: no `?` after the two listing calls)
    // List all loaded workflows
    let all_dags = executor.list_dags();
    println!("Available workflows: {:?}", all_dags);

    // Filter workflows by tags
    let production_dags = executor.list_dags_by_tags(&["production"]);
    println!("Production workflows: {:?}", production_dags);

    // Get workflows with multiple tags (AND condition)
    let customer_etl = executor.list_dags_by_tags(&["customer_data", "etl"]);

    // Check if a workflow exists
    if executor.has_dag("data_processing_pipeline") {
        println!("Workflow exists!");
    }

    // Get workflow metadata
    let metadata = executor.get_dag_metadata("data_processing_pipeline")?;
    println!("Author: {}, Version: {}", metadata.author, metadata.version);
    // end of seed block
    assert_eq!(all_dags, ["data_processing_pipeline", "workflow1"]);
    assert_eq!(production_dags, ["data_processing_pipeline"]);
    assert_eq!(customer_etl, ["data_processing_pipeline"]);
    assert!(
        executor
            .list_dags_by_tags(&["production", "nightly"])
            .is_empty()
    );
    assert!(executor.has_dag("data_processing_pipeline") && !executor.has_dag("missing"));
    assert_eq!(
        (metadata.author.as_str(), metadata.version.as_str()),
        ("Engineering Team", "1.0.0")
    );
    assert!(matches!(
        executor.get_dag_metadata("missing"),
        Err(DagError::UnknownDag(_))
    ));
    Ok(())
}
