//! The run machine: the one place a run's node states change.
//!
//! [`Machine::step`] takes an [`Event`] (an attempt ended, a timer fired,
//! the hooks answered, a request from outside) with the current time, updates
//! the state and queues [`Effect`]s (start an attempt, write a record, emit
//! an event, arm a timer, cancel, run a failure handler), then starts what
//! became ready. It does no I/O, awaits nothing and reads no clock, so a
//! test (or a simulator) drives it with any order of events; the async
//! driver in `run/` and the attempt executor in `exec.rs` carry the effects
//! out. Every node status change goes through [`NodeStatus::transition`]
//! (see `NodeState::set_status`).

pub(crate) mod graph;
mod grow;
pub(crate) mod msg;
#[cfg(test)]
mod tests;
mod wait;

use crate::event::ExecutionEvent;
use dagger_core::{NodeStatus, RunStatus};
use dagger_dag_flow::{
    ActionRegistry, DagConfig, HumanTimeoutAction, NodeAction, NodeDef, NodeOutput, OnFailure,
    WorkflowDef,
};
use graph::{FanOut, RunGraph, truthy};
use msg::{Control, Effect, Event, Failure, Millis, Outcome, Outputs, Start, Timer};
use serde_json::{Map, Value, json};
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Completed invocation outputs and attempt counts of a fan-out node, by index.
pub(crate) type RestoredFanOut = (HashMap<u32, Value>, HashMap<u32, u32>);

/// Why the run stopped scheduling.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    Cancel(String),
    Halt(String),
    Timeout(String),
    Budget(String),
    Pause(String),
    Store(String),
    /// Another process took the run over.
    Lost(String),
}

impl Stop {
    pub(crate) fn reason(&self) -> &str {
        match self {
            Stop::Cancel(r)
            | Stop::Halt(r)
            | Stop::Timeout(r)
            | Stop::Budget(r)
            | Stop::Pause(r)
            | Stop::Store(r)
            | Stop::Lost(r) => r,
        }
    }
}

/// What a machine is built from.
pub(crate) struct Params {
    pub(crate) graph: RunGraph,
    pub(crate) wf: Arc<WorkflowDef>,
    pub(crate) added: Vec<Arc<NodeDef>>,
    pub(crate) config: DagConfig,
    pub(crate) registry: ActionRegistry,
    pub(crate) failure_actions: HashMap<String, Arc<dyn NodeAction>>,
    pub(crate) restored_invocations: HashMap<u32, RestoredFanOut>,
    /// How long stopped attempts get before they are dropped, in ms.
    pub(crate) grace_ms: u64,
    /// Seeds the retry jitter.
    pub(crate) seed: u64,
    /// Signals taken by nodes before (resume): not delivered again.
    pub(crate) consumed_signals: HashSet<u64>,
}

/// A run's state and its rules.
pub(crate) struct Machine {
    pub(crate) g: RunGraph,
    pub(crate) wf: Arc<WorkflowDef>,
    pub(crate) added: Vec<Arc<NodeDef>>,
    config: DagConfig,
    registry: ActionRegistry,
    failure_actions: HashMap<String, Arc<dyn NodeAction>>,
    restored_invocations: HashMap<u32, RestoredFanOut>,
    /// Attempts (or fan-out invocations) waiting for a slot, started first.
    work: VecDeque<(u32, Option<u32>)>,
    limit: usize,
    /// Attempts started and not yet reported.
    running: usize,
    /// Failure handlers running.
    handlers: usize,
    /// Retry timers armed and not yet fired.
    retries: usize,
    /// Nodes waiting for a human.
    waiting: HashSet<u32>,
    pub(crate) tokens: u64,
    pub(crate) iterations: u64,
    pub(crate) stop: Option<Stop>,
    /// The grace period after a stop ran out: attempts were dropped.
    aborted: bool,
    grace_ms: u64,
    seed: u64,
    now: Millis,
    /// The run ended ([`Machine::end`]): events change nothing any more.
    ended: bool,
    /// Sequence numbers of the signals nodes took.
    consumed: HashSet<u64>,
    /// Signals no waiting node took yet, oldest first.
    kept: Vec<msg::Signal>,
}

