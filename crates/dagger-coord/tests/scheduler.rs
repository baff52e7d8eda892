//! The `Scheduler`'s overlap policies, pause, and two schedulers on one
//! store, driven with explicit fire times (runs are real: a `work` node
//! that waits until cancelled).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Probe, executor, node, registry, workflow};
use dagger_coord::{Coordinator, FireOutcome, Fired, Scheduler};
use dagger_core::store::{ControlRequest, MemoryStore};
use dagger_core::{RunId, RunStatus, Stores, now_millis};
use dagger_dag_flow::{DagConfig, Overlap, ScheduleDef};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVERY: i64 = 10_000;

fn scheduler(stores: &Stores, overlap: Overlap, paused: bool, base: i64) -> Scheduler {
    let mut wf = workflow("nightly", vec![node("wait", &[], json!({"ms": 120_000}))]);
    wf.schedules.push(ScheduleDef {
        name: "tick".into(),
        cron: None,
        timezone: None,
        every: Some("10s".into()),
        inputs: serde_json::Map::new(),
        overlap,
        catch_up: Some("0s".into()),
        paused,
    });
    let probe = Arc::new(Probe::default());
    let ex = executor(DagConfig::default(), registry(&probe), wf, stores.clone());
    let coordinator = Coordinator::default().with_control_poll(Duration::from_millis(20));
    Scheduler::new(coordinator, ex, base).unwrap()
}

fn base() -> i64 {
    now_millis() / EVERY * EVERY
}

fn outcomes(fired: &[Fired]) -> Vec<(i64, FireOutcome)> {
    fired.iter().map(|f| (f.fire_ms, f.outcome)).collect()
}

async fn stop_and_wait(stores: &Stores, run_id: &str) {
    let id = RunId::from(run_id);
    let reason = "test".to_string();
    stores
        .runs
        .push_control(&id, ControlRequest::Cancel { reason })
        .await
        .unwrap();
    wait_terminal(stores, run_id).await;
}

