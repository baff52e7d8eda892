//! One behavioural suite for every backend of the store traits: the SQLite
//! store in each durability mode and the in-memory store run the same checks.
//!
//! Writes that a backend may queue (`update_run`, `put_node_run`, snapshots,
//! artifacts in `Batched` mode) report an error either at the call or at the
//! next `flush`; [`queued_error`] accepts both, nothing else.

use dagger_core::store::{
    ArtifactId, AttemptLogs, AttemptOutcome, AttemptQuery, AttemptRecord, ControlRequest,
    NodeRunRecord, RunClaim, RunLineage, RunOwner, RunQuery, RunRecord, RunUpdate, SnapshotEntry,
};
use dagger_core::{NodeId, NodeStatus, RunId, RunStatus, StoreError, Stores};
use serde_json::json;

/// A run record with distinct JSON columns.
pub(crate) fn run(id: &str, workflow: &str, status: RunStatus, created_at: i64) -> RunRecord {
    RunRecord {
        run_id: RunId::from(id),
        workflow: workflow.to_string(),
        definition: json!({"name": workflow, "nodes": [{"id": "a"}, {"id": "b", "dependencies": ["a"]}]}),
        inputs: json!({"n": 3, "text": "héllo \"quoted\"\n"}),
        config: json!({"max_parallel_nodes": 4}),
        status,
        reason: None,
        created_at,
        updated_at: created_at,
        finished_at: None,
        owner: None,
        lineage: None,
    }
}

/// A node run record.
pub(crate) fn node(run_id: &str, node_id: &str, key: &str, state: NodeStatus) -> NodeRunRecord {
    NodeRunRecord {
        run_id: RunId::from(run_id),
        node_id: NodeId::from(node_id),
        invocation_key: key.to_string(),
        action: "double".to_string(),
        attempt: 1,
        state,
        input_hash: Some(format!("hash-{node_id}-{key}")),
        output_artifact_id: None,
        error: None,
        started_at: Some(1_000),
        finished_at: None,
        metadata: json!({"tokens": 12}),
    }
}

/// The error of a write that may be queued: returned by the call, or by the
/// next flush when the call only queued it.
pub(crate) async fn queued_error(stores: &Stores, call: Result<(), StoreError>) -> StoreError {
    match call {
        Err(e) => e,
        Ok(()) => stores
            .runs
            .flush()
            .await
            .expect_err("a failed queued write is reported by the next flush"),
    }
}

/// Runs every check; `prefix` keeps ids apart when a backend is shared.
pub(crate) async fn run_store_suite(stores: Stores, prefix: &str) {
    runs_round_trip(&stores, prefix).await;
    list_runs_filters_and_pages(&stores, prefix).await;
    node_runs_round_trip(&stores, prefix).await;
    controls_are_sequenced(&stores, prefix).await;
    signals_are_sequenced(&stores, prefix).await;
    the_first_decision_of_a_node_wins(&stores, prefix).await;
    memoization_finds_completed_outputs(&stores, prefix).await;
    artifacts_round_trip(&stores).await;
    snapshot_chains(&stores, prefix).await;
    run_ownership_is_fenced(&stores, prefix).await;
    concurrent_claims_have_one_winner(&stores, prefix).await;
    attempts_round_trip(&stores, prefix).await;
    lineage_round_trips_and_lists_children(&stores, prefix).await;
    stores.runs.flush().await.expect("final flush");
}

/// An owner `name` whose lease lapses `lease_ms` from now (negative: lapsed).
pub(crate) fn owner(name: &str, lease_ms: i64) -> RunOwner {
    RunOwner {
        owner_id: format!("{name}-id"),
        host: format!("{name}-host"),
        pid: 4242,
        token: 0,
        lease_expires_at: dagger_core::now_millis() + lease_ms,
    }
}

