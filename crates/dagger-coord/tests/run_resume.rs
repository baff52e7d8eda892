//! Recording runs and resuming them in-process (the SIGKILL tests live with the CLI).

mod common;

use common::*;
use dagger_coord::{CoordError, Coordinator};
use dagger_core::store::MemoryStore;
use dagger_core::{Cache, NodeStatus, RunStatus, Stores, insert_value};
use dagger_dag_flow::RetryStrategy;
use dagger_dag_flow::{DagConfig, OnFailure};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn a_paused_run_resumes_running_only_what_had_not_completed() {
    let probe = Arc::new(Probe::default());
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    // `flaky` fails its first attempt; Pause stops the run there.
    let nodes = vec![
        node("a", &[], json!({})),
        node("flaky", &["a"], json!({"fail_times": 1})),
        node("z", &["flaky"], json!({})),
    ];
    let config = DagConfig {
        on_failure: OnFailure::Pause,
        retry_strategy: RetryStrategy::Immediate,
        ..DagConfig::default()
    };
    let mut ex = executor(
        config,
        registry(&probe),
        workflow("w", nodes),
        stores.clone(),
    );
    let c = Coordinator::new(vec![], 4, 4);
    let cache = Cache::new();
    insert_value(&cache, "inputs", "x", 7).unwrap();
    let (_t, rx) = tokio::sync::oneshot::channel();
    let first = c
        .run_parallel(&mut ex, &cache, "w", "r1", rx)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Paused);
    let stored = stores.runs.get_run(&"r1".into()).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Paused);
    assert_eq!(stored.inputs, json!({"x": 7}));

    // A fresh cache: resume restores inputs and outputs from the store.
    let cache2 = Cache::new();
    let (_t, rx) = tokio::sync::oneshot::channel();
    let second = c.resume(&mut ex, &cache2, "r1", rx).await.unwrap();
    assert_eq!(second.status, RunStatus::Completed, "{second:?}");
    assert!(second.resumed);
    assert_eq!(probe.runs_of("a"), 1, "completed nodes do not run again");
    assert_eq!(probe.runs_of("flaky"), 2);
    let flaky = second.get_node_state("flaky").unwrap();
    assert_eq!(
        (flaky.status, flaky.attempts),
        (NodeStatus::Completed, 2),
        "attempt numbers continue"
    );
    assert_eq!(*cache2.get("a", "node").unwrap(), json!("a"));
    assert_eq!(*cache2.get("inputs", "x").unwrap(), json!(7));

    let (_t, rx) = tokio::sync::oneshot::channel();
    let err = c
        .resume(&mut ex, &Cache::new(), "r1", rx)
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::AlreadyFinished { .. }));
    assert_eq!(
        err.to_string(),
        "run `r1` already finished with status Completed; nothing to resume"
    );
}

#[tokio::test]
async fn resume_uses_the_recorded_definition_including_added_nodes() {
    use dagger_coord::{EventHook, ExecutionEvent, ExecutorCommand, HookContext, NodeSpec};
    struct Grow;
    #[async_trait::async_trait]
    impl EventHook for Grow {
        async fn handle(&self, ctx: &HookContext, e: &ExecutionEvent) -> Vec<ExecutorCommand> {
            match e {
                ExecutionEvent::NodeCompleted { node, .. } if node.node_id == "a" => {
                    vec![ExecutorCommand::AddNode {
                        dag_name: ctx.dag_name.clone(),
                        spec: NodeSpec::new("work")
                            .with_id("added")
                            .with_deps(["a"])
                            .with_inputs(json!({"fail_times": 1})),
                    }]
                }
                _ => vec![],
            }
        }
    }
    let probe = Arc::new(Probe::default());
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let config = DagConfig {
        on_failure: OnFailure::Pause,
        retry_strategy: RetryStrategy::Immediate,
        ..DagConfig::default()
    };
    let mut ex = executor(
        config.clone(),
        registry(&probe),
        workflow("g", vec![node("a", &[], json!({}))]),
        stores.clone(),
    );
    let (_t, rx) = tokio::sync::oneshot::channel();
    let first = Coordinator::new(vec![Arc::new(Grow)], 4, 4)
        .run_parallel(&mut ex, &Cache::new(), "g", "r2", rx)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Paused);

    // A new executor whose loaded definition differs: resume must ignore it.
    let mut ex2 = executor(
        config,
        registry(&probe),
        workflow("g", vec![node("different", &[], json!({}))]),
        stores,
    );
    let (_t, rx) = tokio::sync::oneshot::channel();
    let second = Coordinator::new(vec![], 4, 4)
        .resume(&mut ex2, &Cache::new(), "r2", rx)
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::Completed);
    let ids: Vec<&str> = second.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["a", "added"]);
    assert!(second.get_node_state("added").unwrap().added_at_runtime);
    assert_eq!(probe.runs_of("different"), 0);
    assert_eq!(
        probe.runs_of("a"),
        1,
        "a's completion was recorded after the hook's growth, not lost"
    );
}

