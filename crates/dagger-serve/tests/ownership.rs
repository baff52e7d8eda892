//! Run ownership in the web interface: an orphaned run (its owner's lease
//! lapsed) shows as Orphaned in the pages and the JSON API and can be
//! resumed; the resume of a run whose owner's lease is live is refused
//! naming the owner.

mod common;

use common::*;
use dagger_core::store::{RunClaim, RunOwner};
use dagger_core::{NodeStatus, RunId, RunStatus, Stores, now_millis};
use serde_json::json;
use std::time::{Duration, Instant};

async fn own(stores: &Stores, run_id: &str, host: &str, pid: u32, lease_ms: i64) {
    let owner = RunOwner {
        owner_id: format!("{host}:{pid}"),
        host: host.into(),
        pid,
        token: 0,
        lease_expires_at: now_millis() + lease_ms,
    };
    let claim = stores
        .runs
        .claim_run(&RunId::from(run_id), owner, None)
        .await
        .unwrap();
    assert!(matches!(claim, RunClaim::Claimed(_)), "{claim:?}");
}

#[tokio::test]
async fn orphaned_runs_show_as_such_and_a_live_owner_refuses_the_resume_button() {
    let (_dir, stores) = temp_store().await;
    let wf = workflow("w", &[("a", &[]), ("b", &["a"])]);
    let nodes = [
        Seed::new("a", NodeStatus::Completed),
        Seed::new("b", NodeStatus::Running),
    ];
    seed_run(&stores, "live", &wf, &[], RunStatus::Running, &nodes).await;
    seed_run(&stores, "dead", &wf, &[], RunStatus::Running, &nodes).await;
    own(&stores, "live", "host-a", 99, 600_000).await;
    own(&stores, "dead", "host-b", 77, -5_000).await;
    let server = server(&stores, vec![wf], None);
    let app = server.router();

    let v = get(&app, "/api/runs").await.json();
    let runs = v["runs"].as_array().unwrap();
    let of = |id: &str| runs.iter().find(|r| r["run_id"] == id).unwrap().clone();
    let (live, dead) = (of("live"), of("dead"));
    assert_eq!(
        (&live["status"], &live["state"]),
        (&json!("Running"), &json!("Running"))
    );
    assert_eq!(live["owner"]["pid"], 99);
    assert_eq!(live["orphaned_since"], json!(null));
    assert_eq!(
        (&dead["status"], &dead["state"]),
        (&json!("Running"), &json!("Orphaned"))
    );
    assert_eq!(dead["owner"]["host"], "host-b");
    assert!(dead["orphaned_since"].is_i64(), "{dead}");
    let v = get(&app, "/api/runs/dead").await.json();
    assert_eq!(v["run"]["state"], "Orphaned");

    let page = get(&app, "/runs").await.body;
    assert!(page.contains("s-Orphaned"), "{page}");
    let page = get(&app, "/runs/dead").await.body;
    assert!(page.contains("gone since"), "{page}");
    assert!(page.contains("host-b"), "{page}");
    let page = get(&app, "/runs/live").await.body;
    assert!(page.contains("lease until"), "{page}");

    let token = server.csrf_token().to_string();
    let h = [("x-csrf-token", token.as_str())];
    let a = post_json(&app, "/api/runs/live/resume", json!({}), &h).await;
    assert_eq!(a.status, 409, "{}", a.body);
    let error = a.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("owned by pid 99 on host `host-a`"),
        "{error}"
    );
    assert!(error.contains("lease is live until"), "{error}");

    let a = post_json(&app, "/api/runs/dead/resume", json!({}), &h).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = stores
            .runs
            .get_run(&RunId::from("dead"))
            .await
            .unwrap()
            .unwrap();
        if run.status == RunStatus::Completed {
            assert_eq!(run.owner, None, "the end releases the run");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the orphan never completed: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = stores
        .runs
        .get_run(&RunId::from("live"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        run.status,
        RunStatus::Running,
        "the live run was left alone"
    );
}