async fn run_ownership_is_fenced(stores: &Stores, p: &str) {
    let runs = &stores.runs;
    let missing = runs
        .claim_run(
            &RunId::from(format!("{p}-no-such-run")),
            owner("a", 60_000),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { entity: "run", .. }),
        "{missing:?}"
    );

    // A run nobody owns is claimed; a second claimant sees the live owner.
    let id = RunId::from(format!("{p}-owned"));
    runs.create_run(run(id.as_str(), "wf", RunStatus::Running, 5))
        .await
        .unwrap();
    let RunClaim::Claimed(a) = runs.claim_run(&id, owner("a", 60_000), None).await.unwrap() else {
        panic!("an unowned run is claimed");
    };
    assert_eq!((a.host.as_str(), a.pid), ("a-host", 4242));
    let got = runs.get_run(&id).await.unwrap().unwrap();
    assert_eq!(got.owner.as_ref(), Some(&a));
    assert_eq!(got.orphaned_since(dagger_core::now_millis()), None);
    match runs.claim_run(&id, owner("b", 60_000), None).await.unwrap() {
        RunClaim::Held(current) => assert_eq!(current, a),
        other => panic!("a live lease is not taken over: {other:?}"),
    }
    let renewed = dagger_core::now_millis() + 120_000;
    runs.renew_run(&id, a.token, renewed).await.unwrap();
    let got = runs.get_run(&id).await.unwrap().unwrap();
    assert_eq!(got.owner.map(|o| o.lease_expires_at), Some(renewed));
    let stale = runs.renew_run(&id, a.token + 7, renewed).await.unwrap_err();
    assert!(
        matches!(stale, StoreError::StaleToken { held, current, .. } if held == a.token + 7 && current == a.token),
        "{stale:?}"
    );

    // A lapsed lease is taken over with the next token; the old owner can
    // neither renew nor record the run's end.
    let id = RunId::from(format!("{p}-orphan"));
    let mut record = run(id.as_str(), "wf", RunStatus::Running, 6);
    record.owner = Some(RunOwner {
        token: 1,
        ..owner("old", -1_000)
    });
    runs.create_run(record).await.unwrap();
    let got = runs.get_run(&id).await.unwrap().unwrap();
    let now = dagger_core::now_millis();
    assert!(got.orphaned_since(now).is_some(), "{got:?}");
    assert_eq!(got.display_status(now), "Orphaned");
    let RunClaim::Claimed(b) = runs.claim_run(&id, owner("b", 60_000), None).await.unwrap() else {
        panic!("a lapsed lease is taken over");
    };
    assert_eq!(b.token, 2);
    let stale = runs.renew_run(&id, 1, now + 60_000).await.unwrap_err();
    assert!(
        matches!(
            stale,
            StoreError::StaleToken {
                held: 1,
                current: 2,
                ..
            }
        ),
        "{stale:?}"
    );
    let end = RunUpdate {
        status: Some(RunStatus::Completed),
        finished_at: Some(Some(99)),
        ..RunUpdate::default()
    };
    let stale = runs.release_run(&id, 1, end.clone()).await.unwrap_err();
    assert!(
        matches!(
            stale,
            StoreError::StaleToken {
                held: 1,
                current: 2,
                ..
            }
        ),
        "{stale:?}"
    );
    let got = runs.get_run(&id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.owner.as_ref()),
        (RunStatus::Running, Some(&b))
    );

    // The owner releases with the run's end; the next claim gets a newer token.
    runs.release_run(&id, b.token, end).await.unwrap();
    let got = runs.get_run(&id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.finished_at, got.owner),
        (RunStatus::Completed, Some(99), None)
    );
    let again = runs
        .release_run(&id, b.token, RunUpdate::default())
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::StaleToken { .. }), "{again:?}");
    let RunClaim::Claimed(c) = runs.claim_run(&id, owner("c", 60_000), None).await.unwrap() else {
        panic!("a released run is claimed");
    };
    assert_eq!(c.token, 3);

    // An owner known to be dead is taken over although its lease is live;
    // naming any other owner changes nothing.
    match runs
        .claim_run(&id, owner("d", 60_000), Some("someone-else"))
        .await
        .unwrap()
    {
        RunClaim::Held(current) => assert_eq!(current, c),
        other => panic!("a live owner not named dead is kept: {other:?}"),
    }
    let RunClaim::Claimed(d) = runs
        .claim_run(&id, owner("d", 60_000), Some(&c.owner_id))
        .await
        .unwrap()
    else {
        panic!("a dead owner's run is taken over");
    };
    assert_eq!((d.owner_id.as_str(), d.token), ("d-id", 4));
}

