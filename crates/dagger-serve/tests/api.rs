//! The JSON API under `/api/`, through the router (`tower::oneshot`).

mod common;

use common::*;
use dagger_core::store::ControlRequest;
use dagger_core::{NodeStatus, RunStatus, Stores};
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    stores: Stores,
    server: dagger_serve::Server,
    app: axum::Router,
}

async fn fixture() -> Fixture {
    let (dir, stores) = temp_store().await;
    let wf = workflow("pipeline", &[("a", &[]), ("b", &["a"]), ("c", &["b"])]);
    let mut nodes = vec![
        Seed::new("a", NodeStatus::Completed),
        Seed::new("b", NodeStatus::Completed),
        Seed::new("c", NodeStatus::Completed),
    ];
    nodes[0].output = Some(json!({ "rows": [1, 2, 3] }));
    seed_run(&stores, "r1", &wf, &["c"], RunStatus::Completed, &nodes).await;
    let review = {
        let mut w = workflow("review", &[("draft", &[]), ("publish", &["draft"])]);
        w.nodes[1].approval = Some("ok?".into());
        w
    };
    let mut waiting = vec![
        Seed::new("draft", NodeStatus::Completed),
        Seed::new("publish", NodeStatus::WaitingForHuman),
    ];
    waiting[1].prompt = Some("ok?");
    seed_run(
        &stores,
        "r2",
        &review,
        &[],
        RunStatus::WaitingForHuman,
        &waiting,
    )
    .await;
    let server = server(&stores, vec![wf, review], None);
    let app = server.router();
    Fixture {
        _dir: dir,
        stores,
        server,
        app,
    }
}

#[tokio::test]
async fn runs_are_listed_filtered_and_paged() {
    let f = fixture().await;
    let v = get(&f.app, "/api/runs").await.json();
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
    assert_eq!(v["runs"][0]["run_id"], "r2", "newest first");
    assert_eq!(v["limit"], 50);
    assert_eq!(v["next_offset"], serde_json::Value::Null);
    let v = get(&f.app, "/api/runs?limit=1").await.json();
    assert_eq!(v["next_offset"], 1);
    let v = get(&f.app, "/api/runs?status=Completed").await.json();
    assert_eq!(v["runs"][0]["run_id"], "r1");
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["status"], "Completed");
    let v = get(&f.app, "/api/runs?workflow=review").await.json();
    assert_eq!(v["runs"][0]["run_id"], "r2");
    let a = get(&f.app, "/api/runs?limit=0").await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "limit must be at least 1");
    let a = get(&f.app, "/api/runs?status=nope").await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown status `nope` (one of: ")
    );
}

