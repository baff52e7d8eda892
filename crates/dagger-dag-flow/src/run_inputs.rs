//! Declared run inputs (a workflow's `inputs:`): checks of the declaration
//! when a workflow loads, of the references to run inputs, and of the inputs
//! given to a run before any node runs ([`apply_run_inputs`]), plus their
//! description for people ([`run_inputs_help`]).

use crate::error::{DagError, LoadIssueKind, RunInputProblem};
use crate::model::{JsonType, RunInputDef, WorkflowDef};
use crate::validate::{Found, RefTarget, WorkflowLocations, display_id, ref_target, references};
use dagger_core::JsonSchema;
use serde_json::{Map, Value};
use std::collections::HashSet;

impl JsonType {
    /// The type's name as written in YAML (`string`, `integer`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
            Self::Array => "array",
            Self::Object => "object",
            Self::Null => "null",
        }
    }

    /// Whether `value` has this type (an integer is also a number).
    pub fn matches(self, value: &Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Number => value.is_number(),
            Self::Integer => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            Self::Boolean => value.is_boolean(),
            Self::Array => value.is_array(),
            Self::Object => value.is_object(),
            Self::Null => value.is_null(),
        }
    }
}

/// The JSON type of `value` in words, for messages.
pub(crate) fn json_type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl RunInputDef {
    /// Whether a run must be given this input (it has no default).
    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    /// What the input accepts, in words: its type, `schema`, or `any`.
    pub fn type_label(&self) -> String {
        match (&self.kind, &self.schema) {
            (Some(kind), _) => kind.name().to_string(),
            (None, Some(schema)) => match schema.get("type") {
                Some(Value::String(t)) => format!("{t} (schema)"),
                _ => "schema".to_string(),
            },
            (None, None) => "any".to_string(),
        }
    }

    /// Checks `value` against the declared type or schema: `Err((expected,
    /// message))` when it does not match. An invalid schema is reported when
    /// the workflow loads; here it accepts nothing.
    pub fn check_value(&self, value: &Value) -> Result<(), (String, String)> {
        if let Some(kind) = self.kind
            && !kind.matches(value)
        {
            return Err((
                format!("of type {}", kind.name()),
                format!("got {}", json_type_of(value)),
            ));
        }
        if let Some(schema) = &self.schema {
            let expected = || "valid against its schema".to_string();
            let compiled = JsonSchema::compile(schema, Some(&self.name))
                .map_err(|e| (expected(), e.to_string()))?;
            compiled
                .validate(value)
                .map_err(|v| (expected(), v.to_string()))?;
        }
        Ok(())
    }
}

/// The candidate most like `wanted`, if it is alike enough to suggest in a
/// "did you mean" (Jaro-Winkler similarity at least 0.8):
///
/// ```
/// use dagger_dag_flow::closest_name;
/// assert_eq!(closest_name("acton", ["id", "action"]).as_deref(), Some("action"));
/// assert_eq!(closest_name("teleport", ["echo", "shell"]), None);
/// ```
pub fn closest_name<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// Checks the declaration (`inputs:`) and, when there is one, that every
/// `inputs.<key>` reference names a declared input.
pub(crate) fn check_declarations(
    def: &WorkflowDef,
    locs: &WorkflowLocations,
    out: &mut Vec<Found>,
) {
    let Some(declared) = &def.inputs else {
        return;
    };
    let mut seen = HashSet::with_capacity(declared.len());
    for (j, input) in declared.iter().enumerate() {
        let loc = locs.run_inputs.get(j);
        let entry = loc.and_then(|l| l.entry).or(locs.inputs_key);
        let label = if input.name.trim().is_empty() {
            format!("#{}", j + 1)
        } else {
            input.name.clone()
        };
        let mut push = |pos, message: String| {
            out.push((
                pos,
                LoadIssueKind::InvalidRunInput {
                    input: label.clone(),
                    message,
                },
            ));
        };
        let name_pos = loc.and_then(|l| l.name).or(entry);
        if input.name.trim().is_empty() {
            push(name_pos, "the name is empty".into());
        } else if input.name.contains(char::is_whitespace) {
            push(name_pos, "the name must not contain whitespace".into());
        } else if !seen.insert(input.name.as_str()) {
            push(name_pos, "declared twice".into());
        }
        if input.kind.is_some() && input.schema.is_some() {
            push(
                loc.and_then(|l| l.schema).or(entry),
                "give either `type` or `schema`, not both".into(),
            );
            continue;
        }
        if let Some(schema) = &input.schema
            && let Err(e) = JsonSchema::compile(schema, Some(&input.name))
        {
            push(loc.and_then(|l| l.schema).or(entry), e.to_string());
            continue;
        }
        if let Some(default) = &input.default
            && let Err((expected, message)) = input.check_value(default)
        {
            push(
                loc.and_then(|l| l.default).or(entry),
                format!("the default must be {expected}: {message}"),
            );
        }
    }
    for (i, node) in def.nodes.iter().enumerate() {
        for r in references(node, locs.nodes.get(i)) {
            if !matches!(ref_target(r.reference), RefTarget::RunInput) {
                continue;
            }
            let Some((_, key)) = dagger_core::InputSpec::split_reference(r.reference) else {
                continue;
            };
            if declared.iter().any(|d| d.name == key) {
                continue;
            }
            out.push((
                r.pos,
                LoadIssueKind::UndeclaredRunInput {
                    node: display_id(i, node),
                    site: r.site.clone(),
                    reference: r.reference.to_string(),
                    input: key.to_string(),
                    suggestion: closest_name(key, declared.iter().map(|d| d.name.as_str())),
                },
            ));
        }
    }
}

