use dagger::prelude::*;

#[action(name = "a", input_schema = r#"{"type": "object",}"#)]
pub async fn a(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let _ = ctx;
    Ok(NodeOutput::default())
}

fn main() {}
