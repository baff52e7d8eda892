//! Builds a [`WorkflowDef`] from a parsed YAML tree field by field, reporting
//! every unknown, repeated, missing or mistyped field with its position and
//! going on, so one load reports all of them. Broken fields take their
//! default; the semantic checks then run on what could be read.

use crate::config::DagConfigOverride;
use crate::error::LoadIssueKind;
use crate::model::{NodeDef, OutputSpec, RunInputDef, WorkflowDef};
use crate::run_inputs::closest_name as closest;
use crate::schedule::{Schedule, ScheduleDef};
use crate::validate::{Found, InputLocations, NodeLocations, RunInputLocations, WorkflowLocations};
use crate::yaml::{DeError, DeErrorKind, NodeDe, Pos, Source, YNode, YValue, expected_list};
use dagger_core::InputSpec;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;
use std::collections::HashSet;

const WORKFLOW_FIELDS: &[&str] = &[
    "name",
    "description",
    "author",
    "version",
    "signature",
    "tags",
    "config",
    "inputs",
    "schedules",
    "nodes",
];
const NODE_FIELDS: &[&str] = &[
    "id",
    "dependencies",
    "action",
    "inputs",
    "outputs",
    "failure",
    "onfailure",
    "timeout",
    "try_count",
    "description",
    "map_over",
    "cache",
    "when",
    "approval",
    "sleep",
    "wait_until",
    "wait_for",
];
const INPUT_FIELDS: &[&str] = &["name", "description", "reference", "value"];
const OUTPUT_FIELDS: &[&str] = &["name", "description"];
const RUN_INPUT_FIELDS: &[&str] = &["name", "type", "schema", "default", "description"];

/// The non-blank string value of field `name`, to name an entry in messages.
fn str_field<'t>(entries: &'t [(YNode, YNode)], name: &str) -> Option<&'t str> {
    entries
        .iter()
        .find_map(|(k, v)| match (&k.value, &v.value) {
            (YValue::Str(k), YValue::Str(v)) if k == name && !v.trim().is_empty() => {
                Some(v.as_str())
            }
            _ => None,
        })
}

/// One field of a mapping: its name, key and value.
struct Field<'t> {
    name: &'t str,
    key: &'t YNode,
    value: &'t YNode,
}

/// The walker: the source text (for spellings of scalars) and what it found.
pub(crate) struct Shape<'t> {
    src: &'t Source<'t>,
    pub(crate) found: Vec<Found>,
}

impl<'t> Shape<'t> {
    pub(crate) fn new(src: &'t Source<'t>) -> Self {
        Self {
            src,
            found: Vec::new(),
        }
    }

    fn push(&mut self, pos: Option<Pos>, kind: LoadIssueKind) {
        self.found.push((pos, kind));
    }

