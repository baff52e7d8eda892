//! Actions: the pure units of computation a node runs, and their registry.

use crate::cache_view::CacheView;
use dagger_core::store::LogSink;
use dagger_core::{BoxError, Cache, JsonSchema, NodeId, RunId};
use parking_lot::RwLock;
use serde_json::{Map, Value};
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use tokio_util::sync::CancellationToken;

/// What an action returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeOutput {
    /// The outputs, usually an object whose keys are the node's declared outputs.
    pub outputs: Value,
    /// Whether the action succeeded; `false` fails the attempt with `outputs` as the error detail.
    pub success: bool,
    /// Metadata: `tokens` (a number) counts toward `max_tokens`; `branches`
    /// (a list of node ids) selects which direct dependents run;
    /// `cache_hit` (set by the coordinator) marks a reused output.
    pub metadata: Map<String, Value>,
}

impl NodeOutput {
    /// A successful output.
    pub fn success(outputs: Value) -> Self {
        Self {
            outputs,
            success: true,
            metadata: Map::new(),
        }
    }

    /// A failed output; `detail` explains why (any JSON value, or text:
    /// `NodeOutput::failure("no valid data")`).
    pub fn failure(detail: impl Into<Value>) -> Self {
        Self {
            outputs: detail.into(),
            success: false,
            metadata: Map::new(),
        }
    }

    /// Adds a metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    /// Reports token usage, counted against the run's `max_tokens`.
    pub fn with_tokens(self, tokens: u64) -> Self {
        self.with_metadata("tokens", Value::from(tokens))
    }

    /// Selects the direct dependents that run; the other direct dependents
    /// (and what only they lead to) are Skipped with the reason.
    pub fn select_branches<I, S>(self, node_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let ids: Vec<Value> = node_ids
            .into_iter()
            .map(|s| Value::String(s.into()))
            .collect();
        self.with_metadata("branches", Value::Array(ids))
    }

