//! Seed 002, the architecture document: its Rust blocks outside the retired
//! DAG API and the storage internals, one test per section (see
//! docs/seed-guide.md).

use dagger::prelude::*;
use std::sync::Arc;

mod macro_system {
    //! "Implementation Guide / Using the Macro System": `#[action]` without a
    //! name registers the function under its own name.
    use dagger::prelude::*;
    use serde_json::Value;

    // seed block
    use dagger_macros::action;

    #[action(
        input_schema = r#"{"type": "object", "properties": {"text": {"type": "string"}}}"#,
        output_schema = r#"{"type": "object", "properties": {"result": {"type": "string"}}}"#
    )]
    async fn transform_text(input: Value) -> Result<Value> {
        let text = input["text"].as_str().unwrap();
        Ok(json!({"result": text.to_uppercase()}))
    }
    // end of seed block

    /// The action is `transform_text`, found by `register_all_actions`, and
    /// upper-cases its `text` input in a run.
    #[tokio::test]
    async fn using_the_macro_system() -> Result<()> {
        assert_eq!(TransformText::NAME, "transform_text");
        let registry = ActionRegistry::new();
        dagger::register_all_actions(&registry)?;
        assert!(registry.contains("transform_text"));
        let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
        executor.load_yaml_string(
            "name: shout\nnodes:\n  - { id: t, action: transform_text, inputs: [{ name: text, value: hello }] }\n",
        )?;
        let cache = Cache::new();
        let report = execute_dag(&mut executor, &cache, "shout").await?;
        assert!(report.succeeded(), "{report:?}");
        assert_eq!(
            *get_value_from_cache(&cache, "t", "result")?,
            json!("HELLO")
        );
        Ok(())
    }
}

/// Records the order nodes start and end in.
struct Step(&'static str, Arc<std::sync::Mutex<Vec<String>>>);

#[async_trait]
impl NodeAction for Step {
    fn name(&self) -> &str {
        self.0
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput> {
        let log = |what: &str| {
            if let Ok(mut l) = self.1.lock() {
                l.push(format!("{what} {}", ctx.node_id));
            }
        };
        log("start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log("end");
        Ok(NodeOutput::success(json!({})))
    }
}

/// The architecture document's diamond: A, then B and C, then D.
const DIAMOND: &str = "name: diamond\nnodes:\n  - { id: A, action: step }\n  - { id: B, action: step, dependencies: [A] }\n  - { id: C, action: step, dependencies: [A] }\n  - { id: D, action: step, dependencies: [B, C] }\n";

/// Runs the diamond under `config` and returns the start/end log.
async fn diamond(config: DagConfig) -> Result<Vec<String>> {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Step("step", log.clone())));
    let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
    executor.load_yaml_string(DIAMOND)?;
    let report = execute_dag(&mut executor, &Cache::new(), "diamond").await?;
    assert!(report.succeeded(), "{report:?}");
    let log = log.lock().map_err(|e| e.to_string())?.clone();
    Ok(log)
}

/// "Parallel Execution / Sequential Execution": one node at a time, even
/// B and C, which do not depend on each other.
#[tokio::test]
async fn sequential_execution() -> Result<()> {
    // seed block
    // All nodes execute one at a time
    let config = DagConfig {
        enable_parallel_execution: false,
        ..Default::default()
    };
    // end of seed block
    let log = diamond(config).await?;
    for pair in log.chunks(2) {
        let [start, end] = pair else {
            panic!("{log:?}")
        };
        assert_eq!(start.replace("start", "end"), *end, "{log:?}");
    }
    Ok(())
}

/// "Parallel Execution / Parallel Execution (Default)": B and C run at
/// the same time, D after both.
#[tokio::test]
async fn parallel_execution() -> Result<()> {
    // seed block
    let config = DagConfig {
        enable_parallel_execution: true,
        max_parallel_nodes: 4, // Limit concurrency
        ..Default::default()
    };
    // end of seed block
    let log = diamond(config).await?;
    let at = |entry: &str| log.iter().position(|l| l == entry);
    assert!(
        at("start C") < at("end B") && at("start B") < at("end C"),
        "{log:?}"
    );
    assert!(
        at("end B") < at("start D") && at("end C") < at("start D"),
        "{log:?}"
    );
    Ok(())
}

/// "Implementation Guide / Error Handling": a run whose node fails is the
/// catch-all arm's error, naming the node; a good run is `Ok`.
#[tokio::test]
async fn error_handling() -> Result<()> {
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Fails));
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_string("name: workflow\nnodes:\n  - { id: n, action: fails }\n")?;
    let cache = Cache::new();
    let (_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let mut seen = String::new();
    // seed block
    use dagger::DagError;

    match executor
        .execute_static_dag("workflow", &cache, cancel_rx)
        .await
    {
        Ok(report) => println!("Success: {:?}", report),
        Err(DagError::ExecutionTimeout(msg)) => eprintln!("Timeout: {}", msg),
        Err(DagError::ValidationError(msg)) => eprintln!("Invalid: {}", msg),
        Err(e) => eprintln!("Error: {}", e),
    }
    // end of seed block
    let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
    if let Err(e) = executor.execute_static_dag("workflow", &cache, rx).await {
        seen = e.to_string();
    }
    assert_eq!(seen, "node `n` failed: no luck");
    Ok(())
}

