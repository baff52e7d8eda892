//! Graphs far larger than any hand-written workflow: a 100,000-node chain
//! through the YAML loader, validation and DOT, and 1,000,000-node chains,
//! fan-ins and fan-outs through validation, each on a thread with the 2 MiB
//! stack every spawned Rust thread gets by default. A recursive graph walk
//! overflows that stack (the process aborts with SIGABRT, exit 134), so these
//! tests fail by crashing when some walk recurses once per node again.

use dagger_dag_flow::{
    InputSpec, LoadIssueKind, NodeDef, WorkflowDef, load_yaml_str, serialize_tree_to_dot,
    validate_workflow,
};
use std::fmt::Write as _;
use std::time::Instant;

/// The default stack of a spawned thread, and far less than the main thread's 8 MiB.
const STACK: usize = 2 << 20;

/// Runs `f` on a thread with a [`STACK`]-byte stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the test thread finished")
}

/// `n` nodes `n0 <- n1 <- ... <- n{n-1}`; each node from the third on also
/// reads an output of the node two back (a transitive, not direct, dependency).
fn chain_yaml(n: usize) -> String {
    let mut y = String::with_capacity(n * 110);
    y.push_str("name: chain\nnodes:\n");
    for i in 0..n {
        let _ = writeln!(y, "  - id: n{i}\n    action: echo");
        if i > 0 {
            let _ = writeln!(y, "    dependencies: [n{}]", i - 1);
        }
        if i > 1 {
            let _ = writeln!(
                y,
                "    inputs:\n      - name: x\n        reference: n{}.out",
                i - 2
            );
        }
    }
    y
}

fn node(id: String, deps: Vec<String>, refs: &[String]) -> NodeDef {
    NodeDef {
        id,
        action: "echo".into(),
        dependencies: deps,
        inputs: refs
            .iter()
            .enumerate()
            .map(|(k, r)| InputSpec::reference(format!("x{k}"), r.clone()))
            .collect(),
        ..NodeDef::default()
    }
}

fn workflow(nodes: Vec<NodeDef>) -> WorkflowDef {
    WorkflowDef {
        name: "big".into(),
        description: None,
        author: None,
        version: None,
        signature: None,
        tags: Vec::new(),
        config: None,
        inputs: None,
        schedules: Vec::new(),
        nodes,
    }
}

#[test]
fn a_100k_node_chain_loads_validates_and_renders_as_dot_on_a_2mib_stack() {
    let yaml = chain_yaml(100_000);
    assert!(yaml.len() > 5_000_000, "{} bytes", yaml.len());
    let (nodes, dot_lines) = on_small_stack(move || {
        let started = Instant::now();
        let def = load_yaml_str(&yaml, "chain.yaml").expect("the chain is valid");
        let loaded = started.elapsed();
        let dot = serialize_tree_to_dot(&def);
        eprintln!(
            "100k chain: load+validate {loaded:?}, dot {:?}",
            started.elapsed() - loaded
        );
        (def.nodes.len(), dot.lines().count())
    });
    assert_eq!(nodes, 100_000);
    // Header, node defaults, rankdir, one line per node and per edge, closing brace.
    assert!(dot_lines >= 199_999, "{dot_lines} lines");
}

#[test]
fn a_100k_node_cycle_is_reported_as_its_path_on_a_2mib_stack() {
    let mut yaml = chain_yaml(100_000);
    // Close the chain: n0 depends on the last node.
    yaml = yaml.replacen(
        "  - id: n0\n    action: echo\n",
        "  - id: n0\n    action: echo\n    dependencies: [n99999]\n",
        1,
    );
    let path_len = on_small_stack(move || {
        let errors = load_yaml_str(&yaml, "cycle.yaml").expect_err("a cycle");
        errors
            .0
            .iter()
            .find_map(|e| match &e.kind {
                LoadIssueKind::Cycle { path } => Some(path.len()),
                _ => None,
            })
            .expect("the cycle is reported")
    });
    assert_eq!(path_len, 100_001);
}

