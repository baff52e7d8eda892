//! A Task Agent job with dynamic dependencies.
//!
//! A calculator agent with input and output schemas, and the seed's research
//! agent: on its first run it finds it needs more data, creates a
//! `data_gatherer` task, makes its own task depend on it and blocks; once the
//! data is gathered it runs again with the dependency outputs. A report
//! writer depends on the research. The DOT graph of the job is written to a
//! file in the temporary directory.
//!
//! Run with `cargo run -p dagger-task-core --example task_agent`.

use dagger_core::{BoxError, Cache, JsonSchema};
use dagger_task_core::{
    FnAgent, JobStatus, StallAction, TaskAgent, TaskAgentRegistry, TaskContext, TaskManager,
    TaskOutcome, TaskSpec, TaskStatus, TaskType,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The seed's calculator, as a struct implementing [`TaskAgent`] by hand
/// (what `#[task_agent]` generates from a function).
struct Calculator {
    input: JsonSchema,
    output: JsonSchema,
}

#[async_trait::async_trait]
impl TaskAgent for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }
    fn description(&self) -> &str {
        "Performs basic arithmetic"
    }
    fn input_schema(&self) -> Option<&JsonSchema> {
        Some(&self.input)
    }
    fn output_schema(&self) -> Option<&JsonSchema> {
        Some(&self.output)
    }
    async fn execute(&self, input: Value, _ctx: &TaskContext) -> Result<TaskOutcome, BoxError> {
        let a = input["a"].as_f64().unwrap_or(0.0);
        let b = input["b"].as_f64().unwrap_or(0.0);
        let result = match input["op"].as_str().unwrap_or("add") {
            "add" => a + b,
            "sub" => a - b,
            "mul" => a * b,
            "div" if b != 0.0 => a / b,
            "div" => return Err("Division by zero".into()),
            other => return Err(format!("Unknown operation `{other}`").into()),
        };
        Ok(json!({ "result": result }).into())
    }
}

/// The seed's research agent in its function form.
async fn research_agent(
    input: Value,
    task_id: &str,
    job_id: &str,
    task_manager: &TaskManager,
) -> Result<Value, String> {
    let topic = input["topic"].as_str().unwrap_or("general");
    let task = task_manager
        .get_task_by_id(task_id)
        .ok_or("Task not found")?;
    if !task.dependencies.is_empty() {
        let outputs = task_manager
            .get_dependency_outputs(task_id)
            .map_err(|e| format!("Failed to get dependency outputs: {e}"))?;
        let mut research = vec![format!("Initial research on {topic}")];
        for output in outputs {
            if let Some(data) = output.get("data") {
                research.push(data.as_str().unwrap_or("").to_string());
            }
        }
        let report = format!("Comprehensive report on {topic}: {}", research.join(", "));
        return Ok(json!({ "report": report }));
    }
    if topic.contains("advanced") {
        let data_task_id = task_manager
            .add_task_with_type(
                job_id.to_string(),
                format!("Gather additional data for {topic}"),
                "data_gatherer".to_string(),
                vec![],
                json!({ "query": format!("detailed {topic} information") }),
                Some(task_id.to_string()),
                None,
                TaskType::Task,
                None,
                0,
                None,
                0,
            )
            .map_err(|e| format!("Failed to create dependency: {e}"))?;
        task_manager
            .add_dependency(task_id, &data_task_id)
            .map_err(|e| format!("Failed to add dependency: {e}"))?;
        task_manager
            .update_task_status(task_id, TaskStatus::Blocked)
            .map_err(|e| format!("Failed to update status: {e}"))?;
        println!(
            "  research_agent: `{topic}` needs more data; created task {data_task_id} and blocked"
        );
        return Err("needs_more_info".to_string());
    }
    Ok(json!({ "report": format!("Basic report on {topic}") }))
}

