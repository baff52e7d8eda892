use dagger::prelude::*;

#[action(name = "on_a_struct")]
pub struct NotAFunction;

// A syntax error in the body is reported by the compiler alone, at the
// mistake, not as a misplaced attribute.
#[action(name = "broken")]
pub async fn broken(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let x = ;
    Ok(NodeOutput::default())
}

fn main() {}