async fn wait_terminal(stores: &Stores, run_id: &str) -> RunStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = stores.runs.get_run(&RunId::from(run_id)).await.unwrap();
        if let Some(status) = run.map(|r| r.status).filter(|s| s.is_terminal()) {
            return status;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_drops_a_fire_while_the_last_run_is_unfinished() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut s = scheduler(&stores, Overlap::Skip, false, b);
    let first = s.tick(b).await.unwrap();
    assert_eq!(outcomes(&first), vec![(b, FireOutcome::Started)]);
    let second = s.tick(b + EVERY).await.unwrap();
    assert_eq!(outcomes(&second), vec![(b + EVERY, FireOutcome::Skipped)]);
    stop_and_wait(&stores, &first[0].run_id).await;
    let third = s.tick(b + 2 * EVERY).await.unwrap();
    assert_eq!(
        outcomes(&third),
        vec![(b + 2 * EVERY, FireOutcome::Started)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_all_starts_each_fire_once_across_schedulers() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut one = scheduler(&stores, Overlap::AllowAll, false, b);
    let mut two = scheduler(&stores, Overlap::AllowAll, false, b);
    assert_eq!(
        outcomes(&one.tick(b).await.unwrap()),
        vec![(b, FireOutcome::Started)]
    );
    assert_eq!(
        outcomes(&two.tick(b).await.unwrap()),
        vec![(b, FireOutcome::Existing)]
    );
    let later = b + EVERY;
    assert_eq!(
        outcomes(&two.tick(later).await.unwrap()),
        vec![(later, FireOutcome::Started)]
    );
    assert_eq!(
        outcomes(&one.tick(later).await.unwrap()),
        vec![(later, FireOutcome::Existing)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_one_keeps_the_first_waiting_fire() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut s = scheduler(&stores, Overlap::BufferOne, false, b);
    let first = s.tick(b).await.unwrap();
    assert!(s.tick(b + EVERY).await.unwrap().is_empty(), "buffered");
    let dropped = s.tick(b + 2 * EVERY).await.unwrap();
    assert_eq!(
        outcomes(&dropped),
        vec![(b + 2 * EVERY, FireOutcome::Skipped)]
    );
    stop_and_wait(&stores, &first[0].run_id).await;
    let now = b + 2 * EVERY + 1;
    let started = s.tick(now).await.unwrap();
    assert_eq!(outcomes(&started), vec![(b + EVERY, FireOutcome::Started)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_all_starts_every_fire_in_order_one_at_a_time() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut s = scheduler(&stores, Overlap::BufferAll, false, b);
    let first = s.tick(b).await.unwrap();
    assert!(s.tick(b + EVERY).await.unwrap().is_empty());
    assert!(s.tick(b + 2 * EVERY).await.unwrap().is_empty());
    stop_and_wait(&stores, &first[0].run_id).await;
    let now = b + 2 * EVERY + 1;
    let second = s.tick(now).await.unwrap();
    assert_eq!(outcomes(&second), vec![(b + EVERY, FireOutcome::Started)]);
    stop_and_wait(&stores, &second[0].run_id).await;
    let third = s.tick(now + 1).await.unwrap();
    assert_eq!(
        outcomes(&third),
        vec![(b + 2 * EVERY, FireOutcome::Started)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_other_cancels_the_unfinished_run() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut s = scheduler(&stores, Overlap::CancelOther, false, b);
    let first = s.tick(b).await.unwrap();
    let second = s.tick(b + EVERY).await.unwrap();
    assert_eq!(outcomes(&second), vec![(b + EVERY, FireOutcome::Started)]);
    assert_eq!(
        wait_terminal(&stores, &first[0].run_id).await,
        RunStatus::Cancelled
    );
    stop_and_wait(&stores, &second[0].run_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_schedule_fires_nothing_but_can_be_triggered() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut s = scheduler(&stores, Overlap::AllowAll, true, b);
    assert!(s.tick(b + 3 * EVERY).await.unwrap().is_empty());
    let (fired, handle) = s.trigger("tick", b + 3 * EVERY + 5).await.unwrap();
    assert_eq!(fired.outcome, FireOutcome::Started);
    handle.unwrap().cancel("test");
    assert!(s.trigger("nope", b).await.is_err());
}

/// A tick that wakes after its fire's time (the run loop never wakes on the
/// exact millisecond) still starts that fire with a zero catch-up window:
/// the window judges only fires due before the scheduler's previous tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_tick_starts_its_fire_even_without_a_catch_up_window() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut s = scheduler(&stores, Overlap::AllowAll, false, b);
    let first = s.tick(b + 40).await.unwrap();
    assert_eq!(outcomes(&first), vec![(b, FireOutcome::Started)]);
    let second = s.tick(b + EVERY + 250).await.unwrap();
    assert_eq!(outcomes(&second), vec![(b + EVERY, FireOutcome::Started)]);
    for f in first.iter().chain(&second) {
        stop_and_wait(&stores, &f.run_id).await;
    }
}

/// The store's schedule state reaches each scheduler on it at its next
/// tick: a resume overrides `paused: true`, a pause stops the fires (not
/// caught up on resume), a schedule added to the store fires with its
/// inputs and stops once deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_pauses_resumes_adds_and_deletes_schedules() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut one = scheduler(&stores, Overlap::AllowAll, true, b);
    let mut two = scheduler(&stores, Overlap::AllowAll, true, b);
    let state = stores.schedules.clone();
    assert!(one.tick(b).await.unwrap().is_empty(), "paused in its file");
    assert!(two.tick(b).await.unwrap().is_empty(), "paused in its file");
    state.set_schedule_paused("tick", false, b).await.unwrap();
    let at = b + EVERY;
    assert_eq!(
        outcomes(&one.tick(at).await.unwrap()),
        vec![(at, FireOutcome::Started)]
    );
    assert_eq!(
        outcomes(&two.tick(at).await.unwrap()),
        vec![(at, FireOutcome::Existing)]
    );
    state.set_schedule_paused("tick", true, at).await.unwrap();
    assert!(one.tick(at + EVERY).await.unwrap().is_empty());
    assert!(two.tick(at + EVERY).await.unwrap().is_empty());
    state.set_schedule_paused("tick", false, at).await.unwrap();
    let resumed = at + 2 * EVERY;
    assert_eq!(
        outcomes(&one.tick(resumed).await.unwrap()),
        vec![(resumed, FireOutcome::Started)],
        "the fire missed while paused is not caught up"
    );

    let spec = json!({"name": "extra", "every": "10s", "inputs": {"n": 3}, "overlap": "allow_all", "catch_up": "0s"});
    state
        .add_schedule("extra", "nightly", spec, resumed)
        .await
        .unwrap();
    // A stored schedule of a workflow the scheduler does not load is not its.
    let other = json!({"name": "elsewhere", "every": "10s"});
    state
        .add_schedule("elsewhere", "other_wf", other, resumed)
        .await
        .unwrap();
    let next = resumed + EVERY;
    let fired = one.tick(next).await.unwrap();
    let mut got: Vec<_> = fired
        .iter()
        .map(|f| (f.schedule.as_str(), f.fire_ms, f.outcome))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            ("extra", next, FireOutcome::Started),
            ("tick", next, FireOutcome::Started)
        ]
    );
    let extra = fired.iter().find(|f| f.schedule == "extra").unwrap();
    let run = stores
        .runs
        .get_run(&RunId::from(extra.run_id.as_str()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.inputs, json!({"n": 3}));
    assert!(state.delete_schedule("extra").await.unwrap());
    let last = next + EVERY;
    let fired = one.tick(last).await.unwrap();
    assert_eq!(outcomes(&fired), vec![(last, FireOutcome::Started)]);
    assert_eq!(fired[0].schedule, "tick");
    let runs = stores
        .runs
        .list_runs(&dagger_core::store::RunQuery::default())
        .await
        .unwrap();
    for r in runs.iter().filter(|r| !r.status.is_terminal()) {
        stop_and_wait(&stores, r.run_id.as_str()).await;
    }
}

/// The library form of `schedule pause|resume|add|delete`: checked against
/// the scheduler's schedules, seen by another scheduler at its next tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_pause_resume_add_delete() {
    let stores = Stores::from(Arc::new(MemoryStore::new()));
    let b = base();
    let mut one = scheduler(&stores, Overlap::AllowAll, false, b);
    let mut two = scheduler(&stores, Overlap::AllowAll, false, b);
    assert!(matches!(
        one.pause("nope", b).await,
        Err(dagger_coord::CoordError::UnknownSchedule(_))
    ));
    one.pause("tick", b).await.unwrap();
    assert!(two.tick(b).await.unwrap().is_empty(), "paused by the other");
    assert!(one.entries().all(|e| e.paused));
    one.resume("tick", b).await.unwrap();

    let def = |name: &str, every: &str| -> ScheduleDef {
        serde_json::from_value(
            json!({"name": name, "every": every, "overlap": "allow_all", "catch_up": "0s"}),
        )
        .unwrap()
    };
    let err = one.add("nightly", def("tick", "1m"), b).await.unwrap_err();
    assert!(
        err.to_string().contains("declared in workflow `nightly`"),
        "{err}"
    );
    let err = one
        .add("nightly", def("bad", "1 parsec"), b)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a duration"), "{err}");
    assert!(one.add("missing_wf", def("x", "1m"), b).await.is_err());
    one.add("nightly", def("extra", "10s"), b).await.unwrap();
    let err = two.add("nightly", def("extra", "1m"), b).await.unwrap_err();
    assert!(
        err.to_string().contains("stored for workflow `nightly`"),
        "{err}"
    );
    let err = one.delete("tick", b).await.unwrap_err();
    assert!(err.to_string().contains("edit the workflow"), "{err}");
    let at = b + EVERY;
    let mut fired: Vec<_> = two
        .tick(at)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.schedule)
        .collect();
    fired.sort();
    // `two` found `extra` at `b` (its failed add refreshed): the fires at
    // `b` and `at` are due.
    assert_eq!(fired, ["extra", "extra", "tick"]);
    one.delete("extra", at).await.unwrap();
    assert!(matches!(
        one.delete("extra", at).await,
        Err(dagger_coord::CoordError::UnknownSchedule(_))
    ));
    let later = at + EVERY;
    let fired = two.tick(later).await.unwrap();
    assert_eq!(outcomes(&fired), vec![(later, FireOutcome::Started)]);
    assert_eq!(fired[0].schedule, "tick");
    let runs = stores
        .runs
        .list_runs(&dagger_core::store::RunQuery::default())
        .await
        .unwrap();
    for r in runs.iter().filter(|r| !r.status.is_terminal()) {
        stop_and_wait(&stores, r.run_id.as_str()).await;
    }
}
