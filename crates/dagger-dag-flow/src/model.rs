//! The workflow definition model, as written in YAML.

use crate::config::DagConfigOverride;
pub use dagger_core::InputSpec;
use serde::{Deserialize, Serialize};

/// A workflow: metadata, optional config overrides and nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// Unique name of the workflow.
    pub name: String,
    /// What the workflow does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A signature or fingerprint given by the author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Tags for filtering (`list_dags_by_tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Overrides of the executor's configuration for this workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<DagConfigOverride>,
    /// The run inputs the workflow declares (`inputs:`), checked before any
    /// node runs. `None`: undeclared, any `inputs.<key>` is accepted as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<RunInputDef>>,
    /// The schedules that start runs of the workflow on their own
    /// (`schedules:`; see [`crate::schedule`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<crate::schedule::ScheduleDef>,
    /// The nodes.
    pub nodes: Vec<NodeDef>,
}

/// One node of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    /// Unique id within the workflow.
    pub id: String,
    /// Ids of the nodes that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// The registered action to run.
    pub action: String,
    /// Inputs: each a reference or a literal value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputSpec>,
    /// Declared outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputSpec>,
    /// An action run once when this node finally fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// When true, dependents run even if this node fails.
    #[serde(default, skip_serializing_if = "is_false")]
    pub onfailure: bool,
    /// Timeout of one attempt, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Attempts (default: the config's `max_attempts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub try_count: Option<u32>,
    /// What the node does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fan-out: a reference to a list; the node runs once per element, which
    /// it receives as input `item` (and its position as `index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_over: Option<String>,
    /// Memoize: reuse the output of an earlier completed execution of the same
    /// action with the same inputs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cache: bool,
    /// Condition: a reference; the node runs only when the value is truthy
    /// (not `false`, `null`, `0`, `""`, `[]` or `{}`), else it is Skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Human in the loop: the node waits for approval with this prompt before
    /// it runs; the human's input becomes its input `human_input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Durable timer: once ready, the node waits this long (`90s`, `10m`,
    /// `2h`; see [`crate::schedule::parse_duration_ms`]) and completes. Its
    /// wake-up time is recorded, so it survives a restart (see `docs/timers.md`).
    /// A waiting node has no `action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<String>,
    /// Durable timer: once ready, the node waits until this time (RFC 3339,
    /// or `{{ inputs.at }}` / `{{ node.key }}` naming one) and completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<String>,
    /// Once ready, the node waits for a named signal; its output is the
    /// signal's payload (see [`crate::wait::WaitFor`] and `docs/signals.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<crate::wait::WaitFor>,
}

impl NodeDef {
    /// Whether the node waits (`sleep`, `wait_until` or `wait_for`) instead
    /// of running an action.
    pub fn is_wait(&self) -> bool {
        self.sleep.is_some() || self.wait_until.is_some() || self.wait_for.is_some()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A declared output of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The output's name (the key in the node's output object).
    pub name: String,
    /// What it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A run input a workflow declares: required unless it has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunInputDef {
    /// The input's name (`inputs.<name>` in references).
    pub name: String,
    /// Its JSON type, when given (exclusive with `schema`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<JsonType>,
    /// A JSON Schema its value must match, when given (exclusive with `type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// The value used when the run is given none; without one the input is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The JSON types a run input may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// A string.
    String,
    /// Any number.
    Number,
    /// A number without a fractional part.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// A mapping.
    Object,
    /// `null`.
    Null,
}

/// A workflow's metadata, without its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagMetadata {
    /// Name.
    pub name: String,
    /// Description (empty when not given).
    pub description: String,
    /// Author (empty when not given).
    pub author: String,
    /// Version (empty when not given).
    pub version: String,
    /// Signature (empty when not given).
    pub signature: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Number of nodes.
    pub node_count: usize,
}

impl WorkflowDef {
    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&NodeDef> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The metadata of this workflow.
    pub fn metadata(&self) -> DagMetadata {
        DagMetadata {
            name: self.name.clone(),
            description: self.description.clone().unwrap_or_default(),
            author: self.author.clone().unwrap_or_default(),
            version: self.version.clone().unwrap_or_default(),
            signature: self.signature.clone().unwrap_or_default(),
            tags: self.tags.clone(),
            node_count: self.nodes.len(),
        }
    }
}
