//! Worker mode: a [`TaskManager`] that takes part in every running job of
//! its store, including jobs other processes started.

use crate::error::TaskError;
use crate::manager::TaskManager;
use crate::ops;
use dagger_core::{JobId, JobStatus};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Changes arriving this close together are handled in one scan.
const COALESCE: Duration = Duration::from_millis(50);

impl TaskManager {
    /// Serves the store as a worker of the pool until `cancel` fires: every
    /// started, running job whose allowed agents include one of this
    /// manager's registered agents (or that allows any agent) is resumed
    /// here, as it appears, and this manager's workers claim its Ready
    /// tasks for the agents they have (tasks for other agents are left to
    /// other workers). New jobs are noticed through the store's change
    /// signal (Postgres: LISTEN/NOTIFY across processes), not by polling;
    /// a store without a signal is scanned once per heartbeat interval.
    ///
    /// Job loops started here keep running after `serve` returns, until
    /// their job ends or the runtime shuts down.
    pub async fn serve(&self, cancel: CancellationToken) -> Result<(), TaskError> {
        tokio::runtime::Handle::try_current().map_err(|_| TaskError::NoRuntime)?;
        let mut changes = self.store().change_signal();
        let fallback = self.inner.heartbeat.max(Duration::from_secs(1));
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Some(c) = &mut changes {
                c.borrow_and_update();
            }
            match self.resume_servable() {
                Ok(n) if n > 0 => tracing::info!(jobs = n, "serving new jobs"),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot list jobs to serve");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = cancel.cancelled() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            backoff = Duration::from_millis(50);
            let changed = async {
                let alive = match &mut changes {
                    Some(c) => c.changed().await.is_ok(),
                    None => false,
                };
                if alive {
                    tokio::time::sleep(COALESCE).await;
                } else {
                    tokio::time::sleep(fallback).await;
                }
            };
            tokio::select! {
                () = changed => {}
                () = cancel.cancelled() => return Ok(()),
            }
        }
    }

    /// Resumes the servable jobs this manager does not run yet; returns how many.
    fn resume_servable(&self) -> Result<usize, TaskError> {
        let mine = self.registry().names();
        let ids: Vec<JobId> = ops::read(self.store().as_ref(), |tx| {
            let mut ids = Vec::new();
            for id in tx.jobs_with_status(JobStatus::Running)? {
                let Some(job) = tx.job(&id)? else { continue };
                let usable = job
                    .allowed_agents
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|a| mine.contains(a)));
                if job.started && usable {
                    ids.push(id);
                }
            }
            Ok(ids)
        })?;
        let mut started = 0;
        for id in ids {
            if self.inner.jobs.lock().contains_key(&id) {
                continue;
            }
            self.resume_job(id.as_str())?;
            started += 1;
        }
        Ok(started)
    }
}