async fn concurrent_claims_have_one_winner(stores: &Stores, p: &str) {
    let id = RunId::from(format!("{p}-contended"));
    let mut record = run(id.as_str(), "wf", RunStatus::Running, 7);
    record.owner = Some(RunOwner {
        token: 1,
        ..owner("dead", -1)
    });
    stores.runs.create_run(record).await.unwrap();
    let claims = (0..8).map(|i| {
        let runs = stores.runs.clone();
        let id = id.clone();
        tokio::spawn(async move {
            runs.claim_run(&id, owner(&format!("c{i}"), 60_000), None)
                .await
        })
    });
    let mut won = Vec::new();
    let mut held = Vec::new();
    for claim in claims {
        match claim.await.unwrap().unwrap() {
            RunClaim::Claimed(o) => won.push(o),
            RunClaim::Held(o) => held.push(o),
        }
    }
    assert_eq!(won.len(), 1, "exactly one claim wins: {won:?}");
    assert_eq!(held.len(), 7);
    assert!(
        held.iter().all(|o| *o == won[0]),
        "losers see the winner: {held:?}"
    );
    assert_eq!(won[0].token, 2);
}

/// A re-run's lineage (parent run, forked-from node) is stored with it, and
/// `child_runs` finds the re-runs of a run, oldest first, and nothing else.
async fn lineage_round_trips_and_lists_children(stores: &Stores, p: &str) {
    let parent = RunId::from(format!("{p}-lineage-parent").as_str());
    stores
        .runs
        .create_run(run(parent.as_str(), "wf", RunStatus::Failed, 100))
        .await
        .unwrap();
    let mut first = run(
        &format!("{p}-lineage-child-1"),
        "wf",
        RunStatus::Running,
        101,
    );
    first.lineage = Some(RunLineage {
        parent_run_id: parent.clone(),
        forked_from_node: Some(NodeId::from("b")),
    });
    let mut second = run(
        &format!("{p}-lineage-child-2"),
        "wf",
        RunStatus::Running,
        102,
    );
    second.lineage = Some(RunLineage {
        parent_run_id: parent.clone(),
        forked_from_node: None,
    });
    let unrelated = run(&format!("{p}-lineage-other"), "wf", RunStatus::Running, 103);
    for r in [&first, &second, &unrelated] {
        stores.runs.create_run(r.clone()).await.unwrap();
    }
    let got = stores.runs.get_run(&first.run_id).await.unwrap().unwrap();
    assert_eq!(got.lineage, first.lineage);
    let got = stores.runs.get_run(&second.run_id).await.unwrap().unwrap();
    assert_eq!(got.lineage, second.lineage);
    let children: Vec<RunId> = stores
        .runs
        .child_runs(&parent)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(children, vec![first.run_id.clone(), second.run_id.clone()]);
    assert!(
        stores
            .runs
            .child_runs(&first.run_id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn runs_round_trip(stores: &Stores, p: &str) {
    let id = format!("{p}-run");
    let record = run(&id, "wf", RunStatus::Pending, 10);
    stores.runs.create_run(record.clone()).await.unwrap();
    let got = stores.runs.get_run(&RunId::from(&id)).await.unwrap();
    assert_eq!(got.as_ref(), Some(&record));

    let dup = stores.runs.create_run(record.clone()).await.unwrap_err();
    assert!(
        matches!(&dup, StoreError::AlreadyExists { entity: "run", id: d } if *d == id),
        "{dup:?}"
    );
    assert_eq!(dup.to_string(), format!("run `{id}` already exists"));

    let run_id = RunId::from(&id);
    stores
        .runs
        .update_run(
            &run_id,
            RunUpdate {
                status: Some(RunStatus::Failed),
                reason: Some(Some("node `b` failed".into())),
                definition: Some(json!({"name": "wf", "nodes": [{"id": "grown"}]})),
                finished_at: Some(Some(99)),
            },
        )
        .await
        .unwrap();
    let got = stores.runs.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Failed);
    assert_eq!(got.reason.as_deref(), Some("node `b` failed"));
    assert_eq!(
        got.definition,
        json!({"name": "wf", "nodes": [{"id": "grown"}]})
    );
    assert_eq!(got.finished_at, Some(99));
    assert!(got.updated_at >= record.updated_at);
    assert_eq!(got.inputs, record.inputs, "untouched columns are kept");

    // `Some(None)` clears, `None` leaves alone.
    stores
        .runs
        .update_run(
            &run_id,
            RunUpdate {
                reason: Some(None),
                finished_at: Some(None),
                ..RunUpdate::default()
            },
        )
        .await
        .unwrap();
    let got = stores.runs.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.reason, got.finished_at),
        (RunStatus::Failed, None, None)
    );

    let missing = RunId::from(format!("{p}-missing"));
    assert_eq!(stores.runs.get_run(&missing).await.unwrap(), None);
    let call = stores.runs.update_run(&missing, RunUpdate::default()).await;
    let err = queued_error(stores, call).await;
    assert!(
        matches!(&err, StoreError::NotFound { entity: "run", id } if *id == missing.as_str()),
        "{err:?}"
    );
    assert_eq!(err.to_string(), format!("run `{missing}` not found"));
}

