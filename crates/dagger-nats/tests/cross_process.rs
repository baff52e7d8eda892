//! Agents in two processes talk through NATS: the parent publishes pings,
//! an agent in a child process (this test binary re-executed in child mode)
//! answers each with a pong, and the parent's agent receives every answer
//! with its causation and correlation intact.

mod common;

use common::{CHILD_STREAM, Script, ScriptedAgent, config_for, connect, fresh_config, next};
use dagger_pubsub::{PubSubExecutor, PublishOptions};
use serde_json::json;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const PINGS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of `agents_in_two_processes_exchange_messages`"]
async fn answerer_child() {
    let stream = std::env::var(CHILD_STREAM).expect("run by the parent test");
    let bridge = connect(config_for(&stream)).await.expect("server is up");
    let ex = Arc::new(PubSubExecutor::builder().build().unwrap());
    let (agent, _seen) = ScriptedAgent::new(
        "answerer",
        &["ping"],
        &["pong"],
        Script::Answer("pong".into()),
    );
    ex.register_agent(agent).unwrap();
    let _attachment = bridge.attach(&ex, &["ping", "pong"]).await.unwrap();
    println!("READY");
    // Answer until the parent kills this process.
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_in_two_processes_exchange_messages() {
    let config = fresh_config("twoproc");
    let stream = config.stream.clone();
    let Some(bridge) = connect(config).await else {
        return;
    };
    let ex = Arc::new(PubSubExecutor::builder().build().unwrap());
    let (collector, mut pongs) = ScriptedAgent::new("collector", &["pong"], &[], Script::Record);
    ex.register_agent(collector).unwrap();
    let attachment = bridge.attach(&ex, &["ping", "pong"]).await.unwrap();

    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "answerer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_STREAM, &stream)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("READY") {
                return;
            }
        }
        panic!("the child exited before it was ready");
    })
    .await
    .expect("the child is ready within 30 s");

    let mut pings = BTreeSet::new();
    for n in 0..PINGS {
        let options = PublishOptions {
            correlation_id: Some("conversation-1".into()),
            ..Default::default()
        };
        pings.insert(
            ex.publish_with("ping", json!({"n": n}), options)
                .await
                .unwrap(),
        );
    }
    let mut answered = BTreeSet::new();
    for _ in 0..PINGS {
        let pong = next(&mut pongs, "a pong from the child").await;
        assert_eq!(pong.channel, "pong");
        assert_eq!(pong.source.as_deref(), Some("answerer"));
        assert_eq!(pong.payload["from"], "answerer");
        assert_eq!(pong.correlation_id.as_deref(), Some("conversation-1"));
        assert_eq!(pong.depth, 1);
        assert!(
            pings.contains(pong.causation_id.as_ref().unwrap()),
            "{pong:?}"
        );
        answered.insert(pong.payload["n"].as_u64().unwrap());
    }
    assert_eq!(answered, (0..PINGS).collect::<BTreeSet<_>>());

    child.kill().await.unwrap();
    attachment.stop().await;
    ex.shutdown().await.unwrap();
    assert!(pongs.try_recv().is_err(), "every pong arrived once");
    bridge.delete_stream().await.unwrap();
}
