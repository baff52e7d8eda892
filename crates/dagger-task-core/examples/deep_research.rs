//! A multi-agent research job: a planner, several researchers, a writer.
//!
//! The planner splits the question into sub-topics, creates one researcher
//! task per sub-topic and a writer task that depends on all of them, then
//! makes its own task depend on the writer and waits
//! ([`TaskOutcome::WaitingForDependencies`]); when the writer is done the
//! planner runs again and returns the final answer. The researchers and the
//! writer are deterministic stand-ins where an LLM or a web search would be.
//!
//! Run with `cargo run -p dagger-task-core --example deep_research`.

use dagger_core::{BoxError, Cache};
use dagger_task_core::{
    FnAgent, JobConfig, StallAction, TaskAgentRegistry, TaskContext, TaskManager, TaskOutcome,
    TaskSpec, TaskType,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Stand-in for an LLM call that splits a question into sub-topics.
fn plan(question: &str) -> Vec<String> {
    ["history", "current techniques", "open problems"]
        .iter()
        .map(|aspect| format!("{question}: {aspect}"))
        .collect()
}

/// Stand-in for a search-and-summarise step: deterministic text.
fn research(subtopic: &str) -> Value {
    let words = subtopic.split_whitespace().count();
    json!({
        "subtopic": subtopic,
        "findings": format!("{words} key points about `{subtopic}`"),
        "sources": [format!("https://example.invalid/{}", subtopic.len())],
    })
}

async fn planner(input: Value, ctx: TaskContext) -> Result<TaskOutcome, BoxError> {
    let m = ctx.manager();
    let me = ctx.task_id().as_str();
    let task = m.get_task_by_id(me).ok_or("planner task vanished")?;
    if !task.dependencies.is_empty() {
        let report = m.get_dependency_outputs(me)?.remove(0);
        println!("planner: writer finished; returning the report");
        return Ok(TaskOutcome::Completed(report));
    }
    let question = input["question"].as_str().unwrap_or("unknown question");
    let job = ctx.job_id().clone();
    let subtopics = plan(question);
    println!(
        "planner: split `{question}` into {} sub-topics",
        subtopics.len()
    );
    let mut specs: Vec<TaskSpec> = subtopics
        .iter()
        .enumerate()
        .map(|(i, s)| {
            TaskSpec::new(job.clone(), "researcher", format!("Research {s}"))
                .id(format!("research-{i}"))
                .input(json!({ "subtopic": s }))
                .parent(me)
                .task_type(TaskType::Subtask)
        })
        .collect();
    let writer = TaskSpec::new(job.clone(), "writer", "Write the report")
        .id("writer")
        .dependencies((0..subtopics.len()).map(|i| format!("research-{i}")))
        .parent(me)
        .input(json!({ "question": question }));
    specs.push(writer);
    m.add_tasks(specs)?;
    m.add_dependency(me, "writer")?;
    Ok(TaskOutcome::WaitingForDependencies)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("(planner, researchers and writer use deterministic stand-ins for LLM calls)");
    let registry = TaskAgentRegistry::new();
    registry.register_agent(Arc::new(FnAgent::new("planner", planner)))?;
    registry.register_agent(Arc::new(FnAgent::new(
        "researcher",
        |input, ctx: TaskContext| async move {
            let subtopic = input["subtopic"].as_str().unwrap_or("");
            println!("researcher ({}): {subtopic}", ctx.task_id());
            Ok(research(subtopic).into())
        },
    )))?;
    registry.register_agent(Arc::new(FnAgent::new(
        "writer",
        |input, ctx: TaskContext| async move {
            let notes = ctx
                .manager()
                .get_dependency_outputs(ctx.task_id().as_str())?;
            let mut sections = BTreeMap::new();
            for n in &notes {
                sections.insert(
                    n["subtopic"].as_str().unwrap_or("").to_string(),
                    n["findings"].as_str().unwrap_or("").to_string(),
                );
            }
            println!("writer: composing {} sections", sections.len());
            Ok(json!({ "question": input["question"], "sections": sections }).into())
        },
    )))?;

    let manager = TaskManager::in_memory(
        Duration::from_secs(30),
        StallAction::TerminateJob,
        Cache::new(),
        registry,
    );
    let job = "deep_research";
    let config = JobConfig {
        agent_concurrency: [("researcher".to_string(), 2)].into(),
        ..JobConfig::default()
    };
    let handle = manager.start_job(
        job,
        vec![
            TaskSpec::new(job, "planner", "Answer the question")
                .id("planner")
                .task_type(TaskType::Objective)
                .input(json!({ "question": "How do Rust async runtimes schedule tasks" })),
        ],
        Some(vec!["planner".into(), "researcher".into(), "writer".into()]),
        Some(config),
    )?;
    let status = handle.wait().await;
    println!("job ended: {status:?}");
    let answer = manager
        .get_task_by_id("planner")
        .and_then(|t| t.output)
        .ok_or("no answer")?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    let path = std::env::temp_dir().join("dagger_deep_research.dot");
    std::fs::write(&path, manager.get_dot_graph(Some(job))?)?;
    println!("DOT graph written to {}", path.display());
    Ok(())
}
