//! The effect executor shared by the run's driver and its attempts.
//!
//! The run's [`Machine`] sits behind one lock in [`RunShared`]. Whoever has
//! an event for it steps it and carries out the effects that need nothing
//! but a spawn or a token (start an attempt, arm a timer, cancel, run a
//! failure handler); effects that write to the store or talk to hooks go
//! to the driver (`run/`) as a [`Msg`]. In a run without hooks an attempt
//! steps the machine itself when it ends, so a completion starts its
//! dependents without a round trip through the driver (the fast path);
//! with hooks every event goes through the driver, which keeps their order.
//! Local execution and the node queue (`remote.rs`) are both behind
//! [`worker::attempt`].

use crate::machine::Machine;
use crate::machine::graph::ActionRef;
use crate::machine::msg::{Effect, Event, Outcome, Start, Timer};
use crate::worker::{self, Attempt, Env};
use dagger_core::metrics::{self as m, AttemptOutcome};
use dagger_core::now_millis;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What the driver hears from attempts and timers.
pub(crate) enum Msg {
    /// An event to step the machine with.
    Event(Event),
    /// Effects a step outside the driver left for it.
    Effects(Vec<Effect>),
    /// The machine may be done (or only waiting): look at it.
    Wake,
}

/// What a run shares with every attempt and timer.
pub(crate) struct RunShared {
    pub(crate) env: Env,
    pub(crate) machine: Mutex<Machine>,
    pub(crate) tx: UnboundedSender<Msg>,
    /// Attempts step the machine themselves (runs without hooks).
    pub(crate) fast: bool,
    /// Cancelled when the run stops (every attempt sees it).
    pub(crate) run_token: CancellationToken,
    /// Cancelled when the grace period after a stop ran out: drops the
    /// attempts that ignored their cancellation.
    pub(crate) abort: CancellationToken,
    /// Per-node tokens of nodes whose attempts can be cancelled alone.
    tokens: Mutex<Vec<Option<CancellationToken>>>,
    /// This run's share of the ready and running gauges, as last added.
    gauged: [AtomicI64; 2],
}

impl RunShared {
    /// Shares `machine` with the run's attempts.
    pub(crate) fn new(env: Env, machine: Machine, tx: UnboundedSender<Msg>, fast: bool) -> Self {
        Self {
            env,
            machine: Mutex::new(machine),
            tx,
            fast,
            run_token: CancellationToken::new(),
            abort: CancellationToken::new(),
            tokens: Mutex::new(Vec::new()),
            gauged: [AtomicI64::new(0), AtomicI64::new(0)],
        }
    }

    /// Brings the process's ready and running gauges to `machine`'s counts
    /// (called with the machine's lock held, after a step; the run's end
    /// passes `None` to take its share away).
    pub(crate) fn sync_gauges(&self, machine: Option<&Machine>) {
        let now = machine.map_or([0, 0], |mc| [mc.ready_len(), mc.running()]);
        for ((name, gauged), count) in [m::READY_NODES, m::RUNNING_NODES]
            .into_iter()
            .zip(&self.gauged)
            .zip(now)
        {
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            let delta = count - gauged.swap(count, Ordering::Relaxed);
            if delta != 0 {
                metrics::gauge!(name).increment(delta as f64);
            }
        }
    }

    /// The token of node `i` (created on first use): `fresh` replaces it.
    fn node_token(&self, i: u32, fresh: bool) -> CancellationToken {
        let mut tokens = self.tokens.lock();
        if tokens.len() <= i as usize {
            tokens.resize(i as usize + 1, None);
        }
        let slot = &mut tokens[i as usize];
        match slot {
            Some(t) if !fresh => t.clone(),
            _ => slot.insert(self.run_token.child_token()).clone(),
        }
    }
}

thread_local! {
    /// Effects taken from the machine by this thread (reused: no allocation per event).
    static SCRATCH: RefCell<Vec<Effect>> = const { RefCell::new(Vec::new()) };
}

