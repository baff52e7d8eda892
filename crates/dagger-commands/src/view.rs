//! What the read commands print, in one vocabulary for machines and one
//! style for people.
//!
//! Every `--json` output is built from the types here, so a key means the
//! same thing in every command (the schema is `docs/schemas/cli.schema.json`):
//! `run_id`, `node_id`, `task_id`, `job_id` name things; `workflow` is a
//! workflow's name; `status` is the stored status and `state` what a person
//! is shown (`Orphaned` for an unfinished run whose owner's lease lapsed);
//! times are `*_at` in milliseconds since the epoch; durations are
//! `duration_ms`.
//!
//! People get tables ([`table`]) and durations in human units
//! ([`human_duration`]).

use crate::error::CliError;
use dagger_coord::{DagExecutionReport, ExecutionMetrics, NodeReport};
use dagger_core::store::{RunOwner, RunRecord};
use dagger_core::{NodeStatus, RunStatus};
use serde::Serialize;
use serde_json::Value;

/// A run as `runs list --json` prints it (and the head of `runs show --json`).
#[derive(Debug, Serialize)]
pub(crate) struct RunJson {
    pub(crate) run_id: String,
    pub(crate) workflow: String,
    pub(crate) status: RunStatus,
    pub(crate) state: &'static str,
    pub(crate) reason: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) finished_at: Option<i64>,
    /// Until now for an unfinished run.
    pub(crate) duration_ms: i64,
    pub(crate) parent_run_id: Option<String>,
    pub(crate) forked_from_node: Option<String>,
}

impl RunJson {
    pub(crate) fn new(r: &RunRecord, now: i64) -> Self {
        let lineage = r.lineage.as_ref();
        Self {
            run_id: r.run_id.to_string(),
            workflow: r.workflow.clone(),
            status: r.status,
            state: r.display_status(now),
            reason: r.reason.clone(),
            created_at: r.created_at,
            finished_at: r.finished_at,
            duration_ms: r.finished_at.unwrap_or(now).saturating_sub(r.created_at),
            parent_run_id: lineage.map(|l| l.parent_run_id.to_string()),
            forked_from_node: lineage
                .and_then(|l| l.forked_from_node.as_ref().map(ToString::to_string)),
        }
    }
}

/// `runs show --json`: the run, its owner, inputs, re-runs and nodes.
#[derive(Debug, Serialize)]
pub(crate) struct RunDetailJson {
    #[serde(flatten)]
    pub(crate) run: RunJson,
    pub(crate) owner: Option<RunOwner>,
    pub(crate) orphaned_since: Option<i64>,
    pub(crate) inputs: Value,
    pub(crate) children: Vec<RunJson>,
    pub(crate) nodes: Vec<NodeJson>,
}

/// One node of a run (`runs show`, `run`, `resume`, `rerun`).
#[derive(Debug, Serialize)]
pub(crate) struct NodeJson {
    pub(crate) node_id: String,
    pub(crate) action: String,
    pub(crate) status: NodeStatus,
    pub(crate) attempts: u32,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) error: Option<String>,
    pub(crate) cache_hit: bool,
    pub(crate) added_at_runtime: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wake_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<String>,
}

impl From<&NodeReport> for NodeJson {
    fn from(n: &NodeReport) -> Self {
        Self {
            node_id: n.id.to_string(),
            action: n.action.to_string(),
            status: n.status,
            attempts: n.attempts,
            duration_ms: n.duration_ms,
            error: n.error.clone(),
            cache_hit: n.cache_hit,
            added_at_runtime: n.added_at_runtime,
            wake_at: n.wake_at,
            signal: n.signal.clone(),
        }
    }
}

/// The report of `run`, `resume` and `rerun --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ReportJson {
    pub(crate) run_id: String,
    pub(crate) workflow: String,
    pub(crate) status: RunStatus,
    pub(crate) reason: Option<String>,
    /// Wall time of this execution (0 when nothing ran).
    pub(crate) duration_ms: u64,
    /// Whether this execution resumed an earlier one.
    pub(crate) resumed: bool,
    pub(crate) metrics: Option<ExecutionMetrics>,
    pub(crate) nodes: Vec<NodeJson>,
}

