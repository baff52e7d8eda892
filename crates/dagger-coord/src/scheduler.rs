//! The [`Scheduler`]: fires the schedules (`schedules:`) of an executor's
//! workflows. Each fire's run has an id and an idempotency key derived from
//! the schedule and the fire time, so of every scheduler on one store (in
//! one process or many) exactly one starts it; a fire missed while no
//! scheduler ran is started late, within the schedule's catch-up window.
//! At each tick the scheduler reads the store's schedule state: pauses and
//! resumes (which override a definition's `paused:`) and schedules added to
//! the store for its workflows.

mod admin;

use crate::coordinator::Coordinator;
use crate::error::CoordError;
use crate::handle::RunHandle;
use crate::request::RunRequest;
use dagger_core::store::{ControlRequest, RunQuery, ScheduleStore};
use dagger_core::{RunId, now_millis};
use dagger_dag_flow::{
    DagExecutor, Overlap, Schedule, ScheduleEntry, ScheduleError, effective_schedules,
};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What became of one fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The fire time (ms since the epoch).
    pub fire_ms: i64,
    /// The run of the fire (started here, or by another scheduler).
    pub run_id: String,
    /// What this scheduler did.
    pub outcome: FireOutcome,
}

/// What a scheduler did with a fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireOutcome {
    /// It started the run.
    Started,
    /// Another start (another process) had started it.
    Existing,
    /// It dropped the fire: an earlier run was unfinished (`skip`, or a
    /// later fire of a `buffer_one` schedule).
    Skipped,
}

/// One schedule and the fires it has not handled yet.
struct Slot {
    /// The schedule and its effective state.
    entry: ScheduleEntry,
    /// The next fire not yet due.
    next: Option<i64>,
    /// Due fires waiting for an earlier run to finish (`buffer_*`), oldest first.
    pending: VecDeque<i64>,
}

impl Slot {
    /// A schedule new to the scheduler: the fires of its catch-up window
    /// before `now_ms` are due.
    fn new(entry: ScheduleEntry, now_ms: i64) -> Self {
        let schedule = &entry.schedule;
        let next = schedule.next_fire(now_ms - schedule.catch_up_ms() - 1);
        Self {
            entry,
            next,
            pending: VecDeque::new(),
        }
    }
}

/// Fires the schedules of every workflow of an executor: see the module
/// documentation. `dagger serve` runs one; a library runs one with
/// [`Scheduler::run`].
pub struct Scheduler {
    coordinator: Coordinator,
    executor: DagExecutor,
    /// The schedules of the executor's workflow definitions.
    declared: Vec<Schedule>,
    /// The store's schedule state, read at each tick.
    store: Arc<dyn ScheduleStore>,
    slots: Vec<Slot>,
    /// When the last tick ran (ms since the epoch); fires due since then are
    /// on time, however late this tick wakes, so the catch-up window only
    /// judges fires missed while no tick ran.
    last_tick_ms: i64,
}

impl Scheduler {
    /// A scheduler of the schedules of `executor`'s workflows, which starts
    /// runs with `coordinator`. Fires from `now_ms` back to each schedule's
    /// catch-up window are due at the first [`Self::tick`]. A bad schedule,
    /// or two schedules of one name, is an error naming it. The store's
    /// schedule state (pauses, added schedules) is read by [`Self::refresh`]
    /// and at each tick.
    pub fn new(
        coordinator: Coordinator,
        executor: DagExecutor,
        now_ms: i64,
    ) -> Result<Self, CoordError> {
        let mut declared: Vec<Schedule> = Vec::new();
        for name in executor.list_dags() {
            let wf = executor.workflow(&name)?;
            for def in &wf.def.schedules {
                let schedule = Schedule::new(&name, def.clone())?;
                if declared.iter().any(|s| s.name() == schedule.name()) {
                    return Err(ScheduleError {
                        schedule: schedule.name().to_string(),
                        field: "name",
                        message: "two schedules have this name".into(),
                    }
                    .into());
                }
                declared.push(schedule);
            }
        }
        let (entries, _) = effective_schedules(&declared, &[], |_| false);
        let slots = entries.into_iter().map(|e| Slot::new(e, now_ms)).collect();
        Ok(Self {
            coordinator,
            store: executor.stores().schedules.clone(),
            executor,
            declared,
            slots,
            last_tick_ms: now_ms,
        })
    }