/// Reports `event` for the run: steps the machine here (fast path) or
/// hands it to the driver.
pub(crate) fn report(shared: &Arc<RunShared>, event: Event) {
    if let Some(s) = step(shared, event, false) {
        start(shared, s);
    }
}

/// Steps the machine with `event` (fast path) or hands it to the driver,
/// and carries out the effects. With `keep`, the last attempt the step
/// started is returned instead of spawned: the caller runs it itself.
fn step(shared: &Arc<RunShared>, event: Event, keep: bool) -> Option<Start> {
    if !shared.fast {
        let _ = shared.tx.send(Msg::Event(event));
        return None;
    }
    SCRATCH.with(|cell| {
        // A re-entrant call (none today) would find the buffer taken: use a fresh one.
        let mut local = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let fx = match &mut borrowed {
            Ok(b) => &mut **b,
            Err(_) => &mut local,
        };
        {
            let mut m = shared.machine.lock();
            m.step(event, now_millis(), &shared.env.cache);
            shared.sync_gauges(Some(&m));
            m.drain(fx);
            // What only the driver can do is sent before the lock goes, so a
            // driver that finds the machine done has it in its queue.
            if fx.iter().any(|e| !e.is_sync()) {
                let left: Vec<Effect> = fx.extract_if(.., |e| !e.is_sync()).collect();
                let _ = shared.tx.send(Msg::Effects(left));
            } else if m.is_done() || m.only_waiting() {
                let _ = shared.tx.send(Msg::Wake);
            }
        }
        let kept = if keep {
            let last = fx.iter().rposition(|e| matches!(e, Effect::Start(_)));
            match last.map(|i| fx.remove(i)) {
                Some(Effect::Start(s)) => Some(s),
                _ => None,
            }
        } else {
            None
        };
        for effect in fx.drain(..) {
            execute(shared, effect);
        }
        kept
    })
}

/// Carries out `effect` if it needs no store and no hook; returns it otherwise.
pub(crate) fn execute(shared: &Arc<RunShared>, effect: Effect) -> Option<Effect> {
    match effect {
        Effect::Start(s) => start(shared, s),
        Effect::Arm(timer, ms) => arm(shared, timer, ms),
        Effect::CancelNode(i) => {
            if let Some(Some(t)) = shared.tokens.lock().get(i as usize) {
                t.cancel();
            }
        }
        Effect::CancelRun => shared.run_token.cancel(),
        Effect::Abort => shared.abort.cancel(),
        Effect::RunHandler {
            node,
            node_id,
            handler,
            error,
        } => {
            let shared = shared.clone();
            tokio::spawn(async move {
                worker::failure_handler(&shared.env, node_id, handler, error.clone()).await;
                report(&shared, Event::HandlerDone { node, error });
            });
        }
        other => return Some(other),
    }
    None
}

/// Spawns a task for attempt `s`; it reports [`Event::AttemptDone`] unless
/// the run drops it first (see [`Effect::Abort`]).
fn start(shared: &Arc<RunShared>, s: Start) {
    let first = prepare(shared, s);
    tokio::spawn(attempts(shared.clone(), first));
}

/// An attempt ready to run, with the node (and invocation) it reports for.
struct Ready {
    node: u32,
    invocation: Option<u32>,
    attempt: Attempt,
    cancel: CancellationToken,
}

/// `s` with its cancellation token.
fn prepare(shared: &RunShared, s: Start) -> Ready {
    let cancel = match (s.own_token, s.invocation) {
        (false, _) => shared.run_token.clone(),
        (true, None) => shared.node_token(s.node, true),
        (true, Some(_)) => shared.node_token(s.node, false).child_token(),
    };
    Ready {
        node: s.node,
        invocation: s.invocation,
        attempt: Attempt {
            invocation: s.invocation,
            attempt: s.attempt,
            node_id: s.node_id,
            def: s.def,
            action: s.action,
            item: s.item,
            overrides: s.overrides,
        },
        cancel,
    }
}

