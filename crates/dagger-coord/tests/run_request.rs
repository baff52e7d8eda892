//! The primary API: `RunRequest` -> `Coordinator::start` -> `RunHandle`
//! (id, cancel, events, awaited: the report with the outputs).

mod common;

use common::*;
use dagger_coord::{
    CancellationToken, CoordError, Coordinator, ExecutionEvent, RunHandle, RunRequest,
};
use dagger_core::store::{MemoryStore, RunQuery};
use dagger_core::{InputSpec, RunId, RunStatus, Stores};
use dagger_dag_flow::{DagConfig, DagExecutor, NodeDef};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;

/// `a` adds the literals 1 and 2; `b` adds run input `x` to `a.sum`.
fn adder() -> Vec<NodeDef> {
    let mut a = node("a", &[], json!({}));
    a.action = "add".into();
    a.inputs = vec![
        InputSpec::literal("a", json!(1)),
        InputSpec::literal("b", json!(2)),
    ];
    let mut b = node("b", &["a"], json!({}));
    b.action = "add".into();
    b.inputs = vec![
        InputSpec::reference("a", "inputs.x"),
        InputSpec::reference("b", "a.sum"),
    ];
    vec![a, b]
}

/// An executor over a recording in-memory store (returned, to look into).
fn recording(nodes: Vec<NodeDef>) -> (DagExecutor, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let probe = Arc::new(Probe::default());
    let ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("w", nodes),
        Stores::from(store.clone()),
    );
    (ex, store)
}

/// Waits on the handle's event stream until node `id` started.
async fn started(events: &mut dagger_coord::RunEvents, id: &str) {
    while let Some(ev) = events.recv().await {
        if let ExecutionEvent::NodeStarted { node } = &ev
            && node.node_id == id
        {
            return;
        }
    }
    panic!("the run ended before `{id}` started");
}

#[tokio::test]
async fn a_request_runs_and_the_awaited_handle_carries_the_outputs() {
    let (ex, _) = recording(adder());
    let handle = Coordinator::default()
        .start(&ex, RunRequest::new("w").input("x", 10).id("sum-1"))
        .await
        .unwrap();
    assert_eq!(handle.id().as_str(), "sum-1");
    let report = handle.await.unwrap().into_result().unwrap();
    assert_eq!(report.run_id, "sum-1");
    assert_eq!(report.output_as::<f64>("a", "sum"), Some(3.0));
    assert_eq!(report.output_as::<f64>("b", "sum"), Some(13.0));
    assert_eq!(report.output("b"), Some(&json!({ "sum": 13.0 })));
}

#[tokio::test]
async fn cancelling_through_the_handle_ends_the_run_cancelled_with_the_reason() {
    let (ex, store) = recording(vec![node("slow", &[], json!({ "ms": 60_000 }))]);
    let mut handle = Coordinator::default()
        .with_cancel_grace(std::time::Duration::from_secs(30))
        .start(&ex, RunRequest::new("w").events(true))
        .await
        .unwrap();
    let mut events = handle.events().unwrap();
    started(&mut events, "slow").await;
    handle.cancel("the operator said stop");
    let id = handle.id().clone();
    let report = handle.await.unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(
        report.reason.as_deref(),
        Some("run cancelled: the operator said stop")
    );
    let record = Stores::from(store)
        .runs
        .get_run(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, RunStatus::Cancelled);
    assert_eq!(
        record.reason.as_deref(),
        Some("run cancelled: the operator said stop")
    );
}

#[tokio::test]
async fn an_outside_token_cancels_the_run_and_the_handle_cancels_only_its_run() {
    let shared = CancellationToken::new();
    let (ex, _) = recording(vec![node("slow", &[], json!({ "ms": 60_000 }))]);
    let coord = Coordinator::default();
    let start = |id: &str| {
        RunRequest::new("w")
            .id(id)
            .events(true)
            .cancel_token(shared.clone())
    };
    let mut first = coord.start(&ex, start("first")).await.unwrap();
    let mut second = coord.start(&ex, start("second")).await.unwrap();
    started(&mut first.events().unwrap(), "slow").await;
    started(&mut second.events().unwrap(), "slow").await;
    first.cancel("just this one");
    let first = first.await.unwrap();
    assert_eq!(first.status, RunStatus::Cancelled);
    assert!(!shared.is_cancelled(), "the handle cancels a child token");
    assert!(!second.is_finished());
    shared.cancel();
    let second = second.await.unwrap();
    assert_eq!(second.status, RunStatus::Cancelled);
    assert_eq!(second.reason.as_deref(), Some("run cancelled"));
}

