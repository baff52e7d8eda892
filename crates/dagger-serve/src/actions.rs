//! What the buttons do, shared by the HTML forms and the JSON API: each
//! checks the run's state first so a mistake gets a clear answer instead of
//! a control request nobody will act on.

use crate::data::load_view;
use crate::error::RequestError;
use crate::state::AppState;
use dagger_coord::Coordinator;
use dagger_core::{Cache, RunStatus, now_millis};
use dagger_dag_flow::DagExecutor;
use std::sync::Arc;

/// Asks run `run_id` to stop; returns the control request's sequence number.
/// A run that already ended is refused (409), by the check the CLI shares.
pub(crate) async fn cancel(
    state: &AppState,
    run_id: &str,
    reason: Option<&str>,
) -> Result<u64, RequestError> {
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("cancelled from the web interface");
    Ok(dagger_coord::request_cancel(&state.stores, run_id, reason).await?)
}

/// Approves a waiting node; `input` (JSON text, may be empty) becomes its
/// `human_input`. [`dagger_coord::check_waiting`] (shared with the CLI)
/// refuses an unknown node (404), a node not waiting, an ended run, or a node
/// already decided (409).
pub(crate) async fn approve(
    state: &AppState,
    run_id: &str,
    node_id: &str,
    input: Option<serde_json::Value>,
) -> Result<u64, RequestError> {
    Ok(dagger_coord::approve(&state.stores, run_id, node_id, input).await?)
}

/// Parses the text of an approval's input field: empty means none.
pub(crate) fn parse_input(text: Option<&str>) -> Result<Option<serde_json::Value>, RequestError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => serde_json::from_str(t)
            .map(Some)
            .map_err(|e| RequestError::BadRequest(format!("the input is not valid JSON: {e}"))),
    }
}

/// Rejects a waiting node: it fails with `reason`; checked as [`approve`] is.
pub(crate) async fn reject(
    state: &AppState,
    run_id: &str,
    node_id: &str,
    reason: Option<&str>,
) -> Result<u64, RequestError> {
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("rejected from the web interface");
    Ok(dagger_coord::reject(&state.stores, run_id, node_id, reason).await?)
}

/// Starts resuming run `run_id` in this process (in the background) with
/// the server's actions. Refused for a run that completed, that another
/// process owns (its lease is live), that is running without an owner
/// record, or that this server already resumes. An orphaned run (its
/// owner's lease lapsed) is taken over.
pub(crate) async fn resume(state: &Arc<AppState>, run_id: &str) -> Result<(), RequestError> {
    let view = load_view(&state.stores, run_id).await?;
    match view.record.status {
        RunStatus::Completed => {
            return Err(RequestError::Conflict(format!(
                "run `{run_id}` completed; there is nothing to resume"
            )));
        }
        RunStatus::Running if view.record.owner.is_none() => {
            return Err(RequestError::Conflict(format!(
                "run `{run_id}` is Running (possibly in another process); \
                 cancel it first, or resume it with `dagger resume` if its process died"
            )));
        }
        _ => {}
    }
    // A run has one owner: refuse while another process's lease is live
    // (the resume's own claim refuses it again if one starts meanwhile).
    if let Some(owner) = dagger_coord::live_owner(&view.record, now_millis()) {
        return Err(RequestError::Conflict(format!(
            "run `{run_id}` is owned by pid {} on host `{}`, whose lease is live until {} UTC; \
             refusing to resume it (a run has one owner)",
            owner.pid,
            owner.host,
            crate::data::format_time(owner.lease_expires_at)
        )));
    }
    let Some((cancel, guard)) = state.resumes.start(run_id) else {
        return Err(RequestError::Conflict(format!(
            "run `{run_id}` is already being resumed by this server"
        )));
    };
    let state = state.clone();
    let run_id = run_id.to_string();
    state.set_resume_error(&run_id, None);
    tokio::spawn(async move {
        let _guard = guard;
        let outcome = async {
            let mut executor = DagExecutor::new(None, state.registry.clone(), state.stores.clone())
                .await
                .map_err(dagger_coord::CoordError::from)?;
            if let Some(data) = &state.app_data {
                executor = executor.with_shared_app_data(data.clone());
            }
            let cache = Cache::new();
            let mut coordinator = Coordinator::new(Vec::new(), 64, 64);
            if let Some(lease) = state.run_lease {
                coordinator = coordinator.with_run_lease(lease);
            }
            coordinator
                .resume(&mut executor, &cache, &run_id, cancel)
                .await
        }
        .await;
        match outcome {
            Ok(report) => tracing::info!(run_id, status = %report.status, "resumed run ended"),
            Err(e) => {
                tracing::warn!(run_id, error = %e, "resume failed");
                state.set_resume_error(&run_id, Some(e.to_string()));
            }
        }
    });
    Ok(())
}
