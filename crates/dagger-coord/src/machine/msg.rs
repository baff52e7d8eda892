//! What goes into the run machine ([`Event`]) and what comes out of it
//! ([`Effect`]). Plain data: the machine reads no clock (time arrives with
//! each step) and does no I/O (effects are executed by the driver).

use super::graph::{ActionRef, DefRef};
use crate::event::{ExecutionEvent, ExecutorCommand};
use dagger_core::ErrorClass;
use dagger_core::store::NodeRunRecord;
use dagger_dag_flow::{NodeAction, NodeOutput};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Wall-clock milliseconds since the Unix epoch, supplied by the driver.
pub(crate) type Millis = i64;

/// Why an attempt failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) class: ErrorClass,
    pub(crate) message: String,
}

/// How an attempt ended.
pub(crate) enum Outcome {
    /// `deferred`: the Completed record, when it must be written only after
    /// the hooks answered the completion (runs that record and have hooks).
    Succeeded {
        output: Arc<NodeOutput>,
        cache_hit: bool,
        deferred: Option<Box<NodeRunRecord>>,
    },
    Failed(Failure),
    /// The attempt stopped because its token was cancelled.
    Cancelled,
    /// The attempt could not record itself: the run stops.
    StoreFailed(String),
}

/// A timer the machine armed (see [`Effect::Arm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// A retry back-off of node `node` (`invocation` of a fan-out) ran out.
    Retry { node: u32, invocation: Option<u32> },
    /// Node `node` may have waited for a human too long.
    Human(u32),
    /// The run's `timeout_seconds` ran out.
    RunTimeout,
    /// The grace period after a stop ran out: attempts still running are dropped.
    Grace,
    /// Waiting node `node`'s wake-up time (a timer, or a signal wait's timeout) came.
    Wake(u32),
}

/// A signal sent to the run (see `docs/signals.md`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signal {
    /// Its sequence number in the run (unique; the store assigns it).
    pub(crate) seq: u64,
    pub(crate) name: String,
    pub(crate) payload: Value,
}

/// A request from outside the run.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// Cancel the run, with the reason as reported.
    Cancel(String),
    /// A human approved node `node_id` (with optional input).
    Approve {
        node_id: String,
        input: Option<Value>,
    },
    /// A human rejected node `node_id`.
    Reject { node_id: String, reason: String },
    /// Another process took the run over.
    Lost(String),
    /// A signal arrived.
    Signal(Signal),
}

/// Something that happened to the run.
pub(crate) enum Event {
    /// An attempt of node `node` (`invocation` of a fan-out) ended.
    AttemptDone {
        node: u32,
        invocation: Option<u32>,
        outcome: Outcome,
    },
    /// A timer armed by [`Effect::Arm`] fired.
    TimerFired(Timer),
    /// The hooks answered the oldest event not yet answered.
    HookAnswered {
        commands: Vec<ExecutorCommand>,
        panics: Vec<ExecutionEvent>,
    },
    /// Commands the hooks returned from `on_start` (they answer no event).
    HookCommands(Vec<ExecutorCommand>),
    /// A request from outside.
    Control(Control),
    /// Node `node`'s `failure:` handler returned.
    HandlerDone { node: u32, error: String },
    /// A write the driver made for the run failed.
    StoreFailed(String),
}

/// An attempt to start: everything the executor needs but a cancellation token.
pub(crate) struct Start {
    pub(crate) node: u32,
    pub(crate) invocation: Option<u32>,
    pub(crate) attempt: u32,
    pub(crate) node_id: Arc<str>,
    pub(crate) def: DefRef,
    pub(crate) action: ActionRef,
    /// The fan-out element.
    pub(crate) item: Option<Arc<Value>>,
    pub(crate) overrides: Option<Map<String, Value>>,
    /// The attempt needs a token of its own (child of the node's) rather
    /// than the run's: it can be cancelled alone, or it has a timeout.
    pub(crate) own_token: bool,
}

/// What the driver must do for the machine, in order.
pub(crate) enum Effect {
    /// Start an attempt.
    Start(Start),
    /// Hand an event to the hooks; the record, if any, is written once the
    /// hooks answered it.
    Emit(ExecutionEvent, Option<Box<NodeRunRecord>>),
    /// Write node `i`'s record from its current state.
    Record(u32),
    /// Write a record an attempt left to the run.
    RecordLate(Box<NodeRunRecord>),
    /// Nodes were added: write the run's definition again.
    Definition,
    /// Fire `timer` after this many milliseconds.
    Arm(Timer, u64),
    /// Cancel the running attempts of node `i`.
    CancelNode(u32),
    /// Cancel every running attempt (the run stops).
    CancelRun,
    /// Drop every attempt still running (they ignored their cancellation).
    Abort,
    /// Run node `node`'s `failure:` handler, then report [`Event::HandlerDone`].
    RunHandler {
        node: u32,
        node_id: Arc<str>,
        handler: Arc<dyn NodeAction>,
        error: String,
    },
}

impl Effect {
    /// Carried out without the store or the hooks (see `exec::execute`).
    pub(crate) fn is_sync(&self) -> bool {
        !matches!(
            self,
            Effect::Emit(..) | Effect::Record(_) | Effect::RecordLate(_) | Effect::Definition
        )
    }
}

/// The run's data plane as the machine sees it: conditions and fan-out
/// lists read node outputs, a completed fan-out publishes its results.
pub(crate) trait Outputs {
    /// The value `reference` (`node.key`) points to.
    fn get(&self, reference: &str) -> Option<Arc<Value>>;
    /// Publishes `output` as node `node`'s outputs.
    fn put(&self, node: &str, output: &Value);
}

impl Outputs for dagger_core::Cache {
    fn get(&self, reference: &str) -> Option<Arc<Value>> {
        let (ns, key) = dagger_core::InputSpec::split_reference(reference)?;
        dagger_core::Cache::get(self, ns, key)
    }

    fn put(&self, node: &str, output: &Value) {
        self.insert_object(node, output);
    }
}
