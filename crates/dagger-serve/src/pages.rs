//! HTML pages, rendered with maud (every interpolated string is escaped).

use crate::data::{self, NodeRow, RunDetail, RunsPage, format_ms, format_time};
use crate::graph::{self, GraphNode};
use crate::state::{AppState, WorkflowCatalog};
use axum::http::StatusCode;
use axum::response::Html;
use dagger_core::store::AttemptRecord;
use dagger_core::{NodeStatus, RunStatus};
use dagger_dag_flow::WorkflowDef;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters escaped in a path segment or query value: all but unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` percent-encoded for a URL path segment or query value.
pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The page URL of run `run_id`.
pub(crate) fn run_url(run_id: &str) -> String {
    format!("/runs/{}", enc(run_id))
}

/// Run statuses after which nothing changes unless someone resumes the run.
pub(crate) fn is_final(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
    )
}

/// Statuses in which a run can be asked to cancel.
const CANCELLABLE: &str = "Running Paused WaitingForHuman";
/// Statuses in which the page offers a resume.
const RESUMABLE: &str = "Failed Cancelled Paused WaitingForHuman Orphaned";

pub(crate) fn page(state: &AppState, title: &str, active: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(state.csrf);
                title { (title) " · Dagger" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                header.top {
                    a.brand href="/runs" { "Dagger" }
                    nav {
                        @for (href, name) in [("/runs", "Runs"), ("/workflows", "Workflows")] {
                            a href=(href) class=[(name == active).then_some("active")] { (name) }
                        }
                        @if state.tasks.is_some() {
                            a href="/jobs" class=[("Jobs" == active).then_some("active")] { "Jobs" }
                        }
                        @if state.messages.is_some() {
                            a href="/channels" class=[("Channels" == active).then_some("active")] { "Channels" }
                        }
                        @if state.auth_token.is_some() {
                            a href="/login" { "Log in" }
                        }
                    }
                }
                main { (body) }
                script src="/assets/app.js" {}
            }
        }
    };
    Html(markup.into_string())
}

fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status) } }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(state: &AppState) -> Markup {
    html! { input type="hidden" name="csrf" value=(state.csrf); }
}

/// A page saying what went wrong.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (status.as_u16()) " · Dagger" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                header.top { a.brand href="/runs" { "Dagger" } }
                main {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p.error { (message) }
                    p { a href="/runs" { "Back to the runs" } }
                }
            }
        }
    };
    Html(markup.into_string())
}

/// The runs list with its filters and paging links.
pub(crate) fn runs(state: &AppState, p: &RunsPage) -> Html<String> {
    let link = |offset: usize| {
        let mut q = format!("/runs?offset={offset}&limit={}", p.limit);
        if let Some(s) = p.status {
            q.push_str(&format!("&status={}", s.as_str()));
        }
        if let Some(w) = &p.workflow {
            q.push_str(&format!("&workflow={}", enc(w)));
        }
        q
    };
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/runs" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in RunStatus::ALL {
                        option value=(s.as_str()) selected[p.status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            label { "Workflow "
                input type="text" name="workflow" list="workflow-names"
                    value=[p.workflow.as_deref()] placeholder="any";
            }
            datalist #workflow-names {
                @for w in &state.catalog.workflows { option value=(w.name) {} }
            }
            button type="submit" { "Filter" }
        }
        @if p.runs.is_empty() {
            p.empty { "No runs" @if p.offset > 0 { " on this page" } "." }
        } @else {
            table.runs {
                thead { tr { th { "Run" } th { "Workflow" } th { "Status" } th { "Started (UTC)" } th { "Duration" } th { "Reason" } } }
                tbody {
                    @for r in &p.runs {
                        tr {
                            td.mono { a href=(run_url(&r.run_id)) { (r.run_id) } }
                            td { (r.workflow) }
                            td { (status_badge(r.state)) }
                            td { (format_time(r.created_at)) }
                            td { (format_ms(r.duration_ms)) }
                            td.reason { (r.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if p.offset > 0 { a rel="prev" href=(link(p.offset.saturating_sub(p.limit))) { "← Newer" } }
            span { "runs " (p.offset + 1) "–" (p.offset + p.runs.len()) }
            @if let Some(next) = p.next_offset { a rel="next" href=(link(next)) { "Older →" } }
        }
    };
    page(state, "Runs", "Runs", body)
}

fn run_graph(detail: &RunDetail) -> Markup {
    let nodes: Vec<GraphNode<'_>> = detail
        .view
        .nodes
        .iter()
        .map(|n| GraphNode {
            id: n.id.as_str(),
            action: &n.action,
            status: Some(n.status.as_str()),
            added_at_runtime: n.added_at_runtime,
        })
        .collect();
    graph_section(&nodes, &graph::def_edges(&detail.view.workflow))
}

pub(crate) fn graph_section(nodes: &[GraphNode<'_>], edges: &[(usize, usize)]) -> Markup {
    html! {
        section #graph {
            h2 { "Graph" }
            @match graph::render(nodes, edges) {
                Ok(svg) => {
                    button type="button" data-fit-toggle { "Fit to width" }
                    div.graph { (PreEscaped(svg)) }
                    (legend(nodes.iter().any(|n| n.status.is_some())))
                }
                Err(why) => { p.note { "No graph: " (why.to_string()) "." } }
            }
        }
    }
}

fn legend(with_status: bool) -> Markup {
    html! {
        @if with_status {
            p.legend {
                @for s in NodeStatus::ALL { (status_badge(s.as_str())) " " }
                span.badge.added { "dashed: added at run time" }
            }
        }
    }
}

fn node_rows(rows: &[NodeRow]) -> Markup {
    html! {
        table.nodes {
            thead { tr { th { "#" } th { "Node" } th { "Action" } th { "Status" } th { "Attempts" } th { "Duration" } th { "Error / reason" } th { "Output" } } }
            tbody {
                @for n in rows {
                    tr data-i=(n.index) {
                        td { (n.index + 1) }
                        td.mono {
                            (n.id)
                            @if n.added_at_runtime { " " span.badge.added { "added" } }
                            @if n.cache_hit { " " span.badge { "cached" } }
                        }
                        td { (n.action) }
                        td.st { (status_badge(n.status.as_str())) }
                        td.at { (n.attempts) }
                        td.du { (n.duration_ms.map(|d| format_ms(d as i64)).unwrap_or_default()) }
                        td.er { (n.error.as_deref().unwrap_or("")) }
                        td.mono.out { (n.output_preview.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// One run: status, controls, waiting nodes, graph, a page of the node table
/// and the log panels of that page's nodes.
pub(crate) fn run(
    state: &AppState,
    d: &RunDetail,
    attempts: &[AttemptRecord],
    resume_error: Option<&str>,
) -> Html<String> {
    let r = &d.view.record;
    let id = r.run_id.as_str();
    let resuming = state.is_resuming(id);
    let live = !is_final(r.status) || resuming;
    let base = run_url(id);
    let node_link =
        |offset: usize| format!("{base}?node_offset={offset}&node_limit={}", d.node_limit);
    let summary = data::RunSummary::from(r);
    let body = html! {
        div #run data-live=[live.then(|| format!("/api/runs/{}/events", enc(id)))]
            data-node-count=(d.view.nodes.len()) {
            h1 { "Run " span.mono { (id) } }
            dl.facts {
                dt { "Workflow" } dd { (r.workflow) }
                dt { "Status" } dd { span #run-status class={ "badge s-" (summary.state) } { (summary.state) } }
                @if let Some(o) = &summary.owner {
                    dt { "Owner" } dd #run-owner {
                        "pid " (o.pid) " on " span.mono { (o.host) }
                        @if let Some(since) = summary.orphaned_since {
                            " — gone since " (format_time(since)) " UTC (its lease lapsed)"
                        } @else {
                            " — lease until " (format_time(o.lease_expires_at)) " UTC"
                        }
                    }
                }
                dt { "Started (UTC)" } dd { (format_time(r.created_at)) }
                dt { "Duration" } dd #run-duration { (format_ms(summary.duration_ms)) }
                dt { "Reason" } dd #run-reason { (r.reason.as_deref().unwrap_or("")) }
                dt { "Nodes" } dd { (d.view.nodes.len()) }
                @if let Some(l) = &r.lineage {
                    dt { "Re-run of" } dd #run-parent {
                        a.mono href=(run_url(l.parent_run_id.as_str())) { (l.parent_run_id) }
                        @match &l.forked_from_node {
                            Some(n) => { " from node " span.mono { (n) } }
                            None => { " (every node ran again)" }
                        }
                    }
                }
                @if !d.children.is_empty() {
                    dt { "Re-runs" } dd #run-children {
                        ul {
                            @for c in &d.children {
                                li {
                                    a.mono href=(run_url(&c.run_id)) { (c.run_id) }
                                    " " (status_badge(c.state))
                                    @if let Some(n) = &c.forked_from_node { " from node " span.mono { (n) } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(e) = resume_error { p.error { "Last resume from this server failed: " (e) } }
            div.actions {
                form method="post" action={ (base) "/cancel" } data-when=(CANCELLABLE)
                    data-confirm="Cancel this run?" hidden[!CANCELLABLE.contains(r.status.as_str())] {
                    (csrf_field(state))
                    input type="text" name="reason" placeholder="reason (optional)";
                    button.danger type="submit" { "Cancel run" }
                }
                form method="post" action={ (base) "/resume" } data-when=(RESUMABLE)
                    hidden[!RESUMABLE.contains(summary.state) || resuming] {
                    (csrf_field(state))
                    button type="submit" { "Resume run" }
                }
                @if resuming { span.note #resuming { "Resuming in this server…" } }
            }
            @if !d.waiting.is_empty() {
                section.waiting {
                    h2 { "Waiting for a human" }
                    @for n in &d.waiting {
                        div.human data-human=(n.index) {
                            p { span.mono { (n.id) } @if let Some(p) = &n.prompt { ": " em { (p) } } }
                            form.inline method="post" action={ (base) "/approve" } {
                                (csrf_field(state))
                                input type="hidden" name="node" value=(n.id);
                                input type="text" name="input" placeholder="input as JSON (optional)";
                                button.approve type="submit" { "Approve" }
                            }
                            form.inline method="post" action={ (base) "/reject" } {
                                (csrf_field(state))
                                input type="hidden" name="node" value=(n.id);
                                input type="text" name="reason" placeholder="reason (optional)";
                                button.danger type="submit" { "Reject" }
                            }
                        }
                    }
                }
            }
            (run_graph(d))
            section #nodes {
                h2 { "Nodes" }
                (node_rows(&d.page))
                nav.pager {
                    @if d.node_offset > 0 { a rel="prev" href=(node_link(d.node_offset.saturating_sub(d.node_limit))) { "← Previous nodes" } }
                    span { "nodes " (d.node_offset + 1) "–" (d.node_offset + d.page.len()) " of " (d.view.nodes.len()) }
                    @if let Some(next) = d.next_node_offset() { a rel="next" href=(node_link(next)) { "Next nodes →" } }
                }
            }
            (crate::logs::panel(id, &d.page, attempts))
        }
    };
    page(state, &format!("Run {id}"), "Runs", body)
}

/// The loaded workflow definitions and the files that failed to load.
pub(crate) fn workflows(state: &AppState, catalog: &WorkflowCatalog) -> Html<String> {
    let body = html! {
        h1 { "Workflows" }
        @if catalog.workflows.is_empty() { p.empty { "No workflow definitions loaded (see --workflows)." } }
        @else {
            table.workflows {
                thead { tr { th { "Name" } th { "Description" } th { "Tags" } th { "Nodes" } th { "Runs" } } }
                tbody {
                    @for w in &catalog.workflows {
                        tr {
                            td.mono { a href={ "/workflows/" (enc(&w.name)) } { (w.name) } }
                            td { (w.description.as_deref().unwrap_or("")) }
                            td { @for t in &w.tags { span.badge.tag { (t) } " " } }
                            td { (w.nodes.len()) }
                            td { a href={ "/runs?workflow=" (enc(&w.name)) } { "runs" } }
                        }
                    }
                }
            }
        }
        @if !catalog.problems.is_empty() {
            section {
                h2 { "Files that did not load" }
                @for (file, problems) in &catalog.problems {
                    h3.mono { (file) }
                    ul.error { @for p in problems { li.mono { (p) } } }
                }
            }
        }
    };
    page(state, "Workflows", "Workflows", body)
}

/// One workflow definition: metadata, tags, the start form, graph and nodes.
pub(crate) fn workflow(
    state: &AppState,
    w: &WorkflowDef,
    start: Markup,
    offset: usize,
    limit: usize,
) -> Html<String> {
    let base = format!("/workflows/{}", enc(&w.name));
    let link = |o: usize| format!("{base}?node_offset={o}&node_limit={limit}");
    let shown = w.nodes.iter().skip(offset).take(limit).count();
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
    let body = html! {
        h1 { "Workflow " span.mono { (w.name) } }
        dl.facts {
            dt { "Description" } dd { (w.description.as_deref().unwrap_or("")) }
            dt { "Author" } dd { (w.author.as_deref().unwrap_or("")) }
            dt { "Version" } dd { (w.version.as_deref().unwrap_or("")) }
            dt { "Tags" } dd { @for t in &w.tags { span.badge.tag { (t) } " " } }
            dt { "Runs" } dd { a href={ "/runs?workflow=" (enc(&w.name)) } { "runs of this workflow" } }
        }
        (start)
        (graph_section(&nodes, &graph::def_edges(w)))
        section {
            h2 { "Nodes" }
            table.nodes {
                thead { tr { th { "Node" } th { "Action" } th { "Depends on" } th { "Description" } } }
                tbody {
                    @for n in w.nodes.iter().skip(offset).take(limit) {
                        tr {
                            td.mono { (n.id) @if n.approval.is_some() { " " span.badge.s-WaitingForHuman { "approval" } } }
                            td { (n.action) }
                            td.mono { (n.dependencies.join(", ")) }
                            td { (n.description.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            nav.pager {
                @if offset > 0 { a rel="prev" href=(link(offset.saturating_sub(limit))) { "← Previous nodes" } }
                span { "nodes " (offset + 1) "–" (offset + shown) " of " (w.nodes.len()) }
                @if offset + limit < w.nodes.len() { a rel="next" href=(link(offset + limit)) { "Next nodes →" } }
            }
        }
    };
    page(state, &format!("Workflow {}", w.name), "Workflows", body)
}

/// The form that trades the server token for a cookie.
pub(crate) fn login(state: &AppState, message: Option<&str>) -> Html<String> {
    let body = html! {
        h1 { "Log in" }
        p { "This server needs its token for changes (cancel, resume, approve, reject)." }
        @if let Some(m) = message { p.error { (m) } }
        form method="post" action="/login" {
            (csrf_field(state))
            input type="password" name="token" placeholder="token" autocomplete="current-password";
            button type="submit" { "Log in" }
        }
    };
    page(state, "Log in", "", body)
}
