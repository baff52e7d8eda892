//! The run's driver: a thin async loop around the run [`Machine`]. It
//! turns what happens outside (attempts ending, timers, hook answers,
//! control requests, a lost lease) into events, and carries out the
//! effects that need the store or the hooks (records, the definition,
//! events). Its parts have one job each: `setup` builds the node table,
//! `hooks` is the pipe to the hooks, `controls` reads requests from the
//! store, `finish` records the end and builds the report; spawning attempts
//! and timers is `exec`'s.

use crate::cancel::RunCancel;
use crate::coordinator::Coordinator;
use crate::error::CoordError;
use crate::event::{EventHook, ExecutionEvent, HookContext};
use crate::exec::{self, Msg, RunShared};
use crate::machine::msg::{Control, Effect, Event};
use crate::machine::{Machine, Params};
use crate::ownership::{Fenced, Heartbeat, Lost};
use crate::report::DagExecutionReport;
use crate::worker::{self, Env};
use dagger_core::store::{NodeRunRecord, RunOwner, RunUpdate, SnapshotEntry};
use dagger_core::{NodeStatus, RunStatus, now_millis};
use serde_json::{Map, Value};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;
use tracing::Instrument;

mod controls;
mod finish;
mod hooks;
mod setup;

pub(crate) use setup::Setup;

