//! What a run produced: per-node outcomes, the run's status and metrics.

use crate::error::RunFailed;
use dagger_core::{NodeId, NodeStatus, RunStatus};
use dagger_dag_flow::{LastRun, NodeRunView, RunMetrics};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The outcome of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's id (shared with the run's other views of the node:
    /// building a report copies no string).
    pub id: NodeId,
    /// Its action (one shared name for every node of the action).
    pub action: Arc<str>,
    /// Its final (or current, for a paused run) status.
    pub status: NodeStatus,
    /// Attempts made (for a fanned-out node: the most any invocation made).
    pub attempts: u32,
    /// Time from first start to end, in milliseconds.
    pub duration_ms: Option<u64>,
    /// The error, or why the node was skipped or cancelled.
    pub error: Option<String>,
    /// The output was reused from an earlier execution.
    pub cache_hit: bool,
    /// The node was added by a hook while the run went on.
    pub added_at_runtime: bool,
    /// A `Waiting` node (timer, or signal wait with a timeout): when it
    /// wakes up (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<i64>,
    /// A `Waiting` node of `wait_for`: the signal it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// Aggregates over a run's nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionMetrics {
    /// Nodes in the run.
    pub nodes_total: usize,
    /// Completed nodes.
    pub nodes_completed: usize,
    /// Failed nodes.
    pub nodes_failed: usize,
    /// Skipped nodes.
    pub nodes_skipped: usize,
    /// Cancelled nodes.
    pub nodes_cancelled: usize,
    /// Attempts beyond the first, over all nodes.
    pub retries: u64,
    /// Nodes whose output came from memoization.
    pub cache_hits: u64,
    /// Average node duration in milliseconds (over nodes that ran).
    pub average_node_ms: f64,
    /// The slowest node and its duration in milliseconds.
    pub slowest_node: Option<(String, u64)>,
    /// Tokens reported by actions.
    pub tokens: u64,
    /// Node executions started (attempts and fan-out invocations).
    pub iterations: u64,
}

/// The result of a run.
///
/// Running returns `Ok(report)` for every run that *ran*, however it ended:
/// check [`Self::status`] (or [`Self::succeeded`]), or turn the report into
/// a `Result` with [`Self::into_result`], which is an error unless the run
/// completed. The type is `#[must_use]`, so `run_parallel(..).await?;`
/// (dropping the report) is a warning, an error under `-D warnings`:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # async fn seed(ex: &mut dagger_coord::DagExecutor) -> Result<(), dagger_coord::CoordError> {
/// // A failed run would print "done": this does not compile.
/// dagger_coord::execute_dag(ex, &dagger_coord::Cache::new(), "w").await?;
/// println!("done");
/// # Ok(())
/// # }
/// ```
///
/// Write instead:
///
/// ```
/// #![deny(unused_must_use)]
/// # async fn seed(ex: &mut dagger_coord::DagExecutor) -> Result<(), dagger_coord::CoordError> {
/// // A run that did not complete is an error (`CoordError::RunFailed`).
/// let report = dagger_coord::execute_dag(ex, &dagger_coord::Cache::new(), "w")
///     .await?
///     .into_result()?;
/// println!("done: {} nodes", report.completed_nodes());
/// # Ok(())
/// # }
/// ```
#[must_use = "a run may have failed, been cancelled or paused: check `status`, or use `let report = ….into_result()?`"]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagExecutionReport {
    /// The run.
    pub run_id: String,
    /// The workflow.
    pub dag_name: String,
    /// How the run ended (or stopped, for Paused/WaitingForHuman).
    pub status: RunStatus,
    /// Why, when not a plain success.
    pub reason: Option<String>,
    /// Per-node outcomes, in definition order (added nodes last).
    pub nodes: Vec<NodeReport>,
    /// Wall time of this execution in milliseconds.
    pub duration_ms: u64,
    /// Aggregates.
    pub metrics: ExecutionMetrics,
    /// Completed nodes: `metrics.nodes_completed` again, as the field the
    /// seed guide reads (`report.completed_nodes`); prefer
    /// [`Self::completed_nodes`]`()` or the metrics.
    #[serde(default)]
    pub completed_nodes: usize,
    /// True when this execution resumed an earlier one.
    pub resumed: bool,
    /// The outputs of the completed nodes, by node id (each an object of
    /// the node's output keys). Filled for runs started with
    /// [`crate::Coordinator::start`]; the seed-shaped calls (`run_parallel`,
    /// `execute_dag`, `resume`, `rerun`) leave it empty, as their caller
    /// holds the cache the outputs are in.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Map<String, Value>,
}

