//! Hook commands: growing the graph, pausing, cancelling and skipping branches.

use super::graph::{DefHandle, NodeState};
use super::msg::Effect;
use super::{Machine, Stop};
use crate::event::{ExecutionEvent, ExecutorCommand};
use dagger_core::NodeStatus;
use dagger_dag_flow::{ActionRegistry, NodeDef};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

impl Machine {
    pub(super) fn apply_commands(&mut self, commands: Vec<ExecutorCommand>) {
        for cmd in commands {
            let summary = cmd.summary();
            if let Err(reason) = self.apply_command(cmd) {
                tracing::warn!(command = %summary, %reason, "command rejected");
                self.g.emit(|| ExecutionEvent::CommandRejected {
                    command: summary,
                    reason,
                });
            }
        }
    }

    fn apply_command(&mut self, cmd: ExecutorCommand) -> Result<(), String> {
        match cmd {
            ExecutorCommand::AddNode { dag_name, spec } => {
                self.add_nodes(&dag_name, vec![*spec.def])
            }
            ExecutorCommand::AddNodes { dag_name, specs } => {
                self.add_nodes(&dag_name, specs.into_iter().map(|s| *s.def).collect())
            }
            ExecutorCommand::SetNodeInputs { node_id, inputs } => {
                let i = self.node_index(&node_id)?;
                let n = &mut self.g.nodes[i as usize];
                if !matches!(
                    n.status,
                    NodeStatus::Pending
                        | NodeStatus::Ready
                        | NodeStatus::Paused
                        | NodeStatus::WaitingForHuman
                ) {
                    return Err(format!(
                        "node `{node_id}` has already started ({})",
                        n.status
                    ));
                }
                let Value::Object(map) = inputs else {
                    return Err("inputs must be a JSON object".into());
                };
                n.rare_mut()
                    .overrides
                    .get_or_insert_with(Map::new)
                    .extend(map);
                Ok(())
            }
            ExecutorCommand::PauseBranch { branch_id, reason } => {
                let i = self.node_index(&branch_id)?;
                self.g.paused_roots.insert(i, reason.clone());
                self.g
                    .emit(|| ExecutionEvent::BranchPaused { branch_id, reason });
                Ok(())
            }
            ExecutorCommand::ResumeBranch { branch_id } => {
                let i = self.node_index(&branch_id)?;
                if self.g.paused_roots.remove(&i).is_none() {
                    return Err(format!("branch `{branch_id}` is not paused"));
                }
                for j in std::mem::take(&mut self.g.parked) {
                    self.g.make_ready(j);
                }
                self.g.emit(|| ExecutionEvent::BranchResumed { branch_id });
                Ok(())
            }
            ExecutorCommand::CancelBranch { branch_id, reason } => {
                let root = self.node_index(&branch_id)?;
                let reason = reason.unwrap_or_else(|| format!("branch `{branch_id}` cancelled"));
                let branch = self.g.branch(root);
                for &j in &branch {
                    let n = &mut self.g.nodes[j as usize];
                    if n.status == NodeStatus::Running {
                        n.rare_mut().cancel_reason = Some(reason.clone());
                        self.g.fx.push(Effect::CancelNode(j));
                    }
                    self.waiting.remove(&j);
                }
                self.g.cancel_branch_nodes(&branch, &reason);
                Ok(())
            }
            ExecutorCommand::SkipNodes { node_ids, reason } => {
                let mut idx = Vec::new();
                for id in &node_ids {
                    let i = self.node_index(id)?;
                    let st = self.g.nodes[i as usize].status;
                    if !matches!(
                        st,
                        NodeStatus::Pending
                            | NodeStatus::Ready
                            | NodeStatus::Paused
                            | NodeStatus::WaitingForHuman
                    ) {
                        return Err(format!("node `{id}` has already started ({st})"));
                    }
                    idx.push(i);
                }
                for i in idx {
                    self.waiting.remove(&i);
                    let why = reason.clone().unwrap_or_else(|| "skipped by a hook".into());
                    self.g.skip(i, why);
                }
                Ok(())
            }
            ExecutorCommand::RequestHuman { node_id, prompt } => {
                let i = self.node_index(&node_id)?;
                let n = &mut self.g.nodes[i as usize];
                if !matches!(
                    n.status,
                    NodeStatus::Pending | NodeStatus::Ready | NodeStatus::Paused
                ) {
                    return Err(format!(
                        "node `{node_id}` has already started ({})",
                        n.status
                    ));
                }
                let rare = n.rare_mut();
                rare.human_prompt = Some(prompt);
                rare.approved = false;
                Ok(())
            }
        }
    }

