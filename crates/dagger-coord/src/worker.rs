//! One attempt of one node (or one fan-out invocation): resolve inputs,
//! check schemas, reuse a memoized output, execute with timeout and
//! cancellation, store the output. What it returns is the machine's
//! [`Outcome`]; `exec.rs` spawns attempts and reports their outcomes.

use crate::machine::graph::{ActionRef, DefRef};
use crate::machine::msg::{Failure, Outcome};
use dagger_core::store::{ArtifactId, AttemptOutcome, AttemptRecord, LogSink, NodeRunRecord};
use dagger_core::{Cache, ErrorClass, NodeId, NodeStatus, Permanent, RunId, Stores, now_millis};
use dagger_dag_flow::{
    CacheView, NodeAction, NodeCtx, NodeDef, NodeInputs, NodeOutput, WorkflowDef,
};
use serde_json::{Map, Value};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What every attempt of a run reads.
pub(crate) struct Env {
    pub(crate) dag_name: Arc<str>,
    pub(crate) run_id: RunId,
    pub(crate) cache: Cache,
    pub(crate) stores: Stores,
    pub(crate) app_data: Option<Arc<dyn Any + Send + Sync>>,
    /// Record node runs in the store (false for `Durability::Memory`).
    pub(crate) record: bool,
    /// Hand Completed records of plain nodes back instead of writing them
    /// (runs with hooks: growth is recorded before the completion).
    pub(crate) defer_completion: bool,
    /// Write a cache delta per completed node.
    pub(crate) incremental_cache: bool,
    /// Shared limits every attempt must get a permit from before it executes.
    pub(crate) tracker: Option<dagger_core::ResourceTracker>,
    /// How long a cancelled action gets to return.
    pub(crate) cancel_grace: Duration,
    /// Where actions execute when not in this process (see `remote.rs`).
    pub(crate) node_queue: Option<Arc<dyn dagger_core::store::NodeQueue>>,
    /// The run's span: the parent of every attempt's span.
    pub(crate) span: tracing::Span,
    /// The run's workflow: what [`DefRef::Static`] indexes.
    pub(crate) wf: Arc<WorkflowDef>,
    /// The actions of the workflow's nodes: what [`ActionRef::Table`] indexes.
    pub(crate) actions: Vec<RunAction>,
}

/// An action of the run's table, with its metric handles (looked up once
/// per run, not per attempt).
pub(crate) struct RunAction {
    pub(crate) name: Arc<str>,
    pub(crate) action: Arc<dyn NodeAction>,
    pub(crate) metrics: Arc<dagger_core::metrics::ActionMetrics>,
}

impl RunAction {
    /// `action`, registered as `name`, with its metric handles.
    pub(crate) fn new(name: &str, action: Arc<dyn NodeAction>) -> Self {
        Self {
            name: Arc::from(name),
            action,
            metrics: dagger_core::metrics::action(name),
        }
    }
}

impl Env {
    /// The definition `d` refers to.
    pub(crate) fn def<'a>(&'a self, d: &'a DefRef) -> &'a NodeDef {
        match d {
            DefRef::Static(i) => &self.wf.nodes[*i as usize],
            DefRef::Dynamic(def) => def,
        }
    }

    /// The action `a` refers to.
    pub(crate) fn action<'a>(&'a self, a: &'a ActionRef) -> &'a Arc<dyn NodeAction> {
        match a {
            ActionRef::Table(i) => &self.actions[*i as usize].action,
            ActionRef::Owned(action) => action,
        }
    }
}

/// One attempt to run.
pub(crate) struct Attempt {
    pub(crate) invocation: Option<u32>,
    pub(crate) attempt: u32,
    pub(crate) node_id: Arc<str>,
    pub(crate) def: DefRef,
    pub(crate) action: ActionRef,
    /// The fan-out element.
    pub(crate) item: Option<Arc<Value>>,
    pub(crate) overrides: Option<Map<String, Value>>,
}