impl Machine {
    /// A machine over a wired-to-be graph; [`Machine::start`] begins the run.
    pub(crate) fn new(p: Params) -> Self {
        let limit = if p.config.enable_parallel_execution {
            p.config.max_parallel_nodes.max(1)
        } else {
            1
        };
        Self {
            g: p.graph,
            wf: p.wf,
            added: p.added,
            config: p.config,
            registry: p.registry,
            failure_actions: p.failure_actions,
            restored_invocations: p.restored_invocations,
            work: VecDeque::new(),
            limit,
            running: 0,
            handlers: 0,
            retries: 0,
            waiting: HashSet::new(),
            tokens: 0,
            iterations: 0,
            stop: None,
            aborted: false,
            grace_ms: p.grace_ms,
            seed: p.seed,
            now: 0,
            ended: false,
            consumed: p.consumed_signals,
            kept: Vec::new(),
        }
    }

    /// Wires every node (completed ones stay completed), emits `RunStarted`
    /// and arms the run's timeout. Nothing starts before the first step.
    pub(crate) fn start(&mut self, now: Millis, resumed: bool) {
        self.now = now;
        for i in 0..self.g.nodes.len() as u32 {
            if self.g.nodes[i as usize].status == NodeStatus::Completed {
                continue;
            }
            match self.g.wire(i) {
                Some(reason) => self.g.skip(i, reason),
                None if self.g.nodes[i as usize].remaining == 0 => self.g.make_ready(i),
                None => {}
            }
        }
        let nodes = self.g.nodes.len();
        self.g
            .emit(|| ExecutionEvent::RunStarted { nodes, resumed });
        if let Some(secs) = self.config.timeout_seconds {
            let ms = secs.saturating_mul(1000);
            self.g.fx.push(Effect::Arm(Timer::RunTimeout, ms));
        }
    }

    /// Applies `event` at time `now`, then starts what is ready.
    pub(crate) fn step(&mut self, event: Event, now: Millis, data: &dyn Outputs) {
        if self.ended {
            // A late timer or answer; only a failed write still counts.
            if let Event::StoreFailed(reason) = event {
                self.stop.get_or_insert(Stop::Store(reason));
            }
            return;
        }
        self.now = now;
        match event {
            Event::AttemptDone {
                node,
                invocation,
                outcome,
            } => self.on_done(node, invocation, outcome, data),
            Event::TimerFired(t) => self.on_timer(t, data),
            Event::HookAnswered { commands, panics } => {
                self.g.unanswered = self.g.unanswered.saturating_sub(1);
                for p in panics {
                    self.g.emit(|| p);
                }
                self.apply_commands(commands);
            }
            Event::HookCommands(commands) => self.apply_commands(commands),
            Event::Control(c) => self.on_control(c, data),
            Event::HandlerDone { node, error } => {
                self.handlers = self.handlers.saturating_sub(1);
                self.finalize_failed(node, error);
            }
            Event::StoreFailed(reason) => self.stop(Stop::Store(reason)),
        }
        self.dispatch(data);
    }

    /// Starts what is ready at time `now` (the first step of a run).
    pub(crate) fn advance(&mut self, now: Millis, data: &dyn Outputs) {
        if !self.ended {
            self.now = now;
            self.dispatch(data);
        }
    }

    /// Moves the queued effects to `into` (keeping both buffers' capacity).
    pub(crate) fn drain(&mut self, into: &mut Vec<Effect>) {
        into.append(&mut self.g.fx);
    }

