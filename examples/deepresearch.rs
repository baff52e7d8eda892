//! Deep research with agents: a planner splits a question into subtopics and
//! creates one researcher task per subtopic plus a writer that depends on all
//! of them, then waits for the writer; researchers run two at a time.
//! The planner, researchers and writer are deterministic stand-ins for LLM calls.
//!
//! Run: `cargo run -p dagger-examples --example deepresearch`

use dagger::prelude::*;
use serde_json::{Value, json};
use std::time::Duration;

const SUBTOPICS: [&str; 3] = ["work stealing", "wakers and polling", "timers"];

#[task_agent(
    name = "planner",
    description = "Plans the research, then returns the writer's answer"
)]
async fn planner(
    input: Value,
    task_id: &str,
    job_id: &str,
    tm: &TaskManager,
) -> Result<Value, String> {
    let task = tm.get_task_by_id(task_id).ok_or("task not found")?;
    if !task.dependencies.is_empty() {
        let answer = tm
            .get_dependency_outputs(task_id)
            .map_err(|e| e.to_string())?;
        return Ok(answer.into_iter().next().unwrap_or(Value::Null));
    }
    let mut researchers = Vec::new();
    for subtopic in SUBTOPICS {
        let spec = TaskSpec::new(job_id, "researcher", format!("Research {subtopic}"))
            .parent(task_id)
            .task_type(TaskType::Subtask)
            .input(json!({ "subtopic": subtopic }));
        researchers.push(tm.add_task(spec).map_err(|e| e.to_string())?);
    }
    let writer = TaskSpec::new(job_id, "writer", "Write the answer")
        .parent(task_id)
        .dependencies(researchers.clone())
        .input(json!({ "question": input["question"] }));
    let writer = tm.add_task(writer).map_err(|e| e.to_string())?;
    tm.add_dependency(task_id, writer.as_str())
        .map_err(|e| e.to_string())?;
    println!(
        "planner: {} research tasks and a writer created; waiting",
        researchers.len()
    );
    Err("waiting for the writer".into())
}

#[task_agent(name = "researcher", description = "Finds facts about one subtopic")]
async fn researcher(
    input: Value,
    task_id: &str,
    _job_id: &str,
    _tm: &TaskManager,
) -> Result<Value, String> {
    let subtopic = input["subtopic"].as_str().unwrap_or_default();
    println!("researcher {task_id}: {subtopic}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(json!({ "subtopic": subtopic, "findings": format!("{subtopic}: 2 papers, 1 talk") }))
}

#[task_agent(
    name = "writer",
    description = "Composes the answer from the research notes"
)]
async fn writer(
    input: Value,
    task_id: &str,
    _job_id: &str,
    tm: &TaskManager,
) -> Result<Value, String> {
    let notes = tm
        .get_dependency_outputs(task_id)
        .map_err(|e| e.to_string())?;
    let sections: Vec<&str> = notes
        .iter()
        .filter_map(|n| n["findings"].as_str())
        .collect();
    println!("writer: composing {} sections", sections.len());
    Ok(json!({ "question": input["question"], "sections": sections }))
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
    let job = "deep_research";
    let config = JobConfig {
        agent_concurrency: [("researcher".to_string(), 2)].into(),
        ..JobConfig::default()
    };
    let objective = TaskSpec::new(job, "planner", "Answer the question")
        .id("objective")
        .task_type(TaskType::Objective)
        .input(json!({ "question": "How do Rust async runtimes schedule tasks?" }));
    let allowed = Some(vec!["planner".into(), "researcher".into(), "writer".into()]);
    let status = tm
        .start_job(job, vec![objective], allowed, Some(config))?
        .wait()
        .await;
    println!("job ended: {status:?}");
    let answer = tm
        .get_task_by_id("objective")
        .and_then(|t| t.output)
        .ok_or("no answer")?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    let path = std::env::temp_dir().join("dagger_deep_research.dot");
    std::fs::write(&path, tm.get_dot_graph(Some(job))?)?;
    println!("DOT graph written to {}", path.display());
    assert_eq!(status, JobStatus::Completed(true));
    Ok(())
}
