//! Dependency order, data flow, parallelism limits, sequential mode, config overrides.

mod common;

use common::*;
use dagger_coord::{Coordinator, execute_dag};
use dagger_core::{Cache, InputSpec, NodeStatus, RunStatus, Stores, insert_value};
use dagger_dag_flow::{DagConfig, DagConfigOverride, NodeDef};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn dependencies_run_in_order_and_outputs_flow_through_references() {
    let probe = Arc::new(Probe::default());
    let mut nodes = vec![
        node("a", &[], json!({})),
        node("b", &["a"], json!({"ms": 20})),
        node("c", &["a"], json!({})),
    ];
    nodes.push(NodeDef {
        id: "sum".into(),
        action: "add".into(),
        dependencies: vec!["b".into(), "c".into()],
        inputs: vec![
            InputSpec::reference("a", "b.attempt"),
            InputSpec::reference("b", "inputs.x"),
        ],
        ..NodeDef::default()
    });
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("flow", nodes),
        Stores::memory(),
    );
    let cache = Cache::new();
    insert_value(&cache, "inputs", "x", 41).unwrap();
    let report = execute_dag(&mut ex, &cache, "flow").await.unwrap();
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    assert!(probe.position("a") < probe.position("b"));
    assert!(probe.position("a") < probe.position("c"));
    assert_eq!(cache.get("sum", "sum").unwrap().as_f64(), Some(42.0));
    assert_eq!(
        report.get_node_state("sum").unwrap().status,
        NodeStatus::Completed
    );
    assert_eq!(report.metrics.nodes_completed, 4);
}

#[tokio::test]
async fn max_parallel_nodes_bounds_concurrency() {
    let probe = Arc::new(Probe::default());
    let nodes = (0..12)
        .map(|i| node(&format!("n{i}"), &[], json!({"ms": 30})))
        .collect();
    let config = DagConfig {
        max_parallel_nodes: 3,
        ..DagConfig::default()
    };
    let mut ex = executor(
        config,
        registry(&probe),
        workflow("wide", nodes),
        Stores::memory(),
    );
    let report = execute_dag(&mut ex, &Cache::new(), "wide").await.unwrap();
    assert!(report.succeeded());
    assert_eq!(
        probe.max.load(Ordering::SeqCst),
        3,
        "exactly the limit is reached, never exceeded"
    );
}

#[tokio::test]
async fn sequential_mode_runs_one_node_at_a_time_in_topological_order() {
    let probe = Arc::new(Probe::default());
    let nodes = vec![
        node("a", &[], json!({"ms": 5})),
        node("b", &[], json!({"ms": 5})),
        node("c", &["b"], json!({})),
        node("d", &["a", "c"], json!({})),
    ];
    let config = DagConfig {
        enable_parallel_execution: false,
        ..DagConfig::default()
    };
    let mut ex = executor(
        config,
        registry(&probe),
        workflow("seq", nodes),
        Stores::memory(),
    );
    let report = execute_dag(&mut ex, &Cache::new(), "seq").await.unwrap();
    assert!(report.succeeded());
    assert_eq!(probe.max.load(Ordering::SeqCst), 1);
    assert_eq!(*probe.finished.lock(), vec!["a", "b", "c", "d"]);
}

