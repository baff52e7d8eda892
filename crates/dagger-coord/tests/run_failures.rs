//! Failure propagation, retries, timeouts, cancellation.

mod common;

use common::*;
use dagger_coord::{Coordinator, execute_dag};
use dagger_core::{Cache, NodeStatus, RunStatus, Stores};
use dagger_dag_flow::{DagConfig, OnFailure, RetryStrategy};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn quick_retries() -> DagConfig {
    DagConfig {
        retry_strategy: RetryStrategy::Immediate,
        ..DagConfig::default()
    }
}

#[tokio::test]
async fn continue_skips_dependents_and_runs_independent_branches() {
    let probe = Arc::new(Probe::default());
    let nodes = vec![
        node("bad", &[], json!({"fail_times": 9})),
        node("child", &["bad"], json!({})),
        node("grandchild", &["child"], json!({})),
        node("other", &[], json!({"ms": 20})),
        node("after_other", &["other"], json!({})),
    ];
    let r = run_in_memory(quick_retries(), &probe, nodes).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.reason.as_deref(), Some("failed nodes: bad"));
    let child = r.get_node_state("child").unwrap();
    assert_eq!(child.status, NodeStatus::Skipped);
    assert_eq!(child.error.as_deref(), Some("dependency `bad` failed"));
    let gc = r.get_node_state("grandchild").unwrap();
    assert_eq!(
        (gc.status, gc.error.as_deref()),
        (NodeStatus::Skipped, Some("dependency `child` was skipped"))
    );
    assert_eq!(
        r.get_node_state("after_other").unwrap().status,
        NodeStatus::Completed
    );
    assert_eq!(probe.runs_of("child"), 0);
}

#[tokio::test]
async fn halt_cancels_running_nodes_and_starts_nothing_new() {
    let probe = Arc::new(Probe::default());
    let nodes = vec![
        node("slow", &[], json!({"ms": 30_000})),
        node("bad", &[], json!({"ms": 20, "fail_times": 9})),
        node("late", &["bad"], json!({})),
        node("after_slow", &["slow"], json!({})),
    ];
    let config = DagConfig {
        on_failure: OnFailure::Halt,
        ..quick_retries()
    };
    let mut ex = executor(
        config,
        registry(&probe),
        workflow("w", nodes),
        Stores::memory(),
    );
    let started = Instant::now();
    let r = execute_dag(&mut ex, &Cache::new(), "w").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the 30 s node was cancelled"
    );
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .starts_with("node `bad` failed: planned failure"),
        "{:?}",
        r.reason
    );
    assert_eq!(
        r.get_node_state("slow").unwrap().status,
        NodeStatus::Cancelled
    );
    assert_eq!(*probe.cancelled.lock(), vec!["slow"]);
    assert_eq!(probe.runs_of("after_slow"), 0);
}

#[tokio::test]
async fn pause_keeps_state_and_starts_nothing_new() {
    let probe = Arc::new(Probe::default());
    let nodes = vec![
        node("bad", &[], json!({"fail_times": 9})),
        node("slow", &[], json!({"ms": 50})),
        node("after_slow", &["slow"], json!({})),
    ];
    let config = DagConfig {
        on_failure: OnFailure::Pause,
        ..quick_retries()
    };
    let r = run_in_memory(config, &probe, nodes).await;
    assert_eq!(r.status, RunStatus::Paused);
    assert_eq!(
        r.get_node_state("slow").unwrap().status,
        NodeStatus::Completed,
        "running nodes finish"
    );
    assert_eq!(
        r.get_node_state("after_slow").unwrap().status,
        NodeStatus::Ready,
        "but nothing new starts"
    );
    assert_eq!(probe.runs_of("after_slow"), 0);
}

#[tokio::test]
async fn onfailure_lets_dependents_run_and_failure_action_runs_once() {
    let probe = Arc::new(Probe::default());
    let handled = Arc::new(AtomicUsize::new(0));
    let reg = registry(&probe);
    reg.register(Arc::new(OnFail(handled.clone())));
    let mut bad = node("bad", &[], json!({"fail_times": 9}));
    bad.onfailure = true;
    bad.try_count = Some(3);
    bad.failure = Some("on_fail".into());
    let nodes = vec![bad, node("next", &["bad"], json!({}))];
    let mut ex = executor(quick_retries(), reg, workflow("w", nodes), Stores::memory());
    let cache = Cache::new();
    let r = execute_dag(&mut ex, &cache, "w").await.unwrap();
    assert_eq!(
        r.status,
        RunStatus::Completed,
        "a tolerated failure does not fail the run"
    );
    let bad = r.get_node_state("bad").unwrap();
    assert_eq!((bad.status, bad.attempts), (NodeStatus::Failed, 3));
    assert_eq!(
        r.get_node_state("next").unwrap().status,
        NodeStatus::Completed
    );
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "failure action runs once, after the last attempt"
    );
    assert_eq!(
        *cache.get("bad", "failure_handler").unwrap(),
        json!({"handled": "bad"})
    );
}

