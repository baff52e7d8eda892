use dagger::prelude::*;
use serde_json::Value;

#[task_agent(name = "a")]
pub async fn a(input: Value, task_id: String, job_id: &str, manager: &Cache) -> Result<Value, String> {
    let _ = (task_id, job_id, manager);
    Ok(input)
}

#[task_agent(name = "b")]
pub async fn b(input: Value) -> Result<Value, String> {
    Ok(input)
}

fn main() {}