    /// Nothing runs, and nothing will start without a new event from outside.
    pub(crate) fn is_done(&self) -> bool {
        if self.running > 0 || self.handlers > 0 {
            return false;
        }
        if self.stop.is_some() {
            return true;
        }
        self.g.unanswered == 0
            && self.retries == 0
            && self.g.ready.is_empty()
            && self.work.is_empty()
            && self.waiting.is_empty()
            && self.g.waits.is_empty()
    }

    /// Only humans can move the run on.
    pub(crate) fn only_waiting(&self) -> bool {
        !self.waiting.is_empty()
            && self.g.waits.is_empty()
            && self.running == 0
            && self.g.ready.is_empty()
            && self.work.is_empty()
            && self.retries == 0
    }

    /// Nodes ready and not started (held back by a limit).
    pub(crate) fn ready_len(&self) -> usize {
        self.g.ready.len()
    }

    /// Attempts started and not yet reported.
    pub(crate) fn running(&self) -> usize {
        self.running
    }

    // ----- scheduling -------------------------------------------------------------

    fn dispatch(&mut self, data: &dyn Outputs) {
        // With hooks, a node released by an event starts only after the hooks
        // answered that event, so a hook can still pause, skip or rewire it.
        if self.g.unanswered > 0 {
            return;
        }
        while self.stop.is_none() && self.running < self.limit {
            if let Some((i, inv)) = self.work.pop_front() {
                self.start_attempt(i, inv);
                continue;
            }
            let Some(Reverse(i)) = self.g.ready.pop() else {
                break;
            };
            if self.g.nodes[i as usize].status != NodeStatus::Ready {
                continue;
            }
            if self.g.in_paused_branch(i) {
                self.g.nodes[i as usize].set_status(NodeStatus::Paused);
                self.g.parked.push(i);
                continue;
            }
            if let Some(reference) = self.g.nodes[i as usize].def.when.as_deref()
                && !data.get(reference).is_some_and(|v| truthy(&v))
            {
                let why = format!("condition `{reference}` is false");
                self.g.skip(i, why);
                continue;
            }
            if let Some(prompt) = self.g.nodes[i as usize].approval_prompt() {
                let prompt = prompt.to_string();
                self.wait_for_human(i, prompt);
                continue;
            }
            if self.g.nodes[i as usize].def.is_wait() {
                self.begin_wait(i, data);
                continue;
            }
            if let Some(reference) = self.g.nodes[i as usize].def.map_over.clone() {
                self.start_fanout(i, &reference, data);
                continue;
            }
            self.start_attempt(i, None);
        }
    }

    fn wait_for_human(&mut self, i: u32, prompt: String) {
        let n = &mut self.g.nodes[i as usize];
        n.set_status(NodeStatus::WaitingForHuman);
        n.rare_mut().waiting_since = Some(self.now);
        n.error = None;
        let node = n.node_ref(None);
        self.waiting.insert(i);
        self.g.touch(i);
        self.g
            .emit(|| ExecutionEvent::NodeWaitingForHuman { node, prompt });
        if let Some(ms) = self.human_wait_ms() {
            self.g.fx.push(Effect::Arm(Timer::Human(i), ms));
        }
    }

    fn human_wait_ms(&self) -> Option<u64> {
        self.config
            .human_wait_minutes
            .map(|m| m.saturating_mul(60_000))
    }

