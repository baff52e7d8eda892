//! One owner per run: the running process holds a lease on its run; a
//! resume of a run whose lease is live is refused naming the owner; a run
//! whose owner died shows as orphaned and is taken over by exactly one of
//! concurrent resumes; a stale owner stops without recording its end. (The
//! process-level tests, with SIGKILL, live with the CLI.)

mod common;

use common::*;
use dagger_coord::{CoordError, Coordinator, orphaned_runs};
use dagger_core::store::MemoryStore;
use dagger_core::{Cache, NodeStatus, RunId, RunStatus, Stores, now_millis};
use dagger_dag_flow::DagConfig;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_millis(600);

fn coordinator() -> Coordinator {
    Coordinator::new(vec![], 4, 4).with_run_lease(LEASE)
}

/// Waits (up to 20 s) until `cond` holds.
async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn slow_workflow(slow_ms: u64) -> Vec<dagger_dag_flow::NodeDef> {
    vec![
        node("a", &[], json!({})),
        node("slow", &["a"], json!({"ms": slow_ms})),
        node("z", &["slow"], json!({})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_of_a_live_run_is_refused_naming_its_owner() {
    let probe = Arc::new(Probe::default());
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let wf = workflow("w", slow_workflow(60_000));
    let mut first = executor(
        DagConfig::default(),
        registry(&probe),
        wf.clone(),
        stores.clone(),
    );
    let (cancel, rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn(async move {
        coordinator()
            .run_parallel(&mut first, &Cache::new(), "w", "live", rx)
            .await
    });
    wait_for("node `slow` to start", async || probe.runs_of("slow") == 1).await;
    // Several lease lengths: the owner keeps renewing.
    tokio::time::sleep(LEASE * 3).await;
    let record = stores
        .runs
        .get_run(&RunId::from("live"))
        .await
        .unwrap()
        .unwrap();
    let owner = record.owner.clone().expect("a running run has an owner");
    assert_eq!(owner.pid, std::process::id());
    assert_eq!(owner.host, dagger_coord::host_name());
    assert!(
        owner.lease_expires_at > now_millis(),
        "the lease is renewed: {owner:?}"
    );
    assert_eq!(record.display_status(now_millis()), "Running");

    let mut second = executor(DagConfig::default(), registry(&probe), wf, stores.clone());
    let (_t, rx) = tokio::sync::oneshot::channel();
    let err = coordinator()
        .resume(&mut second, &Cache::new(), "live", rx)
        .await
        .unwrap_err();
    match &err {
        CoordError::RunOwned {
            run_id,
            host,
            pid,
            lease_expires_at,
            ..
        } => {
            assert_eq!(
                (run_id.as_str(), host, *pid),
                ("live", &owner.host, owner.pid)
            );
            assert!(*lease_expires_at > now_millis());
        }
        other => panic!("expected RunOwned, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&format!("pid {}", owner.pid)), "{message}");
    assert!(message.contains(&owner.host), "{message}");
    assert!(message.contains("lease is live until"), "{message}");
    assert_eq!(probe.runs_of("a"), 1, "the refused resume ran nothing");
    assert_eq!(probe.runs_of("slow"), 1);

    cancel.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    let record = stores
        .runs
        .get_run(&RunId::from("live"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.owner),
        (RunStatus::Cancelled, None),
        "the end releases the run"
    );
}

/// Starts run `id` on a runtime of its own and shuts that runtime down
/// mid-run, as a killed process stops: its attempts, its loop and its
/// heartbeat are gone, nothing records the run's end.
async fn orphan_a_run(stores: &Stores, probe: &Arc<Probe>, id: &str) {
    let mut ex = executor(
        DagConfig::default(),
        registry(probe),
        workflow("w", slow_workflow(1_500)),
        stores.clone(),
    );
    let id = id.to_string();
    let process = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    process.spawn(async move {
        let (_keep, rx) = tokio::sync::oneshot::channel();
        coordinator()
            .run_parallel(&mut ex, &Cache::new(), "w", &id, rx)
            .await
    });
    wait_for("node `slow` to start", async || probe.runs_of("slow") == 1).await;
    process.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_run_shows_as_orphaned_and_is_taken_over_by_exactly_one_resume() {
    let probe = Arc::new(Probe::default());
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    orphan_a_run(&stores, &probe, "dead").await;
    let id = RunId::from("dead");

    wait_for("the lease to lapse", async || {
        let r = stores.runs.get_run(&id).await.unwrap().unwrap();
        r.orphaned_since(now_millis()).is_some()
    })
    .await;
    let record = stores.runs.get_run(&id).await.unwrap().unwrap();
    assert_eq!(
        record.status,
        RunStatus::Running,
        "the stored status is untouched"
    );
    assert_eq!(record.display_status(now_millis()), "Orphaned");
    let orphans = orphaned_runs(&stores).await.unwrap();
    assert_eq!(
        orphans
            .iter()
            .map(|r| r.run_id.as_str())
            .collect::<Vec<_>>(),
        ["dead"]
    );

    // Two resumes at once: exactly one takes the run and runs its nodes
    // (from the recorded definition).
    let resume = || {
        let stores = stores.clone();
        let probe = probe.clone();
        tokio::spawn(async move {
            let mut ex = executor(
                DagConfig::default(),
                registry(&probe),
                workflow("w", slow_workflow(1_500)),
                stores,
            );
            let (_keep, rx) = tokio::sync::oneshot::channel();
            coordinator()
                .resume(&mut ex, &Cache::new(), "dead", rx)
                .await
        })
    };
    let (one, two) = tokio::join!(resume(), resume());
    let outcomes = [one.unwrap(), two.unwrap()];
    let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let refused: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(won.len(), 1, "exactly one resume wins: {outcomes:?}");
    assert!(
        matches!(refused[..], [CoordError::RunOwned { pid, .. }] if *pid == std::process::id()),
        "{refused:?}"
    );
    assert_eq!(won[0].status, RunStatus::Completed, "{:?}", won[0]);
    assert_eq!(probe.runs_of("a"), 1, "a completed before the crash");
    assert_eq!(
        probe.runs_of("slow"),
        2,
        "once before the crash, once by the winner"
    );
    assert_eq!(probe.runs_of("z"), 1, "only the winner ran z");
    let record = stores.runs.get_run(&id).await.unwrap().unwrap();
    assert_eq!((record.status, record.owner), (RunStatus::Completed, None));
    assert!(orphaned_runs(&stores).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_stops_and_never_records_its_end_over_the_new_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = dagger_storage::SqliteStore::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let stores = Stores::from(store);
    let probe = Arc::new(Probe::default());
    let mut ex = executor(
        DagConfig::default(),
        registry(&probe),
        workflow("w", slow_workflow(60_000)),
        stores.clone(),
    );
    let running = tokio::spawn(async move {
        let (_keep, rx) = tokio::sync::oneshot::channel();
        Coordinator::new(vec![], 4, 4)
            .with_run_lease(LEASE)
            .with_cancel_grace(Duration::from_secs(5))
            .run_parallel(&mut ex, &Cache::new(), "w", "stolen", rx)
            .await
    });
    wait_for("node `slow` to start", async || probe.runs_of("slow") == 1).await;
    // Another process takes the run over, as it may once this one's lease
    // lapsed (this one was frozen, or cut off from the store).
    let thief = rusqlite::Connection::open(&path).unwrap();
    thief.busy_timeout(Duration::from_secs(10)).unwrap();
    let taken = thief
        .execute(
            "UPDATE flow_runs SET owner_id = 'thief', owner_host = 'elsewhere', owner_pid = 7, \
             owner_token = owner_token + 1, lease_expires_at = ?1 WHERE run_id = 'stolen'",
            [now_millis() + 600_000],
        )
        .unwrap();
    assert_eq!(taken, 1);

    let err = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the stale owner stops within a renewal period and the grace")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            CoordError::OwnershipLost {
                held: 1,
                current: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("taken over"), "{err}");
    assert_eq!(
        probe.cancelled.lock().as_slice(),
        ["slow"],
        "its attempt was cancelled"
    );
    assert_eq!(probe.runs_of("z"), 0);
    let record = stores
        .runs
        .get_run(&RunId::from("stolen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.status,
        RunStatus::Running,
        "the stale owner recorded no end"
    );
    assert_eq!(record.finished_at, None);
    let owner = record.owner.unwrap();
    assert_eq!((owner.owner_id.as_str(), owner.token), ("thief", 2));
    let slow = stores
        .runs
        .node_runs(&RunId::from("stolen"))
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.node_id.as_str() == "slow")
        .unwrap();
    assert_eq!(
        slow.state,
        NodeStatus::Running,
        "nor its cancellation of `slow`"
    );
}
