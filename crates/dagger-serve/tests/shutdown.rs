//! Stopping the server ends live streams and cancels the runs it resumed,
//! keeping their state.

mod common;

use common::*;
use dagger_core::{NodeStatus, RunId, RunStatus};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_streams_and_cancels_resumed_runs() {
    let (_d, stores) = temp_store().await;
    let mut wf = workflow("slow", &[("first", &[]), ("slow", &["first"])]);
    wf.nodes[1].action = "nap".into();
    wf.nodes[1].inputs = vec![dagger_core::InputSpec {
        name: "ms".into(),
        description: None,
        reference: None,
        value: Some(json!(600_000)),
    }];
    let mut failed = Seed::new("slow", NodeStatus::Failed);
    failed.error = Some("boom");
    seed_run(
        &stores,
        "s",
        &wf,
        &[],
        RunStatus::Failed,
        &[Seed::new("first", NodeStatus::Completed), failed],
    )
    .await;
    let server = server(&stores, vec![], None);
    let app = server.router();
    let csrf = server.csrf_token().to_string();
    let a = post_json(
        &app,
        "/api/runs/s/resume",
        json!({}),
        &[("x-csrf-token", &csrf)],
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);

    let listener = dagger_serve::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    // A browser following the run live.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /api/runs/s/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("text/event-stream"));
    // Wait until the resumed run is running its slow node.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rec = stores
            .runs
            .get_run(&RunId::from("s"))
            .await
            .unwrap()
            .unwrap();
        if rec.status == RunStatus::Running {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the resume never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .expect("the server stops although a stream was open and a run was going")
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    let rec = stores
        .runs
        .get_run(&RunId::from("s"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, RunStatus::Cancelled, "{:?}", rec.reason);
    let view = dagger_coord::load_run_view(&stores, "s").await.unwrap();
    assert_eq!(
        view.nodes[0].status,
        NodeStatus::Completed,
        "finished work is kept"
    );
}
