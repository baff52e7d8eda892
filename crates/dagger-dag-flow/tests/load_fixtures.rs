//! Every invalid fixture gives exactly the expected issues (kind, message
//! naming the culprit, line and column); every valid fixture loads.

use dagger_core::BoxError;
use dagger_dag_flow::{
    ActionRegistry, LoadIssue, LoadIssueKind, NodeAction, NodeCtx, NodeOutput, load_yaml_path,
    load_yaml_path_with_actions,
};
use std::path::PathBuf;
use std::sync::Arc;

fn fixture(kind: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
        .join(format!("{name}.yaml"))
}

/// The issues of `invalid/<name>.yaml`, displayed relative to the fixture dir.
fn issues(name: &str) -> Vec<LoadIssue> {
    let path = fixture("invalid", name);
    match load_yaml_path(&path) {
        Ok(def) => panic!("{name}: expected problems, loaded {def:?}"),
        Err(errors) => {
            let file = path.display().to_string();
            for issue in errors.issues() {
                assert_eq!(issue.file, file, "issue names its file");
            }
            errors.into_issues()
        }
    }
}

/// `line:col: message` of each issue.
fn lines(name: &str) -> Vec<String> {
    issues(name)
        .iter()
        .map(|i| {
            let text = i.to_string();
            let prefix = format!("{}:", i.file);
            text.strip_prefix(&prefix).unwrap_or(&text).to_string()
        })
        .collect()
}

fn only(name: &str) -> (Option<usize>, Option<usize>, LoadIssueKind) {
    let mut all = issues(name);
    assert_eq!(all.len(), 1, "{name}: {all:?}");
    let i = all.remove(0);
    (i.line, i.column, i.kind)
}

