//! `RunRequest::idempotency_key` with each `KeyPolicy`: `once` answers with
//! the keyed run, `skip` too while it is unfinished, `cancel_other` cancels
//! it and starts a new run under the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Probe, executor, node, registry, workflow};
use dagger_coord::{CoordError, Coordinator, KeyPolicy, RunRequest};
use dagger_core::store::MemoryStore;
use dagger_core::{RunStatus, Stores};
use dagger_dag_flow::DagConfig;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_policies() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let probe = Arc::new(Probe::default());
    let wf = workflow("keyed", vec![node("wait", &[], json!({"ms": 120_000}))]);
    let ex = executor(DagConfig::default(), registry(&probe), wf, stores.clone());
    let coord = Coordinator::default().with_control_poll(Duration::from_millis(20));
    let start = |policy| {
        RunRequest::new("keyed")
            .idempotency_key("order-1")
            .key_policy(policy)
    };
    let first = coord.start(&ex, start(KeyPolicy::Once)).await.unwrap();
    let first_id = first.id().to_string();
    for policy in [KeyPolicy::Once, KeyPolicy::Skip] {
        let again = coord.start(&ex, start(policy)).await;
        let Err(err) = again else {
            panic!("{policy:?}: the key names a run, nothing may start");
        };
        assert_eq!(err.existing_run(), Some(first_id.as_str()), "{policy:?}");
    }
    // A start without a key starts freely.
    let unkeyed = coord.start(&ex, RunRequest::new("keyed")).await.unwrap();
    unkeyed.cancel("test");

    let second = coord
        .start(&ex, start(KeyPolicy::CancelOther))
        .await
        .unwrap();
    assert_ne!(second.id().as_str(), first_id);
    let report = first.await.unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    let named = coord.start(&ex, start(KeyPolicy::Once)).await;
    assert!(
        matches!(&named, Err(CoordError::AlreadyStarted { run_id, .. }) if run_id == second.id().as_str()),
        "{named:?}"
    );
    second.cancel("test");
    assert_eq!(second.await.unwrap().status, RunStatus::Cancelled);
}
