//! Changing the store's schedule state through a [`Scheduler`]: pause,
//! resume, add and delete, checked against the schedules it knows (the
//! library form of `dagger schedule pause|resume|add|delete`). Every
//! scheduler on the store sees the change at its next tick; this one at
//! once (each call ends with a refresh).

use super::Scheduler;
use crate::error::CoordError;
use dagger_core::StoreError;
use dagger_dag_flow::{Schedule, ScheduleDef, ScheduleError, ScheduleSource};

impl Scheduler {
    /// Pauses schedule `name` (declared or stored) in the store, which
    /// overrides its definition's `paused:` for every scheduler on the store.
    pub async fn pause(&mut self, name: &str, now_ms: i64) -> Result<(), CoordError> {
        self.set_paused(name, true, now_ms).await
    }

    /// Resumes schedule `name` in the store (also one declared with
    /// `paused: true`); fires that fell while it was paused are not caught up.
    pub async fn resume(&mut self, name: &str, now_ms: i64) -> Result<(), CoordError> {
        self.set_paused(name, false, now_ms).await
    }

    async fn set_paused(
        &mut self,
        name: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<(), CoordError> {
        self.refresh(now_ms).await?;
        self.schedule(name)?;
        self.store.set_schedule_paused(name, paused, now_ms).await?;
        self.refresh(now_ms).await
    }

    /// Adds schedule `def` of workflow `workflow` (one this scheduler
    /// loads) to the store, checked as a `schedules:` entry is. A name this
    /// scheduler already has (declared or stored) is an error naming both.
    pub async fn add(
        &mut self,
        workflow: &str,
        def: ScheduleDef,
        now_ms: i64,
    ) -> Result<(), CoordError> {
        self.executor.workflow(workflow)?;
        let schedule = Schedule::new(workflow, def)?;
        self.refresh(now_ms).await?;
        let clash = |other: String| ScheduleError {
            schedule: schedule.name().to_string(),
            field: "name",
            message: format!("{other}; give the one of workflow `{workflow}` another name"),
        };
        if let Some(e) = self
            .entries()
            .find(|e| e.schedule.name() == schedule.name())
        {
            let other = match e.source {
                ScheduleSource::File => format!("declared in workflow `{}`", e.schedule.workflow),
                ScheduleSource::Store => {
                    format!("stored for workflow `{}`", e.schedule.workflow)
                }
            };
            return Err(clash(other).into());
        }
        let spec = serde_json::to_value(&schedule.def).map_err(|e| ScheduleError {
            schedule: schedule.name().to_string(),
            field: "name",
            message: e.to_string(),
        })?;
        match self
            .store
            .add_schedule(schedule.name(), workflow, spec, now_ms)
            .await
        {
            Err(StoreError::AlreadyExists { .. }) => {
                // Stored for a workflow this scheduler does not load.
                let holder = self
                    .store
                    .list_schedules()
                    .await?
                    .into_iter()
                    .find(|r| r.name == schedule.name())
                    .and_then(|r| r.workflow)
                    .unwrap_or_default();
                Err(clash(format!("stored for workflow `{holder}`")).into())
            }
            other => {
                other?;
                self.refresh(now_ms).await
            }
        }
    }

    /// Deletes the stored schedule `name`; a declared one is an error (edit
    /// its workflow), an unknown one [`CoordError::UnknownSchedule`].
    pub async fn delete(&mut self, name: &str, now_ms: i64) -> Result<(), CoordError> {
        self.refresh(now_ms).await?;
        if let Some(e) = self
            .entries()
            .find(|e| e.schedule.name() == name && e.source == ScheduleSource::File)
        {
            return Err(ScheduleError {
                schedule: name.to_string(),
                field: "name",
                message: format!(
                    "declared in workflow `{}`, not stored: edit the workflow to remove it",
                    e.schedule.workflow
                ),
            }
            .into());
        }
        if !self.store.delete_schedule(name).await? {
            return Err(CoordError::UnknownSchedule(name.to_string()));
        }
        self.refresh(now_ms).await
    }
}
