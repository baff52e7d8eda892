// `use dagger::*` (as older Dagger examples do) brings the macros into scope.
use dagger::*;

#[action(name = "noop")]
async fn noop() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = Noop::NAME;
}