    /// The tokens reported in metadata (0 when none).
    pub fn tokens(&self) -> u64 {
        self.metadata
            .get("tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Whether this output was reused from an earlier execution of the same
    /// action on the same inputs (a node with `cache: true`), not computed:
    /// metadata `cache_hit`, set by the coordinator.
    pub fn cache_hit(&self) -> bool {
        self.metadata
            .get("cache_hit")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The selected branches, when the action selected any.
    pub fn branches(&self) -> Option<Vec<String>> {
        self.metadata.get("branches")?.as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    }
}

/// Everything an action may see while it runs. Actions never touch the executor.
#[derive(Clone)]
pub struct NodeCtx {
    /// The workflow's name.
    pub dag_name: Arc<str>,
    /// The run.
    pub run_id: RunId,
    /// The node.
    pub node_id: NodeId,
    /// `""` for a plain node; the element's index for a fanned-out invocation.
    pub invocation_key: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// Resolved inputs by name (shared with the cache, never copied).
    pub inputs: NodeInputs,
    /// Read access to the run's cache: `ctx.cache.get(namespace, key)?`
    /// (an error on a remote worker, which has the node's inputs only).
    pub cache: CacheView,
    /// Stable across attempts and resumes of this invocation: use it to make side effects idempotent.
    pub idempotency_key: String,
    /// Cancelled when the node times out, the run is cancelled or halts.
    pub cancel: CancellationToken,
    /// Application data given to the executor.
    pub app_data: Option<Arc<dyn Any + Send + Sync>>,
    /// Where the attempt's log lines and captured streams go; they land in
    /// the attempt's record (`dagger logs`). Use [`NodeCtx::log`].
    pub logs: LogSink,
}

impl NodeCtx {
    /// A context for calling an action directly (tests, tools).
    pub fn for_test(node_id: &str, inputs: Map<String, Value>) -> Self {
        let inputs = NodeInputs::from_map(inputs);
        Self {
            dag_name: Arc::from("test"),
            run_id: RunId::from("test-run"),
            node_id: NodeId::from(node_id),
            invocation_key: String::new(),
            attempt: 1,
            inputs,
            cache: CacheView::new(Cache::new()),
            idempotency_key: format!("test-run/{node_id}/"),
            cancel: CancellationToken::new(),
            app_data: None,
            logs: LogSink::new(),
        }
    }

    /// Writes a log line into this attempt's record (bounded: see
    /// [`dagger_core::store::LOG_LIMIT`]); shown by `dagger logs` and the
    /// run page. Dropped when the run records nothing (durability `Memory`).
    pub fn log(&self, line: impl Into<String>) {
        self.logs.log(line);
    }

    /// The application data, if it is a `T`.
    pub fn app_data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.app_data.as_deref()?.downcast_ref::<T>()
    }

    /// The input `name`, or an error naming it.
    pub fn input(&self, name: &str) -> Result<&Value, BoxError> {
        self.inputs
            .get(name)
            .ok_or_else(|| format!("node `{}`: missing input `{name}`", self.node_id).into())
    }

    /// The input `name` deserialized to `T`, or an error naming it.
    pub fn input_as<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, BoxError> {
        let v = self.input(name)?;
        T::deserialize(v)
            .map_err(|e| format!("node `{}`: input `{name}`: {e}", self.node_id).into())
    }
}

impl fmt::Debug for NodeCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCtx")
            .field("dag_name", &self.dag_name)
            .field("run_id", &self.run_id)
            .field("node_id", &self.node_id)
            .field("invocation_key", &self.invocation_key)
            .field("attempt", &self.attempt)
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

/// The resolved inputs of a node: name -> value, the values shared with the
/// cache through `Arc`. Reads like a JSON map: `inputs.get("x")`, `inputs["x"]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInputs {
    /// Inline up to two inputs (most nodes): resolving them allocates nothing.
    entries: smallvec::SmallVec<[(Arc<str>, Arc<Value>); 2]>,
}

static NULL: Value = Value::Null;

impl NodeInputs {
    /// No inputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inputs copied from a JSON map.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self {
            entries: map
                .into_iter()
                .map(|(k, v)| (Arc::from(k), Arc::new(v)))
                .collect(),
        }
    }

    /// Sets (or replaces) an input.
    pub fn insert(&mut self, name: &str, value: Arc<Value>) {
        match self.entries.iter_mut().find(|(k, _)| &**k == name) {
            Some(slot) => slot.1 = value,
            None => self
                .entries
                .push((dagger_core::cache::shared_name(name), value)),
        }
    }

    /// The input `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }

    /// The shared input `name`.
    pub fn get_arc(&self, name: &str) -> Option<&Arc<Value>> {
        self.entries
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v)
    }

    /// Whether input `name` exists.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(name, value)` pairs in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The inputs as a JSON object (copies the values).
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.entries
                .iter()
                .map(|(k, v)| (k.to_string(), (**v).clone()))
                .collect(),
        )
    }
}

impl std::ops::Index<&str> for NodeInputs {
    type Output = Value;

    /// The input, or `null` when absent (like `serde_json::Value`'s indexing).
    fn index(&self, name: &str) -> &Value {
        self.get(name).unwrap_or(&NULL)
    }
}

/// A unit of computation. Pure: it reads its context and returns an output.
#[async_trait::async_trait]
pub trait NodeAction: Send + Sync + 'static {
    /// The name workflows use in `action:`.
    fn name(&self) -> &str;

    /// What the action does.
    fn description(&self) -> &str {
        ""
    }

    /// Schema the resolved inputs (as an object) must match before the action runs.
    fn input_schema(&self) -> Option<&JsonSchema> {
        None
    }

    /// Schema the outputs must match after the action runs.
    fn output_schema(&self) -> Option<&JsonSchema> {
        None
    }

    /// Runs the action.
    async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, BoxError>;
}

