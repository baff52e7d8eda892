//! Page handlers and the HTML forms' POST handlers (each answers with a
//! redirect back to the run, or an error page).

use crate::actions;
use crate::data::{self, NodePaging, RunsParams};
use crate::error::{PageError, RequestError};
use crate::pages;
use crate::security::{TOKEN_COOKIE, check_mutation, same_secret};
use crate::state::AppState;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

/// `GET /runs`
pub(crate) async fn runs(
    State(state): Shared,
    Query(params): Query<RunsParams>,
) -> Result<Html<String>, PageError> {
    let page = data::list_runs(&state.stores, params).await?;
    Ok(pages::runs(&state, &page))
}

/// `GET /runs/{id}`
pub(crate) async fn run(
    State(state): Shared,
    Path(run_id): Path<String>,
    Query(paging): Query<NodePaging>,
) -> Result<Html<String>, PageError> {
    let detail = data::run_detail(&state.stores, &run_id, paging).await?;
    let attempts = crate::logs::for_rows(&state.stores, &run_id, &detail.page).await?;
    Ok(pages::run(
        &state,
        &detail,
        &attempts,
        state.resume_error(&run_id).as_deref(),
    ))
}

/// `GET /workflows`
pub(crate) async fn workflows(State(state): Shared) -> Html<String> {
    pages::workflows(&state, &state.catalog)
}

/// `GET /workflows/{name}`
pub(crate) async fn workflow(
    State(state): Shared,
    Path(name): Path<String>,
    Query(paging): Query<NodePaging>,
) -> Result<Html<String>, PageError> {
    let w = state
        .catalog
        .get(&name)
        .ok_or_else(|| RequestError::WorkflowNotFound(name.clone()))?;
    let (offset, limit) = data::node_window(&paging)?;
    let start = crate::start::form(&state, w, &[], None);
    Ok(pages::workflow(&state, w, start, offset, limit))
}

/// Fields of the run forms; which are used depends on the button.
#[derive(Debug, Deserialize)]
pub(crate) struct RunForm {
    csrf: Option<String>,
    node: Option<String>,
    reason: Option<String>,
    input: Option<String>,
}

fn back_to_run(run_id: &str) -> Response {
    Redirect::to(&pages::run_url(run_id)).into_response()
}

fn node_of(form: &RunForm) -> Result<&str, RequestError> {
    form.node
        .as_deref()
        .ok_or_else(|| RequestError::BadRequest("the form names no node".into()))
}

/// `POST /runs/{id}/cancel`
pub(crate) async fn cancel(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RunForm>,
) -> Result<Response, PageError> {
    check_mutation(&state, &headers, form.csrf.as_deref())?;
    actions::cancel(&state, &run_id, form.reason.as_deref()).await?;
    Ok(back_to_run(&run_id))
}

/// `POST /runs/{id}/resume`
pub(crate) async fn resume(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RunForm>,
) -> Result<Response, PageError> {
    check_mutation(&state, &headers, form.csrf.as_deref())?;
    actions::resume(&state, &run_id).await?;
    Ok(back_to_run(&run_id))
}

/// `POST /runs/{id}/approve`
pub(crate) async fn approve(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RunForm>,
) -> Result<Response, PageError> {
    check_mutation(&state, &headers, form.csrf.as_deref())?;
    let input = actions::parse_input(form.input.as_deref())?;
    actions::approve(&state, &run_id, node_of(&form)?, input).await?;
    Ok(back_to_run(&run_id))
}

/// `POST /runs/{id}/reject`
pub(crate) async fn reject(
    State(state): Shared,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RunForm>,
) -> Result<Response, PageError> {
    check_mutation(&state, &headers, form.csrf.as_deref())?;
    actions::reject(&state, &run_id, node_of(&form)?, form.reason.as_deref()).await?;
    Ok(back_to_run(&run_id))
}

/// `GET /login`
pub(crate) async fn login_page(State(state): Shared) -> Html<String> {
    pages::login(&state, None)
}

/// Fields of the login form.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    csrf: Option<String>,
    token: String,
}

/// `POST /login`: sets the token cookie when the token is right.
pub(crate) async fn login(
    State(state): Shared,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    if !form
        .csrf
        .as_deref()
        .is_some_and(|c| same_secret(c, &state.csrf))
    {
        return Err(RequestError::Csrf.into());
    }
    let Some(token) = &state.auth_token else {
        return Ok(Redirect::to("/runs").into_response());
    };
    if !same_secret(&form.token, token) {
        return Ok((
            StatusCode::FORBIDDEN,
            pages::login(&state, Some("Wrong token.")),
        )
            .into_response());
    }
    let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    let mut response = Redirect::to("/runs").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Any other path.
pub(crate) async fn not_found(uri: Uri) -> PageError {
    RequestError::NoRoute(uri.path().to_string()).into()
}
