//! Runs without hooks complete plain nodes on the worker that ran them
//! (direct release). These check that everything the run loop did for such
//! nodes still holds: limits, conditions, approvals, retries, metrics,
//! durations, stopping.

mod common;

use common::*;
use dagger_core::{NodeStatus, RunStatus};
use dagger_dag_flow::{DagConfig, OnFailure, RetryStrategy};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn quick() -> DagConfig {
    DagConfig {
        retry_strategy: RetryStrategy::LinearMs { delay_ms: 1 },
        ..DagConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_dependents_respect_the_parallel_limit() {
    let probe = Arc::new(Probe::default());
    // `a` releases eight dependents at once; only two may run at a time.
    let mut nodes = vec![node("a", &[], json!({}))];
    for k in 0..8 {
        nodes.push(node(&format!("b{k}"), &["a"], json!({"ms": 20})));
    }
    nodes.push(node("c", &["b0", "b7"], json!({})));
    let config = DagConfig {
        max_parallel_nodes: 2,
        ..quick()
    };
    let r = run_in_memory(config, &probe, nodes).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(probe.max.load(Ordering::SeqCst), 2);
    assert_eq!(r.metrics.nodes_completed, 10);
    assert!(probe.start_position("c") > probe.position("b7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chain_completes_with_every_node_reported() {
    let probe = Arc::new(Probe::default());
    let mut nodes = vec![node("n0", &[], json!({"tokens": 2}))];
    for k in 1..200 {
        nodes.push(node(
            &format!("n{k}"),
            &[&format!("n{}", k - 1)],
            json!({"tokens": 2}),
        ));
    }
    let r = run_in_memory(quick(), &probe, nodes).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.metrics.nodes_completed, 200);
    assert_eq!(r.metrics.iterations, 200);
    assert_eq!(r.metrics.tokens, 400);
    for n in &r.nodes {
        assert_eq!(n.status, NodeStatus::Completed, "{n:?}");
        assert_eq!(n.attempts, 1, "{n:?}");
        assert!(n.duration_ms.is_some(), "{n:?}");
        assert!(n.error.is_none(), "{n:?}");
    }
    let finished = probe.finished.lock().clone();
    let expected: Vec<String> = (0..200).map(|k| format!("n{k}")).collect();
    assert_eq!(finished, expected, "a chain runs in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_node_that_fails_is_retried_by_the_loop() {
    let probe = Arc::new(Probe::default());
    let mut flaky = node("b", &["a"], json!({"fail_times": 2}));
    flaky.try_count = Some(3);
    let nodes = vec![
        node("a", &[], json!({})),
        flaky,
        node("c", &["b"], json!({})),
    ];
    let r = run_in_memory(quick(), &probe, nodes).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.get_node_state("b").unwrap().attempts, 3);
    assert_eq!(r.get_node_state("c").unwrap().attempts, 1);
    assert_eq!(r.metrics.retries, 2);
    assert_eq!(r.metrics.iterations, 5);
    assert_eq!(probe.runs_of("c"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_nodes_with_conditions_go_through_the_loop() {
    let probe = Arc::new(Probe::default());
    let mut skipped = node("b", &["a"], json!({}));
    skipped.when = Some("a.missing".into());
    let mut taken = node("c", &["a"], json!({}));
    taken.when = Some("a.node".into());
    let nodes = vec![
        node("a", &[], json!({})),
        skipped,
        taken,
        node("d", &["b"], json!({})),
        node("e", &["c"], json!({})),
    ];
    let r = run_in_memory(quick(), &probe, nodes).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.get_node_state("b").unwrap().status, NodeStatus::Skipped);
    assert_eq!(r.get_node_state("d").unwrap().status, NodeStatus::Skipped);
    assert_eq!(r.get_node_state("c").unwrap().status, NodeStatus::Completed);
    assert_eq!(r.get_node_state("e").unwrap().status, NodeStatus::Completed);
    assert_eq!(probe.runs_of("b"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_workers_from_starting_dependents() {
    let probe = Arc::new(Probe::default());
    let mut bad = node("bad", &[], json!({"fail_times": 9}));
    bad.try_count = Some(1);
    // A pause lets `slow` finish; what it releases must not start.
    let nodes = vec![
        bad,
        node("slow", &[], json!({"ms": 300})),
        node("after", &["slow"], json!({})),
    ];
    let config = DagConfig {
        on_failure: OnFailure::Pause,
        ..quick()
    };
    let r = run_in_memory(config, &probe, nodes).await;
    assert_eq!(r.status, RunStatus::Paused, "{r:?}");
    assert_eq!(probe.runs_of("slow"), 1);
    assert_eq!(
        r.get_node_state("slow").unwrap().status,
        NodeStatus::Completed
    );
    assert_eq!(probe.runs_of("after"), 0);
    assert_ne!(
        r.get_node_state("after").unwrap().status,
        NodeStatus::Completed
    );
}
