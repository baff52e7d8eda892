//! Every recorded attempt of a node: the API endpoint
//! `GET /api/runs/{id}/nodes/{node}/attempts` and the run page's log panel.

use crate::data::{self, NodeRow, format_ms, format_time};
use crate::error::{ApiError, RequestError};
use crate::pages::enc;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use dagger_core::store::{AttemptQuery, AttemptRecord};
use dagger_core::{NodeId, RunId, Stores};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// How much of each stream or log the run page shows (its tail); the API
/// serves the whole record.
const PAGE_TAIL: usize = 8 * 1024;

/// The query of the attempts endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct AttemptParams {
    /// Only this attempt.
    attempt: Option<u32>,
}

/// `GET /api/runs/{id}/nodes/{node}/attempts[?attempt=N]`
pub(crate) async fn api_attempts(
    State(state): State<Arc<AppState>>,
    Path((run_id, node_id)): Path<(String, String)>,
    Query(params): Query<AttemptParams>,
) -> Result<Json<Value>, ApiError> {
    let view = data::load_view(&state.stores, &run_id).await?;
    if !view.nodes.iter().any(|n| n.id == node_id.as_str()) {
        return Err(RequestError::NodeNotFound { run_id, node_id }.into());
    }
    let query = AttemptQuery {
        node_id: Some(NodeId::from(node_id.as_str())),
        attempt: params.attempt,
    };
    let attempts = dagger_core::store::list_attempts(
        &*state.stores.runs,
        &RunId::from(run_id.as_str()),
        &query,
    )
    .await
    .map_err(RequestError::from)?;
    Ok(Json(
        json!({ "run_id": run_id, "node_id": node_id, "attempts": attempts }),
    ))
}

/// The attempts of the nodes in `rows`, for the run page.
pub(crate) async fn for_rows(
    stores: &Stores,
    run_id: &str,
    rows: &[NodeRow],
) -> Result<Vec<AttemptRecord>, RequestError> {
    let all = dagger_core::store::list_attempts(
        &*stores.runs,
        &RunId::from(run_id),
        &AttemptQuery::default(),
    )
    .await?;
    Ok(all
        .into_iter()
        .filter(|a| rows.iter().any(|r| r.id == a.node_id.as_str()))
        .collect())
}

/// The last [`PAGE_TAIL`] bytes of `text`, marked when cut.
fn tail(text: &str) -> String {
    if text.len() <= PAGE_TAIL {
        return text.to_string();
    }
    let mut start = text.len() - PAGE_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!(
        "[… {start} earlier bytes: see the API for the whole record …]\n{}",
        &text[start..]
    )
}

/// A collapsible log panel per node of the page that has recorded attempts.
pub(crate) fn panel(run_id: &str, rows: &[NodeRow], attempts: &[AttemptRecord]) -> Markup {
    html! {
        section #logs {
            h2 { "Logs" }
            @if attempts.is_empty() {
                p.note { "No attempt of these nodes has ended yet." }
            }
            @for row in rows {
                @let mine: Vec<&AttemptRecord> = attempts.iter().filter(|a| a.node_id.as_str() == row.id).collect();
                @if !mine.is_empty() {
                    details.log-panel data-node=(row.id) {
                        summary {
                            span.mono { (row.id) } " — " (mine.len()) " attempt(s) · "
                            a href={ "/api/runs/" (enc(run_id)) "/nodes/" (enc(&row.id)) "/attempts" } { "JSON" }
                        }
                        @for a in &mine {
                            div.attempt {
                                p {
                                    "Attempt " (a.attempt)
                                    @if !a.invocation_key.is_empty() { " [" (a.invocation_key) "]" }
                                    " " span class={ "badge o-" (a.outcome.as_str()) } { (a.outcome.as_str()) }
                                    " " (format_time(a.started_at)) " UTC, " (format_ms(a.finished_at - a.started_at))
                                }
                                @if let Some(e) = &a.error { p.error { (e) } }
                                @if !a.output.is_null() { pre.log { (tail(&a.output.to_string())) } }
                                @if !a.logs.lines.is_empty() {
                                    h4 { "log" }
                                    pre.log { (tail(&a.logs.lines.join("\n"))) }
                                }
                                @if let Some(out) = a.logs.stdout.as_deref().filter(|s| !s.is_empty()) {
                                    h4 { "stdout" }
                                    pre.log { (tail(out)) }
                                }
                                @if let Some(err) = a.logs.stderr.as_deref().filter(|s| !s.is_empty()) {
                                    h4 { "stderr" }
                                    pre.log { (tail(err)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
