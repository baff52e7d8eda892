//! The JSON API under `/api/` (documented in `docs/serve.md`).

use crate::actions;
use crate::data::{self, NodePaging, RunSummary, RunsParams};
use crate::error::{ApiError, RequestError};
use crate::graph::{self, GraphNode};
use crate::security::check_mutation;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dagger_dag_flow::{NodeRunView, serialize_run_to_dot, serialize_tree_to_dot};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

/// `GET /api/csrf`
pub(crate) async fn csrf(State(state): Shared) -> Json<Value> {
    Json(json!({ "csrf_token": state.csrf }))
}

/// `GET /api/runs`
pub(crate) async fn runs(
    State(state): Shared,
    Query(params): Query<RunsParams>,
) -> Result<Json<data::RunsPage>, ApiError> {
    Ok(Json(data::list_runs(&state.stores, params).await?))
}

/// `GET /api/runs/{id}`
pub(crate) async fn run(
    State(state): Shared,
    Path(run_id): Path<String>,
    Query(paging): Query<NodePaging>,
) -> Result<Json<Value>, ApiError> {
    let d = data::run_detail(&state.stores, &run_id, paging).await?;
    let r = &d.view.record;
    Ok(Json(json!({
        "run": RunSummary::from(r),
        "inputs": r.inputs,
        "parent_run_id": r.lineage.as_ref().map(|l| &l.parent_run_id),
        "forked_from_node": r.lineage.as_ref().and_then(|l| l.forked_from_node.as_ref()),
        "children": d.children,
        "resuming": state.is_resuming(&run_id),
        "resume_error": state.resume_error(&run_id),
        "waiting": d.waiting,
        "node_total": d.view.nodes.len(),
        "node_offset": d.node_offset,
        "node_limit": d.node_limit,
        "next_node_offset": d.next_node_offset(),
        "nodes": d.page,
    })))
}

/// `GET /api/runs/{id}/nodes/{node}/output`
pub(crate) async fn node_output(
    State(state): Shared,
    Path((run_id, node_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let output = data::node_output(&state.stores, &run_id, &node_id).await?;
    Ok(Json(
        json!({ "run_id": run_id, "node_id": node_id, "output": output }),
    ))
}

/// `GET /api/runs/{id}/dot`
pub(crate) async fn run_dot(
    State(state): Shared,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let view = data::load_view(&state.stores, &run_id).await?;
    let nodes: Vec<NodeRunView> = view
        .nodes
        .iter()
        .map(|n| {
            let mut v = NodeRunView::new(n.id.clone(), n.status);
            v.attempts = n.attempts;
            v.duration_ms = n.duration_ms;
            v.added_at_runtime = n.added_at_runtime;
            match n.status {
                dagger_core::NodeStatus::Failed => v.error = n.error.clone(),
                _ => v.reason = n.error.clone(),
            }
            v
        })
        .collect();
    Ok(dot_response(serialize_run_to_dot(&view.workflow, &nodes)))
}

/// `GET /api/runs/{id}/graph.svg`
pub(crate) async fn run_svg(
    State(state): Shared,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let view = data::load_view(&state.stores, &run_id).await?;
    let nodes: Vec<GraphNode<'_>> = view
        .nodes
        .iter()
        .map(|n| GraphNode {
            id: n.id.as_str(),
            action: &n.action,
            status: Some(n.status.as_str()),
            added_at_runtime: n.added_at_runtime,
        })
        .collect();
    svg_response(graph::render(&nodes, &graph::def_edges(&view.workflow)))
}

fn dot_response(dot: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
        dot,
    )
        .into_response()
}

pub(crate) fn svg_response(svg: Result<String, graph::NoGraph>) -> Result<Response, ApiError> {
    match svg {
        Ok(svg) => {
            let mut text = String::with_capacity(svg.len() + 200);
            text.push_str(&svg);
            // A standalone SVG needs the status colours the page's CSS gives it.
            if let Some(end) = text.rfind("</svg>") {
                text.insert_str(end, &crate::assets::svg_status_style());
            }
            Ok(([(header::CONTENT_TYPE, "image/svg+xml")], text).into_response())
        }
        Err(why) => Err(RequestError::Conflict(why.to_string()).into()),
    }
}

/// `GET /api/workflows`
pub(crate) async fn workflows(State(state): Shared) -> Json<Value> {
    let list: Vec<_> = state
        .catalog
        .workflows
        .iter()
        .map(|w| w.metadata())
        .collect();
    let problems: Vec<Value> = state
        .catalog
        .problems
        .iter()
        .map(|(file, problems)| json!({ "file": file, "problems": problems }))
        .collect();
    Json(json!({ "workflows": list, "problems": problems }))
}

fn find_workflow<'a>(
    state: &'a AppState,
    name: &str,
) -> Result<&'a dagger_dag_flow::WorkflowDef, ApiError> {
    state
        .catalog
        .get(name)
        .ok_or_else(|| RequestError::WorkflowNotFound(name.to_string()).into())
}

