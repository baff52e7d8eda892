//! A large store stays usable: 10,000 runs and a 5,000-node run, generated
//! through the store API into a temporary SQLite database. Pages stay
//! bounded (paging everywhere) and the graph gives way to the table.

mod common;

use common::*;
use dagger_core::store::{NodeRunRecord, RunRecord};
use dagger_core::{NodeStatus, RunId, RunStatus};
use dagger_serve::MAX_GRAPH_NODES;
use serde_json::json;

const RUNS: usize = 10_000;
const BIG_NODES: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_runs_and_a_five_thousand_node_run() {
    let (_dir, stores) = temp_store().await;
    let small = workflow("small", &[("only", &[])]);
    let definition = json!({ "workflow": small, "added_at_runtime": [] });
    for i in 0..RUNS {
        stores
            .runs
            .create_run(RunRecord {
                run_id: RunId::from(format!("run-{i:05}").as_str()),
                workflow: if i % 2 == 0 { "small" } else { "other" }.into(),
                definition: definition.clone(),
                inputs: json!({}),
                config: json!({}),
                status: if i % 10 == 0 {
                    RunStatus::Failed
                } else {
                    RunStatus::Completed
                },
                reason: None,
                created_at: i as i64,
                updated_at: i as i64,
                finished_at: Some(i as i64 + 5),
                owner: None,
                lineage: None,
            })
            .await
            .unwrap();
    }
    // A 5,000-node chain-of-fans: node i depends on node (i - 1) / 4.
    let ids: Vec<String> = (0..BIG_NODES).map(|i| format!("n{i:04}")).collect();
    let pairs: Vec<(String, Vec<String>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id.clone(),
                if i == 0 {
                    vec![]
                } else {
                    vec![ids[(i - 1) / 4].clone()]
                },
            )
        })
        .collect();
    let refs: Vec<Vec<&str>> = pairs
        .iter()
        .map(|(_, d)| d.iter().map(String::as_str).collect())
        .collect();
    let nodes: Vec<(&str, &[&str])> = pairs
        .iter()
        .zip(&refs)
        .map(|((id, _), d)| (id.as_str(), d.as_slice()))
        .collect();
    let big = workflow("big", &nodes);
    seed_run(&stores, "big-run", &big, &[], RunStatus::Running, &[]).await;
    for (i, id) in ids.iter().enumerate() {
        stores
            .runs
            .put_node_run(NodeRunRecord {
                run_id: RunId::from("big-run"),
                node_id: id.as_str().into(),
                invocation_key: String::new(),
                action: "echo".into(),
                attempt: 1,
                state: if i < 4_000 {
                    NodeStatus::Completed
                } else {
                    NodeStatus::Running
                },
                input_hash: None,
                output_artifact_id: None,
                error: None,
                started_at: Some(1),
                finished_at: (i < 4_000).then_some(2),
                metadata: json!({}),
            })
            .await
            .unwrap();
    }
    stores.runs.flush().await.unwrap();
    let app = server(&stores, vec![big], None).router();

    // The list pages through all of them, 50 at a time by default.
    let a = get(&app, "/runs").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.matches("<tr><td class=\"mono\">").count(), 50);
    assert!(a.body.len() < 64 * 1024, "{} bytes", a.body.len());
    let v = get(&app, "/api/runs?offset=9990&limit=100").await.json();
    assert_eq!(
        v["runs"].as_array().unwrap().len(),
        11,
        "10,000 seeded + the big run"
    );
    assert_eq!(v["next_offset"], serde_json::Value::Null);
    let v = get(&app, "/api/runs?status=Failed&workflow=small&limit=1000")
        .await
        .json();
    assert_eq!(v["runs"].as_array().unwrap().len(), 1000);
    assert_eq!(
        v["next_offset"],
        serde_json::Value::Null,
        "exactly 1,000 failed runs of `small`"
    );

    // The big run: no graph, a bounded table, paged nodes.
    let a = get(&app, "/runs/big-run").await;
    assert_eq!(a.status, 200);
    assert!(!a.body.contains("<svg"));
    assert!(a.body.contains(&format!(
        "No graph: the graph has {BIG_NODES} nodes, more than the {MAX_GRAPH_NODES} that can be drawn legibly"
    )));
    assert_eq!(a.body.matches("<tr data-i=").count(), 200);
    assert!(a.body.contains("nodes 1–200 of 5000"));
    assert!(a.body.len() < 256 * 1024, "{} bytes", a.body.len());
    let a = get(&app, "/runs/big-run?node_offset=4900").await;
    assert!(a.body.contains("<tr data-i=\"4999\">"));
    assert!(!a.body.contains("rel=\"next\""));
    let v = get(&app, "/api/runs/big-run?node_offset=3990&node_limit=20")
        .await
        .json();
    assert_eq!(v["node_total"], BIG_NODES);
    assert_eq!(v["nodes"][9]["status"], "Completed");
    assert_eq!(v["nodes"][10]["status"], "Running");
    let a = get(&app, "/api/runs/big-run/graph.svg").await;
    assert_eq!(a.status, 409);
    assert!(a.json()["error"].as_str().unwrap().contains("5000 nodes"));
    let a = get(&app, "/workflows/big").await;
    assert!(a.body.contains("No graph"));
    assert!(a.body.contains("nodes 1–200 of 5000"));
    assert!(a.body.len() < 256 * 1024, "{} bytes", a.body.len());
}
