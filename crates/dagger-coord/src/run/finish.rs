//! Recording loop-side state, snapshots, and ending the run with its report.

use super::*;

impl RunLoop {
    // ----- persistence ------------------------------------------------------------

    pub(super) async fn flush_dirty(&mut self) {
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

    pub(super) async fn loop_record(
        &self,
        i: u32,
    ) -> Result<NodeRunRecord, dagger_core::StoreError> {
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

    pub(super) async fn put_record(&mut self, record: Box<NodeRunRecord>) {
        if let Err(e) = self.shared.stores.runs.put_node_run(*record).await {
            self.stop_without_coord(Stop::Store(format!("storage error: {e}")));
        }
    }

    pub(super) async fn write_full_snapshot(&mut self) {
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

    pub(super) async fn finish(
        mut self,
        started: Instant,
        resumed: bool,
    ) -> Result<DagExecutionReport, CoordError> {
        self.reconcile_direct();
        if let Some(g) = &self.shared.direct {
            let (started, tokens) = g.totals();
            self.iterations += started;
            self.tokens += tokens;
        }
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
            // What the hooks answer from now on comes too late to apply:
            // panics and rejected commands are reported straight to them.
            let ended = format!("run `{}` had ended ({status})", self.shared.run_id);
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
                match super::guarded(&**hook, || "on_complete".into(), call).await {
                    Ok(cmds) => late_events.extend(cmds.iter().map(|c| {
                        rejected(c, format!("returned by `on_complete` of hook `{}` after {ended}; a finished run takes no more commands", hook.name()))
                    })),
                    Err(panicked) => late_events.push(panicked),
                }
            }
            for event in late_events {
                let answer = super::answer(&self.hook_list, &self.hook_ctx, &event).await;
                for c in answer.commands {
                    tracing::warn!(command = %c.summary(), "command answered to an event after the run ended; dropped");
                }
            }
        }
        let (lost_state, held) = (self.lost.clone(), self.owner.token);
        let lost_run = self.shared.run_id.to_string();
        let lost = move || CoordError::OwnershipLost {
            run_id: lost_run.clone(),
            held,
            current: lost_state.current.load(Ordering::Acquire),
        };
        if self.lost.token.is_cancelled() {
            return Err(lost());
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
            Err(e) if !matches!(self.stop, Some(Stop::Store(_))) => {
                return Err(CoordError::Store(e));
            }
            _ => {}
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
            outputs: Map::new(),
        })
    }

    pub(super) fn final_status(&self) -> (RunStatus, Option<String>) {
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

/// A `CommandRejected` event for `cmd` (logged too).
fn rejected(cmd: &ExecutorCommand, reason: String) -> ExecutionEvent {
    let command = cmd.summary();
    tracing::warn!(%command, %reason, "command rejected");
    ExecutionEvent::CommandRejected { command, reason }
}
