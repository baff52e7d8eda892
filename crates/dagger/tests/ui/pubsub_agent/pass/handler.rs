use dagger::prelude::*;
use serde_json::json;

#[pubsub_agent(
    name = "enricher",
    description = "Enriches news",
    subscribe = "news.*, alerts.>",
    publish = "news_enriched",
    input_schema = r#"{"type": "object"}"#,
    output_schema = r#"{"type": "object"}"#
)]
pub async fn enricher(ctx: &PubSubContext, message: &Message) -> Result<(), PubSubError> {
    ctx.publish("news_enriched", json!({ "from": message.channel })).await?;
    Ok(())
}

fn main() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    ex.register_agent(std::sync::Arc::new(Enricher)).unwrap();
    assert_eq!(Enricher::SUBSCRIBE, ["news.*", "alerts.>"]);
}
