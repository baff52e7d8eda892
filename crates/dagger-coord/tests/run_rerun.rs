//! Re-running recorded runs (`Coordinator::rerun`): what is reused, what runs
//! again, inputs, lineage and refusals.

mod common;

use common::*;
use dagger_coord::{CoordError, Coordinator, RerunRequest};
use dagger_core::store::MemoryStore;
use dagger_core::{Cache, InputSpec, NodeStatus, RunId, RunStatus, Stores, insert_value};
use dagger_dag_flow::{DagConfig, DagError, JsonType, RunInputDef};
use serde_json::json;
use std::sync::Arc;

fn stores() -> Stores {
    Stores::from(Arc::new(MemoryStore::new()))
}

async fn run(c: &Coordinator, ex: &mut dagger_dag_flow::DagExecutor, cache: &Cache, id: &str) {
    let (_t, rx) = tokio::sync::oneshot::channel();
    let report = c.run_parallel(ex, cache, "w", id, rx).await.unwrap();
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
}

async fn rerun(
    c: &Coordinator,
    ex: &mut dagger_dag_flow::DagExecutor,
    request: &RerunRequest,
) -> Result<(dagger_coord::DagExecutionReport, Cache), CoordError> {
    let cache = Cache::new();
    let (_t, rx) = tokio::sync::oneshot::channel();
    let report = c.rerun(ex, &cache, request, rx).await?;
    Ok((report, cache))
}

#[tokio::test]
async fn rerun_from_a_node_reuses_everything_not_downstream_of_it() {
    let probe = Arc::new(Probe::default());
    let stores = stores();
    // a -> b -> c, and a -> d.
    let nodes = vec![
        node("a", &[], json!({"v": 1})),
        node("b", &["a"], json!({})),
        node("c", &["b"], json!({})),
        node("d", &["a"], json!({})),
    ];
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("w", nodes),
        stores.clone(),
    );
    let c = Coordinator::new(vec![], 4, 4);
    run(&c, &mut ex, &Cache::new(), "parent").await;

    let request = RerunRequest::new("parent").from_node("b").run_id("child");
    let (report, cache) = rerun(&c, &mut ex, &request).await.unwrap();
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    assert_eq!(report.run_id, "child");
    assert_eq!(
        ["a", "b", "c", "d"].map(|n| probe.runs_of(n)),
        [1, 2, 2, 1],
        "a and d are reused, b and c run again"
    );
    // The reused output is there for the new run, taken from the parent.
    assert_eq!(cache.namespace("a").unwrap()["v"], json!(1));
    let records = stores.runs.node_runs(&RunId::from("child")).await.unwrap();
    let a = records.iter().find(|r| r.node_id.as_str() == "a").unwrap();
    assert_eq!(a.state, NodeStatus::Completed);
    assert_eq!(a.metadata["reused_from"], json!("parent"));

    let child = stores.runs.get_run(&"child".into()).await.unwrap().unwrap();
    let lineage = child.lineage.expect("lineage recorded");
    assert_eq!(lineage.parent_run_id.as_str(), "parent");
    assert_eq!(
        lineage.forked_from_node.as_ref().map(|n| n.as_str()),
        Some("b")
    );
    let children = stores.runs.child_runs(&"parent".into()).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].run_id.as_str(), "child");
    let parent = stores
        .runs
        .get_run(&"parent".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.lineage, None);
    assert_eq!(
        parent.status,
        RunStatus::Completed,
        "the parent is left as it was"
    );

    // Without a node, everything runs again.
    let (report, _) = rerun(&c, &mut ex, &RerunRequest::new("parent"))
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(["a", "b", "c", "d"].map(|n| probe.runs_of(n)), [2, 3, 3, 2]);
}

