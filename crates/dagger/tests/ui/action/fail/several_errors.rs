// Every mistake is reported in one compile, and the function is still
// defined: `main` calling it raises no further error.
use dagger::prelude::*;

#[action(
    description = "one",
    description = "two",
    retries = "3",
    input_schema = "{not json"
)]
pub fn a(ctx: &NodeCtx, extra: u32) -> Result<NodeOutput, BoxError> {
    let _ = (ctx, extra);
    Ok(NodeOutput::default())
}

fn main() {
    let ctx = NodeCtx::for_test("n", Default::default());
    let _ = a(&ctx, 1);
}
