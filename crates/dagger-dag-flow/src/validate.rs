//! Semantic checks of workflow definitions: ids, dependencies, cycles,
//! references and config values. They run on the typed model, so they serve
//! YAML files (with positions from the loader), definitions built in code, and
//! nodes a running workflow grows (`validate_added_nodes`).
//!
//! The checks of nodes added at run time are in `growth.rs`.
//!
//! Every walk over the graph is iterative (an explicit stack), so a chain of
//! a million nodes needs no more call stack than a chain of three.
//!
//! Cost is O(nodes + edges) for everything except a reference to a node that
//! is not a direct dependency: per referenced node, either one walk down from
//! it or one walk up from each referrer, whichever spans fewer nodes of the
//! topological order, and no walk leaves the span between the two.

use crate::action::ActionRegistry;
use crate::config::DagConfig;
use crate::error::{LoadErrors, LoadIssue, LoadIssueKind};
use crate::model::{NodeDef, WorkflowDef};
use crate::run_inputs::closest_name as closest;
use crate::yaml::Pos;
use dagger_core::InputSpec;
use petgraph::Direction;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};

pub use crate::growth::{validate_added_nodes, validate_added_nodes_with};

/// A problem and its position, before the file name is attached.
pub(crate) type Found = (Option<Pos>, LoadIssueKind);

/// The namespace of run inputs in references (`inputs.<key>`).
const INPUTS_NAMESPACE: &str = "inputs";

/// Where the parts of a workflow are in its file. Empty for definitions
/// that do not come from a file.
#[derive(Debug, Default)]
pub(crate) struct WorkflowLocations {
    pub(crate) root: Option<Pos>,
    pub(crate) name: Option<Pos>,
    pub(crate) nodes_key: Option<Pos>,
    pub(crate) config: Option<Pos>,
    /// Config field name -> position of its value.
    pub(crate) config_fields: HashMap<String, Pos>,
    pub(crate) nodes: Vec<NodeLocations>,
    /// The `inputs:` key.
    pub(crate) inputs_key: Option<Pos>,
    /// The declared run inputs, in order.
    pub(crate) run_inputs: Vec<RunInputLocations>,
    /// The loader already reported `name` / `nodes` missing or malformed.
    pub(crate) name_reported: bool,
    pub(crate) nodes_reported: bool,
}

/// Where the parts of one node are.
#[derive(Debug, Default)]
pub(crate) struct NodeLocations {
    pub(crate) entry: Option<Pos>,
    pub(crate) id: Option<Pos>,
    pub(crate) action: Option<Pos>,
    pub(crate) failure: Option<Pos>,
    pub(crate) timeout: Option<Pos>,
    pub(crate) try_count: Option<Pos>,
    pub(crate) map_over: Option<Pos>,
    pub(crate) when: Option<Pos>,
    /// `sleep`, `wait_until` or `wait_for`.
    pub(crate) wait: Option<Pos>,
    pub(crate) dependencies: Vec<Option<Pos>>,
    pub(crate) inputs: Vec<InputLocations>,
    pub(crate) outputs: Vec<Option<Pos>>,
    /// The loader already reported `id` / `action` missing or malformed.
    pub(crate) id_reported: bool,
    pub(crate) action_reported: bool,
}

/// Where the parts of one declared run input are.
#[derive(Debug, Default)]
pub(crate) struct RunInputLocations {
    pub(crate) entry: Option<Pos>,
    pub(crate) name: Option<Pos>,
    pub(crate) kind: Option<Pos>,
    pub(crate) schema: Option<Pos>,
    pub(crate) default: Option<Pos>,
}

/// Where the parts of one input are.
#[derive(Debug, Default)]
pub(crate) struct InputLocations {
    pub(crate) entry: Option<Pos>,
    pub(crate) name: Option<Pos>,
    pub(crate) reference: Option<Pos>,
    pub(crate) name_reported: bool,
}

fn node_loc(locs: &WorkflowLocations, i: usize) -> Option<&NodeLocations> {
    locs.nodes.get(i)
}

/// Checks a definition built in code (no positions). `source` names it in the issues.
pub fn validate_workflow(def: &WorkflowDef, source: &str) -> Result<(), LoadErrors> {
    let found = check_workflow(def, &WorkflowLocations::default());
    if found.is_empty() {
        Ok(())
    } else {
        Err(LoadErrors(attach(source, found)))
    }
}

