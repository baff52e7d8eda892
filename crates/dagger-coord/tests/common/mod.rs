//! Test actions and helpers shared by the coordinator's tests.
#![allow(dead_code, unreachable_pub)]

use dagger_coord::{ActionRegistry, NodeAction, NodeCtx, NodeOutput};
use dagger_core::{BoxError, InputSpec, Stores};
use dagger_dag_flow::{DagConfig, DagExecutor, NodeDef, WorkflowDef};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Records the order nodes start and finish in, and concurrency.
#[derive(Default)]
pub struct Probe {
    pub started: Mutex<Vec<String>>,
    pub finished: Mutex<Vec<String>>,
    pub current: AtomicUsize,
    pub max: AtomicUsize,
    pub runs: Mutex<HashMap<String, usize>>,
    pub cancelled: Mutex<Vec<String>>,
}

impl Probe {
    pub fn enter(&self, id: &str) {
        self.started.lock().push(id.to_string());
        *self.runs.lock().entry(id.to_string()).or_default() += 1;
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    pub fn exit(&self, id: &str) {
        self.current.fetch_sub(1, Ordering::SeqCst);
        self.finished.lock().push(id.to_string());
    }
    pub fn runs_of(&self, id: &str) -> usize {
        self.runs.lock().get(id).copied().unwrap_or(0)
    }
    pub fn position(&self, id: &str) -> usize {
        self.finished
            .lock()
            .iter()
            .position(|x| x == id)
            .unwrap_or(usize::MAX)
    }
    pub fn start_position(&self, id: &str) -> usize {
        self.started
            .lock()
            .iter()
            .position(|x| x == id)
            .unwrap_or(usize::MAX)
    }
}

/// `work`: sleeps `ms` (input, default 0) honouring cancellation, panics in
/// the first `panic_times` attempts and fails the first `fail_times` (inputs), returns its inputs plus `{"node": id}`.
pub struct Work(pub Arc<Probe>);

#[async_trait::async_trait]
impl NodeAction for Work {
    fn name(&self) -> &str {
        "work"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let id = ctx.node_id.to_string();
        self.0.enter(&id);
        let ms = ctx.inputs.get("ms").and_then(Value::as_u64).unwrap_or(0);
        if ms > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                () = ctx.cancel.cancelled() => {
                    self.0.cancelled.lock().push(id.clone());
                    self.0.exit(&id);
                    return Err("cancelled".into());
                }
            }
        }
        let fail_times = ctx
            .inputs
            .get("fail_times")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let panic_times = ctx
            .inputs
            .get("panic_times")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.0.exit(&id);
        if u64::from(ctx.attempt) <= panic_times {
            panic!("planned panic {} of {id}", ctx.attempt);
        }
        if u64::from(ctx.attempt) <= fail_times {
            return Err(format!("planned failure {} of {id}", ctx.attempt).into());
        }
        let mut out = ctx.inputs.to_value();
        out["node"] = json!(id);
        out["attempt"] = json!(ctx.attempt);
        let tokens = ctx
            .inputs
            .get("tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(NodeOutput::success(out).with_tokens(tokens))
    }
}

/// `add`: returns `{"sum": a + b}`.
pub struct Add;

#[async_trait::async_trait]
impl NodeAction for Add {
    fn name(&self) -> &str {
        "add"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let a: f64 = ctx.input_as("a")?;
        let b: f64 = ctx.input_as("b")?;
        Ok(NodeOutput::success(json!({ "sum": a + b })))
    }
}

/// `on_fail`: counts its executions.
pub struct OnFail(pub Arc<AtomicUsize>);

#[async_trait::async_trait]
impl NodeAction for OnFail {
    fn name(&self) -> &str {
        "on_fail"
    }
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(NodeOutput::success(
            json!({ "handled": ctx.inputs["failed_node"].clone() }),
        ))
    }
}

pub fn registry(probe: &Arc<Probe>) -> ActionRegistry {
    let r = ActionRegistry::new();
    r.register(Arc::new(Work(probe.clone())));
    r.register(Arc::new(Add));
    r
}

/// A node running `work` with literal inputs.
pub fn node(id: &str, deps: &[&str], inputs: Value) -> NodeDef {
    NodeDef {
        id: id.to_string(),
        action: "work".to_string(),
        dependencies: deps.iter().map(|d| d.to_string()).collect(),
        inputs: match inputs {
            Value::Object(m) => m
                .into_iter()
                .map(|(k, v)| InputSpec::literal(k, v))
                .collect(),
            _ => Vec::new(),
        },
        ..NodeDef::default()
    }
}

pub fn workflow(name: &str, nodes: Vec<NodeDef>) -> WorkflowDef {
    WorkflowDef {
        name: name.to_string(),
        description: None,
        author: None,
        version: None,
        signature: None,
        tags: Vec::new(),
        config: None,
        inputs: None,
        schedules: Vec::new(),
        nodes,
    }
}

/// An executor holding `wf`. Synchronous: given opened stores,
/// `DagExecutor::new` does no I/O, so its future is ready at once.
pub fn executor(
    config: DagConfig,
    registry: ActionRegistry,
    wf: WorkflowDef,
    stores: Stores,
) -> DagExecutor {
    use futures_util::FutureExt;
    let mut ex = DagExecutor::new(Some(config), registry, stores)
        .now_or_never()
        .expect("opened stores: nothing to wait for")
        .unwrap();
    ex.insert_workflow(wf, "<test>").unwrap();
    ex
}

/// Runs workflow `w` of `nodes` once on in-memory stores with the probe's
/// actions and returns its report.
pub async fn run_in_memory(
    config: DagConfig,
    probe: &Arc<Probe>,
    nodes: Vec<NodeDef>,
) -> dagger_coord::DagExecutionReport {
    let mut ex = executor(
        config,
        registry(probe),
        workflow("w", nodes),
        Stores::memory(),
    );
    dagger_coord::execute_dag(&mut ex, &dagger_core::Cache::new(), "w")
        .await
        .unwrap()
}
