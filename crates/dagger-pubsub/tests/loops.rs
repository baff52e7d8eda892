//! Loop protection: a causation depth limit stops agents answering each other forever.

mod common;

use common::{Behaviour, TestAgent};
use dagger_core::BoxError;
use dagger_pubsub::{
    CancellationToken, DeadLetterReason, Message, PubSubConfig, PubSubContext, PubSubError,
    PubSubExecutor, RunOutcome,
};
use serde_json::json;

/// Answers every message on `to`, propagating any error.
struct Answer(&'static str);

#[async_trait::async_trait]
impl Behaviour for Answer {
    async fn on(&self, ctx: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        let n = m.payload.as_u64().unwrap_or(0);
        ctx.publish(self.0, json!(n + 1)).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_stops_at_the_depth_limit() {
    let ex = PubSubExecutor::new(PubSubConfig {
        max_depth: 10,
        ..PubSubConfig::default()
    })
    .unwrap();
    let ping = TestAgent::new("ping", &["ping"], &["pong"], Answer("pong")).register(&ex);
    let pong = TestAgent::new("pong", &["pong"], &["ping"], Answer("ping")).register(&ex);
    ex.publish_with(
        "ping",
        json!(0),
        dagger_pubsub::PublishOptions {
            correlation_id: Some("rally".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ex.run(CancellationToken::new()).await.unwrap(),
        RunOutcome::Quiescent
    );

    // Depths 0..=10 are delivered (even depths on `ping`): 11 messages alternate between the agents.
    let ping = ping.lock();
    let pong = pong.lock();
    assert_eq!(ping.len() + pong.len(), 11);
    let last = ping.iter().chain(pong.iter()).map(|m| m.depth).max();
    assert_eq!(last, Some(10));
    assert!(
        ping.iter()
            .chain(pong.iter())
            .all(|m| m.correlation_id.as_deref() == Some("rally"))
    );
    // Causation chains link each answer to its question.
    let second = &pong[0];
    assert_eq!(second.causation_id.as_ref(), Some(&ping[0].id));
    assert_eq!(second.source.as_deref(), Some("ping"));

    let letters = ex.dead_letters();
    let depth_letter = letters
        .iter()
        .find(|l| matches!(l.reason, DeadLetterReason::DepthExceeded { .. }))
        .expect("the 12th message is dead-lettered");
    assert_eq!(depth_letter.message.depth, 11);
    assert_eq!(
        depth_letter.reason,
        DeadLetterReason::DepthExceeded {
            agent: "ping".into(),
            limit: 10
        }
    );
    // The publishing handler got the typed error and, since it is permanent,
    // its own message was dead-lettered after a single attempt.
    let handler_letter = letters
        .iter()
        .find(|l| matches!(l.reason, DeadLetterReason::HandlerFailed { .. }))
        .unwrap();
    match &handler_letter.reason {
        DeadLetterReason::HandlerFailed {
            error, attempts, ..
        } => {
            assert_eq!(*attempts, 1);
            assert_eq!(
                error,
                &PubSubError::DepthLimitExceeded {
                    agent: "ping".into(),
                    channel: "pong".into(),
                    limit: 10
                }
                .to_string()
            );
        }
        _ => unreachable!(),
    }
}
