use dagger::prelude::*;

#[pubsub_agent(name = "a", subscribe = "news.*, , news.*", publish = "out put")]
pub async fn a(message: &Message) -> Result<(), String> {
    let _ = message;
    Ok(())
}

#[pubsub_agent(name = "b", subscribe = "x")]
pub async fn b(ctx: &PubSubContext, message: Message) -> Result<(), String> {
    let _ = (ctx, message);
    Ok(())
}

fn main() {}
