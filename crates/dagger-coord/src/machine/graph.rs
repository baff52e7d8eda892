//! The state of one run: interned nodes (dense `u32` indices) with
//! dependency counters, the ready queue, and the bookkeeping that
//! propagates completions, skips and cancellations. Every operation here is
//! O(affected nodes); nothing rescans the graph. What changes is reported
//! as [`Effect`]s (records to write, events to emit).

use super::msg::{Effect, Millis};
use crate::event::{ExecutionEvent, NodeRef};
use dagger_core::NodeStatus;
use dagger_dag_flow::{NodeAction, NodeDef, WorkflowDef};
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

/// `NodeState::started_ms` of a node that never started.
const NOT_YET: Millis = Millis::MIN;
/// `NodeState::duration_ms` of a node that has not ended.
const NO_DURATION: u64 = u64::MAX;

/// A node's dependents (indices), inline while they are few.
pub(crate) type Dependents = smallvec::SmallVec<[u32; 4]>;

/// Fields few nodes use (hooks, humans, cancelled branches).
#[derive(Default)]
pub(crate) struct Rare {
    /// Why a running node is being cancelled (CancelBranch).
    pub(crate) cancel_reason: Option<String>,
    /// Inputs set by a hook or a human, over the resolved ones.
    pub(crate) overrides: Option<Map<String, Value>>,
    /// A human prompt set by `RequestHuman` (overrides `approval:`).
    pub(crate) human_prompt: Option<String>,
    /// The human approved (with optional input under `human_input`).
    pub(crate) approved: bool,
    /// When the node began waiting for a human.
    pub(crate) waiting_since: Option<Millis>,
    /// A waiting node (`sleep`, `wait_until`, `wait_for` with a timeout):
    /// when its timer fires. Recorded, and restored on resume.
    pub(crate) wake_at: Option<Millis>,
    /// The sequence number of the signal a `wait_for` node received.
    pub(crate) signal_seq: Option<u64>,
}

/// A node definition, shared: a static node points into the workflow, a
/// node added at run time owns its definition.
#[derive(Clone)]
pub(crate) enum DefHandle {
    Static(Arc<WorkflowDef>, u32),
    Dynamic(Arc<NodeDef>),
}

impl DefHandle {
    /// The handle an attempt carries: an index for a node of the workflow
    /// (no reference count of the shared workflow is touched per attempt).
    pub(crate) fn to_ref(&self) -> DefRef {
        match self {
            DefHandle::Static(_, i) => DefRef::Static(*i),
            DefHandle::Dynamic(d) => DefRef::Dynamic(d.clone()),
        }
    }
}

/// A node definition as an attempt finds it: node `i` of the run's
/// workflow, or a definition added at run time (see `worker::Env::def`).
#[derive(Clone)]
pub(crate) enum DefRef {
    Static(u32),
    Dynamic(Arc<NodeDef>),
}

/// A node's action: entry `i` of the run's action table (the nodes of the
/// workflow, see `worker::Env::action`) or a handle of its own (nodes
/// added at run time). Attempts of table actions touch no shared
/// reference count.
#[derive(Clone)]
pub(crate) enum ActionRef {
    Table(u32),
    /// Boxed (a thin pointer), so the common node stays small.
    Owned(Box<Arc<dyn NodeAction>>),
}

impl From<Arc<dyn NodeAction>> for ActionRef {
    fn from(a: Arc<dyn NodeAction>) -> Self {
        ActionRef::Owned(Box::new(a))
    }
}

impl std::ops::Deref for DefHandle {
    type Target = NodeDef;
    fn deref(&self) -> &NodeDef {
        match self {
            DefHandle::Static(wf, i) => &wf.nodes[*i as usize],
            DefHandle::Dynamic(d) => d,
        }
    }
}

/// Fan-out bookkeeping of a node with `map_over`.
pub(crate) struct FanOut {
    pub(crate) items: Vec<Arc<Value>>,
    pub(crate) results: Vec<Option<Value>>,
    pub(crate) attempts: Vec<u32>,
    pub(crate) running: usize,
    pub(crate) remaining: usize,
    /// Set once an invocation finally failed: the node fails when the running ones return.
    pub(crate) failed: Option<String>,
}

