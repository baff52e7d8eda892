//! Task Agent jobs: the list and one job with its tasks and their graph,
//! as pages and under `/api/`. The task store is synchronous, so reads run
//! on the blocking pool.

use crate::data::{PREVIEW_CHARS, format_time, node_window};
use crate::error::{ApiError, PageError, RequestError};
use crate::graph::GraphNode;
use crate::pages::{self, enc};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use dagger_core::store::{BreakerRecord, JobRecord, TaskRecord, TaskStore, read};
use dagger_core::{JobId, JobStatus};
use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

const JOB_STATUSES: [JobStatus; 4] = [
    JobStatus::Running,
    JobStatus::Completed(true),
    JobStatus::Completed(false),
    JobStatus::Cancelled,
];

/// `?status=&limit=&offset=` of the jobs list.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobsParams {
    status: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// One line of the jobs list.
#[derive(Debug, Serialize)]
pub(crate) struct JobRow {
    job_id: String,
    status: &'static str,
    reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    tasks: usize,
    open: usize,
    unsuccessful: usize,
}

fn task_store(state: &AppState) -> Result<Arc<dyn TaskStore>, RequestError> {
    state.tasks.clone().ok_or(RequestError::NoStore("task"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RequestError::Internal(e.to_string()))?
}

/// A page of jobs, newest first. The task store lists jobs by status only,
/// so every job record is read and sorted; the page is then cut.
async fn list(
    state: &AppState,
    p: JobsParams,
) -> Result<(Vec<JobRow>, usize, usize, Option<usize>), RequestError> {
    let wanted = match p.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            JOB_STATUSES
                .into_iter()
                .find(|j| j.as_str() == s)
                .ok_or_else(|| {
                    RequestError::BadRequest(format!(
                        "unknown job status `{s}` (one of: Running, Succeeded, Failed, Cancelled)"
                    ))
                })?,
        ),
    };
    let (offset, limit) = node_window(&crate::data::NodePaging {
        node_offset: p.offset,
        node_limit: p.limit.or(Some(crate::data::RUNS_PER_PAGE)),
    })?;
    let store = task_store(state)?;
    blocking(move || {
        let rows = read(store.as_ref(), |tx| {
            let mut jobs: Vec<JobRecord> = Vec::new();
            for status in JOB_STATUSES
                .into_iter()
                .filter(|s| wanted.is_none_or(|w| w == *s))
            {
                for id in tx.jobs_with_status(status)? {
                    if let Some(job) = tx.job(&id)? {
                        jobs.push(job);
                    }
                }
            }
            jobs.sort_by(|a, b| {
                b.created_at
                    .cmp(&a.created_at)
                    .then(b.job_id.as_str().cmp(a.job_id.as_str()))
            });
            let more = jobs.len() > offset + limit;
            let mut rows = Vec::new();
            for job in jobs.into_iter().skip(offset).take(limit) {
                let counts = tx.job_counts(&job.job_id)?;
                rows.push(JobRow {
                    job_id: job.job_id.to_string(),
                    status: job.status.as_str(),
                    reason: job.reason,
                    created_at: job.created_at,
                    updated_at: job.updated_at,
                    tasks: counts.total,
                    open: counts.open,
                    unsuccessful: counts.unsuccessful,
                });
            }
            Ok::<_, RequestError>((rows, more))
        })?;
        let (rows, more) = rows;
        Ok((rows, offset, limit, more.then_some(offset + limit)))
    })
    .await
}

/// Every recorded per-agent circuit breaker (Task Agent), by agent.
async fn breakers(state: &AppState) -> Result<Vec<BreakerRecord>, RequestError> {
    let store = task_store(state)?;
    blocking(move || Ok(read(store.as_ref(), |tx| tx.breakers())?)).await
}

async fn detail(
    state: &AppState,
    job_id: &str,
) -> Result<(JobRecord, Vec<TaskRecord>), RequestError> {
    let store = task_store(state)?;
    let id = JobId::from(job_id);
    let name = job_id.to_string();
    blocking(move || {
        let (job, tasks) = read(store.as_ref(), |tx| {
            Ok::<_, RequestError>((tx.job(&id)?, tx.job_tasks(&id)?))
        })?;
        let job = job.ok_or(RequestError::JobNotFound(name))?;
        Ok((job, tasks))
    })
    .await
}