/// The span of an attempt.
pub(crate) fn attempt_span(env: &Env, a: &Attempt) -> tracing::Span {
    tracing::info_span!(parent: &env.span, "node", run_id = %env.run_id, node_id = %a.node_id, attempt = a.attempt)
}

/// Runs one attempt and records how it ended; `cancel` becomes the
/// action's `ctx.cancel` (moved, not cloned: a clone of a token locks its
/// tree, which every attempt of a run shares).
pub(crate) async fn attempt(shared: &Env, attempt: Attempt, cancel: CancellationToken) -> Outcome {
    let node_id = attempt.node_id.clone();
    // Records the attempt if it is dropped before it ends (an action that
    // ignored its cancellation past the grace period, an aborted run).
    let trace = Trace::new(shared, &attempt);
    // The action's own panic is caught around its execution (see `run`);
    // this one catches panics in the rest of the attempt (a schema, a
    // store), so the run always hears of the attempt.
    // Boxed (under 1 KiB, so the allocator's fast path): the task that runs
    // attempts is copied a few times per spawn and per attempt, and this is
    // most of its size.
    let result =
        match dagger_core::catch_panic(Box::pin(run(shared, attempt, cancel, &trace))).await {
            Ok(r) => r,
            Err(p) => Ok(Outcome::Failed(panic_failure(&node_id, &p))),
        };
    match result {
        // A success was recorded with its completion (one commit for both).
        Ok(r @ Outcome::Succeeded { .. }) => {
            trace.disarm();
            r
        }
        Ok(r) => match trace.record_end(shared, &r).await {
            Ok(()) => r,
            Err(e) => Outcome::StoreFailed(e.to_string()),
        },
        Err(e) => {
            trace.disarm();
            Outcome::StoreFailed(e.to_string())
        }
    }
}

/// A failed attempt for a panic in node `node_id`'s attempt: an ordinary
/// (retryable) error, `node `id`: panicked: <msg>`.
pub(crate) fn panic_failure(node_id: &str, p: &dagger_core::Panicked) -> Failure {
    Failure {
        class: ErrorClass::Error,
        message: format!("node `{node_id}`: {p}"),
    }
}

fn resolve_inputs(shared: &Env, a: &Attempt, def: &NodeDef) -> Result<NodeInputs, Failure> {
    let mut inputs = NodeInputs::new();
    for spec in &def.inputs {
        let value = shared.cache.resolve_input(spec).map_err(|e| Failure {
            class: ErrorClass::Permanent,
            message: format!("node `{}`: {e}", a.node_id),
        })?;
        inputs.insert(&spec.name, value);
    }
    if let Some(overrides) = &a.overrides {
        for (k, v) in overrides {
            inputs.insert(k, Arc::new(v.clone()));
        }
    }
    if let (Some(item), Some(index)) = (&a.item, a.invocation) {
        inputs.insert("item", item.clone());
        inputs.insert("index", Arc::new(Value::from(index)));
    }
    Ok(inputs)
}

fn invocation_key(a: &Attempt) -> String {
    a.invocation.map(|i| i.to_string()).unwrap_or_default()
}

pub(crate) fn record(
    shared: &Env,
    node_id: &str,
    invocation_key: String,
    action: &str,
    attempt: u32,
    state: NodeStatus,
) -> NodeRunRecord {
    NodeRunRecord {
        run_id: shared.run_id.clone(),
        node_id: NodeId::from(node_id),
        invocation_key,
        action: action.to_string(),
        attempt,
        state,
        input_hash: None,
        output_artifact_id: None,
        error: None,
        started_at: None,
        finished_at: None,
        metadata: Value::Null,
    }
}

