use dagger::prelude::*;

#[action(name = 5, crate = "not a path")]
pub async fn a(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let _ = ctx;
    Ok(NodeOutput::default())
}

fn main() {}