fn preview(v: &Option<Value>) -> String {
    let Some(v) = v else { return String::new() };
    let text = v.to_string();
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().nth(PREVIEW_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// `GET /api/jobs`
pub(crate) async fn api_list(
    State(state): Shared,
    Query(p): Query<JobsParams>,
) -> Result<Json<Value>, ApiError> {
    let (jobs, offset, limit, next) = list(&state, p).await?;
    let breakers = breakers(&state).await?;
    Ok(Json(json!({
        "jobs": jobs, "offset": offset, "limit": limit, "next_offset": next,
        "circuit_breakers": breakers,
    })))
}

/// `GET /api/jobs/{id}`
pub(crate) async fn api_job(
    State(state): Shared,
    Path(job_id): Path<String>,
    Query(paging): Query<crate::data::NodePaging>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = node_window(&paging)?;
    let (job, tasks) = detail(&state, &job_id).await?;
    let total = tasks.len();
    let page: Vec<&TaskRecord> = tasks.iter().skip(offset).take(limit).collect();
    Ok(Json(json!({
        "job": job, "task_total": total, "task_offset": offset, "task_limit": limit,
        "next_task_offset": (offset + limit < total).then_some(offset + limit),
        "tasks": page,
    })))
}

/// `GET /jobs`
pub(crate) async fn page_list(
    State(state): Shared,
    Query(p): Query<JobsParams>,
) -> Result<Html<String>, PageError> {
    let status = p.status.clone().filter(|s| !s.is_empty());
    let (jobs, offset, limit, next) = list(&state, p).await?;
    let breakers = breakers(&state).await?;
    let link = |o: usize| {
        let mut q = format!("/jobs?offset={o}&limit={limit}");
        if let Some(s) = &status {
            q.push_str(&format!("&status={}", enc(s)));
        }
        q
    };
    let body = html! {
        h1 { "Jobs" }
        form.filters method="get" action="/jobs" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in JOB_STATUSES {
                        option value=(s.as_str()) selected[status.as_deref() == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if jobs.is_empty() { p.empty { "No jobs." } } @else {
            table.jobs {
                thead { tr { th { "Job" } th { "Status" } th { "Tasks" } th { "Open" } th { "Unsuccessful" } th { "Created (UTC)" } th { "Last change" } th { "Reason" } } }
                tbody {
                    @for j in &jobs {
                        tr {
                            td.mono { a href={ "/jobs/" (enc(&j.job_id)) } { (j.job_id) } }
                            td { span class={ "badge s-" (j.status) } { (j.status) } }
                            td { (j.tasks) } td { (j.open) } td { (j.unsuccessful) }
                            td { (format_time(j.created_at)) } td { (format_time(j.updated_at)) }
                            td.reason { (j.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if offset > 0 { a rel="prev" href=(link(offset.saturating_sub(limit))) { "← Newer" } }
            @if let Some(n) = next { a rel="next" href=(link(n)) { "Older →" } }
        }
        @if !breakers.is_empty() {
            section.breakers {
                h2 { "Circuit breakers" }
                table.breakers {
                    thead { tr { th { "Agent" } th { "State" } th { "Failures in a row" } th { "Until (UTC)" } th { "Last error" } th { "Changed" } } }
                    tbody {
                        @for b in &breakers {
                            tr {
                                td.mono { (b.agent) }
                                td { span class={ "badge b-" (b.state.as_str()) } { (b.state.as_str()) } }
                                td { (b.consecutive_failures) }
                                td { (b.until.map(format_time).unwrap_or_default()) }
                                td.er { (b.last_error.as_deref().unwrap_or("")) }
                                td { (format_time(b.updated_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(pages::page(&state, "Jobs", "Jobs", body))
}

/// `GET /jobs/{id}`
pub(crate) async fn page_job(
    State(state): Shared,
    Path(job_id): Path<String>,
    Query(paging): Query<crate::data::NodePaging>,
) -> Result<Html<String>, PageError> {
    let (offset, limit) = node_window(&paging)?;
    let (job, tasks) = detail(&state, &job_id).await?;
    let ids: Vec<String> = tasks.iter().map(|t| t.task_id.to_string()).collect();
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let nodes: Vec<GraphNode<'_>> = tasks
        .iter()
        .zip(&ids)
        .map(|(t, id)| GraphNode {
            id,
            action: &t.agent,
            status: Some(t.status.as_str()),
            added_at_runtime: false,
        })
        .collect();
    let edges: Vec<(usize, usize)> = tasks
        .iter()
        .enumerate()
        .flat_map(|(to, t)| {
            t.dependencies
                .iter()
                .filter_map(|d| index.get(d.as_str()).map(|f| (*f, to)))
                .collect::<Vec<_>>()
        })
        .collect();
    let base = format!("/jobs/{}", enc(&job_id));
    let link = |o: usize| format!("{base}?node_offset={o}&node_limit={limit}");
    let shown = tasks.iter().skip(offset).take(limit).count();
    let body = html! {
        h1 { "Job " span.mono { (job_id) } }
        dl.facts {
            dt { "Status" } dd { span class={ "badge s-" (job.status.as_str()) } { (job.status.as_str()) } }
            dt { "Created (UTC)" } dd { (format_time(job.created_at)) }
            dt { "Last change" } dd { (format_time(job.updated_at)) }
            dt { "Reason" } dd { (job.reason.as_deref().unwrap_or("")) }
            dt { "Allowed agents" } dd { (job.allowed_agents.as_ref().map(|a| a.join(", ")).unwrap_or_else(|| "any".into())) }
            dt { "Tasks" } dd { (tasks.len()) }
        }
        (pages::graph_section(&nodes, &edges))
        section {
            h2 { "Tasks" }
            table.nodes {
                thead { tr { th { "Task" } th { "Type" } th { "Agent" } th { "Status" } th { "Attempts" } th { "Depends on" } th { "Description" } th { "Error" } th { "Output" } } }
                tbody {
                    @for t in tasks.iter().skip(offset).take(limit) {
                        tr {
                            td.mono { (t.task_id) }
                            td { (t.task_type.as_str()) }
                            td { (t.agent) }
                            td { span class={ "badge s-" (t.status.as_str()) } { (t.status.as_str()) } }
                            td { (t.attempts) }
                            td.mono { (t.dependencies.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")) }
                            td { (t.description) }
                            td.er { (t.error.as_deref().unwrap_or("")) }
                            td.mono.out { (preview(&t.output)) }
                        }
                    }
                }
            }
            nav.pager {
                @if offset > 0 { a rel="prev" href=(link(offset.saturating_sub(limit))) { "← Previous tasks" } }
                span { "tasks " (offset + 1) "–" (offset + shown) " of " (tasks.len()) }
                @if offset + limit < tasks.len() { a rel="next" href=(link(offset + limit)) { "Next tasks →" } }
            }
        }
    };
    Ok(pages::page(&state, &format!("Job {job_id}"), "Jobs", body))
}
