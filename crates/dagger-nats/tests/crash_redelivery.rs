//! A subscriber process killed (SIGKILL) mid-stream loses nothing: messages
//! it had pulled but not acknowledged — the one its handler was in the
//! middle of and those queued behind it — go to the restarted process,
//! which continues the same durable consumer.

mod common;

use common::{CHILD_STREAM, Script, ScriptedAgent, config_for, connect, fresh_config};
use dagger_nats::NatsConfig;
use dagger_pubsub::PubSubExecutor;
use serde_json::json;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const MESSAGES: u64 = 30;
const HANDLED_BEFORE_HANG: u64 = 10;
/// Child env var: handle this many messages then hang; unset means never hang.
const CHILD_HANG: &str = "DAGGER_NATS_TEST_HANG";

/// Both processes use this: a short ack wait so the restart gets the
/// unacknowledged messages quickly, and a pull batch smaller than the stream.
fn crash_config(config: NatsConfig) -> NatsConfig {
    config.ack_wait(Duration::from_secs(1)).max_ack_pending(8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of `killed_subscriber_gets_unacknowledged_messages_after_restart`"]
async fn worker_child() {
    let stream = std::env::var(CHILD_STREAM).expect("run by the parent test");
    let bridge = connect(crash_config(config_for(&stream)))
        .await
        .expect("server is up");
    let script = match std::env::var(CHILD_HANG) {
        Ok(k) => Script::HangAfter(k.parse().unwrap()),
        Err(_) => Script::Record,
    };
    let ex = Arc::new(PubSubExecutor::builder().build().unwrap());
    let (agent, mut seen) = ScriptedAgent::new("worker", &["jobs.*"], &[], script);
    ex.register_agent(agent).unwrap();
    let _attachment = bridge.attach(&ex, &["jobs.>"]).await.unwrap();
    // Reported once the handler finished (before the acknowledgement).
    while let Some(m) = seen.recv().await {
        println!("HANDLED {}", m.payload["n"]);
    }
}

fn spawn_worker(stream: &str, hang: Option<u64>) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "worker_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_STREAM, stream)
    .env_remove(CHILD_HANG)
    .stdout(Stdio::piped())
    .kill_on_drop(true);
    if let Some(k) = hang {
        cmd.env(CHILD_HANG, k.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The next `HANDLED n` of a child.
async fn handled(lines: &mut Lines<BufReader<ChildStdout>>) -> u64 {
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest may print `test worker_child ... ` before the first line.
            if let Some((_, n)) = line.split_once("HANDLED ") {
                return n.trim().parse().unwrap();
            }
        }
        panic!("the worker exited");
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the worker handles a message within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_subscriber_gets_unacknowledged_messages_after_restart() {
    let config = crash_config(fresh_config("crash"));
    let stream = config.stream.clone();
    let Some(bridge) = connect(config).await else {
        return;
    };
    let publisher = Arc::new(PubSubExecutor::builder().build().unwrap());
    let attachment = bridge.attach(&publisher, &["jobs.>"]).await.unwrap();
    let payloads = (0..MESSAGES).map(|n| json!({"n": n})).collect();
    publisher.publish_batch("jobs.new", payloads).await.unwrap();

    // First run: handles 10 in order, then hangs inside the 11th; killed there.
    let (mut first, mut lines) = spawn_worker(&stream, Some(HANDLED_BEFORE_HANG));
    let mut before = Vec::new();
    for _ in 0..HANDLED_BEFORE_HANG {
        before.push(handled(&mut lines).await);
    }
    assert_eq!(before, (0..HANDLED_BEFORE_HANG).collect::<Vec<_>>());
    first.kill().await.unwrap(); // SIGKILL
    first.wait().await.unwrap();

    // Restart: the same durable consumer continues; everything not acknowledged comes back.
    let (mut second, mut lines) = spawn_worker(&stream, None);
    let mut after = BTreeSet::new();
    let all: BTreeSet<u64> = (0..MESSAGES).collect();
    while !all.iter().all(|n| before.contains(n) || after.contains(n)) {
        after.insert(handled(&mut lines).await);
    }
    let unfinished: BTreeSet<u64> = (HANDLED_BEFORE_HANG..MESSAGES).collect();
    assert!(
        unfinished.is_subset(&after),
        "the restarted worker must get every message the killed one did not finish; got {after:?}"
    );
    second.kill().await.unwrap();
    second.wait().await.unwrap();

    attachment.stop().await;
    publisher.shutdown().await.unwrap();
    bridge.delete_stream().await.unwrap();
}
