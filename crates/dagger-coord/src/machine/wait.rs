//! Waiting nodes: durable timers (`sleep`, `wait_until`) and signal waits
//! (`wait_for`). A waiting node is `Waiting`: it holds no slot and counts
//! against no limit. Its wake-up time (a timer's, or a signal wait's
//! timeout) is kept in the node (`Rare::wake_at`), so its record carries it
//! and a resumed run arms the same time again. Signals arrive as
//! [`Control::Signal`](super::msg::Control::Signal) events; one that no
//! waiting node takes is kept and offered to each node that starts waiting.

use super::Machine;
use super::msg::{Effect, Millis, Outputs, Signal, Timer};
use crate::event::ExecutionEvent;
use dagger_core::{JsonSchema, NodeStatus};
use dagger_dag_flow::schedule::parse_duration_ms;
use dagger_dag_flow::{NodeOutput, OnTimeout, SignalMatch, WaitUntil};
use serde_json::{Value, json};
use std::sync::Arc;

impl Machine {
    /// Node `i` (ready, with `sleep`, `wait_until` or `wait_for`) starts waiting.
    pub(super) fn begin_wait(&mut self, i: u32, data: &dyn Outputs) {
        let now = self.now;
        let n = &self.g.nodes[i as usize];
        let def = n.def.clone();
        let recorded = n.rare.as_ref().and_then(|r| r.wake_at);
        let due = if let Some(sleep) = &def.sleep {
            match parse_duration_ms(sleep) {
                Ok(ms) => Some(recorded.unwrap_or(now.saturating_add(ms))),
                Err(e) => return self.final_failure(i, format!("node `{}`: sleep: {e}", n.id)),
            }
        } else if let Some(until) = &def.wait_until {
            match wait_until(until, data) {
                Ok(at) => Some(at),
                Err(e) => {
                    return self.final_failure(i, format!("node `{}`: wait_until: {e}", n.id));
                }
            }
        } else if let Some(w) = &def.wait_for {
            match w.timeout.as_deref().map(parse_duration_ms) {
                None => None,
                Some(Ok(ms)) => Some(recorded.unwrap_or(now.saturating_add(ms))),
                Some(Err(e)) => {
                    return self.final_failure(i, format!("node `{}`: timeout: {e}", n.id));
                }
            }
        } else {
            return;
        };
        let n = &mut self.g.nodes[i as usize];
        n.set_status(NodeStatus::Waiting);
        n.mark_started(now);
        n.error = None;
        n.rare_mut().wake_at = due;
        let node = n.node_ref(None);
        self.g.waits.insert(i);
        self.g.touch(i);
        let signal = def.wait_for.as_ref().map(|w| w.signal.clone());
        self.g.emit(|| ExecutionEvent::NodeWaiting {
            node,
            wake_at: due,
            signal,
        });
        if let Some(due) = due {
            let left = due.saturating_sub(now).max(0) as u64;
            self.g.fx.push(Effect::Arm(Timer::Wake(i), left));
        }
        if def.wait_for.is_some() {
            self.offer_kept(i, data);
        }
    }

    /// The timer of waiting node `i` fired.
    pub(super) fn on_wake(&mut self, i: u32, data: &dyn Outputs) {
        if !self.g.waits.contains(&i) {
            return;
        }
        let n = &self.g.nodes[i as usize];
        let Some(due) = n.rare.as_ref().and_then(|r| r.wake_at) else {
            return;
        };
        if self.now < due {
            // The timer's clock ran ahead of the wall clock: look again later.
            let left = (due - self.now) as u64;
            self.g.fx.push(Effect::Arm(Timer::Wake(i), left));
            return;
        }
        let Some(w) = n.def.wait_for.clone() else {
            let output = json!({ "wake_at": rfc3339(due), "woke_at": rfc3339(self.now) });
            return self.complete_wait(i, output, data);
        };
        let id = n.id.clone();
        let timeout = w.timeout.clone().unwrap_or_default();
        let reason = format!(
            "node `{id}`: no signal `{}` arrived within {timeout}",
            w.signal
        );
        match w.on_timeout {
            OnTimeout::Fail => {
                self.g.waits.remove(&i);
                self.final_failure(i, reason);
            }
            OnTimeout::Skip => self.g.skip(i, reason),
            OnTimeout::Continue => self.complete_wait(i, json!({ "timed_out": true }), data),
        }
    }

