//! Dagger through its public API: a workflow of `noop` nodes run by the
//! coordinator. Every node goes through the real path: the action is looked
//! up in the registry, its input (a reference to its first dependency's
//! output) is resolved from the cache, its output is written to the cache and
//! events go to the (empty) hook list.

use super::Timing;
use crate::shape::Shape;
use dagger_coord::{ActionRegistry, NodeAction, NodeCtx, NodeOutput, execute_dag};
use dagger_core::store::Durability;
use dagger_core::{BoxError, Cache, InputSpec, Stores};
use dagger_dag_flow::{DagConfig, DagExecutor, NodeDef, WorkflowDef, validate_workflow};
use dagger_storage::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workflow name every benchmark workflow has.
pub const WORKFLOW: &str = "bench";

/// `noop`: returns `{"v": x + 1}` where `x` is its input (0 when absent).
#[derive(Debug, Default)]
pub struct Noop;

#[async_trait::async_trait]
impl NodeAction for Noop {
    fn name(&self) -> &str {
        "noop"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let x = ctx.inputs.get("x").and_then(Value::as_u64).unwrap_or(0);
        Ok(NodeOutput::success(json!({ "v": x + 1 })))
    }
}

/// `sleep`: sleeps for its input `ms` milliseconds (D7).
#[derive(Debug, Default)]
pub struct Sleep;

#[async_trait::async_trait]
impl NodeAction for Sleep {
    fn name(&self) -> &str {
        "sleep"
    }

    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        let ms = ctx.inputs.get("ms").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(NodeOutput::success(json!({ "slept_ms": ms })))
    }
}

/// A registry with [`Noop`] and [`Sleep`].
pub fn registry() -> ActionRegistry {
    let r = ActionRegistry::new();
    r.register(Arc::new(Noop));
    r.register(Arc::new(Sleep));
    r
}

/// The configuration the benches use: the default, with the concurrency
/// limit raised to the 1024 `dag-executor` is given, so neither engine is
/// throttled by its limit.
pub fn config() -> DagConfig {
    DagConfig {
        max_parallel_nodes: 1024,
        ..DagConfig::default()
    }
}

/// `shape` as a workflow of `noop` nodes; each node with dependencies reads
/// its first dependency's output `v` as input `x`.
pub fn workflow(shape: &Shape) -> WorkflowDef {
    let nodes = shape
        .deps
        .iter()
        .enumerate()
        .map(|(i, deps)| NodeDef {
            id: Shape::name(i),
            action: "noop".to_string(),
            dependencies: deps.iter().map(|&d| Shape::name(d as usize)).collect(),
            inputs: deps
                .first()
                .map(|&d| vec![InputSpec::reference("x", format!("n{d}.v"))])
                .unwrap_or_default(),
            ..NodeDef::default()
        })
        .collect();
    WorkflowDef {
        name: WORKFLOW.to_string(),
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

/// An executor holding `wf` (validated), recording in `stores`.
pub async fn executor(wf: WorkflowDef, config: DagConfig, stores: Stores) -> DagExecutor {
    validate_workflow(&wf, "<bench>").expect("benchmark workflows are valid");
    let mut ex = DagExecutor::new(Some(config), registry(), stores)
        .await
        .expect("valid config");
    ex.insert_workflow(wf, "<bench>")
        .expect("first workflow of its name");
    ex
}

/// Builds `shape` (workflow, validation, executor) and returns the executor.
pub async fn build(shape: &Shape, stores: Stores) -> DagExecutor {
    executor(workflow(shape), config(), stores).await
}

/// Runs the workflow held by `ex` once to completion, asserting that every node completed.
pub async fn run(ex: &mut DagExecutor, nodes: usize) {
    let cache = Cache::new();
    let report = execute_dag(ex, &cache, WORKFLOW)
        .await
        .expect("benchmark run starts");
    assert!(report.succeeded(), "benchmark run failed: {report:?}");
    assert_eq!(report.metrics.nodes_completed as usize, nodes);
}

/// Builds and runs `shape` once in memory (`Stores::memory()`, no recording).
pub async fn build_and_run(shape: &Shape) -> Timing {
    let t0 = Instant::now();
    let mut ex = build(shape, Stores::memory()).await;
    let build = t0.elapsed();
    let t1 = Instant::now();
    run(&mut ex, shape.len()).await;
    Timing {
        build,
        run: t1.elapsed(),
    }
}

/// Builds and runs `shape` once with every state change recorded in a fresh
/// SQLite file with `durability` (D6). The run time includes the final
/// flush, so every record is in the database when it stops.
pub async fn build_and_run_sqlite(shape: &Shape, durability: Durability) -> Timing {
    let dir = tempfile::tempdir().expect("temp dir");
    let location = format!("sqlite:{}", dir.path().join("bench.db").display());
    let store = SqliteStore::open_with(
        &location,
        SqliteOptions {
            durability,
            ..SqliteOptions::default()
        },
    )
    .await
    .expect("SQLite store opens");
    let t0 = Instant::now();
    let mut ex = build(shape, store.stores()).await;
    let build = t0.elapsed();
    let t1 = Instant::now();
    run(&mut ex, shape.len()).await;
    store.flush().await.expect("SQLite store flushes");
    let run = t1.elapsed();
    drop(ex);
    drop(store);
    Timing { build, run }
}

/// `shape` written as a workflow YAML file (D5), the same workflow as [`workflow`].
pub fn yaml(shape: &Shape) -> String {
    use std::fmt::Write as _;
    let mut out = format!("name: {WORKFLOW}\nnodes:\n");
    for (i, deps) in shape.deps.iter().enumerate() {
        let _ = writeln!(out, "  - id: n{i}\n    action: noop");
        if let Some(&first) = deps.first() {
            let list: Vec<String> = deps.iter().map(|&d| format!("n{d}")).collect();
            let _ = writeln!(out, "    dependencies: [{}]", list.join(", "));
            let _ = writeln!(
                out,
                "    inputs:\n      - name: x\n        reference: n{first}.v"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_form_loads_to_the_same_workflow() {
        let shape = Shape::layered(4, 5, 2);
        let loaded = dagger_dag_flow::load_yaml_str(&yaml(&shape), "d5.yaml").expect("valid YAML");
        assert_eq!(loaded, workflow(&shape));
    }
}
