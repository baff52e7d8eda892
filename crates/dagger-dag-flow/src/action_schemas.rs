//! Checks of a workflow against the schemas of its actions (what `dagger
//! validate` reports beyond unknown actions): a reference to an output the
//! upstream action's output schema does not declare, and node inputs that
//! contradict the action's input schema (a required input missing, a
//! literal of the wrong JSON type).
//!
//! Only what a schema states plainly is checked: declared outputs are the
//! `properties` of an output schema of `type: object` (or without a type);
//! a schema with `patternProperties` or without `properties` declares no
//! list. Inputs the run adds itself (`item` and `index` of a fan-out,
//! `human_input` of an approval) count as given.

use crate::action::ActionRegistry;
use crate::error::{LoadIssueKind, hint};
use crate::model::{JsonType, NodeDef, WorkflowDef};
use crate::run_inputs::{closest_name as closest, json_type_of};
use crate::validate::{Found, RefTarget, WorkflowLocations, display_id, ref_target, references};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The names a schema declares as `properties`, when it declares a closed list.
fn declared_properties(schema: &Value) -> Option<&Map<String, Value>> {
    if schema.get("patternProperties").is_some() {
        return None;
    }
    match schema.get("type") {
        None => {}
        Some(Value::String(t)) if t == "object" => {}
        _ => return None,
    }
    schema.get("properties").and_then(Value::as_object)
}

/// Every reference to an undeclared output and every input contradicting an
/// action's input schema in `def`, against `registry` (unknown actions are
/// reported elsewhere and skipped here).
pub(crate) fn check_action_schemas(
    def: &WorkflowDef,
    locs: &WorkflowLocations,
    registry: &ActionRegistry,
) -> Vec<Found> {
    let mut out = Vec::new();
    let by_id: HashMap<&str, &NodeDef> = def.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    for (i, node) in def.nodes.iter().enumerate() {
        let loc = locs.nodes.get(i);
        for r in references(node, loc) {
            let RefTarget::Node(target) = ref_target(r.reference) else {
                continue;
            };
            let Some(upstream) = by_id.get(target) else {
                continue; // reported by the graph checks
            };
            if upstream.map_over.is_some() {
                continue; // its output is the list of per-item outputs
            }
            let Some(action) = registry.get(&upstream.action) else {
                continue;
            };
            let Some(props) = action
                .output_schema()
                .and_then(|s| declared_properties(s.source()))
            else {
                continue;
            };
            let Some((_, output)) = dagger_core::InputSpec::split_reference(r.reference) else {
                continue;
            };
            if props.contains_key(output) {
                continue;
            }
            let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
            names.sort_unstable();
            let declared = if names.is_empty() {
                "no outputs".to_string()
            } else {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push((
                r.pos,
                LoadIssueKind::UndeclaredOutput {
                    node: display_id(i, node),
                    site: r.site.clone(),
                    reference: r.reference.to_string(),
                    action: upstream.action.clone(),
                    declared: format!(
                        "{declared}{}",
                        hint(&closest(output, names.iter().copied()))
                    ),
                },
            ));
        }
        check_node_inputs(i, node, locs, registry, &mut out);
    }
    out
}

/// The inputs of node `i` against its action's input schema.
fn check_node_inputs(
    i: usize,
    node: &NodeDef,
    locs: &WorkflowLocations,
    registry: &ActionRegistry,
    out: &mut Vec<Found>,
) {
    let Some(action) = registry.get(&node.action) else {
        return;
    };
    let Some(schema) = action.input_schema().map(|s| s.source()) else {
        return;
    };
    let loc = locs.nodes.get(i);
    let entry = loc.and_then(|l| l.entry);
    let mut push = |pos, message: String| {
        out.push((
            pos,
            LoadIssueKind::ActionInputMismatch {
                node: display_id(i, node),
                action: node.action.clone(),
                message,
            },
        ));
    };
    let given = |name: &str| {
        node.inputs.iter().any(|input| input.name == name)
            || (node.map_over.is_some() && (name == "item" || name == "index"))
            || (node.approval.is_some() && name == "human_input")
    };
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !given(name) {
                push(
                    loc.and_then(|l| l.action).or(entry),
                    format!("required input `{name}` is not given"),
                );
            }
        }
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (j, input) in node.inputs.iter().enumerate() {
        let Some(value) = &input.value else {
            continue;
        };
        let Some(types) = props.get(&input.name).and_then(|p| p.get("type")) else {
            continue;
        };
        let allowed: Vec<JsonType> = match types {
            Value::String(t) => parse_type(t).into_iter().collect(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter_map(parse_type)
                .collect(),
            _ => continue,
        };
        if allowed.is_empty() || allowed.iter().any(|t| t.matches(value)) {
            continue;
        }
        let names: Vec<&str> = allowed.iter().map(|t| t.name()).collect();
        let iloc = loc.and_then(|l| l.inputs.get(j));
        push(
            iloc.and_then(|l| l.entry).or(entry),
            format!(
                "input `{}` must be of type {}, got {}",
                input.name,
                names.join(" or "),
                json_type_of(value)
            ),
        );
    }
}

fn parse_type(name: &str) -> Option<JsonType> {
    serde_json::from_value(Value::String(name.to_string())).ok()
}