impl DagExecutionReport {
    /// Whether the run completed.
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Completed
    }

    /// `Ok(self)` when the run completed; otherwise (failed, cancelled,
    /// paused, waiting for a human) a [`RunFailed`] that carries the report
    /// and displays the run, its status, its reason and the first failed
    /// node with its error. Converts into [`crate::CoordError`] with `?`.
    pub fn into_result(self) -> Result<Self, RunFailed> {
        if self.succeeded() {
            Ok(self)
        } else {
            Err(RunFailed {
                report: Box::new(self),
            })
        }
    }

    /// The first node (in definition order) that failed, if any.
    pub fn first_failure(&self) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.status == NodeStatus::Failed)
    }

    /// The outputs of node `id` (an object of its output keys), when it
    /// completed and the report carries outputs (see [`Self::outputs`]).
    pub fn output(&self, id: &str) -> Option<&Value> {
        self.outputs.get(id)
    }

    /// Output `key` of node `id`, read as a `T`; `None` when absent or not a `T`.
    pub fn output_as<T: serde::de::DeserializeOwned>(&self, id: &str, key: &str) -> Option<T> {
        T::deserialize(self.output(id)?.get(key)?).ok()
    }

    /// Fills [`Self::outputs`] from `cache`, where the run put them: the
    /// namespace of each completed node.
    pub(crate) fn collect_outputs(&mut self, cache: &dagger_core::Cache) {
        for n in &self.nodes {
            if n.status == NodeStatus::Completed
                && let Some(out) = cache.namespace(n.id.as_str())
            {
                self.outputs.insert(n.id.to_string(), Value::Object(out));
            }
        }
    }

    /// The outcome of node `id`.
    pub fn get_node_state(&self, id: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The run's metrics.
    pub fn get_execution_metrics(&self) -> &ExecutionMetrics {
        &self.metrics
    }

    /// Number of completed nodes.
    pub fn completed_nodes(&self) -> usize {
        self.metrics.nodes_completed
    }

    /// What the executor keeps of this run ([`dagger_dag_flow::DagExecutor::last_run`]):
    /// status, node states and the metrics in the seed guide's shape.
    pub fn last_run(&self) -> LastRun {
        let m = &self.metrics;
        let ran = self
            .nodes
            .iter()
            .filter(|n| n.duration_ms.is_some() || n.cache_hit)
            .count();
        let (slowest_node, slowest_ms) = m.slowest_node.clone().unwrap_or_default();
        LastRun {
            run_id: self.run_id.as_str().into(),
            status: self.status,
            metrics: RunMetrics {
                avg_node_time: Duration::from_secs_f64(m.average_node_ms.max(0.0) / 1000.0),
                slowest_node,
                slowest_node_time: Duration::from_millis(slowest_ms),
                cache_hit_rate: if ran == 0 {
                    0.0
                } else {
                    (m.cache_hits as f64 / ran as f64).min(1.0)
                },
                nodes_completed: m.nodes_completed,
                nodes_failed: m.nodes_failed,
            },
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeRunView {
                    node_id: n.id.clone(),
                    status: n.status,
                    attempts: n.attempts,
                    duration_ms: n.duration_ms,
                    error: (n.status == NodeStatus::Failed)
                        .then(|| n.error.clone())
                        .flatten(),
                    added_at_runtime: n.added_at_runtime,
                    reason: (n.status != NodeStatus::Failed)
                        .then(|| n.error.clone())
                        .flatten(),
                })
                .collect(),
        }
    }
}

pub(crate) fn metrics_for(nodes: &[NodeReport], tokens: u64, iterations: u64) -> ExecutionMetrics {
    let mut m = ExecutionMetrics {
        nodes_total: nodes.len(),
        tokens,
        iterations,
        ..Default::default()
    };
    let mut total_ms = 0u64;
    let mut timed = 0u64;
    let mut slowest: Option<(&NodeReport, u64)> = None;
    for n in nodes {
        match n.status {
            NodeStatus::Completed => m.nodes_completed += 1,
            NodeStatus::Failed => m.nodes_failed += 1,
            NodeStatus::Skipped => m.nodes_skipped += 1,
            NodeStatus::Cancelled => m.nodes_cancelled += 1,
            _ => {}
        }
        m.retries += u64::from(n.attempts.saturating_sub(1));
        m.cache_hits += u64::from(n.cache_hit);
        if let Some(d) = n.duration_ms {
            total_ms += d;
            timed += 1;
            if slowest.is_none_or(|(_, s)| d > s) {
                slowest = Some((n, d));
            }
        }
    }
    m.slowest_node = slowest.map(|(n, d)| (n.id.to_string(), d));
    if timed > 0 {
        m.average_node_ms = total_ms as f64 / timed as f64;
    }
    m
}
