//! Sending signals to runs (see `docs/signals.md`). A signal is stored with
//! its run ([`RunStore::push_signal`](dagger_core::store::RunStore::push_signal));
//! the process running the run reads it on its next control poll (or on
//! resume) and the machine hands it to a node that waits for it, now or
//! later. Checks made before storing, shared by the CLI, `dagger serve` and
//! library callers: the run exists and has not ended, a node of it waits for
//! a signal of this name, and the payload matches that node's `schema`.
//! Imports neither `run`, `exec` nor `machine`.

use crate::error::CoordError;
use crate::persist;
use dagger_core::store::RunQuery;
use dagger_core::{JsonSchema, NodeStatus, RunId, Stores};
use serde_json::Value;

/// A signal stored for a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignalSent {
    /// The run.
    pub run_id: String,
    /// The signal's sequence number in the run.
    pub seq: u64,
}

/// Sends signal `name` with `payload` to run `run_id`: checks it (see the
/// module's doc), stores it and returns its sequence number. A node waiting
/// for it takes it on the run's next control poll; a node that waits later
/// takes it then; a run not running now gets it when resumed.
///
/// Errors: [`CoordError::RunNotFound`], [`CoordError::RunEnded`],
/// [`CoordError::NoSignalWait`], [`CoordError::SignalRejected`] (naming the
/// run, the node and the signal).
pub async fn send_signal(
    stores: &Stores,
    run_id: impl Into<RunId>,
    name: &str,
    payload: Value,
) -> Result<u64, CoordError> {
    let run_id = run_id.into();
    let record = stores
        .runs
        .get_run(&run_id)
        .await?
        .ok_or_else(|| CoordError::RunNotFound(run_id.to_string()))?;
    if record.status.is_terminal() {
        return Err(CoordError::RunEnded {
            run_id: run_id.to_string(),
            status: record.status,
            what: format!("signal `{name}`"),
        });
    }
    let (wf, added) = persist::parse_snapshot(run_id.as_str(), &record.definition)?;
    check_payload(
        run_id.as_str(),
        wf.nodes.iter().chain(added.iter()),
        name,
        &payload,
    )?;
    match stores.runs.push_signal(&run_id, name, payload).await {
        Ok(seq) => Ok(seq),
        Err(dagger_core::StoreError::NotFound { entity: "run", .. }) => {
            Err(CoordError::RunNotFound(run_id.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends signal `name` to every unfinished run of `workflow` with a node
/// waiting for it now (`Waiting`, per its record), each checked as
/// [`send_signal`] does; returns the runs it was stored for, oldest run
/// first. A run whose node's schema refuses the payload is left out with a
/// warning in the log; whether a node takes the signal is its `match`'s say.
pub async fn broadcast_signal(
    stores: &Stores,
    workflow: &str,
    name: &str,
    payload: Value,
) -> Result<Vec<SignalSent>, CoordError> {
    let runs = stores
        .runs
        .list_runs(&RunQuery {
            workflow: Some(workflow.to_string()),
            ..Default::default()
        })
        .await?;
    let mut sent = Vec::new();
    for run in runs.into_iter().rev() {
        if run.status.is_terminal() {
            continue;
        }
        let waits = stores.runs.node_runs(&run.run_id).await?.iter().any(|r| {
            r.state == NodeStatus::Waiting
                && r.metadata.get("signal").and_then(Value::as_str) == Some(name)
        });
        if !waits {
            continue;
        }
        match send_signal(stores, run.run_id.clone(), name, payload.clone()).await {
            Ok(seq) => sent.push(SignalSent {
                run_id: run.run_id.to_string(),
                seq,
            }),
            Err(e @ CoordError::SignalRejected { .. }) => {
                tracing::warn!(error = %e, "broadcast signal not sent to a run");
            }
            // The run ended between the listing and the send.
            Err(CoordError::RunEnded { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// The payload suits at least one node that waits for `name` (no schema,
/// or a schema it matches).
fn check_payload<'a>(
    run_id: &str,
    nodes: impl Iterator<Item = &'a dagger_dag_flow::NodeDef>,
    name: &str,
    payload: &Value,
) -> Result<(), CoordError> {
    let mut refusal = None;
    for node in nodes {
        let Some(w) = node.wait_for.as_ref().filter(|w| w.signal == name) else {
            continue;
        };
        let Some(schema) = &w.schema else {
            return Ok(());
        };
        let problem = match JsonSchema::compile(schema, Some(&node.id)) {
            Ok(s) => match s.validate(payload) {
                Ok(()) => return Ok(()),
                Err(v) => v.to_string(),
            },
            Err(e) => e.to_string(),
        };
        refusal.get_or_insert(CoordError::SignalRejected {
            run_id: run_id.to_string(),
            node_id: node.id.clone(),
            signal: name.to_string(),
            message: problem,
        });
    }
    Err(refusal.unwrap_or_else(|| CoordError::NoSignalWait {
        run_id: run_id.to_string(),
        signal: name.to_string(),
    }))
}