/// Attaches the file name to found problems, in file order.
pub(crate) fn attach(file: &str, mut found: Vec<Found>) -> Vec<LoadIssue> {
    // Issues without a position go last; the sort is stable, so discovery
    // order breaks ties.
    found.sort_by_key(|(pos, _)| pos.map_or((usize::MAX, usize::MAX), |p| (p.line, p.column)));
    found
        .into_iter()
        .map(|(pos, kind)| LoadIssue {
            file: file.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            kind,
        })
        .collect()
}

/// Every semantic problem of `def`.
pub(crate) fn check_workflow(def: &WorkflowDef, locs: &WorkflowLocations) -> Vec<Found> {
    let mut out = Vec::new();
    if !locs.name_reported && def.name.trim().is_empty() {
        out.push((
            locs.name.or(locs.root),
            LoadIssueKind::EmptyValue {
                context: "workflow".into(),
                field: "name",
            },
        ));
    }
    if !locs.nodes_reported && def.nodes.is_empty() {
        out.push((locs.nodes_key.or(locs.root), LoadIssueKind::NoNodes));
    }
    if let Some(config) = &def.config {
        for (field, message) in config.apply(&DagConfig::default()).problems() {
            let pos = locs.config_fields.get(field).copied().or(locs.config);
            out.push((pos, LoadIssueKind::InvalidConfig { field, message }));
        }
    }
    for (i, node) in def.nodes.iter().enumerate() {
        check_node(i, node, node_loc(locs, i), &mut out);
    }
    check_graph(&def.nodes, locs, &mut out);
    crate::run_inputs::check_declarations(def, locs, &mut out);
    out
}

/// Every `action` and `failure` of `def` that `registry` does not hold.
pub(crate) fn check_actions(
    def: &WorkflowDef,
    locs: &WorkflowLocations,
    registry: &ActionRegistry,
) -> Vec<Found> {
    let mut out = Vec::new();
    let mut known: Option<String> = None;
    for (i, node) in def.nodes.iter().enumerate() {
        let loc = node_loc(locs, i);
        let named = [
            (
                "action",
                Some(node.action.as_str()),
                loc.and_then(|l| l.action),
            ),
            (
                "failure",
                node.failure.as_deref(),
                loc.and_then(|l| l.failure),
            ),
        ];
        for (field, action, pos) in named {
            let Some(action) = action.filter(|a| !a.trim().is_empty()) else {
                continue; // absent or blank: reported by the field checks
            };
            if registry.contains(action) {
                continue;
            }
            let known = known
                .get_or_insert_with(|| {
                    let names = registry.names();
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                })
                .clone();
            out.push((
                pos.or(loc.and_then(|l| l.entry)),
                LoadIssueKind::UnknownAction {
                    node: display_id(i, node),
                    field,
                    action: action.to_string(),
                    known,
                    suggestion: closest(action, registry.names().iter().map(String::as_str)),
                },
            ));
        }
    }
    out
}

/// The name of node `i` in messages: its id, or `#n` when it has none.
pub(crate) fn display_id(i: usize, node: &NodeDef) -> String {
    if node.id.trim().is_empty() {
        format!("#{}", i + 1)
    } else {
        node.id.clone()
    }
}