async fn run(
    shared: &Env,
    a: Attempt,
    cancel: CancellationToken,
    trace: &Trace,
) -> Result<Outcome, dagger_core::StoreError> {
    let def = shared.def(&a.def);
    let action = shared.action(&a.action);
    let inputs = match resolve_inputs(shared, &a, def) {
        Ok(i) => i,
        Err(f) => return Ok(Outcome::Failed(f)),
    };
    if let Some(schema) = action.input_schema()
        && let Err(v) = schema.validate(&inputs.to_value())
    {
        return Ok(Outcome::Failed(Failure {
            class: ErrorClass::Schema,
            message: format!(
                "node `{}`: inputs rejected by action `{}`: {v}",
                a.node_id, def.action
            ),
        }));
    }
    let input_hash = def.cache.then(|| {
        let text = serde_json::to_string(&inputs.to_value()).unwrap_or_default();
        ArtifactId::of(format!("{}\0{text}", def.action).as_bytes()).to_string()
    });
    if let Some(hash) = &input_hash
        && let Some(output) = Box::pin(memoized(shared, &def.action, hash)).await?
    {
        let output = Arc::new(output.with_metadata("cache_hit", Value::Bool(true)));
        let deferred = complete(shared, &a, &output, input_hash.clone(), true, None, trace).await?;
        return Ok(Outcome::Succeeded {
            output,
            cache_hit: true,
            deferred,
        });
    }
    // Rare or optional steps are boxed: the attempt's future (and so each
    // spawned task) stays small when they are not taken.
    let _permit = match &shared.tracker {
        Some(t) => match Box::pin(acquire(t, &cancel)).await {
            Some(p) => Some(p),
            None => return Ok(Outcome::Cancelled),
        },
        None => None,
    };
    // Only records read the start time (a run in memory reads no clock here).
    let started_at = if shared.record {
        let now = now_millis();
        trace.started_at.store(now, Ordering::Relaxed);
        now
    } else {
        0
    };
    tracing::info!(node_id = %a.node_id, action = %def.action, attempt = a.attempt, "node started");
    if shared.record {
        let mut rec = record(
            shared,
            &a.node_id,
            invocation_key(&a),
            &def.action,
            a.attempt,
            NodeStatus::Running,
        );
        rec.started_at = Some(started_at);
        // May be only queued, even with `Sync`: a crash may repeat an
        // in-flight attempt anyway, and the completion's commit covers it.
        Box::pin(shared.stores.runs.put_node_started(rec)).await?;
    }

    let invocation_key = invocation_key(&a);
    // `run_id/node_id/invocation_key`, built without the formatting machinery
    // (it showed up at 1,400 instructions per node in profiles).
    let mut idempotency_key = String::with_capacity(
        shared.run_id.as_str().len() + a.node_id.len() + invocation_key.len() + 2,
    );
    idempotency_key.push_str(shared.run_id.as_str());
    idempotency_key.push('/');
    idempotency_key.push_str(&a.node_id);
    idempotency_key.push('/');
    idempotency_key.push_str(&invocation_key);
    let ctx = NodeCtx {
        dag_name: shared.dag_name.clone(),
        run_id: shared.run_id.clone(),
        node_id: NodeId::new(a.node_id.clone()),
        invocation_key,
        attempt: a.attempt,
        inputs,
        cache: CacheView::new(shared.cache.clone()),
        idempotency_key,
        cancel,
        app_data: shared.app_data.clone(),
        logs: trace.logs.clone(),
    };
    let timeout = def
        .timeout
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(Duration::from_secs_f64);
    // Cancellation is cooperative: the action sees `ctx.cancel` and returns;
    // the run loop drops attempts that ignore it after its grace period.
    let exec = async {
        match &shared.node_queue {
            // Boxed: the dispatch's state is large and most runs execute locally.
            Some(q) => Box::pin(crate::remote::execute(q, &def.action, &ctx, timeout)).await,
            None => match dagger_core::catch_panic(action.execute(&ctx)).await {
                Ok(r) => r,
                Err(p) => Err(panic_failure(&a.node_id, &p).message.into()),
            },
        }
    };
    tokio::pin!(exec);
    let result = match timeout {
        None => Ok(exec.await),
        Some(t) => {
            Box::pin(async {
                tokio::select! {
                    r = &mut exec => Ok(r),
                    () = tokio::time::sleep(t) => {
                        ctx.cancel.cancel();
                        let _ = tokio::time::timeout(shared.cancel_grace, &mut exec).await;
                        Err(t)
                    }
                }
            })
            .await
        }
    };
    if ctx.cancel.is_cancelled() && matches!(result, Ok(Err(_))) {
        return Ok(Outcome::Cancelled);
    }
    let output = match result {
        Err(t) => {
            return Ok(Outcome::Failed(Failure {
                class: ErrorClass::Timeout,
                message: format!(
                    "node `{}` timed out after {:.3}s",
                    a.node_id,
                    t.as_secs_f64()
                ),
            }));
        }
        Ok(Err(e)) => {
            let class = if Permanent::is_permanent(e.as_ref()) {
                ErrorClass::Permanent
            } else {
                ErrorClass::Error
            };
            return Ok(Outcome::Failed(Failure {
                class,
                message: e.to_string(),
            }));
        }
        Ok(Ok(output)) if !output.success => {
            trace.set_detail(&output.outputs);
            let message = match &output.outputs {
                Value::String(s) => s.clone(),
                Value::Null => format!("action `{}` reported failure", def.action),
                other => other.to_string(),
            };
            return Ok(Outcome::Failed(Failure {
                class: ErrorClass::Error,
                message,
            }));
        }
        Ok(Ok(output)) => output,
    };
    if let Some(schema) = action.output_schema()
        && let Err(v) = schema.validate(&output.outputs)
    {
        return Ok(Outcome::Failed(Failure {
            class: ErrorClass::Schema,
            message: format!(
                "node `{}`: output rejected by action `{}`: {v}",
                a.node_id, def.action
            ),
        }));
    }
    let output = Arc::new(output);
    let deferred = complete(
        shared,
        &a,
        &output,
        input_hash,
        false,
        Some(started_at),
        trace,
    )
    .await?;
    Ok(Outcome::Succeeded {
        output,
        cache_hit: false,
        deferred,
    })
}

