//! The run loop. It owns the run's state; attempts run as tokio tasks and
//! report back over a channel; hooks run on their own task and answer with
//! commands applied between events. Scheduling is driven by those messages
//! only: per-node dependency counters and a ready queue, no polling.

use crate::coordinator::Coordinator;
use crate::error::CoordError;
use crate::event::{EventHook, ExecutionEvent, ExecutorCommand, HookContext};
use crate::persist::{self, Recorded};
use crate::report::{DagExecutionReport, NodeReport, metrics_for};
use crate::state::{DefHandle, FanOut, NodeState, RunGraph, resolve_reference, truthy};
use crate::worker::{self, Attempt, AttemptResult, Failure, Msg, RunShared};
use dagger_core::store::ControlRequest;
use dagger_core::store::{Durability, NodeRunRecord, RunUpdate, SnapshotEntry};
use dagger_core::{Cache, ErrorClass, NodeStatus, RunId, RunStatus, Stores, now_millis};
use dagger_dag_flow::{
    ActionRegistry, DagConfig, DagExecutor, HumanTimeoutAction, NodeAction, NodeDef, NodeOutput,
    OnFailure, WorkflowDef,
};
use serde_json::{Map, Value, json};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Completed invocation outputs and attempt counts of a fan-out node, by index.
type RestoredFanOut = (HashMap<u32, Value>, HashMap<u32, u32>);

/// Everything a run needs before its loop starts.
pub(crate) struct Setup {
    pub(crate) wf: Arc<WorkflowDef>,
    added: Vec<Arc<NodeDef>>,
    graph: RunGraph,
    config: DagConfig,
    registry: ActionRegistry,
    failure_actions: HashMap<String, Arc<dyn NodeAction>>,
    stores: Stores,
    cache: Cache,
    app_data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    run_id: RunId,
    restored_invocations: HashMap<u32, RestoredFanOut>,
}