async fn list_runs_filters_and_pages(stores: &Stores, p: &str) {
    let a = format!("{p}-list-wf-a");
    let b = format!("{p}-list-wf-b");
    let specs = [
        (&a, RunStatus::Completed, 100),
        (&b, RunStatus::Running, 101),
        (&a, RunStatus::Running, 102),
        (&a, RunStatus::Completed, 102), // same millisecond: creation order decides
    ];
    let mut ids = Vec::new();
    for (i, (wf, status, at)) in specs.iter().enumerate() {
        let id = format!("{p}-list-{i}");
        stores
            .runs
            .create_run(run(&id, wf, *status, *at))
            .await
            .unwrap();
        ids.push(id);
    }
    let names = |runs: Vec<RunRecord>| -> Vec<String> {
        runs.into_iter().map(|r| r.run_id.to_string()).collect()
    };
    let of_a = RunQuery {
        workflow: Some(a.clone()),
        ..RunQuery::default()
    };
    assert_eq!(
        names(stores.runs.list_runs(&of_a).await.unwrap()),
        [ids[3].clone(), ids[2].clone(), ids[0].clone()]
    );
    let completed_a = RunQuery {
        status: Some(RunStatus::Completed),
        workflow: Some(a.clone()),
        ..RunQuery::default()
    };
    assert_eq!(
        names(stores.runs.list_runs(&completed_a).await.unwrap()),
        [ids[3].clone(), ids[0].clone()]
    );
    let paged = RunQuery {
        workflow: Some(a.clone()),
        limit: Some(1),
        offset: 1,
        ..RunQuery::default()
    };
    assert_eq!(
        names(stores.runs.list_runs(&paged).await.unwrap()),
        [ids[2].clone()]
    );
    let running: Vec<String> = names(
        stores
            .runs
            .list_runs(&RunQuery {
                status: Some(RunStatus::Running),
                ..RunQuery::default()
            })
            .await
            .unwrap(),
    )
    .into_iter()
    .filter(|id| ids.contains(id))
    .collect();
    assert_eq!(running, [ids[2].clone(), ids[1].clone()]);
    let all = names(stores.runs.list_runs(&RunQuery::default()).await.unwrap());
    let mine: Vec<&String> = all.iter().filter(|id| ids.contains(id)).collect();
    assert_eq!(mine, [&ids[3], &ids[2], &ids[1], &ids[0]]);
}

