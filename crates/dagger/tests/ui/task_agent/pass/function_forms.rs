use dagger::prelude::*;
use serde_json::{Value, json};

#[task_agent(
    name = "calculator",
    description = "Performs basic arithmetic",
    input_schema = r#"{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}"#,
    output_schema = r#"{"type": "object", "properties": {"result": {"type": "number"}}}"#
)]
async fn calculator(
    input: serde_json::Value,
    task_id: &str,
    job_id: &str,
    task_manager: &TaskManager,
) -> Result<serde_json::Value, String> {
    let _ = (task_id, job_id, task_manager);
    let a = input["a"].as_f64().unwrap_or(0.0);
    let b = input["b"].as_f64().unwrap_or(0.0);
    Ok(json!({ "result": a + b }))
}

#[task_agent(name = "with_context")]
pub async fn with_context(input: Value, ctx: &TaskContext) -> Result<TaskOutcome, BoxError> {
    let _ = (input, ctx.attempt());
    Ok(TaskOutcome::WaitingForDependencies)
}

fn main() {
    let registry = TaskAgentRegistry::new();
    registry.register("calculator", Box::new(Calculator::new())).unwrap();
    registry.register_agent(std::sync::Arc::new(WithContext)).unwrap();
    assert_eq!(dagger::register_all_task_agents(&TaskAgentRegistry::new()).unwrap(), 2);
}
