//! One trace across two processes: `dagger run --db postgres://…` (the
//! coordinator) dispatches a node to a `dagger worker`; both export their
//! spans over OTLP/HTTP to a receiver this test runs, which decodes the
//! protobuf. The worker's span of the attempt is a child of the
//! coordinator's span of that attempt, itself a child of the run's span.
//!
//! `cargo test -p dagger-cli --features otel --test otel`
#![cfg(all(feature = "otel", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A span as received: its service, name, ids and run/node attributes.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    node_id: Option<String>,
}

/// An OTLP/HTTP receiver on a free loopback port, on its own thread.
fn receiver() -> (SocketAddr, Arc<Mutex<Vec<Got>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().route(
                "/v1/traces",
                post(move |body: Bytes| {
                    let kept = kept.clone();
                    async move {
                        let req = ExportTraceServiceRequest::decode(body).unwrap();
                        let mut got = kept.lock().unwrap();
                        for rs in req.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|a| a.key == "service.name")
                                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                                    Any::StringValue(s) => Some(s.clone()),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                                let node_id = span
                                    .attributes
                                    .iter()
                                    .find(|a| a.key == "node_id")
                                    .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                                        Any::StringValue(s) => Some(s.clone()),
                                        _ => None,
                                    });
                                got.push(Got {
                                    service: service.clone(),
                                    name: span.name,
                                    trace_id: span.trace_id,
                                    span_id: span.span_id,
                                    parent: span.parent_span_id,
                                    node_id,
                                });
                            }
                        }
                        ""
                    }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap(), spans)
}

fn url() -> String {
    std::env::var("DAGGER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn one_trace_spans_the_coordinator_and_the_worker() {
    use dagger_storage::{PostgresOptions, PostgresStore};
    let schema = format!("t_otel_{}", std::process::id());
    let options = PostgresOptions {
        schema: Some(schema.clone()),
        ..PostgresOptions::default()
    };
    let store = match PostgresStore::connect_blocking(&url(), &options) {
        Ok(s) => s,
        Err(e) if std::env::var("DAGGER_TEST_SKIP_SERVERS").is_ok_and(|v| v == "1") => {
            eprintln!("skipping: PostgreSQL at {} is unreachable ({e})", url());
            return;
        }
        Err(e) => panic!("PostgreSQL at {} is unreachable: {e}", url()),
    };
    let (addr, spans) = receiver();
    let endpoint = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let dagger = |service: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dagger"));
        c.current_dir(dir.path())
            .env("DAGGER_PG_SCHEMA", &schema)
            .env("DAGGER_DB", url())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_SERVICE_NAME", service)
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("RUST_LOG")
            .env_remove("DAGGER_LOG");
        c
    };
    let worker = dagger("worker-proc")
        .arg("worker")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let worker = Killed(worker);
    let wf = dir.path().join("traced.yaml");
    std::fs::write(
        &wf,
        "name: traced\nnodes:\n  - { id: hop, action: echo, inputs: [{ name: value, value: 1 }] }\n",
    )
    .unwrap();
    let out = dagger("coordinator-proc")
        .args(["run", wf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SIGTERM: the worker stops and flushes its spans.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(worker.0.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();

    let find = |all: &[Got], service: &str, name: &str| {
        all.iter()
            .find(|s| s.service == service && s.name == name)
            .cloned()
    };
    let start = Instant::now();
    let (run, node, remote) = loop {
        let all = spans.lock().unwrap().clone();
        if let (Some(run), Some(node), Some(remote)) = (
            find(&all, "coordinator-proc", "run"),
            find(&all, "coordinator-proc", "node"),
            find(&all, "worker-proc", "remote_node"),
        ) {
            break (run, node, remote);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "spans missing; received: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        node.parent, run.span_id,
        "the attempt's span is a child of the run's"
    );
    assert_eq!(node.trace_id, run.trace_id);
    assert_eq!(node.node_id.as_deref(), Some("hop"));
    assert_eq!(
        remote.trace_id, run.trace_id,
        "the worker's span is in the run's trace"
    );
    assert_eq!(
        remote.parent, node.span_id,
        "the worker's span is a child of the attempt's"
    );
    assert_eq!(remote.node_id.as_deref(), Some("hop"));
    drop(worker);
    let _ = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(store.drop_schema())
    })
    .join();
}
