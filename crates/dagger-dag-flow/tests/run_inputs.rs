//! Declared run inputs (`inputs:`): the loader checks the declaration and the
//! references to it, `apply_run_inputs` checks what a run is given, and the
//! `*_with_actions` loaders check nodes against their actions' schemas.

use dagger_core::JsonSchema;
use dagger_dag_flow::{
    ActionRegistry, DagError, NodeAction, NodeCtx, NodeOutput, RunInputProblem, apply_run_inputs,
    load_yaml_str, load_yaml_str_with_actions, run_inputs_help,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn issues(text: &str) -> Vec<String> {
    load_yaml_str(text, "wf.yaml")
        .expect_err("invalid")
        .issues()
        .iter()
        .map(ToString::to_string)
        .collect()
}

const DECLARED: &str = "\
name: wf
inputs:
  - name: numbers
    type: array
    description: the numbers to add
  - name: scale
    type: integer
    default: 2
  - name: label
    schema: {type: string, minLength: 1}
    default: sum
nodes:
  - id: add
    action: echo
    inputs:
      - {name: n, reference: inputs.numbers}
      - {name: s, reference: inputs.scale}
";

#[test]
fn a_declaration_loads_and_is_described() {
    let def = load_yaml_str(DECLARED, "wf.yaml").expect("valid");
    let declared = def.inputs.as_ref().expect("declared");
    assert_eq!(declared.len(), 3);
    assert!(declared[0].required());
    assert!(!declared[1].required());
    assert_eq!(
        run_inputs_help(&def),
        "inputs of workflow `wf`:\n\
         \x20 numbers  array            required       the numbers to add\n\
         \x20 scale    integer          default 2\n\
         \x20 label    string (schema)  default \"sum\"\n"
    );
}

#[test]
fn bad_declarations_are_reported_at_their_position() {
    let text = "\
name: wf
inputs:
  - name: a
    type: strin
  - name: b
    type: integer
    default: \"three\"
  - name: b
  - name: c
    type: string
    schema: {type: string}
  - name: d
    schema: {type: 12}
nodes:
  - {id: x, action: echo}
";
    let found = issues(text);
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        found[0].starts_with("wf.yaml:4:11: run input `a`"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("unknown variant `strin`"), "{}", found[0]);
    assert_eq!(
        found[1],
        "wf.yaml:7:14: run input `b`: the default must be of type integer: got a string"
    );
    assert_eq!(found[2], "wf.yaml:8:11: run input `b`: declared twice");
    assert_eq!(
        found[3],
        "wf.yaml:11:13: run input `c`: give either `type` or `schema`, not both"
    );
    assert!(
        found[4].starts_with("wf.yaml:13:13: run input `d`: "),
        "{}",
        found[4]
    );
}

#[test]
fn references_to_undeclared_inputs_are_errors_only_when_inputs_are_declared() {
    let text = "\
name: wf
inputs:
  - {name: numbers, type: array}
nodes:
  - id: add
    action: echo
    inputs:
      - {name: n, reference: inputs.numbrs}
";
    assert_eq!(
        issues(text),
        vec![
            "wf.yaml:8:30: node `add`, input `n`: `inputs.numbrs` names run input `numbrs`, \
             which the workflow's `inputs:` does not declare; did you mean `numbers`?"
        ]
    );
    // Without `inputs:`, any run input may be referenced, as before.
    let undeclared = text.replace("inputs:\n  - {name: numbers, type: array}\n", "");
    let def = load_yaml_str(&undeclared, "wf.yaml").expect("valid");
    assert!(def.inputs.is_none());
    let given: Map<String, Value> = [("anything".to_string(), json!(1))].into_iter().collect();
    assert_eq!(apply_run_inputs(&def, &given).expect("accepted"), given);
}

#[test]
fn given_inputs_are_checked_and_defaults_applied() {
    let def = load_yaml_str(DECLARED, "wf.yaml").expect("valid");
    let given: Map<String, Value> = [("numbers".to_string(), json!([1, 2]))]
        .into_iter()
        .collect();
    let applied = apply_run_inputs(&def, &given).expect("valid");
    assert_eq!(
        Value::Object(applied),
        json!({"numbers": [1, 2], "scale": 2, "label": "sum"})
    );

    let bad: Map<String, Value> = [
        ("scale".to_string(), json!("x")),
        ("label".to_string(), json!("")),
        ("numbres".to_string(), json!([])),
    ]
    .into_iter()
    .collect();
    let err = apply_run_inputs(&def, &bad).expect_err("invalid");
    let DagError::InvalidRunInputs { workflow, problems } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(workflow, "wf");
    let named: Vec<&str> = problems.iter().map(RunInputProblem::input).collect();
    assert_eq!(named, vec!["numbers", "scale", "label", "numbres"]);
    let text = err.to_string();
    assert!(text.starts_with("workflow `wf`: missing required input `numbers`; input `scale` must be of type integer: got a string; input `label` must be valid against its schema: "), "{text}");
    assert!(
        text.ends_with("; unknown input `numbres`; did you mean `numbers`?"),
        "{text}"
    );
}

/// An action with schemas: input `n` (integer, required), output `total`.
struct Sum {
    input: JsonSchema,
    output: JsonSchema,
}

#[async_trait::async_trait]
impl NodeAction for Sum {
    fn name(&self) -> &str {
        "sum"
    }
    fn input_schema(&self) -> Option<&JsonSchema> {
        Some(&self.input)
    }
    fn output_schema(&self) -> Option<&JsonSchema> {
        Some(&self.output)
    }
    async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput, dagger_core::BoxError> {
        Ok(NodeOutput::success(json!({"total": 0})))
    }
}

fn registry() -> ActionRegistry {
    let registry = ActionRegistry::new();
    registry.register(Arc::new(Sum {
        input: JsonSchema::compile(
            &json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}),
            None,
        )
        .unwrap(),
        output: JsonSchema::compile(
            &json!({"type": "object", "properties": {"total": {"type": "integer"}}}),
            None,
        )
        .unwrap(),
    }));
    registry
}

#[test]
fn validate_checks_nodes_against_action_schemas() {
    let text = "\
name: wf
nodes:
  - id: a
    action: sum
    inputs:
      - {name: n, value: \"four\"}
  - id: b
    action: sum
  - id: c
    action: sum
    dependencies: [a]
    inputs:
      - {name: n, reference: a.totl}
      - {name: m, reference: a.total}
";
    // Without a registry the file is valid: schemas are the actions' business.
    load_yaml_str(text, "wf.yaml").expect("valid without actions");
    let found: Vec<String> = load_yaml_str_with_actions(text, "wf.yaml", &registry())
        .expect_err("invalid")
        .issues()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        vec![
            "wf.yaml:6:9: node `a`: input `n` must be of type integer, got a string \
             (input schema of action `sum`)",
            "wf.yaml:8:13: node `b`: required input `n` is not given (input schema of action `sum`)",
            "wf.yaml:13:30: node `c`, input `n`: `a.totl` names output `totl` of node `a`, \
             but action `sum` declares only `total`; did you mean `total`?",
        ]
    );
}
