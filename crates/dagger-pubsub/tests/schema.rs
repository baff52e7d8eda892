//! Schema validation: violations are not delivered but dead-lettered with the
//! instance path and keyword.

mod common;

use common::{Behaviour, TestAgent, payloads};
use dagger_core::BoxError;
use dagger_pubsub::{
    CancellationToken, DEAD_LETTER_CHANNEL, DeadLetterReason, Message, PubSubConfig, PubSubContext,
    PubSubError, PubSubExecutor,
};
use serde_json::{Value, json};

fn article_schema() -> Value {
    json!({"type": "object", "required": ["title"], "properties": {
        "title": {"type": "string"}, "words": {"type": "integer", "minimum": 1}}})
}

#[tokio::test]
async fn input_violations_are_dead_lettered_with_path_and_keyword_and_valid_ones_delivered() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    let strict = TestAgent::recorder("strict", &["articles"])
        .input(article_schema())
        .register(&ex);
    let lax = TestAgent::recorder("lax", &["articles"]).register(&ex);
    let dl = TestAgent::recorder("dl-watch", &[DEAD_LETTER_CHANNEL]).register(&ex);

    ex.publish("articles", json!({"title": "ok", "words": 3}))
        .await
        .unwrap();
    let bad = ex
        .publish("articles", json!({"title": "x", "words": 0}))
        .await
        .unwrap();
    ex.publish("articles", json!({"words": 2})).await.unwrap();
    ex.run(CancellationToken::new()).await.unwrap();

    assert_eq!(payloads(&strict), [json!({"title": "ok", "words": 3})]);
    assert_eq!(payloads(&lax).len(), 3, "another subscriber is unaffected");

    let letters = ex.dead_letters();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].message.id, bad);
    match &letters[0].reason {
        DeadLetterReason::InputSchema { agent, violation } => {
            assert_eq!(agent, "strict");
            assert_eq!(violation.instance_path, "/words");
            assert_eq!(violation.keyword, "minimum");
        }
        other => panic!("unexpected reason {other:?}"),
    }
    match &letters[1].reason {
        DeadLetterReason::InputSchema { violation, .. } => {
            assert_eq!(
                (violation.instance_path.as_str(), violation.keyword.as_str()),
                ("", "required")
            );
        }
        other => panic!("unexpected reason {other:?}"),
    }

    // The dead-letter channel carries the same facts for subscribers.
    let dl = dl.lock();
    assert_eq!(dl.len(), 2);
    let p = &dl[0].payload;
    assert_eq!(p["reason"], "input_schema");
    assert_eq!(p["agent"], "strict");
    assert_eq!(p["violation"]["instance_path"], "/words");
    assert_eq!(p["violation"]["keyword"], "minimum");
    assert_eq!(p["original"]["id"], json!(bad.as_str()));
    assert_eq!(dl[0].causation_id.as_ref(), Some(&bad));
    assert_eq!(dl[0].headers["dead-letter-reason"], "input_schema");

    let m = ex.metrics();
    assert_eq!(m.channels["articles"].dead_lettered, 2);
    assert_eq!(m.channels["articles"].delivered, 4);
    assert_eq!(m.channels[DEAD_LETTER_CHANNEL].published, 2);
    assert_eq!(m.agents["strict"].dead_lettered, 2);
}

struct Summarize;

#[async_trait::async_trait]
impl Behaviour for Summarize {
    async fn on(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        // The output must have an integer `score`; odd inputs produce a string.
        let n = m.payload.as_i64().unwrap_or(0);
        let score = if n % 2 == 0 { json!(n) } else { json!("high") };
        match ctx.publish("summaries", json!({"score": score})).await {
            Ok(_) => Ok(()),
            Err(PubSubError::OutputSchemaViolation {
                agent,
                channel,
                violation,
            }) => {
                assert_eq!(
                    (agent.as_str(), channel.as_str()),
                    ("summarizer", "summaries")
                );
                assert_eq!(violation.instance_path, "/score");
                // Swallow it: the bad output is already dead-lettered.
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[tokio::test]
async fn output_violations_are_not_delivered_and_are_dead_lettered() {
    let ex = PubSubExecutor::new(PubSubConfig::default()).unwrap();
    TestAgent::new("summarizer", &["numbers"], &["summaries"], Summarize)
        .output(json!({"type": "object", "properties": {"score": {"type": "integer"}}}))
        .register(&ex);
    let sink = TestAgent::recorder("sink", &["summaries"]).register(&ex);
    for n in 0..4 {
        ex.publish("numbers", json!(n)).await.unwrap();
    }
    ex.run(CancellationToken::new()).await.unwrap();
    assert_eq!(payloads(&sink), [json!({"score": 0}), json!({"score": 2})]);
    let letters = ex.dead_letters();
    assert_eq!(letters.len(), 2);
    for l in &letters {
        assert_eq!(l.message.channel, "summaries");
        assert_eq!(l.message.source.as_deref(), Some("summarizer"));
        match &l.reason {
            DeadLetterReason::OutputSchema { agent, violation } => {
                assert_eq!(agent, "summarizer");
                assert_eq!(
                    (violation.instance_path.as_str(), violation.keyword.as_str()),
                    ("/score", "type")
                );
            }
            other => panic!("unexpected reason {other:?}"),
        }
    }
    assert_eq!(ex.metrics().channels["summaries"].dead_lettered, 2);
    assert_eq!(ex.metrics().channels["summaries"].published, 2);
}
