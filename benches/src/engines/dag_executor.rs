//! `dag-executor` 0.1.0 in its in-memory mode (`persist(false)`), concurrency
//! 1024. Each task reads its first dependency's published output from the
//! shared context (the peer's equivalent of input resolution) and returns a
//! small JSON value, which the executor publishes for its dependents.

use super::Timing;
use crate::shape::Shape;
use dag_executor::prelude::{BasicTask, Dag, DagExecutor};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Builds `shape` as a `dag-executor` DAG.
pub fn build(shape: &Shape) -> Dag {
    let mut dag = Dag::new();
    for (i, deps) in shape.deps.iter().enumerate() {
        let input: Option<Arc<str>> = deps.first().map(|&d| Arc::from(Shape::name(d as usize)));
        let task = BasicTask::new(Shape::name(i), move |ctx| {
            let input = input.clone();
            async move {
                let x = input
                    .and_then(|k| ctx.get(&k))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                Ok::<Value, _>(json!(x + 1))
            }
        })
        .with_deps(deps.iter().map(|&d| Shape::name(d as usize)));
        dag.add_task(Arc::new(task)).expect("unique task ids");
    }
    dag
}

/// The executor: in memory, concurrency 1024.
pub fn executor() -> DagExecutor {
    DagExecutor::builder()
        .persist(false)
        .concurrency(1024)
        .build()
}

/// Runs `dag` to completion, asserting success.
pub async fn run(ex: &DagExecutor, dag: Dag) {
    let report = ex.run(dag).await.expect("dag-executor run starts");
    assert!(report.is_success(), "dag-executor run failed");
}

/// Builds and runs `shape` once.
pub async fn build_and_run(shape: &Shape) -> Timing {
    let t0 = Instant::now();
    let dag = build(shape);
    let ex = executor();
    let build = t0.elapsed();
    let t1 = Instant::now();
    run(&ex, dag).await;
    Timing {
        build,
        run: t1.elapsed(),
    }
}
