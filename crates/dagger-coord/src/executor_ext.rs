//! The seed guide's run calls on the executor itself (`execute_static_dag`,
//! `resume_from_pause`, `save_execution_snapshot`, `recover_from_snapshot`,
//! `resume_execution`): thin adapters over [`Coordinator::run_parallel`] and
//! [`Coordinator::resume`], in scope with `use dagger::prelude::*;`. They
//! answer `Ok` only for a run that completed; any other end is a
//! [`DagError`] naming the failed node, the timeout or the status, so a
//! `match` on the guide's error variants works. The primary forms are the
//! coordinator's calls and the report they return.

use crate::cancel::RunCancel;
use crate::coordinator::Coordinator;
use crate::error::{CoordError, RunFailed};
use crate::report::DagExecutionReport;
use dagger_core::store::SnapshotEntry;
use dagger_core::{Cache, Durability, NodeStatus, RunId, RunStatus};
use dagger_dag_flow::{ActionRegistry, DagError, DagExecutor, LastRun, StoreSource};
use std::future::Future;

/// The scope under which [`DagExecutorExt::save_execution_snapshot`] records
/// the run to recover for workflow `dag`.
fn checkpoint_scope(dag: &str) -> String {
    format!("execution:{dag}")
}

impl From<RunFailed> for DagError {
    /// A run that did not complete, as the seed guide's errors: the run's
    /// timeout is [`DagError::ExecutionTimeout`], a failed node
    /// [`DagError::NodeExecutionError`], anything else
    /// [`DagError::RunNotCompleted`].
    fn from(failed: RunFailed) -> Self {
        let r = &failed.report;
        let reason = r.reason.clone().unwrap_or_default();
        if r.status == RunStatus::Failed && reason.starts_with("run timed out") {
            return DagError::ExecutionTimeout(format!("run `{}`: {reason}", r.run_id));
        }
        if let Some(node) = r.first_failure()
            && r.status == RunStatus::Failed
        {
            return DagError::NodeExecutionError {
                node_id: node.id.to_string(),
                error: node.error.clone().unwrap_or_default(),
            };
        }
        DagError::RunNotCompleted {
            run_id: r.run_id.clone(),
            reason: match &r.reason {
                Some(why) => format!("{}: {why}", r.status),
                None => r.status.to_string(),
            },
        }
    }
}

impl From<CoordError> for DagError {
    /// The coordinator's errors as [`DagError`]s: unknown actions are a
    /// [`DagError::ValidationError`], a run that did not complete as in
    /// `From<RunFailed>`, refusals a [`DagError::Refused`].
    fn from(e: CoordError) -> Self {
        match e {
            CoordError::Dag(e) => e,
            CoordError::Store(e) => DagError::Store(e),
            CoordError::RunFailed(f) => f.into(),
            e @ CoordError::UnknownActions(_) => DagError::ValidationError(e.to_string()),
            e => DagError::Refused(e.to_string()),
        }
    }
}

/// The seed guide's run calls on [`DagExecutor`]. Each runs through a
/// hookless [`Coordinator`] and records the run as the executor's latest
/// ([`DagExecutor::last_run`], read by `is_paused`, `get_execution_metrics`
/// and `get_node_state`).
pub trait DagExecutorExt: Sized {
    /// Runs workflow `dag_name` under a fresh run id until it ends or
    /// `cancel` fires (a oneshot receiver or a cancellation token). `Ok`
    /// only when the run completed. Primary form:
    /// `Coordinator::run_parallel` (or `execute_dag`), which returns the
    /// report of any run that ran.
    ///
    /// Recovery (the DAG Flow guide's "Recovery from Failures"): when
    /// `dag_name` is not loaded in this executor but its store holds an
    /// unfinished run of it (paused, waiting, or left running by a process
    /// that died), that run is resumed instead, from its recorded
    /// definition: what had completed is not run again. Primary form:
    /// `Coordinator::resume` with the run's id.
    fn execute_static_dag(
        &mut self,
        dag_name: &str,
        cache: &Cache,
        cancel: impl Into<RunCancel> + Send,
    ) -> impl Future<Output = Result<DagExecutionReport, DagError>> + Send;

    /// Resumes the executor's latest run when it is paused
    /// ([`DagExecutor::is_paused`]): what had not completed runs again with
    /// `cache` (inputs a human added included). Refused when nothing is
    /// paused. Primary form: `Coordinator::resume(executor, cache, run_id, cancel)`.
    fn resume_from_pause(
        &mut self,
        cache: &Cache,
        cancel: impl Into<RunCancel> + Send,
    ) -> impl Future<Output = Result<DagExecutionReport, DagError>> + Send;

    /// Records a checkpoint of workflow `dag_name`: its latest run in this
    /// executor, which [`DagExecutorExt::recover_from_snapshot`] finds again in
    /// the same store. The run's progress itself is in the store already
    /// (every node's outcome is recorded as it happens); a store that
    /// records nothing (`Durability::Memory`) is refused.
    fn save_execution_snapshot(
        &self,
        dag_name: &str,
    ) -> impl Future<Output = Result<(), DagError>> + Send;

