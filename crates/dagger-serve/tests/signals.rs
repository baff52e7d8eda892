//! `POST /api/runs/{id}/signals/{name}`: the CSRF rule of every change, the
//! payload stored for the run, and the shared checks (unknown run 404, no
//! node waiting for the signal 409, ended run 409, a payload the node's
//! schema refuses 422 naming run, node and signal).

mod common;

use common::*;
use dagger_core::{NodeStatus, RunId, RunStatus};
use serde_json::json;

#[tokio::test]
async fn a_signal_is_checked_then_stored_for_the_run() {
    let (_dir, stores) = temp_store().await;
    let mut wf = workflow("shop", &[("pay", &[]), ("ship", &["pay"])]);
    wf.nodes[0].action = String::new();
    wf.nodes[0].wait_for = Some(dagger_dag_flow::WaitFor {
        signal: "paid".into(),
        schema: Some(json!({ "type": "object", "required": ["amount"] })),
        ..Default::default()
    });
    let nodes = [Seed::new("pay", NodeStatus::Waiting)];
    seed_run(&stores, "s1", &wf, &[], RunStatus::Running, &nodes).await;
    seed_run(&stores, "s2", &wf, &[], RunStatus::Completed, &[]).await;
    let server = server(&stores, vec![wf], None);
    let app = server.router();
    let token = server.csrf_token().to_string();
    let h = [("x-csrf-token", token.as_str())];
    let stored = || async {
        stores
            .runs
            .signals_after(&RunId::from("s1"), 0)
            .await
            .unwrap()
    };

    let a = post_json(
        &app,
        "/api/runs/s1/signals/paid",
        json!({ "amount": 1 }),
        &[],
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(stored().await.is_empty());

    let a = post_json(&app, "/api/runs/s1/signals/paid", json!({ "note": 1 }), &h).await;
    assert_eq!(a.status, 422, "{}", a.body);
    let error = a.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("run `s1`: node `pay` refused signal `paid`"),
        "{error}"
    );
    let a = post_json(&app, "/api/runs/s1/signals/nope", json!({}), &h).await;
    assert_eq!(a.status, 409, "{}", a.body);
    let a = post_json(
        &app,
        "/api/runs/s2/signals/paid",
        json!({ "amount": 1 }),
        &h,
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.body);
    let a = post_json(
        &app,
        "/api/runs/zz/signals/paid",
        json!({ "amount": 1 }),
        &h,
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(stored().await.is_empty());

    let a = post_json(
        &app,
        "/api/runs/s1/signals/paid",
        json!({ "amount": 5 }),
        &h,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({ "run_id": "s1", "signal": "paid", "seq": 1 })
    );
    let signals = stored().await;
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].name, "paid");
    assert_eq!(signals[0].payload, json!({ "amount": 5 }));
}
