//! Ending a run: the machine settles what is left, the hooks hear the
//! last events, the end is recorded (one fenced write with the release of
//! the run), and the report is built.

use super::{RunLoop, hooks};
use crate::error::CoordError;
use crate::event::{ExecutionEvent, ExecutorCommand};
use crate::machine::Stop;
use crate::machine::graph::ActionRef;
use crate::report::{DagExecutionReport, NodeReport, metrics_for};
use dagger_core::store::{NodeRunRecord, RunUpdate};
use dagger_core::{NodeId, NodeStatus, RunStatus, now_millis};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl RunLoop {
    pub(super) async fn finish(
        mut self,
        started: Instant,
        resumed: bool,
    ) -> Result<DagExecutionReport, CoordError> {
        let (status, reason) = self.shared.machine.lock().end();
        self.pump().await;
        self.shared.sync_gauges(None);
        metrics::counter!(dagger_core::metrics::RUNS_FINISHED, "outcome" => dagger_core::metrics::run_outcome(status))
            .increment(1);
        if let Some(h) = self.hooks.as_mut() {
            h.outbox.push_back((
                ExecutionEvent::RunCompleted {
                    status,
                    reason: reason.clone(),
                },
                None,
            ));
        }
        // Timers still armed will never matter now.
        self.shared.abort.cancel();
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
            // What the hooks answer from now on comes too late to apply:
            // panics and rejected commands are reported straight to them.
            let ended = format!("run `{}` had ended ({status})", self.shared.env.run_id);
            let mut late_events = Vec::new();
            while let Some(answer) = h.cmd_rx.recv().await {
                late_events.extend(answer.panics);
                late_events.extend(answer.commands.iter().map(|c| {
                    rejected(c, format!("{ended} when the command arrived; a finished run takes no more commands"))
                }));
            }
            let _ = h.task.await;
            let success = status == RunStatus::Completed;
            for hook in &self.hook_list {
                let call = hook.on_complete(&self.hook_ctx, success);
                match hooks::guarded(&**hook, || "on_complete".into(), call).await {
                    Ok(cmds) => late_events.extend(cmds.iter().map(|c| {
                        rejected(c, format!("returned by `on_complete` of hook `{}` after {ended}; a finished run takes no more commands", hook.name()))
                    })),
                    Err(panicked) => late_events.push(panicked),
                }
            }
            for event in late_events {
                let answer = hooks::answer(&self.hook_list, &self.hook_ctx, &event).await;
                for c in answer.commands {
                    tracing::warn!(command = %c.summary(), "command answered to an event after the run ended; dropped");
                }
            }
        }
        let (lost_state, held) = (self.lost.clone(), self.owner.token);
        let lost_run = self.shared.env.run_id.to_string();
        let lost = move || CoordError::OwnershipLost {
            run_id: lost_run.clone(),
            held,
            current: lost_state.current.load(Ordering::Acquire),
        };
        if self.lost.token.is_cancelled() {
            return Err(lost());
        }
        let shared = self.shared.clone();
        let store_failed = || matches!(shared.machine.lock().stop, Some(Stop::Store(_)));
        if self.record && !store_failed() {
            self.write_full_snapshot().await;
        }
        let store_failed = store_failed();
        let stores = &self.shared.env.stores;
        let run_id = &self.shared.env.run_id;
        let finished = (status.is_terminal()).then(now_millis);
        let update = RunUpdate {
            status: Some(status),
            reason: Some(reason.clone()),
            finished_at: Some(finished),
            definition: None,
        };
        // The end and the release are one fenced write: a process whose
        // lease was taken over never records its end over the new owner's.
        self.heartbeat.take();
        let recorded = stores
            .runs
            .release_run(run_id, self.owner.token, update)
            .await
            .and(stores.runs.flush().await);
        match recorded {
            Err(dagger_core::StoreError::StaleToken { current, .. }) => {
                self.lost.current.store(current, Ordering::Release);
                return Err(lost());
            }
            Err(e) if !store_failed => {
                return Err(CoordError::Store(e));
            }
            _ => {}
        }
        let mut m = self.shared.machine.lock();
        // The run has ended (late events change nothing): its node table
        // becomes the report in place (same allocation), and the id index
        // goes first, so the report adds little to the run's peak memory.
        m.g.index = Default::default();
        let table = std::mem::take(&mut m.g.nodes);
        let actions = &self.shared.env.actions;
        // Ids and action names are shared, not copied.
        let nodes: Vec<NodeReport> = table
            .into_iter()
            .map(|n| NodeReport {
                wake_at: (n.status == NodeStatus::Waiting)
                    .then(|| n.rare.as_ref().and_then(|r| r.wake_at))
                    .flatten(),
                signal: (n.status == NodeStatus::Waiting)
                    .then(|| n.def.wait_for.as_ref().map(|w| w.signal.clone()))
                    .flatten(),
                action: match &n.action {
                    ActionRef::Table(i) => actions[*i as usize].name.clone(),
                    ActionRef::Owned(_) => Arc::from(n.def.action.as_str()),
                },
                duration_ms: n.duration(),
                status: n.status,
                attempts: n.attempts,
                error: n.error,
                cache_hit: n.cache_hit,
                added_at_runtime: n.added,
                id: NodeId::new(n.id),
            })
            .collect();
        let metrics = metrics_for(&nodes, m.tokens, m.iterations);
        let duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            run_id = %run_id,
            status = %status,
            reason = reason.as_deref().unwrap_or(""),
            duration_ms,
            nodes = metrics.nodes_total,
            completed = metrics.nodes_completed,
            failed = metrics.nodes_failed,
            skipped = metrics.nodes_skipped,
            cancelled = metrics.nodes_cancelled,
            retries = metrics.retries,
            "run finished"
        );
        Ok(DagExecutionReport {
            completed_nodes: metrics.nodes_completed,
            run_id: run_id.to_string(),
            dag_name: m.wf.name.clone(),
            status,
            reason,
            nodes,
            duration_ms,
            metrics,
            resumed,
            outputs: serde_json::Map::new(),
        })
    }
}

/// A `CommandRejected` event for `cmd` (logged too).
fn rejected(cmd: &ExecutorCommand, reason: String) -> ExecutionEvent {
    let command = cmd.summary();
    tracing::warn!(%command, %reason, "command rejected");
    ExecutionEvent::CommandRejected { command, reason }
}
