//! Run and workflow graphs drawn as SVG with `layout-rs`.
//!
//! The graph is built through layout-rs's graph API rather than by parsing
//! our DOT (which it can parse): its DOT builder ignores compound styles
//! (`rounded,filled,dashed`) and cannot tag an element, while the API lets
//! each node's `<g>` carry its status class and index, so the page recolours
//! nodes live from server-sent events without a new layout. Labels are
//! escaped by layout-rs's SVG writer; the attributes we add hold only
//! numbers and status names.

use dagger_dag_flow::WorkflowDef;
use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::StyleAttr;
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::HashMap;

/// Above this many nodes the graph is not drawn (the table stays): a larger
/// layered drawing is no longer legible on a screen.
pub const MAX_GRAPH_NODES: usize = 200;

/// Longest node id shown in a graph box, in characters.
const MAX_LABEL_CHARS: usize = 40;

/// What one box of the graph shows.
pub(crate) struct GraphNode<'a> {
    pub(crate) id: &'a str,
    /// The second line: the action, or the agent of a task.
    pub(crate) action: &'a str,
    /// A status name (`Completed`, `InProgress`...); `None` for a definition.
    pub(crate) status: Option<&'static str>,
    pub(crate) added_at_runtime: bool,
}

/// The edges of `def` as (dependency, dependent) positions in `def.nodes`.
pub(crate) fn def_edges(def: &WorkflowDef) -> Vec<(usize, usize)> {
    let index: HashMap<&str, usize> = def
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    def.nodes
        .iter()
        .enumerate()
        .flat_map(|(to, n)| {
            n.dependencies
                .iter()
                .filter_map(|d| index.get(d.as_str()).map(|from| (*from, to)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Why no graph is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoGraph {
    /// The workflow has no nodes.
    Empty,
    /// More than [`MAX_GRAPH_NODES`] nodes.
    TooLarge(usize),
    /// The layout engine failed on this graph.
    LayoutFailed,
}

impl std::fmt::Display for NoGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("the workflow has no nodes"),
            Self::TooLarge(n) => write!(
                f,
                "the graph has {n} nodes, more than the {MAX_GRAPH_NODES} that can be drawn legibly; see the table"
            ),
            Self::LayoutFailed => f.write_str("the graph could not be laid out; see the table"),
        }
    }
}

/// The fill of a status (the page's CSS repeats it per status class, so a
/// live update only changes the class).
pub(crate) fn status_fill(status: Option<&str>) -> &'static str {
    match status.unwrap_or("Pending") {
        "Ready" => "#ffffe0",
        "Running" | "InProgress" => "#add8e6",
        "Retrying" | "Blocked" => "#ffa500",
        "Paused" => "#f0e68c",
        "WaitingForHuman" => "#dda0dd",
        "Waiting" => "#e6e6fa",
        "Completed" | "Accepted" | "Succeeded" => "#98fb98",
        "Failed" | "Rejected" => "#fa8072",
        "Skipped" => "#d3d3d3",
        "Cancelled" => "#a9a9a9",
        _ => "#ffffff",
    }
}

fn short(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_LABEL_CHARS).collect();
    if text.chars().nth(MAX_LABEL_CHARS).is_some() {
        out.push('…');
    }
    // One line per label line: an id holding line breaks must not add lines.
    out.replace(['\n', '\r'], " ")
}

/// The SVG of `nodes` with `edges` (pairs of positions in `nodes`, from a
/// dependency to its dependent).
pub(crate) fn render(nodes: &[GraphNode<'_>], edges: &[(usize, usize)]) -> Result<String, NoGraph> {
    if nodes.is_empty() {
        return Err(NoGraph::Empty);
    }
    if nodes.len() > MAX_GRAPH_NODES {
        return Err(NoGraph::TooLarge(nodes.len()));
    }
    let dir = Orientation::TopToBottom;
    let mut vg = VisualGraph::new(dir);
    let mut handles = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let mut label = format!("{}\n{}", short(n.id), short(n.action));
        if n.added_at_runtime {
            label.push_str("\n(added at run time)");
        }
        let shape = ShapeKind::new_box(&label);
        let look = StyleAttr::new(
            Color::fast("#333333"),
            1,
            Some(Color::fast(status_fill(n.status))),
            6,
            13,
        );
        let size = get_shape_size(dir.flip(), &shape, 13, false);
        let status = n.status.unwrap_or("def");
        let added = if n.added_at_runtime { " added" } else { "" };
        let props = format!("class=\"gnode s-{status}{added}\" data-i=\"{i}\"");
        let element = Element::create_with_properties(shape, look, dir.flip(), size, props);
        handles.push(vg.add_node(element));
    }
    for (from, to) in edges {
        if let (Some(f), Some(t)) = (handles.get(*from), handles.get(*to)) {
            vg.add_edge(Arrow::simple(""), *f, *t);
        }
    }
    // layout-rs asserts internal invariants; a failure there must cost the
    // drawing, not the request.
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut svg = SVGWriter::new();
        vg.do_it(false, false, false, &mut svg);
        svg.finalize()
    }));
    let svg = drawn.map_err(|_| NoGraph::LayoutFailed)?;
    // Inline in HTML: drop the XML declaration.
    let start = svg.find("<svg").ok_or(NoGraph::LayoutFailed)?;
    Ok(fit_to_boxes(&svg[start..]))
}