impl From<&DagExecutionReport> for ReportJson {
    fn from(r: &DagExecutionReport) -> Self {
        Self {
            run_id: r.run_id.clone(),
            workflow: r.dag_name.clone(),
            status: r.status,
            reason: r.reason.clone(),
            duration_ms: r.duration_ms,
            resumed: r.resumed,
            metrics: Some(r.metrics.clone()),
            nodes: r.nodes.iter().map(NodeJson::from).collect(),
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Other(format!("cannot print JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// A table without borders whose columns fit their longest cell, two
/// spaces apart, for [`print_table`]. Columns listed in `right` are
/// right-aligned.
pub(crate) fn table(header: &[&str], right: &[usize]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_header(header.iter().copied());
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if right.contains(&i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    t
}

/// Prints `table` on stdout, without trailing spaces.
pub(crate) fn print_table(table: &comfy_table::Table) {
    for line in table.lines() {
        outln!("{}", line.trim_end());
    }
}

/// A duration in human units: `742 ms`, `4.2 s`, `4 min 19 s`, `2 h 5 min`.
pub(crate) fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    if s < 3600 {
        return format!("{} min {} s", s / 60, s % 60);
    }
    if s < 86_400 {
        return format!("{} h {} min", s / 3600, s % 3600 / 60);
    }
    format!("{} d {} h", s / 86_400, s % 86_400 / 3600)
}

/// Prints the problems of a workflow file on stdout, each as
/// `file:line:col: message` followed, when the problem has a position in a
/// readable file, by that source line with a caret under the culprit:
///
/// ```text
/// flow.yaml:4:5: node `typo`: unknown field `acton`, expected one of …; did you mean `action`?
///   |
/// 4 |     acton: shell
///   |     ^^^^^
/// ```
pub(crate) fn print_issues(issues: &[dagger_dag_flow::LoadIssue]) {
    let mut sources: std::collections::HashMap<&str, Option<String>> =
        std::collections::HashMap::new();
    for issue in issues {
        outln!("{issue}");
        let (Some(line), Some(column)) = (issue.line, issue.column) else {
            continue;
        };
        let source = sources
            .entry(issue.file.as_str())
            .or_insert_with(|| std::fs::read_to_string(&issue.file).ok());
        if let Some(excerpt) = source.as_deref().and_then(|s| excerpt(s, line, column)) {
            out!("{excerpt}");
        }
    }
}

/// Line `line` of `source` with a caret under the token at `column` (both
/// 1-based; the column counts characters), or `None` past the end.
fn excerpt(source: &str, line: usize, column: usize) -> Option<String> {
    let text = source.lines().nth(line.checked_sub(1)?)?;
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    let chars: Vec<char> = text.chars().collect();
    let start = column.saturating_sub(1).min(chars.len());
    // Under the whole token (a key, a name, a quoted value), at least one caret.
    let ends_token = |c: &char| c.is_whitespace() || ":,[]{}#".contains(*c);
    let width = chars[start..]
        .iter()
        .take_while(|c| !ends_token(c))
        .count()
        .max(1);
    // Tabs stay tabs so that the caret lines up under them.
    let pad: String = chars[..start]
        .iter()
        .map(|&c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!(
        "{gutter} |\n{number} | {text}\n{gutter} | {pad}{}\n",
        "^".repeat(width)
    ))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, from ms since the epoch.
pub(crate) fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_human_units() {
        assert_eq!(human_duration(12), "12 ms");
        assert_eq!(human_duration(1500), "1.5 s");
        assert_eq!(human_duration(259_733), "4 min 19 s");
        assert_eq!(human_duration(7_512_000), "2 h 5 min");
        assert_eq!(human_duration(90_000_000), "1 d 1 h");
        assert_eq!(human_duration(-5), "0 ms");
    }

    #[test]
    fn an_excerpt_puts_a_caret_under_the_culprit() {
        let src = "name: w\nnodes:\n  - id: typo\n    acton: shell\n";
        assert_eq!(
            excerpt(src, 4, 5).unwrap(),
            "  |\n4 |     acton: shell\n  |     ^^^^^\n"
        );
        // A position on punctuation still gets one caret.
        assert_eq!(
            excerpt("a: [x, y]\n", 1, 4).unwrap(),
            "  |\n1 | a: [x, y]\n  |    ^\n"
        );
        // Tabs before the culprit keep the caret aligned; past the end is None.
        assert_eq!(
            excerpt("\tk: v", 1, 2).unwrap(),
            "  |\n1 | \tk: v\n  | \t^\n"
        );
        assert_eq!(excerpt(src, 9, 1), None);
        assert_eq!(excerpt(src, 0, 1), None);
        let long = format!("{}x: 1\n", "\n".repeat(11));
        assert_eq!(excerpt(&long, 12, 1).unwrap(), "   |\n12 | x: 1\n   | ^\n");
    }

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn tables_stay_aligned_with_long_names() {
        let mut t = table(&["RUN", "WORKFLOW", "DURATION"], &[2]);
        t.add_row(["a", "a-very-long-workflow-name-indeed", "1.5 s"]);
        t.add_row(["bb", "w", "4 min 19 s"]);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let col = |l: &str, word: &str| l.find(word).unwrap();
        // The workflow column starts at the same place on every line.
        assert_eq!(col(&lines[0], "WORKFLOW"), col(&lines[1], "a-very"));
        assert_eq!(col(&lines[0], "WORKFLOW"), col(&lines[2], "w "));
        // The duration column is right-aligned: every line ends at one place.
        assert_eq!(lines[1].len(), lines[2].len(), "{lines:?}");
        assert!(lines[0].len() <= lines[2].len());
    }
}
