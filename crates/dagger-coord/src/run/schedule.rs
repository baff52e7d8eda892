//! Scheduling, attempt results, retries, failure handling and stopping.

use super::*;

impl RunLoop {
    // ----- scheduling -------------------------------------------------------------

    pub(super) fn limit(&self) -> usize {
        if self.config.enable_parallel_execution {
            self.config.max_parallel_nodes.max(1)
        } else {
            1
        }
    }

    pub(super) fn dispatch(&mut self) {
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
        loop {
            while self.stop.is_none() && self.running() < self.limit() {
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
                    let ok = resolve_reference(&self.shared.cache, &reference)
                        .is_some_and(|v| truthy(&v));
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
            // Direct release: while nodes wait here for a slot, workers hand
            // what they release to the loop (these go first) and wake it when
            // a slot frees. Checked again after publishing, as a worker may
            // have given its slot back in between.
            if let Some(direct) = &self.shared.direct {
                let waiting = self.stop.is_none()
                    && (!self.work_queue.is_empty() || !self.g.ready.is_empty());
                direct.set_backlog(waiting);
                if waiting && self.running() < self.limit() {
                    continue;
                }
            }
            break;
        }
    }

    pub(super) fn wait_for_human(&mut self, i: u32, prompt: String) {
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

    pub(super) fn start_fanout(&mut self, i: u32, reference: &str) {
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

    pub(super) fn start_attempt(&mut self, i: u32, inv: Option<u32>) {
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
        let direct = self.shared.direct.as_ref();
        let (attempt, token, item) = match inv {
            None => {
                n.attempts += 1;
                // Without hooks nothing cancels one plain node but its own
                // timeout: the run's token will do, and it costs no lock.
                let token = match direct {
                    Some(g) if n.def.timeout.is_none() && g.claim_for_loop(i) => run_token.clone(),
                    _ => {
                        let token = run_token.child_token();
                        n.cancel = Some(token.clone());
                        token
                    }
                };
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
        // Events (and so their node refs, two strings each) only exist with hooks.
        let node = self.g.events.is_some().then(|| {
            let mut node = n.node_ref(inv);
            node.attempt = attempt;
            node
        });
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
            direct: false,
        };
        if let Some(node) = node {
            self.g.emit(|| ExecutionEvent::NodeStarted { node });
        }
        self.shared.running.fetch_add(1, Ordering::AcqRel);
        let handle = worker::spawn(&self.shared, job);
        self.aborts.insert((i, inv), handle);
    }

    // ----- results ----------------------------------------------------------------

    pub(super) fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Done {
                node,
                invocation,
                result,
                elapsed,
                attempt,
                direct,
            } => {
                self.give_back_slot();
                if direct {
                    self.adopt(node, attempt, elapsed);
                } else {
                    self.aborts.remove(&(node, invocation));
                }
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
            Msg::Ready { node } => {
                if let Some(g) = &self.shared.direct {
                    g.claim_for_loop(node);
                }
                self.g.make_ready(node);
            }
            Msg::Wake => {
                if let Some(g) = &self.shared.direct {
                    g.wake_read();
                }
            }
            Msg::StoreFailed(e) => {
                self.give_back_slot();
                let reason = format!("storage error: {e}");
                self.stop_without_coord(Stop::Store(reason));
            }
        }
    }

    /// The loop reads an attempt's `Done`: the attempt's slot is free.
    fn give_back_slot(&self) {
        let _ = self
            .shared
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1));
    }

    /// A worker-started attempt ended in a way the loop handles (a failure,
    /// a cancellation, a branch choice): the node becomes the loop's, as if
    /// the loop had started that attempt.
    fn adopt(&mut self, i: u32, attempt: u32, elapsed: Duration) {
        if let Some(g) = &self.shared.direct {
            g.hand_back(i);
        }
        let n = &mut self.g.nodes[i as usize];
        if n.status == NodeStatus::Pending {
            n.set_status(NodeStatus::Ready);
            n.set_status(NodeStatus::Running);
            n.attempts = attempt;
            n.first_start = Instant::now().checked_sub(elapsed);
            n.started_at_ms = Some(now_millis() - elapsed.as_millis() as i64);
        }
    }

    pub(super) fn on_plain_done(&mut self, i: u32, result: AttemptResult, elapsed: Duration) {
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
                let node = self.g.events.is_some().then(|| n.node_ref(None));
                let selected: Option<HashSet<String>> =
                    output.branches().map(|b| b.into_iter().collect());
                // `node` is `Some` exactly when events are collected (hooks).
                match (self.g.events.as_mut(), node, deferred) {
                    (Some(events), Some(node), deferred) => events.push((
                        ExecutionEvent::NodeCompleted {
                            node,
                            outcome: output,
                            cache_hit,
                        },
                        deferred,
                    )),
                    (_, _, Some(record)) => self.late_records.push(record),
                    _ => {}
                }
                self.g
                    .release_dependents(i, selected.as_ref(), self.shared.direct.as_ref());
                self.check_tokens();
            }
            AttemptResult::Failed(f) => self.on_failure(i, None, f),
            AttemptResult::Cancelled => self.on_cancelled(i),
        }
    }

    pub(super) fn on_cancelled(&mut self, i: u32) {
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

    pub(super) fn on_invocation_done(&mut self, i: u32, k: u32, result: AttemptResult) {
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

    pub(super) fn complete_fanout(&mut self, i: u32) {
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
        self.g
            .release_dependents(i, None, self.shared.direct.as_ref());
    }

    pub(super) fn on_failure(&mut self, i: u32, inv: Option<u32>, f: Failure) {
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
    pub(super) fn final_failure(&mut self, i: u32, error: String) {
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

    pub(super) fn finalize_failed(&mut self, i: u32, error: String) {
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
        self.g
            .release_dependents(i, None, self.shared.direct.as_ref());
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

    pub(super) fn check_tokens(&mut self) {
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

    pub(super) fn halt(&mut self, stop: Stop, coord: &Coordinator) {
        self.stop_without_coord(stop);
        if self.grace_deadline.is_none() {
            self.grace_deadline = Some(TokioInstant::now() + coord.cancel_grace);
        }
    }

    /// Stops scheduling; every stop but Pause also cancels running attempts.
    pub(super) fn stop_without_coord(&mut self, stop: Stop) {
        if self.stop.is_some() {
            return;
        }
        tracing::info!(reason = stop.reason(), "run stopping");
        if let Some(g) = &self.shared.direct {
            g.stop();
        }
        if !matches!(stop, Stop::Pause(_)) {
            self.run_token.cancel();
        }
        self.stop = Some(stop);
    }

    pub(super) fn abort_all(&mut self) {
        self.reconcile_direct();
        let dropped = |stop: &Option<Stop>| {
            format!(
                "{} (the action did not stop within the grace period and was dropped)",
                stop.as_ref().map_or("cancelled", |s| s.reason())
            )
        };
        let shared = self.shared.clone();
        if let Some(g) = &shared.direct {
            g.abort();
            for i in 0..self.g.nodes.len() as u32 {
                if g.outcome(i)
                    .is_some_and(|(state, _, _)| state != direct::DONE)
                {
                    self.adopt(i, 1, Duration::ZERO);
                    let n = &mut self.g.nodes[i as usize];
                    if n.status == NodeStatus::Running {
                        n.set_status(NodeStatus::Cancelled);
                        n.error = Some(dropped(&self.stop));
                        self.g.touch(i);
                    }
                }
            }
        }
        for ((i, _), handle) in self.aborts.drain() {
            handle.abort();
            let n = &mut self.g.nodes[i as usize];
            if !n.status.is_terminal() {
                n.set_status(NodeStatus::Cancelled);
                n.error = Some(dropped(&self.stop));
                self.g.touch(i);
            }
        }
        self.shared.running.store(0, Ordering::Release);
    }

    /// Brings the loop's view of the nodes workers completed up to date
    /// (they completed without telling the loop).
    pub(super) fn reconcile_direct(&mut self) {
        let Some(g) = &self.shared.direct else { return };
        for (i, n) in self.g.nodes.iter_mut().enumerate() {
            let Some((direct::DONE, elapsed, end)) = g.outcome(i as u32) else {
                continue;
            };
            // Pending (a worker started it) or Running (the loop did) ->
            // Completed, through Ready and Running: legal, so set directly.
            match n.status {
                NodeStatus::Pending => n.attempts = 1,
                NodeStatus::Running => {}
                _ => continue,
            }
            n.status = NodeStatus::Completed;
            n.error = None;
            n.cache_hit = false;
            n.cancel = None;
            let duration = n
                .first_start
                .map_or(elapsed, |s| end.saturating_duration_since(s));
            n.duration_ms = Some(duration.as_millis() as u64);
        }
    }
}