/// Checks of one node that need no other node.
pub(crate) fn check_node(
    i: usize,
    node: &NodeDef,
    loc: Option<&NodeLocations>,
    out: &mut Vec<Found>,
) {
    let name = display_id(i, node);
    let entry = loc.and_then(|l| l.entry);
    let context = || format!("node `{name}`");
    if !loc.is_some_and(|l| l.id_reported) {
        let pos = loc.and_then(|l| l.id).or(entry);
        if node.id.trim().is_empty() {
            out.push((
                pos,
                LoadIssueKind::EmptyValue {
                    context: context(),
                    field: "id",
                },
            ));
        } else if let Some(reason) = id_problem(&node.id) {
            out.push((
                pos,
                LoadIssueKind::InvalidNodeId {
                    id: node.id.clone(),
                    reason,
                },
            ));
        }
    }
    for (field, message) in crate::wait::problems(node) {
        let pos = match field {
            "action" => loc.and_then(|l| l.action),
            _ => loc.and_then(|l| l.wait),
        };
        out.push((
            pos.or(entry),
            LoadIssueKind::WrongType {
                context: context(),
                field: field.to_string(),
                message,
            },
        ));
    }
    if !loc.is_some_and(|l| l.action_reported) && node.action.trim().is_empty() && !node.is_wait() {
        out.push((
            loc.and_then(|l| l.action).or(entry),
            LoadIssueKind::EmptyValue {
                context: context(),
                field: "action",
            },
        ));
    }
    if node.failure.as_deref().is_some_and(|f| f.trim().is_empty()) {
        out.push((
            loc.and_then(|l| l.failure).or(entry),
            LoadIssueKind::EmptyValue {
                context: context(),
                field: "failure",
            },
        ));
    }
    if let Some(t) = node.timeout
        && !(t.is_finite() && t > 0.0)
    {
        out.push((
            loc.and_then(|l| l.timeout).or(entry),
            LoadIssueKind::InvalidNodeValue {
                node: name.clone(),
                field: "timeout",
                message: format!("must be a positive number of seconds, got {t}"),
            },
        ));
    }
    if node.try_count == Some(0) {
        out.push((
            loc.and_then(|l| l.try_count).or(entry),
            LoadIssueKind::InvalidNodeValue {
                node: name.clone(),
                field: "try_count",
                message: "must be at least 1".into(),
            },
        ));
    }
    let mut seen_deps = HashSet::with_capacity(node.dependencies.len());
    for (j, dep) in node.dependencies.iter().enumerate() {
        let pos = loc
            .and_then(|l| l.dependencies.get(j).copied().flatten())
            .or(entry);
        if *dep == node.id {
            out.push((pos, LoadIssueKind::SelfDependency { node: name.clone() }));
        } else if !seen_deps.insert(dep.as_str()) {
            out.push((
                pos,
                LoadIssueKind::DuplicateDependency {
                    node: name.clone(),
                    dependency: dep.clone(),
                },
            ));
        }
    }
    check_inputs(&name, node, loc, out);
    let mut seen_outputs = HashSet::with_capacity(node.outputs.len());
    for (j, output) in node.outputs.iter().enumerate() {
        let pos = loc
            .and_then(|l| l.outputs.get(j).copied().flatten())
            .or(entry);
        if output.name.trim().is_empty() {
            out.push((
                pos,
                LoadIssueKind::EmptyValue {
                    context: format!("node `{name}`, output #{}", j + 1),
                    field: "name",
                },
            ));
        } else if !seen_outputs.insert(output.name.as_str()) {
            out.push((
                pos,
                LoadIssueKind::DuplicateOutput {
                    node: name.clone(),
                    output: output.name.clone(),
                },
            ));
        }
    }
}

fn check_inputs(name: &str, node: &NodeDef, loc: Option<&NodeLocations>, out: &mut Vec<Found>) {
    let entry = loc.and_then(|l| l.entry);
    let mut seen = HashSet::with_capacity(node.inputs.len());
    for (j, input) in node.inputs.iter().enumerate() {
        let iloc = loc.and_then(|l| l.inputs.get(j));
        let pos = iloc.and_then(|l| l.entry).or(entry);
        let label = if input.name.trim().is_empty() {
            format!("#{}", j + 1)
        } else {
            input.name.clone()
        };
        if !iloc.is_some_and(|l| l.name_reported) {
            if input.name.trim().is_empty() {
                out.push((
                    iloc.and_then(|l| l.name).or(pos),
                    LoadIssueKind::EmptyValue {
                        context: format!("node `{name}`, input {label}"),
                        field: "name",
                    },
                ));
            } else if !seen.insert(input.name.as_str()) {
                out.push((
                    iloc.and_then(|l| l.name).or(pos),
                    LoadIssueKind::DuplicateInput {
                        node: name.to_string(),
                        input: input.name.clone(),
                    },
                ));
            }
        }
        match (&input.reference, &input.value) {
            (Some(_), Some(_)) => out.push((
                pos,
                LoadIssueKind::InputWithBothSources {
                    node: name.to_string(),
                    input: label,
                },
            )),
            (None, None) => out.push((
                pos,
                LoadIssueKind::InputWithoutSource {
                    node: name.to_string(),
                    input: label,
                },
            )),
            _ => {}
        }
    }
}

