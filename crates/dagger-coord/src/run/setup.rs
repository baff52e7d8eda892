//! Everything a run needs before its loop starts: the node table built
//! from the workflow and the registry, and recorded progress (resume).

use crate::coordinator::Coordinator;
use crate::error::CoordError;
use crate::machine::RestoredFanOut;
use crate::machine::graph::{ActionRef, DefHandle, NodeState, RunGraph};
use crate::persist::Recorded;
use crate::worker::RunAction;
use dagger_core::store::Durability;
use dagger_core::{Cache, NodeStatus, RunId, Stores};
use dagger_dag_flow::{ActionRegistry, DagConfig, DagExecutor, NodeAction, NodeDef, WorkflowDef};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Everything a run needs before its loop starts.
pub(crate) struct Setup {
    pub(crate) wf: Arc<WorkflowDef>,
    pub(crate) added: Vec<Arc<NodeDef>>,
    pub(crate) graph: RunGraph,
    pub(crate) config: DagConfig,
    pub(crate) registry: ActionRegistry,
    /// The distinct actions of the workflow's nodes (what their [`ActionRef`]s index).
    pub(crate) actions: Vec<RunAction>,
    pub(crate) failure_actions: HashMap<String, Arc<dyn NodeAction>>,
    pub(crate) stores: Stores,
    pub(crate) cache: Cache,
    pub(crate) app_data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    pub(crate) run_id: RunId,
    pub(crate) restored_invocations: HashMap<u32, RestoredFanOut>,
    /// Signals nodes took before (resume).
    pub(crate) consumed_signals: HashSet<u64>,
}

/// The action of a waiting node (`sleep`, `wait_until`, `wait_for`): the
/// machine ends such a node itself and never starts an attempt of it.
struct WaitNode;

#[async_trait::async_trait]
impl NodeAction for WaitNode {
    fn name(&self) -> &str {
        "wait"
    }

    async fn execute(
        &self,
        ctx: &dagger_dag_flow::NodeCtx,
    ) -> Result<dagger_dag_flow::NodeOutput, dagger_core::BoxError> {
        Err(format!("node `{}` waits; it has no action to run", ctx.node_id).into())
    }
}

impl Setup {
    pub(crate) fn new(
        coord: &Coordinator,
        executor: &DagExecutor,
        cache: &Cache,
        wf: Arc<WorkflowDef>,
        added: Vec<NodeDef>,
        mut config: DagConfig,
        run_id: RunId,
    ) -> Result<Self, CoordError> {
        if let Some(cap) = coord.max_parallel {
            config.max_parallel_nodes = config.max_parallel_nodes.min(cap);
        }
        let registry = executor.registry().clone();
        let added: Vec<Arc<NodeDef>> = added.into_iter().map(Arc::new).collect();
        let mut unknown = Vec::new();
        let mut nodes = Vec::with_capacity(wf.nodes.len() + added.len());
        let mut failure_actions = HashMap::new();
        let handles = wf
            .nodes
            .iter()
            .enumerate()
            .map(|(i, d)| (DefHandle::Static(wf.clone(), i as u32), d, false))
            .chain(
                added
                    .iter()
                    .map(|d| (DefHandle::Dynamic(d.clone()), &**d, true)),
            );
        // Each distinct action once in the run's table; consecutive nodes
        // usually share an action, so the last one is tried first.
        let mut actions: Vec<RunAction> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut by_name: HashMap<&str, u32> = HashMap::new();
        let mut last: Option<u32> = None;
        let wait_node: Arc<dyn NodeAction> = Arc::new(WaitNode);
        for (handle, def, is_added) in handles {
            let found = if def.is_wait() {
                Some(ActionRef::from(wait_node.clone()))
            } else {
                match last {
                    Some(i) if names[i as usize] == def.action => Some(i),
                    _ => by_name.get(def.action.as_str()).copied().or_else(|| {
                        let action = registry.get(&def.action)?;
                        let i = actions.len() as u32;
                        actions.push(RunAction::new(&def.action, action));
                        names.push(&def.action);
                        by_name.insert(&def.action, i);
                        Some(i)
                    }),
                }
                .map(|i| {
                    last = Some(i);
                    ActionRef::Table(i)
                })
            };
            match found {
                Some(action) => nodes.push(NodeState::new(
                    Arc::from(def.id.as_str()),
                    handle,
                    action,
                    is_added,
                )),
                None => unknown.push((def.id.clone(), def.action.clone())),
            }
            if let Some(f) = &def.failure {
                match registry.get(f) {
                    Some(a) => {
                        failure_actions.insert(f.clone(), a);
                    }
                    None => unknown.push((def.id.clone(), f.clone())),
                }
            }
        }
        if !unknown.is_empty() {
            return Err(CoordError::UnknownActions(unknown));
        }
        let record = executor.stores().durability != Durability::Memory;
        let graph = RunGraph::new(nodes, !coord.hooks.is_empty(), record);
        Ok(Self {
            wf,
            added,
            graph,
            config,
            registry,
            actions,
            failure_actions,
            stores: executor.stores().clone(),
            cache: cache.clone(),
            app_data: executor.app_data(),
            run_id,
            restored_invocations: HashMap::new(),
            consumed_signals: HashSet::new(),
        })
    }

    /// Applies recorded progress (resume): completed nodes stay completed,
    /// attempts continue from their recorded numbers.
    pub(crate) fn restore(&mut self, progress: HashMap<String, Recorded>) {
        for (id, rec) in progress {
            let Some(&i) = self.graph.index.get(id.as_str()) else {
                continue;
            };
            let n = &mut self.graph.nodes[i as usize];
            if let Some(plain) = &rec.plain {
                n.attempts = plain.attempt;
                let meta_i64 = |k: &str| plain.metadata.get(k).and_then(Value::as_i64);
                if let Some(seq) = plain.metadata.get("signal_seq").and_then(Value::as_u64) {
                    self.consumed_signals.insert(seq);
                }
                if plain.state == NodeStatus::Waiting {
                    // A timer keeps its wake-up time across a restart.
                    n.rare_mut().wake_at = meta_i64("wake_at");
                    if let Some(at) = plain.started_at {
                        n.mark_started(at);
                    }
                }
                if plain.state == NodeStatus::Completed {
                    n.status = NodeStatus::Completed;
                    n.cache_hit = plain
                        .metadata
                        .get("cache_hit")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                }
            }
            if n.status != NodeStatus::Completed
                && (!rec.invocations.is_empty() || !rec.invocation_attempts.is_empty())
            {
                let done = rec
                    .invocations
                    .into_iter()
                    .map(|(k, (_, v))| (k, v))
                    .collect();
                self.restored_invocations
                    .insert(i, (done, rec.invocation_attempts));
            }
        }
    }
}