/// The task of an attempt: runs it, reports it, and goes on with one of
/// the attempts its report started (the others get tasks of their own), so
/// a completion that releases a dependent runs it without a spawn. Each
/// attempt is the same as in a task of its own: its panics are caught, its
/// timeout and token apply, the abort drops it. Between attempts the task
/// spends a unit of tokio's budget, so a long chain yields like any task.
async fn attempts(shared: Arc<RunShared>, first: Ready) {
    let mut next = first;
    loop {
        let Ready {
            node,
            invocation,
            attempt,
            cancel,
        } = next;
        let span = worker::attempt_span(&shared.env, &attempt);
        let (node_id, try_no) = (attempt.node_id.clone(), attempt.attempt);
        // Attempts on the node queue are counted by the worker that runs
        // them. The run's actions have their handles in its table.
        let owned;
        let action = match &attempt.action {
            _ if shared.env.node_queue.is_some() => None,
            ActionRef::Table(i) => Some(&*shared.env.actions[*i as usize].metrics),
            ActionRef::Owned(_) => {
                owned = m::action(&shared.env.def(&attempt.def).action);
                Some(&*owned)
            }
        };
        let began = Instant::now();
        // Boxed: the attempt's state is most of this task's size, and a
        // task is copied whole a few times per spawn; the box is built once
        // instead of the state being moved through the wrappers below.
        let run = Box::pin(worker::attempt(&shared.env, attempt, cancel));
        // An instrumented future is larger and enters its span on every
        // poll: only pay for it when the span is recorded.
        let run = if span.is_disabled() {
            futures_util::future::Either::Left(run)
        } else {
            futures_util::future::Either::Right(run.instrument(span))
        };
        let outcome = tokio::select! {
            biased;
            o = run => o,
            () = shared.abort.cancelled() => return,
        };
        let label = outcome_label(&outcome);
        let took = began.elapsed();
        if let Some(action) = action {
            action.attempt(label, took.as_secs_f64());
        }
        finished(node_id, try_no, label, took, &outcome);
        // The machine drops the outcome under its lock: the output is
        // dropped here instead, after the lock is released.
        let output = match &outcome {
            Outcome::Succeeded { output, .. } => Some(output.clone()),
            _ => None,
        };
        let event = Event::AttemptDone {
            node,
            invocation,
            outcome,
        };
        let kept = step(&shared, event, true);
        drop(output);
        match kept {
            Some(s) => next = prepare(&shared, s),
            None => return,
        }
        tokio::task::coop::consume_budget().await;
    }
}

/// Logs the end of an attempt (info level; a failure with its error).
fn finished(node_id: Arc<str>, attempt: u32, outcome: AttemptOutcome, took: Duration, o: &Outcome) {
    let duration_ms = took.as_secs_f64() * 1000.0;
    let outcome = outcome.as_str();
    match o {
        Outcome::Failed(f) => {
            tracing::info!(%node_id, attempt, outcome, duration_ms, error = %f.message, "node finished");
        }
        Outcome::StoreFailed(e) => {
            tracing::info!(%node_id, attempt, outcome, duration_ms, error = %e, "node finished");
        }
        _ => tracing::info!(%node_id, attempt, outcome, duration_ms, "node finished"),
    }
}

/// The `outcome` label of an attempt that ended with `outcome`.
fn outcome_label(outcome: &Outcome) -> AttemptOutcome {
    match outcome {
        Outcome::Succeeded { .. } => AttemptOutcome::Succeeded,
        Outcome::Failed(_) => AttemptOutcome::Failed,
        Outcome::Cancelled => AttemptOutcome::Cancelled,
        Outcome::StoreFailed(_) => AttemptOutcome::StoreFailed,
    }
}

/// Fires `timer` after `ms` milliseconds (unless the run ends first).
fn arm(shared: &Arc<RunShared>, timer: Timer, ms: u64) {
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => report(&shared, Event::TimerFired(timer)),
            () = shared.abort.cancelled() => {}
        }
    });
}
