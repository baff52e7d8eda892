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
use std::process::Command;
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

#[path = "support/pg_sandbox.rs"]
mod pg_sandbox;

use dagger_storage::{PostgresOptions, PostgresStore};
use pg_sandbox::PgSandbox;

#[test]
fn one_trace_spans_the_coordinator_and_the_worker() {
    let Some(mut sandbox) = PgSandbox::new("otel", "two_procs") else {
        return;
    };
    let (addr, spans) = receiver();
    let endpoint = format!("http://{addr}");
    let traced = |mut c: Command, service: &str| {
        c.env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_SERVICE_NAME", service)
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("RUST_LOG");
        c
    };
    let bin = env!("CARGO_BIN_EXE_dagger");
    let worker = sandbox.start(traced(sandbox.worker_command(bin, &[]), "worker-proc"));
    let wf = sandbox.dir.path().join("traced.yaml");
    std::fs::write(
        &wf,
        "name: traced\nnodes:\n  - { id: hop, action: echo, inputs: [{ name: value, value: 1 }] }\n",
    )
    .unwrap();
    let out = traced(sandbox.command(bin, &[]), "coordinator-proc")
        .env_remove("DAGGER_LOG")
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
        nix::unistd::Pid::from_raw(i32::try_from(worker).unwrap()),
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
}
