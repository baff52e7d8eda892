//! Every recorded attempt of a node: `GET /api/runs/{id}/nodes/{node}/attempts`
//! and the run page's log panel.

mod common;

use common::*;
use dagger_core::store::{AttemptLogs, AttemptOutcome, AttemptRecord};
use dagger_core::{NodeId, NodeStatus, RunId, RunStatus, Stores};
use serde_json::{Value, json};

fn attempt(run: &str, node: &str, n: u32, outcome: AttemptOutcome, stdout: &str) -> AttemptRecord {
    AttemptRecord {
        run_id: RunId::from(run),
        node_id: NodeId::from(node),
        invocation_key: String::new(),
        attempt: n,
        action: "shell".into(),
        outcome,
        error: (outcome != AttemptOutcome::Succeeded).then(|| format!("boom {n}")),
        output: Value::Null,
        output_artifact_id: None,
        started_at: 1_000,
        finished_at: 2_500,
        logs: AttemptLogs {
            lines: vec![format!("line of attempt {n}")],
            dropped_lines: 0,
            stdout: Some(stdout.to_string()),
            stderr: None,
        },
    }
}

async fn fixture() -> (tempfile::TempDir, Stores, axum::Router) {
    let (dir, stores) = temp_store().await;
    let wf = workflow("pipeline", &[("a", &[]), ("b", &["a"])]);
    let nodes = vec![
        Seed::new("a", NodeStatus::Completed),
        Seed::new("b", NodeStatus::Completed),
    ];
    seed_run(&stores, "r1", &wf, &[], RunStatus::Completed, &nodes).await;
    let runs = &stores.runs;
    runs.put_attempt(attempt(
        "r1",
        "a",
        1,
        AttemptOutcome::Failed,
        "<script>x</script>",
    ))
    .await
    .unwrap();
    runs.put_attempt(attempt("r1", "a", 2, AttemptOutcome::Succeeded, "ok"))
        .await
        .unwrap();
    runs.flush().await.unwrap();
    let app = server(&stores, vec![wf], None).router();
    (dir, stores, app)
}

#[tokio::test]
async fn attempts_endpoint_lists_every_attempt_of_a_node() {
    let (_dir, _stores, app) = fixture().await;
    let v = get(&app, "/api/runs/r1/nodes/a/attempts").await.json();
    assert_eq!(v["run_id"], "r1");
    assert_eq!(v["node_id"], "a");
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["outcome"], "Failed");
    assert_eq!(attempts[0]["error"], "boom 1");
    assert_eq!(attempts[0]["logs"]["stdout"], "<script>x</script>");
    assert_eq!(attempts[0]["logs"]["lines"], json!(["line of attempt 1"]));
    assert_eq!(attempts[1]["outcome"], "Succeeded");

    let one = get(&app, "/api/runs/r1/nodes/a/attempts?attempt=2")
        .await
        .json();
    assert_eq!(one["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(one["attempts"][0]["attempt"], 2);

    // `b` completed without logging: its node record is its one attempt.
    let silent = get(&app, "/api/runs/r1/nodes/b/attempts").await.json();
    let silent = silent["attempts"].as_array().unwrap();
    assert_eq!(silent.len(), 1, "{silent:?}");
    assert_eq!(silent[0]["outcome"], "Succeeded");
    assert_eq!(silent[0]["logs"], json!({}));

    let missing = get(&app, "/api/runs/r1/nodes/zz/attempts").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "run `r1` has no node `zz`");
    let missing = get(&app, "/api/runs/nope/nodes/a/attempts").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn run_page_shows_a_log_panel_per_node_escaped() {
    let (_dir, _stores, app) = fixture().await;
    let page = get(&app, "/runs/r1").await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(
        body.contains(r#"<details class="log-panel" data-node="a">"#),
        "{body}"
    );
    assert!(body.contains("2 attempt(s)"));
    assert!(body.contains("line of attempt 1"));
    assert!(body.contains("boom 1"));
    assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(!body.contains("<script>x</script>"));
    assert!(
        body.contains(r#"data-node="b""#),
        "b's silent success is listed from its node record"
    );
}
