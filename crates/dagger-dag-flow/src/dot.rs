//! Graphviz DOT of workflow definitions and of runs. Every id and label goes
//! through [`DotWriter`], which quotes and escapes it, so the output parses
//! whatever the node ids hold.

use crate::model::{NodeDef, WorkflowDef};
use dagger_core::{DotWriter, NodeId, NodeStatus};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Longest error or reason shown in a node's label, in characters.
const MAX_DETAIL_CHARS: usize = 120;

/// What a run did with one node, as [`serialize_run_to_dot`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRunView {
    /// The node (a shared id: a run's views share it with its report).
    pub node_id: NodeId,
    /// Its state.
    pub status: NodeStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Time spent running, in milliseconds, once known.
    pub duration_ms: Option<u64>,
    /// The last error, for a failed node.
    pub error: Option<String>,
    /// Whether a hook added the node while the run was going.
    pub added_at_runtime: bool,
    /// Why the node was skipped, paused or cancelled.
    pub reason: Option<String>,
}

impl NodeRunView {
    /// A view of `node_id` in `status`, with no attempts and no details.
    pub fn new(node_id: impl Into<NodeId>, status: NodeStatus) -> Self {
        Self {
            node_id: node_id.into(),
            status,
            attempts: 0,
            duration_ms: None,
            error: None,
            added_at_runtime: false,
            reason: None,
        }
    }
}

/// The fill colour of a status.
fn status_colour(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Pending => "white",
        NodeStatus::Ready => "lightyellow",
        NodeStatus::Running => "lightblue",
        NodeStatus::Retrying => "orange",
        NodeStatus::Paused => "khaki",
        NodeStatus::WaitingForHuman => "plum",
        NodeStatus::Waiting => "lavender",
        NodeStatus::Completed => "palegreen",
        NodeStatus::Failed => "salmon",
        NodeStatus::Skipped => "lightgrey",
        NodeStatus::Cancelled => "grey",
    }
}

/// `text` cut to [`MAX_DETAIL_CHARS`] characters, with `…` when cut.
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    if text.chars().nth(MAX_DETAIL_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The label lines every rendering of a node starts with.
fn definition_label(node: &NodeDef) -> Vec<String> {
    let mut lines = vec![node.id.clone(), format!("action: {}", node.action)];
    if let Some(r) = &node.map_over {
        lines.push(format!("map over: {r}"));
    }
    if let Some(r) = &node.when {
        lines.push(format!("when: {r}"));
    }
    if let Some(f) = &node.failure {
        lines.push(format!("on failure: {f}"));
    }
    lines
}

fn start(def: &WorkflowDef) -> DotWriter {
    let mut w = DotWriter::new(&def.name);
    w.graph_attr("rankdir", "TB");
    w.node_defaults(&[
        ("shape", "box"),
        ("style", "rounded,filled"),
        ("fillcolor", "white"),
    ]);
    w
}

fn edges(w: &mut DotWriter, def: &WorkflowDef) {
    for node in &def.nodes {
        for dep in &node.dependencies {
            w.edge(dep, &node.id, &[]);
        }
    }
}

/// The definition as a DOT digraph: one box per node (id, action, and
/// `map_over` / `when` / failure handler when set), an edge from each
/// dependency to its dependent.
pub fn serialize_tree_to_dot(def: &WorkflowDef) -> String {
    let mut w = start(def);
    for node in &def.nodes {
        w.node(&node.id, &[("label", &definition_label(node).join("\n"))]);
    }
    edges(&mut w, def);
    w.finish()
}

/// A run as a DOT digraph: each node filled with its status colour and
/// labelled with status, attempts, duration and its error or skip reason;
/// nodes added at run time are dashed. `nodes` may hold nodes the definition
/// does not (they are drawn without edges) and may miss nodes (drawn Pending).
pub fn serialize_run_to_dot(def: &WorkflowDef, nodes: &[NodeRunView]) -> String {
    let views: HashMap<&str, &NodeRunView> =
        nodes.iter().map(|v| (v.node_id.as_str(), v)).collect();
    let mut w = start(def);
    let mut drawn: HashSet<&str> = HashSet::with_capacity(def.nodes.len());
    for node in &def.nodes {
        drawn.insert(node.id.as_str());
        let view = views.get(node.id.as_str()).copied();
        run_node(&mut w, definition_label(node), &node.id, view);
    }
    for view in nodes {
        if !drawn.contains(view.node_id.as_str()) {
            run_node(
                &mut w,
                vec![view.node_id.to_string()],
                view.node_id.as_str(),
                Some(view),
            );
        }
    }
    edges(&mut w, def);
    w.finish()
}

fn run_node(w: &mut DotWriter, mut label: Vec<String>, id: &str, view: Option<&NodeRunView>) {
    let status = view.map_or(NodeStatus::Pending, |v| v.status);
    let mut line = status.as_str().to_string();
    if let Some(v) = view {
        line.push_str(&format!(" · attempts {}", v.attempts));
        if let Some(ms) = v.duration_ms {
            line.push_str(&format!(" · {ms} ms"));
        }
    }
    label.push(line);
    if let Some(v) = view {
        if let Some(e) = &v.error {
            label.push(format!("error: {}", shorten(e)));
        }
        if let Some(r) = &v.reason {
            label.push(format!("reason: {}", shorten(r)));
        }
    }
    let style = if view.is_some_and(|v| v.added_at_runtime) {
        "rounded,filled,dashed"
    } else {
        "rounded,filled"
    };
    w.node(
        id,
        &[
            ("label", &label.join("\n")),
            ("fillcolor", status_colour(status)),
            ("style", style),
        ],
    );
}