async fn node_runs_round_trip(stores: &Stores, p: &str) {
    let id = format!("{p}-nodes");
    stores
        .runs
        .create_run(run(&id, "wf", RunStatus::Running, 200))
        .await
        .unwrap();
    let mut b0 = node(&id, "b", "0", NodeStatus::Running);
    let b1 = node(&id, "b", "1", NodeStatus::Pending);
    let a = node(&id, "a", "", NodeStatus::Completed);
    for r in [b0.clone(), b1.clone(), a.clone()] {
        stores.runs.put_node_run(r).await.unwrap();
    }
    // Replacing a record: the next attempt fails.
    b0.attempt = 2;
    b0.state = NodeStatus::Failed;
    b0.error = Some("boom: \"quoted\"".into());
    b0.finished_at = Some(2_000);
    b0.metadata = json!({"tokens": 40, "cache_hit": false});
    stores.runs.put_node_run(b0.clone()).await.unwrap();
    let got = stores.runs.node_runs(&RunId::from(&id)).await.unwrap();
    assert_eq!(
        got,
        vec![a, b0, b1],
        "one record per (node, invocation), ordered"
    );
    assert!(
        stores
            .runs
            .node_runs(&RunId::from(format!("{p}-none")))
            .await
            .unwrap()
            .is_empty()
    );

    let orphan = node(&format!("{p}-no-such-run"), "x", "", NodeStatus::Ready);
    let call = stores.runs.put_node_run(orphan).await;
    let err = queued_error(stores, call).await;
    assert!(
        matches!(&err, StoreError::NotFound { entity: "run", id } if id.ends_with("-no-such-run")),
        "{err:?}"
    );
}

/// Signals are numbered per run from 1, read back in order after a
/// sequence number, payload intact; a signal to an unknown run is refused.
async fn signals_are_sequenced(stores: &Stores, p: &str) {
    let id = RunId::from(format!("{p}-signals"));
    let other = RunId::from(format!("{p}-signals-other"));
    for r in [&id, &other] {
        stores
            .runs
            .create_run(run(r.as_str(), "wf", RunStatus::Running, 310))
            .await
            .unwrap();
    }
    let payloads = [
        json!({"amount": 5, "text": "héllo"}),
        json!(null),
        json!([1, 2]),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        let seq = stores
            .runs
            .push_signal(&id, "paid", payload.clone())
            .await
            .unwrap();
        assert_eq!(seq, i as u64 + 1);
    }
    assert_eq!(
        stores
            .runs
            .push_signal(&other, "other", json!(1))
            .await
            .unwrap(),
        1
    );
    let after = stores.runs.signals_after(&id, 1).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|s| (s.seq, s.name.as_str(), s.payload.clone()))
            .collect::<Vec<_>>(),
        vec![
            (2, "paid", payloads[1].clone()),
            (3, "paid", payloads[2].clone())
        ]
    );
    assert!(after.iter().all(|s| s.sent_at > 0));
    assert_eq!(stores.runs.signals_after(&id, 0).await.unwrap().len(), 3);
    assert!(stores.runs.signals_after(&id, 3).await.unwrap().is_empty());
    let missing = RunId::from(format!("{p}-signals-missing"));
    let err = stores
        .runs
        .push_signal(&missing, "paid", json!(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { entity: "run", id } if *id == missing.as_str()),
        "{err:?}"
    );
}

