//! An agent workflow: a planner node's output grows the graph at run time,
//! and a critic can send the plan back for another round. `max_iterations`
//! stops a planner loop that never converges.
//!
//! The planner and critic are deterministic stand-ins for LLM calls.
//!
//! Run: `cargo run -p dagger-examples --example agent_flow`

use dagger::prelude::*;
use serde_json::json;
use std::sync::Arc;

const WORKFLOW: &str = r#"
name: research_agent
nodes:
  - id: plan_1
    action: plan
    inputs: [{ name: round, value: 1 }]
"#;

/// Stand-in for an LLM planner: proposes steps for a round.
#[action(name = "plan")]
async fn plan(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let round = ctx.inputs["round"].as_u64().unwrap_or(1);
    let steps = json!([{"action": "search", "query": format!("sources, round {round}")}, {"action": "summarize"}]);
    Ok(NodeOutput::success(json!({ "round": round, "steps": steps })).with_tokens(120))
}

#[action(name = "search")]
async fn search(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    Ok(
        NodeOutput::success(json!({ "found": format!("3 documents for {}", ctx.inputs["query"]) }))
            .with_tokens(40),
    )
}

#[action(name = "summarize")]
async fn summarize(_ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    Ok(NodeOutput::success(json!({ "summary": "a short summary" })).with_tokens(60))
}

/// Stand-in for an LLM critic: satisfied from round `satisfied_at` on.
#[action(name = "critic")]
async fn critic(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let round = ctx.inputs["round"].as_u64().unwrap_or(1);
    let satisfied_at = ctx.inputs["satisfied_at"].as_u64().unwrap_or(u64::MAX);
    Ok(NodeOutput::success(
        json!({ "round": round, "satisfied": round >= satisfied_at }),
    ))
}

/// Turns plans into nodes, and unsatisfied critiques into another planning round.
struct Planner {
    satisfied_at: u64,
}

#[async_trait]
impl EventHook for Planner {
    async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        let ExecutionEvent::NodeCompleted { node, outcome, .. } = event else {
            return vec![];
        };
        let out = &outcome.outputs;
        let round = out["round"].as_u64().unwrap_or(1);
        if node.action == "plan" {
            let mut specs = Vec::new();
            let mut prev = node.node_id.clone();
            for (i, step) in out["steps"].as_array().into_iter().flatten().enumerate() {
                let id = format!("r{round}_step{i}");
                let action = step["action"].as_str().unwrap_or("summarize");
                specs.push(
                    NodeSpec::new(action)
                        .with_id(&id)
                        .with_deps([prev.clone()])
                        .with_inputs(step.clone()),
                );
                prev = id;
            }
            let critique = json!({ "round": round, "satisfied_at": self.satisfied_at });
            specs.push(
                NodeSpec::new("critic")
                    .with_id(format!("r{round}_critic"))
                    .with_deps([prev])
                    .with_inputs(critique),
            );
            return vec![ExecutorCommand::AddNodes {
                dag_name: ctx.dag_name.clone(),
                specs,
            }];
        }
        if node.action == "critic" && out["satisfied"] == false {
            let next = round + 1;
            let spec = NodeSpec::new("plan")
                .with_id(format!("plan_{next}"))
                .with_deps([node.node_id.clone()])
                .with_inputs(json!({ "round": next }));
            return vec![ExecutorCommand::AddNode {
                dag_name: ctx.dag_name.clone(),
                spec,
            }];
        }
        vec![]
    }
}

async fn run(satisfied_at: u64) -> Result<DagExecutionReport, Box<dyn std::error::Error>> {
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry)?;
    let config = DagConfig {
        max_iterations: Some(12),
        max_tokens: Some(10_000),
        ..DagConfig::default()
    };
    let mut executor = DagExecutor::new(Some(config), registry, Stores::memory()).await?;
    executor.load_yaml_string(WORKFLOW)?;
    let coordinator = Coordinator::new(vec![Arc::new(Planner { satisfied_at })], 64, 64);
    let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    Ok(coordinator
        .run_parallel(
            &mut executor,
            &Cache::new(),
            "research_agent",
            &format!("agent-{satisfied_at}"),
            cancel_rx,
        )
        .await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let converging = run(2).await?;
    println!(
        "critic satisfied in round 2: {} after {} nodes, {} tokens",
        converging.status,
        converging.nodes.len(),
        converging.metrics.tokens
    );
    assert!(converging.succeeded());

    let runaway = run(u64::MAX).await?;
    println!(
        "critic never satisfied:      {} after {} node executions: {}",
        runaway.status,
        runaway.metrics.iterations,
        runaway.reason.as_deref().unwrap_or("")
    );
    assert_eq!(runaway.status, RunStatus::Failed);
    Ok(())
}