#[test]
fn cycle_three_nodes_reports_the_path_at_the_closing_dependency() {
    assert_eq!(
        only("cycle_three_nodes"),
        (
            Some(5),
            Some(20),
            LoadIssueKind::Cycle {
                path: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        )
    );
    assert_eq!(
        lines("cycle_three_nodes"),
        ["5:20: dependency cycle: a -> b -> c -> a"]
    );
}

#[test]
fn dangling_reference_names_the_missing_node() {
    assert_eq!(
        lines("dangling_reference"),
        [
            "10:20: node `use`: input `data` references `fecth.output`, but there is no node `fecth`; did you mean `fetch`?"
        ]
    );
}

#[test]
fn self_dependency() {
    assert_eq!(
        only("self_dependency"),
        (
            Some(5),
            Some(20),
            LoadIssueKind::SelfDependency {
                node: "loop".into()
            }
        )
    );
}

#[test]
fn duplicate_ids_point_at_the_second_definition() {
    assert_eq!(
        only("duplicate_ids"),
        (
            Some(5),
            Some(9),
            LoadIssueKind::DuplicateNodeId { id: "step".into() }
        )
    );
}

#[test]
fn missing_action() {
    assert_eq!(
        only("missing_action"),
        (
            Some(3),
            Some(5),
            LoadIssueKind::MissingField {
                context: "node `no_action`".into(),
                field: "action"
            }
        )
    );
}

#[test]
fn unknown_field_lists_the_allowed_ones_and_suggests_the_closest() {
    let (line, col, kind) = only("unknown_field");
    assert_eq!((line, col), (Some(4), Some(5)));
    assert!(
        kind.to_string()
            .ends_with("`approval`, `sleep`, `wait_until`, `wait_for`; did you mean `action`?"),
        "{kind}"
    );
    let LoadIssueKind::UnknownField {
        context,
        field,
        expected,
        suggestion,
    } = kind
    else {
        panic!("{kind:?}")
    };
    assert_eq!((context.as_str(), field.as_str()), ("node `typo`", "acton"));
    assert!(expected.contains("`action`"), "{expected}");
    assert_eq!(suggestion.as_deref(), Some("action"));
}

#[test]
fn wrong_type_points_at_the_value() {
    assert_eq!(
        lines("wrong_type"),
        ["5:16: node `slow`: field `try_count`: invalid type: string \"three\", expected u32"]
    );
}

#[test]
fn non_ancestor_reference() {
    assert_eq!(
        only("non_ancestor_reference"),
        (
            Some(9),
            Some(20),
            LoadIssueKind::NonAncestorReference {
                node: "right".into(),
                site: "input `data`".into(),
                reference: "left.out".into(),
                target: "left".into(),
            }
        )
    );
}

#[test]
fn non_ancestor_when() {
    assert_eq!(
        lines("non_ancestor_when"),
        [
            "7:11: node `act`: `when` references `check.ok`, but `check` is not among the node's dependencies (direct or transitive)"
        ]
    );
}

#[test]
fn bad_map_over_reference() {
    assert_eq!(
        lines("bad_map_over_reference"),
        [
            "7:15: node `each`: `map_over` has malformed reference `list`; expected `inputs.<key>` or `<node_id>.<output>`"
        ]
    );
}

#[test]
fn invalid_config_points_at_the_value() {
    assert_eq!(
        only("invalid_config"),
        (
            Some(3),
            Some(23),
            LoadIssueKind::InvalidConfig {
                field: "max_parallel_nodes",
                message: "must be at least 1".into()
            }
        )
    );
}

#[test]
fn syntax_error() {
    let (line, col, kind) = only("syntax_error");
    assert_eq!((line, col), (Some(5), Some(7)));
    assert_eq!(
        kind,
        LoadIssueKind::Syntax("illegal placement of ':' indicator".into())
    );
}

#[test]
fn empty_file() {
    assert_eq!(
        lines("empty_file"),
        ["1:1: the document is empty; a workflow is a mapping with `name` and `nodes`"]
    );
}

#[test]
fn list_not_mapping() {
    assert_eq!(
        only("list_not_mapping"),
        (
            Some(1),
            Some(1),
            LoadIssueKind::NotAMapping { found: "a list" }
        )
    );
}

#[test]
fn anchor_bomb_hits_the_alias_limit() {
    let (line, _, kind) = only("anchor_bomb");
    assert_eq!(line, Some(6));
    assert_eq!(
        kind,
        LoadIssueKind::LimitExceeded(
            "aliases expand to more than 100000 values (an anchor bomb?)".into()
        )
    );
}

#[test]
fn multiple_documents() {
    assert_eq!(
        lines("multiple_documents"),
        [
            "5:1: YAML exceeds a safety limit: more than one YAML document; a workflow file holds exactly one"
        ]
    );
}

#[test]
fn input_both_sources() {
    assert_eq!(
        lines("input_both_sources"),
        ["6:9: node `a`: input `x` has both `reference` and `value`; give exactly one"]
    );
}

#[test]
fn input_without_source() {
    assert_eq!(
        lines("input_without_source"),
        ["6:9: node `a`: input `x` has neither `reference` nor `value`; give exactly one"]
    );
}

#[test]
fn missing_dependency() {
    assert_eq!(
        lines("missing_dependency"),
        ["5:20: node `a` depends on `ghost`, which is not a node of this workflow"]
    );
}

#[test]
fn empty_nodes() {
    assert_eq!(
        only("empty_nodes"),
        (Some(2), Some(1), LoadIssueKind::NoNodes)
    );
}

#[test]
fn blank_name_and_blank_id() {
    assert_eq!(
        lines("blank_name"),
        ["1:7: workflow: `name` must not be empty"]
    );
    assert_eq!(
        lines("blank_id"),
        ["3:9: node `#1`: `id` must not be empty"]
    );
}

#[test]
fn missing_name() {
    assert_eq!(
        lines("missing_name"),
        ["1:1: workflow: missing required field `name`"]
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        lines("duplicate_key"),
        ["5:5: node `a`: field `action` is given more than once"]
    );
}

#[test]
fn invalid_node_id() {
    assert_eq!(
        lines("invalid_node_id"),
        [
            "3:9: node id `load.csv` must not contain `.`: references `<node_id>.<output>` split at the first dot"
        ]
    );
}

#[test]
fn invalid_timeout() {
    assert_eq!(
        lines("invalid_timeout"),
        ["5:14: node `a`: `timeout` must be a positive number of seconds, got -5"]
    );
}

#[test]
fn multiple_problems_are_all_reported_in_file_order() {
    let expected = [
        "3:17: config: `max_attempts` must be at least 1",
        "4:3: config: unknown field `colour`, expected one of `enable_parallel_execution`, `max_parallel_nodes`, `max_attempts`, `retry_strategy`, `retry_jitter`, `on_failure`, `timeout_seconds`, `human_wait_minutes`, `human_timeout_action`, `max_tokens`, `max_iterations`, `enable_incremental_cache`, `cache_snapshot_interval`",
        "8:20: node `a` depends on `ghost`, which is not a node of this workflow",
        "9:5: node `b`: missing required field `action`",
        "10:23: node `b` depends on itself",
        "11:9: node id `a` is used by more than one node",
        "13:5: node `a`: unknown field `priority`, expected one of `id`, `dependencies`, `action`, `inputs`, `outputs`, `failure`, `onfailure`, `timeout`, `try_count`, `description`, `map_over`, `cache`, `when`, `approval`, `sleep`, `wait_until`, `wait_for`",
        "16:20: dependency cycle: c -> d -> c",
        "21:9: node `d`: input `x` has both `reference` and `value`; give exactly one",
        "24:9: node `d`: input `y` has neither `reference` nor `value`; give exactly one",
    ];
    assert_eq!(lines("multiple_problems"), expected);
}

#[test]
fn node_not_mapping() {
    assert_eq!(
        lines("node_not_mapping"),
        ["5:5: node #2: expected a mapping, found a string"]
    );
}

#[test]
fn unknown_action_is_reported_only_against_a_registry() {
    let path = fixture("invalid", "unknown_action");
    assert!(
        load_yaml_path(&path).is_ok(),
        "without a registry, actions are not checked"
    );
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Named("shell")));
    registry.register(Arc::new(Named("echo")));
    let errors = load_yaml_path_with_actions(&path, &registry).expect_err("unknown actions");
    let file = path.display().to_string();
    let lines: Vec<String> = errors.issues().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "{file}:4:13: node `run`: unknown action `shel`; registered actions: `echo`, `shell`; did you mean `shell`?"
            ),
            format!(
                "{file}:5:14: node `run`: unknown failure `cleanup`; registered actions: `echo`, `shell`"
            ),
        ]
    );
}

