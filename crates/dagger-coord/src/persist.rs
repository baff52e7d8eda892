//! What a run records beyond node attempts: the definition snapshot (with
//! nodes added at run time), and reading it all back to resume.

use crate::error::CoordError;
use dagger_core::store::{NodeRunRecord, SnapshotEntry};
use dagger_core::{Cache, NodeStatus, RunId, Stores};
use dagger_dag_flow::{NodeDef, WorkflowDef};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The definition as recorded: the workflow with every node (static and
/// added), and which were added at run time.
pub(crate) fn snapshot_json(wf: &WorkflowDef, added: &[Arc<NodeDef>]) -> Value {
    let added_ids: Vec<&str> = added.iter().map(|d| d.id.as_str()).collect();
    if added.is_empty() {
        // The usual case (every run's first snapshot): no copy of the workflow.
        return json!({ "workflow": wf, "added_at_runtime": added_ids });
    }
    let mut full = wf.clone();
    full.nodes.extend(added.iter().map(|d| (**d).clone()));
    json!({ "workflow": full, "added_at_runtime": added_ids })
}

/// Reads a snapshot back: the workflow with its static nodes, and the added nodes.
pub(crate) fn parse_snapshot(
    run_id: &str,
    v: &Value,
) -> Result<(WorkflowDef, Vec<NodeDef>), CoordError> {
    let corrupt = |reason: String| CoordError::CorruptRun {
        run_id: run_id.to_string(),
        reason,
    };
    if v.is_null() {
        return Err(corrupt(
            "no definition was recorded (the run's store has durability Memory)".into(),
        ));
    }
    let mut wf: WorkflowDef =
        serde_json::from_value(v.get("workflow").cloned().unwrap_or(Value::Null))
            .map_err(|e| corrupt(e.to_string()))?;
    let added: Vec<String> =
        serde_json::from_value(v.get("added_at_runtime").cloned().unwrap_or(json!([])))
            .map_err(|e| corrupt(e.to_string()))?;
    let (dynamic, statics): (Vec<NodeDef>, Vec<NodeDef>) = wf
        .nodes
        .drain(..)
        .partition(|n| added.iter().any(|a| a == &n.id));
    wf.nodes = statics;
    Ok((wf, dynamic))
}

/// A node's recorded progress, merged from its records.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorded {
    pub(crate) plain: Option<NodeRunRecord>,
    /// Completed fan-out invocations: index -> output.
    pub(crate) invocations: HashMap<u32, (u32, Value)>,
    pub(crate) invocation_attempts: HashMap<u32, u32>,
}

/// Loads every node record of a run, restoring completed outputs into `cache`.
pub(crate) async fn load_progress(
    stores: &Stores,
    run_id: &RunId,
    cache: &Cache,
) -> Result<HashMap<String, Recorded>, CoordError> {
    for entry in stores
        .snapshots
        .load_snapshot_chain(run_id.as_str())
        .await?
    {
        match entry {
            SnapshotEntry::Full { data } => {
                cache
                    .merge_json(&data)
                    .map_err(|e| CoordError::CorruptRun {
                        run_id: run_id.to_string(),
                        reason: e.to_string(),
                    })?
            }
            SnapshotEntry::Delta { namespace, data } => cache.insert_object(&namespace, &data),
        }
    }
    let mut out: HashMap<String, Recorded> = HashMap::new();
    for rec in stores.runs.node_runs(run_id).await? {
        let entry = out.entry(rec.node_id.to_string()).or_default();
        if rec.invocation_key.is_empty() {
            if rec.state == NodeStatus::Completed {
                let output = read_output(stores, &rec).await?;
                cache.insert_object(rec.node_id.as_str(), &output);
            }
            entry.plain = Some(rec);
        } else if let Ok(index) = rec.invocation_key.parse::<u32>() {
            entry.invocation_attempts.insert(index, rec.attempt);
            if rec.state == NodeStatus::Completed {
                let output = read_output(stores, &rec).await?;
                entry.invocations.insert(index, (rec.attempt, output));
            }
        }
    }
    Ok(out)
}

async fn read_output(stores: &Stores, rec: &NodeRunRecord) -> Result<Value, CoordError> {
    let Some(id) = &rec.output_artifact_id else {
        return Ok(Value::Null);
    };
    let bytes = stores.artifacts.get_artifact(id).await?;
    serde_json::from_slice(&bytes).map_err(|e| CoordError::CorruptRun {
        run_id: rec.run_id.to_string(),
        reason: format!(
            "output of node `{}` (artifact {id}) is not JSON: {e}",
            rec.node_id
        ),
    })
}
