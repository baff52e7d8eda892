//! Reads what the pages and the API show, a page at a time.

use crate::error::RequestError;
use dagger_coord::{NodeReport, RunView};
use dagger_core::store::{NodeRunRecord, RunQuery, RunRecord};
use dagger_core::{NodeStatus, RunId, RunStatus, Stores, now_millis};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Runs per page unless `limit` says otherwise.
pub(crate) const RUNS_PER_PAGE: usize = 50;
/// Nodes per page of a run's table unless `node_limit` says otherwise.
pub(crate) const NODES_PER_PAGE: usize = 200;
/// The largest page anyone may ask for.
pub(crate) const MAX_PAGE: usize = 1000;
/// Characters of a node's output shown in tables.
pub(crate) const PREVIEW_CHARS: usize = 160;

/// Filters and paging of the runs list (`?status=&workflow=&limit=&offset=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsParams {
    pub(crate) status: Option<String>,
    pub(crate) workflow: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) offset: Option<usize>,
}

/// Paging of a run's nodes (`?node_offset=&node_limit=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NodePaging {
    pub(crate) node_offset: Option<usize>,
    pub(crate) node_limit: Option<usize>,
}

/// One line of the runs list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunSummary {
    pub(crate) run_id: String,
    pub(crate) workflow: String,
    pub(crate) status: RunStatus,
    /// What to show: the status, or `Orphaned` for an unfinished run whose
    /// owner's lease lapsed (derived when read, never stored).
    pub(crate) state: &'static str,
    /// The process executing the run, while one holds it.
    pub(crate) owner: Option<OwnerSummary>,
    /// When the owner of an orphaned run was last known alive (ms since the epoch).
    pub(crate) orphaned_since: Option<i64>,
    pub(crate) reason: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) finished_at: Option<i64>,
    /// Until now for a run that has not finished.
    pub(crate) duration_ms: i64,
}

/// The owner of a run as shown.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OwnerSummary {
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// When its lease lapses unless renewed (ms since the epoch).
    pub(crate) lease_expires_at: i64,
}

impl From<&RunRecord> for RunSummary {
    fn from(r: &RunRecord) -> Self {
        let now = now_millis();
        Self {
            run_id: r.run_id.to_string(),
            workflow: r.workflow.clone(),
            status: r.status,
            state: r.display_status(now),
            owner: r.owner.as_ref().map(|o| OwnerSummary {
                host: o.host.clone(),
                pid: o.pid,
                lease_expires_at: o.lease_expires_at,
            }),
            orphaned_since: r.orphaned_since(now),
            reason: r.reason.clone(),
            created_at: r.created_at,
            finished_at: r.finished_at,
            duration_ms: r.finished_at.unwrap_or_else(now_millis) - r.created_at,
        }
    }
}

