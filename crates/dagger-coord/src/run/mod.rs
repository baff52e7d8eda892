//! The run loop. It owns the run's state; attempts run as tokio tasks and
//! report back over a channel; hooks run on their own task and answer with
//! commands applied between events. Scheduling is driven by those messages
//! only: per-node dependency counters and a ready queue, no polling.

use crate::cancel::RunCancel;
use crate::coordinator::Coordinator;
use crate::direct::{self, DirectGraph};
use crate::error::CoordError;
use crate::event::{EventHook, ExecutionEvent, ExecutorCommand, HookContext};
use crate::ownership::{Fenced, Heartbeat, Lost};
use crate::persist::{self, Recorded};
use crate::report::{DagExecutionReport, NodeReport, metrics_for};
use crate::state::{DefHandle, FanOut, NodeState, RunGraph, resolve_reference, truthy};
use crate::worker::{self, Attempt, AttemptResult, Failure, Msg, RunShared};
use dagger_core::store::ControlRequest;
use dagger_core::store::{Durability, NodeRunRecord, RunOwner, RunUpdate, SnapshotEntry};
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod commands;
mod control;
mod finish;
mod schedule;

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
        // Consecutive nodes usually share an action: look each run of them up once.
        let mut last: Option<(String, Arc<dyn NodeAction>)> = None;
        for (def, is_added) in handles {
            let action = match &last {
                Some((name, a)) if *name == def.action => Some(a.clone()),
                _ => {
                    let found = registry.get(&def.action);
                    last = found.clone().map(|a| (def.action.clone(), a));
                    found
                }
            };
            match action {
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
    /// Another process took the run over.
    Lost(String),
}

impl Stop {
    fn reason(&self) -> &str {
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

struct HookPipe {
    event_tx: Option<mpsc::Sender<ExecutionEvent>>,
    cmd_rx: mpsc::Receiver<HookAnswer>,
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
    /// This process's ownership of the run (its fencing token).
    owner: RunOwner,
    /// Cancelled when another process took the run over.
    lost: Arc<Lost>,
    /// Renews the lease until the run's end is recorded.
    heartbeat: Option<Heartbeat>,
}

impl RunLoop {
    pub(crate) async fn start(
        coord: &Coordinator,
        setup: Setup,
        owner: RunOwner,
        resumed: bool,
        cancel: RunCancel,
    ) -> Result<DagExecutionReport, CoordError> {
        let started = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut setup = setup;
        let lost = Arc::new(Lost::default());
        let heartbeat = Heartbeat::start(
            setup.stores.runs.clone(),
            setup.run_id.clone(),
            owner.token,
            coord.run_lease,
            lost.clone(),
        );
        setup.stores = Fenced::wrap(
            &setup.stores,
            setup.run_id.clone(),
            owner.token,
            lost.clone(),
        );
        let record = setup.graph.record;
        for i in 0..setup.graph.nodes.len() as u32 {
            if setup.graph.nodes[i as usize].status == NodeStatus::Completed {
                continue;
            }
            match setup.graph.wire(i) {
                Some(reason) => setup.graph.skip(i, reason),
                None if setup.graph.nodes[i as usize].remaining == 0 => setup.graph.make_ready(i),
                None => {}
            }
        }
        let run_token = CancellationToken::new();
        let limit = limit_of(&setup.config);
        let direct = DirectGraph::applies(&setup.config, limit, coord.hooks.len())
            .then(|| DirectGraph::new(&setup.graph.nodes, limit, run_token.clone()));
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
            node_queue: coord.node_queue.clone(),
            tx,
            running: AtomicUsize::new(0),
            direct,
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
            run_token,
            work_queue: VecDeque::new(),
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
            owner,
            lost,
            heartbeat: Some(heartbeat),
        };
        let span = tracing::info_span!("run", run_id = %lp.shared.run_id, dag = %lp.wf.name);
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
        lp.run(coord, cancel).instrument(span.clone()).await;
        lp.finish(started, resumed).await
    }

    async fn start_hooks(&mut self, coord: &Coordinator) {
        let mut commands = Vec::new();
        for h in &self.hook_list {
            match guarded(&**h, || "on_start".into(), h.on_start(&self.hook_ctx)).await {
                Ok(c) => commands.extend(c),
                Err(panicked) => self.g.emit(|| panicked),
            }
        }
        let (event_tx, mut event_rx) = mpsc::channel::<ExecutionEvent>(coord.event_capacity);
        let (cmd_tx, cmd_rx) = mpsc::channel::<HookAnswer>(coord.command_capacity);
        let hooks = self.hook_list.clone();
        let ctx = self.hook_ctx.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = event_rx.recv().await {
                let out = answer(&hooks, &ctx, &event).await;
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

    async fn run(&mut self, coord: &Coordinator, mut cancel: RunCancel) {
        let mut cancel_armed = true;
        let lost = self.lost.token.clone();
        let mut lost_seen = false;
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
                // A worker sends what it leaves to the loop before it gives
                // its slot back: read anything sent before the last slot went.
                if let Ok(msg) = self.rx.try_recv() {
                    self.on_msg(msg);
                    continue;
                }
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
            let attempts_running = self.running() > 0;
            let wake = {
                let cmd_rx = self.hooks.as_mut().map(|h| &mut h.cmd_rx);
                tokio::select! {
                    Some(msg) = self.rx.recv() => Wake::Msg(msg),
                    permit = reserve(event_tx), if has_outbox => Wake::Permit(permit),
                    Some(cmds) = recv_commands(cmd_rx) => Wake::Commands(cmds),
                    reason = cancel.fired(), if cancel_armed => Wake::Cancel(reason),
                    _ = control_tick.tick() => Wake::Controls,
                    () = sleep_until(run_deadline), if run_deadline.is_some() && self.stop.is_none() => Wake::RunTimeout,
                    () = sleep_until(human_deadline), if human_deadline.is_some() => Wake::HumanTimeout,
                    _ = tick(&mut snapshot_tick), if snapshot_tick.is_some() => Wake::Snapshot,
                    () = sleep_until(self.grace_deadline), if self.grace_deadline.is_some() && attempts_running => Wake::Grace,
                    () = lost.cancelled(), if !lost_seen => Wake::Lost,
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
                Wake::Commands(answer) => {
                    let record = self.hooks.as_mut().and_then(|h| {
                        h.outstanding = h.outstanding.saturating_sub(1);
                        h.awaiting.pop_front().flatten()
                    });
                    for panicked in answer.panics {
                        self.g.emit(|| panicked);
                    }
                    self.apply_commands(answer.commands).await;
                    if let Some(record) = record {
                        self.put_record(record).await;
                    }
                }
                Wake::Cancel(reason) => {
                    cancel_armed = false;
                    self.halt(Stop::Cancel(reason), coord);
                }
                Wake::Controls => self.apply_controls(false).await,
                Wake::RunTimeout => {
                    let secs = self.config.timeout_seconds.unwrap_or_default();
                    self.halt(Stop::Timeout(format!("run timed out after {secs}s")), coord);
                }
                Wake::HumanTimeout => self.human_timeout(),
                Wake::Snapshot => self.write_full_snapshot().await,
                Wake::Grace => self.abort_all(),
                Wake::Lost => {
                    lost_seen = true;
                    let current = self.lost.current.load(Ordering::Acquire);
                    self.halt(
                        Stop::Lost(format!(
                            "run taken over by another owner (fencing token {current}, ours {})",
                            self.owner.token
                        )),
                        coord,
                    );
                }
            }
            if matches!(
                self.stop,
                Some(Stop::Cancel(_))
                    | Some(Stop::Halt(_))
                    | Some(Stop::Timeout(_))
                    | Some(Stop::Budget(_))
                    | Some(Stop::Lost(_))
            ) && self.grace_deadline.is_none()
            {
                self.grace_deadline = Some(TokioInstant::now() + coord.cancel_grace);
            }
        }
    }

    /// Attempts holding a slot (see [`RunShared::running`]).
    fn running(&self) -> usize {
        self.shared.running.load(Ordering::Acquire)
    }

    fn is_done(&self) -> bool {
        if self.running() > 0 || self.handlers > 0 {
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
}

/// Parallel slots of a run with `config`.
fn limit_of(config: &DagConfig) -> usize {
    if config.enable_parallel_execution {
        config.max_parallel_nodes.max(1)
    } else {
        1
    }
}

/// What woke the run loop.
enum Wake {
    Msg(Msg),
    Permit(Option<mpsc::OwnedPermit<ExecutionEvent>>),
    Commands(HookAnswer),
    Cancel(String),
    Controls,
    RunTimeout,
    HumanTimeout,
    Snapshot,
    Grace,
    Lost,
}

async fn reserve(
    tx: Option<mpsc::Sender<ExecutionEvent>>,
) -> Option<mpsc::OwnedPermit<ExecutionEvent>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// What the hooks answered to one event.
pub(super) struct HookAnswer {
    /// Their commands, in hook order.
    pub(super) commands: Vec<ExecutorCommand>,
    /// `HookPanicked` events for the hooks that panicked.
    pub(super) panics: Vec<ExecutionEvent>,
}

/// Every hook's answer to `event`. A hook that panics answers nothing and
/// is reported by a `HookPanicked` event, unless `event` is itself one
/// (then the panic is only logged: a hook that panics on every event must
/// not feed itself events for ever).
pub(super) async fn answer(
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
pub(super) async fn guarded(
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

async fn recv_commands(rx: Option<&mut mpsc::Receiver<HookAnswer>>) -> Option<HookAnswer> {
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