async fn controls_are_sequenced(stores: &Stores, p: &str) {
    let id = RunId::from(format!("{p}-controls"));
    stores
        .runs
        .create_run(run(id.as_str(), "wf", RunStatus::Running, 300))
        .await
        .unwrap();
    let requests = [
        ControlRequest::Approve {
            node_id: NodeId::from("review"),
            input: Some(json!({"ok": true})),
        },
        ControlRequest::Reject {
            node_id: NodeId::from("other"),
            reason: "no".into(),
        },
        ControlRequest::Cancel {
            reason: "operator".into(),
        },
    ];
    for (i, r) in requests.iter().enumerate() {
        let seq = stores.runs.push_control(&id, r.clone()).await.unwrap();
        assert_eq!(seq, i as u64 + 1);
    }
    let after = stores.runs.controls_after(&id, 1).await.unwrap();
    assert_eq!(
        after,
        vec![(2, requests[1].clone()), (3, requests[2].clone())]
    );
    assert!(stores.runs.controls_after(&id, 3).await.unwrap().is_empty());

    let missing = RunId::from(format!("{p}-controls-missing"));
    let err = stores
        .runs
        .push_control(&missing, requests[2].clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { entity: "run", id } if *id == missing.as_str()),
        "{err:?}"
    );
}

/// An approval or rejection of a node decided before is refused, naming the
/// earlier decision; of concurrent decisions exactly one is recorded.
async fn the_first_decision_of_a_node_wins(stores: &Stores, p: &str) {
    let id = RunId::from(format!("{p}-decisions"));
    stores
        .runs
        .create_run(run(id.as_str(), "wf", RunStatus::WaitingForHuman, 310))
        .await
        .unwrap();
    let approve = |node: &str| ControlRequest::Approve {
        node_id: NodeId::from(node),
        input: None,
    };
    let reject = |node: &str| ControlRequest::Reject {
        node_id: NodeId::from(node),
        reason: "too late".into(),
    };
    let cancel = ControlRequest::Cancel { reason: "x".into() };
    assert_eq!(
        stores.runs.push_control(&id, cancel.clone()).await.unwrap(),
        1
    );
    assert_eq!(
        stores
            .runs
            .push_control(&id, approve("review"))
            .await
            .unwrap(),
        2
    );
    let err = stores
        .runs
        .push_control(&id, reject("review"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyDecided { run_id, node_id, decision, seq: 2, at_ms }
            if *run_id == id.as_str() && node_id == "review" && decision == "approved" && *at_ms > 0),
        "{err:?}"
    );
    // A second approval is refused too; other nodes and cancels are not.
    assert!(matches!(
        stores.runs.push_control(&id, approve("review")).await,
        Err(StoreError::AlreadyDecided { .. })
    ));
    assert_eq!(
        stores
            .runs
            .push_control(&id, reject("other"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(stores.runs.push_control(&id, cancel).await.unwrap(), 4);
    let err = stores
        .runs
        .push_control(&id, approve("other"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyDecided { decision, seq: 3, .. } if decision == "rejected: too late"),
        "{err:?}"
    );
    // Decisions at the same moment: exactly one is recorded.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let stores = stores.clone();
            let id = id.clone();
            let request = if i % 2 == 0 {
                approve("race")
            } else {
                reject("race")
            };
            tokio::spawn(async move { stores.runs.push_control(&id, request).await })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::AlreadyDecided { node_id, .. }) => assert_eq!(node_id, "race"),
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one decision of `race` is recorded");
    let recorded = stores.runs.controls_after(&id, 0).await.unwrap();
    assert_eq!(
        recorded
            .iter()
            .filter(|(_, r)| r.decided_node().is_some_and(|n| n.as_str() == "race"))
            .count(),
        1
    );
}

async fn memoization_finds_completed_outputs(stores: &Stores, p: &str) {
    let id = format!("{p}-memo");
    stores
        .runs
        .create_run(run(&id, "wf", RunStatus::Running, 400))
        .await
        .unwrap();
    let output = stores
        .artifacts
        .put_artifact(format!("{p} memo output").into_bytes())
        .await
        .unwrap();
    let hash = format!("{p}-input-hash");
    let mut done = node(&id, "m", "", NodeStatus::Completed);
    done.action = format!("{p}-memo-action");
    done.input_hash = Some(hash.clone());
    done.output_artifact_id = Some(output.clone());
    let mut running = done.clone();
    running.node_id = NodeId::from("m2");
    running.state = NodeStatus::Running;
    running.input_hash = Some(format!("{hash}-running"));
    stores.runs.put_node_run(done.clone()).await.unwrap();
    stores.runs.put_node_run(running).await.unwrap();

    let found = stores
        .runs
        .find_memoized(&done.action, &hash)
        .await
        .unwrap();
    assert_eq!(found, Some(output.clone()));
    let not_completed = stores
        .runs
        .find_memoized(&done.action, &format!("{hash}-running"))
        .await
        .unwrap();
    assert_eq!(not_completed, None, "only completed executions are reused");
    assert_eq!(
        stores
            .runs
            .find_memoized("other-action", &hash)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        stores.artifacts.get_artifact(&output).await.unwrap(),
        format!("{p} memo output").into_bytes()
    );
}

async fn artifacts_round_trip(stores: &Stores) {
    // Around SQLite's inline limit, and one large enough for Postgres to
    // store it out of line (TOAST) in many chunks.
    let sizes = [
        0usize,
        1,
        32 * 1024 - 1,
        32 * 1024,
        200_000,
        4 * 1024 * 1024 + 3,
    ];
    for size in sizes {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let id = stores.artifacts.put_artifact(bytes.clone()).await.unwrap();
        assert_eq!(
            id,
            ArtifactId::of(&bytes),
            "content address of {size} bytes"
        );
        let again = stores.artifacts.put_artifact(bytes.clone()).await.unwrap();
        assert_eq!(again, id, "same bytes, same id");
        assert_eq!(stores.artifacts.get_artifact(&id).await.unwrap(), bytes);
    }
    let unknown = ArtifactId::of(b"never stored");
    let err = stores.artifacts.get_artifact(&unknown).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::MissingArtifact { id, .. } if *id == unknown.as_str()),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("artifact {unknown} is missing"))
    );
}

