//! Handler failures: retried per the policy, then dead-lettered; other
//! messages keep flowing.

mod common;

use common::{Behaviour, TestAgent, payloads};
use dagger_core::{BackoffStrategy, BoxError, Permanent, RetryPolicy};
use dagger_pubsub::{
    CancellationToken, DeadLetterReason, Message, PubSubConfig, PubSubContext, PubSubExecutor,
};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;

fn config(attempts: u32) -> PubSubConfig {
    PubSubConfig {
        retry: RetryPolicy {
            max_attempts: attempts,
            strategy: BackoffStrategy::Immediate,
            ..RetryPolicy::default()
        },
        ..PubSubConfig::default()
    }
}

/// Fails the first `n` attempts of every message, counting attempts per payload.
struct Flaky {
    fail_first: u32,
    attempts: Mutex<HashMap<String, u32>>,
}

#[async_trait::async_trait]
impl Behaviour for Flaky {
    async fn on(&self, _: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        let mut a = self.attempts.lock();
        let n = a.entry(m.payload.to_string()).or_insert(0);
        *n += 1;
        if *n <= self.fail_first {
            return Err(format!("transient failure {n}").into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_that_recovers_within_the_attempts_is_not_dead_lettered() {
    let ex = PubSubExecutor::new(config(3)).unwrap();
    let seen = TestAgent::new(
        "flaky",
        &["jobs"],
        &[],
        Flaky {
            fail_first: 2,
            attempts: Mutex::default(),
        },
    )
    .register(&ex);
    ex.publish("jobs", json!(1)).await.unwrap();
    ex.run(CancellationToken::new()).await.unwrap();
    assert_eq!(seen.lock().len(), 3, "two failures, one success");
    assert!(ex.dead_letters().is_empty());
    let m = ex.metrics();
    assert_eq!(m.agents["flaky"].failed_attempts, 2);
    assert_eq!(m.channels["jobs"].delivered, 1);
}

/// Fails on payload "poison", succeeds otherwise.
struct Poisoned;

#[async_trait::async_trait]
impl Behaviour for Poisoned {
    async fn on(&self, _: &PubSubContext, m: &Message) -> Result<(), BoxError> {
        if m.payload == json!("poison") {
            return Err("cannot digest poison".into());
        }
        if m.payload == json!("fatal") {
            return Err(Permanent::new("fatal input").into());
        }
        if m.payload == json!("panic") {
            panic!("handler blew up");
        }
        Ok(())
    }
}

#[tokio::test]
async fn exhausted_retries_dead_letter_with_the_error_and_later_messages_still_flow() {
    let ex = PubSubExecutor::new(config(3)).unwrap();
    let seen = TestAgent::new("eater", &["food"], &[], Poisoned).register(&ex);
    for p in ["a", "poison", "b", "fatal", "c", "panic", "d"] {
        ex.publish("food", json!(p)).await.unwrap();
    }
    ex.run(CancellationToken::new()).await.unwrap();
    let seen = payloads(&seen);
    let count = |p: &str| seen.iter().filter(|v| **v == json!(p)).count();
    assert_eq!(count("poison"), 3, "retried up to max_attempts");
    assert_eq!(count("fatal"), 1, "permanent errors are not retried");
    assert_eq!(count("panic"), 3, "a panic is an error like any other");
    for p in ["a", "b", "c", "d"] {
        assert_eq!(
            count(p),
            1,
            "{p} must be delivered despite the failures around it"
        );
    }
    let letters = ex.dead_letters();
    let reasons: Vec<_> = letters
        .iter()
        .map(|l| match &l.reason {
            DeadLetterReason::HandlerFailed {
                agent,
                error,
                attempts,
            } => (
                l.message.payload.clone(),
                agent.clone(),
                error.clone(),
                *attempts,
            ),
            other => panic!("unexpected reason {other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (
                json!("poison"),
                "eater".to_string(),
                "cannot digest poison".to_string(),
                3
            ),
            (
                json!("fatal"),
                "eater".to_string(),
                "fatal input".to_string(),
                1
            ),
            (
                json!("panic"),
                "eater".to_string(),
                "handler panicked: handler blew up".to_string(),
                3
            ),
        ]
    );
    let m = ex.metrics();
    assert_eq!(m.channels["food"].delivered, 4);
    assert_eq!(m.channels["food"].dead_lettered, 3);
}

#[tokio::test(start_paused = true)]
async fn retries_wait_the_policy_delay() {
    let ex = PubSubExecutor::new(PubSubConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            strategy: BackoffStrategy::Linear,
            base_delay_ms: 1_000,
            ..RetryPolicy::default()
        },
        ..PubSubConfig::default()
    })
    .unwrap();
    TestAgent::new("eater", &["food"], &[], Poisoned).register(&ex);
    let start = tokio::time::Instant::now();
    ex.publish("food", json!("poison")).await.unwrap();
    ex.run(CancellationToken::new()).await.unwrap();
    // Linear: 1 s after the first failure, 2 s after the second.
    assert_eq!(start.elapsed().as_secs(), 3);
    assert_eq!(ex.dead_letters().len(), 1);
}