/// Why `id` cannot be a node id, if it cannot.
fn id_problem(id: &str) -> Option<&'static str> {
    if id == INPUTS_NAMESPACE {
        Some("is reserved: references `inputs.<key>` name the run's inputs")
    } else if id.contains('.') {
        Some("must not contain `.`: references `<node_id>.<output>` split at the first dot")
    } else {
        None
    }
}

/// A reference a node makes, and where.
pub(crate) struct RefSite<'a> {
    pub(crate) site: String,
    pub(crate) reference: &'a str,
    pub(crate) pos: Option<Pos>,
}

/// Every reference of `node`: inputs, `map_over`, `when`.
pub(crate) fn references<'a>(node: &'a NodeDef, loc: Option<&NodeLocations>) -> Vec<RefSite<'a>> {
    let entry = loc.and_then(|l| l.entry);
    let mut refs = Vec::new();
    for (j, input) in node.inputs.iter().enumerate() {
        if let InputSpec {
            reference: Some(reference),
            ..
        } = input
        {
            let iloc = loc.and_then(|l| l.inputs.get(j));
            refs.push(RefSite {
                site: format!("input `{}`", input.name),
                reference,
                pos: iloc.and_then(|l| l.reference.or(l.entry)).or(entry),
            });
        }
    }
    if let Some(reference) = &node.map_over {
        refs.push(RefSite {
            site: "`map_over`".into(),
            reference,
            pos: loc.and_then(|l| l.map_over).or(entry),
        });
    }
    if let Some(reference) = &node.when {
        refs.push(RefSite {
            site: "`when`".into(),
            reference,
            pos: loc.and_then(|l| l.when).or(entry),
        });
    }
    refs
}

/// What a reference names: run inputs, a node id, or nothing valid.
pub(crate) enum RefTarget<'a> {
    RunInput,
    Node(&'a str),
    Malformed,
}

pub(crate) fn ref_target(reference: &str) -> RefTarget<'_> {
    match InputSpec::split_reference(reference) {
        None => RefTarget::Malformed,
        Some((INPUTS_NAMESPACE, _)) => RefTarget::RunInput,
        Some((node, _)) => RefTarget::Node(node),
    }
}

/// Dependencies, cycles and references across the nodes of one workflow.
fn check_graph(nodes: &[NodeDef], locs: &WorkflowLocations, out: &mut Vec<Found>) {
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
    let mut index: HashMap<&str, NodeIndex> = HashMap::with_capacity(nodes.len());
    let handles: Vec<NodeIndex> = (0..nodes.len()).map(|i| graph.add_node(i)).collect();
    for (i, node) in nodes.iter().enumerate() {
        let loc = node_loc(locs, i);
        if node.id.trim().is_empty() || loc.is_some_and(|l| l.id_reported) {
            continue;
        }
        // The first definition keeps the id; later ones are reported.
        match index.entry(node.id.as_str()) {
            Entry::Occupied(_) => out.push((
                loc.and_then(|l| l.id.or(l.entry)),
                LoadIssueKind::DuplicateNodeId {
                    id: node.id.clone(),
                },
            )),
            Entry::Vacant(slot) => {
                slot.insert(handles[i]);
            }
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let loc = node_loc(locs, i);
        let mut seen = HashSet::with_capacity(node.dependencies.len());
        for (j, dep) in node.dependencies.iter().enumerate() {
            if *dep == node.id || !seen.insert(dep.as_str()) {
                continue; // reported by check_node
            }
            match index.get(dep.as_str()) {
                Some(&from) => {
                    graph.add_edge(from, handles[i], ());
                }
                None => out.push((
                    loc.and_then(|l| l.dependencies.get(j).copied().flatten())
                        .or(loc.and_then(|l| l.entry)),
                    LoadIssueKind::MissingDependency {
                        node: display_id(i, node),
                        dependency: dep.clone(),
                        suggestion: closest(dep, index.keys().copied()),
                    },
                )),
            }
        }
    }
    let sccs = kosaraju_scc(&graph);
    for cycle in cycles_in(&graph, &sccs) {
        let ids: Vec<usize> = cycle.iter().map(|h| graph[*h]).collect();
        out.push(cycle_issue(nodes, &ids, |i, j| {
            node_loc(locs, i).and_then(|l| l.dependencies.get(j).copied().flatten())
        }));
    }
    // References to nodes that are not direct dependencies, checked together
    // per referenced node so that many referrers of one node cost one walk.
    let mut indirect: Vec<(usize, RefSite<'_>, &str, NodeIndex)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for r in references(node, node_loc(locs, i)) {
            let target = match ref_target(r.reference) {
                RefTarget::RunInput => continue,
                RefTarget::Malformed => {
                    out.push((r.pos, malformed(i, node, &r)));
                    continue;
                }
                RefTarget::Node(target) => target,
            };
            let Some(&t) = index.get(target) else {
                let suggestion = closest(target, index.keys().copied());
                out.push((r.pos, unknown_target(i, node, &r, target, suggestion)));
                continue;
            };
            let direct = node.dependencies.iter().any(|d| d == target) && target != node.id;
            if !direct {
                indirect.push((i, r, target, t));
            }
        }
    }
    if indirect.is_empty() {
        return;
    }
    let mut reach = Reach::new(&graph, &sccs);
    let queries: Vec<(NodeIndex, NodeIndex)> = indirect
        .iter()
        .map(|(i, _, _, t)| (handles[*i], *t))
        .collect();
    let answers = reach.ancestors(&graph, &queries);
    for ((i, r, target, _), is_ancestor) in indirect.into_iter().zip(answers) {
        if !is_ancestor {
            out.push((r.pos, non_ancestor(i, &nodes[i], &r, target)));
        }
    }
}

