// Annotated functions may live inside a block (a test, a doctest's `main`),
// with input types local to that block.
use dagger::prelude::*;

fn main() {
    #[derive(dagger::serde::Deserialize)]
    #[serde(crate = "dagger::serde")]
    struct Input {
        n: u32,
    }

    #[action(name = "local_typed")]
    async fn local_typed(input: Input) -> Result<u32, String> {
        Ok(input.n)
    }

    #[task_agent(name = "local_agent")]
    async fn local_agent(
        input: serde_json::Value,
        _ctx: &TaskContext,
    ) -> Result<serde_json::Value, String> {
        Ok(input)
    }

    #[pubsub_agent(name = "local_handler", subscribe = "a")]
    async fn local_handler(_ctx: &PubSubContext, _message: &Message) -> Result<(), String> {
        Ok(())
    }

    let registry = ActionRegistry::new();
    registry.register(std::sync::Arc::new(LocalTyped));
    let _ = (LocalAgent::NAME, LocalHandler::SUBSCRIBE);
}
