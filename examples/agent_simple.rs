//! The smallest agent-driven workflow: an agent node reads the user's question
//! and picks one tool; only the chosen tool's branch runs, the other is
//! Skipped with the reason. Asked twice, the agent routes each question to a
//! different tool.
//!
//! The agent is a deterministic stand-in for an LLM (it routes by keyword), so
//! the example needs no network and prints the same on every run.
//!
//! Run: `cargo run -p dagger-examples --example agent_simple`

use dagger::prelude::*;
use serde_json::json;

const WORKFLOW: &str = r#"
name: agent_simple
description: An agent routes a question to one of two tools.
nodes:
  - id: agent
    action: route_question
    inputs: [{ name: question, reference: inputs.question }]
  - id: calculator
    action: calculate
    dependencies: [agent]
    inputs: [{ name: numbers, reference: agent.tool_input }]
  - id: encyclopedia
    action: look_up
    dependencies: [agent]
    inputs: [{ name: topic, reference: agent.tool_input }]
"#;

/// Stand-in for an LLM: questions with numbers go to the calculator, the rest
/// to the encyclopedia. The choice is the output's selected branch.
#[action(name = "route_question")]
async fn route_question(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let question: String = ctx.input_as("question")?;
    let numbers: Vec<i64> = question
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (tool, tool_input) = if numbers.is_empty() {
        let topic = question.trim_end_matches('?').rsplit(' ').next();
        ("encyclopedia", json!(topic.unwrap_or_default()))
    } else {
        ("calculator", json!(numbers))
    };
    Ok(
        NodeOutput::success(json!({ "tool": tool, "tool_input": tool_input }))
            .select_branches([tool]),
    )
}

/// Adds the numbers.
#[action(name = "calculate")]
async fn calculate(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let numbers: Vec<i64> = ctx.input_as("numbers")?;
    Ok(NodeOutput::success(
        json!({ "answer": numbers.iter().sum::<i64>() }),
    ))
}

/// A one-entry encyclopedia.
#[action(name = "look_up")]
async fn look_up(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let topic: String = ctx.input_as("topic")?;
    Ok(NodeOutput::success(
        json!({ "answer": format!("{topic}: a directed acyclic graph has no cycles") }),
    ))
}

async fn ask(question: &str) -> Result<(), Box<dyn std::error::Error>> {
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry)?;
    let mut executor = DagExecutor::new(None, registry, Stores::memory()).await?;
    executor.load_yaml_string(WORKFLOW)?;
    let cache = Cache::new();
    insert_value(&cache, "inputs", "question", question)?;
    let report = execute_dag(&mut executor, &cache, "agent_simple").await?;
    assert!(report.succeeded(), "{report:?}");
    let tool = cache
        .get("agent", "tool")
        .ok_or("the agent chose no tool")?;
    let tool = tool.as_str().ok_or("tool is not a string")?;
    let answer = cache.get(tool, "answer").ok_or("the tool gave no answer")?;
    println!("Q: {question}\n   agent chose {tool}; answer: {answer}");
    for node in &report.nodes {
        let why = node.error.as_deref().unwrap_or("");
        println!("   {:<13} {:<10} {why}", node.id, node.status.to_string());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ask("What is 40 plus 2?").await?;
    ask("What is a DAG?").await?;
    Ok(())
}
