//! Direct release: a plain node's success is handled on the worker that ran
//! it. The worker counts its dependents down (atomic counters, as a
//! hand-written scheduler would) and spawns the ones that become ready
//! itself, so a chain of plain nodes never waits for the run loop. The run
//! loop still owns everything else (hooks, retries, failures, conditions,
//! approvals, fan-out, control requests) and reconciles its view of the
//! nodes the workers completed when it needs them (stopping, the report).
//!
//! Used only for runs without hooks, with more than one parallel slot and no
//! `max_iterations` / `max_tokens` budget (see [`DirectGraph::applies`]):
//! hooks must see each completion before its dependents start, sequential
//! runs keep their strict index order and budgets are checked per start.

use crate::state::{DefHandle, NodeState};
use crate::worker::{self, Attempt, Msg, RunShared};
use dagger_dag_flow::{DagConfig, NodeAction};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Nobody claimed the node yet: whoever counts it down to zero may start it.
const FREE: u8 = 0;
/// A worker started it and has not finished it.
const WORKER_RUNNING: u8 = 1;
/// A worker finished it successfully (its dependents were released).
pub(crate) const DONE: u8 = 2;
/// The run loop owns it (started, queued, skipped or answered by it).
const LOOP: u8 = 3;

/// What a worker needs to start and finish a node without the run loop.
pub(crate) struct DirectNode {
    id: Arc<str>,
    def: DefHandle,
    action: Arc<dyn NodeAction>,
    dependents: Box<[u32]>,
    /// Dependencies not yet completed.
    remaining: AtomicU32,
    state: AtomicU8,
    /// May a worker start it (no condition, approval, fan-out, memoization,
    /// override or restored attempt)?
    eligible: bool,
    /// Duration of the worker's attempt and when it ended (ns since `epoch`).
    elapsed_ms: AtomicU64,
    finished_ns: AtomicU64,
}

/// The run's nodes as workers see them.
pub(crate) struct DirectGraph {
    nodes: Box<[DirectNode]>,
    limit: usize,
    /// Set by the loop when the run stops: workers start nothing more.
    stopped: AtomicBool,
    /// The loop holds nodes waiting for a slot: they go first, so a worker
    /// hands what it releases to the loop and wakes it when a slot frees.
    backlog: AtomicBool,
    /// A `Wake` is on its way to the loop and not yet read: a worker that
    /// would send another leaves it (the loop looks at the slots after
    /// reading that one), so bursts of completions cost the loop one wake-up.
    wake_pending: AtomicBool,
    run_token: CancellationToken,
    /// Cancelled when the grace period after a stop ran out: drops the
    /// worker-started attempts that ignored their cancellation.
    abort: CancellationToken,
    /// Attempts workers started and tokens their outputs reported.
    started: AtomicU64,
    tokens: AtomicU64,
    epoch: Instant,
}

impl DirectGraph {
    /// Whether a run with `config`, `limit` slots and `hooks` hooks releases nodes directly.
    pub(crate) fn applies(config: &DagConfig, limit: usize, hooks: usize) -> bool {
        hooks == 0 && limit > 1 && config.max_iterations.is_none() && config.max_tokens.is_none()
    }