async fn snapshot_chains(stores: &Stores, p: &str) {
    let scope = format!("{p}-scope");
    let s = &stores.snapshots;
    assert!(s.load_snapshot_chain(&scope).await.unwrap().is_empty());
    let delta = |ns: &str, v: i64| SnapshotEntry::Delta {
        namespace: ns.to_string(),
        data: json!({"out": v}),
    };
    let full = |v: i64| SnapshotEntry::Full {
        data: json!({"a": {"out": v}, "inputs": {"n": "ü\"\n"}}),
    };
    s.append_snapshot(&scope, delta("a", 1)).await.unwrap();
    s.append_snapshot(&scope, delta("b", 2)).await.unwrap();
    assert_eq!(
        s.load_snapshot_chain(&scope).await.unwrap(),
        vec![delta("a", 1), delta("b", 2)],
        "without a full snapshot every delta is the chain"
    );
    s.append_snapshot(&scope, full(1)).await.unwrap();
    s.append_snapshot(&scope, delta("c", 3)).await.unwrap();
    s.append_snapshot(&scope, full(2)).await.unwrap();
    s.append_snapshot(&scope, delta("d", 4)).await.unwrap();
    s.append_snapshot(&scope, delta("d", 5)).await.unwrap();
    assert_eq!(
        s.load_snapshot_chain(&scope).await.unwrap(),
        vec![full(2), delta("d", 4), delta("d", 5)]
    );
    let other = format!("{p}-other-scope");
    s.append_snapshot(&other, full(9)).await.unwrap();
    assert_eq!(s.load_snapshot_chain(&other).await.unwrap(), vec![full(9)]);
    assert_eq!(s.load_snapshot_chain(&scope).await.unwrap().len(), 3);
}