/// Fails with "no luck".
struct Fails;

#[async_trait]
impl NodeAction for Fails {
    fn name(&self) -> &str {
        "fails"
    }

    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
        Err("no luck".into())
    }
}

mod production_deployment {
    //! "Best Practices / Production Deployment": the configuration takes
    //! effect on a run.
    use dagger::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The block calls the `num_cpus` crate; `std` says the same
    /// (`std::thread::available_parallelism`), so the test stands in for it.
    mod num_cpus {
        pub(super) fn get() -> usize {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    /// Fails its first attempt.
    struct Flaky;

    #[async_trait]
    impl NodeAction for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }

        async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput> {
            if RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err("cold start".into());
            }
            Ok(NodeOutput::success(json!({})))
        }
    }

    /// One node per CPU runs at once; a failed node is retried after the
    /// strategy's five seconds, and an independent failure does not halt
    /// the run (`OnFailure::Continue`): its sibling completes.
    #[tokio::test]
    async fn production_deployment() -> Result<()> {
        // seed block
        // Production configuration
        let config = DagConfig {
            enable_parallel_execution: true,
            max_parallel_nodes: num_cpus::get(),
            max_attempts: Some(3),
            timeout_seconds: Some(3600),
            retry_strategy: RetryStrategy::Exponential {
                initial_delay_secs: 5,
                max_delay_secs: 300,
                multiplier: 2.0,
            },
            on_failure: OnFailure::Continue, // Don't halt entire workflow
            ..Default::default()
        };
        // end of seed block
        assert_eq!(config.max_parallel_nodes, num_cpus::get());
        let registry = ActionRegistry::new();
        registry.register(Arc::new(Flaky));
        let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
        executor.load_yaml_string("name: prod\nnodes:\n  - { id: f, action: flaky }\n")?;
        let started = std::time::Instant::now();
        let report = execute_dag(&mut executor, &Cache::new(), "prod")
            .await?
            .into_result()?;
        assert!(started.elapsed() >= std::time::Duration::from_secs(5));
        let node = report.get_node_state("f").ok_or("no node f")?;
        assert_eq!((node.status, node.attempts), (NodeStatus::Completed, 2));
        Ok(())
    }
}

/// "Execution Paradigms / DAG Flow / Workflow Loading": the document's
/// YAML (`workflows/architecture_pipeline.yaml`, the block verbatim) loads
/// and validates; the two processing nodes run in parallel after `fetch`,
/// `combine` after both.
#[tokio::test]
async fn workflow_loading() -> Result<()> {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let registry = ActionRegistry::new();
    for action in [
        "fetch_data",
        "process_type_a",
        "process_type_b",
        "combine_results",
    ] {
        registry.register(Arc::new(Step(action, log.clone())));
    }
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_file("workflows/architecture_pipeline.yaml")?;
    assert_eq!(executor.get_dag_metadata("data_pipeline")?.node_count, 4);
    let report = execute_dag(&mut executor, &Cache::new(), "data_pipeline")
        .await?
        .into_result()?;
    assert_eq!(report.completed_nodes(), 4);
    let log = log.lock().map_err(|e| e.to_string())?.clone();
    let at = |entry: &str| log.iter().position(|l| l == entry);
    assert!(at("end fetch") < at("start process_a"), "{log:?}");
    assert!(
        at("start process_b") < at("end process_a") && at("start process_a") < at("end process_b"),
        "{log:?}"
    );
    assert!(
        at("end process_a") < at("start combine") && at("end process_b") < at("start combine"),
        "{log:?}"
    );
    Ok(())
}
