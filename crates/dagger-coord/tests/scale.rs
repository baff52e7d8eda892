//! A 100,000-node chain runs to completion on a thread with a 2 MiB stack
//! (the default of a spawned thread): no part of a run (validation at
//! insert, scheduling, skip propagation, the report) walks the graph
//! recursively. A recursive walk aborts the test process (SIGABRT).

mod common;

use common::*;
use dagger_core::{Cache, NodeStatus, RunStatus, Stores};
use dagger_dag_flow::{DagConfig, NodeDef};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

const STACK: usize = 2 << 20;

fn chain(n: usize, first: serde_json::Value) -> Vec<NodeDef> {
    (0..n)
        .map(|i| {
            let prev = (i > 0).then(|| format!("n{}", i - 1));
            let deps: Vec<&str> = prev.iter().map(String::as_str).collect();
            let inputs = if i == 0 { first.clone() } else { json!({}) };
            node(&format!("n{i}"), &deps, inputs)
        })
        .collect()
}

/// Runs `nodes` on a current-thread runtime inside a thread with a
/// [`STACK`]-byte stack, in parallel or sequential mode.
fn run_on_small_stack(
    nodes: Vec<NodeDef>,
    parallel: bool,
) -> (RunStatus, usize, usize, NodeStatus) {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let probe = Arc::new(Probe::default());
                let config = DagConfig {
                    enable_parallel_execution: parallel,
                    ..DagConfig::default()
                };
                let started = Instant::now();
                let mut ex = executor(
                    config,
                    registry(&probe),
                    workflow("w", nodes),
                    Stores::memory(),
                );
                let report = dagger_coord::execute_dag(&mut ex, &Cache::new(), "w")
                    .await
                    .expect("the run ends");
                eprintln!(
                    "100k chain run (parallel={parallel}): {:?}",
                    started.elapsed()
                );
                (
                    report.status,
                    report.metrics.nodes_completed,
                    report.metrics.nodes_skipped,
                    report
                        .get_node_state("n99999")
                        .map_or(NodeStatus::Pending, |s| s.status),
                )
            })
        })
        .expect("spawn")
        .join()
        .expect("the run thread finished")
}

#[test]
fn a_100k_node_chain_runs_to_completion_on_a_2mib_stack() {
    let (status, completed, _, last) = run_on_small_stack(chain(100_000, json!({})), true);
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(completed, 100_000);
    assert_eq!(last, NodeStatus::Completed);
}

#[test]
fn a_100k_node_chain_whose_first_node_fails_skips_the_rest_on_a_2mib_stack() {
    let (status, completed, skipped, last) =
        run_on_small_stack(chain(100_000, json!({"fail_times": 99})), false);
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(completed, 0);
    assert_eq!(skipped, 99_999);
    assert_eq!(last, NodeStatus::Skipped);
}
