//! `#[action]` functions running in a real workflow under the coordinator.

use dagger::prelude::*;
use dagger::serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize)]
#[serde(crate = "dagger::serde")]
struct Numbers {
    num1: f64,
    num2: f64,
}

#[derive(Serialize)]
#[serde(crate = "dagger::serde")]
struct Sum {
    sum: f64,
}

#[action(
    name = "add_numbers",
    input_schema = r#"{"type": "object", "required": ["num1", "num2"], "properties": {"num1": {"type": "number"}}}"#
)]
async fn add_numbers(input: Numbers) -> Result<Sum, String> {
    Ok(Sum {
        sum: input.num1 + input.num2,
    })
}

#[action(
    name = "square",
    output_schema = r#"{"type": "object", "required": ["squared"]}"#
)]
async fn square(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    let x: f64 = ctx.input_as("x")?;
    Ok(NodeOutput::success(json!({ "squared": x * x })))
}

const WORKFLOW: &str = r#"
name: arithmetic
nodes:
  - id: add
    action: add_numbers
    inputs:
      - name: num1
        reference: inputs.num1
      - name: num2
        reference: inputs.num2
    outputs:
      - name: sum
  - id: sq
    action: square
    dependencies: [add]
    inputs:
      - name: x
        reference: add.sum
    outputs:
      - name: squared
"#;

async fn run(num1: serde_json::Value, num2: serde_json::Value) -> (DagExecutionReport, Cache) {
    let registry = ActionRegistry::new();
    dagger::register_all_actions(&registry).expect("actions register");
    // Three attempts per node: only a permanent error stops after one.
    let config = DagConfig {
        max_attempts: Some(3),
        retry_strategy: RetryStrategy::LinearMs { delay_ms: 1 },
        ..DagConfig::default()
    };
    let mut executor = DagExecutor::new(Some(config), registry, Stores::memory())
        .await
        .expect("executor");
    executor.load_yaml_string(WORKFLOW).expect("workflow loads");
    let cache = Cache::new();
    insert_value(&cache, "inputs", "num1", num1).expect("input");
    insert_value(&cache, "inputs", "num2", num2).expect("input");
    let report = execute_dag(&mut executor, &cache, "arithmetic")
        .await
        .expect("run");
    (report, cache)
}

#[tokio::test]
async fn annotated_actions_run_in_a_workflow() {
    let (report, cache) = run(json!(10.0), json!(20.0)).await;
    assert_eq!(report.status, RunStatus::Completed, "{report:?}");
    assert_eq!(cache.get("add", "sum").as_deref(), Some(&json!(30.0)));
    assert_eq!(cache.get("sq", "squared").as_deref(), Some(&json!(900.0)));
}

#[tokio::test]
async fn the_input_schema_rejects_bad_inputs_before_the_action_runs() {
    let (report, _) = run(json!("ten"), json!(20.0)).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let add = report.get_node_state("add").expect("node add");
    assert_eq!(add.status, NodeStatus::Failed);
    let error = add.error.as_deref().unwrap_or_default();
    assert!(error.contains("/num1") && error.contains("type"), "{error}");
    assert_eq!(
        report.get_node_state("sq").map(|n| n.status),
        Some(NodeStatus::Skipped)
    );
}

#[tokio::test]
async fn typed_inputs_that_do_not_deserialize_fail_naming_the_input() {
    // `num2` has no schema property, so only deserialization catches it.
    let (report, _) = run(json!(1.0), json!([2])).await;
    let add = report.get_node_state("add").expect("node add");
    assert_eq!(add.status, NodeStatus::Failed);
    assert_eq!(
        add.error.as_deref(),
        Some(
            "node `add` (action `add_numbers`): input `num2`: invalid type: sequence, expected f64"
        )
    );
    // Permanent: not retried although three attempts are allowed.
    assert_eq!(add.attempts, 1);
}

#[action(name = "always_fails")]
async fn always_fails() -> Result<(), String> {
    Err("boom".to_string())
}

#[tokio::test]
async fn ordinary_errors_are_retried_and_reported() {
    let registry = ActionRegistry::new();
    registry.register(std::sync::Arc::new(AlwaysFails));
    let config = DagConfig {
        max_attempts: Some(3),
        retry_strategy: RetryStrategy::LinearMs { delay_ms: 1 },
        ..DagConfig::default()
    };
    let mut executor = DagExecutor::new(Some(config), registry, Stores::memory())
        .await
        .expect("executor");
    executor
        .load_yaml_string("name: failing\nnodes:\n  - id: f\n    action: always_fails\n")
        .expect("workflow loads");
    let report = execute_dag(&mut executor, &Cache::new(), "failing")
        .await
        .expect("run");
    let node = report.get_node_state("f").expect("node f");
    assert_eq!((node.status, node.attempts), (NodeStatus::Failed, 3));
    assert_eq!(node.error.as_deref(), Some("boom (after 3 attempts)"));
}
