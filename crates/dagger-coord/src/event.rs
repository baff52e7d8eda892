//! Events the coordinator emits, commands hooks answer with, and the hook trait.

use dagger_core::{Cache, InputSpec, NodeStatus, RunStatus};
use dagger_dag_flow::{NodeDef, NodeOutput};
use serde_json::Value;
use std::sync::Arc;

/// Names a node in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// The node's id.
    pub node_id: String,
    /// Its action.
    pub action: String,
    /// The attempt the event is about (0 when none ran).
    pub attempt: u32,
    /// The fan-out invocation (`""` for plain nodes).
    pub invocation_key: String,
}

/// Something that happened in a run. Every hook sees every event, in order.
#[derive(Debug, Clone)]
pub enum ExecutionEvent {
    /// The run started (or resumed).
    RunStarted {
        /// Nodes in the run.
        nodes: usize,
        /// Whether this is a resume of an earlier run.
        resumed: bool,
    },
    /// An attempt started.
    NodeStarted {
        /// The node.
        node: NodeRef,
    },
    /// A node completed; `outcome` is what its action returned.
    NodeCompleted {
        /// The node.
        node: NodeRef,
        /// The action's output (for a fanned-out node, `{"results": [...]}`);
        /// [`NodeOutput::cache_hit`] tells whether it was reused from an
        /// earlier execution (memoization).
        outcome: Arc<NodeOutput>,
    },
    /// An attempt failed and will be retried after `delay_ms`.
    NodeRetrying {
        /// The node.
        node: NodeRef,
        /// Why the attempt failed.
        error: String,
        /// Delay before the next attempt.
        delay_ms: u64,
    },
    /// A node failed for good.
    NodeFailed {
        /// The node.
        node: NodeRef,
        /// Why.
        error: String,
    },
    /// A node will not run.
    NodeSkipped {
        /// The node.
        node: NodeRef,
        /// Why.
        reason: String,
    },
    /// A node was cancelled.
    NodeCancelled {
        /// The node.
        node: NodeRef,
        /// Why.
        reason: String,
    },
    /// A node waits for a human's approval.
    NodeWaitingForHuman {
        /// The node.
        node: NodeRef,
        /// What the human is asked.
        prompt: String,
    },
    /// A node waits for a time (`sleep`, `wait_until`) or a signal
    /// (`wait_for`), holding no slot.
    NodeWaiting {
        /// The node.
        node: NodeRef,
        /// When it wakes up (a timer, or a signal wait's timeout), ms since the epoch.
        wake_at: Option<i64>,
        /// The signal it waits for, if it waits for one.
        signal: Option<String>,
    },
    /// Nodes were added at run time.
    NodesAdded {
        /// Their ids.
        node_ids: Vec<String>,
    },
    /// A command was rejected; nothing of it was applied.
    CommandRejected {
        /// The command, summarized.
        command: String,
        /// Why.
        reason: String,
    },
    /// A branch was paused.
    BranchPaused {
        /// The node the branch starts at.
        branch_id: String,
        /// Why.
        reason: Option<String>,
    },
    /// A branch was resumed.
    BranchResumed {
        /// The node the branch starts at.
        branch_id: String,
    },
    /// The run paused (failure under `OnFailure::Pause`, human timeout, budget).
    RunPaused {
        /// Why.
        reason: String,
    },
    /// A hook panicked. The run went on without that hook's answer (it
    /// keeps receiving events); see [`EventHook::name`].
    HookPanicked {
        /// The hook's [`EventHook::name`].
        hook: String,
        /// What the hook was doing: `on_start`, `on_complete` or
        /// `handle(<event>)`, the event named by [`ExecutionEvent::kind`].
        during: String,
        /// The panic's message.
        message: String,
    },
    /// The run ended.
    RunCompleted {
        /// Its final status.
        status: RunStatus,
        /// Why it ended so, when not a plain success.
        reason: Option<String>,
    },
}

