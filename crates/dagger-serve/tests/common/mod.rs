//! Stores, runs and requests shared by the server's tests.
#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use dagger_coord::{ActionRegistry, NodeAction, NodeCtx, NodeOutput};
use dagger_core::store::{NodeRunRecord, RunRecord};
use dagger_core::{BoxError, NodeId, NodeStatus, RunId, RunStatus, Stores};
use dagger_dag_flow::{NodeDef, WorkflowDef};
use dagger_serve::{ServeOptions, Server, WorkflowCatalog};
use dagger_storage::SqliteStore;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

/// A node id that would run script if it were not escaped.
pub const EVIL: &str = "<script>alert(1)</script>";

/// A fresh SQLite store in a temporary directory.
pub async fn temp_store() -> (tempfile::TempDir, Stores) {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("dagger.db").display());
    let store = SqliteStore::open(&location).await.unwrap();
    (dir, store.stores())
}

/// A workflow of `nodes` (id, dependencies), each running `echo`.
pub fn workflow(name: &str, nodes: &[(&str, &[&str])]) -> WorkflowDef {
    WorkflowDef {
        name: name.into(),
        description: Some(format!("the {name} workflow")),
        author: None,
        version: None,
        signature: None,
        tags: vec!["test".into()],
        config: None,
        inputs: None,
        schedules: Vec::new(),
        nodes: nodes
            .iter()
            .map(|(id, deps)| NodeDef {
                id: id.to_string(),
                action: "echo".into(),
                dependencies: deps.iter().map(|d| d.to_string()).collect(),
                ..Default::default()
            })
            .collect(),
    }
}

/// What one node of a seeded run did.
pub struct Seed<'a> {
    pub id: &'a str,
    pub status: NodeStatus,
    pub attempts: u32,
    pub error: Option<&'a str>,
    pub output: Option<Value>,
    pub prompt: Option<&'a str>,
}

impl<'a> Seed<'a> {
    pub fn new(id: &'a str, status: NodeStatus) -> Self {
        Self {
            id,
            status,
            attempts: 1,
            error: None,
            output: None,
            prompt: None,
        }
    }
}

/// Records a run of `wf` (with `added` nodes added at run time) directly
/// through the store API, created `age_ms` before now.
pub async fn seed_run(
    stores: &Stores,
    run_id: &str,
    wf: &WorkflowDef,
    added: &[&str],
    status: RunStatus,
    nodes: &[Seed<'_>],
) {
    let now = dagger_core::now_millis();
    let finished = matches!(
        status,
        RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
    );
    stores
        .runs
        .create_run(RunRecord {
            run_id: RunId::from(run_id),
            workflow: wf.name.clone(),
            definition: json!({ "workflow": wf, "added_at_runtime": added }),
            inputs: json!({}),
            config: json!({}),
            status,
            reason: (status == RunStatus::Failed).then(|| "node failed".to_string()),
            created_at: now - 1500,
            updated_at: now,
            finished_at: finished.then_some(now),
            owner: None,
            lineage: None,
        })
        .await
        .unwrap();
    for n in nodes {
        let output_artifact_id = match &n.output {
            Some(v) => Some(
                stores
                    .artifacts
                    .put_artifact(serde_json::to_vec(v).unwrap())
                    .await
                    .unwrap(),
            ),
            None => None,
        };
        let mut metadata = serde_json::Map::new();
        if let Some(p) = n.prompt {
            metadata.insert("prompt".into(), json!(p));
        }
        stores
            .runs
            .put_node_run(NodeRunRecord {
                run_id: RunId::from(run_id),
                node_id: NodeId::from(n.id),
                invocation_key: String::new(),
                action: "echo".into(),
                attempt: n.attempts,
                state: n.status,
                input_hash: None,
                output_artifact_id,
                error: n.error.map(str::to_string),
                started_at: Some(now - 1000),
                finished_at: n.status.is_terminal().then_some(now - 500),
                metadata: Value::Object(metadata),
            })
            .await
            .unwrap();
    }
    stores.runs.flush().await.unwrap();
}

/// `echo`: returns its inputs; `nap`: sleeps input `ms` (default 1500), then returns.
pub fn registry() -> ActionRegistry {
    struct Echo;
    #[async_trait::async_trait]
    impl NodeAction for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
            Ok(NodeOutput::success(ctx.inputs.to_value()))
        }
    }
    struct Nap;
    #[async_trait::async_trait]
    impl NodeAction for Nap {
        fn name(&self) -> &str {
            "nap"
        }
        async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
            let ms = ctx.inputs.get("ms").and_then(Value::as_u64).unwrap_or(1500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(NodeOutput::success(json!({ "slept_ms": ms })))
        }
    }
    let r = ActionRegistry::new();
    r.register(std::sync::Arc::new(Echo));
    r.register(std::sync::Arc::new(Nap));
    r
}

/// A server over `stores` showing `workflows`, resuming with [`registry`].
pub fn server(stores: &Stores, workflows: Vec<WorkflowDef>, token: Option<&str>) -> Server {
    Server::new(
        ServeOptions::new(stores.clone())
            .with_catalog(WorkflowCatalog {
                workflows,
                problems: vec![(
                    "broken.yaml".into(),
                    vec![format!("broken.yaml:3:5: unknown field `{EVIL}`")],
                )],
            })
            .with_registry(registry())
            .with_token(token.map(str::to_string))
            .with_live_interval(Duration::from_millis(50)),
    )
    .unwrap()
}

/// A response, its body read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// POSTs an HTML form body (`a=1&b=2`).
pub async fn post_form(app: &Router, uri: &str, form: &str) -> Answer {
    send(
        app,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap(),
    )
    .await
}

/// POSTs JSON with extra headers.
pub async fn post_json(app: &Router, uri: &str, body: Value, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(app, req.body(Body::from(body.to_string())).unwrap()).await
}

/// `s` percent-encoded as a form value or path segment.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The control requests queued for a run.
pub async fn controls(stores: &Stores, run_id: &str) -> Vec<dagger_core::store::ControlRequest> {
    stores
        .runs
        .controls_after(&RunId::from(run_id), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect()
}
