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
    out!("{}", render(&all));
    Ok(ExitCode::SUCCESS)
}

/// The listing for people: per section, names padded to the longest one
/// so the descriptions line up, then subscriptions and schemas indented.
fn render(all: &Value) -> String {
    let sections = [
        ("actions", "ACTIONS"),
        ("task_agents", "TASK AGENTS"),
        ("pubsub_agents", "PUB/SUB AGENTS"),
    ];
    let mut text = String::new();
    for (i, (key, title)) in sections.into_iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let items = all[key].as_array().cloned().unwrap_or_default();
        text.push_str(&format!("{title} ({})\n", items.len()));
        let width = items
            .iter()
            .map(|item| item["name"].as_str().unwrap_or_default().chars().count())
            .max()
            .unwrap_or(0);
        for item in items {
            let name = item["name"].as_str().unwrap_or_default();
            let description = item["description"].as_str().unwrap_or_default();
            let line = format!("  {name:<width$}  {description}");
            text.push_str(line.trim_end());
            text.push('\n');
            if let Some(subs) = item["subscriptions"].as_array() {
                let subs: Vec<&str> = subs.iter().filter_map(Value::as_str).collect();
                text.push_str(&format!("    subscribes: {}\n", subs.join(", ")));
            }
            for (field, label) in [("input_schema", "input "), ("output_schema", "output")] {
                if !item[field].is_null() {
                    text.push_str(&format!("    {label}: {}\n", one_line(&item[field])));
                }
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_line_up_after_the_longest_name() {
        let all = json!({
            "actions": [
                {"name": "echo", "description": "Returns its inputs", "input_schema": null, "output_schema": null},
                {"name": "a_really_long_action_name_indeed", "description": "Long", "input_schema": {"type": "object"}, "output_schema": null},
            ],
            "task_agents": [],
            "pubsub_agents": [],
        });
        assert_eq!(
            render(&all),
            "ACTIONS (2)\n\
             \x20 echo                              Returns its inputs\n\
             \x20 a_really_long_action_name_indeed  Long\n\
             \x20   input : {\"type\":\"object\"}\n\
             \n\
             TASK AGENTS (0)\n\
             \n\
             PUB/SUB AGENTS (0)\n"
        );
    }
}