/// One page of runs.
#[derive(Debug, Serialize)]
pub(crate) struct RunsPage {
    pub(crate) runs: Vec<RunSummary>,
    pub(crate) status: Option<RunStatus>,
    pub(crate) workflow: Option<String>,
    pub(crate) offset: usize,
    pub(crate) limit: usize,
    /// The offset of the next page, when there is one.
    pub(crate) next_offset: Option<usize>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn page_limit(asked: Option<usize>, default: usize) -> Result<usize, RequestError> {
    match asked {
        None => Ok(default),
        Some(0) => Err(RequestError::BadRequest("limit must be at least 1".into())),
        Some(n) if n > MAX_PAGE => Err(RequestError::BadRequest(format!(
            "limit {n} is above the maximum of {MAX_PAGE}"
        ))),
        Some(n) => Ok(n),
    }
}

/// A run status from a query value; names the valid ones when it is not one.
pub(crate) fn parse_status(s: &str) -> Result<RunStatus, RequestError> {
    RunStatus::parse(s).ok_or_else(|| {
        let valid: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        RequestError::BadRequest(format!(
            "unknown status `{s}` (one of: {})",
            valid.join(", ")
        ))
    })
}

/// A page of runs, newest first. One more run than asked for is read to
/// know whether a next page exists, so no count over the table is needed.
pub(crate) async fn list_runs(
    stores: &Stores,
    params: RunsParams,
) -> Result<RunsPage, RequestError> {
    let status = non_empty(params.status)
        .map(|s| parse_status(&s))
        .transpose()?;
    let workflow = non_empty(params.workflow);
    let limit = page_limit(params.limit, RUNS_PER_PAGE)?;
    let offset = params.offset.unwrap_or(0);
    let mut runs = stores
        .runs
        .list_runs(&RunQuery {
            status,
            workflow: workflow.clone(),
            limit: Some(limit + 1),
            offset,
        })
        .await?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    Ok(RunsPage {
        runs: runs.iter().map(RunSummary::from).collect(),
        status,
        workflow,
        offset,
        limit,
        next_offset: more.then_some(offset + limit),
    })
}

/// One node of a run, as tables and the API show it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeRow {
    /// Position in the run's node order (the graph and live updates use it).
    pub(crate) index: usize,
    pub(crate) id: String,
    pub(crate) action: String,
    pub(crate) status: NodeStatus,
    pub(crate) attempts: u32,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) error: Option<String>,
    pub(crate) added_at_runtime: bool,
    pub(crate) cache_hit: bool,
    /// What a node waiting for a human asks.
    pub(crate) prompt: Option<String>,
    /// The start of the stored output, as JSON text.
    pub(crate) output_preview: Option<String>,
}

impl NodeRow {
    fn new(index: usize, n: &NodeReport) -> Self {
        Self {
            index,
            id: n.id.to_string(),
            action: n.action.to_string(),
            status: n.status,
            attempts: n.attempts,
            duration_ms: n.duration_ms,
            error: n.error.clone(),
            added_at_runtime: n.added_at_runtime,
            cache_hit: n.cache_hit,
            prompt: None,
            output_preview: None,
        }
    }
}

/// A run with one page of its nodes.
#[derive(Debug)]
pub(crate) struct RunDetail {
    pub(crate) view: RunView,
    /// The nodes of the page, with prompts and output previews.
    pub(crate) page: Vec<NodeRow>,
    pub(crate) node_offset: usize,
    pub(crate) node_limit: usize,
    /// Nodes waiting for a human anywhere in the run (not only on this page).
    pub(crate) waiting: Vec<WaitingNode>,
    /// The runs re-run from this one (`dagger rerun`), oldest first.
    pub(crate) children: Vec<ChildRun>,
}

/// A run re-run from the shown run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChildRun {
    pub(crate) run_id: String,
    pub(crate) state: &'static str,
    /// The node it was forked from (`None`: every node ran again).
    pub(crate) forked_from_node: Option<String>,
}

/// A node waiting for a human.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WaitingNode {
    pub(crate) index: usize,
    pub(crate) id: String,
    pub(crate) prompt: Option<String>,
}

impl RunDetail {
    /// The offset of the next page of nodes, when there is one.
    pub(crate) fn next_node_offset(&self) -> Option<usize> {
        let next = self.node_offset + self.node_limit;
        (next < self.view.nodes.len()).then_some(next)
    }
}

/// The node window `paging` asks for: (offset, limit).
pub(crate) fn node_window(paging: &NodePaging) -> Result<(usize, usize), RequestError> {
    Ok((
        paging.node_offset.unwrap_or(0),
        page_limit(paging.node_limit, NODES_PER_PAGE)?,
    ))
}

