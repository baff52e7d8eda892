//! Behaviour of the code `#[pubsub_agent]` generates, run on a real
//! `PubSubExecutor`.

use dagger::prelude::*;
use dagger::pubsub::DeadLetterReason;
use serde_json::json;

#[pubsub_agent(
    name = "enricher",
    description = "Counts the words of each headline",
    subscribe = "news.*",
    publish = "news_enriched",
    input_schema = r#"{"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}"#,
    output_schema = r#"{"type": "object", "required": ["title", "words"]}"#
)]
async fn enricher(ctx: &PubSubContext, message: &Message) -> Result<(), PubSubError> {
    let title = message.payload["title"].as_str().unwrap_or_default();
    let words = title.split_whitespace().count();
    ctx.publish("news_enriched", json!({ "title": title, "words": words }))
        .await?;
    Ok(())
}

#[pubsub_agent(name = "sink", subscribe = "news_enriched")]
async fn sink(ctx: &PubSubContext, message: &Message) -> Result<(), String> {
    let title = message.payload["title"].as_str().ok_or("no title")?;
    if title.contains("fail") {
        return Err(format!("refusing `{title}`"));
    }
    ctx.cache().insert("sink", title, message.payload.clone());
    Ok(())
}

async fn run(items: &[serde_json::Value]) -> PubSubExecutor {
    let ex = PubSubExecutor::new(PubSubConfig::default()).expect("executor");
    let registered = dagger::register_all_pubsub_agents(&ex).expect("agents register");
    assert_eq!(registered, 2);
    for item in items {
        ex.publish("news.tech", item.clone())
            .await
            .expect("publish");
    }
    assert_eq!(
        ex.run(CancellationToken::new()).await.expect("run"),
        RunOutcome::Quiescent
    );
    ex
}

#[tokio::test]
async fn handlers_receive_messages_and_publish() {
    let ex = run(&[json!({ "title": "Rust 2024 ships" })]).await;
    assert_eq!(
        ex.cache().namespace("sink").map(serde_json::Value::Object),
        Some(json!({ "Rust 2024 ships": { "title": "Rust 2024 ships", "words": 3 } }))
    );
    assert!(ex.dead_letters().is_empty());
}

#[tokio::test]
async fn input_schema_violations_are_dead_lettered() {
    let ex = run(&[json!({ "headline": "no title here" })]).await;
    let dead = ex.dead_letters();
    assert_eq!(dead.len(), 1);
    match &dead[0].reason {
        DeadLetterReason::InputSchema { agent, violation } => {
            assert_eq!(agent, "enricher");
            assert_eq!(violation.keyword, "required");
        }
        other => panic!("unexpected reason {other:?}"),
    }
    assert!(ex.cache().namespace("sink").is_none());
}

#[tokio::test]
async fn handler_errors_are_dead_lettered_with_the_message() {
    let ex = run(&[json!({ "title": "please fail" })]).await;
    let dead = ex.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].reason,
        DeadLetterReason::HandlerFailed {
            agent: "sink".to_string(),
            error: "refusing `please fail`".to_string(),
            attempts: ex.config().retry.max_attempts,
        }
    );
}

#[test]
fn generated_items_describe_the_agent() {
    assert_eq!(Enricher::NAME, "enricher");
    assert_eq!(Enricher::SUBSCRIBE, ["news.*"]);
    assert_eq!(Enricher::PUBLISH, ["news_enriched"]);
    let agent = std::sync::Arc::new(Enricher);
    assert_eq!(agent.description(), "Counts the words of each headline");
    assert_eq!(agent.subscriptions(), ["news.*"]);
    assert_eq!(agent.publications(), ["news_enriched"]);
    assert!(agent.input_schema().is_some() && agent.output_schema().is_some());
    assert!(Sink.publications().is_empty());
}
