//! Checks of nodes a running workflow grows by, and of definitions built in code.

use dagger_dag_flow::{
    InputSpec, LoadIssueKind, NodeDef, WorkflowDef, load_yaml_str, validate_added_nodes,
    validate_added_nodes_with, validate_workflow,
};

fn base() -> WorkflowDef {
    load_yaml_str(
        "name: grow\nnodes:\n  - id: root\n    action: echo\n  - id: mid\n    action: echo\n    dependencies: [root]\n  - id: side\n    action: echo\n",
        "grow.yaml",
    )
    .expect("base is valid")
}

fn node(id: &str, deps: &[&str]) -> NodeDef {
    NodeDef {
        id: id.into(),
        action: "echo".into(),
        dependencies: deps.iter().map(|d| d.to_string()).collect(),
        ..NodeDef::default()
    }
}

fn kinds(result: Result<(), Vec<dagger_dag_flow::LoadIssue>>) -> Vec<LoadIssueKind> {
    let issues = result.expect_err("must be rejected");
    for i in &issues {
        assert_eq!(i.file, "<added nodes>");
        assert_eq!((i.line, i.column), (None, None));
    }
    issues.into_iter().map(|i| i.kind).collect()
}

#[test]
fn a_valid_batch_passes_including_transitive_references() {
    let mut leaf = node("leaf", &["b1"]);
    leaf.inputs = vec![
        InputSpec::reference("from_root", "root.out"),
        InputSpec::reference("from_b1", "b1.out"),
        InputSpec::reference("run", "inputs.x"),
    ];
    let added = [node("b1", &["mid"]), leaf];
    assert_eq!(validate_added_nodes(&base(), &added), Ok(()));
}

#[test]
fn duplicate_ids_against_existing_and_within_the_batch() {
    let added = [node("mid", &[]), node("new", &[]), node("new", &[])];
    assert_eq!(
        kinds(validate_added_nodes(&base(), &added)),
        [
            LoadIssueKind::DuplicateNodeId { id: "mid".into() },
            LoadIssueKind::DuplicateNodeId { id: "new".into() },
        ]
    );
}

#[test]
fn unknown_dependency_and_cycle_in_the_batch() {
    let added = [node("x", &["y"]), node("y", &["x"]), node("z", &["ghost"])];
    assert_eq!(
        kinds(validate_added_nodes(&base(), &added)),
        [
            LoadIssueKind::MissingDependency {
                node: "z".into(),
                dependency: "ghost".into(),
                suggestion: None,
            },
            LoadIssueKind::Cycle {
                path: vec!["x".into(), "y".into(), "x".into()]
            },
        ]
    );
}

#[test]
fn references_to_non_ancestors_and_unknown_nodes() {
    let mut n = node("n", &["mid"]);
    n.inputs = vec![
        InputSpec::reference("a", "side.out"),
        InputSpec::reference("b", "nowhere.out"),
        InputSpec::reference("c", "bad"),
    ];
    n.when = Some("n.flag".into());
    let issues = validate_added_nodes(&base(), &[n]).expect_err("bad refs");
    let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "<added nodes>: node `n`: input `a` references `side.out`, but `side` is not among the node's dependencies (direct or transitive)",
            "<added nodes>: node `n`: input `b` references `nowhere.out`, but there is no node `nowhere`",
            "<added nodes>: node `n`: input `c` has malformed reference `bad`; expected `inputs.<key>` or `<node_id>.<output>`",
            "<added nodes>: node `n`: `when` references `n.flag`, but `n` is not among the node's dependencies (direct or transitive)",
        ]
    );
}

#[test]
fn node_fields_are_checked_too() {
    let mut n = node("n", &["n"]);
    n.action = " ".into();
    n.try_count = Some(0);
    n.inputs = vec![InputSpec::default()];
    assert_eq!(
        kinds(validate_added_nodes(&base(), &[n])),
        [
            LoadIssueKind::EmptyValue {
                context: "node `n`".into(),
                field: "action"
            },
            LoadIssueKind::InvalidNodeValue {
                node: "n".into(),
                field: "try_count",
                message: "must be at least 1".into()
            },
            LoadIssueKind::SelfDependency { node: "n".into() },
            LoadIssueKind::EmptyValue {
                context: "node `n`, input #1".into(),
                field: "name"
            },
            LoadIssueKind::InputWithoutSource {
                node: "n".into(),
                input: "#1".into()
            },
        ]
    );
}

#[test]
fn the_lookup_variant_uses_the_callers_index() {
    let def = base();
    let index: std::collections::HashMap<&str, &NodeDef> =
        def.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let added = [node("b1", &["root"])];
    assert_eq!(
        validate_added_nodes_with(|id| index.get(id).copied(), &added),
        Ok(())
    );
    let bad = [node("b2", &["missing"])];
    assert!(matches!(
        kinds(validate_added_nodes_with(|id| index.get(id).copied(), &bad))[..],
        [LoadIssueKind::MissingDependency { .. }]
    ));
}

#[test]
fn validate_workflow_checks_definitions_built_in_code() {
    let mut def = base();
    assert!(validate_workflow(&def, "code").is_ok());
    def.nodes[0].dependencies = vec!["mid".into()];
    let errors = validate_workflow(&def, "code").expect_err("cycle");
    assert_eq!(
        errors.to_string(),
        "code: dependency cycle: root -> mid -> root"
    );
}
