//! Hooks: policy that watches every event and answers with commands. Here a
//! validation hook adds a `validate_<node>` node after every node whose output
//! asks for it, and a monitor hook counts events.
//!
//! Run: `cargo run -p dagger-examples --example coordinator_hooks`

use dagger::prelude::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const WORKFLOW: &str = r#"
name: analyze
nodes:
  - id: analyze_sales
    action: analyze
    inputs: [{ name: risky, value: true }]
  - id: analyze_costs
    action: analyze
    inputs: [{ name: risky, value: false }]
"#;

#[action(name = "analyze")]
async fn analyze(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let risky = ctx.inputs["risky"].as_bool().unwrap_or(false);
    Ok(NodeOutput::success(
        json!({ "needs_validation": risky, "score": 0.7 }),
    ))
}

#[action(name = "validate")]
async fn validate(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    Ok(NodeOutput::success(
        json!({ "validated": ctx.inputs["target"].clone() }),
    ))
}

/// Adds a validation node after any node that reports `needs_validation`.
struct ValidationHook;

#[async_trait]
impl EventHook for ValidationHook {
    async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        match event {
            ExecutionEvent::NodeCompleted { node, outcome, .. }
                if outcome.outputs["needs_validation"] == true =>
            {
                vec![ExecutorCommand::AddNode {
                    dag_name: ctx.dag_name.clone(),
                    spec: NodeSpec::new("validate")
                        .with_id(format!("validate_{}", node.node_id))
                        .with_deps([node.node_id.clone()])
                        .with_inputs(json!({ "target": node.node_id })),
                }]
            }
            _ => vec![],
        }
    }
}

/// Counts events, prints node progress.
struct MonitorHook(Arc<AtomicUsize>);

#[async_trait]
impl EventHook for MonitorHook {
    async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if let Some((node, status)) = event.node_status() {
            println!("  {:<24} {status}", node.node_id);
        }
        vec![]
    }

    async fn on_complete(&self, ctx: &HookContext, success: bool) -> Vec<ExecutorCommand> {
        println!("workflow {} finished, success: {success}", ctx.dag_name);
        vec![]
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Analyze));
    registry.register(Arc::new(Validate));
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_string(WORKFLOW)?;
    let events = Arc::new(AtomicUsize::new(0));
    let hooks: Vec<Arc<dyn EventHook>> = vec![
        Arc::new(ValidationHook),
        Arc::new(MonitorHook(events.clone())),
    ];
    let coordinator = Coordinator::new(hooks, 64, 64);
    let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    let report = coordinator
        .run_parallel(
            &mut executor,
            &Cache::new(),
            "analyze",
            "hooks-demo",
            cancel_rx,
        )
        .await?;
    let added: Vec<&str> = report
        .nodes
        .iter()
        .filter(|n| n.added_at_runtime)
        .map(|n| n.id.as_str())
        .collect();
    println!(
        "status {}; nodes added by the hook: {added:?}; events seen: {}",
        report.status,
        events.load(Ordering::SeqCst)
    );
    assert_eq!(added, ["validate_analyze_sales"]);
    Ok(())
}