    fn start_fanout(&mut self, i: u32, reference: &str, data: &dyn Outputs) {
        let items = match data.get(reference) {
            Some(v) => match &*v {
                Value::Array(a) => a.iter().cloned().map(Arc::new).collect::<Vec<_>>(),
                _ => {
                    let msg = format!(
                        "node `{}`: map_over `{reference}` is not a list",
                        self.g.id_of(i)
                    );
                    return self.final_failure(i, msg);
                }
            },
            None => {
                let msg = format!(
                    "node `{}`: map_over `{reference}` has no value",
                    self.g.id_of(i)
                );
                return self.final_failure(i, msg);
            }
        };
        let count = items.len();
        let (done, attempts) = self.restored_invocations.remove(&i).unwrap_or_default();
        let mut fan = FanOut {
            items,
            results: vec![None; count],
            attempts: vec![0; count],
            running: 0,
            remaining: count,
            failed: None,
        };
        for (k, a) in attempts {
            if let Some(slot) = fan.attempts.get_mut(k as usize) {
                *slot = a;
            }
        }
        for (k, v) in done {
            if let Some(slot) = fan.results.get_mut(k as usize)
                && slot.is_none()
            {
                *slot = Some(v);
                fan.remaining -= 1;
            }
        }
        let pending: Vec<u32> = (0..count as u32)
            .filter(|k| fan.results[*k as usize].is_none())
            .collect();
        let n = &mut self.g.nodes[i as usize];
        n.set_status(NodeStatus::Running);
        n.mark_started(self.now);
        n.fanout = Some(Box::new(fan));
        if pending.is_empty() {
            self.complete_fanout(i, data);
            return;
        }
        self.work.extend(pending.into_iter().map(|k| (i, Some(k))));
    }

    fn start_attempt(&mut self, i: u32, inv: Option<u32>) {
        if let Some(max) = self.config.max_iterations
            && self.iterations >= max
        {
            self.work.push_front((i, inv));
            let stop = Stop::Budget(format!(
                "max_iterations budget of {max} node executions exhausted"
            ));
            return self.stop(stop);
        }
        self.iterations += 1;
        let hooks = self.g.hooks;
        let n = &mut self.g.nodes[i as usize];
        let (attempt, item, own_token) = match inv {
            None => {
                n.attempts += 1;
                // Only a hook cancels one plain node, and only a timeout
                // cancels its own attempt: otherwise the run's token will do.
                (n.attempts, None, hooks || n.def.timeout.is_some())
            }
            Some(k) => {
                let Some(fan) = n.fanout.as_mut() else { return };
                let slot = &mut fan.attempts[k as usize];
                *slot += 1;
                fan.running += 1;
                let attempt = *slot;
                n.attempts = n.attempts.max(attempt);
                (attempt, Some(fan.items[k as usize].clone()), true)
            }
        };
        if n.status != NodeStatus::Running {
            n.set_status(NodeStatus::Running);
        }
        n.mark_started(self.now);
        let start = Start {
            node: i,
            invocation: inv,
            attempt,
            node_id: n.id.clone(),
            def: n.def.to_ref(),
            action: n.action.clone(),
            item,
            overrides: n.overrides().cloned(),
            own_token,
        };
        // Events (and so their node refs, two strings each) only exist with hooks.
        if hooks {
            let mut node = n.node_ref(inv);
            node.attempt = attempt;
            self.g.emit(|| ExecutionEvent::NodeStarted { node });
        }
        self.running += 1;
        self.g.fx.push(Effect::Start(start));
    }

    // ----- results ----------------------------------------------------------------

    fn on_done(&mut self, i: u32, inv: Option<u32>, outcome: Outcome, data: &dyn Outputs) {
        if self.aborted {
            // Its attempt was given up for dropped already.
            if let Outcome::Succeeded {
                deferred: Some(record),
                ..
            } = outcome
            {
                self.g.fx.push(Effect::RecordLate(record));
            }
            return;
        }
        self.running = self.running.saturating_sub(1);
        if let Outcome::StoreFailed(reason) = outcome {
            return self.stop(Stop::Store(format!("storage error: {reason}")));
        }
        match inv {
            None => self.on_plain_done(i, outcome),
            Some(k) => self.on_invocation_done(i, k, outcome, data),
        }
    }