#[tokio::test]
async fn changed_inputs_reach_the_nodes_that_run_again() {
    let probe = Arc::new(Probe::default());
    let stores = stores();
    let mut reads_x = node("a", &[], json!({}));
    reads_x.inputs.push(InputSpec::reference("x", "inputs.x"));
    let mut wf = workflow(
        "w",
        vec![
            reads_x,
            node("b", &[], json!({})),
            node("c", &["a", "b"], json!({})),
        ],
    );
    wf.inputs = Some(vec![RunInputDef {
        name: "x".into(),
        kind: Some(JsonType::Integer),
        default: Some(json!(1)),
        ..RunInputDef::default()
    }]);
    let mut ex = executor(DagConfig::default(), registry(&probe), wf, stores.clone());
    let c = Coordinator::new(vec![], 4, 4);
    run(&c, &mut ex, &Cache::new(), "parent").await;
    let parent = stores
        .runs
        .get_run(&"parent".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.inputs, json!({"x": 1}), "the default is recorded");

    // From `c` with a new `x`: `a` reads `x`, so it runs again too; `b` is reused.
    let request = RerunRequest::new("parent")
        .from_node("c")
        .input("x", json!(5))
        .run_id("child");
    let (report, cache) = rerun(&c, &mut ex, &request).await.unwrap();
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    assert_eq!(["a", "b", "c"].map(|n| probe.runs_of(n)), [2, 1, 2]);
    assert_eq!(cache.namespace("a").unwrap()["x"], json!(5));
    let child = stores.runs.get_run(&"child".into()).await.unwrap().unwrap();
    assert_eq!(child.inputs, json!({"x": 5}));

    // An ill-typed input is refused before anything is created.
    let bad = RerunRequest::new("parent")
        .input("x", json!("five"))
        .run_id("bad");
    let err = rerun(&c, &mut ex, &bad).await.unwrap_err();
    assert!(
        matches!(&err, CoordError::Dag(DagError::InvalidRunInputs { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("input `x` must be of type integer"),
        "{err}"
    );
    assert!(stores.runs.get_run(&"bad".into()).await.unwrap().is_none());
}

#[tokio::test]
async fn failed_nodes_and_their_descendants_run_again() {
    let probe = Arc::new(Probe::default());
    let stores = stores();
    let mut flaky = node("flaky", &["a"], json!({"fail_times": 1}));
    flaky.try_count = Some(1);
    let nodes = vec![
        node("a", &[], json!({})),
        flaky,
        node("z", &["flaky"], json!({})),
        node("side", &[], json!({})),
    ];
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("w", nodes),
        stores.clone(),
    );
    let c = Coordinator::new(vec![], 4, 4);
    let cache = Cache::new();
    insert_value(&cache, "inputs", "unused", 0).unwrap();
    let (_t, rx) = tokio::sync::oneshot::channel();
    let first = c
        .run_parallel(&mut ex, &cache, "w", "parent", rx)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Failed);

    // From `side`: `flaky` failed and `z` was skipped, so neither is reused.
    let request = RerunRequest::new("parent").from_node("side");
    let (report, _) = rerun(&c, &mut ex, &request).await.unwrap();
    // flaky fails its first attempt of the new run again (try_count 1), so
    // `z` is skipped again rather than taken from the parent.
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        ["a", "flaky", "z", "side"].map(|n| probe.runs_of(n)),
        [1, 2, 0, 2]
    );
    assert_eq!(
        report.get_node_state("z").unwrap().status,
        NodeStatus::Skipped
    );

    let unknown = RerunRequest::new("parent").from_node("flakey");
    let err = rerun(&c, &mut ex, &unknown).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "run `parent` has no node `flakey` (did you mean `flaky`?)"
    );
    let missing = rerun(&c, &mut ex, &RerunRequest::new("nope"))
        .await
        .unwrap_err();
    assert!(matches!(missing, CoordError::RunNotFound(_)), "{missing:?}");
}

#[tokio::test]
async fn a_completed_fan_out_is_reused_whole_and_a_condition_is_evaluated_again() {
    let probe = Arc::new(Probe::default());
    let stores = stores();
    let mut fan = node("m", &[], json!({}));
    fan.map_over = Some("inputs.list".into());
    let mut gated = node("g", &["m"], json!({}));
    gated.when = Some("inputs.go".into());
    let mut wf = workflow("w", vec![fan, gated, node("z", &["m"], json!({}))]);
    wf.inputs = Some(vec![
        RunInputDef {
            name: "list".into(),
            kind: Some(JsonType::Array),
            ..RunInputDef::default()
        },
        RunInputDef {
            name: "go".into(),
            kind: Some(JsonType::Boolean),
            default: Some(json!(false)),
            ..RunInputDef::default()
        },
    ]);
    let mut ex = executor(DagConfig::default(), registry(&probe), wf, stores.clone());
    let c = Coordinator::new(vec![], 4, 4);
    let cache = Cache::new();
    insert_value(&cache, "inputs", "list", json!([1, 2, 3])).unwrap();
    run(&c, &mut ex, &cache, "parent").await;
    assert_eq!(["m", "g", "z"].map(|n| probe.runs_of(n)), [3, 0, 1]);

    // From `z`, with `go` now true: the fan-out is reused (no invocation
    // runs), `g` was skipped by its condition, so it is evaluated again.
    let request = RerunRequest::new("parent")
        .from_node("z")
        .input("go", json!(true));
    let (report, cache) = rerun(&c, &mut ex, &request).await.unwrap();
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    assert_eq!(["m", "g", "z"].map(|n| probe.runs_of(n)), [3, 1, 2]);
    assert_eq!(
        cache.namespace("m").unwrap()["results"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
