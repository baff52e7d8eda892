//! The app's pub/sub agent, hosted by `worker --nats` (a real NATS
//! JetStream server on 127.0.0.1:4222), receives what `publish` sends from
//! another process, and the worker stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NATS: &str = "nats://127.0.0.1:4222";

fn app() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dagger-example-app"))
}

fn nats_is_up() -> bool {
    std::net::TcpStream::connect_timeout(&"127.0.0.1:4222".parse().unwrap(), Duration::from_secs(2))
        .is_ok()
}

/// Deletes the test's stream (its messages and consumers).
fn delete_stream(stream: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bridge = dagger::nats::NatsBridge::connect(NATS, dagger::nats::NatsConfig::new(stream))
            .await
            .expect("connect to NATS");
        bridge
            .delete_stream()
            .await
            .expect("delete the test stream");
    });
}

#[test]
fn the_workers_pubsub_agent_gets_what_publish_sends() {
    if !nats_is_up() {
        eprintln!("skipped: no NATS server on 127.0.0.1:4222");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let stream = format!("app_test_{}_{nanos}", std::process::id());
    let mut worker = app()
        .args(["worker", "--nats", NATS, "--nats-stream", &stream])
        .args(["--channels", "numbers.*,totals", "--db"])
        .arg(format!("sqlite:{}", dir.path().join("w.db").display()))
        .env("EXAMPLE_APP_TRACE", &trace)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(worker.stderr.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("hosting pub/sub agents"));
    assert!(
        ready.as_deref().is_some_and(|l| l.contains("summer")),
        "the worker hosts the app's pub/sub agent: {ready:?}"
    );
    // Drain the rest of stderr so the worker never blocks on a full pipe.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let out = app()
        .args(["publish", "numbers.a", r#"{"values": [1, 2, 3.5]}"#])
        .args(["--nats", NATS, "--nats-stream", &stream])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "prints the message id"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let handled = loop {
        let text = std::fs::read_to_string(&trace).unwrap_or_default();
        if text.contains("summer numbers.a 6.5") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        handled.contains("summer numbers.a 6.5"),
        "the agent summed the message in the worker: {handled:?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker stops within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = rest.join().unwrap().join("\n");
    assert_eq!(status.code(), Some(143), "SIGTERM exits 143: {log}");
    delete_stream(&stream);
}

#[test]
fn publish_without_a_server_url_is_a_usage_error() {
    let out = app()
        .args(["publish", "numbers.a", "{}"])
        .env_remove("DAGGER_NATS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nats"));
}
