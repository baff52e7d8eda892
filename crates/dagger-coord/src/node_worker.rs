//! [`NodeWorker`]: a worker of the pool that executes node attempts a
//! coordinator dispatched through a [`NodeQueue`]
//! (see [`crate::Coordinator::with_node_queue`]).

use crate::error::CoordError;
use dagger_core::metrics::AttemptOutcome;
use dagger_core::store::{AttemptLogs, LogSink, NodeClaim, NodeQueue, NodeResult};
use dagger_core::{Permanent, StoreError, TaskId};
use dagger_dag_flow::{ActionRegistry, CacheView, NodeCtx, NodeInputs};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Claims node attempts for the actions of its registry, runs them (at most
/// `concurrency` at once) with the item's idempotency key, renews their
/// leases while they run and completes them. Idle, it waits on the queue's
/// work signal (and looks again once per lease period, for items whose
/// lease expired on a crashed worker).
pub struct NodeWorker {
    queue: Arc<dyn NodeQueue>,
    registry: ActionRegistry,
    worker_id: String,
    concurrency: usize,
    lease: Duration,
    app_data: Option<Arc<dyn Any + Send + Sync>>,
    stats: Arc<WorkerStats>,
}

/// Counters of a [`NodeWorker`], readable while it runs.
#[derive(Debug, Default)]
pub struct WorkerStats {
    completed: AtomicU64,
    rejected: AtomicU64,
}

impl WorkerStats {
    /// Attempts completed and accepted by the queue.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Completions the queue rejected (the lease had passed to another
    /// worker, or the item was withdrawn).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for NodeWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeWorker")
            .field("worker_id", &self.worker_id)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl NodeWorker {
    /// A worker taking items of `queue` for the actions in `registry`, one
    /// at a time, with a 30-second lease.
    pub fn new(queue: Arc<dyn NodeQueue>, registry: ActionRegistry) -> Self {
        Self {
            queue,
            registry,
            worker_id: format!("{}:{}", std::process::id(), TaskId::generate()),
            concurrency: 1,
            lease: Duration::from_secs(30),
            app_data: None,
            stats: Arc::default(),
        }
    }

    /// Runs up to `n` attempts at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long a claim lasts without renewal (renewed every third of it);
    /// after a crash, another worker takes the item once it expires.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// Application data handed to actions as `NodeCtx::app_data`.
    pub fn app_data(mut self, data: Arc<dyn Any + Send + Sync>) -> Self {
        self.app_data = Some(data);
        self
    }

    /// The identity written into leases.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The worker's counters (shared; keep the handle before [`Self::run`]).
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `cancel` fires. Attempts still running then are cancelled
    /// and left uncompleted: their leases expire and other workers take them.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), CoordError> {
        let this = Arc::new(self);
        let actions = this.registry.names();
        let mut signal = this.queue.work_signal();
        let mut running: JoinSet<()> = JoinSet::new();
        let stop = cancel.child_token();
        let mut backoff = Duration::from_millis(50);
        loop {
            signal.borrow_and_update();
            let room = this.concurrency.saturating_sub(running.len());
            if room > 0 && !cancel.is_cancelled() {
                // The lease is counted from before the claim was sent, so
                // this worker's view of it never outlasts the store's.
                let asked = tokio::time::Instant::now();
                match this
                    .queue
                    .claim(&this.worker_id, &actions, room, this.lease)
                    .await
                {
                    Ok(claims) => {
                        backoff = Duration::from_millis(50);
                        let claimed = claims.len();
                        if claimed > 0 {
                            metrics::counter!(dagger_core::metrics::CLAIMS, "queue" => "nodes")
                                .increment(claimed as u64);
                        }
                        for claim in claims {
                            let span = tracing::info_span!("remote_node", run_id = %claim.item.run_id, node_id = %claim.item.node_id, attempt = claim.item.attempt);
                            if let Some(parent) = &claim.item.traceparent {
                                dagger_core::trace_context::adopt(&span, parent);
                            }
                            running.spawn(
                                this.clone()
                                    .attempt(claim, asked, stop.child_token())
                                    .instrument(span),
                            );
                        }
                        if claimed == room {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::error!(worker = %this.worker_id, error = %e, retry_in_ms = backoff.as_millis() as u64, "node claim failed");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = cancel.cancelled() => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            tokio::select! {
                changed = signal.changed() => {
                    if changed.is_err() {
                        // The queue is gone: only the lease timer is left.
                        tokio::time::sleep(this.lease).await;
                    }
                }
                Some(_) = running.join_next(), if !running.is_empty() => {}
                () = tokio::time::sleep(this.lease) => {}
                () = cancel.cancelled() => break,
            }
        }
        stop.cancel();
        while running.join_next().await.is_some() {}
        Ok(())
    }

    /// Runs one claimed item to its completion; `claimed` is when the claim
    /// was asked for (the lease runs from then at the latest).
    async fn attempt(
        self: Arc<Self>,
        claim: NodeClaim,
        claimed: tokio::time::Instant,
        cancel: CancellationToken,
    ) {
        let item = claim.item;
        let Some(action) = self.registry.get(&item.action) else {
            let result = NodeResult::Error {
                message: format!("worker has no action `{}`", item.action),
                permanent: true,
                logs: AttemptLogs::default(),
            };
            self.finish(&item.item_id, claim.token, result, &cancel)
                .await;
            return;
        };
        let ctx = NodeCtx {
            dag_name: Arc::from(item.dag_name.as_str()),
            run_id: item.run_id.clone(),
            node_id: item.node_id.clone(),
            invocation_key: item.invocation_key.clone(),
            attempt: item.attempt,
            inputs: NodeInputs::from_map(item.inputs.clone()),
            // The run's cache is the coordinator's: reads here are errors.
            cache: CacheView::unavailable(),
            idempotency_key: item.idempotency_key.clone(),
            cancel: cancel.clone(),
            app_data: self.app_data.clone(),
            logs: LogSink::new(),
        };
        // A panicking action fails this attempt (retryable) with its message.
        let node_id = item.node_id.clone();
        let exec = async {
            dagger_core::catch_panic(action.execute(&ctx))
                .await
                .unwrap_or_else(|p| Err(format!("node `{node_id}`: {p}").into()))
        };
        tokio::pin!(exec);
        // Attempts are counted where the action executes (here, not by
        // the coordinator that dispatched them).
        let metrics = dagger_core::metrics::action(&item.action);
        let began = std::time::Instant::now();
        let counted = |outcome| metrics.attempt(outcome, began.elapsed().as_secs_f64());
        let renew = self.renew_until_lost(&item.item_id, claim.token, claimed, &cancel);
        // A backstop for a coordinator that went away: the coordinator
        // enforces the node's timeout itself and withdraws the item, which
        // this worker notices within a lease period.
        let timeout = item
            .timeout_ms
            .map(|ms| Duration::from_millis(ms).saturating_add(self.lease));
        let timer = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            r = &mut exec => match r {
                // Withdrawn, taken over or worker shutdown: nothing to report.
                Err(_) if cancel.is_cancelled() => {
                    counted(AttemptOutcome::Cancelled);
                    return;
                }
                r => r,
            },
            () = renew => {
                // The lease was lost or the worker stops: the action gets
                // its grace period to notice the cancellation, and nothing
                // is reported (the queue would reject it).
                cancel.cancel();
                let _ = tokio::time::timeout(self.lease, &mut exec).await;
                counted(AttemptOutcome::Cancelled);
                return;
            }
            () = timer => {
                cancel.cancel();
                let _ = tokio::time::timeout(self.lease, &mut exec).await;
                let t = timeout.unwrap_or_default().as_secs_f64();
                Err(format!("node `{}` timed out after {t:.3}s on worker {}", item.node_id, self.worker_id).into())
            }
        };
        // The logs travel with the completion to the coordinator, which
        // records the attempt.
        let logs = ctx.logs.take();
        counted(match &result {
            Ok(out) if out.success => AttemptOutcome::Succeeded,
            _ => AttemptOutcome::Failed,
        });
        let result = match result {
            Ok(out) => NodeResult::Output {
                outputs: out.outputs,
                success: out.success,
                metadata: out.metadata,
                logs,
            },
            Err(e) => NodeResult::Error {
                permanent: Permanent::is_permanent(e.as_ref()),
                message: e.to_string(),
                logs,
            },
        };
        self.finish(&item.item_id, claim.token, result, &cancel)
            .await;
    }

    /// Renews the lease every third of it; returns when a renewal is
    /// rejected (the item was withdrawn or taken over), when the lease
    /// lapsed without a renewal getting through (the store unreachable, or
    /// this process frozen: another worker may run the item by now), or when
    /// the worker stops. The caller then cancels the attempt. `held` is when
    /// the current lease was asked for: the lease is counted from the moment
    /// a claim or renewal was sent, so it never outlasts the store's.
    async fn renew_until_lost(
        &self,
        item_id: &str,
        token: u64,
        held: tokio::time::Instant,
        cancel: &CancellationToken,
    ) {
        let every = self.lease / 3;
        let mut held_until = held + self.lease;
        let mut next = held + every;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = cancel.cancelled() => return,
            }
            let asked = tokio::time::Instant::now();
            // A renewal still unanswered when the lease lapses (a cut
            // connection can block) is as good as failed; once lapsed, one
            // more renewal gets a third of the lease to answer, since the
            // item may not have been taken over.
            let answer_by = held_until.max(asked + every);
            let failure = match tokio::time::timeout_at(
                answer_by,
                self.queue.renew(item_id, token, self.lease),
            )
            .await
            {
                Ok(Ok(_)) => {
                    held_until = asked + self.lease;
                    next = asked + every;
                    continue;
                }
                Ok(Err(e @ (StoreError::StaleToken { .. } | StoreError::NotFound { .. }))) => {
                    tracing::info!(item = item_id, reason = %e, "node attempt withdrawn or taken over; stopping it");
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the store did not answer".to_string(),
            };
            let now = tokio::time::Instant::now();
            if now >= held_until {
                tracing::warn!(item = item_id, error = %failure, lease_ms = self.lease.as_millis() as u64,
                    "lease lapsed without a renewal; stopping the attempt (another worker may run it)");
                return;
            }
            tracing::warn!(item = item_id, error = %failure, "lease renewal failed; retrying");
            // Try again soon, and once more right when the lease lapses.
            next = (now + (every / 4).max(Duration::from_millis(10))).min(held_until);
        }
    }

    /// Reports the attempt's result. While the store cannot be reached
    /// (a network cut, a server restart) the completion is tried again with
    /// a growing pause until the store answers, so a result is not lost to a
    /// short outage: the store accepts it if the lease is still this
    /// worker's, and rejects it (fencing) if another worker took the item
    /// over meanwhile. It gives up only when the worker stops.
    async fn finish(
        &self,
        item_id: &str,
        token: u64,
        result: NodeResult,
        stop: &CancellationToken,
    ) {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.queue.complete(item_id, token, result.clone()).await {
                Ok(()) => {
                    self.stats.completed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e @ (StoreError::StaleToken { .. } | StoreError::NotFound { .. })) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(dagger_core::metrics::STALE_COMPLETIONS, "queue" => "nodes")
                        .increment(1);
                    tracing::warn!(item = item_id, reason = %e, "completion rejected");
                    return;
                }
                Err(e @ StoreError::Open { .. }) if !stop.is_cancelled() => {
                    tracing::warn!(item = item_id, error = %e, retry_in_ms = pause.as_millis() as u64,
                        "cannot reach the store to complete a node attempt; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    // The lease will expire and another worker runs the item again.
                    tracing::error!(item = item_id, error = %e, "cannot complete a node attempt");
                    return;
                }
            }
        }
    }
}