pub(crate) struct NodeState {
    pub(crate) id: Arc<str>,
    pub(crate) def: DefHandle,
    pub(crate) action: ActionRef,
    pub(crate) status: NodeStatus,
    pub(crate) remaining: u32,
    /// Inline up to four (most nodes): wiring allocates nothing for them.
    pub(crate) dependents: Dependents,
    pub(crate) attempts: u32,
    /// Start of the first attempt (ms since the epoch), [`NOT_YET`] before
    /// it (see [`NodeState::started`]; a plain number keeps the node small).
    started_ms: Millis,
    /// [`NO_DURATION`] until the node ended (see [`NodeState::duration`]).
    duration_ms: u64,
    pub(crate) error: Option<String>,
    pub(crate) cache_hit: bool,
    pub(crate) added: bool,
    /// What few nodes need, out of line so the common node stays small.
    pub(crate) rare: Option<Box<Rare>>,
    pub(crate) fanout: Option<Box<FanOut>>,
}

impl NodeState {
    pub(crate) fn new(
        id: Arc<str>,
        def: DefHandle,
        action: impl Into<ActionRef>,
        added: bool,
    ) -> Self {
        Self {
            id,
            def,
            action: action.into(),
            status: NodeStatus::Pending,
            remaining: 0,
            dependents: Dependents::new(),
            attempts: 0,
            started_ms: NOT_YET,
            duration_ms: NO_DURATION,
            error: None,
            cache_hit: false,
            added,
            rare: None,
            fanout: None,
        }
    }

    /// Start of the first attempt (ms since the epoch), if one started.
    pub(crate) fn started(&self) -> Option<Millis> {
        (self.started_ms != NOT_YET).then_some(self.started_ms)
    }

    /// Records the first attempt's start (later starts change nothing).
    pub(crate) fn mark_started(&mut self, now: Millis) {
        if self.started_ms == NOT_YET {
            self.started_ms = now;
        }
    }

    /// Time from the first start to the end, once the node ended.
    pub(crate) fn duration(&self) -> Option<u64> {
        (self.duration_ms != NO_DURATION).then_some(self.duration_ms)
    }

    /// Sets (or clears) the node's duration.
    pub(crate) fn set_duration(&mut self, ms: Option<u64>) {
        self.duration_ms = ms.map_or(NO_DURATION, |d| d.min(NO_DURATION - 1));
    }

    pub(crate) fn node_ref(&self, invocation: Option<u32>) -> NodeRef {
        NodeRef {
            node_id: self.id.to_string(),
            action: self.def.action.clone(),
            attempt: self.attempts,
            invocation_key: invocation.map(|i| i.to_string()).unwrap_or_default(),
        }
    }

    /// Moves to `to` through the legal transitions of [`NodeStatus`]; an
    /// illegal one is a bug in the coordinator (caught by tests in debug builds).
    pub(crate) fn set_status(&mut self, to: NodeStatus) {
        if let Err(e) = self.status.transition(&self.id, to) {
            debug_assert!(false, "{e}");
            tracing::error!(error = %e, "internal: illegal node transition");
        }
        self.status = to;
    }

    /// The prompt this node must be approved with before it runs, if any.
    pub(crate) fn approval_prompt(&self) -> Option<&str> {
        match &self.rare {
            Some(r) if r.approved => None,
            Some(r) => r.human_prompt.as_deref().or(self.def.approval.as_deref()),
            None => self.def.approval.as_deref(),
        }
    }

    /// The node's rare fields (created on first use).
    pub(crate) fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Why a running node is being cancelled, if it is.
    pub(crate) fn cancel_reason(&self) -> Option<&str> {
        self.rare.as_ref()?.cancel_reason.as_deref()
    }

    /// When the node began waiting for a human, if it waits.
    pub(crate) fn waiting_since(&self) -> Option<Millis> {
        self.rare.as_ref()?.waiting_since
    }

    /// The node no longer waits for a human.
    pub(crate) fn clear_wait(&mut self) {
        if let Some(r) = &mut self.rare {
            r.waiting_since = None;
        }
    }

    /// Inputs set by a hook or a human, over the resolved ones.
    pub(crate) fn overrides(&self) -> Option<&Map<String, Value>> {
        self.rare.as_ref()?.overrides.as_ref()
    }

    /// A failed node whose dependents may still run (`onfailure: true`).
    pub(crate) fn satisfies_dependents(&self) -> bool {
        self.status == NodeStatus::Completed
            || (self.status == NodeStatus::Failed && self.def.onfailure)
    }
}

