//! Attaching is refused, with the culprit named, when it cannot work: a
//! malformed pattern, or an executor that has already started.

mod common;

use common::{Script, ScriptedAgent, connect, fresh_config};
use dagger_nats::NatsError;
use dagger_pubsub::{PubSubError, PubSubExecutor};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_refuses_bad_patterns_and_started_executors() {
    let Some(bridge) = connect(fresh_config("attach")).await else {
        return;
    };
    let ex = Arc::new(PubSubExecutor::builder().build().unwrap());
    let (agent, _seen) = ScriptedAgent::new("reader", &["jobs.*", "local"], &[], Script::Record);
    ex.register_agent(agent).unwrap();

    let err = bridge.attach(&ex, &["jobs.>.x"]).await.unwrap_err();
    assert!(matches!(err, NatsError::InvalidPattern { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid channel pattern `jobs.>.x`: `>` must be the last segment"
    );

    // Only the subscription that overlaps the carried pattern gets a consumer.
    let attachment = bridge.attach(&ex, &["jobs.>"]).await.unwrap();
    assert_eq!(attachment.consumers().len(), 1);
    assert!(attachment.consumers()[0].starts_with("reader__jobs___"));
    // A second transport on the same executor is refused.
    let err = bridge.attach(&ex, &["other"]).await.unwrap_err();
    assert!(
        matches!(err, NatsError::Attach(PubSubError::TransportAlreadySet)),
        "{err:?}"
    );

    let started = Arc::new(PubSubExecutor::builder().build().unwrap());
    started
        .publish("local", serde_json::json!(1))
        .await
        .unwrap();
    let err = bridge.attach(&started, &["jobs.>"]).await.unwrap_err();
    assert!(
        matches!(err, NatsError::Attach(PubSubError::TransportAfterStart)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cannot attach to the executor: cannot set a transport: the executor has already started"
    );

    attachment.stop().await;
    ex.shutdown().await.unwrap();
    bridge.delete_stream().await.unwrap();
}
