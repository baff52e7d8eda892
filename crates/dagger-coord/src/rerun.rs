//! Re-running a recorded run, whole or from a node ([`Coordinator::rerun`]),
//! as DBOS `fork_workflow`, Temporal reset or Dagster "re-execute from
//! failure" do: a new run of the recorded definition that reuses the
//! recorded outputs of every node not downstream of the chosen node.
//!
//! The new run is created with its lineage (parent run, forked-from node),
//! the node records of the reused nodes are copied into it (their outputs
//! referenced, not recomputed), and the resume path drives it from there.

use crate::cancel::RunCancel;
use crate::coordinator::Coordinator;
use crate::error::CoordError;
use crate::ownership;
use crate::persist;
use crate::report::DagExecutionReport;
use dagger_core::store::{NodeRunRecord, RunLineage, RunOwner, RunRecord};
use dagger_core::{Cache, NodeId, NodeStatus, RunId, RunStatus, now_millis};
use dagger_dag_flow::{DagExecutor, NodeDef, WorkflowDef};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// What to re-run: a recorded run, optionally from one of its nodes and with
/// changed inputs. See [`Coordinator::rerun`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RerunRequest {
    /// The recorded run to re-run (the parent).
    pub parent_run_id: String,
    /// Re-run this node and everything downstream of it, reusing the rest;
    /// `None` re-runs every node.
    pub from_node: Option<String>,
    /// Inputs that replace (or add to) the parent's inputs.
    pub inputs: Map<String, Value>,
    /// The new run's id (`None`: a new UUID v7).
    pub run_id: Option<String>,
}

impl RerunRequest {
    /// A re-run of every node of `parent_run_id` with its inputs.
    pub fn new(parent_run_id: impl Into<String>) -> Self {
        Self {
            parent_run_id: parent_run_id.into(),
            ..Self::default()
        }
    }

    /// Re-runs from `node` (it and its descendants run, the rest is reused).
    pub fn from_node(mut self, node: impl Into<String>) -> Self {
        self.from_node = Some(node.into());
        self
    }

    /// Gives input `name` the value `value` in the new run.
    pub fn input(mut self, name: impl Into<String>, value: Value) -> Self {
        self.inputs.insert(name.into(), value);
        self
    }

    /// Names the new run.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }
}

/// Which nodes of the parent a re-run reuses, and the definition it runs.
#[derive(Debug)]
struct Plan {
    /// Static nodes, unchanged.
    wf: WorkflowDef,
    /// Nodes added at run time that the re-run keeps.
    added: Vec<NodeDef>,
    /// Ids of the nodes whose records (and outputs) are reused.
    reused: HashSet<String>,
}

/// Decides what a re-run reuses. A node is reused when it completed in the
/// parent and nothing that runs again is upstream of it: it is not `from`,
/// no dependency of it runs again, and it reads no run input whose value
/// changed. Failed, skipped, cancelled, waiting and unfinished nodes run
/// again, and so does everything downstream of them. Without `from` nothing
/// is reused. A node added at run time is kept only when every dependency
/// is reused (else whatever added it runs again and may add it again).
fn plan(
    wf: WorkflowDef,
    added: Vec<NodeDef>,
    records: &HashMap<String, Vec<NodeRunRecord>>,
    from: Option<&str>,
    changed_inputs: &HashSet<String>,
) -> Plan {
    let Some(from) = from else {
        return Plan {
            wf,
            added: Vec::new(),
            reused: HashSet::new(),
        };
    };
    let all: Vec<&NodeDef> = wf.nodes.iter().chain(added.iter()).collect();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in &all {
        for d in &n.dependencies {
            dependents
                .entry(d.as_str())
                .or_default()
                .push(n.id.as_str());
        }
    }
    let completed = |id: &str| {
        records.get(id).is_some_and(|recs| {
            recs.iter()
                .any(|r| r.invocation_key.is_empty() && r.state == NodeStatus::Completed)
        })
    };
    let reads_changed = |n: &NodeDef| {
        let refs = n
            .inputs
            .iter()
            .filter_map(|i| i.reference.as_deref())
            .chain(n.map_over.as_deref())
            .chain(n.when.as_deref());
        refs.filter_map(dagger_core::InputSpec::split_reference)
            .any(|(ns, key)| ns == "inputs" && changed_inputs.contains(key))
    };
    let mut again: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = all
        .iter()
        .filter(|n| n.id == from || !completed(&n.id) || reads_changed(n))
        .map(|n| n.id.as_str())
        .collect();
    while let Some(id) = queue.pop_front() {
        if again.insert(id) {
            queue.extend(dependents.get(id).into_iter().flatten().copied());
        }
    }
    let reused: HashSet<String> = all
        .iter()
        .filter(|n| !again.contains(n.id.as_str()))
        .map(|n| n.id.clone())
        .collect();
    let added = added
        .into_iter()
        .filter(|n| n.dependencies.iter().all(|d| reused.contains(d)))
        .collect();
    Plan { wf, added, reused }
}