#[tokio::test]
async fn a_run_with_its_nodes_outputs_and_graphs() {
    let f = fixture().await;
    let v = get(&f.app, "/api/runs/r1").await.json();
    assert_eq!(v["run"]["status"], "Completed");
    assert_eq!(v["node_total"], 3);
    assert_eq!(v["nodes"][0]["id"], "a");
    assert_eq!(v["nodes"][0]["output_preview"], r#"{"rows":[1,2,3]}"#);
    assert_eq!(v["nodes"][2]["added_at_runtime"], true);
    assert_eq!(v["resuming"], false);
    let v = get(&f.app, "/api/runs/r1?node_offset=1&node_limit=1")
        .await
        .json();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(v["nodes"][0]["id"], "b");
    assert_eq!(v["next_node_offset"], 2);

    let v = get(&f.app, "/api/runs/r2").await.json();
    assert_eq!(
        v["waiting"],
        json!([{ "index": 1, "id": "publish", "prompt": "ok?" }])
    );

    let v = get(&f.app, "/api/runs/r1/nodes/a/output").await.json();
    assert_eq!(v["output"], json!({ "rows": [1, 2, 3] }));
    let v = get(&f.app, "/api/runs/r2/nodes/publish/output")
        .await
        .json();
    assert_eq!(v["output"], serde_json::Value::Null);
    let a = get(&f.app, "/api/runs/r1/nodes/zz/output").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"], "run `r1` has no node `zz`");

    let a = get(&f.app, "/api/runs/r1/dot").await;
    assert_eq!(
        a.headers["content-type"],
        "text/vnd.graphviz; charset=utf-8"
    );
    assert!(a.body.starts_with("digraph \"pipeline\""));
    assert!(a.body.contains("\"a\" -> \"b\""));
    let a = get(&f.app, "/api/runs/r1/graph.svg").await;
    assert_eq!(a.headers["content-type"], "image/svg+xml");
    assert!(a.body.starts_with("<svg") && a.body.contains("g.s-Completed rect"));

    let a = get(&f.app, "/api/runs/missing").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"], "run `missing` not found");
}

#[tokio::test]
async fn events_of_a_finished_run_end_after_one_snapshot() {
    let f = fixture().await;
    let a = get(&f.app, "/api/runs/r1/events").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "text/event-stream");
    let events: Vec<&str> = a
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, ["nodes", "run", "end"], "{}", a.body);
    assert!(
        a.body.contains(r#""i":2,"status":"Completed""#),
        "{}",
        a.body
    );
    assert!(a.body.contains(r#""node_count":3"#));
    assert_eq!(get(&f.app, "/api/runs/none/events").await.status, 404);
}

#[tokio::test]
async fn events_follow_a_live_run_until_it_ends() {
    let f = fixture().await;
    let app = f.app.clone();
    let reader = tokio::spawn(async move { get(&app, "/api/runs/r2/events").await });
    // Let the stream send its first snapshot, then finish the run.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Update the node and the run through the store, as a coordinator would.
    f.stores
        .runs
        .put_node_run(dagger_core::store::NodeRunRecord {
            run_id: "r2".into(),
            node_id: "publish".into(),
            invocation_key: String::new(),
            action: "echo".into(),
            attempt: 1,
            state: NodeStatus::Completed,
            input_hash: None,
            output_artifact_id: None,
            error: None,
            started_at: Some(1),
            finished_at: Some(2),
            metadata: json!({}),
        })
        .await
        .unwrap();
    f.stores
        .runs
        .update_run(
            &"r2".into(),
            dagger_core::store::RunUpdate {
                status: Some(RunStatus::Completed),
                finished_at: Some(Some(dagger_core::now_millis())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let a = reader.await.unwrap();
    let events: Vec<&str> = a
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        ["nodes", "run", "nodes", "run", "end"],
        "{}",
        a.body
    );
    let last_nodes = a.body.split("event: nodes").nth(2).unwrap();
    assert!(
        last_nodes.contains(r#"[{"i":1,"status":"Completed""#),
        "only the changed node: {last_nodes}"
    );
    assert!(!last_nodes.contains(r#""i":0"#));
}

#[tokio::test]
async fn mutations_need_the_csrf_header_and_answer_in_json() {
    let f = fixture().await;
    let token = f.server.csrf_token().to_string();
    let h = [("x-csrf-token", token.as_str())];

    let a = post_json(
        &f.app,
        "/api/runs/r2/approve",
        json!({ "node": "publish" }),
        &[],
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.json()["error"],
        "missing or wrong CSRF token; reload the page and try again"
    );
    let a = post_json(
        &f.app,
        "/api/runs/r2/approve",
        json!({ "node": "publish" }),
        &[("x-csrf-token", "bad")],
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(controls(&f.stores, "r2").await.is_empty());

    let v = get(&f.app, "/api/csrf").await.json();
    assert_eq!(v["csrf_token"], token);

    let a = post_json(
        &f.app,
        "/api/runs/r2/approve",
        json!({ "node": "publish", "input": { "n": 1 } }),
        &h,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["requested"], "approve");
    // The first decision recorded wins: a later rejection is a 409 saying
    // what was decided and when, and is not recorded.
    let a = post_json(
        &f.app,
        "/api/runs/r2/reject",
        json!({ "node": "publish", "reason": "late" }),
        &h,
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.body);
    let error = a.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("node `publish` of run `r2` was already approved at 20")
            && error.ends_with("the first decision recorded wins"),
        "{error}"
    );
    let a = post_json(&f.app, "/api/runs/r2/cancel", json!({}), &h).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        controls(&f.stores, "r2").await,
        vec![
            ControlRequest::Approve {
                node_id: "publish".into(),
                input: Some(json!({ "n": 1 }))
            },
            ControlRequest::Cancel {
                reason: "cancelled from the web interface".into()
            },
        ]
    );

    let a = post_json(
        &f.app,
        "/api/runs/r2/approve",
        json!({ "nod": "publish" }),
        &h,
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `nod`"),
        "{}",
        a.body
    );
    let a = post_json(&f.app, "/api/runs/r1/cancel", json!({}), &h).await;
    assert_eq!(a.status, 409);
    let a = post_json(&f.app, "/api/runs/r2/resume", json!({}), &h).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.json()["resuming"], true);
    let a = post_json(&f.app, "/api/runs/r1/resume", json!({}), &h).await;
    assert_eq!(a.status, 409);
    assert_eq!(
        a.json()["error"],
        "run `r1` completed; there is nothing to resume"
    );
}

#[tokio::test]
async fn a_bearer_token_stands_for_login_and_csrf() {
    let (_d, stores) = temp_store().await;
    let wf = workflow("w", &[("a", &[])]);
    seed_run(
        &stores,
        "r",
        &wf,
        &[],
        RunStatus::Running,
        &[Seed::new("a", NodeStatus::Running)],
    )
    .await;
    let token = "0123456789abcdef";
    let server = server(&stores, vec![], Some(token));
    let app = server.router();
    let csrf = server.csrf_token().to_string();
    let a = post_json(
        &app,
        "/api/runs/r/cancel",
        json!({}),
        &[("x-csrf-token", &csrf)],
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(
        a.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let a = post_json(
        &app,
        "/api/runs/r/cancel",
        json!({}),
        &[("authorization", "Bearer nope-nope-nope-no")],
    )
    .await;
    assert_eq!(a.status, 403);
    let bearer = format!("Bearer {token}");
    let a = post_json(
        &app,
        "/api/runs/r/cancel",
        json!({ "reason": "api" }),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        controls(&stores, "r").await,
        vec![ControlRequest::Cancel {
            reason: "api".into()
        }]
    );
}

#[tokio::test]
async fn workflows_and_unknown_routes() {
    let f = fixture().await;
    let v = get(&f.app, "/api/workflows").await.json();
    assert_eq!(v["workflows"][0]["name"], "pipeline");
    assert_eq!(v["workflows"][0]["tags"], json!(["test"]));
    assert_eq!(v["workflows"][0]["node_count"], 3);
    assert_eq!(v["problems"][0]["file"], "broken.yaml");
    let v = get(&f.app, "/api/workflows/review").await.json();
    assert_eq!(v["definition"]["nodes"][1]["approval"], "ok?");
    let a = get(&f.app, "/api/workflows/review/dot").await;
    assert!(a.body.contains("\"draft\" -> \"publish\""));
    let a = get(&f.app, "/api/workflows/review/graph.svg").await;
    assert!(a.body.contains("gnode s-def"));
    let a = get(&f.app, "/api/workflows/zzz").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"], "workflow `zzz` not found");
    let a = get(&f.app, "/api/nothing/here").await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.json()["error"],
        "no such page or API route: `/api/nothing/here`"
    );
}
