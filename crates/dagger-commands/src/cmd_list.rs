//! `dagger actions` (alias `list`): what this binary runs.

use crate::App;
use crate::error::CliError;
use dagger_core::JsonSchema;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Arguments of `dagger actions`.
#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// Print as JSON, with the full input/output schemas (a `listing` of
    /// docs/schemas/cli.schema.json).
    #[arg(long)]
    json: bool,
}

fn schema(s: Option<&JsonSchema>) -> Value {
    s.map(|s| s.source().clone()).unwrap_or(Value::Null)
}

/// Everything the binary knows, as JSON.
fn listing(app: &App) -> Value {
    let registry = app.actions();
    let actions: Vec<Value> = registry
        .names()
        .iter()
        .filter_map(|n| registry.get(n))
        .map(|a| {
            json!({
                "name": a.name(),
                "description": a.description(),
                "input_schema": schema(a.input_schema()),
                "output_schema": schema(a.output_schema()),
            })
        })
        .collect();
    let agents = app.task_agents();
    let task_agents: Vec<Value> = agents
        .names()
        .iter()
        .filter_map(|n| agents.get(n))
        .map(|a| {
            json!({
                "name": a.name(),
                "description": a.description(),
                "input_schema": schema(a.input_schema()),
                "output_schema": schema(a.output_schema()),
            })
        })
        .collect();
    let pubsub_agents: Vec<Value> = app
        .pubsub_agents()
        .iter()
        .map(|a| {
            json!({
                "name": a.name(),
                "description": a.description(),
                "subscriptions": a.subscriptions(),
                "input_schema": schema(a.input_schema()),
                "output_schema": schema(a.output_schema()),
            })
        })
        .collect();
    json!({
        "actions": actions,
        "task_agents": task_agents,
        "pubsub_agents": pubsub_agents,
    })
}

/// A schema on one line, or `-`.
fn one_line(v: &Value) -> String {
    if v.is_null() {
        "-".into()
    } else {
        v.to_string()
    }
}

pub(crate) fn list(args: &ListArgs, app: &App) -> Result<ExitCode, CliError> {
    let all = listing(app);
    if args.json {
        crate::view::print_json(&all)?;
        return Ok(ExitCode::SUCCESS);
    }
    let sections = [
        ("actions", "ACTIONS"),
        ("task_agents", "TASK AGENTS"),
        ("pubsub_agents", "PUB/SUB AGENTS"),
    ];
    for (i, (key, title)) in sections.into_iter().enumerate() {
        if i > 0 {
            outln!();
        }
        let items = all[key].as_array().cloned().unwrap_or_default();
        outln!("{title} ({})", items.len());
        for item in items {
            let name = item["name"].as_str().unwrap_or_default();
            let description = item["description"].as_str().unwrap_or_default();
            outln!("  {name:<20} {description}");
            if let Some(subs) = item["subscriptions"].as_array() {
                let subs: Vec<&str> = subs.iter().filter_map(Value::as_str).collect();
                outln!("    subscribes: {}", subs.join(", "));
            }
            for (field, label) in [("input_schema", "input "), ("output_schema", "output")] {
                if !item[field].is_null() {
                    outln!("    {label}: {}", one_line(&item[field]));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