impl Coordinator {
    /// Starts a new run of run `request.parent_run_id`'s recorded definition
    /// (not the file, which may have changed) that reuses the recorded
    /// outputs of every node not downstream of `request.from_node`, with the
    /// parent's inputs changed by `request.inputs`; `from_node: None` runs
    /// every node again. Reused nodes are the parent's completed nodes with
    /// nothing re-run upstream of them; a node reading a run input whose
    /// value changed runs again too, as does everything downstream of a
    /// failed, skipped or unfinished node (see the module docs).
    ///
    /// The new run records its lineage ([`RunLineage`]: parent and
    /// forked-from node); the parent is left as it was. Errors before
    /// anything is created: [`CoordError::RunNotFound`] for an unknown parent,
    /// [`CoordError::NodeNotFound`] (suggesting the closest id) for an unknown
    /// `from_node`, [`dagger_dag_flow::DagError::InvalidRunInputs`] when the
    /// inputs do not match the workflow's declared `inputs:`,
    /// [`CoordError::RunExists`] when `request.run_id` is taken.
    pub async fn rerun(
        &self,
        executor: &mut DagExecutor,
        cache: &Cache,
        request: &RerunRequest,
        cancel: impl Into<RunCancel>,
    ) -> Result<DagExecutionReport, CoordError> {
        let stores = executor.stores().clone();
        let parent_id = RunId::from(request.parent_run_id.as_str());
        let parent = stores
            .runs
            .get_run(&parent_id)
            .await?
            .ok_or_else(|| CoordError::RunNotFound(parent_id.to_string()))?;
        let (wf, added) = persist::parse_snapshot(parent_id.as_str(), &parent.definition)?;
        if let Some(from) = &request.from_node {
            let ids = || wf.nodes.iter().chain(added.iter()).map(|n| n.id.as_str());
            if !ids().any(|id| id == from) {
                return Err(CoordError::NodeNotFound {
                    run_id: parent_id.to_string(),
                    node_id: from.clone(),
                    suggestion: dagger_dag_flow::closest_name(from, ids()),
                });
            }
        }
        let mut inputs = match &parent.inputs {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        let mut changed = HashSet::new();
        for (k, v) in &request.inputs {
            if inputs.get(k) != Some(v) {
                changed.insert(k.clone());
            }
            inputs.insert(k.clone(), v.clone());
        }
        let inputs = dagger_dag_flow::apply_run_inputs(&wf, &inputs)?;
        let run_id = RunId::from(
            request
                .run_id
                .clone()
                .unwrap_or_else(|| RunId::generate().to_string())
                .as_str(),
        );
        if stores.runs.get_run(&run_id).await?.is_some() {
            return Err(CoordError::RunExists(run_id.to_string()));
        }
        let mut records: HashMap<String, Vec<NodeRunRecord>> = HashMap::new();
        for rec in stores.runs.node_runs(&parent_id).await? {
            records
                .entry(rec.node_id.to_string())
                .or_default()
                .push(rec);
        }
        let plan = plan(wf, added, &records, request.from_node.as_deref(), &changed);
        let added: Vec<Arc<NodeDef>> = plan.added.iter().cloned().map(Arc::new).collect();
        let now = now_millis();
        let owner = RunOwner {
            token: 1,
            ..ownership::new_owner(self.run_lease)
        };
        let record = RunRecord {
            run_id: run_id.clone(),
            workflow: parent.workflow.clone(),
            definition: persist::snapshot_json(&plan.wf, &added),
            inputs: Value::Object(inputs),
            config: parent.config.clone(),
            status: RunStatus::Running,
            reason: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            owner: Some(owner.clone()),
            lineage: Some(RunLineage {
                parent_run_id: parent_id.clone(),
                forked_from_node: request.from_node.as_deref().map(NodeId::from),
            }),
        };
        stores.runs.create_run(record.clone()).await?;
        for id in &plan.reused {
            for rec in records.remove(id).unwrap_or_default() {
                let mut copy = rec;
                copy.run_id = run_id.clone();
                if let Value::Object(meta) = &mut copy.metadata {
                    meta.insert("reused_from".into(), Value::from(parent_id.as_str()));
                    // The signal a reused wait took is the parent's (signals
                    // are numbered per run): none of the new run's is taken.
                    meta.remove("signal_seq");
                } else {
                    copy.metadata = serde_json::json!({ "reused_from": parent_id.as_str() });
                }
                stores.runs.put_node_run(copy).await?;
            }
        }
        stores.runs.flush().await?;
        tracing::info!(
            run_id = %run_id,
            parent = %parent_id,
            reused = plan.reused.len(),
            "re-running a recorded run"
        );
        self.resume_owned(executor, cache, &record, &owner, cancel.into())
            .await
    }
}