pub(crate) fn malformed(i: usize, node: &NodeDef, r: &RefSite<'_>) -> LoadIssueKind {
    LoadIssueKind::MalformedReference {
        node: display_id(i, node),
        site: r.site.clone(),
        reference: r.reference.to_string(),
    }
}

pub(crate) fn unknown_target(
    i: usize,
    node: &NodeDef,
    r: &RefSite<'_>,
    target: &str,
    suggestion: Option<String>,
) -> LoadIssueKind {
    LoadIssueKind::UnknownReferenceTarget {
        node: display_id(i, node),
        site: r.site.clone(),
        reference: r.reference.to_string(),
        target: target.to_string(),
        suggestion,
    }
}

pub(crate) fn non_ancestor(
    i: usize,
    node: &NodeDef,
    r: &RefSite<'_>,
    target: &str,
) -> LoadIssueKind {
    LoadIssueKind::NonAncestorReference {
        node: display_id(i, node),
        site: r.site.clone(),
        reference: r.reference.to_string(),
        target: target.to_string(),
    }
}

/// The cycle issue for the closed path `ids` (indices into `nodes`, first
/// repeated at the end), located at the dependency entry that closes it.
pub(crate) fn cycle_issue(
    nodes: &[NodeDef],
    ids: &[usize],
    dep_pos: impl Fn(usize, usize) -> Option<Pos>,
) -> Found {
    let path: Vec<String> = ids.iter().map(|&i| nodes[i].id.clone()).collect();
    // The last edge is `ids[len-2] -> ids[0]`: ids[0] depends on ids[len-2].
    let closing = (ids.len() >= 2)
        .then(|| {
            let (start, prev) = (ids[0], ids[ids.len() - 2]);
            let j = nodes[start]
                .dependencies
                .iter()
                .position(|d| *d == nodes[prev].id)?;
            dep_pos(start, j)
        })
        .flatten();
    (closing, LoadIssueKind::Cycle { path })
}

/// One closed path per cyclic strongly connected component, starting at the
/// component's first node in definition order (edges run dependency -> dependent).
pub(crate) fn cycles(graph: &DiGraph<usize, ()>) -> Vec<Vec<NodeIndex>> {
    cycles_in(graph, &kosaraju_scc(graph))
}