impl Setup {
    pub(crate) fn new(
        coord: &Coordinator,
        executor: &DagExecutor,
        cache: &Cache,
        wf: Arc<WorkflowDef>,
        added: Vec<NodeDef>,
        config: DagConfig,
        run_id: RunId,
    ) -> Result<Self, CoordError> {
        let registry = executor.registry().clone();
        let added: Vec<Arc<NodeDef>> = added.into_iter().map(Arc::new).collect();
        let mut unknown = Vec::new();
        let mut nodes = Vec::with_capacity(wf.nodes.len() + added.len());
        let mut failure_actions = HashMap::new();
        let handles = (0..wf.nodes.len())
            .map(|i| (DefHandle::Static(wf.clone(), i as u32), false))
            .chain(added.iter().map(|d| (DefHandle::Dynamic(d.clone()), true)));
        for (def, is_added) in handles {
            match registry.get(&def.action) {
                Some(action) => nodes.push(NodeState::new(
                    Arc::from(def.id.as_str()),
                    def.clone(),
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
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i as u32))
            .collect();
        let record = executor.stores().durability != Durability::Memory;
        let graph = RunGraph {
            nodes,
            index,
            ready: BinaryHeap::new(),
            paused_roots: HashMap::new(),
            parked: Vec::new(),
            events: (!coord.hooks.is_empty()).then(Vec::new),
            dirty: Vec::new(),
            record,
        };
        Ok(Self {
            wf,
            added,
            graph,
            config,
            registry,
            failure_actions,
            stores: executor.stores().clone(),
            cache: cache.clone(),
            app_data: executor.app_data(),
            run_id,
            restored_invocations: HashMap::new(),
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

enum Stop {
    Cancel(String),
    Halt(String),
    Timeout(String),
    Budget(String),
    Pause(String),
    Store(String),
}

impl Stop {
    fn reason(&self) -> &str {
        match self {
            Stop::Cancel(r)
            | Stop::Halt(r)
            | Stop::Timeout(r)
            | Stop::Budget(r)
            | Stop::Pause(r)
            | Stop::Store(r) => r,
        }
    }
}

struct HookPipe {
    event_tx: Option<mpsc::Sender<ExecutionEvent>>,
    cmd_rx: mpsc::Receiver<Vec<ExecutorCommand>>,
    outbox: VecDeque<(ExecutionEvent, Option<Box<NodeRunRecord>>)>,
    outstanding: usize,
    /// Records waiting for the hooks' answer to their event, in send order.
    awaiting: VecDeque<Option<Box<NodeRunRecord>>>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) struct RunLoop {
    g: RunGraph,
    wf: Arc<WorkflowDef>,
    added: Vec<Arc<NodeDef>>,
    config: DagConfig,
    registry: ActionRegistry,
    failure_actions: HashMap<String, Arc<dyn NodeAction>>,
    shared: Arc<RunShared>,
    rx: mpsc::UnboundedReceiver<Msg>,
    run_token: CancellationToken,
    work_queue: VecDeque<(u32, Option<u32>)>,
    running: usize,
    handlers: usize,
    retries_pending: usize,
    aborts: HashMap<(u32, Option<u32>), AbortHandle>,
    waiting: HashSet<u32>,
    waiting_recorded: bool,
    tokens: u64,
    iterations: u64,
    stop: Option<Stop>,
    grace_deadline: Option<TokioInstant>,
    control_seq: u64,
    hooks: Option<HookPipe>,
    hook_list: Vec<Arc<dyn EventHook>>,
    hook_ctx: HookContext,
    retry_seed: RandomState,
    restored_invocations: HashMap<u32, RestoredFanOut>,
    /// Deferred records with no hook event to wait for.
    #[allow(clippy::vec_box)] // records arrive boxed from attempts; unboxing would copy them
    late_records: Vec<Box<NodeRunRecord>>,
}

impl RunLoop {
    pub(crate) async fn start(
        coord: &Coordinator,
        setup: Setup,
        resumed: bool,
        cancel_rx: oneshot::Receiver<()>,
    ) -> Result<DagExecutionReport, CoordError> {
        let started = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let record = setup.graph.record;
        let shared = Arc::new(RunShared {
            dag_name: Arc::from(setup.wf.name.as_str()),
            run_id: setup.run_id.clone(),
            cache: setup.cache.clone(),
            stores: setup.stores.clone(),
            app_data: setup.app_data.clone(),
            record,
            defer_completion: record && !coord.hooks.is_empty(),
            incremental_cache: setup.config.enable_incremental_cache,
            cancel_grace: coord.cancel_grace,
            tracker: coord.tracker.clone(),
            tx,
        });
        let hook_ctx = HookContext {
            dag_name: setup.wf.name.clone(),
            run_id: setup.run_id.to_string(),
            cache: setup.cache.clone(),
        };
        let mut lp = RunLoop {
            g: setup.graph,
            wf: setup.wf,
            added: setup.added,
            config: setup.config,
            registry: setup.registry,
            failure_actions: setup.failure_actions,
            shared,
            rx,
            run_token: CancellationToken::new(),
            work_queue: VecDeque::new(),
            running: 0,
            handlers: 0,
            retries_pending: 0,
            aborts: HashMap::new(),
            waiting: HashSet::new(),
            waiting_recorded: false,
            tokens: 0,
            iterations: 0,
            stop: None,
            grace_deadline: None,
            control_seq: 0,
            hooks: None,
            hook_list: coord.hooks.clone(),
            hook_ctx,
            retry_seed: RandomState::new(),
            restored_invocations: setup.restored_invocations,
            late_records: Vec::new(),
        };
        let span = tracing::info_span!("run", run_id = %lp.shared.run_id, dag = %lp.wf.name);
        for i in 0..lp.g.nodes.len() as u32 {
            if lp.g.nodes[i as usize].status == NodeStatus::Completed {
                continue;
            }
            match lp.g.wire(i) {
                Some(reason) => lp.g.skip(i, reason),
                None if lp.g.nodes[i as usize].remaining == 0 => lp.g.make_ready(i),
                None => {}
            }
        }
        let node_count = lp.g.nodes.len();
        lp.g.emit(|| ExecutionEvent::RunStarted {
            nodes: node_count,
            resumed,
        });
        if !lp.hook_list.is_empty() {
            lp.start_hooks(coord).await;
        }
        if resumed {
            lp.apply_controls(true).await;
        }
        tracing::info!(parent: &span, resumed, nodes = node_count, "run started");
        lp.run(coord, cancel_rx).instrument(span.clone()).await;
        lp.finish(started, resumed).await
    }

    async fn start_hooks(&mut self, coord: &Coordinator) {
        let mut commands = Vec::new();
        for h in &self.hook_list {
            commands.extend(h.on_start(&self.hook_ctx).await);
        }
        let (event_tx, mut event_rx) = mpsc::channel::<ExecutionEvent>(coord.event_capacity);
        let (cmd_tx, cmd_rx) = mpsc::channel::<Vec<ExecutorCommand>>(coord.command_capacity);
        let hooks = self.hook_list.clone();
        let ctx = self.hook_ctx.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = event_rx.recv().await {
                let mut out = Vec::new();
                for h in &hooks {
                    out.extend(h.handle(&ctx, &event).await);
                }
                if cmd_tx.send(out).await.is_err() {
                    break;
                }
            }
        });
        self.hooks = Some(HookPipe {
            event_tx: Some(event_tx),
            cmd_rx,
            outbox: VecDeque::new(),
            outstanding: 0,
            awaiting: VecDeque::new(),
            task,
        });
        self.apply_commands(commands).await;
    }

    async fn run(&mut self, coord: &Coordinator, mut cancel_rx: oneshot::Receiver<()>) {
        let mut cancel_armed = true;
        let mut control_tick = tokio::time::interval(coord.control_poll);
        control_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let run_deadline = self
            .config
            .timeout_seconds
            .map(|s| TokioInstant::now() + Duration::from_secs_f64(s));
        let mut snapshot_tick = self
            .config
            .cache_snapshot_interval
            .filter(|_| self.g.record)
            .map(|s| {
                tokio::time::interval_at(
                    TokioInstant::now() + Duration::from_secs_f64(s),
                    Duration::from_secs_f64(s),
                )
            });
        loop {
            self.dispatch();
            self.flush_dirty().await;
            self.move_events();
            if self.is_done() {
                break;
            }
            self.note_waiting().await;
            let human_deadline = self.human_deadline();
            let has_outbox = self.hooks.as_ref().is_some_and(|h| !h.outbox.is_empty());
            let event_tx = self
                .hooks
                .as_ref()
                .filter(|_| has_outbox)
                .and_then(|h| h.event_tx.clone());
            let wake = {
                let cmd_rx = self.hooks.as_mut().map(|h| &mut h.cmd_rx);
                tokio::select! {
                    Some(msg) = self.rx.recv() => Wake::Msg(msg),
                    permit = reserve(event_tx), if has_outbox => Wake::Permit(permit),
                    Some(cmds) = recv_commands(cmd_rx) => Wake::Commands(cmds),
                    r = &mut cancel_rx, if cancel_armed => Wake::Cancel(r.is_ok()),
                    _ = control_tick.tick() => Wake::Controls,
                    () = sleep_until(run_deadline), if run_deadline.is_some() && self.stop.is_none() => Wake::RunTimeout,
                    () = sleep_until(human_deadline), if human_deadline.is_some() => Wake::HumanTimeout,
                    _ = tick(&mut snapshot_tick), if snapshot_tick.is_some() => Wake::Snapshot,
                    () = sleep_until(self.grace_deadline), if self.grace_deadline.is_some() && self.running > 0 => Wake::Grace,
                }
            };
            match wake {
                Wake::Msg(msg) => {
                    self.on_msg(msg);
                    while let Ok(msg) = self.rx.try_recv() {
                        self.on_msg(msg);
                    }
                }
                Wake::Permit(permit) => {
                    if let (Some(permit), Some(h)) = (permit, self.hooks.as_mut())
                        && let Some((ev, record)) = h.outbox.pop_front()
                    {
                        permit.send(ev);
                        h.outstanding += 1;
                        h.awaiting.push_back(record);
                    }
                }
                Wake::Commands(cmds) => {
                    let record = self.hooks.as_mut().and_then(|h| {
                        h.outstanding = h.outstanding.saturating_sub(1);
                        h.awaiting.pop_front().flatten()
                    });
                    self.apply_commands(cmds).await;
                    if let Some(record) = record {
                        self.put_record(record).await;
                    }
                }
                Wake::Cancel(sent) => {
                    cancel_armed = false;
                    if sent {
                        self.halt(Stop::Cancel("run cancelled".into()), coord);
                    }
                }
                Wake::Controls => self.apply_controls(false).await,
                Wake::RunTimeout => {
                    let secs = self.config.timeout_seconds.unwrap_or_default();
                    self.halt(Stop::Timeout(format!("run timed out after {secs}s")), coord);
                }
                Wake::HumanTimeout => self.human_timeout(),
                Wake::Snapshot => self.write_full_snapshot().await,
                Wake::Grace => self.abort_all(),
            }
            if matches!(
                self.stop,
                Some(Stop::Cancel(_))
                    | Some(Stop::Halt(_))
                    | Some(Stop::Timeout(_))
                    | Some(Stop::Budget(_))
            ) && self.grace_deadline.is_none()
            {
                self.grace_deadline = Some(TokioInstant::now() + coord.cancel_grace);
            }
        }
    }

    fn is_done(&self) -> bool {
        if self.running > 0 || self.handlers > 0 {
            return false;
        }
        if self.stop.is_some() {
            return true;
        }
        let hooks_idle = self
            .hooks
            .as_ref()
            .is_none_or(|h| h.outstanding == 0 && h.outbox.is_empty());
        hooks_idle
            && self.retries_pending == 0
            && self.g.ready.is_empty()
            && self.work_queue.is_empty()
            && self.waiting.is_empty()
    }

    // ----- scheduling -------------------------------------------------------------

    fn limit(&self) -> usize {
        if self.config.enable_parallel_execution {
            self.config.max_parallel_nodes.max(1)
        } else {
            1
        }
    }

    fn dispatch(&mut self) {
        // With hooks, a node released by an event starts only after the hooks
        // answered that event, so a hook can still pause, skip or rewire it.
        let events_pending = self.g.events.as_ref().is_some_and(|e| !e.is_empty());
        if events_pending
            || self
                .hooks
                .as_ref()
                .is_some_and(|h| h.outstanding > 0 || !h.outbox.is_empty())
        {
            return;
        }
        while self.stop.is_none() && self.running < self.limit() {
            if let Some((i, inv)) = self.work_queue.pop_front() {
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
            if let Some(reference) = self.g.nodes[i as usize].def.when.clone() {
                let ok =
                    resolve_reference(&self.shared.cache, &reference).is_some_and(|v| truthy(&v));
                if !ok {
                    self.g.skip(i, format!("condition `{reference}` is false"));
                    continue;
                }
            }
            if let Some(prompt) = self.g.nodes[i as usize]
                .approval_prompt()
                .map(str::to_string)
            {
                self.wait_for_human(i, prompt);
                continue;
            }
            if let Some(reference) = self.g.nodes[i as usize].def.map_over.clone() {
                self.start_fanout(i, &reference);
                continue;
            }
            self.start_attempt(i, None);
        }
    }

    fn wait_for_human(&mut self, i: u32, prompt: String) {
        let n = &mut self.g.nodes[i as usize];
        n.set_status(NodeStatus::WaitingForHuman);
        n.waiting_since = Some(Instant::now());
        n.error = None;
        let node = n.node_ref(None);
        self.waiting.insert(i);
        self.g.touch(i);
        self.g
            .emit(|| ExecutionEvent::NodeWaitingForHuman { node, prompt });
    }

    fn start_fanout(&mut self, i: u32, reference: &str) {
        let items = match resolve_reference(&self.shared.cache, reference) {
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
        n.first_start.get_or_insert_with(Instant::now);
        n.cancel = Some(self.run_token.child_token());
        n.fanout = Some(Box::new(fan));
        if pending.is_empty() {
            self.complete_fanout(i);
            return;
        }
        self.work_queue
            .extend(pending.into_iter().map(|k| (i, Some(k))));
    }

    fn start_attempt(&mut self, i: u32, inv: Option<u32>) {
        if let Some(max) = self.config.max_iterations
            && self.iterations >= max
        {
            self.work_queue.push_front((i, inv));
            let stop = Stop::Budget(format!(
                "max_iterations budget of {max} node executions exhausted"
            ));
            return self.stop_without_coord(stop);
        }
        self.iterations += 1;
        let run_token = &self.run_token;
        let n = &mut self.g.nodes[i as usize];
        let (attempt, token, item) = match inv {
            None => {
                n.attempts += 1;
                let token = run_token.child_token();
                n.cancel = Some(token.clone());
                (n.attempts, token, None)
            }
            Some(k) => {
                let Some(fan) = n.fanout.as_mut() else { return };
                let slot = &mut fan.attempts[k as usize];
                *slot += 1;
                fan.running += 1;
                let attempt = *slot;
                n.attempts = n.attempts.max(attempt);
                let token = n
                    .cancel
                    .get_or_insert_with(|| run_token.child_token())
                    .child_token();
                (attempt, token, Some(fan.items[k as usize].clone()))
            }
        };
        if n.status != NodeStatus::Running {
            n.set_status(NodeStatus::Running);
        }
        n.first_start.get_or_insert_with(Instant::now);
        n.started_at_ms.get_or_insert_with(now_millis);
        let mut node = n.node_ref(inv);
        node.attempt = attempt;
        let job = Attempt {
            node: i,
            invocation: inv,
            attempt,
            node_id: n.id.clone(),
            def: n.def.clone(),
            action: n.action.clone(),
            cancel: token,
            item,
            overrides: n.overrides.clone(),
        };
        self.g.emit(|| ExecutionEvent::NodeStarted { node });
        let handle = worker::spawn(&self.shared, job);
        self.aborts.insert((i, inv), handle);
        self.running += 1;
    }

    // ----- results ----------------------------------------------------------------

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Done {
                node,
                invocation,
                result,
                elapsed,
            } => {
                self.running = self.running.saturating_sub(1);
                self.aborts.remove(&(node, invocation));
                match invocation {
                    None => self.on_plain_done(node, result, elapsed),
                    Some(k) => self.on_invocation_done(node, k, result),
                }
            }
            Msg::RetryDue { node, invocation } => {
                self.retries_pending = self.retries_pending.saturating_sub(1);
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
                    self.work_queue.push_back((node, invocation));
                }
            }
            Msg::FailureHandled { node, error } => {
                self.handlers = self.handlers.saturating_sub(1);
                self.finalize_failed(node, error);
            }
            Msg::StoreFailed(e) => {
                self.running = self.running.saturating_sub(1);
                let reason = format!("storage error: {e}");
                self.stop_without_coord(Stop::Store(reason));
            }
        }
    }

    fn on_plain_done(&mut self, i: u32, result: AttemptResult, elapsed: Duration) {
        match result {
            AttemptResult::Succeeded {
                output,
                cache_hit,
                deferred,
            } => {
                let n = &mut self.g.nodes[i as usize];
                if n.status != NodeStatus::Running {
                    if let Some(record) = deferred {
                        self.late_records.push(record);
                    }
                    return;
                }
                n.set_status(NodeStatus::Completed);
                n.cache_hit = cache_hit;
                n.error = None;
                n.duration_ms =
                    Some(n.first_start.map_or(elapsed, |s| s.elapsed()).as_millis() as u64);
                n.cancel = None;
                self.tokens += output.tokens();
                let node = n.node_ref(None);
                let selected: Option<HashSet<String>> =
                    output.branches().map(|b| b.into_iter().collect());
                let event = ExecutionEvent::NodeCompleted {
                    node,
                    outcome: output,
                    cache_hit,
                };
                match (self.g.events.as_mut(), deferred) {
                    (Some(events), deferred) => events.push((event, deferred)),
                    (None, Some(record)) => self.late_records.push(record),
                    (None, None) => {}
                }
                self.g.release_dependents(i, selected.as_ref());
                self.check_tokens();
            }
            AttemptResult::Failed(f) => self.on_failure(i, None, f),
            AttemptResult::Cancelled => self.on_cancelled(i),
        }
    }

    fn on_cancelled(&mut self, i: u32) {
        let n = &mut self.g.nodes[i as usize];
        if n.status.is_terminal() {
            return;
        }
        if n.cancel_reason.is_none() && matches!(self.stop, Some(Stop::Pause(_))) {
            // Interrupted by a pause, not cancelled: it runs again on resume.
            n.set_status(NodeStatus::Pending);
            return;
        }
        let reason = n
            .cancel_reason
            .take()
            .or_else(|| self.stop.as_ref().map(|s| s.reason().to_string()))
            .unwrap_or_else(|| "cancelled".into());
        self.g.cancel_unstarted(i, reason);
    }

    fn on_invocation_done(&mut self, i: u32, k: u32, result: AttemptResult) {
        let Some(fan) = self.g.nodes[i as usize].fanout.as_mut() else {
            return;
        };
        fan.running = fan.running.saturating_sub(1);
        match result {
            AttemptResult::Succeeded {
                output, deferred, ..
            } => {
                self.late_records.extend(deferred);
                self.tokens += output.tokens();
                if fan.results[k as usize].is_none() {
                    fan.results[k as usize] = Some(output.outputs.clone());
                    fan.remaining -= 1;
                }
                if fan.remaining == 0 && fan.failed.is_none() {
                    self.complete_fanout(i);
                }
                self.check_tokens();
            }
            AttemptResult::Failed(f) => self.on_failure(i, Some(k), f),
            AttemptResult::Cancelled => {
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

    fn complete_fanout(&mut self, i: u32) {
        let n = &mut self.g.nodes[i as usize];
        let Some(fan) = n.fanout.take() else { return };
        let results: Vec<Value> = fan
            .results
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        let output = Arc::new(NodeOutput::success(json!({ "results": results })));
        n.set_status(NodeStatus::Completed);
        n.duration_ms = n.first_start.map(|s| s.elapsed().as_millis() as u64);
        n.cancel = None;
        self.shared.cache.insert_object(&n.id, &output.outputs);
        let node = n.node_ref(None);
        self.g.touch(i);
        self.g.emit(|| ExecutionEvent::NodeCompleted {
            node,
            outcome: output,
            cache_hit: false,
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
        if n.cancel_reason.is_some() {
            return self.on_cancelled(i);
        }
        let policy = self.config.retry_policy(n.def.try_count);
        if self.stop.is_none() && policy.should_retry(attempt, f.class) {
            let unit =
                (self.retry_seed.hash_one((i, inv, attempt)) >> 11) as f64 / (1u64 << 53) as f64;
            let delay = policy.jittered_delay(attempt, unit);
            if inv.is_none() {
                n.set_status(NodeStatus::Retrying);
            }
            let mut node = n.node_ref(inv);
            node.attempt = attempt;
            let error = f.message.clone();
            let delay_ms = delay.as_millis() as u64;
            self.g.emit(|| ExecutionEvent::NodeRetrying {
                node,
                error,
                delay_ms,
            });
            tracing::debug!(node = %self.g.id_of(i), attempt, delay_ms, "retrying");
            if delay.is_zero() {
                self.work_queue.push_back((i, inv));
            } else {
                self.retries_pending += 1;
                let tx = self.shared.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Msg::RetryDue {
                        node: i,
                        invocation: inv,
                    });
                });
            }
            return;
        }
        let message = if f.class == ErrorClass::Timeout || attempt <= 1 {
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
                    if let Some(t) = &n.cancel {
                        t.cancel();
                    }
                    self.work_queue.retain(|(j, _)| *j != i);
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
            Some(h) => {
                self.handlers += 1;
                worker::spawn_failure_handler(&self.shared, i, n.id.clone(), h, error);
            }
            None => self.finalize_failed(i, error),
        }
    }

    fn finalize_failed(&mut self, i: u32, error: String) {
        let n = &mut self.g.nodes[i as usize];
        n.set_status(NodeStatus::Failed);
        n.error = Some(error.clone());
        n.waiting_since = None;
        n.duration_ms = n.first_start.map(|s| s.elapsed().as_millis() as u64);
        n.cancel = None;
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
            OnFailure::Halt => {
                self.stop_without_coord(Stop::Halt(format!("node `{id}` failed: {error}")))
            }
            OnFailure::Pause => {
                self.stop_without_coord(Stop::Pause(format!("node `{id}` failed: {error}")))
            }
        }
    }

    fn check_tokens(&mut self) {
        if let Some(max) = self.config.max_tokens
            && self.tokens > max
        {
            let used = self.tokens;
            self.stop_without_coord(Stop::Budget(format!(
                "max_tokens budget of {max} exceeded ({used} tokens used)"
            )));
        }
    }

    // ----- stopping ---------------------------------------------------------------

    fn halt(&mut self, stop: Stop, coord: &Coordinator) {
        self.stop_without_coord(stop);
        if self.grace_deadline.is_none() {
            self.grace_deadline = Some(TokioInstant::now() + coord.cancel_grace);
        }
    }

    /// Stops scheduling; every stop but Pause also cancels running attempts.
    fn stop_without_coord(&mut self, stop: Stop) {
        if self.stop.is_some() {
            return;
        }
        tracing::info!(reason = stop.reason(), "run stopping");
        if !matches!(stop, Stop::Pause(_)) {
            self.run_token.cancel();
        }
        self.stop = Some(stop);
    }

    fn abort_all(&mut self) {
        for ((i, _), handle) in self.aborts.drain() {
            handle.abort();
            let n = &mut self.g.nodes[i as usize];
            if !n.status.is_terminal() {
                n.set_status(NodeStatus::Cancelled);
                n.error = Some(format!(
                    "{} (the action did not stop within the grace period and was dropped)",
                    self.stop.as_ref().map_or("cancelled", |s| s.reason())
                ));
                self.g.touch(i);
            }
        }
        self.running = 0;
    }

    // ----- humans and external control -------------------------------------------

    fn human_deadline(&self) -> Option<TokioInstant> {
        let minutes = self.config.human_wait_minutes?;
        let wait = Duration::from_secs_f64(minutes * 60.0);
        self.waiting
            .iter()
            .filter_map(|i| self.g.nodes[*i as usize].waiting_since)
            .min()
            .map(|since| TokioInstant::from_std(since + wait))
    }

    fn human_timeout(&mut self) {
        let Some(minutes) = self.config.human_wait_minutes else {
            return;
        };
        let wait = Duration::from_secs_f64(minutes * 60.0);
        let expired: Vec<u32> = self
            .waiting
            .iter()
            .copied()
            .filter(|i| {
                self.g.nodes[*i as usize]
                    .waiting_since
                    .is_some_and(|s| s.elapsed() >= wait)
            })
            .collect();
        for i in expired {
            match self.config.human_timeout_action {
                HumanTimeoutAction::Autopilot => self.approve(i, None),
                HumanTimeoutAction::Pause => {
                    let id = self.g.id_of(i).to_string();
                    self.stop_without_coord(Stop::Pause(format!(
                        "no human answered node `{id}` within {minutes} minutes"
                    )));
                    self.g.nodes[i as usize].waiting_since = None;
                    self.waiting.remove(&i);
                }
            }
        }
    }

    fn approve(&mut self, i: u32, input: Option<Value>) {
        let n = &mut self.g.nodes[i as usize];
        n.approved = true;
        if let Some(input) = input {
            n.overrides
                .get_or_insert_with(Map::new)
                .insert("human_input".into(), input);
        }
        if n.status == NodeStatus::WaitingForHuman {
            n.waiting_since = None;
            self.waiting.remove(&i);
            self.g.make_ready(i);
        }
    }

    async fn note_waiting(&mut self) {
        let only_waiting = !self.waiting.is_empty()
            && self.running == 0
            && self.g.ready.is_empty()
            && self.work_queue.is_empty()
            && self.retries_pending == 0;
        if only_waiting != self.waiting_recorded {
            self.waiting_recorded = only_waiting;
            let status = if only_waiting {
                RunStatus::WaitingForHuman
            } else {
                RunStatus::Running
            };
            let update = RunUpdate {
                status: Some(status),
                ..Default::default()
            };
            if let Err(e) = self
                .shared
                .stores
                .runs
                .update_run(&self.shared.run_id, update)
                .await
            {
                self.stop_without_coord(Stop::Store(format!("storage error: {e}")));
            }
        }
    }

    async fn apply_controls(&mut self, resuming: bool) {
        let requests = match self
            .shared
            .stores
            .runs
            .controls_after(&self.shared.run_id, self.control_seq)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read control requests");
                return;
            }
        };
        for (seq, request) in requests {
            self.control_seq = self.control_seq.max(seq);
            match request {
                // A cancel that stopped an earlier execution does not stop its resume.
                ControlRequest::Cancel { .. } if resuming => {}
                ControlRequest::Cancel { reason } => {
                    self.stop_without_coord(Stop::Cancel(format!("run cancelled: {reason}")))
                }
                ControlRequest::Approve { node_id, input } => {
                    match self.g.index.get(node_id.as_str()).copied() {
                        Some(i) if !self.g.nodes[i as usize].status.is_terminal() => {
                            self.approve(i, input)
                        }
                        _ => {
                            tracing::warn!(node = %node_id, "approval for a node that is not waiting; ignored")
                        }
                    }
                }
                ControlRequest::Reject { node_id, reason } => {
                    match self.g.index.get(node_id.as_str()).copied() {
                        Some(i)
                            if matches!(
                                self.g.nodes[i as usize].status,
                                NodeStatus::WaitingForHuman
                                    | NodeStatus::Pending
                                    | NodeStatus::Ready
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
    }

    // ----- hooks and commands -----------------------------------------------------

    fn move_events(&mut self) {
        if let (Some(events), Some(h)) = (self.g.events.as_mut(), self.hooks.as_mut()) {
            h.outbox.extend(events.drain(..));
        }
    }

    async fn apply_commands(&mut self, commands: Vec<ExecutorCommand>) {
        for cmd in commands {
            let summary = cmd.summary();
            if let Err(reason) = self.apply_command(cmd).await {
                tracing::warn!(command = %summary, %reason, "command rejected");
                self.g.emit(|| ExecutionEvent::CommandRejected {
                    command: summary,
                    reason,
                });
            }
        }
    }

    async fn apply_command(&mut self, cmd: ExecutorCommand) -> Result<(), String> {
        match cmd {
            ExecutorCommand::AddNode { dag_name, spec } => {
                self.add_nodes(&dag_name, vec![*spec.def]).await
            }
            ExecutorCommand::AddNodes { dag_name, specs } => {
                self.add_nodes(&dag_name, specs.into_iter().map(|s| *s.def).collect())
                    .await
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
                n.overrides.get_or_insert_with(Map::new).extend(map);
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
                        n.cancel_reason = Some(reason.clone());
                        if let Some(t) = &n.cancel {
                            t.cancel();
                        }
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
                n.human_prompt = Some(prompt);
                n.approved = false;
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
    async fn add_nodes(&mut self, dag_name: &str, defs: Vec<NodeDef>) -> Result<(), String> {
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
            self.stop_without_coord(Stop::Budget(reason.clone()));
            return Err(reason);
        }
        let order = check_new_nodes(&self.g.index, &self.registry, &defs)?;
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
            let definition = persist::snapshot_json(&self.wf, &self.added);
            let update = RunUpdate {
                definition: Some(definition),
                ..Default::default()
            };
            if let Err(e) = self
                .shared
                .stores
                .runs
                .update_run(&self.shared.run_id, update)
                .await
            {
                self.stop_without_coord(Stop::Store(format!("storage error: {e}")));
            }
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

    // ----- persistence ------------------------------------------------------------

    async fn flush_dirty(&mut self) {
        for record in std::mem::take(&mut self.late_records) {
            self.put_record(record).await;
        }
        if self.g.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.g.dirty);
        for i in dirty {
            let rec = self.loop_record(i).await;
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    self.stop_without_coord(Stop::Store(format!("storage error: {e}")));
                    return;
                }
            };
            if let Err(e) = self.shared.stores.runs.put_node_run(rec).await {
                self.stop_without_coord(Stop::Store(format!("storage error: {e}")));
                return;
            }
        }
    }

    async fn loop_record(&self, i: u32) -> Result<NodeRunRecord, dagger_core::StoreError> {
        let n = &self.g.nodes[i as usize];
        let mut rec = worker::record(
            &self.shared,
            &n.id,
            String::new(),
            &n.def.action,
            n.attempts,
            n.status,
        );
        rec.error = n.error.clone();
        rec.started_at = n.started_at_ms;
        if n.status.is_terminal() {
            rec.finished_at = Some(now_millis());
        }
        let mut meta = Map::new();
        if n.status == NodeStatus::WaitingForHuman
            && let Some(p) = n.human_prompt.as_deref().or(n.def.approval.as_deref())
        {
            meta.insert("prompt".into(), Value::String(p.to_string()));
        }
        if n.status == NodeStatus::Completed {
            // Fan-out nodes complete in the loop: store their aggregated output.
            if let Some(v) = self.shared.cache.namespace(&n.id) {
                let bytes = serde_json::to_vec(&Value::Object(v)).unwrap_or_default();
                rec.output_artifact_id =
                    Some(self.shared.stores.artifacts.put_artifact(bytes).await?);
            }
        }
        rec.metadata = Value::Object(meta);
        Ok(rec)
    }

    async fn put_record(&mut self, record: Box<NodeRunRecord>) {
        if let Err(e) = self.shared.stores.runs.put_node_run(*record).await {
            self.stop_without_coord(Stop::Store(format!("storage error: {e}")));
        }
    }

    async fn write_full_snapshot(&mut self) {
        let entry = SnapshotEntry::Full {
            data: self.shared.cache.to_json(),
        };
        if let Err(e) = self
            .shared
            .stores
            .snapshots
            .append_snapshot(self.shared.run_id.as_str(), entry)
            .await
        {
            self.stop_without_coord(Stop::Store(format!("storage error: {e}")));
        }
    }

    async fn finish(
        mut self,
        started: Instant,
        resumed: bool,
    ) -> Result<DagExecutionReport, CoordError> {
        let (status, reason) = self.final_status();
        if !matches!(status, RunStatus::Paused | RunStatus::WaitingForHuman) {
            let leftover: Vec<u32> = (0..self.g.nodes.len() as u32)
                .filter(|i| !self.g.nodes[*i as usize].status.is_terminal())
                .collect();
            let why = reason.clone().unwrap_or_else(|| "run ended".into());
            for i in leftover {
                self.g.cancel_unstarted(i, why.clone());
            }
        }
        self.flush_dirty().await;
        self.g.emit(|| ExecutionEvent::RunCompleted {
            status,
            reason: reason.clone(),
        });
        self.move_events();
        if let Some(mut h) = self.hooks.take() {
            // Hooks see every event; commands answered now are not applied.
            if let Some(tx) = h.event_tx.take() {
                let mut late: Vec<Box<NodeRunRecord>> = h.awaiting.drain(..).flatten().collect();
                for (ev, record) in h.outbox.drain(..) {
                    late.extend(record);
                    let _ = tx.send(ev).await;
                }
                // The nodes completed; record them even though no hook answer will be applied.
                for record in late {
                    self.put_record(record).await;
                }
            }
            while h.cmd_rx.recv().await.is_some() {}
            let _ = h.task.await;
            let success = status == RunStatus::Completed;
            for hook in &self.hook_list {
                hook.on_complete(&self.hook_ctx, success).await;
            }
        }
        if self.g.record && !matches!(self.stop, Some(Stop::Store(_))) {
            self.write_full_snapshot().await;
        }
        let stores = &self.shared.stores;
        let run_id = &self.shared.run_id;
        let finished = (status.is_terminal()).then(now_millis);
        let update = RunUpdate {
            status: Some(status),
            reason: Some(reason.clone()),
            finished_at: Some(finished),
            definition: None,
        };
        let recorded = stores
            .runs
            .update_run(run_id, update)
            .await
            .and(stores.runs.flush().await);
        if let Err(e) = recorded
            && !matches!(self.stop, Some(Stop::Store(_)))
        {
            return Err(CoordError::Store(e));
        }
        let nodes: Vec<NodeReport> = self
            .g
            .nodes
            .iter()
            .map(|n| NodeReport {
                id: n.id.to_string(),
                action: n.def.action.clone(),
                status: n.status,
                attempts: n.attempts,
                duration_ms: n.duration_ms,
                error: n.error.clone(),
                cache_hit: n.cache_hit,
                added_at_runtime: n.added,
            })
            .collect();
        let metrics = metrics_for(&nodes, self.tokens, self.iterations);
        Ok(DagExecutionReport {
            run_id: run_id.to_string(),
            dag_name: self.wf.name.clone(),
            status,
            reason,
            nodes,
            duration_ms: started.elapsed().as_millis() as u64,
            metrics,
            resumed,
        })
    }

    fn final_status(&self) -> (RunStatus, Option<String>) {
        match &self.stop {
            Some(Stop::Cancel(r)) => return (RunStatus::Cancelled, Some(r.clone())),
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

/// Checks a batch of nodes to add; returns an insertion order in which every
/// node comes after the batch nodes it depends on.
fn check_new_nodes(
    index: &HashMap<Arc<str>, u32>,
    registry: &ActionRegistry,
    defs: &[NodeDef],
) -> Result<Vec<usize>, String> {
    let mut batch: HashMap<&str, usize> = HashMap::new();
    for (k, d) in defs.iter().enumerate() {
        if d.id.trim().is_empty() {
            return Err("a node to add has an empty id".into());
        }
        if index.contains_key(d.id.as_str()) || batch.insert(d.id.as_str(), k).is_some() {
            return Err(format!("node `{}` already exists", d.id));
        }
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
    let mut indegree = vec![0usize; defs.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); defs.len()];
    for (k, d) in defs.iter().enumerate() {
        for dep in &d.dependencies {
            if dep == &d.id {
                return Err(format!("node `{}` depends on itself", d.id));
            }
            if let Some(&j) = batch.get(dep.as_str()) {
                indegree[k] += 1;
                children[j].push(k);
            } else if !index.contains_key(dep.as_str()) {
                return Err(format!("node `{}` depends on unknown node `{dep}`", d.id));
            }
        }
        for input in &d.inputs {
            if let Some(r) = &input.reference {
                match dagger_core::InputSpec::split_reference(r) {
                    Some(("inputs", _)) => {}
                    Some((ns, _)) if index.contains_key(ns) || batch.contains_key(ns) => {}
                    _ => {
                        return Err(format!(
                            "node `{}`: input `{}` references unknown `{r}`",
                            d.id, input.name
                        ));
                    }
                }
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
    if order.len() < defs.len() {
        let cyclic: Vec<&str> = (0..defs.len())
            .filter(|k| indegree[*k] > 0)
            .map(|k| defs[k].id.as_str())
            .collect();
        return Err(format!(
            "adding these nodes would create a cycle among: {}",
            cyclic.join(", ")
        ));
    }
    Ok(order)
}

/// What woke the run loop.
enum Wake {
    Msg(Msg),
    Permit(Option<mpsc::OwnedPermit<ExecutionEvent>>),
    Commands(Vec<ExecutorCommand>),
    Cancel(bool),
    Controls,
    RunTimeout,
    HumanTimeout,
    Snapshot,
    Grace,
}

async fn reserve(
    tx: Option<mpsc::Sender<ExecutionEvent>>,
) -> Option<mpsc::OwnedPermit<ExecutionEvent>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

async fn recv_commands(
    rx: Option<&mut mpsc::Receiver<Vec<ExecutorCommand>>>,
) -> Option<Vec<ExecutorCommand>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