/// An action that only has a name.
struct Named(&'static str);

#[async_trait::async_trait]
impl NodeAction for Named {
    fn name(&self) -> &str {
        self.0
    }
    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
        Ok(NodeOutput::success(serde_json::Value::Null))
    }
}

#[test]
fn anchors_and_merge_keys_share_node_defaults() {
    let def = load_yaml_path(fixture("valid", "anchors_and_merge")).expect("loads");
    let b = &def.nodes[1];
    assert_eq!(
        (b.id.as_str(), b.action.as_str(), b.timeout),
        ("b", "shell", Some(30.0))
    );
    assert_eq!(b.dependencies, ["a"]);
    assert_eq!(b.inputs[0].value, Some(serde_json::json!("echo hi")));
}

#[test]
fn every_invalid_fixture_has_a_test_above() {
    // A new fixture without an assertion would silently test nothing.
    let tested = [
        "anchor_bomb",
        "bad_map_over_reference",
        "blank_id",
        "blank_name",
        "cycle_three_nodes",
        "dangling_reference",
        "duplicate_ids",
        "duplicate_key",
        "empty_file",
        "empty_nodes",
        "input_both_sources",
        "input_without_source",
        "invalid_config",
        "invalid_node_id",
        "invalid_timeout",
        "list_not_mapping",
        "missing_action",
        "missing_dependency",
        "missing_name",
        "multiple_documents",
        "multiple_problems",
        "node_not_mapping",
        "non_ancestor_reference",
        "non_ancestor_when",
        "self_dependency",
        "syntax_error",
        "unknown_action",
        "unknown_field",
        "wrong_type",
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| {
            let path = e.expect("dir entry").path();
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    found.sort();
    assert_eq!(found, tested);
}

#[test]
fn valid_fixtures_load_with_every_field() {
    let def = load_yaml_path(fixture("valid", "pipeline")).expect("pipeline loads");
    assert_eq!(def.name, "data_processing_pipeline");
    assert_eq!(
        def.version.as_deref(),
        Some("1.0"),
        "numbers read back as text where text is expected"
    );
    assert_eq!(def.tags, ["production", "etl"]);
    let config = def.config.as_ref().expect("config");
    assert_eq!(config.max_parallel_nodes, Some(4));
    assert_eq!(
        config.retry_strategy,
        Some(dagger_dag_flow::RetryStrategy::Linear { delay_secs: 5 })
    );
    assert_eq!(config.on_failure, Some(dagger_dag_flow::OnFailure::Halt));
    assert_eq!(config.timeout_seconds, Some(Some(3600)));
    let ids: Vec<&str> = def.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["validate_input", "transform_data", "report"]);
    let v = &def.nodes[0];
    assert_eq!(v.failure.as_deref(), Some("handle_validation_error"));
    assert_eq!((v.timeout, v.try_count), (Some(300.0), Some(2)));
    assert_eq!(
        v.inputs[0].reference.as_deref(),
        Some("inputs.customer_data")
    );
    assert_eq!(v.outputs[0].name, "valid_data");
    let t = &def.nodes[1];
    assert_eq!(
        t.inputs[1].value,
        Some(serde_json::json!({"upper": true, "fields": ["a", "b"]}))
    );
    assert_eq!(
        def.nodes[2].when.as_deref(),
        Some("transform_data.transformed")
    );
    let minimal = load_yaml_path(fixture("valid", "minimal")).expect("minimal loads");
    assert_eq!(minimal.nodes[0].action, "echo");
}

#[test]
fn null_and_lists_where_text_is_required() {
    let errors =
        dagger_dag_flow::load_yaml_str("name:\nnodes:\n  - id: a\n    action: [x]\n", "n.yaml")
            .expect_err("bad types");
    let lines: Vec<String> = errors.issues().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "n.yaml:1:5: workflow: field `name`: invalid type: null, expected a string",
            "n.yaml:4:13: node `a`: field `action`: invalid type: sequence, expected a string",
        ]
    );
}
