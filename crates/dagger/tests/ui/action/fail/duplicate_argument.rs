use dagger::prelude::*;

#[action(name = "a", description = "first", description = "second")]
pub async fn a(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let _ = ctx;
    Ok(NodeOutput::default())
}

fn main() {}