impl ExecutionEvent {
    /// The variant's name (`"NodeCompleted"`, `"RunCompleted"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "RunStarted",
            Self::NodeStarted { .. } => "NodeStarted",
            Self::NodeCompleted { .. } => "NodeCompleted",
            Self::NodeRetrying { .. } => "NodeRetrying",
            Self::NodeFailed { .. } => "NodeFailed",
            Self::NodeSkipped { .. } => "NodeSkipped",
            Self::NodeCancelled { .. } => "NodeCancelled",
            Self::NodeWaitingForHuman { .. } => "NodeWaitingForHuman",
            Self::NodeWaiting { .. } => "NodeWaiting",
            Self::NodesAdded { .. } => "NodesAdded",
            Self::CommandRejected { .. } => "CommandRejected",
            Self::BranchPaused { .. } => "BranchPaused",
            Self::BranchResumed { .. } => "BranchResumed",
            Self::RunPaused { .. } => "RunPaused",
            Self::HookPanicked { .. } => "HookPanicked",
            Self::RunCompleted { .. } => "RunCompleted",
        }
    }

    /// The node status the event implies, for node events.
    pub fn node_status(&self) -> Option<(&NodeRef, NodeStatus)> {
        match self {
            Self::NodeStarted { node } => Some((node, NodeStatus::Running)),
            Self::NodeCompleted { node, .. } => Some((node, NodeStatus::Completed)),
            Self::NodeRetrying { node, .. } => Some((node, NodeStatus::Retrying)),
            Self::NodeFailed { node, .. } => Some((node, NodeStatus::Failed)),
            Self::NodeSkipped { node, .. } => Some((node, NodeStatus::Skipped)),
            Self::NodeCancelled { node, .. } => Some((node, NodeStatus::Cancelled)),
            Self::NodeWaitingForHuman { node, .. } => Some((node, NodeStatus::WaitingForHuman)),
            Self::NodeWaiting { node, .. } => Some((node, NodeStatus::Waiting)),
            _ => None,
        }
    }
}

/// A node to add at run time, built fluently.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSpec {
    /// The node definition (boxed: commands stay small to move around).
    pub def: Box<NodeDef>,
}

impl NodeSpec {
    /// A node running `action`; its id defaults to the action name.
    pub fn new(action: impl Into<String>) -> Self {
        let action = action.into();
        Self {
            def: Box::new(NodeDef {
                id: action.clone(),
                action,
                ..NodeDef::default()
            }),
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.def.id = id.into();
        self
    }

    /// Sets the dependencies.
    pub fn with_deps<I, S>(mut self, deps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.def.dependencies = deps.into_iter().map(Into::into).collect();
        self
    }

    /// Literal inputs from a JSON object (`{"name": value, ...}`); a
    /// non-object becomes the single input `input`.
    pub fn with_inputs(mut self, inputs: Value) -> Self {
        match inputs {
            Value::Object(map) => {
                self.def
                    .inputs
                    .extend(map.into_iter().map(|(k, v)| InputSpec::literal(k, v)));
            }
            Value::Null => {}
            other => self.def.inputs.push(InputSpec::literal("input", other)),
        }
        self
    }

    /// An input read through a reference (`inputs.key` or `node.output`).
    pub fn with_input_ref(mut self, name: impl Into<String>, reference: impl Into<String>) -> Self {
        self.def.inputs.push(InputSpec::reference(name, reference));
        self
    }

    /// Attempts for this node.
    pub fn with_try_count(mut self, n: u32) -> Self {
        self.def.try_count = Some(n);
        self
    }

    /// Timeout of one attempt, in seconds.
    pub fn with_timeout(mut self, seconds: f64) -> Self {
        self.def.timeout = Some(seconds);
        self
    }

    /// Makes the node wait for a human's approval first.
    pub fn with_approval(mut self, prompt: impl Into<String>) -> Self {
        self.def.approval = Some(prompt.into());
        self
    }
}

impl From<NodeDef> for NodeSpec {
    fn from(def: NodeDef) -> Self {
        Self { def: Box::new(def) }
    }
}

/// What a hook asks the coordinator to do. Applied between events.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorCommand {
    /// Add one node.
    AddNode {
        /// The workflow (must be the running one).
        dag_name: String,
        /// The node.
        spec: NodeSpec,
    },
    /// Add several nodes atomically: a cycle, a duplicate id or an unknown
    /// dependency or action rejects the whole batch.
    AddNodes {
        /// The workflow (must be the running one).
        dag_name: String,
        /// The nodes.
        specs: Vec<NodeSpec>,
    },
    /// Replace literal inputs of a node that has not started.
    SetNodeInputs {
        /// The node.
        node_id: String,
        /// `{"name": value, ...}`.
        inputs: Value,
    },
    /// Start nothing new in the branch (the node and its descendants) until resumed.
    PauseBranch {
        /// The node the branch starts at.
        branch_id: String,
        /// Why.
        reason: Option<String>,
    },
    /// Undo a [`ExecutorCommand::PauseBranch`].
    ResumeBranch {
        /// The node the branch starts at.
        branch_id: String,
    },
    /// Cancel every unfinished node of the branch (running ones are stopped).
    CancelBranch {
        /// The node the branch starts at.
        branch_id: String,
        /// Why.
        reason: Option<String>,
    },
    /// Skip nodes that have not started (and what depends on them).
    SkipNodes {
        /// The nodes.
        node_ids: Vec<String>,
        /// Why.
        reason: Option<String>,
    },
    /// Make a node that has not started wait for a human first.
    RequestHuman {
        /// The node.
        node_id: String,
        /// What the human is asked.
        prompt: String,
    },
}

