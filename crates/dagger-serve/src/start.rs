//! Starting a run of a catalogue workflow from the page (a form generated
//! from the workflow's declared `inputs:`) or the API, with the server's
//! actions, in this process. Inputs are checked against the declaration
//! before anything is recorded: a bad input is an answer naming it, never a
//! run that fails.

use crate::error::{ApiError, PageError, RequestError};
use crate::security::check_mutation;
use crate::state::AppState;
use axum::Form;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dagger_coord::{CoordError, Coordinator, KeyPolicy, RunRequest};
use dagger_core::RunId;
use dagger_dag_flow::{DagExecutor, JsonType, WorkflowDef, apply_run_inputs};
use maud::{Markup, html};
use serde_json::{Map, Value, json};
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

/// The prefix of a declared input's form field (`input.<name>`).
const FIELD: &str = "input.";
/// The form field holding further inputs as a JSON object.
const JSON_FIELD: &str = "inputs_json";

/// The "Start a run" form of workflow `w`: one field per declared input
/// (its type, default and description shown), plus a JSON object for
/// undeclared inputs when the workflow declares none. `entered` refills
/// the fields after a refused start; `error` says why it was refused.
pub(crate) fn form(
    state: &AppState,
    w: &WorkflowDef,
    entered: &[(String, String)],
    error: Option<&str>,
) -> Markup {
    let value_of = |field: &str| {
        entered
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    };
    let action = format!("/workflows/{}/start", crate::pages::enc(&w.name));
    html! {
        section #start {
            h2 { "Start a run" }
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action=(action) {
                (crate::pages::csrf_field(state))
                @if let Some(declared) = &w.inputs {
                    @if declared.is_empty() { p { "This workflow takes no inputs." } }
                    @for input in declared {
                        @let field = format!("{FIELD}{}", input.name);
                        @let default = input.default.as_ref().map(|d| match d {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                        label {
                            span.mono { (input.name) }
                            " "
                            span.badge { (type_label(input.kind, input.schema.is_some())) }
                            @if default.is_none() { " " span.badge.s-Failed { "required" } }
                            @if let Some(d) = &input.description { " — " (d) }
                            br;
                            input type="text" name=(field)
                                value=(value_of(&field).unwrap_or_default())
                                placeholder=(default.as_deref().map_or(String::new(), |d| format!("default: {d}")));
                        }
                        br;
                    }
                } @else {
                    label {
                        "Inputs (a JSON object; the workflow declares none)" br;
                        textarea name=(JSON_FIELD) rows="3" cols="60" placeholder="{}" {
                            (value_of(JSON_FIELD).unwrap_or_default())
                        }
                    }
                    br;
                }
                button type="submit" { "Start run" }
            }
        }
    }
}

fn type_label(kind: Option<JsonType>, schema: bool) -> String {
    match (kind, schema) {
        (Some(k), _) => serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "any".into()),
        (None, true) => "schema".into(),
        (None, false) => "any".into(),
    }
}

/// The inputs a form gives: a declared string input's text as is, any
/// other field's text as JSON when it parses (else as a string); empty
/// fields are left out so that defaults apply.
fn inputs_of_form(
    w: &WorkflowDef,
    fields: &[(String, String)],
) -> Result<Map<String, Value>, RequestError> {
    let mut inputs = Map::new();
    for (field, text) in fields {
        if field == JSON_FIELD {
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => inputs.extend(map),
                Ok(_) => {
                    return Err(RequestError::BadRequest(
                        "inputs must be a JSON object".into(),
                    ));
                }
                Err(e) => {
                    return Err(RequestError::BadRequest(format!(
                        "inputs are not valid JSON: {e}"
                    )));
                }
            }
            continue;
        }
        let Some(name) = field.strip_prefix(FIELD) else {
            continue;
        };
        if text.is_empty() {
            continue;
        }
        let declared_string = w
            .inputs
            .iter()
            .flatten()
            .any(|i| i.name == name && i.kind == Some(JsonType::String));
        let value = if declared_string {
            Value::String(text.clone())
        } else {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        inputs.insert(name.to_string(), value);
    }
    Ok(inputs)
}

