//! Crash and resume: the example starts itself as a child process that runs a
//! six-step pipeline on SQLite, kills it with SIGKILL in the middle, and
//! resumes the run. Completed steps do not run again; the step that was
//! running runs again with the same idempotency key.
//!
//! Run: `cargo run -p dagger-examples --example crash_resume`

use dagger::prelude::*;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

const WORKFLOW: &str = r#"
name: six_steps
config: { enable_parallel_execution: false }
nodes:
  - { id: step1, action: step }
  - { id: step2, action: step, dependencies: [step1] }
  - { id: step3, action: step, dependencies: [step2] }
  - { id: step4, action: step, dependencies: [step3] }
  - { id: step5, action: step, dependencies: [step4] }
  - { id: step6, action: step, dependencies: [step5] }
"#;

/// Where steps log `<process> <node> <idempotency key>`.
static LOG: OnceLock<PathBuf> = OnceLock::new();

#[action(name = "step")]
async fn step(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let who = if std::env::args().any(|a| a == "child") {
        "child "
    } else {
        "parent"
    };
    let log = LOG.get().ok_or("log path not set")?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(f, "{who} ran {} (key {})", ctx.node_id, ctx.idempotency_key)?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    Ok(NodeOutput::success(
        json!({ "done": ctx.node_id.to_string() }),
    ))
}

async fn executor(db: &str) -> Result<DagExecutor, Box<dyn std::error::Error>> {
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry)?;
    let mut executor = DagExecutor::new(None, registry, SqliteStore::open(db).await?).await?;
    executor.load_yaml_string(WORKFLOW)?;
    Ok(executor)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "child") {
        let dir = PathBuf::from(std::env::var("CRASH_RESUME_DIR")?);
        let _ = LOG.set(dir.join("steps.log"));
        let mut ex = executor(&format!("sqlite:{}", dir.join("runs.db").display())).await?;
        let (_tx, rx) = tokio::sync::oneshot::channel();
        // (Killed before it ends; a run that ended otherwise than
        // completed would be an error here.)
        let report = Coordinator::new(vec![], 8, 8)
            .run_parallel(&mut ex, &Cache::new(), "six_steps", "crashy", rx)
            .await?
            .into_result()?;
        println!("child run: {}", report.status);
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("dagger-crash-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("steps.log");
    let _ = LOG.set(log.clone());
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("child")
        .env("CRASH_RESUME_DIR", &dir)
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill()?; // SIGKILL: no chance to clean up
    child.wait()?;
    println!("killed the child process after 500 ms");

    let db = format!("sqlite:{}", dir.join("runs.db").display());
    let mut ex = executor(&db).await?;
    let view = dagger::coord::load_run_view(ex.stores(), "crashy").await?;
    let done: Vec<&str> = view
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Completed)
        .map(|n| n.id.as_str())
        .collect();
    println!("recorded as completed before the kill: {done:?}");
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let report = Coordinator::new(vec![], 8, 8)
        .resume(&mut ex, &Cache::new(), "crashy", rx)
        .await?;
    println!("resumed run: {}", report.status);
    println!("every execution, in order:");
    print!("{}", std::fs::read_to_string(&log)?);
    assert!(report.succeeded());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
