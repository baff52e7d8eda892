//! Humans in the loop and requests from outside the process (cancel, approve, reject).

use super::*;

impl RunLoop {
    // ----- humans and external control -------------------------------------------

    pub(super) fn human_deadline(&self) -> Option<TokioInstant> {
        let minutes = self.config.human_wait_minutes?;
        let wait = Duration::from_secs_f64(minutes * 60.0);
        self.waiting
            .iter()
            .filter_map(|i| self.g.nodes[*i as usize].waiting_since)
            .min()
            .map(|since| TokioInstant::from_std(since + wait))
    }

    pub(super) fn human_timeout(&mut self) {
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

    pub(super) fn approve(&mut self, i: u32, input: Option<Value>) {
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

    /// The loop takes node `i` from the workers (direct release); false when
    /// a worker already started it.
    fn claim_for_loop(&self, i: u32) -> bool {
        self.shared
            .direct
            .as_ref()
            .is_none_or(|g| g.claim_for_loop(i))
    }

    pub(super) async fn note_waiting(&mut self) {
        let only_waiting = !self.waiting.is_empty()
            && self.running() == 0
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
            self.update_run_or_stop(RunUpdate {
                status: Some(status),
                ..Default::default()
            })
            .await;
        }
    }

    /// Writes `update` to the run's record; a store failure stops the run.
    pub(super) async fn update_run_or_stop(&mut self, update: RunUpdate) {
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

    pub(super) async fn apply_controls(&mut self, resuming: bool) {
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
                        Some(i)
                            if !self.g.nodes[i as usize].status.is_terminal()
                                && self.claim_for_loop(i) =>
                        {
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
                            ) && self.claim_for_loop(i) =>
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
}