    /// A signal arrived: the first waiting node (in node order) it suits
    /// takes it; otherwise it is kept for a node that waits later.
    pub(super) fn on_signal(&mut self, signal: Signal, data: &dyn Outputs) {
        if self.consumed.contains(&signal.seq) || self.kept.iter().any(|s| s.seq == signal.seq) {
            return;
        }
        let mut waiting: Vec<u32> = self.g.waits.iter().copied().collect();
        waiting.sort_unstable();
        for i in waiting {
            if self.suits(i, &signal, data) {
                return self.take_signal(i, signal, data);
            }
        }
        self.kept.push(signal);
    }

    /// Offers the kept signals, oldest first, to node `i`, which just began waiting.
    fn offer_kept(&mut self, i: u32, data: &dyn Outputs) {
        let Some(k) = self.kept.iter().position(|s| self.suits(i, s, data)) else {
            return;
        };
        let signal = self.kept.remove(k);
        self.take_signal(i, signal, data);
    }

    /// Whether waiting node `i` waits for `signal` and its `match` and
    /// `schema` accept the payload.
    fn suits(&self, i: u32, signal: &Signal, data: &dyn Outputs) -> bool {
        let n = &self.g.nodes[i as usize];
        let Some(w) = &n.def.wait_for else {
            return false;
        };
        if w.signal != signal.name || n.status != NodeStatus::Waiting {
            return false;
        }
        if let Some(m) = &w.matches {
            let resolve = |r: &str| data.get(r).map(|v| (*v).clone());
            match SignalMatch::parse(m) {
                Ok(m) if m.matches(&signal.payload, &resolve) => {}
                Ok(_) => return false,
                Err(e) => {
                    tracing::warn!(node = %n.id, error = %e, "bad `match`; the signal is not taken");
                    return false;
                }
            }
        }
        if let Some(schema) = &w.schema {
            let valid = JsonSchema::compile(schema, None)
                .map(|s| s.validate(&signal.payload))
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(e) = valid {
                tracing::warn!(node = %n.id, signal = %signal.name, error = %e, "signal payload refused by the node's schema");
                return false;
            }
        }
        true
    }

    fn take_signal(&mut self, i: u32, signal: Signal, data: &dyn Outputs) {
        self.consumed.insert(signal.seq);
        self.g.nodes[i as usize].rare_mut().signal_seq = Some(signal.seq);
        let output = match signal.payload {
            Value::Object(_) => signal.payload,
            other => json!({ "value": other }),
        };
        self.complete_wait(i, output, data);
    }

    /// Waiting node `i` completes with `output`.
    fn complete_wait(&mut self, i: u32, output: Value, data: &dyn Outputs) {
        let now = self.now;
        self.g.waits.remove(&i);
        let n = &mut self.g.nodes[i as usize];
        n.set_status(NodeStatus::Completed);
        n.set_duration(Some(super::elapsed(n.started(), now)));
        data.put(&n.id, &output);
        let node = n.node_ref(None);
        self.g.touch(i);
        self.g.emit(|| ExecutionEvent::NodeCompleted {
            node,
            outcome: Arc::new(NodeOutput::success(output)),
        });
        self.g.release_dependents(i, None);
    }
}

/// The time a `wait_until` value names, reading a reference from `data`.
fn wait_until(text: &str, data: &dyn Outputs) -> Result<Millis, String> {
    match WaitUntil::parse(text)? {
        WaitUntil::At(ms) => Ok(ms),
        WaitUntil::Reference(r) => match data.get(&r).as_deref() {
            Some(Value::String(s)) => dagger_dag_flow::wait::parse_timestamp_ms(s),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| format!("`{r}` is {n}, not a time")),
            Some(other) => Err(format!("`{r}` is {other}, not an RFC 3339 time")),
            None => Err(format!("`{r}` has no value")),
        },
    }
}

/// `ms` (since the epoch) as RFC 3339 with milliseconds, in UTC.
fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}