/// The driver of one run.
pub(crate) struct RunLoop {
    shared: Arc<RunShared>,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// Effects taken from the machine (reused).
    fx: Vec<Effect>,
    hooks: Option<hooks::HookPipe>,
    hook_list: Vec<Arc<dyn EventHook>>,
    hook_ctx: HookContext,
    control_seq: u64,
    /// The last signal read.
    signal_seq: u64,
    /// A node of the run waits for signals (`wait_for`): read them.
    signals_wanted: bool,
    /// The run's record says it waits for a human.
    waiting_recorded: bool,
    record: bool,
    /// Snapshots of the whole cache every so many seconds.
    snapshot_every: Option<Duration>,
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
        let hooked = !coord.hooks.is_empty();
        let span = tracing::info_span!("run", run_id = %setup.run_id, dag = %setup.wf.name);
        let env = Env {
            span: span.clone(),
            dag_name: Arc::from(setup.wf.name.as_str()),
            run_id: setup.run_id.clone(),
            cache: setup.cache.clone(),
            stores: setup.stores.clone(),
            app_data: setup.app_data.clone(),
            record,
            defer_completion: record && hooked,
            incremental_cache: setup.config.enable_incremental_cache,
            cancel_grace: coord.cancel_grace,
            tracker: coord.tracker.clone(),
            node_queue: coord.node_queue.clone(),
            wf: setup.wf.clone(),
            actions: std::mem::take(&mut setup.actions),
        };
        let hook_ctx = HookContext {
            dag_name: setup.wf.name.clone(),
            run_id: setup.run_id.to_string(),
            cache: setup.cache.clone(),
        };
        let snapshot_every = Some(setup.config.cache_snapshot_interval)
            .filter(|&s| s > 0 && record)
            .map(Duration::from_secs);
        let mut machine = Machine::new(Params {
            graph: setup.graph,
            wf: setup.wf,
            added: setup.added,
            config: setup.config,
            registry: setup.registry,
            failure_actions: setup.failure_actions,
            restored_invocations: setup.restored_invocations,
            grace_ms: coord.cancel_grace.as_millis() as u64,
            seed: RandomState::new().hash_one(0u8),
            consumed_signals: setup.consumed_signals,
        });
        let has_signal_waits = machine.wf.nodes.iter().any(|n| n.wait_for.is_some())
            || machine.added.iter().any(|n| n.wait_for.is_some());
        machine.start(now_millis(), resumed);
        let shared = Arc::new(RunShared::new(env, machine, tx, !hooked));
        let mut lp = RunLoop {
            shared,
            rx,
            fx: Vec::new(),
            hooks: None,
            hook_list: coord.hooks.clone(),
            hook_ctx,
            control_seq: 0,
            signal_seq: 0,
            signals_wanted: has_signal_waits,
            waiting_recorded: false,
            record,
            snapshot_every,
            owner,
            lost,
            heartbeat: Some(heartbeat),
        };
        if hooked {
            lp.start_hooks(coord).await;
        }
        if resumed {
            lp.read_controls(true).await;
        }
        lp.read_signals().await;
        let nodes = lp.shared.machine.lock().g.nodes.len();
        tracing::info!(parent: &span, resumed, nodes, "run started");
        metrics::counter!(dagger_core::metrics::RUNS_STARTED).increment(1);
        lp.run(coord, cancel).instrument(span.clone()).await;
        lp.finish(started, resumed).await
    }

    async fn start_hooks(&mut self, coord: &Coordinator) {
        let mut commands = Vec::new();
        let mut panics = Vec::new();
        for h in &self.hook_list {
            match hooks::guarded(&**h, || "on_start".into(), h.on_start(&self.hook_ctx)).await {
                Ok(c) => commands.extend(c),
                Err(panicked) => panics.push(panicked),
            }
        }
        self.hooks = Some(hooks::HookPipe::start(
            self.hook_list.clone(),
            self.hook_ctx.clone(),
            coord.event_capacity,
            coord.command_capacity,
        ));
        {
            // `on_start` panics come after `RunStarted`, then the commands apply.
            let mut m = self.shared.machine.lock();
            for p in panics {
                m.g.emit(|| p);
            }
        }
        self.step(Event::HookCommands(commands));
        self.pump().await;
    }

    async fn run(&mut self, coord: &Coordinator, mut cancel: RunCancel) {
        let mut cancel_armed = true;
        let lost = self.lost.token.clone();
        let mut lost_seen = false;
        let mut control_tick = tokio::time::interval(coord.control_poll);
        control_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut snapshot_tick = self
            .snapshot_every
            .map(|s| tokio::time::interval_at(TokioInstant::now() + s, s));
        {
            let mut m = self.shared.machine.lock();
            m.advance(now_millis(), &self.shared.env.cache);
            self.shared.sync_gauges(Some(&m));
        }
        loop {
            self.pump().await;
            if self.shared.machine.lock().is_done() {
                // Effects a worker left are sent before its step lets go of
                // the machine: carry out any that arrived before ending.
                if let Ok(msg) = self.rx.try_recv() {
                    self.on_msg(msg).await;
                    continue;
                }
                break;
            }
            self.note_waiting().await;
            let event_tx = self.hooks.as_ref().and_then(hooks::HookPipe::sender);
            let has_outbox = event_tx.is_some();
            let wake = {
                let cmd_rx = self.hooks.as_mut().map(|h| &mut h.cmd_rx);
                tokio::select! {
                    Some(msg) = self.rx.recv() => Wake::Msg(msg),
                    permit = hooks::reserve(event_tx), if has_outbox => Wake::Permit(permit),
                    Some(answer) = hooks::recv_answer(cmd_rx) => Wake::Answer(answer),
                    reason = cancel.fired(), if cancel_armed => Wake::Cancel(reason),
                    _ = control_tick.tick() => Wake::Controls,
                    _ = tick(&mut snapshot_tick), if snapshot_tick.is_some() => Wake::Snapshot,
                    () = lost.cancelled(), if !lost_seen => Wake::Lost,
                }
            };
            match wake {
                Wake::Msg(msg) => {
                    self.on_msg(msg).await;
                    while let Ok(msg) = self.rx.try_recv() {
                        self.on_msg(msg).await;
                    }
                }
                Wake::Permit(permit) => {
                    if let (Some(permit), Some(h)) = (permit, self.hooks.as_mut()) {
                        h.send(permit);
                    }
                }
                Wake::Answer(answer) => {
                    let record = self.hooks.as_mut().and_then(hooks::HookPipe::answered);
                    self.step(Event::HookAnswered {
                        commands: answer.commands,
                        panics: answer.panics,
                    });
                    // Growth the answer caused is recorded before the completion.
                    self.pump().await;
                    if let Some(record) = record {
                        self.put_record(record).await;
                    }
                }
                Wake::Cancel(reason) => {
                    cancel_armed = false;
                    self.step(Event::Control(Control::Cancel(reason)));
                }
                Wake::Controls => {
                    self.read_controls(false).await;
                    self.read_signals().await;
                }
                Wake::Snapshot => self.write_full_snapshot().await,
                Wake::Lost => {
                    lost_seen = true;
                    let current = self.lost.current.load(Ordering::Acquire);
                    let reason = format!(
                        "run taken over by another owner (fencing token {current}, ours {})",
                        self.owner.token
                    );
                    self.step(Event::Control(Control::Lost(reason)));
                }
            }
        }
    }

    /// Steps the machine with `event` now.
    fn step(&mut self, event: Event) {
        let mut m = self.shared.machine.lock();
        m.step(event, now_millis(), &self.shared.env.cache);
        self.shared.sync_gauges(Some(&m));
    }

    async fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Event(event) => self.step(event),
            Msg::Effects(effects) => {
                for effect in effects {
                    self.apply(effect).await;
                }
            }
            Msg::Wake => {}
        }
    }

    /// Carries out the machine's effects until it has none left.
    async fn pump(&mut self) {
        loop {
            let mut fx = std::mem::take(&mut self.fx);
            self.shared.machine.lock().drain(&mut fx);
            if fx.is_empty() {
                self.fx = fx;
                return;
            }
            for effect in fx.drain(..) {
                if let Some(effect) = exec::execute(&self.shared, effect) {
                    self.apply(effect).await;
                }
            }
            self.fx = fx;
        }
    }

    /// Carries out an effect that needs the store or the hooks.
    async fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Emit(event, record) => match self.hooks.as_mut() {
                Some(h) => h.outbox.push_back((event, record)),
                None => {
                    if let Some(record) = record {
                        self.put_record(record).await;
                    }
                }
            },
            Effect::Record(i) => {
                let rec = self.loop_record(i).await;
                let result = match rec {
                    Ok(rec) => self.shared.env.stores.runs.put_node_run(rec).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    self.store_failed(e);
                }
            }
            Effect::RecordLate(record) => self.put_record(record).await,
            Effect::Definition => {
                let definition = {
                    let m = self.shared.machine.lock();
                    crate::persist::snapshot_json(&m.wf, &m.added)
                };
                self.update_run_or_stop(RunUpdate {
                    definition: Some(definition),
                    ..Default::default()
                })
                .await;
            }
            other => {
                exec::execute(&self.shared, other);
            }
        }
    }

    fn store_failed(&mut self, e: dagger_core::StoreError) {
        self.step(Event::StoreFailed(format!("storage error: {e}")));
    }

    /// Node `i`'s record as the machine has it now.
    async fn loop_record(&self, i: u32) -> Result<NodeRunRecord, dagger_core::StoreError> {
        let env = &self.shared.env;
        let (mut rec, output_of) = {
            let m = self.shared.machine.lock();
            let n = &m.g.nodes[i as usize];
            let mut rec = worker::record(
                env,
                &n.id,
                String::new(),
                &n.def.action,
                n.attempts,
                n.status,
            );
            rec.error = n.error.clone();
            rec.started_at = n.started();
            if n.status.is_terminal() {
                rec.finished_at = Some(now_millis());
            }
            let mut meta = Map::new();
            if n.status == NodeStatus::WaitingForHuman
                && let Some(p) = n
                    .rare
                    .as_ref()
                    .and_then(|r| r.human_prompt.as_deref())
                    .or(n.def.approval.as_deref())
            {
                meta.insert("prompt".into(), Value::String(p.to_string()));
            }
            if let Some(r) = &n.rare {
                // A waiting node's wake-up time is what a resume arms again.
                if n.status == NodeStatus::Waiting
                    && let Some(at) = r.wake_at
                {
                    meta.insert("wake_at".into(), Value::from(at));
                }
                if let Some(seq) = r.signal_seq {
                    meta.insert("signal_seq".into(), Value::from(seq));
                }
            }
            if n.status == NodeStatus::Waiting
                && let Some(w) = &n.def.wait_for
            {
                meta.insert("signal".into(), Value::String(w.signal.clone()));
            }
            rec.metadata = Value::Object(meta);
            let output_of = (n.status == NodeStatus::Completed).then(|| n.id.clone());
            (rec, output_of)
        };
        // Fan-out nodes complete in the machine: store their aggregated output.
        if let Some(id) = output_of
            && let Some(v) = env.cache.namespace(&id)
        {
            let bytes = serde_json::to_vec(&Value::Object(v)).unwrap_or_default();
            rec.output_artifact_id = Some(env.stores.artifacts.put_artifact(bytes).await?);
        }
        Ok(rec)
    }

    async fn put_record(&mut self, record: Box<NodeRunRecord>) {
        if let Err(e) = self.shared.env.stores.runs.put_node_run(*record).await {
            self.store_failed(e);
        }
    }

    async fn write_full_snapshot(&mut self) {
        let entry = SnapshotEntry::Full {
            data: self.shared.env.cache.to_json(),
        };
        if let Err(e) = self
            .shared
            .env
            .stores
            .snapshots
            .append_snapshot(self.shared.env.run_id.as_str(), entry)
            .await
        {
            self.store_failed(e);
        }
    }

    /// Writes `update` to the run's record; a store failure stops the run.
    async fn update_run_or_stop(&mut self, update: RunUpdate) {
        let env = &self.shared.env;
        if let Err(e) = env.stores.runs.update_run(&env.run_id, update).await {
            self.store_failed(e);
        }
    }

    /// Records whether only humans can move the run on.
    async fn note_waiting(&mut self) {
        let only_waiting = self.shared.machine.lock().only_waiting();
        if only_waiting != self.waiting_recorded {
            self.waiting_recorded = only_waiting;
            let status = if only_waiting {
                RunStatus::WaitingForHuman
            } else {
                RunStatus::Running
            };
            self.update_run_or_stop(RunUpdate {
                status: Some(status),
                ..Default::default()
            })
            .await;
        }
    }

    async fn read_controls(&mut self, resuming: bool) {
        let env = &self.shared.env;
        let controls = controls::read(
            &*env.stores.runs,
            &env.run_id,
            &mut self.control_seq,
            resuming,
        )
        .await;
        for c in controls {
            self.step(Event::Control(c));
        }
    }
}

impl RunLoop {
    /// Steps the machine with the signals sent since the last read (only
    /// for a run with a node that waits for one, also one a hook added).
    async fn read_signals(&mut self) {
        if !self.signals_wanted {
            // A hook may have added a node that waits for one.
            let m = self.shared.machine.lock();
            self.signals_wanted = m.added.iter().any(|n| n.wait_for.is_some());
            if !self.signals_wanted {
                return;
            }
        }
        let env = &self.shared.env;
        let signals =
            controls::read_signals(&*env.stores.runs, &env.run_id, &mut self.signal_seq).await;
        for c in signals {
            self.step(Event::Control(c));
        }
    }
}

/// What woke the run loop.
enum Wake {
    Msg(Msg),
    Permit(Option<mpsc::OwnedPermit<ExecutionEvent>>),
    Answer(hooks::HookAnswer),
    Cancel(String),
    Controls,
    Snapshot,
    Lost,
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
