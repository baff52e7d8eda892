//! `dagger cancel`, `approve`, `reject`: requests to a run through the store.

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
