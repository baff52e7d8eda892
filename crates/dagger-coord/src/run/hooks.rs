//! The hook pipe: events go to the hooks on their own task, in order, and
//! their answers (commands, panics) come back one per event. A record
//! waiting for an event's answer is kept here until that answer arrives.

use crate::event::{EventHook, ExecutionEvent, ExecutorCommand, HookContext};
use dagger_core::store::NodeRunRecord;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The channel pair to the hooks' task and what travels on it.
pub(crate) struct HookPipe {
    pub(crate) event_tx: Option<mpsc::Sender<ExecutionEvent>>,
    pub(crate) cmd_rx: mpsc::Receiver<HookAnswer>,
    /// Events not yet sent (the channel is bounded), with their records.
    pub(crate) outbox: VecDeque<(ExecutionEvent, Option<Box<NodeRunRecord>>)>,
    /// Records waiting for the hooks' answer to their event, in send order.
    pub(crate) awaiting: VecDeque<Option<Box<NodeRunRecord>>>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl HookPipe {
    /// Starts the hooks' task.
    pub(crate) fn start(
        hooks: Vec<Arc<dyn EventHook>>,
        ctx: HookContext,
        event_capacity: usize,
        command_capacity: usize,
    ) -> Self {
        let (event_tx, mut event_rx) = mpsc::channel::<ExecutionEvent>(event_capacity);
        let (cmd_tx, cmd_rx) = mpsc::channel::<HookAnswer>(command_capacity);
        let task = tokio::spawn(async move {
            while let Some(event) = event_rx.recv().await {
                let out = answer(&hooks, &ctx, &event).await;
                if cmd_tx.send(out).await.is_err() {
                    break;
                }
            }
        });
        Self {
            event_tx: Some(event_tx),
            cmd_rx,
            outbox: VecDeque::new(),
            awaiting: VecDeque::new(),
            task,
        }
    }

    /// A sender to reserve a slot on, when there is something to send.
    pub(crate) fn sender(&self) -> Option<mpsc::Sender<ExecutionEvent>> {
        if self.outbox.is_empty() {
            None
        } else {
            self.event_tx.clone()
        }
    }

    /// Sends the oldest event on `permit`.
    pub(crate) fn send(&mut self, permit: mpsc::OwnedPermit<ExecutionEvent>) {
        if let Some((ev, record)) = self.outbox.pop_front() {
            permit.send(ev);
            self.awaiting.push_back(record);
        }
    }

    /// The record waiting for the answer that just arrived.
    pub(crate) fn answered(&mut self) -> Option<Box<NodeRunRecord>> {
        self.awaiting.pop_front().flatten()
    }
}

/// A permit to send on `tx` (never, without one).
pub(crate) async fn reserve(
    tx: Option<mpsc::Sender<ExecutionEvent>>,
) -> Option<mpsc::OwnedPermit<ExecutionEvent>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// The next answer (never, without hooks).
pub(crate) async fn recv_answer(rx: Option<&mut mpsc::Receiver<HookAnswer>>) -> Option<HookAnswer> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the hooks answered to one event.
pub(crate) struct HookAnswer {
    /// Their commands, in hook order.
    pub(crate) commands: Vec<ExecutorCommand>,
    /// `HookPanicked` events for the hooks that panicked.
    pub(crate) panics: Vec<ExecutionEvent>,
}

/// Every hook's answer to `event`. A hook that panics answers nothing and
/// is reported by a `HookPanicked` event, unless `event` is itself one
/// (then the panic is only logged: a hook that panics on every event must
/// not feed itself events for ever).
pub(crate) async fn answer(
    hooks: &[Arc<dyn EventHook>],
    ctx: &HookContext,
    event: &ExecutionEvent,
) -> HookAnswer {
    let mut out = HookAnswer {
        commands: Vec::new(),
        panics: Vec::new(),
    };
    for h in hooks {
        let during = || format!("handle({})", event.kind());
        match guarded(&**h, during, h.handle(ctx, event)).await {
            Ok(c) => out.commands.extend(c),
            Err(_) if matches!(event, ExecutionEvent::HookPanicked { .. }) => {}
            Err(panicked) => out.panics.push(panicked),
        }
    }
    out
}

/// Awaits a call of `hook`; a panic in it becomes (and is logged as) a
/// `HookPanicked` event naming the hook and what it was doing.
pub(crate) async fn guarded(
    hook: &dyn EventHook,
    during: impl FnOnce() -> String,
    call: impl std::future::Future<Output = Vec<ExecutorCommand>>,
) -> Result<Vec<ExecutorCommand>, ExecutionEvent> {
    dagger_core::catch_panic(call).await.map_err(|p| {
        let (hook, during) = (hook.name().to_string(), during());
        tracing::error!(%hook, %during, message = %p.message, "hook panicked");
        ExecutionEvent::HookPanicked {
            hook,
            during,
            message: p.message,
        }
    })
}
