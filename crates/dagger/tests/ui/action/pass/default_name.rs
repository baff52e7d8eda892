use dagger::prelude::*;

// No `name`: the action is registered under the function's name.
#[action(description = "has no name")]
pub async fn transform_text(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let _ = ctx;
    Ok(NodeOutput::default())
}

#[action]
pub async fn bare(input: serde_json::Value) -> Result<serde_json::Value, BoxError> {
    Ok(input)
}

fn main() {
    assert_eq!(TransformText::NAME, "transform_text");
    assert_eq!(TransformText.name(), "transform_text");
    assert_eq!(Bare::NAME, "bare");
}
