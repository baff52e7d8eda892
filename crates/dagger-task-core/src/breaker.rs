//! Per-agent circuit breakers. The state is kept in the store
//! ([`BreakerRecord`]), so every worker sharing the store and `dagger serve`
//! see the same breaker; jobs whose [`crate::JobConfig::circuit_breaker`] is
//! set count their attempts into it and respect it when claiming.
//!
//! Closed: tasks are claimed as usual; each failed attempt of the agent
//! (an error, a panic, a timeout, an expired lease) adds to its count of
//! failures in a row, and a success resets it. At `failure_threshold` the
//! breaker opens: no task of the agent is claimed until the cool-down ends,
//! so its tasks wait (Ready) instead of burning attempts. Then one trial
//! task is claimed (half-open): its success closes the breaker, its failure
//! opens it for another cool-down; of several workers claiming at that
//! moment exactly one runs the trial (see `Gate::read`). A trial whose outcome never arrives
//! (its worker died and the lease's expiry was not yet recorded) is
//! replaced by another after one more cool-down.

use crate::error::TaskError;
use crate::event::TaskEvent;
use dagger_core::store::{BreakerRecord, BreakerState, TaskRecord, TaskTx};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A per-agent circuit breaker setting (off unless a job sets one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    /// Failed attempts of one agent in a row that open its breaker (at least 1).
    pub failure_threshold: u32,
    /// How long an open breaker keeps the agent's tasks waiting, in
    /// milliseconds (at least 1).
    pub cool_down_ms: u64,
}