/// A permit of the shared resource tracker, or `None` when cancelled first.
async fn acquire(
    tracker: &dagger_core::ResourceTracker,
    cancel: &CancellationToken,
) -> Option<dagger_core::ResourcePermit> {
    tokio::select! {
        p = tracker.acquire() => Some(p),
        () = cancel.cancelled() => None,
    }
}

async fn memoized(
    shared: &Env,
    action: &str,
    hash: &str,
) -> Result<Option<NodeOutput>, dagger_core::StoreError> {
    let Some(id) = shared.stores.runs.find_memoized(action, hash).await? else {
        return Ok(None);
    };
    let bytes = shared.stores.artifacts.get_artifact(&id).await?;
    let outputs: Value =
        serde_json::from_slice(&bytes).map_err(|e| dagger_core::StoreError::Decode {
            what: format!("artifact {id}"),
            reason: e.to_string(),
        })?;
    Ok(Some(NodeOutput::success(outputs)))
}

/// Publishes a successful attempt: the cache (plain nodes) and the store.
async fn complete(
    shared: &Env,
    a: &Attempt,
    output: &NodeOutput,
    input_hash: Option<String>,
    cache_hit: bool,
    started_at: Option<i64>,
    trace: &Trace,
) -> Result<Option<Box<NodeRunRecord>>, dagger_core::StoreError> {
    // Boxed: its records make the future large, and most runs in memory never take it.
    let deferred = if shared.record {
        Box::pin(record_completion(
            shared, a, output, input_hash, cache_hit, started_at, trace,
        ))
        .await?
    } else {
        None
    };
    // Dependents start only after this: they always see the output.
    if a.invocation.is_none() {
        shared
            .cache
            .insert_object_shared(&a.node_id, &output.outputs);
    }
    Ok(deferred)
}

