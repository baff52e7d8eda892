//! Runs, node runs, control requests, artifacts and cache snapshots in memory.

use super::MemoryStore;
use crate::error::StoreError;
use crate::ids::RunId;
use crate::status::NodeStatus;
use crate::store::{
    ArtifactId, ArtifactStore, AttemptQuery, AttemptRecord, CacheSnapshotStore, ControlRequest,
    KeyedCreate, NodeRunRecord, PruneReport, RunClaim, RunOwner, RunQuery, RunRecord, RunStore,
    RunUpdate, SignalRecord, SnapshotEntry, stale_run_token,
};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Default)]
pub(super) struct RunTables {
    runs: BTreeMap<RunId, RunRecord>,
    /// Creation order, so listing is newest first without sorting by time ties.
    order: Vec<RunId>,
    node_runs: HashMap<RunId, BTreeMap<(String, String), NodeRunRecord>>,
    /// Every ended attempt, by node, invocation and attempt number.
    attempts: HashMap<RunId, BTreeMap<(String, String, u32), AttemptRecord>>,
    /// Each run's control requests with the time they were recorded (ms).
    controls: HashMap<RunId, Vec<(ControlRequest, i64)>>,
    /// Each run's signals, in order (sequence number = position + 1).
    signals: HashMap<RunId, Vec<SignalRecord>>,
    artifacts: HashMap<ArtifactId, Vec<u8>>,
    snapshots: HashMap<String, Vec<SnapshotEntry>>,
    /// The last fencing token of each run, kept after its owner released it.
    owner_tokens: HashMap<RunId, u64>,
    /// Idempotency keys: (workflow, key) to the run they name.
    keys: HashMap<(String, String), RunId>,
}

/// Removes the runs that finished before `cutoff_ms` with everything of
/// theirs and the artifacts only they used, adding the counts to `report`
/// (with `dry_run`, counting only).
pub(super) fn prune(t: &mut RunTables, cutoff_ms: i64, dry_run: bool, report: &mut PruneReport) {
    let gone: HashSet<RunId> = t
        .runs
        .values()
        .filter(|r| r.status.is_terminal() && r.finished_at.unwrap_or(r.updated_at) < cutoff_ms)
        .map(|r| r.run_id.clone())
        .collect();
    let outputs = |t: &RunTables, id: &RunId| -> Vec<ArtifactId> {
        let nodes = t.node_runs.get(id).into_iter().flat_map(|m| m.values());
        let attempts = t.attempts.get(id).into_iter().flat_map(|m| m.values());
        nodes
            .filter_map(|n| n.output_artifact_id.clone())
            .chain(attempts.filter_map(|a| a.output_artifact_id.clone()))
            .collect()
    };
    let kept: HashSet<ArtifactId> = t
        .runs
        .keys()
        .filter(|id| !gone.contains(*id))
        .flat_map(|id| outputs(t, id))
        .collect();
    let artifacts: HashSet<ArtifactId> = gone
        .iter()
        .flat_map(|id| outputs(t, id))
        .filter(|a| !kept.contains(a) && t.artifacts.contains_key(a))
        .collect();
    report.runs += gone.len() as u64;
    report.artifacts += artifacts.len() as u64;
    for id in &gone {
        report.node_runs += t.node_runs.get(id).map_or(0, |m| m.len() as u64);
        report.node_attempts += t.attempts.get(id).map_or(0, |m| m.len() as u64);
        report.snapshots += t.snapshots.get(id.as_str()).map_or(0, |v| v.len() as u64);
    }
    report.run_keys += t.keys.values().filter(|r| gone.contains(*r)).count() as u64;
    if dry_run {
        return;
    }
    for id in &gone {
        t.runs.remove(id);
        t.node_runs.remove(id);
        t.attempts.remove(id);
        t.controls.remove(id);
        t.signals.remove(id);
        t.snapshots.remove(id.as_str());
        t.owner_tokens.remove(id);
    }
    t.order.retain(|id| !gone.contains(id));
    t.keys.retain(|_, r| !gone.contains(r));
    t.artifacts.retain(|a, _| !artifacts.contains(a));
}

fn apply_update(run: &mut RunRecord, update: RunUpdate) {
    if let Some(s) = update.status {
        run.status = s;
    }
    if let Some(r) = update.reason {
        run.reason = r;
    }
    if let Some(d) = update.definition {
        run.definition = d;
    }
    if let Some(f) = update.finished_at {
        run.finished_at = f;
    }
    run.updated_at = crate::now_millis();
}