    /// The workers' view of `nodes`, after wiring (counters set).
    pub(crate) fn new(nodes: &[NodeState], limit: usize, run_token: CancellationToken) -> Self {
        let nodes = nodes
            .iter()
            .map(|n| DirectNode {
                id: n.id.clone(),
                def: n.def.clone(),
                action: n.action.clone(),
                dependents: n.dependents.clone().into_boxed_slice(),
                remaining: AtomicU32::new(n.remaining),
                state: AtomicU8::new(FREE),
                eligible: n.def.when.is_none()
                    && n.def.approval.is_none()
                    && n.def.map_over.is_none()
                    && !n.def.cache
                    && n.attempts == 0
                    && n.overrides.is_none()
                    && n.human_prompt.is_none()
                    && !n.added,
                elapsed_ms: AtomicU64::new(0),
                finished_ns: AtomicU64::new(0),
            })
            .collect();
        Self {
            nodes,
            limit,
            stopped: AtomicBool::new(false),
            backlog: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
            run_token,
            abort: CancellationToken::new(),
            started: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether node `i` may be completed by the worker that ran it.
    pub(crate) fn completes(&self, i: u32) -> bool {
        self.nodes.get(i as usize).is_some_and(|n| n.eligible)
    }

    /// Counts a satisfied dependency of `i` down (loop side); true when it was the last.
    pub(crate) fn count_down(&self, i: u32) -> bool {
        self.nodes[i as usize]
            .remaining
            .fetch_sub(1, Ordering::AcqRel)
            == 1
    }

    /// The loop takes node `i`; false when a worker already started it.
    pub(crate) fn claim_for_loop(&self, i: u32) -> bool {
        let state = &self.nodes[i as usize].state;
        match state.compare_exchange(FREE, LOOP, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(s) => s == LOOP,
        }
    }

    /// The loop adopts an attempt a worker started (it failed or stopped).
    pub(crate) fn hand_back(&self, i: u32) {
        self.nodes[i as usize].state.store(LOOP, Ordering::Release);
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// The loop read a `Wake`: the next slot given back sends a new one.
    /// (Acquire: it sees every slot given back by a worker that left it.)
    pub(crate) fn wake_read(&self) {
        self.wake_pending.swap(false, Ordering::AcqRel);
    }

    pub(crate) fn set_backlog(&self, waiting: bool) {
        self.backlog.store(waiting, Ordering::Release);
    }

    /// Drops the worker-started attempts still running.
    pub(crate) fn abort(&self) {
        self.abort.cancel();
    }

    pub(crate) fn abort_token(&self) -> &CancellationToken {
        &self.abort
    }

    /// Attempts started and tokens reported by workers.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (
            self.started.load(Ordering::Acquire),
            self.tokens.load(Ordering::Acquire),
        )
    }

    /// What a worker did with node `i`: `Some((state, attempt duration,
    /// end))`, `None` while it is the loop's or nobody's.
    pub(crate) fn outcome(&self, i: u32) -> Option<(u8, Duration, Instant)> {
        let n = self.nodes.get(i as usize)?;
        let state = n.state.load(Ordering::Acquire);
        if state != DONE && state != WORKER_RUNNING {
            return None;
        }
        let elapsed = Duration::from_millis(n.elapsed_ms.load(Ordering::Acquire));
        let end = self.epoch + Duration::from_nanos(n.finished_ns.load(Ordering::Acquire));
        Some((state, elapsed, end))
    }
}

/// A plain attempt of node `i` succeeded: record it, count its dependents
/// down, start the ready ones here, and give back the attempt's slot.
pub(crate) fn complete(
    shared: &Arc<RunShared>,
    g: &DirectGraph,
    i: u32,
    elapsed: Duration,
    tokens: u64,
) {
    let n = &g.nodes[i as usize];
    if tokens > 0 {
        g.tokens.fetch_add(tokens, Ordering::Relaxed);
    }
    n.elapsed_ms
        .store(elapsed.as_millis() as u64, Ordering::Relaxed);
    n.finished_ns
        .store(g.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
    n.state.store(DONE, Ordering::Release);
    // This attempt's slot passes to one dependent started here, spawned
    // last: the slot is held until then, so the count of running attempts
    // cannot reach zero (and end the run) while dependents are being started.
    let mut heir = None;
    for &d in n.dependents.iter() {
        if g.nodes[d as usize].remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            continue;
        }
        if heir.is_none() && claim(g, d) {
            heir = Some(d);
            continue;
        }
        if try_acquire(shared, g.limit) {
            if claim(g, d) {
                start(shared, g, d);
                continue;
            }
            // This attempt still holds its own slot: never the last one.
            give_back(shared);
        }
        // The loop decides: a condition, an approval, a stop, no free slot.
        let _ = shared.tx.send(Msg::Ready { node: d });
    }
    match heir {
        Some(d) => start(shared, g, d),
        None => release(shared, g),
    }
}

/// Gives back one slot; wakes the loop when it may act on it.
fn release(shared: &RunShared, g: &DirectGraph) {
    let before = shared
        .running
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
        .unwrap_or(0);
    if (before == 1 || g.backlog.load(Ordering::Acquire))
        && !g.wake_pending.swap(true, Ordering::AcqRel)
    {
        let _ = shared.tx.send(Msg::Wake);
    }
}

fn try_acquire(shared: &RunShared, limit: usize) -> bool {
    shared
        .running
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
            (r < limit).then_some(r + 1)
        })
        .is_ok()
}

/// Whether a worker may start node `d` (ready, holding a slot for it), and
/// if so takes it.
fn claim(g: &DirectGraph, d: u32) -> bool {
    let n = &g.nodes[d as usize];
    n.eligible
        && !g.stopped.load(Ordering::Acquire)
        && !g.backlog.load(Ordering::Acquire)
        && n.state
            .compare_exchange(FREE, WORKER_RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
}

fn give_back(shared: &RunShared) {
    let _ = shared
        .running
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1));
}

/// Spawns the first attempt of node `d`, claimed by this worker.
fn start(shared: &Arc<RunShared>, g: &DirectGraph, d: u32) {
    let n = &g.nodes[d as usize];
    g.started.fetch_add(1, Ordering::Relaxed);
    // A timeout cancels the attempt's own token; otherwise the run's token
    // is all it must see (a child token costs a lock on the run's token).
    let cancel = if n.def.timeout.is_some() {
        g.run_token.child_token()
    } else {
        g.run_token.clone()
    };
    worker::spawn_direct(
        shared,
        Attempt {
            node: d,
            invocation: None,
            attempt: 1,
            node_id: n.id.clone(),
            def: n.def.clone(),
            action: n.action.clone(),
            cancel,
            item: None,
            overrides: None,
            direct: true,
        },
    );
}
