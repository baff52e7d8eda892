//! The example application's own code: two actions, a task agent and a
//! pub/sub agent, registered with the macros. `src/main.rs` turns them into a `dagger`
//! command with every subcommand; `src/bin/record_run.rs` runs a workflow
//! from library code.
//!
//! Set `EXAMPLE_APP_TRACE=<file>` to have every execution append a line
//! `<action or agent> <node or task id>` to that file (the tests count
//! executions with it).

use dagger::prelude::*;
use serde_json::{Value, json};
use std::io::Write as _;
use std::time::Duration;

/// Appends `what id` to the file named by `EXAMPLE_APP_TRACE`, if set.
fn trace(what: &str, id: &str) -> Result<(), BoxError> {
    let Some(path) = std::env::var_os("EXAMPLE_APP_TRACE") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    writeln!(file, "{what} {id}")?;
    Ok(())
}

/// Parses numbers out of `text` (any separators), or out of the file at
/// `path`, and returns them with their count.
#[action(
    name = "parse_numbers",
    description = "Reads the numbers in input `text` (or the file at `path`)",
    input_schema = r#"{"type": "object", "properties": {"text": {"type": "string"}, "path": {"type": "string"}}}"#,
    output_schema = r#"{"type": "object", "required": ["values", "count"], "properties": {"values": {"type": "array", "items": {"type": "number"}}, "count": {"type": "integer"}}}"#
)]
pub async fn parse_numbers(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    trace("parse_numbers", ctx.node_id.as_str())?;
    let text = match (ctx.inputs.get("text"), ctx.inputs.get("path")) {
        (Some(Value::String(text)), _) => text.clone(),
        (_, Some(Value::String(path))) => std::fs::read_to_string(path)
            .map_err(|e| Permanent::new(format!("cannot read `{path}`: {e}")))?,
        _ => return Err(Permanent::new("give input `text` or `path`").into()),
    };
    let values = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.parse::<f64>()
                .map_err(|e| Permanent::new(format!("`{w}` is not a number: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NodeOutput::success(
        json!({ "count": values.len(), "values": values }),
    ))
}

/// Sums and averages `values`, after `delay_ms`. With input `gate` (a
/// path), it fails until that file exists: make it exist and resume the run.
#[action(
    name = "slow_stats",
    description = "Sum, mean and max of input `values`, after `delay_ms`; fails while the file at `gate` is missing",
    input_schema = r#"{"type": "object", "required": ["values"], "properties": {"values": {"type": "array", "items": {"type": "number"}}, "delay_ms": {"type": "integer", "minimum": 0}, "gate": {"type": "string"}}}"#,
    output_schema = r#"{"type": "object", "required": ["sum", "mean", "max"], "properties": {"sum": {"type": "number"}, "mean": {"type": ["number", "null"]}, "max": {"type": ["number", "null"]}}}"#
)]
pub async fn slow_stats(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
    trace("slow_stats", ctx.node_id.as_str())?;
    let values: Vec<f64> = ctx.input_as("values")?;
    let delay = ctx
        .inputs
        .get("delay_ms")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(delay)) => {}
        () = ctx.cancel.cancelled() => return Err("slow_stats cancelled".into()),
    }
    if let Some(Value::String(gate)) = ctx.inputs.get("gate")
        && !std::path::Path::new(gate).exists()
    {
        return Err(Permanent::new(format!(
            "gate file `{gate}` is missing: create it, then resume the run"
        ))
        .into());
    }
    let sum: f64 = values.iter().sum();
    let mean = (!values.is_empty()).then(|| sum / values.len() as f64);
    let max = values.iter().copied().reduce(f64::max);
    Ok(NodeOutput::success(
        json!({ "sum": sum, "mean": mean, "max": max }),
    ))
}

/// Counts the words of input `text` (a task agent: `dagger worker` runs
/// its tasks).
#[task_agent(
    name = "word_count",
    description = "Counts the words of input `text`",
    input_schema = r#"{"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}"#,
    output_schema = r#"{"type": "object", "required": ["words"], "properties": {"words": {"type": "integer"}}}"#
)]
pub async fn word_count(input: Value, ctx: &TaskContext) -> Result<TaskOutcome, BoxError> {
    trace("word_count", ctx.task_id().as_str())?;
    let text = input["text"].as_str().unwrap_or_default();
    Ok(TaskOutcome::Completed(
        json!({ "words": text.split_whitespace().count() }),
    ))
}

/// Sums the numbers of each message on `numbers.*` and publishes the total
/// on `totals` (a pub/sub agent: `worker --nats URL` hosts it, `publish`
/// feeds it).
#[pubsub_agent(
    name = "summer",
    description = "Sums input `values` of each `numbers.*` message; publishes the total on `totals`",
    subscribe = "numbers.*",
    publish = "totals",
    input_schema = r#"{"type": "object", "required": ["values"], "properties": {"values": {"type": "array", "items": {"type": "number"}}}}"#
)]
pub async fn summer(ctx: &PubSubContext, message: &Message) -> Result<(), BoxError> {
    let values: Vec<f64> = serde_json::from_value(message.payload["values"].clone())?;
    let sum: f64 = values.iter().sum();
    trace("summer", &format!("{} {sum}", message.channel))?;
    ctx.publish("totals", json!({ "sum": sum })).await?;
    Ok(())
}
