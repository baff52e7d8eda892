//! Behaviour of the code `#[task_agent]` generates, run under a real
//! `TaskManager` (in-memory store).

use dagger::prelude::*;
use dagger::task_core::Task;
use dagger::task_core::TaskError;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

// The seed's function form, unchanged in shape.
#[task_agent(
    name = "calculator",
    description = "Performs basic arithmetic",
    input_schema = r#"{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}, "op": {"type": "string"}}}"#,
    output_schema = r#"{"type": "object", "required": ["result"], "properties": {"result": {"type": "number"}}}"#
)]
async fn calculator(
    input: serde_json::Value,
    _task_id: &str,
    _job_id: &str,
    _task_manager: &TaskManager,
) -> Result<serde_json::Value, String> {
    let a = input["a"].as_f64().unwrap_or(0.0);
    let b = input["b"].as_f64().unwrap_or(0.0);
    let result = match input["op"].as_str().unwrap_or("add") {
        "add" => a + b,
        "mul" => a * b,
        "div" if b == 0.0 => return Err("Division by zero".to_string()),
        "div" => a / b,
        // Breaks the output schema on purpose.
        "text" => return Ok(json!({ "result": "forty-two" })),
        other => return Err(format!("Unknown operation `{other}`")),
    };
    Ok(json!({ "result": result }))
}

// The seed's research agent: asks for more data through a dependency, then
// writes its report from the dependency's output.
#[task_agent(
    name = "research_agent",
    description = "Researches, asking for data when needed"
)]
async fn research_agent(
    input: Value,
    task_id: &str,
    job_id: &str,
    task_manager: &TaskManager,
) -> Result<Value, String> {
    let topic = input["topic"].as_str().unwrap_or("general").to_string();
    let task = task_manager
        .get_task_by_id(task_id)
        .ok_or("Task not found")?;
    if !task.dependencies.is_empty() {
        let outputs = task_manager
            .get_dependency_outputs(task_id)
            .map_err(|e| format!("Failed to get dependency outputs: {e}"))?;
        let data: Vec<&str> = outputs.iter().filter_map(|o| o["data"].as_str()).collect();
        return Ok(json!({ "report": format!("Report on {topic}: {}", data.join(", ")) }));
    }
    let gather = task_manager
        .add_task(
            TaskSpec::new(job_id, "data_gatherer", format!("Gather data for {topic}"))
                .input(json!({ "query": topic }))
                .parent(task_id),
        )
        .map_err(|e| format!("Failed to create dependency: {e}"))?;
    task_manager
        .add_dependency(task_id, gather.as_str())
        .map_err(|e| format!("Failed to add dependency: {e}"))?;
    // The seed signals "waiting" with an error; the manager sees the new
    // dependency and treats the task as waiting, not failed.
    Err("needs_more_info".to_string())
}

/// The seed's stateful agent, on an `impl` block.
struct DataGatherer {
    calls: AtomicUsize,
}

#[task_agent(
    name = "data_gatherer",
    description = "Gathers data, counting its calls",
    input_schema = r#"{"type": "object", "required": ["query"]}"#
)]
impl DataGatherer {
    async fn execute(&self, input: Value, task_id: &str, _job_id: &str) -> Result<Value, String> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let query = input["query"].as_str().ok_or("query must be a string")?;
        Ok(json!({ "data": format!("{query} facts #{n}"), "task": task_id }))
    }
}

// The context form.
#[task_agent(name = "attempt_reporter")]
async fn attempt_reporter(input: Value, ctx: &TaskContext) -> Result<TaskOutcome, BoxError> {
    Ok(TaskOutcome::Completed(json!({
        "attempt": ctx.attempt(),
        "echo": input,
        "job": ctx.job_id().as_str(),
    })))
}

fn manager() -> TaskManager {
    let registry = TaskAgentRegistry::new();
    dagger::register_all_task_agents(&registry).expect("annotated agents register");
    registry
        .register_agent(Arc::new(DataGatherer {
            calls: AtomicUsize::new(0),
        }))
        .expect("stateful agent registers");
    TaskManager::in_memory(
        Duration::from_secs(30),
        StallAction::TerminateJob,
        Cache::new(),
        registry,
    )
}

