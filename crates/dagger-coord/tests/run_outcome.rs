//! A run that did not complete cannot pass for a success: the report is
//! `#[must_use]` (see the doctest on `DagExecutionReport`) and
//! `into_result()` makes it an error that names the run, its status and
//! the failed node.

mod common;

use common::*;
use dagger_coord::{CoordError, Coordinator, RunFailed};
use dagger_core::{Cache, NodeStatus, RunStatus, Stores};
use dagger_dag_flow::RetryStrategy;
use dagger_dag_flow::{DagConfig, DagExecutor, NodeDef};
use serde_json::json;
use std::sync::Arc;

fn executor_of(nodes: Vec<NodeDef>) -> DagExecutor {
    let probe = Arc::new(Probe::default());
    let config = DagConfig {
        retry_strategy: RetryStrategy::Immediate,
        ..DagConfig::default()
    };
    executor(
        config,
        registry(&probe),
        workflow("w", nodes),
        Stores::memory(),
    )
}

/// Code shaped like the seeds: `run_parallel(..).await?` then success.
async fn seed_shaped(ex: &mut DagExecutor, run_id: &str) -> Result<String, CoordError> {
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let report = Coordinator::new(Vec::new(), 8, 8)
        .run_parallel(ex, &Cache::new(), "w", run_id, rx)
        .await?
        .into_result()?;
    Ok(format!("done: {} nodes", report.completed_nodes()))
}

#[tokio::test]
async fn a_failed_run_is_an_error_naming_the_run_status_and_node() {
    let nodes = vec![
        node("ok", &[], json!({})),
        node("bad", &["ok"], json!({"fail_times": 9})),
        node("child", &["bad"], json!({})),
    ];
    let mut ex = executor_of(nodes);
    let err = seed_shaped(&mut ex, "run-f").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "run `run-f` (workflow `w`) ended Failed: failed nodes: bad; \
         node `bad` failed: planned failure 1 of bad"
    );
    let CoordError::RunFailed(RunFailed { report }) = err else {
        panic!("not a RunFailed: {err:?}");
    };
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        report.get_node_state("child").unwrap().status,
        NodeStatus::Skipped,
        "the report comes with the error"
    );
}

#[tokio::test]
async fn a_cancelled_run_is_an_error_too() {
    let mut ex = executor_of(vec![node("slow", &[], json!({"ms": 30_000}))]);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(());
    let report = Coordinator::new(Vec::new(), 8, 8)
        .run_parallel(&mut ex, &Cache::new(), "w", "run-c", rx)
        .await
        .unwrap();
    let err = report.into_result().unwrap_err();
    assert_eq!(err.report.status, RunStatus::Cancelled);
    assert_eq!(
        err.to_string(),
        "run `run-c` (workflow `w`) ended Cancelled: run cancelled"
    );
}

#[tokio::test]
async fn a_completed_run_passes_through() {
    let mut ex = executor_of(vec![
        node("a", &[], json!({})),
        node("b", &["a"], json!({})),
    ]);
    assert_eq!(
        seed_shaped(&mut ex, "run-ok").await.unwrap(),
        "done: 2 nodes"
    );
    let report = dagger_coord::execute_dag(&mut ex, &Cache::new(), "w")
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(report.completed_nodes(), 2);
    assert!(report.first_failure().is_none());
}