/// An ended attempt `n` of `node` (invocation `key`) with logs and streams.
pub(crate) fn attempt(run_id: &str, node_id: &str, key: &str, n: u32) -> AttemptRecord {
    AttemptRecord {
        run_id: RunId::from(run_id),
        node_id: NodeId::from(node_id),
        invocation_key: key.to_string(),
        attempt: n,
        action: "shell".to_string(),
        outcome: AttemptOutcome::Failed,
        error: Some(format!("exit {n}")),
        output: json!({"why": "héllo \"quoted\"\n", "nul": "a\u{0}b"}),
        output_artifact_id: None,
        started_at: 1_000 + i64::from(n),
        finished_at: 2_000 + i64::from(n),
        logs: AttemptLogs {
            lines: vec![format!("line {n}"), "second line".into()],
            dropped_lines: 0,
            stdout: Some(format!("stdout of {n}\n")),
            stderr: Some(String::new()),
        },
    }
}

async fn attempts_round_trip(stores: &Stores, p: &str) {
    let runs = &stores.runs;
    let id = RunId::from(format!("{p}-attempts"));
    runs.create_run(run(id.as_str(), "wf", RunStatus::Running, 7))
        .await
        .unwrap();
    let a1 = attempt(id.as_str(), "a", "", 1);
    let mut a2 = attempt(id.as_str(), "a", "", 2);
    a2.outcome = AttemptOutcome::Succeeded;
    a2.error = None;
    a2.output = serde_json::Value::Null;
    a2.output_artifact_id = Some(ArtifactId::of(b"{}"));
    a2.logs = AttemptLogs::default();
    let fan: Vec<AttemptRecord> = [10, 2]
        .iter()
        .map(|k| attempt(id.as_str(), "b", &k.to_string(), 1))
        .collect();
    for a in [&a2, &a1, &fan[0], &fan[1]] {
        runs.put_attempt(a.clone()).await.unwrap();
    }
    // Recording the same attempt again replaces it.
    let mut again = a1.clone();
    again.error = Some("exit 1, again".into());
    runs.put_attempt(again.clone()).await.unwrap();
    runs.flush().await.unwrap();

    let all = runs.attempts(&id, &AttemptQuery::default()).await.unwrap();
    assert_eq!(
        all,
        vec![again.clone(), a2.clone(), fan[1].clone(), fan[0].clone()]
    );
    let of_a = AttemptQuery {
        node_id: Some(NodeId::from("a")),
        attempt: None,
    };
    assert_eq!(
        runs.attempts(&id, &of_a).await.unwrap(),
        vec![again, a2.clone()]
    );
    let second = AttemptQuery {
        node_id: Some(NodeId::from("a")),
        attempt: Some(2),
    };
    assert_eq!(runs.attempts(&id, &second).await.unwrap(), vec![a2]);
    let none = AttemptQuery {
        node_id: Some(NodeId::from("zz")),
        attempt: None,
    };
    assert!(runs.attempts(&id, &none).await.unwrap().is_empty());
    let unknown = RunId::from(format!("{p}-no-such-run"));
    assert!(
        runs.attempts(&unknown, &AttemptQuery::default())
            .await
            .unwrap()
            .is_empty()
    );

    // An attempt of an unknown run is refused, naming the run.
    let orphan = attempt(unknown.as_str(), "a", "", 1);
    let err = queued_error(stores, runs.put_attempt(orphan).await).await;
    assert!(
        matches!(&err, StoreError::NotFound { entity: "run", id } if *id == unknown.to_string()),
        "{err:?}"
    );
}