#[tokio::test]
async fn retries_follow_try_count() {
    let probe = Arc::new(Probe::default());
    let mut flaky = node("flaky", &[], json!({"fail_times": 2}));
    flaky.try_count = Some(3);
    let mut hopeless = node("hopeless", &[], json!({"fail_times": 2}));
    hopeless.try_count = Some(2);
    let mut ex = executor(
        quick_retries(),
        registry(&probe),
        workflow("w", vec![flaky, hopeless]),
        Stores::memory(),
    );
    let r = execute_dag(&mut ex, &Cache::new(), "w").await.unwrap();
    let flaky = r.get_node_state("flaky").unwrap();
    assert_eq!((flaky.status, flaky.attempts), (NodeStatus::Completed, 3));
    let hopeless = r.get_node_state("hopeless").unwrap();
    assert_eq!(
        (hopeless.status, hopeless.attempts),
        (NodeStatus::Failed, 2)
    );
    assert_eq!(
        hopeless.error.as_deref(),
        Some("planned failure 2 of hopeless (after 2 attempts)")
    );
    assert_eq!(r.metrics.retries, 3);
    assert_eq!(probe.runs_of("flaky"), 3);
}

#[tokio::test]
async fn a_waiting_retry_does_not_block_other_nodes() {
    let probe = Arc::new(Probe::default());
    let mut flaky = node("flaky", &[], json!({"fail_times": 1}));
    flaky.try_count = Some(2);
    let nodes = vec![
        flaky,
        node("x1", &[], json!({"ms": 10})),
        node("x2", &["x1"], json!({"ms": 10})),
        node("x3", &["x2"], json!({})),
    ];
    // One slot only: if the retry's 400 ms wait held it, x1..x3 would start after the retry.
    let config = DagConfig {
        max_parallel_nodes: 1,
        retry_strategy: RetryStrategy::LinearMs { delay_ms: 400 },
        ..DagConfig::default()
    };
    let r = run_in_memory(config, &probe, nodes).await;
    assert!(r.succeeded());
    let starts = probe.started.lock().clone();
    let second_flaky = starts.iter().rposition(|s| s == "flaky").unwrap();
    assert!(
        starts.iter().position(|s| s == "x3").unwrap() < second_flaky,
        "{starts:?}"
    );
}

#[tokio::test]
async fn node_timeout_cancels_the_attempt() {
    let probe = Arc::new(Probe::default());
    let mut slow = node("slow", &[], json!({"ms": 30_000}));
    slow.timeout = Some(0.1);
    slow.try_count = Some(2);
    let mut ex = executor(
        quick_retries(),
        registry(&probe),
        workflow("w", vec![slow]),
        Stores::memory(),
    );
    let started = Instant::now();
    let r = execute_dag(&mut ex, &Cache::new(), "w").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let slow = r.get_node_state("slow").unwrap();
    assert_eq!(
        (slow.status, slow.attempts),
        (NodeStatus::Failed, 2),
        "timeouts count as failed attempts"
    );
    assert_eq!(
        slow.error.as_deref(),
        Some("node `slow` timed out after 0.100s")
    );
    assert_eq!(
        probe.cancelled.lock().len(),
        2,
        "each timed-out attempt saw its cancellation"
    );
}

#[tokio::test]
async fn run_timeout_ends_the_run() {
    let probe = Arc::new(Probe::default());
    let config = DagConfig {
        timeout_seconds: Some(1),
        ..DagConfig::default()
    };
    let nodes = vec![
        node("slow", &[], json!({"ms": 30_000})),
        node("next", &["slow"], json!({})),
    ];
    let r = run_in_memory(config, &probe, nodes).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.reason.as_deref(), Some("run timed out after 1s"));
    assert_eq!(
        r.get_node_state("slow").unwrap().status,
        NodeStatus::Cancelled
    );
    assert_eq!(
        r.get_node_state("next").unwrap().status,
        NodeStatus::Skipped
    );
}

#[tokio::test]
async fn cancel_signal_stops_scheduling_and_cancels_running_actions() {
    let probe = Arc::new(Probe::default());
    let nodes = vec![
        node("slow", &[], json!({"ms": 30_000})),
        node("next", &["slow"], json!({})),
    ];
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("w", nodes),
        Stores::memory(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let p = probe.clone();
    tokio::spawn(async move {
        while p.started.lock().is_empty() {
            tokio::task::yield_now().await;
        }
        let _ = tx.send(());
    });
    let r = Coordinator::new(vec![], 8, 8)
        .run_parallel(&mut ex, &Cache::new(), "w", "run-c", rx)
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(
        r.get_node_state("slow").unwrap().status,
        NodeStatus::Cancelled
    );
    assert_eq!(
        r.get_node_state("next").unwrap().status,
        NodeStatus::Skipped
    );
    assert_eq!(*probe.cancelled.lock(), vec!["slow"]);
}

#[tokio::test]
async fn dropping_the_cancel_sender_does_not_cancel() {
    let probe = Arc::new(Probe::default());
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("w", vec![node("a", &[], json!({"ms": 20}))]),
        Stores::memory(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(tx);
    let r = Coordinator::new(vec![], 8, 8)
        .run_parallel(&mut ex, &Cache::new(), "w", "r", rx)
        .await
        .unwrap();
    assert!(r.succeeded());
}