/// Writes a successful attempt's artifact, Completed record (or hands it
/// back, deferred) and cache delta.
async fn record_completion(
    shared: &Env,
    a: &Attempt,
    output: &NodeOutput,
    input_hash: Option<String>,
    cache_hit: bool,
    started_at: Option<i64>,
    trace: &Trace,
) -> Result<Option<Box<NodeRunRecord>>, dagger_core::StoreError> {
    let mut deferred = None;
    let bytes = serde_json::to_vec(&output.outputs).unwrap_or_default();
    // A success that logged nothing is the node's Completed record itself
    // (`dagger_core::store::list_attempts` rebuilds it): one row per
    // completion, not two. One that logged is queued ahead of the node's
    // record, so both land in the same commit.
    if !trace.logs.is_empty() {
        let mut attempt = trace.attempt_record(shared, AttemptOutcome::Succeeded, None);
        attempt.output_artifact_id = Some(ArtifactId::of(&bytes));
        shared.stores.runs.put_attempt(attempt).await?;
    }
    trace.disarm();
    let mut rec = record(
        shared,
        &a.node_id,
        invocation_key(a),
        &shared.def(&a.def).action,
        a.attempt,
        NodeStatus::Completed,
    );
    rec.input_hash = input_hash;
    rec.started_at = started_at;
    rec.finished_at = Some(now_millis());
    let mut meta = output.metadata.clone();
    if cache_hit {
        meta.insert("cache_hit".into(), Value::Bool(true));
    }
    rec.metadata = Value::Object(meta);
    if shared.defer_completion && a.invocation.is_none() {
        rec.output_artifact_id = Some(shared.stores.artifacts.put_artifact(bytes).await?);
        deferred = Some(Box::new(rec));
    } else {
        // Output and record in one write where the store can (one commit
        // to wait for with `Sync`).
        shared
            .stores
            .runs
            .put_completed_node_run(&*shared.stores.artifacts, bytes, rec)
            .await?;
    }
    if shared.incremental_cache && a.invocation.is_none() {
        let entry = dagger_core::store::SnapshotEntry::Delta {
            namespace: a.node_id.to_string(),
            data: output.outputs.clone(),
        };
        shared
            .stores
            .snapshots
            .append_snapshot(shared.run_id.as_str(), entry)
            .await?;
    }
    Ok(deferred)
}

/// Runs a node's `failure:` action once. A handler that fails or panics
/// is logged; the node's failure stands.
pub(crate) async fn failure_handler(
    shared: &Env,
    node_id: Arc<str>,
    handler: Arc<dyn NodeAction>,
    error: String,
) {
    let mut inputs = Map::new();
    inputs.insert("failed_node".into(), Value::String(node_id.to_string()));
    inputs.insert("error".into(), Value::String(error));
    let mut ctx = NodeCtx::for_test(&format!("{node_id}.failure"), inputs);
    ctx.dag_name = shared.dag_name.clone();
    ctx.run_id = shared.run_id.clone();
    ctx.cache = CacheView::new(shared.cache.clone());
    ctx.idempotency_key = format!("{}/{node_id}/failure", shared.run_id);
    ctx.app_data = shared.app_data.clone();
    match dagger_core::catch_panic(handler.execute(&ctx)).await {
        Ok(Ok(out)) => shared
            .cache
            .insert(&node_id, "failure_handler", out.outputs),
        Ok(Err(e)) => tracing::warn!(node_id = %node_id, error = %e, "failure handler failed"),
        Err(p) => {
            tracing::error!(node_id = %node_id, error = %p, "failure handler panicked");
            shared.cache.insert(
                &node_id,
                "failure_handler_error",
                Value::String(p.to_string()),
            );
        }
    }
}

/// What an attempt records about itself while it runs; recorded when it
/// ends (or, if its future is dropped first, when dropped).
pub(crate) struct Trace {
    /// The action's log lines and captured streams.
    logs: LogSink,
    /// When the action started (ms since the epoch).
    started_at: AtomicI64,
    /// A failed output's detail.
    detail: parking_lot::Mutex<Value>,
    /// Who the attempt is (`None` for a run that records nothing).
    who: Option<Who>,
    /// Set once the attempt is recorded (or needs no record).
    done: AtomicBool,
}