fn not_found(run_id: &RunId) -> StoreError {
    StoreError::NotFound {
        entity: "run",
        id: run_id.to_string(),
    }
}

fn insert_run(t: &mut RunTables, run: RunRecord) -> Result<(), StoreError> {
    if t.runs.contains_key(&run.run_id) {
        return Err(StoreError::AlreadyExists {
            entity: "run",
            id: run.run_id.to_string(),
        });
    }
    t.order.push(run.run_id.clone());
    if let Some(owner) = &run.owner {
        t.owner_tokens.insert(run.run_id.clone(), owner.token);
    }
    t.runs.insert(run.run_id.clone(), run);
    Ok(())
}

#[async_trait::async_trait]
impl RunStore for MemoryStore {
    async fn create_run(&self, run: RunRecord) -> Result<(), StoreError> {
        insert_run(&mut self.runs.lock(), run)
    }

    async fn create_keyed_run(
        &self,
        run: RunRecord,
        key: &str,
        replace: Option<&RunId>,
    ) -> Result<KeyedCreate, StoreError> {
        let mut t = self.runs.lock();
        let slot = (run.workflow.clone(), key.to_string());
        if let Some(bound) = t.keys.get(&slot)
            && Some(bound) != replace
        {
            return Ok(KeyedCreate::Existing(bound.clone()));
        }
        let run_id = run.run_id.clone();
        insert_run(&mut t, run)?;
        t.keys.insert(slot, run_id);
        Ok(KeyedCreate::Created)
    }