#[tokio::test]
async fn workflow_config_overrides_the_executor_config() {
    let probe = Arc::new(Probe::default());
    let nodes = (0..6)
        .map(|i| node(&format!("n{i}"), &[], json!({"ms": 20})))
        .collect();
    let mut wf = workflow("override", nodes);
    wf.config = Some(DagConfigOverride {
        max_parallel_nodes: Some(2),
        ..Default::default()
    });
    let config = DagConfig {
        max_parallel_nodes: 6,
        ..DagConfig::default()
    };
    let mut ex = executor(config, registry(&probe), wf, Stores::memory());
    let report = execute_dag(&mut ex, &Cache::new(), "override")
        .await
        .unwrap();
    assert!(report.succeeded(), "{:?}", report.reason);
    assert_eq!(probe.max.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_actions_are_reported_before_any_node_runs() {
    let probe = Arc::new(Probe::default());
    let mut bad = node("b", &["a"], json!({}));
    bad.action = "no_such_action".into();
    let mut worse = node("c", &[], json!({}));
    worse.failure = Some("missing_handler".into());
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("bad", vec![node("a", &[], json!({})), bad, worse]),
        Stores::memory(),
    );
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let err = Coordinator::new(vec![], 8, 8)
        .run_parallel(&mut ex, &Cache::new(), "bad", "r1", rx)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown actions: node `b` uses unknown action `no_such_action`; node `c` uses unknown action `missing_handler`"
    );
    assert!(probe.started.lock().is_empty(), "no node ran");
}

#[tokio::test]
async fn a_run_id_cannot_be_reused() {
    let probe = Arc::new(Probe::default());
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("w", vec![node("a", &[], json!({}))]),
        Stores::from(Arc::new(dagger_core::store::MemoryStore::new())),
    );
    let c = Coordinator::new(vec![], 8, 8);
    let (_t1, r1) = tokio::sync::oneshot::channel();
    let first = c
        .run_parallel(&mut ex, &Cache::new(), "w", "same", r1)
        .await
        .unwrap();
    assert!(first.succeeded(), "{:?}", first.reason);
    let (_t2, r2) = tokio::sync::oneshot::channel();
    let err = c
        .run_parallel(&mut ex, &Cache::new(), "w", "same", r2)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "run `same` already exists; use resume to continue it"
    );
}

#[tokio::test]
async fn a_shared_resource_tracker_bounds_actions_across_runs() {
    let probe = Arc::new(Probe::default());
    let tracker = dagger_core::ResourceTracker::new();
    tracker.set_task_limit(Some(2));
    let coord = Coordinator::new(vec![], 8, 8).with_resource_tracker(tracker.clone());
    let mut handles = Vec::new();
    for r in 0..3 {
        let nodes = (0..4)
            .map(|i| node(&format!("r{r}n{i}"), &[], json!({"ms": 20})))
            .collect();
        let mut ex = executor(
            DagConfig::default(),
            registry(&probe),
            workflow("w", nodes),
            Stores::memory(),
        );
        let coord = coord.clone();
        handles.push(tokio::spawn(async move {
            let (_tx, rx) = tokio::sync::oneshot::channel();
            coord
                .run_parallel(&mut ex, &Cache::new(), "w", &format!("run{r}"), rx)
                .await
                .unwrap()
        }));
    }
    for h in handles {
        assert!(h.await.unwrap().succeeded());
    }
    assert_eq!(
        probe.max.load(Ordering::SeqCst),
        2,
        "three runs of four nodes share two slots"
    );
    assert_eq!(tracker.metrics().peak_active, 2);
}

#[tokio::test]
async fn memory_limit_holds_new_nodes_until_memory_falls() {
    use std::sync::atomic::AtomicU64;
    let probe = Arc::new(Probe::default());
    let rss = Arc::new(AtomicU64::new(1_000));
    let r2 = rss.clone();
    let tracker = dagger_core::ResourceTracker::with_rss_probe(Arc::new(move || {
        Some(r2.load(Ordering::SeqCst))
    }));
    tracker.set_memory_limit(Some(500));
    let coord = Coordinator::new(vec![], 8, 8).with_resource_tracker(tracker.clone());
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("m", vec![node("a", &[], json!({}))]),
        Stores::memory(),
    );
    let p = probe.clone();
    let lower = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert!(
            p.started.lock().is_empty(),
            "no node started above the memory limit"
        );
        rss.store(100, Ordering::SeqCst);
    });
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let r = coord
        .run_parallel(&mut ex, &Cache::new(), "m", "m1", rx)
        .await
        .unwrap();
    lower.await.unwrap();
    assert!(r.succeeded());
    assert_eq!(tracker.metrics().memory_waits, 1);
}