struct Who {
    node_id: Arc<str>,
    invocation_key: String,
    attempt: u32,
    action: String,
    stores: Stores,
    run_id: RunId,
}

impl Trace {
    fn new(shared: &Env, a: &Attempt) -> Self {
        let who = shared.record.then(|| Who {
            node_id: a.node_id.clone(),
            invocation_key: invocation_key(a),
            attempt: a.attempt,
            action: shared.def(&a.def).action.clone(),
            stores: shared.stores.clone(),
            run_id: shared.run_id.clone(),
        });
        Self {
            logs: if shared.record {
                LogSink::new()
            } else {
                LogSink::disabled()
            },
            started_at: AtomicI64::new(if shared.record { now_millis() } else { 0 }),
            detail: parking_lot::Mutex::new(Value::Null),
            who,
            done: AtomicBool::new(false),
        }
    }

    fn set_detail(&self, detail: &Value) {
        if self.who.is_some() {
            *self.detail.lock() = detail.clone();
        }
    }

    fn disarm(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// The record of this attempt, ended now with `outcome`.
    fn attempt_record(
        &self,
        shared: &Env,
        outcome: AttemptOutcome,
        error: Option<String>,
    ) -> AttemptRecord {
        let (node_id, invocation_key, attempt, action) = match &self.who {
            Some(w) => (
                &*w.node_id,
                w.invocation_key.clone(),
                w.attempt,
                w.action.clone(),
            ),
            None => ("", String::new(), 0, String::new()),
        };
        AttemptRecord {
            run_id: shared.run_id.clone(),
            node_id: NodeId::from(node_id),
            invocation_key,
            attempt,
            action,
            outcome,
            error,
            output: std::mem::take(&mut *self.detail.lock()),
            output_artifact_id: None,
            started_at: self.started_at.load(Ordering::Relaxed),
            finished_at: now_millis(),
            logs: self.logs.take(),
        }
    }

    /// Records an attempt that did not succeed.
    async fn record_end(
        &self,
        shared: &Env,
        result: &Outcome,
    ) -> Result<(), dagger_core::StoreError> {
        if self.who.is_none() || self.done.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (outcome, error) = match result {
            Outcome::Succeeded { .. } => (AttemptOutcome::Succeeded, None),
            Outcome::Cancelled | Outcome::StoreFailed(_) => (AttemptOutcome::Cancelled, None),
            Outcome::Failed(f) => (outcome_of(f), Some(f.message.clone())),
        };
        let record = self.attempt_record(shared, outcome, error);
        self.disarm();
        shared.stores.runs.put_attempt(record).await
    }
}

/// The outcome a failure records: timed out, panicked (`…: panicked: …`,
/// also from a worker process) or failed.
fn outcome_of(f: &Failure) -> AttemptOutcome {
    if f.class == ErrorClass::Timeout {
        AttemptOutcome::TimedOut
    } else if f.message.contains(": panicked: ") || f.message.starts_with("panicked: ") {
        AttemptOutcome::Panicked
    } else {
        AttemptOutcome::Failed
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        let Some(who) = self.who.take() else { return };
        let record = AttemptRecord {
            run_id: who.run_id.clone(),
            node_id: NodeId::from(&*who.node_id),
            invocation_key: who.invocation_key,
            attempt: who.attempt,
            action: who.action,
            outcome: AttemptOutcome::Cancelled,
            error: Some(format!(
                "node `{}`: attempt dropped (cancelled, and the action did not stop within its grace period)",
                who.node_id
            )),
            output: Value::Null,
            output_artifact_id: None,
            started_at: self.started_at.load(Ordering::Relaxed),
            finished_at: now_millis(),
            logs: self.logs.take(),
        };
        // Stores that queue (SQLite, memory) take it at once; others in a task.
        let runs = who.stores.runs.clone();
        let mut put = Box::pin(async move { runs.put_attempt(record).await });
        if futures_util::FutureExt::now_or_never(&mut put).is_none()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(put);
        }
    }
}