    /// The schedules, declared ones first in the order of their workflows,
    /// then those added to the store (as of the last refresh).
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.slots.iter().map(|s| &s.entry.schedule)
    }

    /// The schedules with their effective state (as of the last refresh).
    pub fn entries(&self) -> impl Iterator<Item = &ScheduleEntry> {
        self.slots.iter().map(|s| &s.entry)
    }

    /// Reads the store's schedule state: pauses and resumes, schedules
    /// added to the store for this scheduler's workflows (their first fires
    /// are those of their catch-up window before `now_ms`), and stored
    /// schedules deleted since. A stored schedule that cannot be read, or
    /// that has the name of a declared one, is logged and left out.
    pub async fn refresh(&mut self, now_ms: i64) -> Result<(), CoordError> {
        let stored = self.store.list_schedules().await?;
        let loaded = self.executor.list_dags();
        let (entries, problems) =
            effective_schedules(&self.declared, &stored, |w| loaded.iter().any(|l| l == w));
        for p in problems {
            tracing::warn!(error = %p, "stored schedule left out");
        }
        let mut old = std::mem::take(&mut self.slots);
        for entry in entries {
            let same = old.iter().position(|s| {
                s.entry.schedule.def == entry.schedule.def
                    && s.entry.schedule.workflow == entry.schedule.workflow
            });
            let slot = match same {
                Some(i) => {
                    let mut slot = old.swap_remove(i);
                    slot.entry = entry;
                    slot
                }
                None => Slot::new(entry, now_ms),
            };
            self.slots.push(slot);
        }
        for slot in &mut self.slots {
            if slot.entry.paused {
                slot.pending.clear();
            }
        }
        Ok(())
    }

    /// The earliest fire not yet due (ms since the epoch), if any.
    pub fn next_due(&self) -> Option<i64> {
        self.slots
            .iter()
            .filter(|s| !s.entry.paused)
            .filter_map(|s| s.next)
            .min()
    }

    /// Handles every fire due at `now_ms` (ms since the epoch) following each
    /// schedule's overlap policy, after a [`Self::refresh`]; returns what
    /// became of each. Fires of a paused schedule are passed over (not
    /// caught up on resume).
    pub async fn tick(&mut self, now_ms: i64) -> Result<Vec<Fired>, CoordError> {
        self.refresh(now_ms).await?;
        let mut fired = Vec::new();
        let since_last_tick = self.last_tick_ms.min(now_ms);
        self.last_tick_ms = now_ms;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let schedule = &slot.entry.schedule;
            let window_start = (now_ms - schedule.catch_up_ms()).min(since_last_tick);
            while let Some(at) = slot.next.filter(|at| *at <= now_ms) {
                if at >= window_start && !slot.entry.paused {
                    slot.pending.push_back(at);
                }
                slot.next = schedule.next_fire(at);
            }
            while let Some(&fire) = self.slots[i].pending.front() {
                let schedule = self.slots[i].entry.schedule.clone();
                let running = self.running(&schedule, fire).await?;
                let run_id = schedule.run_id(fire);
                let outcome = match (schedule.def.overlap, running.is_empty()) {
                    (Overlap::Skip, false) => FireOutcome::Skipped,
                    (Overlap::BufferOne, false) => {
                        // Keep the first waiting fire; drop the later ones.
                        for dropped in self.slots[i].pending.drain(1..) {
                            fired.push(Fired {
                                schedule: schedule.name().to_string(),
                                fire_ms: dropped,
                                run_id: schedule.run_id(dropped),
                                outcome: FireOutcome::Skipped,
                            });
                        }
                        break;
                    }
                    (Overlap::BufferAll, false) => break,
                    (Overlap::CancelOther, false) => {
                        for other in &running {
                            let reason = format!("replaced by `{run_id}` (overlap: cancel_other)");
                            self.executor
                                .stores()
                                .runs
                                .push_control(other, ControlRequest::Cancel { reason })
                                .await?;
                        }
                        self.start(&schedule, fire).await?.1
                    }
                    _ => self.start(&schedule, fire).await?.1,
                };
                self.slots[i].pending.pop_front();
                fired.push(Fired {
                    schedule: schedule.name().to_string(),
                    fire_ms: fire,
                    run_id,
                    outcome,
                });
            }
        }
        Ok(fired)
    }

    /// Ticks until `cancel` is cancelled, waking at each due fire (at least
    /// once a second, so buffered fires start soon after their wait ends).
    /// Runs started here go on in this process's runtime.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), CoordError> {
        loop {
            let now = now_millis();
            // A store error is logged and the tick tried again: one failed
            // query must not stop every schedule of the process for good.
            match self.tick(now).await {
                Ok(fired) => {
                    for f in fired {
                        tracing::info!(schedule = %f.schedule, fire_ms = f.fire_ms,
                            run_id = %f.run_id, outcome = ?f.outcome, "schedule fired");
                    }
                }
                Err(e) => tracing::error!(error = %e, "schedule tick failed; retrying"),
            }
            let wait = self
                .next_due()
                .map_or(1000, |at| (at - now_millis()).clamp(10, 1000));
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())) => {}
            }
        }
    }

    /// Starts a run of schedule `name` now (its inputs, its workflow), as a
    /// fire at `now_ms`, whatever its overlap policy and even when paused
    /// (a schedule added to the store is known after a [`Self::refresh`]);
    /// with the run's handle when this call started it (dropping the handle
    /// leaves the run going).
    pub async fn trigger(
        &self,
        name: &str,
        now_ms: i64,
    ) -> Result<(Fired, Option<RunHandle>), CoordError> {
        let schedule = self.schedule(name)?.clone();
        let (run_id, outcome, handle) = self.start_handle(&schedule, now_ms).await?;
        let fired = Fired {
            schedule: name.to_string(),
            fire_ms: now_ms,
            run_id,
            outcome,
        };
        Ok((fired, handle))
    }

    /// Starts the runs of schedule `name`'s fires in `from_ms..=to_ms`, at
    /// most `concurrency` at a time, and waits for them. A fire whose run
    /// exists already (fired before, or by another backfill) is not run
    /// again. The overlap policy does not apply.
    pub async fn backfill(
        &self,
        name: &str,
        from_ms: i64,
        to_ms: i64,
        concurrency: usize,
    ) -> Result<Vec<Fired>, CoordError> {
        let schedule = self.schedule(name)?.clone();
        let mut fired = Vec::new();
        let mut running: VecDeque<RunHandle> = VecDeque::new();
        for fire in schedule.fires_between(from_ms, to_ms) {
            if running.len() >= concurrency.max(1)
                && let Some(first) = running.pop_front()
            {
                let _ = first.await?; // its status is in its record
            }
            let (run_id, outcome, handle) = self.start_handle(&schedule, fire).await?;
            running.extend(handle);
            fired.push(Fired {
                schedule: name.to_string(),
                fire_ms: fire,
                run_id,
                outcome,
            });
        }
        for handle in running {
            let _ = handle.await?;
        }
        Ok(fired)
    }

    fn schedule(&self, name: &str) -> Result<&Schedule, CoordError> {
        self.schedules()
            .find(|s| s.name() == name)
            .ok_or_else(|| CoordError::UnknownSchedule(name.to_string()))
    }

    /// The unfinished runs of `schedule` other than the fire at `fire_ms`'s
    /// (a run whose process died, its lease lapsed by the clock, does not count).
    async fn running(&self, schedule: &Schedule, fire_ms: i64) -> Result<Vec<RunId>, CoordError> {
        let now_ms = now_millis();
        let prefix = format!("{}@", schedule.name());
        let own = schedule.run_id(fire_ms);
        let query = RunQuery {
            workflow: Some(schedule.workflow.clone()),
            limit: Some(256),
            ..RunQuery::default()
        };
        let runs = self.executor.stores().runs.list_runs(&query).await?;
        Ok(runs
            .into_iter()
            .filter(|r| r.run_id.as_str().starts_with(&prefix) && r.run_id.as_str() != own)
            .filter(|r| !r.status.is_terminal() && r.orphaned_since(now_ms).is_none())
            .map(|r| r.run_id)
            .collect())
    }

    /// Starts the run of `schedule`'s fire at `fire_ms` in the background.
    async fn start(
        &self,
        schedule: &Schedule,
        fire_ms: i64,
    ) -> Result<(String, FireOutcome), CoordError> {
        let (run_id, outcome, handle) = self.start_handle(schedule, fire_ms).await?;
        if let Some(handle) = handle {
            tokio::spawn(async move {
                let id = handle.id().to_string();
                if let Err(e) = handle.await {
                    tracing::warn!(run_id = %id, error = %e, "scheduled run failed");
                }
            });
        }
        Ok((run_id, outcome))
    }

    /// Starts the run of `schedule`'s fire at `fire_ms` under the fire's
    /// idempotency key; its handle when this call started it.
    async fn start_handle(
        &self,
        schedule: &Schedule,
        fire_ms: i64,
    ) -> Result<(String, FireOutcome, Option<RunHandle>), CoordError> {
        let run_id = schedule.run_id(fire_ms);
        let request = RunRequest::new(&schedule.workflow)
            .id(run_id.as_str())
            .inputs(Value::Object(schedule.def.inputs.clone()))
            .idempotency_key(schedule.key(fire_ms));
        match self.coordinator.start(&self.executor, request).await {
            Ok(handle) => Ok((run_id, FireOutcome::Started, Some(handle))),
            Err(CoordError::AlreadyStarted { .. } | CoordError::RunExists(_)) => {
                Ok((run_id, FireOutcome::Existing, None))
            }
            Err(e) => Err(e),
        }
    }
}
