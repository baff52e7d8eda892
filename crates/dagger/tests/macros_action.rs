//! Behaviour of the code `#[action]` generates.

use dagger::dag_flow::DagError;
use dagger::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;

#[action(
    name = "double",
    description = "Doubles `x`",
    input_schema = r#"{"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}"#,
    output_schema = r#"{"type": "object", "required": ["y"]}"#
)]
async fn double(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let x: i64 = ctx.input_as("x")?;
    Ok(NodeOutput::success(json!({ "y": 2 * x })))
}

#[derive(Debug, Deserialize)]
struct AddInput {
    a: f64,
    b: f64,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Debug, Serialize)]
struct AddOutput {
    sum: f64,
    labels: usize,
}

#[action(name = "add")]
async fn add(input: AddInput) -> Result<AddOutput, String> {
    if input.b < 0.0 {
        return Err(format!("`b` must not be negative, got {}", input.b));
    }
    Ok(AddOutput {
        sum: input.a + input.b,
        labels: input.labels.len(),
    })
}

#[action(name = "now")]
async fn now() -> Result<Value, std::io::Error> {
    Ok(json!({ "t": 42 }))
}

mod nested {
    // A relative `crate` path resolves where the function is written.
    use ::dagger as dg;

    #[dg::action(name = "nested_hello", crate = "dg")]
    pub(crate) async fn hello(
        ctx: &dg::prelude::NodeCtx,
    ) -> Result<dg::prelude::NodeOutput, &'static str> {
        if ctx.inputs.is_empty() {
            return Err("no inputs");
        }
        Ok(dg::prelude::NodeOutput::success(
            serde_json::json!({ "greeting": "hello" }),
        ))
    }
}

fn ctx(node: &str, inputs: Value) -> NodeCtx {
    let Value::Object(map) = inputs else {
        panic!("inputs must be an object")
    };
    NodeCtx::for_test(node, map)
}

#[tokio::test]
async fn context_form_runs_and_describes_itself() {
    let action = Arc::new(Double);
    assert_eq!(action.name(), "double");
    assert_eq!(Double::NAME, "double");
    assert_eq!(action.description(), "Doubles `x`");
    let out = action
        .execute(&ctx("n1", json!({ "x": 21 })))
        .await
        .unwrap();
    assert_eq!(out, NodeOutput::success(json!({ "y": 42 })));
    // The function itself stays callable as written.
    let direct = double(&ctx("n1", json!({ "x": 1 }))).await.unwrap();
    assert_eq!(direct.outputs, json!({ "y": 2 }));
}

#[tokio::test]
async fn schemas_are_compiled_once_and_reject_bad_input() {
    let action = Double;
    let schema = action.input_schema().expect("input schema");
    assert!(std::ptr::eq(schema, Double.input_schema().unwrap()));
    let violation = schema.validate(&json!({ "x": "seven" })).unwrap_err();
    assert_eq!(
        (violation.instance_path.as_str(), violation.keyword.as_str()),
        ("/x", "type")
    );
    let violation = schema.validate(&json!({})).unwrap_err();
    assert_eq!(violation.keyword, "required");
    assert!(schema.validate(&json!({ "x": 3 })).is_ok());
    let output = action.output_schema().expect("output schema");
    assert_eq!(
        output.validate(&json!({ "z": 1 })).unwrap_err().keyword,
        "required"
    );
    // No schema given, none reported.
    assert!(Add.input_schema().is_none());
    assert!(Add.output_schema().is_none());
}

#[tokio::test]
async fn typed_form_reads_inputs_and_serializes_outputs() {
    let out = Add
        .execute(&ctx(
            "sum",
            json!({ "a": 1.5, "b": 2.0, "labels": ["p", "q"] }),
        ))
        .await
        .unwrap();
    assert!(out.success);
    assert_eq!(out.outputs, json!({ "sum": 3.5, "labels": 2 }));
    let out = Now.execute(&ctx("clock", json!({}))).await.unwrap();
    assert_eq!(out.outputs, json!({ "t": 42 }));
}

#[tokio::test]
async fn typed_input_errors_name_the_field_and_are_permanent() {
    let err = Add
        .execute(&ctx("sum", json!({ "a": "one", "b": 2.0 })))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node `sum` (action `add`): input `a`: invalid type: string \"one\", expected f64"
    );
    assert!(Permanent::is_permanent(err.as_ref()));

    let err = Add
        .execute(&ctx(
            "sum",
            json!({ "a": 1.0, "b": 2.0, "labels": ["ok", 7] }),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node `sum` (action `add`): input `labels[1]`: invalid type: integer `7`, expected a string"
    );

    let err = Add
        .execute(&ctx("sum", json!({ "a": 1.0 })))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node `sum` (action `add`): inputs: missing field `b`"
    );
}

#[tokio::test]
async fn user_errors_are_passed_through() {
    let err = Add
        .execute(&ctx("sum", json!({ "a": 1.0, "b": -1.0 })))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "`b` must not be negative, got -1");
    assert!(!Permanent::is_permanent(err.as_ref()));
    let err = Arc::new(nested::Hello)
        .execute(&NodeCtx::for_test("greet", Map::new()))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no inputs");
}

#[test]
fn register_all_registers_every_annotated_action_once() {
    let registry = ActionRegistry::new();
    assert_eq!(dagger::register_all_actions(&registry).unwrap(), 4);
    assert_eq!(registry.names(), ["add", "double", "nested_hello", "now"]);
    // A second registration would silently replace: it is refused instead.
    let err = dagger::register_all_actions(&registry).unwrap_err();
    assert!(
        matches!(&err, DagError::DuplicateAction { name } if name == "add"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "action `add` is defined more than once (by two `#[action]` functions, or one and an action already registered)"
    );
    let names: Vec<String> = dagger::annotated_actions()
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    assert_eq!(names, ["add", "double", "nested_hello", "now"]);
}