/// Actions by name. Cheap to clone; registration works through a shared reference.
///
/// [`ActionRegistry::new`] is an isolated registry: it holds what is
/// registered into it and nothing else; hand it to the executor
/// ([`crate::DagExecutor::new`]). [`ActionRegistry::default`] is the
/// *process registry*: besides what is registered into it, it sees every
/// action registered into any other registry of the process while that
/// registry is alive (the latest registration of a name wins). It exists for
/// the seed guide's form `DagExecutor::new(None, Arc::new(Default::default()),
/// "sqlite:…").await`, where actions are registered into a registry the executor
/// is never given; passing the registry itself is the better form.
#[derive(Clone)]
pub struct ActionRegistry {
    actions: Arc<RwLock<HashMap<String, Arc<dyn NodeAction>>>>,
    /// Whether lookups also see the process's registrations.
    process_view: bool,
}

/// Every registration of the process, held weakly: an action lives as long
/// as a registry that holds it.
static PROCESS_ACTIONS: std::sync::LazyLock<RwLock<HashMap<String, Weak<dyn NodeAction>>>> =
    std::sync::LazyLock::new(|| RwLock::new(HashMap::new()));

impl Default for ActionRegistry {
    /// The process registry (see the type's documentation); prefer
    /// [`ActionRegistry::new`].
    fn default() -> Self {
        Self {
            actions: Arc::default(),
            process_view: true,
        }
    }
}

impl ActionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            actions: Arc::default(),
            process_view: false,
        }
    }

    /// Registers an action under its name, replacing one of the same name.
    pub fn register(&self, action: Arc<dyn NodeAction>) {
        let name = action.name().to_string();
        {
            let mut process = PROCESS_ACTIONS.write();
            process.retain(|_, a| a.strong_count() > 0);
            process.insert(name.clone(), Arc::downgrade(&action));
        }
        self.actions.write().insert(name, action);
    }

    /// The action with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn NodeAction>> {
        let own = self.actions.read().get(name).cloned();
        match own {
            Some(action) => Some(action),
            None if self.process_view => PROCESS_ACTIONS.read().get(name)?.upgrade(),
            None => None,
        }
    }

    /// Whether an action with this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.actions.read().keys().cloned().collect();
        if self.process_view {
            names.extend(
                PROCESS_ACTIONS
                    .read()
                    .iter()
                    .filter(|(_, a)| a.strong_count() > 0)
                    .map(|(n, _)| n.clone()),
            );
        }
        names.sort();
        names.dedup();
        names
    }
}

impl From<Arc<ActionRegistry>> for ActionRegistry {
    /// The shared registry itself (registries are handles: the clone sees
    /// the same actions).
    fn from(registry: Arc<ActionRegistry>) -> Self {
        (*registry).clone()
    }
}

impl From<&ActionRegistry> for ActionRegistry {
    fn from(registry: &ActionRegistry) -> Self {
        registry.clone()
    }
}

impl fmt::Debug for ActionRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionRegistry")
            .field("actions", &self.names())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl NodeAction for Named {
        fn name(&self) -> &str {
            self.0
        }

        async fn execute(&self, _ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
            Ok(NodeOutput::success(Value::Null))
        }
    }

    #[test]
    fn the_process_registry_sees_live_registrations_and_new_registries_do_not() {
        let user = ActionRegistry::new();
        user.register(Arc::new(Named("process_view_probe")));
        let process = ActionRegistry::default();
        assert!(process.contains("process_view_probe"));
        assert!(process.names().contains(&"process_view_probe".to_string()));
        assert!(!ActionRegistry::new().contains("process_view_probe"));
        // Through an `Arc`, as `DagExecutor::new` receives it: the same view.
        assert!(
            ActionRegistry::from(Arc::new(ActionRegistry::default()))
                .contains("process_view_probe")
        );
        drop(user);
        assert!(
            !process.contains("process_view_probe"),
            "dropped with its registry"
        );
    }
}
