//! One trace across two processes: `dagger run --db postgres://…` (the
//! coordinator) dispatches a node to a `dagger worker`; both export their
//! spans over OTLP/HTTP to a receiver this test runs, which decodes the
//! protobuf. The worker's span of the attempt is a child of the
//! coordinator's span of that attempt, itself a child of the run's span.
//! A Task Agent task created in a traced span of this process runs on a
//! `dagger worker` in a span that is a child of its creator's; a pub/sub
//! subscriber's handler runs in a child of the publisher's span (in
//! process; the NATS leg is `crates/dagger-nats/tests/trace_context.rs`).
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

/// `c` exporting its spans to `endpoint` as `service`.
fn traced(mut c: Command, endpoint: &str, service: &str) -> Command {
    c.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_SERVICE_NAME", service)
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("RUST_LOG");
    c
}

/// Waits (up to 60 s) for a span named `name` from `service`.
fn wait_span(spans: &Mutex<Vec<Got>>, service: &str, name: &str) -> Got {
    let start = Instant::now();
    loop {
        let all = spans.lock().unwrap().clone();
        if let Some(s) = all.iter().find(|s| s.service == service && s.name == name) {
            return s.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no `{name}` span from {service}; received: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lower-case hex of `bytes` (how a `traceparent` writes ids).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Spans of this test process, kept in memory when they end.
#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

impl opentelemetry_sdk::trace::SpanExporter for Kept {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// A subscriber that traces this thread's spans with OpenTelemetry ids,
/// keeping the ended spans in `kept`.
fn tracing_here(kept: &Kept) -> impl tracing::Subscriber + Send + Sync {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(kept.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
}

#[test]
fn one_trace_spans_the_coordinator_and_the_worker() {
    let Some(mut sandbox) = PgSandbox::new("otel", "two_procs") else {
        return;
    };
    let (addr, spans) = receiver();
    let endpoint = format!("http://{addr}");
    let traced = |c, service| traced(c, &endpoint, service);
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

/// A Task Agent task created inside a traced span of this process is run
/// by a `dagger worker` (another process) in a `task` span that is a child
/// of the creator's span: the `traceparent` travelled with the task
/// through Postgres.
#[test]
fn a_task_runs_in_a_child_of_its_creators_span() {
    use dagger_task_core::{JobStatus, StallAction, TaskAgentRegistry, TaskManager, TaskSpec};
    let Some(mut sandbox) = PgSandbox::new("otel", "task") else {
        return;
    };
    let (addr, spans) = receiver();
    let endpoint = format!("http://{addr}");
    let bin = env!("CARGO_BIN_EXE_dagger");
    let worker = sandbox.worker_command(bin, &["--agents", "echo"]);
    let worker = sandbox.start(traced(worker, &endpoint, "worker-proc"));

    let kept = Kept::default();
    let _here = tracing::subscriber::set_default(tracing_here(&kept));
    let store: Arc<dyn dagger_core::store::TaskStore> = Arc::new(sandbox.store.clone());
    let manager = TaskManager::new(
        Duration::from_secs(60),
        StallAction::TerminateJob,
        dagger_core::Cache::new(),
        TaskAgentRegistry::new(),
        store,
    );
    let job = "traced-job";
    let creator = tracing::info_span!("creator");
    let parent = creator.in_scope(|| {
        let spec = TaskSpec::new(job, "echo", "echo")
            .id("traced-0")
            .input(serde_json::json!({"x": 1}));
        manager
            .submit_job(job, vec![spec], Some(vec!["echo".into()]), None)
            .unwrap();
        dagger_core::trace_context::current().expect("the creator's span is traced")
    });
    let task = manager.task("traced-0").unwrap().unwrap();
    assert_eq!(
        task.traceparent.as_deref(),
        Some(parent.as_str()),
        "stored with the task"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let handle = manager.resume_job(job).unwrap();
        tokio::time::timeout(Duration::from_secs(60), handle.wait())
            .await
            .expect("the worker ran the job")
    });
    assert_eq!(status, JobStatus::Completed(true));
    // SIGTERM: the worker stops and flushes its spans.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(worker).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let ran = wait_span(&spans, "worker-proc", "task");
    // `00-<trace id>-<span id>-<flags>`
    let ids: Vec<&str> = parent.split('-').collect();
    assert_eq!(
        hex(&ran.trace_id),
        ids[1],
        "the task's span is in the creator's trace"
    );
    assert_eq!(
        hex(&ran.parent),
        ids[2],
        "the task's span is a child of the creator's"
    );
}

/// An agent that remembers the headers of what it handled.
struct Headers(Arc<Mutex<Vec<std::collections::BTreeMap<String, String>>>>);

#[async_trait::async_trait]
impl dagger_pubsub::PubSubAgent for Headers {
    fn name(&self) -> &str {
        "listener"
    }
    fn subscriptions(&self) -> Vec<String> {
        vec!["events".into()]
    }
    fn publications(&self) -> Vec<String> {
        Vec::new()
    }
    async fn handle_message(
        &self,
        _ctx: &dagger_pubsub::PubSubContext,
        message: &dagger_pubsub::Message,
    ) -> Result<(), dagger_core::BoxError> {
        tracing::info!("handled");
        self.0.lock().unwrap().push(message.headers.clone());
        Ok(())
    }
}

/// A message published inside a traced span carries its `traceparent`
/// header, and the subscriber's handler runs in a `message` span that is a
/// child of the publisher's; an untraced publish gets neither.
#[tokio::test]
async fn a_handlers_span_is_a_child_of_the_publishers() {
    use tracing::Instrument;
    let kept = Kept::default();
    let _here = tracing::subscriber::set_default(tracing_here(&kept));
    let ex = dagger_pubsub::PubSubExecutor::new(dagger_pubsub::PubSubConfig::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    ex.register_agent(Arc::new(Headers(seen.clone()))).unwrap();
    let publisher = tracing::info_span!("publisher");
    ex.publish("events", serde_json::json!(1))
        .instrument(publisher)
        .await
        .unwrap();
    ex.publish("events", serde_json::json!(2)).await.unwrap();
    ex.shutdown().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let parent = seen[0]
        .get(dagger_core::trace_context::HEADER)
        .expect("the traced publish set the header")
        .clone();
    assert!(!seen[1].contains_key(dagger_core::trace_context::HEADER));
    let spans = kept.0.lock().unwrap().clone();
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no `{name}` span: {spans:#?}"))
            .clone()
    };
    let (publisher, handler) = (find("publisher"), find("message"));
    assert_eq!(
        parent,
        format!(
            "00-{}-{}-01",
            publisher.span_context.trace_id(),
            publisher.span_context.span_id()
        )
    );
    assert_eq!(
        handler.parent_span_id,
        publisher.span_context.span_id(),
        "the handler's span is a child of the publisher's"
    );
    assert_eq!(
        handler.span_context.trace_id(),
        publisher.span_context.trace_id()
    );
    assert_eq!(
        spans.iter().filter(|s| s.name == "message").count(),
        1,
        "an untraced message gets no span"
    );
}
