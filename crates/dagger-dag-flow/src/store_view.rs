//! `executor.sqlite_cache`: the DAG Flow guide's handle on the store an
//! executor records in, with the guide's operations over the real tables
//! (runs, node runs, cache snapshots).

use crate::error::DagError;
use dagger_core::Stores;
use dagger_core::status::RunStatus;
use dagger_core::store::{NodeRunRecord, RunQuery, RunRecord, SnapshotEntry};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

/// One value of a cache delta: JSON (`SerializableData::String(..)`,
/// `SerializableData::from(3)`, any `serde_json::Value`).
pub type SerializableData = Value;

/// The store an executor records in, as the DAG Flow guide reaches it
/// (`executor.sqlite_cache`, whatever the backend). Cloning is cheap.
///
/// The primary API says the same with the executor and the coordinator:
/// [`crate::DagExecutor::save_cache_snapshot`] /
/// [`crate::DagExecutor::load_cache_snapshot`] for the cache, `dagger runs`
/// / `Coordinator::resume` for recorded runs.
#[derive(Debug, Clone)]
pub struct ExecutorStore {
    stores: Stores,
}

/// A recorded run and its nodes: what `load_execution_tree` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionTree {
    /// The run.
    pub run: RunRecord,
    /// Its nodes (one record per node and fan-out invocation).
    pub nodes: Vec<NodeRunRecord>,
}

impl ExecutorStore {
    pub(crate) fn new(stores: Stores) -> Self {
        Self { stores }
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Appends `delta` (namespace -> key -> value) to the cache history of
    /// `scope` (a workflow name or run id):
    /// [`crate::DagExecutor::load_cache_snapshot`] of the scope then has
    /// these values on top of what was saved before. Namespaces are
    /// appended in name order.
    pub async fn save_cache_delta(
        &self,
        scope: &str,
        delta: HashMap<String, HashMap<String, SerializableData>>,
    ) -> Result<(), DagError> {
        let mut namespaces: Vec<_> = delta.into_iter().collect();
        namespaces.sort_by(|a, b| a.0.cmp(&b.0));
        for (namespace, values) in namespaces {
            let data: Map<String, Value> = values.into_iter().collect();
            let entry = SnapshotEntry::Delta {
                namespace,
                data: Value::Object(data),
            };
            self.stores.snapshots.append_snapshot(scope, entry).await?;
        }
        Ok(())
    }

    /// The latest recorded run of `workflow` with its nodes, or `None`
    /// when the store records none (an in-memory executor records nothing).
    pub async fn load_execution_tree(
        &self,
        workflow: &str,
    ) -> Result<Option<ExecutionTree>, DagError> {
        let Some(run) = self.latest_run(workflow, |_| true).await? else {
            return Ok(None);
        };
        let nodes = self.stores.runs.node_runs(&run.run_id).await?;
        Ok(Some(ExecutionTree { run, nodes }))
    }

    /// The latest recorded run of `workflow` in `state`: `"active"` (not
    /// finished: pending, running, paused or waiting for a human — what a
    /// crash leaves behind, and what `Coordinator::resume` continues),
    /// `"latest"` (any), or a run status (`"Completed"`, `"failed"`, …,
    /// any case). `None` when there is no such run; an unknown state is
    /// refused.
    pub async fn load_execution_state(
        &self,
        workflow: &str,
        state: &str,
    ) -> Result<Option<RunRecord>, DagError> {
        let wanted: Box<dyn Fn(RunStatus) -> bool + Send + Sync> = match state {
            "active" => Box::new(|s: RunStatus| !s.is_terminal()),
            "latest" => Box::new(|_| true),
            other => {
                let status = ALL_STATUSES
                    .into_iter()
                    .find(|s| s.as_str().eq_ignore_ascii_case(other))
                    .ok_or_else(|| {
                        DagError::Refused(format!(
                            "unknown execution state `{other}`: expected `active`, `latest` or a run status ({})",
                            ALL_STATUSES.map(RunStatus::as_str).join(", ")
                        ))
                    })?;
                Box::new(move |s| s == status)
            }
        };
        self.latest_run(workflow, wanted).await
    }

    /// What the store holds, as text: every recorded run (newest first)
    /// with its status and nodes. For debugging; see
    /// [`Self::debug_print_db`].
    pub async fn debug_dump(&self) -> Result<String, DagError> {
        let runs = self.stores.runs.list_runs(&RunQuery::default()).await?;
        let mut out = format!("store {}: {} run(s)\n", self.stores.location, runs.len());
        for run in runs {
            let _ = writeln!(
                out,
                "run {} ({}): {}",
                run.run_id,
                run.workflow,
                run.status.as_str()
            );
            for node in self.stores.runs.node_runs(&run.run_id).await? {
                let _ = writeln!(
                    out,
                    "  node {}{}: {} (attempt {}){}",
                    node.node_id,
                    if node.invocation_key.is_empty() {
                        String::new()
                    } else {
                        format!("[{}]", node.invocation_key)
                    },
                    node.state.as_str(),
                    node.attempt,
                    node.error.map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
        }
        Ok(out)
    }

    /// Prints [`Self::debug_dump`] to standard output.
    pub async fn debug_print_db(&self) -> Result<(), DagError> {
        print!("{}", self.debug_dump().await?);
        Ok(())
    }

    /// The newest run of `workflow` whose status `wanted` accepts.
    async fn latest_run(
        &self,
        workflow: &str,
        wanted: impl Fn(RunStatus) -> bool,
    ) -> Result<Option<RunRecord>, DagError> {
        let query = RunQuery {
            workflow: Some(workflow.to_string()),
            ..RunQuery::default()
        };
        let runs = self.stores.runs.list_runs(&query).await?;
        Ok(runs.into_iter().find(|r| wanted(r.status)))
    }
}

/// Every run status, for parsing a state name.
const ALL_STATUSES: [RunStatus; 7] = [
    RunStatus::Pending,
    RunStatus::Running,
    RunStatus::Paused,
    RunStatus::WaitingForHuman,
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Cancelled,
];
