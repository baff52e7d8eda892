//! `dagger cancel`, `approve`, `reject`, `signal`: requests to a run through the store.

use crate::error::CliError;
use crate::store::{AnyStore, resolve_run_id};
use std::process::ExitCode;

pub(crate) async fn cancel(run_id: &str, reason: &str, db: &str) -> Result<ExitCode, CliError> {
    let store = AnyStore::open_run(db, run_id).await?;
    let run_id = &resolve_run_id(&store.stores(), run_id).await?;
    dagger_coord::request_cancel(&store.stores(), run_id, reason).await?;
    outln!("cancel requested for run {run_id}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn approve(
    run_id: &str,
    node_id: &str,
    input: Option<&str>,
    db: &str,
) -> Result<ExitCode, CliError> {
    let input = match input {
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| CliError::Usage(format!("--input is not valid JSON: {e}")))?,
        ),
        None => None,
    };
    let store = AnyStore::open_run(db, run_id).await?;
    let run_id = &resolve_run_id(&store.stores(), run_id).await?;
    dagger_coord::approve(&store.stores(), run_id, node_id, input).await?;
    outln!("approved node {node_id} of run {run_id}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn reject(
    run_id: &str,
    node_id: &str,
    reason: &str,
    db: &str,
) -> Result<ExitCode, CliError> {
    let store = AnyStore::open_run(db, run_id).await?;
    let run_id = &resolve_run_id(&store.stores(), run_id).await?;
    dagger_coord::reject(&store.stores(), run_id, node_id, reason).await?;
    outln!("rejected node {node_id} of run {run_id}");
    Ok(ExitCode::SUCCESS)
}

/// Where `dagger signal` sends.
pub(crate) enum Target {
    /// One run (or the start of its id).
    Run(String),
    /// Every matching waiting run of a workflow.
    Workflow(String),
}

pub(crate) async fn signal(
    target: Target,
    name: &str,
    data: Option<&str>,
    db: &str,
) -> Result<ExitCode, CliError> {
    let payload = match data {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| CliError::Usage(format!("--data is not valid JSON: {e}")))?,
        None => serde_json::Value::Null,
    };
    match target {
        Target::Run(run_id) => {
            let store = AnyStore::open_run(db, &run_id).await?;
            let run_id = &resolve_run_id(&store.stores(), &run_id).await?;
            let seq = dagger_coord::send_signal(&store.stores(), run_id, name, payload).await?;
            outln!("signal {name} sent to run {run_id} (#{seq})");
        }
        Target::Workflow(workflow) => {
            let store = AnyStore::open(db).await?;
            let sent =
                dagger_coord::broadcast_signal(&store.stores(), &workflow, name, payload).await?;
            for s in &sent {
                outln!("signal {name} sent to run {} (#{})", s.run_id, s.seq);
            }
            if sent.is_empty() {
                outln!("no run of workflow {workflow} waits for signal {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