/// A 1M-node chain whose every node also reads the first node and the node
/// two back: the first exercises one walk shared by a million referrers,
/// the second a million short walks.
/// Ignored by default: about 50 s in a debug build on a loaded 2-core
/// machine (run with `--ignored`, or `--release`).
#[test]
#[ignore = "1M nodes: ~50 s in debug"]
fn a_1m_node_chain_validates_on_a_2mib_stack() {
    on_small_stack(|| {
        let n = 1_000_000;
        let nodes = (0..n)
            .map(|i| {
                let deps = if i > 0 {
                    vec![format!("n{}", i - 1)]
                } else {
                    Vec::new()
                };
                let refs = if i > 1 {
                    vec!["n0.out".to_string(), format!("n{}.out", i - 2)]
                } else {
                    Vec::new()
                };
                node(format!("n{i}"), deps, &refs)
            })
            .collect();
        let def = workflow(nodes);
        let started = Instant::now();
        validate_workflow(&def, "chain").expect("valid");
        eprintln!("1M chain: validate {:?}", started.elapsed());
    });
}

/// One node depending on a million roots, and a million nodes depending on
/// one root, each reading the root through another node.
/// Ignored by default: about 45 s in a debug build on a loaded 2-core
/// machine (run with `--ignored`, or `--release`).
#[test]
#[ignore = "1M nodes: ~45 s in debug"]
fn a_1m_node_fan_in_and_fan_out_validate_on_a_2mib_stack() {
    on_small_stack(|| {
        let n = 1_000_000;
        let mut fan_in: Vec<NodeDef> = (0..n)
            .map(|i| node(format!("r{i}"), Vec::new(), &[]))
            .collect();
        fan_in.push(node(
            "sink".into(),
            (0..n).map(|i| format!("r{i}")).collect(),
            &["r0.out".to_string()],
        ));
        let started = Instant::now();
        validate_workflow(&workflow(fan_in), "fan-in").expect("valid");
        eprintln!("1M fan-in: validate {:?}", started.elapsed());

        let mut fan_out = vec![
            node("root".into(), Vec::new(), &[]),
            node("mid".into(), vec!["root".into()], &[]),
        ];
        fan_out.extend((0..n).map(|i| {
            node(
                format!("l{i}"),
                vec!["mid".into()],
                &["root.out".to_string()],
            )
        }));
        let started = Instant::now();
        validate_workflow(&workflow(fan_out), "fan-out").expect("valid");
        eprintln!("1M fan-out: validate {:?}", started.elapsed());
    });
}

/// The bounded walks still find references to nodes that are not
/// ancestors, in every shape: a sibling, a descendant, a far node.
#[test]
fn references_to_non_ancestors_are_still_reported_in_large_graphs() {
    on_small_stack(|| {
        let n = 10_000;
        let mut nodes: Vec<NodeDef> = (0..n)
            .map(|i| {
                let deps = if i > 0 {
                    vec![format!("n{}", i - 1)]
                } else {
                    Vec::new()
                };
                node(format!("n{i}"), deps, &[])
            })
            .collect();
        // A side branch off n5, and nodes reading what they cannot see.
        nodes.push(node("side".into(), vec!["n5".into()], &[]));
        // Many referrers of one node (one walk down from it serves them all).
        for n in &mut nodes[100..9000] {
            n.inputs = vec![InputSpec::reference("r", "n50.out")];
        }
        nodes[3].inputs = vec![InputSpec::reference("down", "n9000.out")];
        nodes[7000].inputs = vec![InputSpec::reference("sib", "side.out")];
        nodes[n].inputs = vec![InputSpec::reference("ok", "n2.out")];
        nodes[20].inputs = vec![InputSpec::reference("bad", "side.out")];
        let errors = validate_workflow(&workflow(nodes), "w").expect_err("invalid");
        let mut bad: Vec<(String, String)> = errors
            .0
            .iter()
            .map(|e| match &e.kind {
                LoadIssueKind::NonAncestorReference { node, target, .. } => {
                    (node.clone(), target.clone())
                }
                other => panic!("unexpected issue {other:?}"),
            })
            .collect();
        bad.sort();
        assert_eq!(
            bad,
            vec![
                ("n20".to_string(), "side".to_string()),
                ("n3".to_string(), "n9000".to_string()),
                ("n7000".to_string(), "side".to_string()),
            ]
        );
    });
}