async fn run_one(m: &TaskManager, job: &str, agent: &str, input: Value) -> (JobStatus, Task) {
    let spec = TaskSpec::new(job, agent, "test task").input(input);
    let handle = m
        .start_job(job, vec![spec], None, None)
        .expect("job starts");
    let status = tokio::time::timeout(Duration::from_secs(20), handle.wait())
        .await
        .expect("job ends");
    let mut tasks = m.get_job_tasks(job).expect("tasks");
    (status, tasks.remove(0))
}

#[tokio::test]
async fn function_form_completes_tasks() {
    let m = manager();
    let (status, task) =
        run_one(&m, "j1", "calculator", json!({"a": 6, "b": 7, "op": "mul"})).await;
    assert_eq!(status, JobStatus::Completed(true));
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.output, Some(json!({ "result": 42.0 })));
}

#[tokio::test]
async fn agent_errors_fail_the_task_with_their_message() {
    let m = manager();
    let (status, task) =
        run_one(&m, "j2", "calculator", json!({"a": 1, "b": 0, "op": "div"})).await;
    assert_eq!(status, JobStatus::Completed(false));
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.error.as_deref(), Some("Division by zero"));
}

#[tokio::test]
async fn schemas_reject_bad_input_and_output() {
    let m = manager();
    let (_, task) = run_one(&m, "j3", "calculator", json!({"a": "six", "b": 7})).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(
        task.error.as_deref(),
        Some(
            format!(
                "task `{}`: input of agent `calculator` violates its schema: \
             schema violation at `/a` (keyword `type`): \"six\" is not of type \"number\"",
                task.task_id
            )
            .as_str()
        )
    );
    let (_, task) = run_one(&m, "j4", "calculator", json!({"op": "text"})).await;
    assert_eq!(task.status, TaskStatus::Failed);
    let prefix = format!(
        "task `{}`: output of agent `calculator` violates its schema: schema violation at `/result` (keyword `type`)",
        task.task_id
    );
    let error = task.error.unwrap_or_default();
    assert!(error.starts_with(&prefix), "{error}");
    // The impl form's schema is enforced the same way.
    let (_, task) = run_one(&m, "j5", "data_gatherer", json!({"q": "x"})).await;
    assert_eq!(task.status, TaskStatus::Failed);
    let prefix = format!(
        "task `{}`: input of agent `data_gatherer` violates its schema: schema violation at `` (keyword `required`)",
        task.task_id
    );
    let error = task.error.unwrap_or_default();
    assert!(error.starts_with(&prefix), "{error}");
}

#[tokio::test]
async fn dynamic_dependencies_rerun_the_agent_with_their_outputs() {
    let m = manager();
    let (status, task) = run_one(&m, "j6", "research_agent", json!({"topic": "advanced ML"})).await;
    assert_eq!(status, JobStatus::Completed(true));
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(
        task.output,
        Some(json!({ "report": "Report on advanced ML: advanced ML facts #1" }))
    );
    assert_eq!(task.dependencies.len(), 1);
}

#[tokio::test]
async fn context_form_sees_the_task_context() {
    let m = manager();
    let (_, task) = run_one(&m, "j7", "attempt_reporter", json!([1, 2])).await;
    assert_eq!(
        task.output,
        Some(json!({ "attempt": 1, "echo": [1, 2], "job": "j7" }))
    );
}

#[test]
fn generated_items_describe_the_agent() {
    let agent = Arc::new(Calculator);
    assert_eq!(
        (agent.name(), Calculator::NAME),
        ("calculator", "calculator")
    );
    assert_eq!(agent.description(), "Performs basic arithmetic");
    let schema = agent.input_schema().expect("input schema");
    assert_eq!(
        schema
            .validate(&json!({"a": "x"}))
            .unwrap_err()
            .instance_path,
        "/a"
    );
    assert!(ResearchAgent::new().input_schema().is_none());
    let stateful = DataGatherer {
        calls: AtomicUsize::new(0),
    };
    assert_eq!(TaskAgent::name(&stateful), "data_gatherer");
    assert!(TaskAgent::input_schema(&stateful).is_some());
}

#[test]
fn register_all_refuses_names_already_taken() {
    let registry = TaskAgentRegistry::new();
    assert_eq!(dagger::register_all_task_agents(&registry).unwrap(), 3);
    assert_eq!(
        registry.names(),
        ["attempt_reporter", "calculator", "research_agent"]
    );
    let err = dagger::register_all_task_agents(&registry).unwrap_err();
    assert!(
        matches!(&err, TaskError::DuplicateAgent(name) if name == "attempt_reporter"),
        "{err:?}"
    );
}
