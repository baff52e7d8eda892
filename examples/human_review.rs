//! Human in the loop: `publish` waits for approval. The run records that it
//! waits; the approval arrives through the store, as it would from
//! `dagger approve` in another process.
//!
//! Run: `cargo run -p dagger-examples --example human_review`

use dagger::coord::approve;
use dagger::prelude::*;
use serde_json::json;
use std::time::Duration;

const WORKFLOW: &str = r#"
name: publish_with_review
nodes:
  - id: draft
    action: write_draft
  - id: publish
    action: publish
    dependencies: [draft]
    approval: "Publish this draft?"
    inputs: [{ name: text, reference: draft.text }]
"#;

#[action(name = "write_draft")]
async fn write_draft(_ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    Ok(NodeOutput::success(json!({ "text": "Dagger 0.1 is out." })))
}

#[action(name = "publish")]
async fn publish(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let channel = ctx.inputs["human_input"]["channel"]
        .as_str()
        .unwrap_or("nowhere")
        .to_string();
    Ok(NodeOutput::success(
        json!({ "published_to": channel, "text": ctx.inputs["text"].clone() }),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("dagger-human-review-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(&format!("sqlite:{}", dir.join("runs.db").display())).await?;
    let stores = store.stores();
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry)?;
    let mut executor = DagExecutor::new(None, registry, store).await?;
    executor.load_yaml_string(WORKFLOW)?;
    let cache = Cache::new();
    let coordinator = Coordinator::new(vec![], 16, 16);
    let run = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let (_cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
            coordinator
                .run_parallel(
                    &mut executor,
                    &cache,
                    "publish_with_review",
                    "review-1",
                    cancel_rx,
                )
                .await
        })
    };
    // A reviewer watching the store sees the run waiting, then approves with input.
    loop {
        let run = stores.runs.get_run(&"review-1".into()).await?;
        if run.is_some_and(|r| r.status == RunStatus::WaitingForHuman) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("run review-1 is waiting for a human at node `publish`; approving");
    approve(
        &stores,
        "review-1",
        "publish",
        Some(json!({ "channel": "blog" })),
    )
    .await?;
    let report = run.await??;
    println!(
        "status {}: published to {}",
        report.status,
        cache
            .get("publish", "published_to")
            .map(|v| v.to_string())
            .unwrap_or_default()
    );
    assert!(report.succeeded());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