    fn on_plain_done(&mut self, i: u32, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded {
                output,
                cache_hit,
                deferred,
            } => {
                let now = self.now;
                let n = &mut self.g.nodes[i as usize];
                if n.status != NodeStatus::Running {
                    if let Some(record) = deferred {
                        self.g.fx.push(Effect::RecordLate(record));
                    }
                    return;
                }
                n.set_status(NodeStatus::Completed);
                n.cache_hit = cache_hit;
                n.error = None;
                n.set_duration(Some(elapsed(n.started(), now)));
                self.tokens += output.tokens();
                let selected: Option<HashSet<String>> =
                    output.branches().map(|b| b.into_iter().collect());
                if self.g.hooks {
                    let node = n.node_ref(None);
                    let event = ExecutionEvent::NodeCompleted {
                        node,
                        outcome: output,
                    };
                    self.g.emit_with(event, deferred);
                } else if let Some(record) = deferred {
                    self.g.fx.push(Effect::RecordLate(record));
                }
                self.g.release_dependents(i, selected.as_ref());
                self.check_tokens();
            }
            Outcome::Failed(f) => self.on_failure(i, None, f),
            Outcome::Cancelled | Outcome::StoreFailed(_) => self.on_cancelled(i),
        }
    }

    fn on_cancelled(&mut self, i: u32) {
        let n = &mut self.g.nodes[i as usize];
        if n.status.is_terminal() {
            return;
        }
        if n.cancel_reason().is_none() && matches!(self.stop, Some(Stop::Pause(_))) {
            // Interrupted by a pause, not cancelled: it runs again on resume.
            n.set_status(NodeStatus::Pending);
            return;
        }
        let reason = n
            .rare
            .as_mut()
            .and_then(|r| r.cancel_reason.take())
            .or_else(|| self.stop.as_ref().map(|s| s.reason().to_string()))
            .unwrap_or_else(|| "cancelled".into());
        self.g.cancel_unstarted(i, reason);
    }

    fn on_invocation_done(&mut self, i: u32, k: u32, outcome: Outcome, data: &dyn Outputs) {
        let Some(fan) = self.g.nodes[i as usize].fanout.as_mut() else {
            return;
        };
        fan.running = fan.running.saturating_sub(1);
        match outcome {
            Outcome::Succeeded {
                output, deferred, ..
            } => {
                if fan.results[k as usize].is_none() {
                    fan.results[k as usize] = Some(output.outputs.clone());
                    fan.remaining -= 1;
                }
                let complete = fan.remaining == 0 && fan.failed.is_none();
                if let Some(record) = deferred {
                    self.g.fx.push(Effect::RecordLate(record));
                }
                self.tokens += output.tokens();
                if complete {
                    self.complete_fanout(i, data);
                }
                self.check_tokens();
            }
            Outcome::Failed(f) => self.on_failure(i, Some(k), f),
            Outcome::Cancelled | Outcome::StoreFailed(_) => {
                if fan.running == 0
                    && let Some(err) = fan.failed.clone()
                {
                    self.final_failure(i, err);
                } else if fan.running == 0 && self.stop.is_some() {
                    self.on_cancelled(i);
                }
            }
        }
    }

    fn complete_fanout(&mut self, i: u32, data: &dyn Outputs) {
        let now = self.now;
        let n = &mut self.g.nodes[i as usize];
        let Some(fan) = n.fanout.take() else { return };
        let results: Vec<Value> = fan
            .results
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let output = Arc::new(NodeOutput::success(json!({ "results": results })));
        n.set_status(NodeStatus::Completed);
        n.set_duration(Some(elapsed(n.started(), now)));
        data.put(&n.id, &output.outputs);
        let node = n.node_ref(None);
        self.g.touch(i);
        self.g.emit(|| ExecutionEvent::NodeCompleted {
            node,
            outcome: output,
        });
        self.g.release_dependents(i, None);
    }

    fn on_failure(&mut self, i: u32, inv: Option<u32>, f: Failure) {
        let n = &mut self.g.nodes[i as usize];
        let attempt = match inv {
            None => n.attempts,
            Some(k) => n
                .fanout
                .as_ref()
                .map_or(n.attempts, |fan| fan.attempts[k as usize]),
        };
        if n.cancel_reason().is_some() {
            return self.on_cancelled(i);
        }
        let policy = self.config.retry_policy(n.def.try_count);
        if self.stop.is_none() && policy.should_retry(attempt, f.class) {
            let unit = jitter_unit(self.seed, i, inv, attempt);
            let delay = policy.jittered_delay(attempt, unit);
            if inv.is_none() {
                n.set_status(NodeStatus::Retrying);
            }
            let mut node = n.node_ref(inv);
            node.attempt = attempt;
            let error = f.message;
            let delay_ms = delay.as_millis() as u64;
            tracing::info!(node_id = %n.id, attempt, delay_ms, error = %error, "node attempt failed; retrying");
            self.g.emit(|| ExecutionEvent::NodeRetrying {
                node,
                error,
                delay_ms,
            });
            if delay.is_zero() {
                self.work.push_back((i, inv));
            } else {
                self.retries += 1;
                let timer = Timer::Retry {
                    node: i,
                    invocation: inv,
                };
                self.g.fx.push(Effect::Arm(timer, delay_ms.max(1)));
            }
            return;
        }
        let message = if f.class == dagger_core::ErrorClass::Timeout || attempt <= 1 {
            f.message
        } else {
            format!("{} (after {attempt} attempts)", f.message)
        };
        match inv {
            None => self.final_failure(i, message),
            Some(_) => {
                let Some(fan) = n.fanout.as_mut() else { return };
                if fan.failed.is_none() {
                    fan.failed = Some(message.clone());
                    self.g.fx.push(Effect::CancelNode(i));
                    self.work.retain(|(j, _)| *j != i);
                }
                if fan.running == 0 {
                    self.final_failure(i, message);
                }
            }
        }
    }

    /// The node failed for good: run its `failure:` action once, then finalize.
    fn final_failure(&mut self, i: u32, error: String) {
        let n = &mut self.g.nodes[i as usize];
        n.fanout = None;
        n.error = Some(error.clone());
        let handler = n
            .def
            .failure
            .as_ref()
            .and_then(|f| self.failure_actions.get(f).cloned());
        match handler {
            Some(handler) => {
                self.handlers += 1;
                let node_id = n.id.clone();
                self.g.fx.push(Effect::RunHandler {
                    node: i,
                    node_id,
                    handler,
                    error,
                });
            }
            None => self.finalize_failed(i, error),
        }
    }

    fn finalize_failed(&mut self, i: u32, error: String) {
        let now = self.now;
        let n = &mut self.g.nodes[i as usize];
        n.set_status(NodeStatus::Failed);
        n.error = Some(error.clone());
        n.clear_wait();
        n.set_duration(n.started().map(|s| elapsed(Some(s), now)));
        let onfailure = n.def.onfailure;
        let node = n.node_ref(None);
        let id = n.id.clone();
        self.waiting.remove(&i);
        self.g.touch(i);
        self.g.emit(|| ExecutionEvent::NodeFailed {
            node,
            error: error.clone(),
        });
        self.g.release_dependents(i, None);
        if onfailure {
            return;
        }
        match self.config.on_failure {
            OnFailure::Continue => {}
            OnFailure::Halt => self.stop(Stop::Halt(format!("node `{id}` failed: {error}"))),
            OnFailure::Pause => self.stop(Stop::Pause(format!("node `{id}` failed: {error}"))),
        }
    }

    fn check_tokens(&mut self) {
        if let Some(max) = self.config.max_tokens
            && self.tokens > max
        {
            let used = self.tokens;
            self.stop(Stop::Budget(format!(
                "max_tokens budget of {max} exceeded ({used} tokens used)"
            )));
        }
    }

    // ----- timers, humans and requests from outside -------------------------------

    fn on_timer(&mut self, t: Timer, data: &dyn Outputs) {
        match t {
            Timer::Retry { node, invocation } => {
                self.retries = self.retries.saturating_sub(1);
                if self.stop.is_some() {
                    return;
                }
                let n = &self.g.nodes[node as usize];
                let still_retrying = match invocation {
                    None => n.status == NodeStatus::Retrying,
                    Some(_) => {
                        n.status == NodeStatus::Running
                            && n.fanout.as_ref().is_some_and(|f| f.failed.is_none())
                    }
                };
                if still_retrying {
                    self.work.push_back((node, invocation));
                }
            }
            Timer::Human(i) => self.human_timeout(i),
            Timer::RunTimeout => {
                if self.stop.is_none() {
                    let secs = self.config.timeout_seconds.unwrap_or_default();
                    self.stop(Stop::Timeout(format!("run timed out after {secs}s")));
                }
            }
            Timer::Grace => {
                if self.running > 0 {
                    self.abort_all();
                }
            }
            Timer::Wake(i) => {
                if self.stop.is_none() {
                    self.on_wake(i, data);
                }
            }
        }
    }

    fn human_timeout(&mut self, i: u32) {
        let (Some(wait), Some(since)) = (
            self.human_wait_ms(),
            self.g.nodes[i as usize].waiting_since(),
        ) else {
            return;
        };
        if !self.waiting.contains(&i) {
            return;
        }
        let due = since.saturating_add(wait as i64);
        if self.now < due {
            // The timer's clock ran ahead of the wall clock: look again later.
            let left = (due - self.now) as u64;
            self.g.fx.push(Effect::Arm(Timer::Human(i), left));
            return;
        }
        match self.config.human_timeout_action {
            HumanTimeoutAction::Autopilot => self.approve(i, None),
            HumanTimeoutAction::Pause => {
                let id = self.g.id_of(i).to_string();
                let minutes = self.config.human_wait_minutes.unwrap_or_default();
                self.stop(Stop::Pause(format!(
                    "no human answered node `{id}` within {minutes} minutes"
                )));
                self.g.nodes[i as usize].clear_wait();
                self.waiting.remove(&i);
            }
        }
    }

    fn approve(&mut self, i: u32, input: Option<Value>) {
        let n = &mut self.g.nodes[i as usize];
        let rare = n.rare_mut();
        rare.approved = true;
        if let Some(input) = input {
            rare.overrides
                .get_or_insert_with(Map::new)
                .insert("human_input".into(), input);
        }
        if n.status == NodeStatus::WaitingForHuman {
            n.clear_wait();
            self.waiting.remove(&i);
            self.g.make_ready(i);
        }
    }

    fn on_control(&mut self, c: Control, data: &dyn Outputs) {
        match c {
            Control::Signal(signal) => {
                if self.stop.is_none() {
                    self.on_signal(signal, data);
                }
            }
            Control::Cancel(reason) => self.stop(Stop::Cancel(reason)),
            Control::Lost(reason) => self.stop(Stop::Lost(reason)),
            Control::Approve { node_id, input } => {
                match self.g.index.get(node_id.as_str()).copied() {
                    Some(i) if !self.g.nodes[i as usize].status.is_terminal() => {
                        self.approve(i, input)
                    }
                    _ => {
                        tracing::warn!(node = %node_id, "approval for a node that is not waiting; ignored")
                    }
                }
            }
            Control::Reject { node_id, reason } => {
                match self.g.index.get(node_id.as_str()).copied() {
                    Some(i)
                        if matches!(
                            self.g.nodes[i as usize].status,
                            NodeStatus::WaitingForHuman | NodeStatus::Pending | NodeStatus::Ready
                        ) =>
                    {
                        self.waiting.remove(&i);
                        self.final_failure(i, format!("rejected by a human: {reason}"));
                    }
                    _ => {
                        tracing::warn!(node = %node_id, "rejection for a node that is not waiting; ignored")
                    }
                }
            }
        }
    }

    // ----- stopping ---------------------------------------------------------------

    /// Stops scheduling; every stop but Pause also cancels running attempts
    /// (and, but for a store failure, drops them after the grace period).
    pub(crate) fn stop(&mut self, stop: Stop) {
        if self.stop.is_some() {
            return;
        }
        tracing::info!(reason = stop.reason(), "run stopping");
        if !matches!(stop, Stop::Pause(_)) {
            self.g.fx.push(Effect::CancelRun);
        }
        if !matches!(stop, Stop::Pause(_) | Stop::Store(_)) {
            self.g.fx.push(Effect::Arm(Timer::Grace, self.grace_ms));
        }
        self.stop = Some(stop);
    }

    /// The grace period ran out: every attempt still running is dropped.
    fn abort_all(&mut self) {
        let reason = format!(
            "{} (the action did not stop within the grace period and was dropped)",
            self.stop.as_ref().map_or("cancelled", |s| s.reason())
        );
        for i in 0..self.g.nodes.len() {
            let n = &mut self.g.nodes[i];
            if n.status == NodeStatus::Running {
                n.set_status(NodeStatus::Cancelled);
                n.error = Some(reason.clone());
                self.g.touch(i as u32);
            }
        }
        self.running = 0;
        self.aborted = true;
        self.g.fx.push(Effect::Abort);
    }

    /// Ends the run: nodes that can no longer run are cancelled (unless the
    /// run only paused); returns the run's status and reason.
    pub(crate) fn end(&mut self) -> (RunStatus, Option<String>) {
        self.ended = true;
        let (status, reason) = self.final_status();
        if !matches!(status, RunStatus::Paused | RunStatus::WaitingForHuman) {
            let why = reason.clone().unwrap_or_else(|| "run ended".into());
            for i in 0..self.g.nodes.len() as u32 {
                if !self.g.nodes[i as usize].status.is_terminal() {
                    self.g.cancel_unstarted(i, why.clone());
                }
            }
        }
        (status, reason)
    }

    fn final_status(&self) -> (RunStatus, Option<String>) {
        match &self.stop {
            Some(Stop::Cancel(r) | Stop::Lost(r)) => {
                return (RunStatus::Cancelled, Some(r.clone()));
            }
            Some(Stop::Pause(r)) => return (RunStatus::Paused, Some(r.clone())),
            Some(Stop::Halt(r) | Stop::Timeout(r) | Stop::Budget(r) | Stop::Store(r)) => {
                return (RunStatus::Failed, Some(r.clone()));
            }
            None => {}
        }
        if let Some(&root) = self.g.paused_roots.keys().next()
            && !self.g.parked.is_empty()
        {
            let why = self.g.paused_roots[&root].clone().unwrap_or_default();
            return (
                RunStatus::Paused,
                Some(
                    format!("branch `{}` is paused {why}", self.g.id_of(root))
                        .trim_end()
                        .to_string(),
                ),
            );
        }
        let failed: Vec<&str> = self
            .g
            .nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Failed && !n.def.onfailure)
            .map(|n| &*n.id)
            .collect();
        if failed.is_empty() {
            (RunStatus::Completed, None)
        } else {
            (
                RunStatus::Failed,
                Some(format!("failed nodes: {}", failed.join(", "))),
            )
        }
    }
}

/// Milliseconds from `start` (or now, if it never started) to `now`.
fn elapsed(start: Option<Millis>, now: Millis) -> u64 {
    start.map_or(0, |s| now.saturating_sub(s).max(0) as u64)
}

/// A number in [0, 1) for the jitter of attempt `attempt` of `(i, inv)`,
/// fixed by `seed` (splitmix64).
fn jitter_unit(seed: u64, i: u32, inv: Option<u32>, attempt: u32) -> f64 {
    let mut z = seed
        ^ (u64::from(i) << 32 | u64::from(inv.map_or(u32::MAX, |k| k)))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(attempt).rotate_left(47);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