    async fn update_run(&self, run_id: &RunId, update: RunUpdate) -> Result<(), StoreError> {
        let mut t = self.runs.lock();
        let run = t.runs.get_mut(run_id).ok_or_else(|| not_found(run_id))?;
        apply_update(run, update);
        Ok(())
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.runs.lock().runs.get(run_id).cloned())
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        let t = self.runs.lock();
        Ok(t.order
            .iter()
            .rev()
            .filter_map(|id| t.runs.get(id))
            .filter(|r| query.status.is_none_or(|s| r.status == s))
            .filter(|r| query.workflow.as_ref().is_none_or(|w| &r.workflow == w))
            .skip(query.offset)
            .take(query.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn put_node_run(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        let mut t = self.runs.lock();
        if !t.runs.contains_key(&record.run_id) {
            return Err(StoreError::NotFound {
                entity: "run",
                id: record.run_id.to_string(),
            });
        }
        let key = (record.node_id.to_string(), record.invocation_key.clone());
        t.node_runs
            .entry(record.run_id.clone())
            .or_default()
            .insert(key, record);
        Ok(())
    }

    async fn put_attempt(&self, record: AttemptRecord) -> Result<(), StoreError> {
        let mut t = self.runs.lock();
        if !t.runs.contains_key(&record.run_id) {
            return Err(not_found(&record.run_id));
        }
        let key = (
            record.node_id.to_string(),
            record.invocation_key.clone(),
            record.attempt,
        );
        t.attempts
            .entry(record.run_id.clone())
            .or_default()
            .insert(key, record);
        Ok(())
    }

    async fn attempts(
        &self,
        run_id: &RunId,
        query: &AttemptQuery,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut out: Vec<AttemptRecord> = self
            .runs
            .lock()
            .attempts
            .get(run_id)
            .map(|m| m.values().filter(|a| query.matches(a)).cloned().collect())
            .unwrap_or_default();
        crate::store::sort_attempts(&mut out);
        Ok(out)
    }

    async fn node_runs(&self, run_id: &RunId) -> Result<Vec<NodeRunRecord>, StoreError> {
        Ok(self
            .runs
            .lock()
            .node_runs
            .get(run_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn push_control(
        &self,
        run_id: &RunId,
        request: ControlRequest,
    ) -> Result<u64, StoreError> {
        let mut t = self.runs.lock();
        if !t.runs.contains_key(run_id) {
            return Err(StoreError::NotFound {
                entity: "run",
                id: run_id.to_string(),
            });
        }
        let list = t.controls.entry(run_id.clone()).or_default();
        for (i, (earlier, at_ms)) in list.iter().enumerate() {
            if let Some(e) =
                crate::store::decision_conflict(run_id, &request, i as u64 + 1, earlier, *at_ms)
            {
                return Err(e);
            }
        }
        list.push((request, crate::now_millis()));
        Ok(list.len() as u64)
    }

    async fn controls_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<(u64, ControlRequest)>, StoreError> {
        let t = self.runs.lock();
        Ok(t.controls
            .get(run_id)
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, (c, _))| (i as u64 + 1, c.clone()))
                    .filter(|(seq, _)| *seq > after)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn push_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<u64, StoreError> {
        let mut t = self.runs.lock();
        if !t.runs.contains_key(run_id) {
            return Err(StoreError::NotFound {
                entity: "run",
                id: run_id.to_string(),
            });
        }
        let list = t.signals.entry(run_id.clone()).or_default();
        let seq = list.len() as u64 + 1;
        list.push(SignalRecord {
            seq,
            name: name.to_string(),
            payload,
            sent_at: crate::now_millis(),
        });
        Ok(seq)
    }

    async fn signals_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<SignalRecord>, StoreError> {
        let t = self.runs.lock();
        Ok(t.signals
            .get(run_id)
            .map(|list| list.iter().filter(|s| s.seq > after).cloned().collect())
            .unwrap_or_default())
    }

    async fn find_memoized(
        &self,
        action: &str,
        input_hash: &str,
    ) -> Result<Option<ArtifactId>, StoreError> {
        let t = self.runs.lock();
        Ok(t.node_runs.values().flat_map(|m| m.values()).find_map(|r| {
            (r.state == NodeStatus::Completed
                && r.action == action
                && r.input_hash.as_deref() == Some(input_hash))
            .then(|| r.output_artifact_id.clone())
            .flatten()
        }))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn claim_run(
        &self,
        run_id: &RunId,
        owner: RunOwner,
        dead_owner: Option<&str>,
    ) -> Result<RunClaim, StoreError> {
        let now = crate::now_millis();
        let mut t = self.runs.lock();
        let t = &mut *t;
        let run = t.runs.get_mut(run_id).ok_or_else(|| not_found(run_id))?;
        if let Some(current) = run.live_owner(now)
            && dead_owner.is_none_or(|dead| dead != current.owner_id)
        {
            return Ok(RunClaim::Held(current.clone()));
        }
        let token = t.owner_tokens.entry(run_id.clone()).or_insert(0);
        *token += 1;
        let owner = RunOwner {
            token: *token,
            ..owner
        };
        run.owner = Some(owner.clone());
        run.updated_at = now;
        Ok(RunClaim::Claimed(owner))
    }

    async fn renew_run(
        &self,
        run_id: &RunId,
        token: u64,
        lease_expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut t = self.runs.lock();
        let current = t.owner_tokens.get(run_id).copied().unwrap_or(0);
        let run = t.runs.get_mut(run_id).ok_or_else(|| not_found(run_id))?;
        match &mut run.owner {
            Some(owner) if owner.token == token => {
                owner.lease_expires_at = lease_expires_at;
                Ok(())
            }
            _ => Err(stale_run_token(run_id, token, current)),
        }
    }

    async fn release_run(
        &self,
        run_id: &RunId,
        token: u64,
        update: RunUpdate,
    ) -> Result<(), StoreError> {
        let mut t = self.runs.lock();
        let current = t.owner_tokens.get(run_id).copied().unwrap_or(0);
        let run = t.runs.get_mut(run_id).ok_or_else(|| not_found(run_id))?;
        if run.owner.as_ref().is_none_or(|o| o.token != token) {
            return Err(stale_run_token(run_id, token, current));
        }
        run.owner = None;
        apply_update(run, update);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ArtifactStore for MemoryStore {
    async fn put_artifact(&self, bytes: Vec<u8>) -> Result<ArtifactId, StoreError> {
        let id = ArtifactId::of(&bytes);
        self.runs
            .lock()
            .artifacts
            .entry(id.clone())
            .or_insert(bytes);
        Ok(id)
    }

    async fn get_artifact(&self, id: &ArtifactId) -> Result<Vec<u8>, StoreError> {
        self.runs
            .lock()
            .artifacts
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::MissingArtifact {
                id: id.to_string(),
                path: "memory".into(),
            })
    }
}

#[async_trait::async_trait]
impl CacheSnapshotStore for MemoryStore {
    async fn append_snapshot(&self, scope: &str, entry: SnapshotEntry) -> Result<(), StoreError> {
        self.runs
            .lock()
            .snapshots
            .entry(scope.to_string())
            .or_default()
            .push(entry);
        Ok(())
    }

    async fn load_snapshot_chain(&self, scope: &str) -> Result<Vec<SnapshotEntry>, StoreError> {
        let t = self.runs.lock();
        let Some(list) = t.snapshots.get(scope) else {
            return Ok(Vec::new());
        };
        let start = list
            .iter()
            .rposition(|e| matches!(e, SnapshotEntry::Full { .. }))
            .unwrap_or(0);
        Ok(list[start..].to_vec())
    }
}
