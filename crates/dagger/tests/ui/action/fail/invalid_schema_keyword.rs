use dagger::prelude::*;

#[action(
    name = "a",
    input_schema = r#"{"type": "object"}"#,
    output_schema = r#"{"type": "object", "properties": {"n": {"type": 5}}}"#
)]
pub async fn a(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let _ = ctx;
    Ok(NodeOutput::default())
}

fn main() {}
