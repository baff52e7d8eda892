use dagger::prelude::*;
use serde_json::json;

#[action(
    name = "greet",
    description = "Greets someone",
    input_schema = r#"{"type": "object", "properties": {"who": {"type": "string"}}}"#,
    output_schema = r#"{"type": "object"}"#
)]
pub async fn greet(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let who: String = ctx.input_as("who")?;
    Ok(NodeOutput::success(json!({ "greeting": format!("hello {who}") })))
}

#[derive(dagger::serde::Deserialize)]
#[serde(crate = "dagger::serde")]
pub struct Pair {
    pub a: i64,
    pub b: i64,
}

#[action(name = "sum")]
async fn sum(pair: Pair) -> Result<serde_json::Value, std::io::Error> {
    Ok(json!({ "sum": pair.a + pair.b }))
}

fn main() {
    let registry = ActionRegistry::new();
    registry.register(std::sync::Arc::new(Greet));
    registry.register(std::sync::Arc::new(Sum::new()));
    assert_eq!(dagger::register_all_actions(&ActionRegistry::new()).unwrap(), 2);
    assert_eq!((Greet::NAME, Sum::NAME), ("greet", "sum"));
}