/// Checks the inputs given to a run of `def` against its declared `inputs:`
/// and returns them with the defaults applied. Every problem is reported at
/// once, each naming its input: a required input missing, a value of the
/// wrong type or against the schema, an input the workflow does not declare.
/// A workflow without `inputs:` accepts any inputs unchanged.
pub fn apply_run_inputs(
    def: &WorkflowDef,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, DagError> {
    let Some(declared) = &def.inputs else {
        return Ok(given.clone());
    };
    let mut problems = Vec::new();
    let mut out = Map::with_capacity(declared.len());
    for input in declared {
        match given.get(&input.name).or(input.default.as_ref()) {
            None => problems.push(RunInputProblem::Missing {
                input: input.name.clone(),
            }),
            Some(value) => {
                if let Err((expected, message)) = input.check_value(value) {
                    problems.push(RunInputProblem::WrongType {
                        input: input.name.clone(),
                        expected,
                        message,
                    });
                }
                out.insert(input.name.clone(), value.clone());
            }
        }
    }
    for name in given.keys() {
        if !declared.iter().any(|d| &d.name == name) {
            problems.push(RunInputProblem::Undeclared {
                input: name.clone(),
                suggestion: closest_name(name, declared.iter().map(|d| d.name.as_str())),
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(DagError::InvalidRunInputs {
            workflow: def.name.clone(),
            problems,
        })
    }
}

/// The declared inputs of `def` for people, one per line: name, type,
/// `required` or the default, description.
///
/// ```
/// let def = dagger_dag_flow::load_yaml_str(
///     "name: wf\ninputs:\n  - {name: n, type: integer, default: 3, description: how many}\n\
///      nodes:\n  - {id: a, action: echo, inputs: [{name: n, reference: inputs.n}]}\n",
///     "wf.yaml",
/// )
/// .unwrap();
/// assert_eq!(
///     dagger_dag_flow::run_inputs_help(&def),
///     "inputs of workflow `wf`:\n  n  integer  default 3  how many\n"
/// );
/// ```
pub fn run_inputs_help(def: &WorkflowDef) -> String {
    let Some(declared) = &def.inputs else {
        return format!(
            "workflow `{}` declares no inputs (`inputs:`); any --input is accepted\n",
            def.name
        );
    };
    if declared.is_empty() {
        return format!("workflow `{}` takes no inputs\n", def.name);
    }
    let rows: Vec<[String; 4]> = declared
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.type_label(),
                d.default
                    .as_ref()
                    .map_or_else(|| "required".to_string(), |v| format!("default {v}")),
                d.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let width = |k: usize| rows.iter().map(|r| r[k].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut text = format!("inputs of workflow `{}`:\n", def.name);
    for [name, kind, default, description] in rows {
        let line = format!("  {name:w0$}  {kind:w1$}  {default:w2$}  {description}");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