/// The run's graph and scheduling state.
pub(crate) struct RunGraph {
    pub(crate) nodes: Vec<NodeState>,
    /// Node ids to indices (node ids hash with the cache's cheap hasher).
    pub(crate) index: HashMap<Arc<str>, u32, dagger_core::cache::Names>,
    pub(crate) ready: BinaryHeap<Reverse<u32>>,
    pub(crate) paused_roots: HashMap<u32, Option<String>>,
    pub(crate) parked: Vec<u32>,
    /// What the driver must do, in order (drained after each step).
    pub(crate) fx: Vec<Effect>,
    /// Events are emitted (only when the run has hooks).
    pub(crate) hooks: bool,
    /// Node states are recorded (the store is not `Durability::Memory`).
    pub(crate) record: bool,
    /// Events emitted and not yet answered by the hooks: nothing starts
    /// while there are any, so a hook can still pause, skip or rewire.
    pub(crate) unanswered: usize,
    /// Nodes in `Waiting` (timers and signal waits): they hold no slot.
    pub(crate) waits: HashSet<u32>,
}

impl RunGraph {
    /// An empty graph of `nodes` (not yet wired).
    pub(crate) fn new(nodes: Vec<NodeState>, hooks: bool, record: bool) -> Self {
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i as u32))
            .collect();
        Self {
            nodes,
            index,
            ready: BinaryHeap::new(),
            paused_roots: HashMap::new(),
            parked: Vec::new(),
            fx: Vec::new(),
            hooks,
            record,
            unanswered: 0,
            waits: HashSet::new(),
        }
    }

    /// Emits an event to the hooks (built only when there are hooks).
    pub(crate) fn emit(&mut self, event: impl FnOnce() -> ExecutionEvent) {
        if self.hooks {
            self.emit_with(event(), None);
        }
    }

    /// Emits `event` carrying `record` (written once the hooks answered it).
    pub(crate) fn emit_with(
        &mut self,
        event: ExecutionEvent,
        record: Option<Box<dagger_core::store::NodeRunRecord>>,
    ) {
        self.unanswered += 1;
        self.fx.push(Effect::Emit(event, record));
    }

    fn mark_dirty(&mut self, i: u32) {
        if self.record {
            self.fx.push(Effect::Record(i));
        }
    }

    pub(crate) fn id_of(&self, i: u32) -> &str {
        &self.nodes[i as usize].id
    }

    /// Connects node `i` to its dependencies and sets its counter. Returns
    /// a skip reason when a dependency already ended unsatisfied.
    pub(crate) fn wire(&mut self, i: u32) -> Option<String> {
        // The handle is an `Arc`: cloning it, not the dependency strings,
        // frees `self.nodes` for the updates below.
        let def = self.nodes[i as usize].def.clone();
        let mut remaining = 0;
        let mut skip = None;
        for d in &def.dependencies {
            let Some(&di) = self.index.get(d.as_str()) else {
                continue;
            };
            // Dependents lists are complete (also for satisfied links) so branches can be walked.
            self.nodes[di as usize].dependents.push(i);
            let dep = &self.nodes[di as usize];
            if dep.satisfies_dependents() {
                continue;
            }
            if dep.status.is_terminal() {
                skip.get_or_insert_with(|| skip_reason(&dep.id, dep.status));
                continue;
            }
            remaining += 1;
        }
        self.nodes[i as usize].remaining = remaining;
        skip
    }

    /// Marks `i` Ready and queues it.
    pub(crate) fn make_ready(&mut self, i: u32) {
        let n = &mut self.nodes[i as usize];
        if matches!(
            n.status,
            NodeStatus::Pending | NodeStatus::Paused | NodeStatus::WaitingForHuman
        ) {
            n.set_status(NodeStatus::Ready);
            self.ready.push(Reverse(i));
        }
    }

    /// Node `i` ended (Completed, Failed, Skipped or Cancelled): update its dependents.
    /// `selected` limits which direct dependents run (branch selection).
    pub(crate) fn release_dependents(&mut self, i: u32, selected: Option<&HashSet<String>>) {
        let satisfied = self.nodes[i as usize].satisfies_dependents();
        let dependents = std::mem::take(&mut self.nodes[i as usize].dependents);
        for &d in &dependents {
            if !matches!(self.nodes[d as usize].status, NodeStatus::Pending) {
                continue;
            }
            if !satisfied {
                let n = &self.nodes[i as usize];
                let reason = skip_reason(&n.id, n.status);
                self.skip(d, reason);
            } else if let Some(sel) = selected
                && !sel.contains(&*self.nodes[d as usize].id)
            {
                let reason = format!("branch not selected by `{}`", self.nodes[i as usize].id);
                self.skip(d, reason);
            } else {
                let n = &mut self.nodes[d as usize];
                n.remaining = n.remaining.saturating_sub(1);
                if n.remaining == 0 {
                    self.make_ready(d);
                }
            }
        }
        self.nodes[i as usize].dependents = dependents;
    }

    /// Skips `i` (if it has not started) and, transitively, what depends on it.
    pub(crate) fn skip(&mut self, i: u32, reason: String) {
        self.end_unstarted(i, NodeStatus::Skipped, reason);
    }

    /// Cancels `i` (if it has not started) and skips what depends on it.
    pub(crate) fn cancel_unstarted(&mut self, i: u32, reason: String) {
        self.end_unstarted(i, NodeStatus::Cancelled, reason);
    }

    fn end_unstarted(&mut self, i: u32, status: NodeStatus, reason: String) {
        let mut stack = vec![(i, status, reason)];
        while let Some((j, st, why)) = stack.pop() {
            let n = &mut self.nodes[j as usize];
            let not_started = matches!(
                n.status,
                NodeStatus::Pending
                    | NodeStatus::Ready
                    | NodeStatus::Paused
                    | NodeStatus::WaitingForHuman
                    | NodeStatus::Waiting
                    | NodeStatus::Retrying
            );
            // A running node can only be cancelled (its attempt was stopped).
            if !(not_started || (n.status == NodeStatus::Running && st == NodeStatus::Cancelled)) {
                continue;
            }
            n.set_status(st);
            n.error = Some(why.clone());
            n.clear_wait();
            self.waits.remove(&j);
            let node = n.node_ref(None);
            let dependents = n.dependents.clone();
            self.mark_dirty(j);
            self.emit(|| match st {
                NodeStatus::Cancelled => ExecutionEvent::NodeCancelled { node, reason: why },
                _ => ExecutionEvent::NodeSkipped { node, reason: why },
            });
            let id = self.nodes[j as usize].id.clone();
            for d in dependents {
                stack.push((d, NodeStatus::Skipped, skip_reason(&id, st)));
            }
        }
    }

    /// Cancels every unstarted node of `branch` with `reason` (the whole
    /// branch ends Cancelled), and skips nodes outside it that depend on them.
    pub(crate) fn cancel_branch_nodes(&mut self, branch: &[u32], reason: &str) {
        let members: HashSet<u32> = branch.iter().copied().collect();
        let mut outside = Vec::new();
        for &j in branch {
            let n = &mut self.nodes[j as usize];
            if !matches!(
                n.status,
                NodeStatus::Pending
                    | NodeStatus::Ready
                    | NodeStatus::Paused
                    | NodeStatus::WaitingForHuman
                    | NodeStatus::Waiting
                    | NodeStatus::Retrying
            ) {
                continue;
            }
            n.set_status(NodeStatus::Cancelled);
            n.error = Some(reason.to_string());
            n.clear_wait();
            self.waits.remove(&j);
            let node = n.node_ref(None);
            outside.extend(
                n.dependents
                    .iter()
                    .copied()
                    .filter(|d| !members.contains(d))
                    .map(|d| (d, n.id.clone())),
            );
            self.mark_dirty(j);
            let why = reason.to_string();
            self.emit(|| ExecutionEvent::NodeCancelled { node, reason: why });
        }
        for (d, dep) in outside {
            self.skip(d, skip_reason(&dep, NodeStatus::Cancelled));
        }
    }

    /// Whether node `i` lies in a paused branch (a paused root is `i` or an ancestor).
    pub(crate) fn in_paused_branch(&self, i: u32) -> bool {
        if self.paused_roots.is_empty() {
            return false;
        }
        let mut seen = HashSet::new();
        let mut stack = vec![i];
        while let Some(j) = stack.pop() {
            if !seen.insert(j) {
                continue;
            }
            if self.paused_roots.contains_key(&j) {
                return true;
            }
            for d in &self.nodes[j as usize].def.dependencies {
                if let Some(&di) = self.index.get(d.as_str()) {
                    stack.push(di);
                }
            }
        }
        false
    }

    /// `root` and every node downstream of it.
    pub(crate) fn branch(&self, root: u32) -> Vec<u32> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut stack = vec![root];
        while let Some(j) = stack.pop() {
            if seen.insert(j) {
                order.push(j);
                stack.extend(self.nodes[j as usize].dependents.iter().copied());
            }
        }
        order
    }

    /// Records node `i` as needing persistence.
    pub(crate) fn touch(&mut self, i: u32) {
        self.mark_dirty(i);
    }
}

/// Why a dependent of a node that ended with `status` is skipped.
pub(crate) fn skip_reason(dep: &str, status: NodeStatus) -> String {
    match status {
        NodeStatus::Failed => format!("dependency `{dep}` failed"),
        NodeStatus::Cancelled => format!("dependency `{dep}` was cancelled"),
        _ => format!("dependency `{dep}` was skipped"),
    }
}

/// Truthiness of a `when:` value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}