    /// An executor on `stores` (a location such as `"sqlite:workflows.db"`)
    /// that knows the run checkpointed for `dag_name`, ready for
    /// [`DagExecutorExt::resume_execution`]. The run's recorded definition
    /// is used; no YAML needs loading.
    fn recover_from_snapshot(
        dag_name: &str,
        registry: impl Into<ActionRegistry> + Send,
        stores: impl Into<StoreSource> + Send,
    ) -> impl Future<Output = Result<DagExecutor, DagError>> + Send;

    /// Resumes the executor's latest run (after `recover_from_snapshot`, the
    /// checkpointed one): only what had not completed runs. Primary form:
    /// `Coordinator::resume`.
    fn resume_execution(
        &self,
        cache: &Cache,
        cancel: impl Into<RunCancel> + Send,
    ) -> impl Future<Output = Result<DagExecutionReport, DagError>> + Send;
}

impl DagExecutorExt for DagExecutor {
    async fn execute_static_dag(
        &mut self,
        dag_name: &str,
        cache: &Cache,
        cancel: impl Into<RunCancel> + Send,
    ) -> Result<DagExecutionReport, DagError> {
        let cancel = cancel.into();
        if !self.has_dag(dag_name)
            && let Some(run) = self
                .sqlite_cache
                .load_execution_state(dag_name, "active")
                .await?
        {
            let report = Coordinator::default()
                .resume(self, cache, run.run_id, cancel)
                .await?;
            return Ok(report.into_result()?);
        }
        let report = Coordinator::default()
            .run_parallel(self, cache, dag_name, RunId::generate(), cancel)
            .await?;
        Ok(report.into_result()?)
    }

    async fn resume_from_pause(
        &mut self,
        cache: &Cache,
        cancel: impl Into<RunCancel> + Send,
    ) -> Result<DagExecutionReport, DagError> {
        let cancel = cancel.into();
        let run = match self.latest_run() {
            Some((_, run)) if run.status == RunStatus::Paused => run,
            Some((dag, run)) => {
                return Err(DagError::Refused(format!(
                    "nothing to resume: the latest run `{}` of workflow `{dag}` is {}, not paused",
                    run.run_id, run.status
                )));
            }
            None => {
                return Err(DagError::Refused(
                    "nothing to resume: this executor has made no run".into(),
                ));
            }
        };
        let report = Coordinator::default()
            .resume(self, cache, run.run_id.clone(), cancel)
            .await?;
        Ok(report.into_result()?)
    }

    async fn save_execution_snapshot(&self, dag_name: &str) -> Result<(), DagError> {
        self.workflow(dag_name)?;
        let run = self
            .last_run(dag_name)
            .ok_or_else(|| DagError::NotRun(dag_name.to_string()))?;
        if self.stores().durability == Durability::Memory {
            return Err(DagError::Refused(format!(
                "workflow `{dag_name}`: the store records nothing a recovery could use (durability memory); open a file store such as \"sqlite:workflows.db\""
            )));
        }
        let data = serde_json::json!({ "run_id": run.run_id.as_str() });
        self.stores()
            .snapshots
            .append_snapshot(&checkpoint_scope(dag_name), SnapshotEntry::Full { data })
            .await?;
        Ok(())
    }

    async fn recover_from_snapshot(
        dag_name: &str,
        registry: impl Into<ActionRegistry> + Send,
        stores: impl Into<StoreSource> + Send,
    ) -> Result<DagExecutor, DagError> {
        let executor = DagExecutor::new(None, registry, stores).await?;
        let scope = checkpoint_scope(dag_name);
        let mut run_id = None;
        for entry in executor
            .stores()
            .snapshots
            .load_snapshot_chain(&scope)
            .await?
        {
            if let SnapshotEntry::Full { data } = entry {
                run_id = data
                    .get("run_id")
                    .and_then(serde_json::Value::as_str)
                    .map(RunId::from);
            }
        }
        let run_id = run_id.ok_or_else(|| DagError::Snapshot {
            scope: scope.clone(),
            reason: "no execution snapshot saved for this workflow".into(),
        })?;
        let record = executor
            .stores()
            .runs
            .get_run(&run_id)
            .await?
            .ok_or_else(|| DagError::Snapshot {
                scope: scope.clone(),
                reason: format!("run `{run_id}` is not in the store"),
            })?;
        let nodes = executor
            .stores()
            .runs
            .node_runs(&run_id)
            .await?
            .into_iter()
            .filter(|n| n.invocation_key.is_empty())
            .map(|n| {
                let mut view = dagger_dag_flow::NodeRunView::new(n.node_id.as_str(), n.state);
                view.attempts = n.attempt;
                if n.state == NodeStatus::Failed {
                    view.error = n.error.clone();
                }
                view
            })
            .collect();
        executor.record_last_run(
            dag_name,
            LastRun {
                run_id,
                status: record.status,
                metrics: Default::default(),
                nodes,
            },
        );
        Ok(executor)
    }

    async fn resume_execution(
        &self,
        cache: &Cache,
        cancel: impl Into<RunCancel> + Send,
    ) -> Result<DagExecutionReport, DagError> {
        let cancel = cancel.into();
        let (_, run) = self.latest_run().ok_or_else(|| {
            DagError::Refused("nothing to resume: this executor knows no run".into())
        })?;
        let mut executor = self.clone();
        let report = Coordinator::default()
            .resume(&mut executor, cache, run.run_id.clone(), cancel)
            .await?;
        Ok(report.into_result()?)
    }
}