impl ExecutorCommand {
    /// A one-line summary for events and logs.
    pub fn summary(&self) -> String {
        match self {
            Self::AddNode { spec, .. } => format!("AddNode({})", spec.def.id),
            Self::AddNodes { specs, .. } => {
                let ids: Vec<&str> = specs.iter().map(|s| s.def.id.as_str()).collect();
                format!("AddNodes({})", ids.join(", "))
            }
            Self::SetNodeInputs { node_id, .. } => format!("SetNodeInputs({node_id})"),
            Self::PauseBranch { branch_id, .. } => format!("PauseBranch({branch_id})"),
            Self::ResumeBranch { branch_id } => format!("ResumeBranch({branch_id})"),
            Self::CancelBranch { branch_id, .. } => format!("CancelBranch({branch_id})"),
            Self::SkipNodes { node_ids, .. } => format!("SkipNodes({})", node_ids.join(", ")),
            Self::RequestHuman { node_id, .. } => format!("RequestHuman({node_id})"),
        }
    }
}

/// What a hook knows about the run it serves.
#[derive(Debug, Clone)]
pub struct HookContext {
    /// The workflow's name.
    pub dag_name: String,
    /// The run.
    pub run_id: String,
    /// The run's cache (read and write).
    pub cache: Cache,
}

/// Policy: sees every event of a run and answers with commands.
///
/// A hook that panics does not stop the run: the panic is caught, the
/// hook's answer to that call is lost, and an
/// [`ExecutionEvent::HookPanicked`] naming the hook ([`Self::name`]) goes
/// to every hook. Commands that arrive after the run ended (answers to its
/// last events, or returned by [`Self::on_complete`]) are not applied: each
/// is reported as an [`ExecutionEvent::CommandRejected`] saying why.
/// Events reported after the run ended are delivered straight to
/// [`Self::handle`]; what hooks answer to them is logged and dropped.
#[async_trait::async_trait]
pub trait EventHook: Send + Sync + 'static {
    /// The hook's name in events and logs (default: its type's name).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Called for each event, in order.
    async fn handle(&self, ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand>;

    /// Called once when the run starts, before any node runs.
    async fn on_start(&self, _ctx: &HookContext) -> Vec<ExecutorCommand> {
        Vec::new()
    }

    /// Called once when the run ends; `success` is true when it completed.
    async fn on_complete(&self, _ctx: &HookContext, _success: bool) -> Vec<ExecutorCommand> {
        Vec::new()
    }
}
