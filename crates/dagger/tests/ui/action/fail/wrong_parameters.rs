use dagger::prelude::*;

#[action(name = "by_ref")]
pub async fn by_ref(input: &str) -> Result<NodeOutput, BoxError> {
    let _ = input;
    Ok(NodeOutput::default())
}

#[action(name = "two")]
pub async fn two(ctx: &NodeCtx, extra: u32) -> Result<NodeOutput, BoxError> {
    let _ = (ctx, extra);
    Ok(NodeOutput::default())
}

#[action(name = "no_return")]
pub async fn no_return(ctx: &NodeCtx) {
    let _ = ctx;
}

fn main() {}