/// [`cycles`] given the graph's strongly connected components. (petgraph's
/// `kosaraju_scc` is iterative; its `tarjan_scc` recurses once per node of a
/// path and overflowed the stack on a 100,000-node chain.)
fn cycles_in(graph: &DiGraph<usize, ()>, sccs: &[Vec<NodeIndex>]) -> Vec<Vec<NodeIndex>> {
    let mut found = Vec::new();
    for scc in sccs {
        if scc.len() < 2 {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.iter().min_by_key(|h| graph[**h]) else {
            continue;
        };
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        'bfs: while let Some(u) = queue.pop_front() {
            // Visit successors in definition order for a deterministic path.
            let mut next: Vec<NodeIndex> = graph
                .neighbors_directed(u, Direction::Outgoing)
                .filter(|w| members.contains(w))
                .collect();
            next.sort_by_key(|w| graph[*w]);
            for w in next {
                if w == start {
                    let mut path = vec![u];
                    let mut cur = u;
                    while let Some(&p) = parent.get(&cur) {
                        path.push(p);
                        cur = p;
                    }
                    path.reverse();
                    path.push(start);
                    found.push(path);
                    break 'bfs;
                }
                if w != start && !parent.contains_key(&w) {
                    parent.insert(w, u);
                    queue.push_back(w);
                }
            }
        }
    }
    found.sort_by_key(|p| graph[p[0]]);
    found
}

/// Answers "is `t` an ancestor of `n`" for many pairs by bounded iterative
/// walks. `rank` is each node's position in a topological order of the
/// strongly connected components, so an ancestor never ranks above its
/// descendant and no walk needs to leave the rank span of a query.
struct Reach {
    rank: Vec<usize>,
    mark: Vec<u32>,
    stamp: u32,
    stack: Vec<NodeIndex>,
}

impl Reach {
    fn new(graph: &DiGraph<usize, ()>, sccs: &[Vec<NodeIndex>]) -> Self {
        let mut rank = vec![0; graph.node_count()];
        // `kosaraju_scc` lists components in reverse topological order.
        for (k, scc) in sccs.iter().enumerate() {
            for h in scc {
                rank[h.index()] = sccs.len() - 1 - k;
            }
        }
        Self {
            rank,
            mark: vec![0; graph.node_count()],
            stamp: 0,
            stack: Vec::new(),
        }
    }

    /// For each `(n, t)`: whether `t` is a (strict) ancestor of `n`.
    fn ancestors(
        &mut self,
        graph: &DiGraph<usize, ()>,
        queries: &[(NodeIndex, NodeIndex)],
    ) -> Vec<bool> {
        let mut answers = vec![false; queries.len()];
        let mut by_target: HashMap<NodeIndex, Vec<usize>> = HashMap::new();
        for (q, &(n, t)) in queries.iter().enumerate() {
            // `n` is never its own ancestor here (a cycle is reported apart),
            // and nothing ranking above `n` can be its ancestor.
            if n != t && self.rank[t.index()] <= self.rank[n.index()] {
                by_target.entry(t).or_default().push(q);
            }
        }
        for (t, qs) in by_target {
            let lo = self.rank[t.index()];
            let up: usize = qs
                .iter()
                .map(|&q| self.rank[queries[q].0.index()] - lo + 1)
                .sum();
            let hi = qs
                .iter()
                .map(|&q| self.rank[queries[q].0.index()])
                .max()
                .unwrap_or(lo);
            if up <= hi - lo + 1 {
                // Few, close referrers: walk up from each until `t` is seen.
                for q in qs {
                    let n = queries[q].0;
                    answers[q] = self.walk(graph, n, Direction::Incoming, lo, hi, Some(t));
                }
            } else {
                // Many or distant referrers: mark `t`'s descendants once.
                self.walk(graph, t, Direction::Outgoing, lo, hi, None);
                for q in qs {
                    answers[q] = self.mark[queries[q].0.index()] == self.stamp;
                }
            }
        }
        answers
    }

    /// Marks (with a fresh stamp) the nodes reachable from `from` along `dir`
    /// whose rank lies in `lo..=hi`; stops early, returning true, on reaching
    /// `stop`.
    fn walk(
        &mut self,
        graph: &DiGraph<usize, ()>,
        from: NodeIndex,
        dir: Direction,
        lo: usize,
        hi: usize,
        stop: Option<NodeIndex>,
    ) -> bool {
        self.stamp += 1;
        self.stack.clear();
        self.stack.push(from);
        while let Some(u) = self.stack.pop() {
            for p in graph.neighbors_directed(u, dir) {
                if Some(p) == stop {
                    return true;
                }
                let r = self.rank[p.index()];
                if r >= lo && r <= hi && self.mark[p.index()] != self.stamp {
                    self.mark[p.index()] = self.stamp;
                    self.stack.push(p);
                }
            }
        }
        false
    }
}
