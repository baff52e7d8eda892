use dagger::prelude::*;

#[action(description = "has no name")]
pub async fn a(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let _ = ctx;
    Ok(NodeOutput::default())
}

fn main() {}
