//! What an executor remembers of the runs it made: the latest run of each
//! workflow, as the coordinator left it when the run returned. The
//! seed guide's executor-level calls (`is_paused`, `get_execution_metrics`,
//! `get_node_state`, a DOT of the last run) read it; the run's report
//! (`DagExecutionReport` in `dagger-coord`) stays the primary source.

use crate::dot::{NodeRunView, serialize_run_to_dot};
use crate::error::DagError;
use crate::executor::DagExecutor;
use dagger_core::{NodeStatus, RunId, RunStatus};
use std::time::Duration;

/// The latest run of a workflow made through this executor.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    /// The run.
    pub run_id: RunId,
    /// How it ended (or stopped: `Paused`, `WaitingForHuman`).
    pub status: RunStatus,
    /// Aggregates.
    pub metrics: RunMetrics,
    /// Each node's outcome, in definition order (added nodes last).
    pub nodes: Vec<NodeRunView>,
}

/// Aggregates of a run, in the seed guide's shape (the report's
/// `ExecutionMetrics` has the same numbers in milliseconds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunMetrics {
    /// Average time of the nodes that ran.
    pub avg_node_time: Duration,
    /// The slowest node's id (empty when no node ran).
    pub slowest_node: String,
    /// The slowest node's time.
    pub slowest_node_time: Duration,
    /// Share of the nodes that ran whose output was reused from an earlier
    /// execution (memoization), in `[0, 1]`.
    pub cache_hit_rate: f64,
    /// Completed nodes.
    pub nodes_completed: usize,
    /// Failed nodes.
    pub nodes_failed: usize,
}

/// One node of the latest run, in the seed guide's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// Its status when the run returned.
    pub status: NodeStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, for a failed node.
    pub last_error: Option<String>,
    /// Time spent running, once known.
    pub duration: Option<Duration>,
}

impl DagExecutor {
    /// Records `run` as the latest run of workflow `dag` (the coordinator
    /// calls this when a run returns).
    pub fn record_last_run(&self, dag: &str, run: LastRun) {
        let mut runs = self.last_runs.write();
        runs.latest = Some(dag.to_string());
        runs.by_workflow
            .insert(dag.to_string(), std::sync::Arc::new(run));
    }

    /// The latest run of workflow `dag` made through this executor (or a
    /// clone of it).
    pub fn last_run(&self, dag: &str) -> Option<std::sync::Arc<LastRun>> {
        self.last_runs.read().by_workflow.get(dag).cloned()
    }

    /// The workflow and latest run of whichever workflow ran last.
    pub fn latest_run(&self) -> Option<(String, std::sync::Arc<LastRun>)> {
        let runs = self.last_runs.read();
        let name = runs.latest.clone()?;
        let run = runs.by_workflow.get(&name)?.clone();
        Some((name, run))
    }

    /// Whether the latest run made through this executor stopped paused
    /// (a failure under `OnFailure::Pause`, a budget, a human timeout): it
    /// waits for `resume_from_pause`.
    pub fn is_paused(&self) -> bool {
        self.latest_run()
            .is_some_and(|(_, run)| run.status == RunStatus::Paused)
    }

    fn ran(&self, dag: &str) -> Result<std::sync::Arc<LastRun>, DagError> {
        self.workflow(dag)?;
        self.last_run(dag)
            .ok_or_else(|| DagError::NotRun(dag.to_string()))
    }

    /// The metrics of the latest run of workflow `dag`. Primary form: the
    /// run's report (`report.get_execution_metrics()`).
    pub fn get_execution_metrics(&self, dag: &str) -> Result<RunMetrics, DagError> {
        Ok(self.ran(dag)?.metrics.clone())
    }

    /// Node `node_id` in the latest run of workflow `dag`. Primary form: the
    /// run's report (`report.get_node_state(id)`).
    pub fn get_node_state(&self, dag: &str, node_id: &str) -> Result<NodeState, DagError> {
        let run = self.ran(dag)?;
        let view = run
            .nodes
            .iter()
            .find(|n| n.node_id == node_id)
            .ok_or_else(|| DagError::UnknownNode {
                dag: dag.to_string(),
                node: node_id.to_string(),
            })?;
        Ok(NodeState {
            status: view.status,
            attempts: view.attempts,
            last_error: view.error.clone(),
            duration: view.duration_ms.map(Duration::from_millis),
        })
    }

    /// Workflow `name` as DOT: with each node's state in the latest run when
    /// this executor ran it (nodes added while it ran included), otherwise
    /// the definition (see [`crate::serialize_tree_to_dot`]).
    pub async fn serialize_tree_to_dot(&self, name: &str) -> Result<String, DagError> {
        let def = &self.workflow(name)?.def;
        Ok(match self.last_run(name) {
            Some(run) => serialize_run_to_dot(def, &run.nodes),
            None => crate::dot::serialize_tree_to_dot(def),
        })
    }
}