/// `GET /api/workflows/{name}`
pub(crate) async fn workflow(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = find_workflow(&state, &name)?;
    Ok(Json(json!({ "metadata": w.metadata(), "definition": w })))
}

/// `GET /api/workflows/{name}/dot`
pub(crate) async fn workflow_dot(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(dot_response(serialize_tree_to_dot(find_workflow(
        &state, &name,
    )?)))
}

/// `GET /api/workflows/{name}/graph.svg`
pub(crate) async fn workflow_svg(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let w = find_workflow(&state, &name)?;
    let nodes: Vec<GraphNode<'_>> = w
        .nodes
        .iter()
        .map(|n| GraphNode {
            id: &n.id,
            action: &n.action,
            status: None,
            added_at_runtime: false,
        })
        .collect();
    svg_response(graph::render(&nodes, &graph::def_edges(w)))
}

/// Body of `POST /api/runs/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    reason: Option<String>,
}

/// Body of `POST /api/runs/{id}/approve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    node: String,
    input: Option<Value>,
}

/// Body of `POST /api/runs/{id}/reject`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectBody {
    node: String,
    reason: Option<String>,
}

/// Parses an optional JSON body; an empty body is `T::default()` when allowed.
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes, empty: Option<T>) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace)
        && let Some(default) = empty
    {
        return Ok(default);
    }
    serde_json::from_slice(bytes)
        .map_err(|e| RequestError::BadRequest(format!("invalid JSON body: {e}")).into())
}

/// `POST /api/runs/{id}/cancel`
pub(crate) async fn cancel(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_mutation(&state, &headers, None)?;
    let b: CancelBody = body(&bytes, Some(CancelBody::default()))?;
    let seq = actions::cancel(&state, &run_id, b.reason.as_deref()).await?;
    Ok(Json(
        json!({ "run_id": run_id, "requested": "cancel", "seq": seq }),
    ))
}

/// `POST /api/runs/{id}/resume`
pub(crate) async fn resume(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_mutation(&state, &headers, None)?;
    actions::resume(&state, &run_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": run_id, "resuming": true })),
    ))
}

/// `POST /api/runs/{id}/approve`
pub(crate) async fn approve(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_mutation(&state, &headers, None)?;
    let b: ApproveBody = body(&bytes, None)?;
    let seq = actions::approve(&state, &run_id, &b.node, b.input).await?;
    Ok(Json(
        json!({ "run_id": run_id, "node_id": b.node, "requested": "approve", "seq": seq }),
    ))
}

/// `POST /api/runs/{id}/reject`
pub(crate) async fn reject(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_mutation(&state, &headers, None)?;
    let b: RejectBody = body(&bytes, None)?;
    let seq = actions::reject(&state, &run_id, &b.node, b.reason.as_deref()).await?;
    Ok(Json(
        json!({ "run_id": run_id, "node_id": b.node, "requested": "reject", "seq": seq }),
    ))
}

/// `POST /api/runs/{id}/signals/{name}`: the body (JSON, may be empty
/// for `null`) is the signal's payload. 404 for an unknown run, 409 when
/// the run ended or no node of it waits for the signal, 422 when the
/// waiting node's schema refuses the payload.
pub(crate) async fn signal(
    State(state): Shared,
    Path((run_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_mutation(&state, &headers, None)?;
    let payload: Value = body(&bytes, Some(Value::Null))?;
    let seq = dagger_coord::send_signal(&state.stores, run_id.as_str(), &name, payload)
        .await
        .map_err(RequestError::from)?;
    Ok(Json(
        json!({ "run_id": run_id, "signal": name, "seq": seq }),
    ))
}

/// Any other path under `/api/`.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    // Nested under `/api`, the router sees the path without its prefix.
    RequestError::NoRoute(format!("/api{}", uri.path())).into()
}