/// The value of attribute `name` in `tag` (the text of one element's start tag).
fn attr(tag: &str, name: &str) -> Option<f64> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[at..].split('"').next()?.trim().parse().ok()
}

/// layout-rs sizes the canvas from each label's length as if it were drawn
/// vertically, which leaves a wide empty margin; this sets the canvas to the
/// boxes' extent instead.
fn fit_to_boxes(svg: &str) -> String {
    let (mut width, mut height) = (0f64, 0f64);
    for piece in svg.split("<rect").skip(1) {
        let tag = piece.split('>').next().unwrap_or_default();
        let x = attr(tag, "x").unwrap_or(0.0) + attr(tag, "width").unwrap_or(0.0);
        let y = attr(tag, "y").unwrap_or(0.0) + attr(tag, "height").unwrap_or(0.0);
        width = width.max(x);
        height = height.max(y);
    }
    let Some(header_end) = svg.find('>') else {
        return svg.to_string();
    };
    if width <= 0.0 || height <= 0.0 {
        return svg.to_string();
    }
    let (w, h) = ((width + 20.0).ceil(), (height + 20.0).ceil());
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">{}",
        &svg[header_end + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagger_dag_flow::NodeDef;

    fn def(ids: &[(&str, &[&str])]) -> WorkflowDef {
        WorkflowDef {
            name: "w".into(),
            description: None,
            author: None,
            version: None,
            signature: None,
            tags: vec![],
            config: None,
            inputs: None,
            schedules: Vec::new(),
            nodes: ids
                .iter()
                .map(|(id, deps)| NodeDef {
                    id: id.to_string(),
                    action: "echo".into(),
                    dependencies: deps.iter().map(|d| d.to_string()).collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn nodes(def: &WorkflowDef) -> Vec<GraphNode<'_>> {
        def.nodes
            .iter()
            .map(|n| GraphNode {
                id: &n.id,
                action: &n.action,
                status: Some("Completed"),
                added_at_runtime: n.id == "c",
            })
            .collect()
    }

    #[test]
    fn draws_boxes_edges_and_classes() {
        let d = def(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]);
        let svg = render(&nodes(&d), &def_edges(&d)).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("class=\"gnode s-Completed\"").count(), 2);
        assert_eq!(svg.matches("class=\"gnode s-Completed added\"").count(), 1);
        assert!(svg.contains("data-i=\"2\""));
        assert!(svg.contains("(added at run time)"));
        assert_eq!(svg.matches("marker-end=\"url(#endarrow)\"").count(), 3);
    }

    #[test]
    fn the_canvas_fits_the_boxes() {
        let d = def(&[
            ("a", &[]),
            ("a_node_with_a_rather_long_identifier_here", &["a"]),
        ]);
        let svg = render(&nodes(&d), &def_edges(&d)).unwrap();
        let header = svg.split('>').next().unwrap();
        let h = attr(header, "height").unwrap();
        assert!(
            h < 300.0,
            "two boxes stacked fit in 300 px, not {h}: {header}"
        );
        assert!(header.contains("viewBox=\"0 0 "), "{header}");
    }

    #[test]
    fn labels_are_escaped() {
        let d = def(&[("<script>alert(1)</script>", &[]), ("b\"&'", &[])]);
        let svg = render(&nodes(&d), &def_edges(&d)).unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("b&quot;&amp;&apos;"));
    }

    #[test]
    fn too_many_nodes_or_none_give_no_graph() {
        let ids: Vec<String> = (0..=MAX_GRAPH_NODES).map(|i| format!("n{i}")).collect();
        let pairs: Vec<(&str, &[&str])> = ids.iter().map(|s| (s.as_str(), &[][..])).collect();
        let d = def(&pairs);
        assert_eq!(
            render(&nodes(&d), &def_edges(&d)),
            Err(NoGraph::TooLarge(MAX_GRAPH_NODES + 1))
        );
        let empty = def(&[]);
        assert_eq!(render(&[], &def_edges(&empty)), Err(NoGraph::Empty));
    }

    #[test]
    fn two_hundred_nodes_are_drawn() {
        let ids: Vec<String> = (0..MAX_GRAPH_NODES).map(|i| format!("node_{i}")).collect();
        let deps: Vec<Vec<String>> = (0..MAX_GRAPH_NODES)
            .map(|i| {
                if i == 0 {
                    vec![]
                } else {
                    vec![ids[(i - 1) / 3].clone()]
                }
            })
            .collect();
        let d = WorkflowDef {
            schedules: Vec::new(),
            nodes: ids
                .iter()
                .zip(&deps)
                .map(|(id, deps)| NodeDef {
                    id: id.clone(),
                    action: "echo".into(),
                    dependencies: deps.clone(),
                    ..Default::default()
                })
                .collect(),
            ..def(&[])
        };
        let svg = render(&nodes(&d), &def_edges(&d)).unwrap();
        assert_eq!(svg.matches("class=\"gnode").count(), MAX_GRAPH_NODES);
    }
}
