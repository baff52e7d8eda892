//! Checks of the nodes a running workflow grows by (the coordinator's
//! `AddNode` / `AddNodes`): cheap, because the existing graph is known to be
//! valid, so only the added nodes and the paths up from them are examined.

use crate::error::{LoadIssue, LoadIssueKind};
use crate::model::{NodeDef, WorkflowDef};
use crate::run_inputs::closest_name as closest;
use crate::validate::{
    RefTarget, attach, check_node, cycle_issue, cycles, display_id, malformed, non_ancestor,
    ref_target, references, unknown_target,
};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{HashMap, HashSet};

/// Checks nodes a running workflow is about to grow by: their own fields,
/// duplicate ids, unknown dependencies, cycles among them, and references to
/// nodes that are not their ancestors. `existing` is assumed valid. Costs
/// O(existing nodes) to index them; see [`validate_added_nodes_with`] to
/// reuse an index.
pub fn validate_added_nodes(
    existing: &WorkflowDef,
    added: &[NodeDef],
) -> Result<(), Vec<LoadIssue>> {
    let index: HashMap<&str, &NodeDef> =
        existing.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    validate_added_nodes_with(|id| index.get(id).copied(), added)
}

/// [`validate_added_nodes`] with the existing nodes given by a lookup by id,
/// so a caller that keeps an index pays only for the added nodes (and for
/// walks up the graph when a reference is not a direct dependency).
pub fn validate_added_nodes_with<'a>(
    existing: impl Fn(&str) -> Option<&'a NodeDef>,
    added: &'a [NodeDef],
) -> Result<(), Vec<LoadIssue>> {
    let mut out = Vec::new();
    let mut batch: HashMap<&str, usize> = HashMap::with_capacity(added.len());
    for (i, node) in added.iter().enumerate() {
        check_node(i, node, None, &mut out);
        if node.id.trim().is_empty() {
            continue;
        }
        if existing(&node.id).is_some() || batch.insert(node.id.as_str(), i).is_some() {
            out.push((
                None,
                LoadIssueKind::DuplicateNodeId {
                    id: node.id.clone(),
                },
            ));
        }
    }
    let lookup = |id: &str| -> Option<&'a NodeDef> {
        batch.get(id).map(|&i| &added[i]).or_else(|| existing(id))
    };
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(added.len(), added.len());
    let handles: Vec<NodeIndex> = (0..added.len()).map(|i| graph.add_node(i)).collect();
    for (i, node) in added.iter().enumerate() {
        for dep in &node.dependencies {
            if *dep == node.id {
                continue;
            }
            if let Some(&j) = batch.get(dep.as_str()) {
                graph.update_edge(handles[j], handles[i], ());
            } else if existing(dep).is_none() {
                out.push((
                    None,
                    LoadIssueKind::MissingDependency {
                        node: display_id(i, node),
                        dependency: dep.clone(),
                        suggestion: closest(dep, batch.keys().copied()),
                    },
                ));
            }
        }
    }
    for cycle in cycles(&graph) {
        let ids: Vec<usize> = cycle.iter().map(|h| graph[*h]).collect();
        out.push(cycle_issue(added, &ids, |_, _| None));
    }
    for (i, node) in added.iter().enumerate() {
        for r in references(node, None) {
            let target = match ref_target(r.reference) {
                RefTarget::RunInput => continue,
                RefTarget::Malformed => {
                    out.push((None, malformed(i, node, &r)));
                    continue;
                }
                RefTarget::Node(target) => target,
            };
            if lookup(target).is_none() {
                let suggestion = closest(target, batch.keys().copied());
                out.push((None, unknown_target(i, node, &r, target, suggestion)));
            } else if target == node.id || !reaches_up(node, target, &lookup) {
                out.push((None, non_ancestor(i, node, &r, target)));
            }
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(attach("<added nodes>", out))
    }
}

/// Whether `target` is among the transitive dependencies of `node`.
fn reaches_up<'a>(
    node: &'a NodeDef,
    target: &str,
    lookup: &impl Fn(&str) -> Option<&'a NodeDef>,
) -> bool {
    if node.dependencies.iter().any(|d| d == target) {
        return true;
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = node.dependencies.iter().map(String::as_str).collect();
    while let Some(id) = stack.pop() {
        if id == target {
            return true;
        }
        if !seen.insert(id) {
            continue;
        }
        if let Some(n) = lookup(id) {
            stack.extend(n.dependencies.iter().map(String::as_str));
        }
    }
    false
}