/// Reads run `run_id` and details the nodes of one page.
pub(crate) async fn run_detail(
    stores: &Stores,
    run_id: &str,
    paging: NodePaging,
) -> Result<RunDetail, RequestError> {
    let view = load_view(stores, run_id).await?;
    let (node_offset, node_limit) = node_window(&paging)?;
    let records = plain_records(stores, run_id).await?;
    let prompt_of = |id: &str| {
        records
            .get(id)
            .and_then(|rec| rec.metadata.get("prompt"))
            .and_then(|p| p.as_str())
            .map(str::to_string)
    };
    let waiting = view
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.status == NodeStatus::WaitingForHuman)
        .map(|(index, n)| WaitingNode {
            index,
            id: n.id.to_string(),
            prompt: prompt_of(n.id.as_str()),
        })
        .collect();
    let mut page = Vec::new();
    for (index, n) in view
        .nodes
        .iter()
        .enumerate()
        .skip(node_offset)
        .take(node_limit)
    {
        let mut row = NodeRow::new(index, n);
        if let Some(rec) = records.get(n.id.as_str()) {
            if n.status == NodeStatus::WaitingForHuman {
                row.prompt = prompt_of(n.id.as_str());
            }
            if let Some(id) = &rec.output_artifact_id {
                row.output_preview = Some(match stores.artifacts.get_artifact(id).await {
                    Ok(bytes) => preview(&bytes),
                    Err(e) => format!("(output unreadable: {e})"),
                });
            }
        }
        page.push(row);
    }
    let now = dagger_core::now_millis();
    let children = stores
        .runs
        .child_runs(&view.record.run_id)
        .await?
        .into_iter()
        .map(|c| ChildRun {
            state: c.display_status(now),
            forked_from_node: c
                .lineage
                .and_then(|l| l.forked_from_node.map(|n| n.to_string())),
            run_id: c.run_id.to_string(),
        })
        .collect();
    Ok(RunDetail {
        view,
        page,
        node_offset,
        node_limit,
        waiting,
        children,
    })
}

/// The run view, or [`RequestError::RunNotFound`].
pub(crate) async fn load_view(stores: &Stores, run_id: &str) -> Result<RunView, RequestError> {
    dagger_coord::load_run_view(stores, run_id)
        .await
        .map_err(|e| match e {
            dagger_coord::CoordError::RunNotFound(id) => RequestError::RunNotFound(id),
            other => other.into(),
        })
}

/// The record of each node's plain (not fanned-out) invocation.
async fn plain_records(
    stores: &Stores,
    run_id: &str,
) -> Result<HashMap<String, NodeRunRecord>, RequestError> {
    Ok(stores
        .runs
        .node_runs(&RunId::from(run_id))
        .await?
        .into_iter()
        .filter(|r| r.invocation_key.is_empty())
        .map(|r| (r.node_id.to_string(), r))
        .collect())
}

/// The stored output of node `node_id` of run `run_id`, as JSON.
pub(crate) async fn node_output(
    stores: &Stores,
    run_id: &str,
    node_id: &str,
) -> Result<serde_json::Value, RequestError> {
    let view = load_view(stores, run_id).await?;
    if !view.nodes.iter().any(|n| n.id == node_id) {
        return Err(RequestError::NodeNotFound {
            run_id: run_id.to_string(),
            node_id: node_id.to_string(),
        });
    }
    let records = plain_records(stores, run_id).await?;
    let Some(id) = records
        .get(node_id)
        .and_then(|r| r.output_artifact_id.clone())
    else {
        return Ok(serde_json::Value::Null);
    };
    let bytes = stores.artifacts.get_artifact(&id).await?;
    Ok(serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into())))
}

/// The first [`PREVIEW_CHARS`] characters of an output, compact JSON when it is JSON.
fn preview(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => v.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().nth(PREVIEW_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, from ms since the epoch.
pub(crate) fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A duration for people: `12 ms`, `1.5 s`, `3 min 4 s`.
pub(crate) fn format_ms(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_cut() {
        assert_eq!(preview(br#"{"a": 1}"#), r#"{"a":1}"#);
        let long = format!("\"{}\"", "x".repeat(500));
        let p = preview(long.as_bytes());
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
        assert_eq!(preview(b"not json"), "not json");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_ms(12), "12 ms");
        assert_eq!(format_ms(1500), "1.5 s");
        assert_eq!(format_ms(184_000), "3 min 4 s");
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(page_limit(None, 50).unwrap(), 50);
        assert!(
            matches!(page_limit(Some(0), 50), Err(RequestError::BadRequest(m)) if m.contains("at least 1"))
        );
        assert!(
            matches!(page_limit(Some(5000), 50), Err(RequestError::BadRequest(m)) if m.contains("5000"))
        );
    }
}