    fn node_index(&self, id: &str) -> Result<u32, String> {
        self.g
            .index
            .get(id)
            .copied()
            .ok_or_else(|| format!("no node `{id}` in this run"))
    }

    /// Adds nodes atomically: every check passes or nothing changes.
    fn add_nodes(&mut self, dag_name: &str, defs: Vec<NodeDef>) -> Result<(), String> {
        if dag_name != self.wf.name {
            return Err(format!(
                "command targets workflow `{dag_name}` but this run is `{}`",
                self.wf.name
            ));
        }
        if defs.is_empty() {
            return Ok(());
        }
        if let Some(max) = self.config.max_iterations
            && (self.g.nodes.len() + defs.len()) as u64 > max
        {
            let reason = format!(
                "max_iterations budget of {max} would be exceeded by adding {} nodes",
                defs.len()
            );
            self.stop(Stop::Budget(reason.clone()));
            return Err(reason);
        }
        check_actions(&self.registry, &defs)?;
        let existing = |id: &str| {
            self.g
                .index
                .get(id)
                .map(|&i| &*self.g.nodes[i as usize].def)
        };
        if let Err(issues) = dagger_dag_flow::validate_added_nodes_with(existing, &defs) {
            let kinds: Vec<String> = issues.iter().map(|i| i.kind.to_string()).collect();
            return Err(kinds.join("; "));
        }
        let order = insertion_order(&defs);
        let mut new_ids = Vec::with_capacity(defs.len());
        let mut new_idx = Vec::with_capacity(defs.len());
        let mut defs: Vec<Option<NodeDef>> = defs.into_iter().map(Some).collect();
        for k in order {
            let Some(def) = defs[k].take() else { continue };
            let def = Arc::new(def);
            let Some(action) = self.registry.get(&def.action) else {
                continue;
            };
            if let Some(f) = &def.failure
                && let Some(a) = self.registry.get(f)
            {
                self.failure_actions.insert(f.clone(), a);
            }
            let i = self.g.nodes.len() as u32;
            let id: Arc<str> = Arc::from(def.id.as_str());
            self.g.index.insert(id.clone(), i);
            self.g.nodes.push(NodeState::new(
                id,
                DefHandle::Dynamic(def.clone()),
                action,
                true,
            ));
            self.added.push(def.clone());
            new_ids.push(def.id.clone());
            new_idx.push(i);
        }
        if self.g.record {
            self.g.fx.push(Effect::Definition);
        }
        self.g
            .emit(|| ExecutionEvent::NodesAdded { node_ids: new_ids });
        for i in new_idx {
            match self.g.wire(i) {
                Some(reason) => self.g.skip(i, reason),
                None if self.g.nodes[i as usize].remaining == 0 => self.g.make_ready(i),
                None => {}
            }
        }
        Ok(())
    }
}

/// Every action (and failure action) of a batch must be registered.
fn check_actions(registry: &ActionRegistry, defs: &[NodeDef]) -> Result<(), String> {
    for d in defs {
        if !registry.contains(&d.action) {
            return Err(format!(
                "node `{}` uses unknown action `{}`",
                d.id, d.action
            ));
        }
        if let Some(f) = &d.failure
            && !registry.contains(f)
        {
            return Err(format!("node `{}` uses unknown failure action `{f}`", d.id));
        }
    }
    Ok(())
}

/// An order of a validated (acyclic) batch in which every node comes after
/// the batch nodes it depends on, so wiring finds its dependencies.
fn insertion_order(defs: &[NodeDef]) -> Vec<usize> {
    let batch: HashMap<&str, usize> = defs
        .iter()
        .enumerate()
        .map(|(k, d)| (d.id.as_str(), k))
        .collect();
    let mut indegree = vec![0usize; defs.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); defs.len()];
    for (k, d) in defs.iter().enumerate() {
        for dep in &d.dependencies {
            if let Some(&j) = batch.get(dep.as_str()) {
                indegree[k] += 1;
                children[j].push(k);
            }
        }
    }
    let mut queue: VecDeque<usize> = (0..defs.len()).filter(|k| indegree[*k] == 0).collect();
    let mut order = Vec::with_capacity(defs.len());
    while let Some(k) = queue.pop_front() {
        order.push(k);
        for &c in &children[k] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                queue.push_back(c);
            }
        }
    }
    order
}
