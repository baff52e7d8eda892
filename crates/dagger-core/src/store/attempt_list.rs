//! Listing a run's attempts: the attempt records, completed by the
//! successful attempts that only the node records hold.

use super::attempt::{AttemptLogs, AttemptOutcome, AttemptQuery, AttemptRecord, sort_attempts};
use super::run::{NodeRunRecord, RunStore};
use crate::ids::RunId;
use crate::{NodeStatus, StoreError};
use serde_json::Value;

/// Every attempt of a run that `query` selects: the attempt records, plus
/// one for each successful attempt that left none.
///
/// A successful attempt that logged nothing (no `ctx.log` line, no captured
/// stream) is not written as an attempt record: the node's own Completed
/// record already holds its number, times and output, and one row per
/// completion instead of two is what keeps recording cheap (see
/// docs/performance.md, "Per-attempt records"). Such an attempt is rebuilt
/// here from the node record. Nodes reused by a re-run (`reused_from` in their
/// metadata) ran in the parent run, not in this one, and give no attempt.
pub async fn list_attempts(
    runs: &dyn RunStore,
    run_id: &RunId,
    query: &AttemptQuery,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut attempts = runs.attempts(run_id, query).await?;
    let nodes = runs.node_runs(run_id).await?;
    add_final_successes(&mut attempts, &nodes, query);
    Ok(attempts)
}

/// Adds to `attempts` the successful attempts that `nodes` (a run's node
/// records) hold and `attempts` lacks (see [`list_attempts`]); keeps the
/// stores' order.
pub fn add_final_successes(
    attempts: &mut Vec<AttemptRecord>,
    nodes: &[NodeRunRecord],
    query: &AttemptQuery,
) {
    let before = attempts.len();
    for n in nodes {
        if n.state != NodeStatus::Completed
            || n.metadata.get("reused_from").is_some()
            || query.node_id.as_ref().is_some_and(|id| *id != n.node_id)
            || query.attempt.is_some_and(|a| a != n.attempt)
        {
            continue;
        }
        let recorded = attempts[..before].iter().any(|a| {
            a.node_id == n.node_id && a.invocation_key == n.invocation_key && a.attempt == n.attempt
        });
        if recorded {
            continue;
        }
        let finished_at = n.finished_at.unwrap_or_default();
        attempts.push(AttemptRecord {
            run_id: n.run_id.clone(),
            node_id: n.node_id.clone(),
            invocation_key: n.invocation_key.clone(),
            attempt: n.attempt,
            action: n.action.clone(),
            outcome: AttemptOutcome::Succeeded,
            error: None,
            output: Value::Null,
            output_artifact_id: n.output_artifact_id.clone(),
            started_at: n.started_at.unwrap_or(finished_at),
            finished_at,
            logs: AttemptLogs::default(),
        });
    }
    if attempts.len() > before {
        sort_attempts(attempts);
    }
}
