//! [`RunHandle`]: a started run — its id, cancellation, event stream, and
//! (awaited) its report.

use crate::error::CoordError;
use crate::event::{EventHook, ExecutionEvent, ExecutorCommand, HookContext};
use crate::report::DagExecutionReport;
use dagger_core::RunId;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A run started by [`crate::Coordinator::start`]. The run goes on in its
/// own task; awaiting the handle yields its report (with the node outputs).
/// Dropping the handle does not stop the run: [`Self::cancel`] does.
///
/// ```
/// # use dagger_coord::*;
/// # use std::sync::Arc;
/// # struct AddOne;
/// # #[async_trait::async_trait]
/// # impl NodeAction for AddOne {
/// #     fn name(&self) -> &str { "add_one" }
/// #     async fn execute(&self, ctx: &NodeCtx) -> Result<NodeOutput, dagger_core::BoxError> {
/// #         let x: i64 = ctx.input_as("x")?;
/// #         Ok(NodeOutput::success(serde_json::json!({ "y": x + 1 })))
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = ActionRegistry::new();
/// registry.register(Arc::new(AddOne));
/// let mut executor = DagExecutor::new(None, registry, dagger_core::Stores::memory()).await?;
/// executor.load_yaml_string(
///     "name: inc\nnodes:\n  - id: a\n    action: add_one\n    inputs: [{ name: x, reference: inputs.x }]\n",
/// )?;
/// let handle = Coordinator::default()
///     .start(&executor, RunRequest::new("inc").input("x", 41).id("inc-1"))
///     .await?;
/// assert_eq!(handle.id().as_str(), "inc-1");
/// let report = handle.await?.into_result()?;
/// assert_eq!(report.output_as::<i64>("a", "y"), Some(42));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a run handle does nothing unless awaited, cancelled or watched; dropping it leaves the run going"]
pub struct RunHandle {
    pub(crate) id: RunId,
    pub(crate) cancel: CancellationToken,
    pub(crate) reason: Arc<OnceLock<String>>,
    pub(crate) events: Option<RunEvents>,
    pub(crate) task: JoinHandle<Result<DagExecutionReport, CoordError>>,
}

impl RunHandle {
    /// The run's id.
    pub fn id(&self) -> &RunId {
        &self.id
    }

    /// Cancels the run: it stops starting nodes, running actions see their
    /// cancel token fire, and it ends `Cancelled` with the reason
    /// `run cancelled: <reason>` (in the report and in the store). The first
    /// reason given wins; cancelling an ended run does nothing.
    pub fn cancel(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.cancel.cancel();
    }

    /// The token that cancels this run (without a reason), e.g. to hand to
    /// code that only knows [`CancellationToken`]s.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The run's event stream, the first time it is asked for: every
    /// [`ExecutionEvent`] from `RunStarted` to `RunCompleted`, in order.
    /// `None` when the request did not ask for events
    /// ([`crate::RunRequest::events`]) or the stream was taken already.
    pub fn events(&mut self) -> Option<RunEvents> {
        self.events.take()
    }

    /// Whether the run has ended (awaiting the handle then returns at once).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl IntoFuture for RunHandle {
    type Output = Result<DagExecutionReport, CoordError>;
    type IntoFuture = RunFinished;

    fn into_future(self) -> RunFinished {
        RunFinished { task: self.task }
    }
}

/// The end of a run: resolves to its report (see [`RunHandle`]).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct RunFinished {
    task: JoinHandle<Result<DagExecutionReport, CoordError>>,
}

impl Future for RunFinished {
    type Output = Result<DagExecutionReport, CoordError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(|e| Err(CoordError::RunTask(e.to_string()))))
    }
}

/// The events of one run, in order; ends after the run's last event. A
/// [`futures_util::Stream`], or read with [`Self::recv`]. Unbounded: a
/// reader that falls behind never slows the run (the events wait here).
#[derive(Debug)]
pub struct RunEvents {
    rx: mpsc::UnboundedReceiver<ExecutionEvent>,
}

impl RunEvents {
    /// The next event; `None` once the run ended and every event was read.
    pub async fn recv(&mut self) -> Option<ExecutionEvent> {
        self.rx.recv().await
    }
}

impl futures_util::Stream for RunEvents {
    type Item = ExecutionEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ExecutionEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The hook behind [`RunEvents`]: forwards every event, answers nothing.
pub(crate) struct Forwarder {
    tx: mpsc::UnboundedSender<ExecutionEvent>,
}

impl Forwarder {
    /// The hook and the stream it feeds.
    pub(crate) fn new() -> (Arc<Self>, RunEvents) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { tx }), RunEvents { rx })
    }
}

#[async_trait::async_trait]
impl EventHook for Forwarder {
    fn name(&self) -> &str {
        "run-handle-events"
    }

    async fn handle(&self, _ctx: &HookContext, event: &ExecutionEvent) -> Vec<ExecutorCommand> {
        // A reader that dropped its stream wants no more events.
        let _ = self.tx.send(event.clone());
        Vec::new()
    }
}