#[tokio::test]
async fn cache_snapshots_save_and_load() {
    let probe = Arc::new(Probe::default());
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("s", vec![node("a", &[], json!({}))]),
        stores,
    );
    let cache = Cache::new();
    cache.insert("n", "k", json!([1, 2]));
    ex.save_cache_snapshot("s", &cache).await.unwrap();
    let back = ex.load_cache_snapshot("s").await.unwrap();
    assert_eq!(back.to_json(), cache.to_json());
    assert!(ex.load_cache_snapshot("other").await.unwrap().is_empty());
}

/// Records every snapshot entry appended.
#[derive(Default)]
struct RecordingSnapshots(parking_lot::Mutex<Vec<(String, dagger_core::store::SnapshotEntry)>>);

#[async_trait::async_trait]
impl dagger_core::store::CacheSnapshotStore for RecordingSnapshots {
    async fn append_snapshot(
        &self,
        scope: &str,
        entry: dagger_core::store::SnapshotEntry,
    ) -> Result<(), dagger_core::StoreError> {
        self.0.lock().push((scope.to_string(), entry));
        Ok(())
    }
    async fn load_snapshot_chain(
        &self,
        _scope: &str,
    ) -> Result<Vec<dagger_core::store::SnapshotEntry>, dagger_core::StoreError> {
        Ok(Vec::new())
    }
}

async fn snapshot_entries(config: DagConfig, ms: u64) -> Vec<dagger_core::store::SnapshotEntry> {
    let probe = Arc::new(Probe::default());
    let recording = Arc::new(RecordingSnapshots::default());
    let mut stores = Stores::from(Arc::new(MemoryStore::new()));
    stores.snapshots = recording.clone();
    let nodes = vec![
        node("a", &[], json!({"ms": ms})),
        node("b", &["a"], json!({"ms": ms})),
    ];
    let mut ex = executor(config, registry(&probe), workflow("d", nodes), stores);
    let (_t, rx) = tokio::sync::oneshot::channel();
    let report = Coordinator::new(vec![], 4, 4)
        .run_parallel(&mut ex, &Cache::new(), "d", "rd", rx)
        .await
        .unwrap();
    assert!(report.succeeded(), "{:?}", report.reason);
    let entries = recording.0.lock().clone();
    assert!(entries.iter().all(|(scope, _)| scope == "rd"));
    entries.into_iter().map(|(_, e)| e).collect()
}

#[tokio::test]
async fn incremental_cache_writes_a_delta_per_node() {
    use dagger_core::store::SnapshotEntry;
    let on = snapshot_entries(
        DagConfig {
            enable_incremental_cache: true,
            ..DagConfig::default()
        },
        0,
    )
    .await;
    let deltas: Vec<&str> = on
        .iter()
        .filter_map(|e| match e {
            SnapshotEntry::Delta { namespace, .. } => Some(namespace.as_str()),
            SnapshotEntry::Full { .. } => None,
        })
        .collect();
    assert_eq!(deltas, ["a", "b"]);
    assert!(
        matches!(on.last(), Some(SnapshotEntry::Full { .. })),
        "a full snapshot ends the run"
    );
    let off = snapshot_entries(
        DagConfig {
            enable_incremental_cache: false,
            ..DagConfig::default()
        },
        0,
    )
    .await;
    assert_eq!(off.len(), 1, "only the final full snapshot");
}

#[tokio::test]
async fn cache_snapshot_interval_writes_periodic_full_snapshots() {
    use dagger_core::store::SnapshotEntry;
    let config = DagConfig {
        cache_snapshot_interval: 1,
        ..DagConfig::default()
    };
    let entries = snapshot_entries(config, 1300).await;
    let fulls = entries
        .iter()
        .filter(|e| matches!(e, SnapshotEntry::Full { .. }))
        .count();
    assert!(
        fulls >= 3,
        "a 2.6 s run with a 1 s interval wrote {fulls} full snapshots (two ticks and the last)"
    );
}