impl CircuitBreaker {
    /// A breaker opening after `failure_threshold` failures in a row for
    /// `cool_down`.
    pub fn new(failure_threshold: u32, cool_down: std::time::Duration) -> Self {
        Self {
            failure_threshold,
            cool_down_ms: u64::try_from(cool_down.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn cool_down(&self) -> i64 {
        i64::try_from(self.cool_down_ms).unwrap_or(i64::MAX)
    }
}

fn closed(agent: &str, now: i64) -> BreakerRecord {
    BreakerRecord {
        agent: agent.to_string(),
        state: BreakerState::Closed,
        consecutive_failures: 0,
        until: None,
        last_error: None,
        updated_at: now,
    }
}

/// Counts a failed attempt of `agent`; opens the breaker at the threshold,
/// or again after a failed trial.
pub(crate) fn on_failure(
    tx: &mut dyn TaskTx,
    cfg: &CircuitBreaker,
    agent: &str,
    error: &str,
    now: i64,
) -> Result<Option<TaskEvent>, TaskError> {
    let mut b = tx.breaker(agent)?.unwrap_or_else(|| closed(agent, now));
    b.consecutive_failures = b.consecutive_failures.saturating_add(1);
    b.last_error = Some(error.to_string());
    b.updated_at = now;
    let opens = match b.state {
        BreakerState::Closed => b.consecutive_failures >= cfg.failure_threshold.max(1),
        BreakerState::HalfOpen => true,
        // A task claimed before the breaker opened failed: stay open.
        BreakerState::Open => false,
    };
    let mut event = None;
    if opens {
        let until = now.saturating_add(cfg.cool_down());
        b.state = BreakerState::Open;
        b.until = Some(until);
        tracing::warn!(
            agent,
            failures = b.consecutive_failures,
            until,
            error,
            "circuit breaker opened"
        );
        event = Some(TaskEvent::CircuitOpened {
            agent: agent.to_string(),
            consecutive_failures: b.consecutive_failures,
            until,
            last_error: error.to_string(),
        });
    }
    tx.put_breaker(&b)?;
    Ok(event)
}

/// A successful attempt of `agent` closes its breaker.
pub(crate) fn on_success(
    tx: &mut dyn TaskTx,
    agent: &str,
    now: i64,
) -> Result<Option<TaskEvent>, TaskError> {
    let Some(b) = tx.breaker(agent)? else {
        return Ok(None);
    };
    if b.state == BreakerState::Closed && b.consecutive_failures == 0 {
        return Ok(None);
    }
    tx.put_breaker(&closed(agent, now))?;
    if b.state == BreakerState::Closed {
        return Ok(None);
    }
    tracing::info!(agent, "circuit breaker closed");
    Ok(Some(TaskEvent::CircuitClosed {
        agent: agent.to_string(),
    }))
}

/// The breakers as one claiming turn sees them: decides which agents'
/// tasks may be claimed, and which claims are half-open trials.
pub(crate) struct Gate {
    cfg: CircuitBreaker,
    now: i64,
    breakers: HashMap<String, BreakerRecord>,
    /// Agents whose trial this turn claimed.
    trials: Vec<String>,
}

impl Gate {
    /// Reads every breaker (a job without a breaker setting gets no gate).
    ///
    /// A breaker due for its trial is read again with [`TaskTx::breaker`],
    /// which locks its row until the transaction ends (Postgres `FOR
    /// UPDATE`; SQLite and memory serialize transactions anyway). Workers
    /// of different jobs claim in concurrent transactions: without the
    /// lock, all of them would see the cool-down over and each run a
    /// trial. With it, the second waits for the first's commit and sees
    /// the breaker half-open. Rows are locked in agent order, and only
    /// while a trial is due, so the common turn takes no lock.
    pub(crate) fn read(
        tx: &mut dyn TaskTx,
        cfg: CircuitBreaker,
        now: i64,
    ) -> Result<Self, TaskError> {
        let mut breakers: HashMap<String, BreakerRecord> = tx
            .breakers()?
            .into_iter()
            .map(|b| (b.agent.clone(), b))
            .collect();
        let mut due: Vec<String> = breakers
            .values()
            .filter(|b| b.state != BreakerState::Closed && b.until.is_none_or(|u| now >= u))
            .map(|b| b.agent.clone())
            .collect();
        due.sort_unstable();
        for agent in due {
            match tx.breaker(&agent)? {
                Some(b) => breakers.insert(agent, b),
                None => breakers.remove(&agent),
            };
        }
        Ok(Self {
            cfg,
            now,
            breakers,
            trials: Vec::new(),
        })
    }

    /// Whether a task of `agent` may be claimed now; admitting the trial of
    /// an open breaker whose cool-down ended counts it.
    pub(crate) fn admit(&mut self, agent: &str) -> bool {
        let Some(b) = self.breakers.get_mut(agent) else {
            return true;
        };
        match b.state {
            BreakerState::Closed => true,
            BreakerState::Open | BreakerState::HalfOpen => {
                if b.until.is_some_and(|u| self.now < u) {
                    return false;
                }
                b.state = BreakerState::HalfOpen;
                b.until = Some(self.now.saturating_add(self.cfg.cool_down()));
                b.updated_at = self.now;
                self.trials.push(agent.to_string());
                true
            }
        }
    }

    /// Writes the half-open breakers of the trials `claimed` holds; returns
    /// their events. `claimed` may contain fewer trials than were admitted
    /// (the caller may refuse a task after this gate admitted it).
    pub(crate) fn commit(
        self,
        tx: &mut dyn TaskTx,
        claimed: &[TaskRecord],
    ) -> Result<Vec<TaskEvent>, TaskError> {
        let mut events = Vec::new();
        for agent in &self.trials {
            let Some(task) = claimed.iter().find(|t| &t.agent == agent) else {
                continue;
            };
            if let Some(b) = self.breakers.get(agent) {
                tx.put_breaker(b)?;
                tracing::info!(agent = %agent, task = %task.task_id, "circuit breaker half-open: one trial");
                events.push(TaskEvent::CircuitHalfOpen {
                    agent: agent.clone(),
                    task_id: task.task_id.clone(),
                });
            }
        }
        Ok(events)
    }

    /// The earliest future moment an open or half-open breaker lets a task
    /// through again, so the job loop wakes for it.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.breakers
            .values()
            .filter(|b| b.state != BreakerState::Closed)
            .filter_map(|b| b.until)
            .filter(|u| *u > self.now)
            .min()
    }
}