#[tokio::test]
async fn the_event_stream_sees_every_event_in_order() {
    let (ex, _) = recording(vec![
        node("a", &[], json!({})),
        node("b", &["a"], json!({})),
    ]);
    let mut handle = Coordinator::default()
        .start(&ex, RunRequest::new("w").events(true))
        .await
        .unwrap();
    let events = handle.events().unwrap();
    assert!(handle.events().is_none(), "the stream is handed out once");
    let report = handle.await.unwrap();
    assert!(report.succeeded());
    let seen: Vec<String> = events
        .map(|ev| match &ev {
            ExecutionEvent::NodeStarted { node } | ExecutionEvent::NodeCompleted { node, .. } => {
                format!("{} {}", ev.kind(), node.node_id)
            }
            other => other.kind().to_string(),
        })
        .collect()
        .await;
    assert_eq!(
        seen,
        [
            "RunStarted",
            "NodeStarted a",
            "NodeCompleted a",
            "NodeStarted b",
            "NodeCompleted b",
            "RunCompleted"
        ]
    );
}

#[tokio::test]
async fn a_request_without_events_has_no_stream() {
    let (ex, _) = recording(adder());
    let mut handle: RunHandle = Coordinator::default()
        .start(&ex, RunRequest::new("w").input("x", 1))
        .await
        .unwrap();
    assert!(handle.events().is_none());
    assert!(handle.await.unwrap().succeeded());
}

#[tokio::test]
async fn ids_are_accepted_as_str_string_and_run_id() {
    let (mut ex, store) = recording(adder());
    let stores = Stores::from(store);
    let coord = Coordinator::default();
    let by_string = String::from("by-string");
    let by_id = RunId::from("by-id");
    for request in [
        RunRequest::new("w").id("by-str"),
        RunRequest::new("w").id(by_string.clone()),
        RunRequest::new("w").id(&by_id),
    ] {
        let report = coord
            .start(&ex, request.input("x", 1))
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(report.succeeded());
    }
    // The seed-shaped calls and the control functions take them too.
    let cache = dagger_core::Cache::new();
    cache.insert("inputs", "x", json!(1));
    let never = dagger_coord::RunCancel::never();
    let report = coord
        .run_parallel(&mut ex, &cache, "w", String::from("seed"), never)
        .await
        .unwrap();
    assert!(report.succeeded());
    for id in [
        "by-str".to_string(),
        by_string,
        by_id.to_string(),
        "seed".into(),
    ] {
        let view = dagger_coord::load_run_view(&stores, id.as_str())
            .await
            .unwrap();
        assert_eq!(view.record.status, RunStatus::Completed);
        let same = dagger_coord::load_run_view(&stores, &view.record.run_id).await;
        assert_eq!(same.unwrap().record.run_id, view.record.run_id);
    }
    let ended = dagger_coord::request_cancel(&stores, String::from("by-str"), "late").await;
    assert!(
        matches!(ended, Err(CoordError::RunEnded { .. })),
        "{ended:?}"
    );
}

#[tokio::test]
async fn recording_off_leaves_nothing_in_the_store() {
    let (ex, store) = recording(adder());
    let stores = Stores::from(store);
    let report = Coordinator::default()
        .start(
            &ex,
            RunRequest::new("w").input("x", 1).id("quiet").record(false),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(report.succeeded());
    assert_eq!(report.output_as::<f64>("b", "sum"), Some(4.0));
    let quiet = RunId::from("quiet");
    assert!(stores.runs.get_run(&quiet).await.unwrap().is_none());
    assert!(stores.runs.node_runs(&quiet).await.unwrap().is_empty());
    assert!(
        stores
            .runs
            .list_runs(&RunQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Recorded (the default), the same run is in the store.
    let report = Coordinator::default()
        .start(&ex, RunRequest::new("w").input("x", 1).id("loud"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(report.succeeded());
    let loud = RunId::from("loud");
    assert!(stores.runs.get_run(&loud).await.unwrap().is_some());
    assert!(!stores.runs.node_runs(&loud).await.unwrap().is_empty());
}

#[tokio::test]
async fn errors_before_the_run_exists_come_from_start() {
    let (ex, _) = recording(adder());
    let coord = Coordinator::default();
    let unknown = coord.start(&ex, RunRequest::new("nope")).await;
    assert!(matches!(unknown, Err(CoordError::Dag(_))), "{unknown:?}");
    let first = coord
        .start(&ex, RunRequest::new("w").input("x", 1).id("once"))
        .await
        .unwrap();
    assert!(first.await.unwrap().succeeded());
    let again = coord
        .start(&ex, RunRequest::new("w").input("x", 1).id("once"))
        .await;
    assert!(matches!(again, Err(CoordError::RunExists(id)) if id == "once"));
}

#[tokio::test]
async fn the_seed_shaped_run_parallel_takes_a_cancellation_token() {
    let (mut ex, _) = recording(vec![node("slow", &[], json!({ "ms": 60_000 }))]);
    let token = CancellationToken::new();
    // Cancelled before the run starts, the run ends Cancelled at once.
    token.cancel();
    let report = Coordinator::default()
        .run_parallel(&mut ex, &dagger_core::Cache::new(), "w", "seed", token)
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(report.reason.as_deref(), Some("run cancelled"));
    assert!(
        report.outputs.is_empty(),
        "the seed form leaves outputs in the cache"
    );
}
