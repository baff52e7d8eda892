//! Starting a run from the Workflows page (a form generated from the
//! declared inputs) and from the API: inputs are checked before a run
//! exists, a refusal names the input and keeps the page, and a started run
//! executes with the server's actions.

mod common;

use common::*;
use dagger_core::RunStatus;
use dagger_core::store::RunQuery;
use dagger_dag_flow::{JsonType, RunInputDef, WorkflowDef};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `greet` (echo) reads input `who` (a declared string) and `times` (an
/// integer, default 2).
fn greeting() -> WorkflowDef {
    let mut wf = workflow("greeting", &[("greet", &[])]);
    wf.nodes[0].inputs = vec![
        dagger_core::InputSpec {
            name: "who".into(),
            reference: Some("inputs.who".into()),
            ..Default::default()
        },
        dagger_core::InputSpec {
            name: "times".into(),
            reference: Some("inputs.times".into()),
            ..Default::default()
        },
    ];
    wf.inputs = Some(vec![
        RunInputDef {
            name: "who".into(),
            kind: Some(JsonType::String),
            schema: None,
            default: None,
            description: Some("whom to greet".into()),
        },
        RunInputDef {
            name: "times".into(),
            kind: Some(JsonType::Integer),
            schema: None,
            default: Some(json!(2)),
            description: None,
        },
    ]);
    wf
}

async fn run_count(stores: &dagger_core::Stores) -> usize {
    stores
        .runs
        .list_runs(&RunQuery::default())
        .await
        .unwrap()
        .len()
}

/// Polls the run's API record until it ended (bounded).
async fn ended(app: &axum::Router, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get(app, &format!("/api/runs/{run_id}")).await.json();
        let status = v["run"]["status"]
            .as_str()
            .or(v["status"].as_str())
            .unwrap_or("")
            .to_string();
        if RunStatus::parse(&status).is_some_and(|s| s.is_terminal()) {
            return v;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_api_checks_inputs_then_starts_a_run_with_the_servers_actions() {
    let (_dir, stores) = temp_store().await;
    let server = server(&stores, vec![greeting()], None);
    let csrf = server.csrf_token().to_string();
    let app = server.router();
    let h = [("x-csrf-token", csrf.as_str())];

    let refused = post_json(
        &app,
        "/api/workflows/greeting/runs",
        json!({"inputs": {"times": "x"}}),
        &h,
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("who"),
        "names the missing input: {}",
        refused.body
    );
    assert!(
        refused.body.contains("times"),
        "names the ill-typed input: {}",
        refused.body
    );
    assert_eq!(
        run_count(&stores).await,
        0,
        "nothing recorded for a refused start"
    );

    let unknown = post_json(&app, "/api/workflows/nope/runs", json!({}), &h).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    let started = post_json(
        &app,
        "/api/workflows/greeting/runs",
        json!({"inputs": {"who": "Ada"}}),
        &h,
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.body);
    let run_id = started.json()["run_id"].as_str().unwrap().to_string();
    let v = ended(&app, &run_id).await;
    assert!(v.to_string().contains("Completed"), "{v}");
    let output = get(&app, &format!("/api/runs/{run_id}/nodes/greet/output")).await;
    assert!(output.body.contains("Ada"), "{}", output.body);
    assert!(
        output.body.contains('2'),
        "the default of `times` applied: {}",
        output.body
    );
}

#[tokio::test]
async fn the_page_form_starts_a_run_and_a_refusal_keeps_the_page() {
    let (_dir, stores) = temp_store().await;
    let server = server(&stores, vec![greeting()], None);
    let csrf = server.csrf_token().to_string();
    let app = server.router();

    let page = get(&app, "/workflows/greeting").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Start a run"), "{}", page.body);
    assert!(
        page.body.contains("name=\"input.who\""),
        "a field per declared input"
    );
    assert!(page.body.contains("whom to greet"), "with its description");
    assert!(page.body.contains("default: 2"), "and its default");

    let bad = post_form(
        &app,
        "/workflows/greeting/start",
        &format!(
            "csrf={}&input.who=Ada&input.times={}",
            enc(&csrf),
            enc("1.5")
        ),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("Workflow"),
        "the workflow page, not a bare error page"
    );
    assert!(
        bad.body.contains("times"),
        "the refusal names the input: {}",
        bad.body
    );
    assert!(
        bad.body.contains("value=\"1.5\""),
        "the entered value is kept"
    );
    assert_eq!(run_count(&stores).await, 0);

    let no_csrf = post_form(&app, "/workflows/greeting/start", "input.who=Ada").await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);

    let good = post_form(
        &app,
        "/workflows/greeting/start",
        &format!("csrf={}&input.who=Grace", enc(&csrf)),
    )
    .await;
    assert!(
        good.status.is_redirection(),
        "{} {}",
        good.status,
        good.body
    );
    let run_id = good.location().trim_start_matches("/runs/").to_string();
    ended(&app, &run_id).await;
    let output = get(&app, &format!("/api/runs/{run_id}/nodes/greet/output")).await;
    assert!(output.body.contains("Grace"), "{}", output.body);
}

#[tokio::test]
async fn an_idempotency_key_answers_with_the_run_it_names() {
    let (_dir, stores) = temp_store().await;
    let server = server(&stores, vec![greeting()], None);
    let csrf = server.csrf_token().to_string();
    let app = server.router();
    let h = [("x-csrf-token", csrf.as_str())];
    let body = json!({"inputs": {"who": "Ada"}, "idempotency_key": "order-7"});

    let first = post_json(&app, "/api/workflows/greeting/runs", body.clone(), &h).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let run_id = first.json()["run_id"].as_str().unwrap().to_string();
    let again = post_json(&app, "/api/workflows/greeting/runs", body, &h).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["run_id"], run_id.as_str());
    assert_eq!(again.json()["existing"], true);
    // The header form of the key, and the CSRF rule still holds.
    let header = [
        ("x-csrf-token", csrf.as_str()),
        ("idempotency-key", "order-7"),
    ];
    let by_header = post_json(
        &app,
        "/api/workflows/greeting/runs",
        json!({"inputs": {"who": "Ada"}}),
        &header,
    )
    .await;
    assert_eq!(by_header.json()["run_id"], run_id.as_str());
    let no_csrf = post_json(
        &app,
        "/api/workflows/greeting/runs",
        json!({"inputs": {"who": "Ada"}, "idempotency_key": "order-8"}),
        &[],
    )
    .await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    let bad = post_json(
        &app,
        "/api/workflows/greeting/runs",
        json!({"inputs": {"who": "Ada"}, "idempotency_key": "k", "key_policy": "maybe"}),
        &h,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(run_count(&stores).await, 1, "one run for the key");
    ended(&app, &run_id).await;
}