fn registry() -> Result<TaskAgentRegistry, BoxError> {
    let registry = TaskAgentRegistry::new();
    let calculator = Calculator {
        input: JsonSchema::compile_str(
            r#"{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}, "op": {"type": "string"}}}"#,
            Some("calculator"),
        )?,
        output: JsonSchema::compile_str(
            r#"{"type": "object", "properties": {"result": {"type": "number"}}}"#,
            Some("calculator"),
        )?,
    };
    registry.register("calculator", Box::new(calculator))?;
    registry.register_agent(Arc::new(FnAgent::new(
        "research_agent",
        |input, ctx: TaskContext| async move {
            research_agent(
                input,
                ctx.task_id().as_str(),
                ctx.job_id().as_str(),
                ctx.manager(),
            )
            .await
            .map(TaskOutcome::Completed)
            .map_err(BoxError::from)
        },
    )))?;
    // Deterministic stand-in for a data source.
    registry.register_agent(Arc::new(FnAgent::new(
        "data_gatherer",
        |input, _ctx| async move {
            let query = input["query"].as_str().unwrap_or("").to_string();
            println!("  data_gatherer: answering `{query}`");
            Ok(json!({ "data": format!("three facts about {query}") }).into())
        },
    )))?;
    registry.register_agent(Arc::new(FnAgent::new(
        "report_writer",
        |_input, ctx: TaskContext| async move {
            let research = ctx
                .manager()
                .get_dependency_outputs(ctx.task_id().as_str())?;
            let body = research
                .iter()
                .filter_map(|r| r["report"].as_str())
                .collect::<Vec<_>>()
                .join("\n");
            Ok(json!({ "summary": format!("EXECUTIVE SUMMARY\n{body}") }).into())
        },
    )))?;
    Ok(registry)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let task_manager = TaskManager::in_memory(
        Duration::from_secs(30),
        StallAction::NotifyPlanningAgent,
        Cache::new(),
        registry()?,
    );
    let job_id = "research_job_001".to_string();

    let sum = task_manager.add_task(
        TaskSpec::new(job_id.clone(), "calculator", "Add two numbers")
            .input(json!({ "a": 40, "b": 2, "op": "add" })),
    )?;
    let research = task_manager.add_objective(
        job_id.clone(),
        "Research advanced AI techniques",
        "research_agent",
        json!({ "topic": "advanced machine learning" }),
    )?;
    let report = task_manager.add_task_with_type(
        job_id.clone(),
        "Write final report".to_string(),
        "report_writer".to_string(),
        vec![research.clone()],
        json!({ "format": "executive_summary" }),
        None,
        None,
        TaskType::Task,
        None,
        0,
        None,
        0,
    )?;

    let allowed = [
        "calculator",
        "research_agent",
        "data_gatherer",
        "report_writer",
    ];
    let handle = task_manager.start_job(
        job_id.clone(),
        vec![],
        Some(allowed.iter().map(|s| s.to_string()).collect()),
        None,
    )?;
    let status = handle.wait().await;
    println!("job {job_id} ended: {status:?}");
    if status != JobStatus::Completed(true) {
        return Err(format!("job ended {status:?}").into());
    }

    let show = |id: &str| -> Result<(), BoxError> {
        let t = task_manager.get_task_by_id(id).ok_or("task missing")?;
        println!(
            "- {} [{}] {} after {} attempt(s): {}",
            t.agent,
            t.status,
            t.description,
            t.attempts,
            t.output.unwrap_or(Value::Null)
        );
        Ok(())
    };
    show(sum.as_str())?;
    show(&research)?;
    for child in task_manager.get_child_tasks(&research)? {
        show(child.task_id.as_str())?;
    }
    show(&report)?;

    let dot = task_manager.get_dot_graph(Some(&job_id))?;
    let path = std::env::temp_dir().join("dagger_task_agent.dot");
    std::fs::write(&path, dot)?;
    println!("DOT graph written to {}", path.display());
    Ok(())
}
