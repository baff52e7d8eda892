use dagger::prelude::*;
use serde_json::Value;

#[task_agent(description = "nameless", input_schema = r#"{"type": "objekt"}"#)]
pub async fn a(input: Value, ctx: &TaskContext) -> Result<Value, String> {
    let _ = ctx;
    Ok(input)
}

fn main() {}