    /// Reads a typed value, or reports why it cannot.
    fn typed<T: DeserializeOwned>(
        &mut self,
        node: &YNode,
        context: &str,
        field: &str,
    ) -> Option<T> {
        match T::deserialize(NodeDe::new(node, self.src)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(
                    e.pos.or(node.pos),
                    LoadIssueKind::WrongType {
                        context: context.to_string(),
                        field: field.to_string(),
                        // serde calls YAML's null a "unit value".
                        message: e.message.replace("unit value", "null"),
                    },
                );
                None
            }
        }
    }

    /// The known, first-given fields of a mapping; reports the others.
    fn fields(
        &mut self,
        entries: &'t [(YNode, YNode)],
        context: &str,
        known: &[&str],
    ) -> Vec<Field<'t>> {
        // `out` only ever holds known fields (a dozen at most), so a linear
        // search for repeats is cheaper than hashing.
        let mut out: Vec<Field<'t>> = Vec::with_capacity(entries.len().min(known.len()));
        for (key, value) in entries {
            let name = key.scalar_text(self.src).unwrap_or("<non-scalar key>");
            if !known.contains(&name) {
                self.push(
                    key.pos,
                    LoadIssueKind::UnknownField {
                        context: context.to_string(),
                        field: name.to_string(),
                        expected: expected_list(known),
                        suggestion: closest(name, known.iter().copied()),
                    },
                );
            } else if out.iter().any(|f| f.name == name) {
                self.push(
                    key.pos,
                    LoadIssueKind::DuplicateField {
                        context: context.to_string(),
                        field: name.to_string(),
                    },
                );
            } else {
                out.push(Field { name, key, value });
            }
        }
        out
    }

    /// The items of a list field (`null` reads as empty), or reports it.
    fn list(&mut self, node: &'t YNode, context: &str, field: &str) -> &'t [YNode] {
        match &node.value {
            YValue::Seq(items) => items,
            YValue::Null => &[],
            other => {
                self.push(
                    node.pos,
                    LoadIssueKind::WrongType {
                        context: context.to_string(),
                        field: field.to_string(),
                        message: format!("expected a list, found {}", other.describe()),
                    },
                );
                &[]
            }
        }
    }

    /// The entries of a mapping item, or reports it.
    fn mapping(&mut self, node: &'t YNode, context: &str) -> Option<&'t [(YNode, YNode)]> {
        match &node.value {
            YValue::Map(entries) => Some(entries),
            other => {
                self.push(
                    node.pos,
                    LoadIssueKind::ExpectedMapping {
                        context: context.to_string(),
                        found: other.describe(),
                    },
                );
                None
            }
        }
    }

    /// Reads the workflow at the root of the document.
    pub(crate) fn workflow(&mut self, root: &'t YNode) -> (WorkflowDef, WorkflowLocations) {
        let mut def = WorkflowDef {
            name: String::new(),
            description: None,
            author: None,
            version: None,
            signature: None,
            tags: Vec::new(),
            config: None,
            inputs: None,
            schedules: Vec::new(),
            nodes: Vec::new(),
        };
        let mut locs = WorkflowLocations {
            root: root.pos,
            ..WorkflowLocations::default()
        };
        let YValue::Map(entries) = &root.value else {
            return (def, locs);
        };
        let ctx = "workflow";
        let fields = self.fields(entries, ctx, WORKFLOW_FIELDS);
        let (mut has_name, mut has_nodes) = (false, false);
        for f in &fields {
            let v = f.value;
            match f.name {
                "name" => {
                    has_name = true;
                    locs.name = v.pos;
                    match self.typed(v, ctx, "name") {
                        Some(name) => def.name = name,
                        None => locs.name_reported = true,
                    }
                }
                "description" => def.description = self.typed(v, ctx, f.name).flatten(),
                "author" => def.author = self.typed(v, ctx, f.name).flatten(),
                "version" => def.version = self.typed(v, ctx, f.name).flatten(),
                "signature" => def.signature = self.typed(v, ctx, f.name).flatten(),
                "tags" => {
                    def.tags = self
                        .typed::<Option<Vec<String>>>(v, ctx, f.name)
                        .flatten()
                        .unwrap_or_default();
                }
                "config" => def.config = self.config(v, &mut locs),
                "inputs" => {
                    locs.inputs_key = f.key.pos;
                    let mut declared = Vec::new();
                    for (j, item) in self.list(v, ctx, "inputs").iter().enumerate() {
                        if let Some((input, loc)) = self.run_input(j, item) {
                            declared.push(input);
                            locs.run_inputs.push(loc);
                        }
                    }
                    def.inputs = Some(declared);
                }
                "schedules" => {
                    for (j, item) in self.list(v, ctx, "schedules").iter().enumerate() {
                        let Some(schedule) = self.schedule(j, item) else {
                            continue;
                        };
                        if def.schedules.iter().any(|s| s.name == schedule.name) {
                            self.push(
                                item.pos,
                                LoadIssueKind::WrongType {
                                    context: format!("schedules[{j}]"),
                                    field: "name".into(),
                                    message: format!(
                                        "a schedule named `{}` is given before",
                                        schedule.name
                                    ),
                                },
                            );
                            continue;
                        }
                        def.schedules.push(schedule);
                    }
                }
                _ => {
                    has_nodes = true;
                    locs.nodes_key = f.key.pos;
                    if !matches!(v.value, YValue::Seq(_) | YValue::Null) {
                        locs.nodes_reported = true;
                    }
                    for (i, item) in self.list(v, ctx, "nodes").iter().enumerate() {
                        let (node, loc) = self.node(i, item);
                        def.nodes.push(node);
                        locs.nodes.push(loc);
                    }
                }
            }
        }
        for (present, field) in [(has_name, "name"), (has_nodes, "nodes")] {
            if !present {
                self.push(
                    root.pos,
                    LoadIssueKind::MissingField {
                        context: ctx.into(),
                        field,
                    },
                );
            }
        }
        locs.name_reported |= !has_name;
        locs.nodes_reported |= !has_nodes;
        (def, locs)
    }

    /// Reads schedule `j` of `schedules:` and checks it (cron expression,
    /// time zone, durations), reporting a problem at the field it is in.
    fn schedule(&mut self, j: usize, item: &'t YNode) -> Option<ScheduleDef> {
        let ctx = format!("schedules[{j}]");
        let def: ScheduleDef = self.typed(item, &ctx, "schedule")?;
        if let Err(e) = Schedule::new("", def.clone()) {
            let pos = match &item.value {
                YValue::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.scalar_text(self.src) == Some(e.field))
                    .map_or(item.pos, |(_, v)| v.pos),
                _ => item.pos,
            };
            self.push(
                pos,
                LoadIssueKind::WrongType {
                    context: ctx,
                    field: e.field.to_string(),
                    message: e.message,
                },
            );
            return None;
        }
        Some(def)
    }

    /// Reads `config:`: each field on its own, so every bad field is
    /// reported, then the good ones together.
    fn config(
        &mut self,
        node: &'t YNode,
        locs: &mut WorkflowLocations,
    ) -> Option<DagConfigOverride> {
        locs.config = node.pos;
        if matches!(node.value, YValue::Null) {
            return None;
        }
        let entries = self.mapping(node, "config")?;
        let mut seen = HashSet::with_capacity(entries.len());
        let mut good = Vec::with_capacity(entries.len());
        for entry @ (key, value) in entries {
            let name = key.scalar_text(self.src).unwrap_or("<non-scalar key>");
            if !seen.insert(name) {
                self.push(
                    key.pos,
                    LoadIssueKind::DuplicateField {
                        context: "config".into(),
                        field: name.to_string(),
                    },
                );
                continue;
            }
            match self.config_from(std::slice::from_ref(entry)) {
                Ok(_) => {
                    if let Some(pos) = value.pos {
                        locs.config_fields.insert(name.to_string(), pos);
                    }
                    good.push(entry);
                }
                Err(e) => {
                    let kind = match e.kind {
                        DeErrorKind::UnknownField { field, expected } => {
                            LoadIssueKind::UnknownField {
                                context: "config".into(),
                                suggestion: closest(
                                    &field,
                                    expected.split(", ").map(|f| f.trim_matches('`')),
                                ),
                                field,
                                expected,
                            }
                        }
                        DeErrorKind::Other => LoadIssueKind::WrongType {
                            context: "config".into(),
                            field: name.to_string(),
                            message: e.message,
                        },
                    };
                    self.push(e.pos.or(key.pos), kind);
                }
            }
        }
        match self.config_from(good) {
            Ok(config) => Some(config),
            Err(e) => {
                // Each field was read alone above; together they cannot fail
                // unless the model changed under us. Report rather than panic.
                self.push(
                    e.pos.or(node.pos),
                    LoadIssueKind::WrongType {
                        context: "config".into(),
                        field: "config".into(),
                        message: e.message,
                    },
                );
                None
            }
        }
    }

    fn config_from<'e>(
        &self,
        entries: impl IntoIterator<Item = &'e (YNode, YNode)>,
    ) -> Result<DagConfigOverride, DeError> {
        let src = self.src;
        DagConfigOverride::deserialize(MapDeserializer::new(
            entries
                .into_iter()
                .map(|(k, v)| (NodeDe::new(k, src), NodeDe::new(v, src))),
        ))
    }

    /// Reads node `i` of `nodes:`.
    fn node(&mut self, i: usize, item: &'t YNode) -> (NodeDef, NodeLocations) {
        let mut node = NodeDef::default();
        let mut loc = NodeLocations {
            entry: item.pos,
            ..NodeLocations::default()
        };
        let mut ctx = format!("node #{}", i + 1);
        let Some(entries) = self.mapping(item, &ctx) else {
            loc.id_reported = true;
            loc.action_reported = true;
            return (node, loc);
        };
        // Name the node by its id in every message, when it has a usable one.
        if let Some(id) = str_field(entries, "id") {
            ctx = format!("node `{id}`");
        }
        let fields = self.fields(entries, &ctx, NODE_FIELDS);
        let (mut has_id, mut has_action) = (false, false);
        if let Some(f) = fields.iter().find(|f| f.name == "id") {
            has_id = true;
            loc.id = f.value.pos;
            match self.typed::<String>(f.value, &ctx, "id") {
                Some(id) => node.id = id,
                None => loc.id_reported = true,
            }
        }
        for f in &fields {
            let v = f.value;
            let c = ctx.as_str();
            match f.name {
                "id" => {}
                "dependencies" => {
                    for dep in self.list(v, c, "dependencies") {
                        if let Some(d) = self.typed::<String>(dep, c, "dependencies") {
                            node.dependencies.push(d);
                            loc.dependencies.push(dep.pos);
                        }
                    }
                }
                "action" => {
                    has_action = true;
                    loc.action = v.pos;
                    match self.typed(v, c, "action") {
                        Some(action) => node.action = action,
                        None => loc.action_reported = true,
                    }
                }
                "inputs" => {
                    for (j, input) in self.list(v, c, "inputs").iter().enumerate() {
                        if let Some((spec, iloc)) = self.input(c, j, input) {
                            node.inputs.push(spec);
                            loc.inputs.push(iloc);
                        }
                    }
                }
                "outputs" => {
                    for (j, output) in self.list(v, c, "outputs").iter().enumerate() {
                        if let Some(spec) = self.output(c, j, output) {
                            node.outputs.push(spec);
                            loc.outputs.push(output.pos);
                        }
                    }
                }
                "failure" => {
                    loc.failure = v.pos;
                    node.failure = self.typed(v, c, f.name).flatten();
                }
                "onfailure" => node.onfailure = self.typed(v, c, f.name).unwrap_or_default(),
                "timeout" => {
                    loc.timeout = v.pos;
                    node.timeout = self.typed(v, c, f.name).flatten();
                }
                "try_count" => {
                    loc.try_count = v.pos;
                    node.try_count = self.typed(v, c, f.name).flatten();
                }
                "description" => node.description = self.typed(v, c, f.name).flatten(),
                "map_over" => {
                    loc.map_over = v.pos;
                    node.map_over = self.typed(v, c, f.name).flatten();
                }
                "cache" => node.cache = self.typed(v, c, f.name).unwrap_or_default(),
                "when" => {
                    loc.when = v.pos;
                    node.when = self.typed(v, c, f.name).flatten();
                }
                "sleep" => {
                    loc.wait = v.pos;
                    node.sleep = self.typed(v, c, f.name).flatten();
                }
                "wait_until" => {
                    loc.wait = v.pos;
                    node.wait_until = self.typed(v, c, f.name).flatten();
                }
                "wait_for" => {
                    loc.wait = v.pos;
                    node.wait_for = self.typed(v, c, f.name).flatten();
                }
                _ => node.approval = self.typed(v, c, f.name).flatten(),
            }
        }
        // A waiting node has no action (see `wait.rs`).
        let has_action = has_action || node.is_wait();
        for (present, field) in [(has_id, "id"), (has_action, "action")] {
            if !present {
                self.push(
                    item.pos,
                    LoadIssueKind::MissingField {
                        context: ctx.clone(),
                        field,
                    },
                );
            }
        }
        loc.id_reported |= !has_id;
        loc.action_reported |= !has_action;
        (node, loc)
    }

    /// Reads input `j` of a node.
    fn input(
        &mut self,
        node_ctx: &str,
        j: usize,
        item: &'t YNode,
    ) -> Option<(InputSpec, InputLocations)> {
        let mut ctx = format!("{node_ctx}, input #{}", j + 1);
        let entries = self.mapping(item, &ctx)?;
        let mut spec = InputSpec::default();
        let mut loc = InputLocations {
            entry: item.pos,
            ..InputLocations::default()
        };
        if let Some(name) = str_field(entries, "name") {
            ctx = format!("{node_ctx}, input `{name}`");
        }
        let fields = self.fields(entries, &ctx, INPUT_FIELDS);
        match fields.iter().find(|f| f.name == "name") {
            Some(f) => {
                loc.name = f.value.pos;
                match self.typed::<String>(f.value, &ctx, "name") {
                    Some(name) => spec.name = name,
                    None => loc.name_reported = true,
                }
            }
            None => {
                loc.name_reported = true;
                self.push(
                    item.pos,
                    LoadIssueKind::MissingField {
                        context: ctx.clone(),
                        field: "name",
                    },
                );
            }
        }
        for f in &fields {
            match f.name {
                "name" => {}
                "description" => spec.description = self.typed(f.value, &ctx, f.name).flatten(),
                "reference" => {
                    loc.reference = f.value.pos;
                    spec.reference = self.typed(f.value, &ctx, f.name).flatten();
                }
                // A literal of any type; `value: null` is a null literal.
                _ => spec.value = self.typed(f.value, &ctx, f.name),
            }
        }
        Some((spec, loc))
    }

    /// Reads run input `j` of the workflow's `inputs:`.
    fn run_input(&mut self, j: usize, item: &'t YNode) -> Option<(RunInputDef, RunInputLocations)> {
        let mut ctx = format!("run input #{}", j + 1);
        let entries = self.mapping(item, &ctx)?;
        if let Some(name) = str_field(entries, "name") {
            ctx = format!("run input `{name}`");
        }
        let mut def = RunInputDef::default();
        let mut loc = RunInputLocations {
            entry: item.pos,
            ..RunInputLocations::default()
        };
        let fields = self.fields(entries, &ctx, RUN_INPUT_FIELDS);
        let mut has_name = false;
        for f in &fields {
            let v = f.value;
            match f.name {
                "name" => {
                    has_name = true;
                    loc.name = v.pos;
                    def.name = self.typed(v, &ctx, f.name)?;
                }
                "type" => {
                    loc.kind = v.pos;
                    def.kind = self.typed(v, &ctx, f.name)?;
                }
                "schema" => {
                    loc.schema = v.pos;
                    def.schema = Some(self.typed(v, &ctx, f.name)?);
                }
                "default" => {
                    loc.default = v.pos;
                    def.default = Some(self.typed(v, &ctx, f.name)?);
                }
                _ => def.description = self.typed(v, &ctx, f.name).flatten(),
            }
        }
        if !has_name {
            self.push(
                item.pos,
                LoadIssueKind::MissingField {
                    context: ctx,
                    field: "name",
                },
            );
            return None;
        }
        Some((def, loc))
    }

    /// Reads output `j` of a node.
    fn output(&mut self, node_ctx: &str, j: usize, item: &'t YNode) -> Option<OutputSpec> {
        let ctx = format!("{node_ctx}, output #{}", j + 1);
        let entries = self.mapping(item, &ctx)?;
        let mut spec = OutputSpec::default();
        let fields = self.fields(entries, &ctx, OUTPUT_FIELDS);
        let mut has_name = false;
        for f in &fields {
            if f.name == "name" {
                has_name = true;
                spec.name = self.typed(f.value, &ctx, f.name)?;
            } else {
                spec.description = self.typed(f.value, &ctx, f.name).flatten();
            }
        }
        if !has_name {
            self.push(
                item.pos,
                LoadIssueKind::MissingField {
                    context: ctx,
                    field: "name",
                },
            );
            return None;
        }
        Some(spec)
    }
}