/// Starts a run of catalogue workflow `name` with `inputs` (checked against
/// its declaration, defaults applied) in the background, and returns its
/// id once the run is recorded. Under an idempotency `key` that names a run
/// already, nothing starts and the answer is that run with `true`.
pub(crate) async fn start_run(
    state: &Arc<AppState>,
    name: &str,
    inputs: Map<String, Value>,
    key: Option<(&str, KeyPolicy)>,
) -> Result<(String, bool), RequestError> {
    let def = state
        .catalog
        .get(name)
        .ok_or_else(|| RequestError::WorkflowNotFound(name.to_string()))?
        .clone();
    let inputs =
        apply_run_inputs(&def, &inputs).map_err(|e| RequestError::BadRequest(e.to_string()))?;
    // Everything that can be refused is refused here, before a run exists.
    let mut executor = DagExecutor::new(None, state.registry.clone(), state.stores.clone())
        .await
        .map_err(|e| RequestError::BadRequest(e.to_string()))?;
    if let Some(data) = &state.app_data {
        executor = executor.with_shared_app_data(data.clone());
    }
    executor
        .insert_workflow(def, format!("workflow `{name}`"))
        .map_err(|e| RequestError::BadRequest(e.to_string()))?;
    let run_id = RunId::generate().to_string();
    let Some((cancel, guard)) = state.resumes.start(&run_id) else {
        return Err(RequestError::Conflict(format!(
            "run `{run_id}` is already executing here"
        )));
    };
    let mut coordinator = Coordinator::new(Vec::new(), 64, 64);
    if let Some(lease) = state.run_lease {
        coordinator = coordinator.with_run_lease(lease);
    }
    let mut request = RunRequest::new(name)
        .id(run_id.as_str())
        .inputs(Value::Object(inputs))
        .cancel_token(cancel);
    if let Some((key, policy)) = key {
        request = request.idempotency_key(key).key_policy(policy);
    }
    // `start` returns once the run record is written (or refused), so the
    // page can redirect to a run that exists.
    let handle = coordinator
        .start(&executor, request)
        .await
        .map_err(|e| match e {
            CoordError::Store(_) | CoordError::AlreadyStarted { .. } => RequestError::Coord(e),
            other => RequestError::BadRequest(other.to_string()),
        });
    let handle = match handle {
        Err(RequestError::Coord(CoordError::AlreadyStarted { run_id, .. })) => {
            return Ok((run_id, true));
        }
        other => other?,
    };
    let state = state.clone();
    let id = run_id.clone();
    tokio::spawn(async move {
        let _guard = guard;
        match handle.await {
            Ok(report) => tracing::info!(run_id = id, status = %report.status, "started run ended"),
            Err(e) => {
                tracing::warn!(run_id = id, error = %e, "started run failed");
                state.set_resume_error(&id, Some(e.to_string()));
            }
        }
    });
    Ok((run_id, false))
}

/// `POST /workflows/{name}/start`: starts a run and redirects to its page;
/// a refused start shows the workflow page again with the reason and the
/// entered values.
pub(crate) async fn page_start(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    check_mutation(&state, &headers, csrf)?;
    let w = state
        .catalog
        .get(&name)
        .ok_or_else(|| RequestError::WorkflowNotFound(name.clone()))?;
    let outcome = match inputs_of_form(w, &fields) {
        Ok(inputs) => start_run(&state, &name, inputs, None).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok((run_id, _)) => Ok(Redirect::to(&crate::pages::run_url(&run_id)).into_response()),
        Err(RequestError::BadRequest(why)) => {
            let form = form(&state, w, &fields, Some(&why));
            Ok((
                StatusCode::BAD_REQUEST,
                crate::pages::workflow(&state, w, form, 0, crate::data::NODES_PER_PAGE),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/workflows/{name}/runs` with `{"inputs": {...}}` (optional):
/// 201 with the new run's id, 400 naming each bad input. An idempotency key
/// (`"idempotency_key"` in the body or the `Idempotency-Key` header, with
/// an optional `"key_policy"`: `once`, `skip`, `cancel_other`) that names a
/// run already answers 200 with that run's id and `"existing": true`.
pub(crate) async fn api_start(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_mutation(&state, &headers, None)?;
    let mut body = Map::new();
    let inputs = if bytes.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) => {
                body = object;
                match body.remove("inputs") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(inputs)) => inputs,
                    Some(_) => {
                        return Err(
                            RequestError::BadRequest("`inputs` must be an object".into()).into(),
                        );
                    }
                }
            }
            Ok(_) => {
                return Err(
                    RequestError::BadRequest("the body must be a JSON object".into()).into(),
                );
            }
            Err(e) => {
                return Err(RequestError::BadRequest(format!("invalid JSON body: {e}")).into());
            }
        }
    };
    let key = idempotency_key(&headers, &body)?;
    let key = key.as_ref().map(|(k, p)| (k.as_str(), *p));
    match start_run(&state, &name, inputs, key).await? {
        (run_id, true) => Ok((
            StatusCode::OK,
            Json(json!({ "run_id": run_id, "workflow": name, "existing": true })),
        )),
        (run_id, false) => Ok((
            StatusCode::CREATED,
            Json(json!({ "run_id": run_id, "workflow": name })),
        )),
    }
}

/// The start's idempotency key and policy: the body's `idempotency_key`
/// (else the `Idempotency-Key` header) and `key_policy` (default `once`).
fn idempotency_key(
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<Option<(String, KeyPolicy)>, RequestError> {
    let bad = |why: &str| RequestError::BadRequest(why.to_string());
    let key = match body.get("idempotency_key") {
        None | Some(Value::Null) => match headers.get("idempotency-key") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| bad("the Idempotency-Key header must be text"))?
                    .to_string(),
            ),
        },
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(bad("`idempotency_key` must be a string")),
    };
    let policy = match body.get("key_policy") {
        None | Some(Value::Null) => KeyPolicy::Once,
        Some(Value::String(p)) => KeyPolicy::parse(p)
            .ok_or_else(|| bad("`key_policy` must be one of once, skip, cancel_other"))?,
        Some(_) => return Err(bad("`key_policy` must be a string")),
    };
    match key {
        Some(k) if k.is_empty() => Err(bad("the idempotency key must not be empty")),
        Some(k) => Ok(Some((k, policy))),
        None => Ok(None),
    }
}
