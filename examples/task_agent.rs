//! Task Agent: a job whose research agent creates its own dependency at run
//! time, a calculator with input and output schemas, and the job's DOT graph
//! written to a file. Agents are plain functions annotated with `#[task_agent]`.
//!
//! Run: `cargo run -p dagger-examples --example task_agent`

use dagger::prelude::*;
use serde_json::{Value, json};
use std::time::Duration;

#[task_agent(
    name = "calculator",
    description = "Performs basic arithmetic",
    input_schema = r#"{"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "number"}, "b": {"type": "number"}, "op": {"type": "string"}}}"#,
    output_schema = r#"{"type": "object", "required": ["result"], "properties": {"result": {"type": "number"}}}"#
)]
async fn calculator(
    input: Value,
    _task_id: &str,
    _job_id: &str,
    _tm: &TaskManager,
) -> Result<Value, String> {
    let (a, b) = (
        input["a"].as_f64().unwrap_or(0.0),
        input["b"].as_f64().unwrap_or(0.0),
    );
    let result = match input["op"].as_str().unwrap_or("add") {
        "add" => a + b,
        "mul" => a * b,
        "div" if b != 0.0 => a / b,
        "div" => return Err("Division by zero".into()),
        other => return Err(format!("Unknown operation `{other}`")),
    };
    Ok(json!({ "result": result }))
}

/// The seed's research agent: on its first run it asks for more data by
/// adding a dependency to its own task; it runs again once the data is there.
#[task_agent(
    name = "research_agent",
    description = "Researches, asking for data when needed"
)]
async fn research_agent(
    input: Value,
    task_id: &str,
    job_id: &str,
    tm: &TaskManager,
) -> Result<Value, String> {
    let topic = input["topic"].as_str().unwrap_or("general").to_string();
    let task = tm.get_task_by_id(task_id).ok_or("task not found")?;
    if task.dependencies.is_empty() && topic.contains("advanced") {
        let spec = TaskSpec::new(job_id, "data_gatherer", format!("Gather data for {topic}"))
            .parent(task_id)
            .input(json!({ "query": format!("detailed {topic} information") }));
        let data_task = tm.add_task(spec).map_err(|e| e.to_string())?;
        tm.add_dependency(task_id, data_task.as_str())
            .map_err(|e| e.to_string())?;
        println!("research_agent: needs more data, created task {data_task} and waits for it");
        return Err("needs_more_info".into());
    }
    let data: Vec<String> = tm
        .get_dependency_outputs(task_id)
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|o| o["data"].as_str().map(str::to_string))
        .collect();
    println!(
        "research_agent: writing the report with {} gathered item(s)",
        data.len()
    );
    Ok(json!({ "report": format!("Report on {topic}: {}", data.join("; ")) }))
}

#[task_agent(
    name = "data_gatherer",
    description = "Looks data up (a deterministic stand-in)"
)]
async fn data_gatherer(
    input: Value,
    _task_id: &str,
    _job_id: &str,
    _tm: &TaskManager,
) -> Result<Value, String> {
    Ok(json!({ "data": format!("3 sources on {}", input["query"].as_str().unwrap_or("?")) }))
}

#[task_agent(name = "report_writer", description = "Formats the research report")]
async fn report_writer(
    _input: Value,
    task_id: &str,
    _job_id: &str,
    tm: &TaskManager,
) -> Result<Value, String> {
    let research = tm
        .get_dependency_outputs(task_id)
        .map_err(|e| e.to_string())?;
    Ok(
        json!({ "summary": format!("EXECUTIVE SUMMARY: {}", research[0]["report"].as_str().unwrap_or("")) }),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agents = TaskAgentRegistry::new();
    dagger::register_all_task_agents(&agents)?;
    let tm = TaskManager::in_memory(
        Duration::from_secs(30),
        StallAction::TerminateJob,
        Cache::new(),
        agents,
    );
    let job = "research_job_001";
    let research = TaskSpec::new(job, "research_agent", "Research advanced AI techniques")
        .id("research")
        .task_type(TaskType::Objective)
        .input(json!({ "topic": "advanced machine learning" }));
    let report = TaskSpec::new(job, "report_writer", "Write the final report")
        .id("report")
        .depends_on("research");
    let sum = TaskSpec::new(job, "calculator", "Budget")
        .id("budget")
        .input(json!({ "a": 1200, "b": 3, "op": "mul" }));
    let handle = tm.start_job(job, vec![research, report, sum], None, None)?;
    let status = handle.wait().await;
    println!("job {job}: {status:?}");
    let summary = tm
        .get_task_by_id("report")
        .and_then(|t| t.output)
        .ok_or("no report")?;
    println!("{}", summary["summary"]);
    let budget = tm
        .get_task_by_id("budget")
        .and_then(|t| t.output)
        .ok_or("no budget")?;
    println!("budget: {}", budget["result"]);
    let path = std::env::temp_dir().join("dagger_task_agent.dot");
    std::fs::write(&path, tm.get_dot_graph(Some(job))?)?;
    println!("DOT graph of the job written to {}", path.display());
    assert_eq!(status, JobStatus::Completed(true));
    Ok(())
}
