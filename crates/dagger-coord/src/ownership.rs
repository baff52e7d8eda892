//! One owner per run. The process executing a run holds it with a lease in
//! the store (owner id, host, pid, expiry, fencing token) and renews it
//! every third of the lease. A run whose lease lapsed is *orphaned*: its
//! process died without recording an end, and a resume may take it over
//! (a compare-and-set that bumps the token). A process that finds its token
//! superseded stops the run: the store wrapper [`Fenced`] refuses its
//! further writes to the run, and its end is never recorded over the new
//! owner's (the release is fenced by the token too).

use async_trait::async_trait;
use dagger_core::store::{
    ArtifactId, ArtifactStore, AttemptQuery, AttemptRecord, CacheSnapshotStore, ControlRequest,
    KeyedCreate, NodeRunRecord, RunClaim, RunOwner, RunQuery, RunRecord, RunStore, RunUpdate,
    SnapshotEntry, stale_run_token,
};
use dagger_core::{RunId, StoreError, Stores, TaskId, now_millis};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default lease of a run's owner.
pub(crate) const DEFAULT_RUN_LEASE: Duration = Duration::from_secs(15);

/// This machine's host name (Linux: the kernel's; else `$HOSTNAME`), or `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A new owner for this process with a lease of `lease` from now (the store sets the token).
pub(crate) fn new_owner(lease: Duration) -> RunOwner {
    let pid = std::process::id();
    let host = host_name();
    RunOwner {
        owner_id: format!("{host}:{pid}:{}", TaskId::generate()),
        host,
        pid,
        token: 0,
        lease_expires_at: expiry(lease),
    }
}

/// Now plus `lease`, in ms since the epoch.
pub(crate) fn expiry(lease: Duration) -> i64 {
    now_millis().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms since the epoch"),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// The id of `run`'s owner when it is provably gone although its lease is
/// live: it ran on this host and its process no longer exists (or is a
/// zombie). Only Linux can tell (from `/proc`); elsewhere, and for owners on
/// other hosts, the lease alone decides.
pub(crate) fn dead_owner(run: &RunRecord) -> Option<&str> {
    let owner = run.owner.as_ref()?;
    if owner.host != host_name() || owner.pid == std::process::id() {
        return None;
    }
    if !std::path::Path::new("/proc/self/stat").exists() {
        return None;
    }
    let alive = std::fs::read_to_string(format!("/proc/{}/stat", owner.pid))
        .ok()
        .and_then(|stat| {
            // `pid (comm) state ...`; comm may contain spaces and parentheses.
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(!matches!(state, 'Z' | 'X'))
        })
        .unwrap_or(false);
    (!alive).then_some(owner.owner_id.as_str())
}

/// The owner of `run` that a resume would have to respect at `now`: its
/// lease is live and it is not provably gone (see [`Coordinator::resume`]).
///
/// [`Coordinator::resume`]: crate::Coordinator::resume
pub fn live_owner(run: &RunRecord, now: i64) -> Option<&RunOwner> {
    run.live_owner(now).filter(|_| dead_owner(run).is_none())
}

/// Why a run's owner stopped: its ownership was taken over.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    /// Cancelled once the store refused a renewal (the token is stale).
    pub(crate) token: CancellationToken,
    /// The token that holds the run now, as the store reported it.
    pub(crate) current: AtomicU64,
}

/// The renewal task of one run's lease; stopped when dropped.
pub(crate) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Renews `token`'s lease on `run_id` every `lease / 3`. A stale token
    /// cancels `lost`; any other error is logged and retried at the next
    /// tick (a later renewal succeeds, or finds the token stale).
    pub(crate) fn start(
        runs: Arc<dyn RunStore>,
        run_id: RunId,
        token: u64,
        lease: Duration,
        lost: Arc<Lost>,
    ) -> Self {
        let every = (lease / 3).max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match runs.renew_run(&run_id, token, expiry(lease)).await {
                    Ok(()) => {}
                    Err(StoreError::StaleToken { current, .. }) => {
                        tracing::warn!(run_id = %run_id, token, current, "run taken over by another owner; stopping");
                        lost.current.store(current, Ordering::Release);
                        lost.token.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %run_id, error = %e, "cannot renew the run's lease; retrying");
                    }
                }
            }
        });
        Self { task }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stores of a run, refusing the run's writes once its ownership is lost.
pub(crate) struct Fenced {
    runs: Arc<dyn RunStore>,
    snapshots: Arc<dyn CacheSnapshotStore>,
    run_id: RunId,
    token: u64,
    lost: Arc<Lost>,
}

impl Fenced {
    /// `stores` with run and snapshot writes of `run_id` fenced by `lost`.
    pub(crate) fn wrap(stores: &Stores, run_id: RunId, token: u64, lost: Arc<Lost>) -> Stores {
        let fenced = Arc::new(Self {
            runs: stores.runs.clone(),
            snapshots: stores.snapshots.clone(),
            run_id,
            token,
            lost,
        });
        Stores {
            runs: fenced.clone(),
            artifacts: stores.artifacts.clone(),
            snapshots: fenced,
            schedules: stores.schedules.clone(),
            durability: stores.durability,
            location: stores.location.clone(),
        }
    }

    fn check(&self, run_id: &RunId) -> Result<(), StoreError> {
        if self.lost.token.is_cancelled() && *run_id == self.run_id {
            return Err(stale_run_token(
                run_id,
                self.token,
                self.lost.current.load(Ordering::Acquire),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl RunStore for Fenced {
    async fn create_run(&self, run: RunRecord) -> Result<(), StoreError> {
        self.runs.create_run(run).await
    }
    async fn create_keyed_run(
        &self,
        run: RunRecord,
        key: &str,
        replace: Option<&RunId>,
    ) -> Result<KeyedCreate, StoreError> {
        self.runs.create_keyed_run(run, key, replace).await
    }
    async fn child_runs(&self, run_id: &RunId) -> Result<Vec<RunRecord>, StoreError> {
        self.runs.child_runs(run_id).await
    }
    async fn update_run(&self, run_id: &RunId, update: RunUpdate) -> Result<(), StoreError> {
        self.check(run_id)?;
        self.runs.update_run(run_id, update).await
    }
    async fn get_run(&self, run_id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        self.runs.get_run(run_id).await
    }
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        self.runs.list_runs(query).await
    }
    async fn put_node_run(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        self.check(&record.run_id)?;
        self.runs.put_node_run(record).await
    }
    async fn put_node_started(&self, record: NodeRunRecord) -> Result<(), StoreError> {
        self.check(&record.run_id)?;
        self.runs.put_node_started(record).await
    }
    async fn put_completed_node_run(
        &self,
        artifacts: &dyn ArtifactStore,
        output: Vec<u8>,
        record: NodeRunRecord,
    ) -> Result<ArtifactId, StoreError> {
        self.check(&record.run_id)?;
        self.runs
            .put_completed_node_run(artifacts, output, record)
            .await
    }
    async fn node_runs(&self, run_id: &RunId) -> Result<Vec<NodeRunRecord>, StoreError> {
        self.runs.node_runs(run_id).await
    }
    async fn put_attempt(&self, record: AttemptRecord) -> Result<(), StoreError> {
        self.check(&record.run_id)?;
        self.runs.put_attempt(record).await
    }
    async fn attempts(
        &self,
        run_id: &RunId,
        query: &AttemptQuery,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.runs.attempts(run_id, query).await
    }
    async fn push_control(
        &self,
        run_id: &RunId,
        request: ControlRequest,
    ) -> Result<u64, StoreError> {
        self.runs.push_control(run_id, request).await
    }
    async fn controls_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<(u64, ControlRequest)>, StoreError> {
        self.runs.controls_after(run_id, after).await
    }
    async fn push_signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<u64, StoreError> {
        self.runs.push_signal(run_id, name, payload).await
    }
    async fn signals_after(
        &self,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<dagger_core::store::SignalRecord>, StoreError> {
        self.runs.signals_after(run_id, after).await
    }
    async fn find_memoized(
        &self,
        action: &str,
        input_hash: &str,
    ) -> Result<Option<ArtifactId>, StoreError> {
        self.runs.find_memoized(action, input_hash).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.runs.flush().await
    }
    async fn claim_run(
        &self,
        run_id: &RunId,
        owner: RunOwner,
        dead_owner: Option<&str>,
    ) -> Result<RunClaim, StoreError> {
        self.runs.claim_run(run_id, owner, dead_owner).await
    }
    async fn renew_run(
        &self,
        run_id: &RunId,
        token: u64,
        lease_expires_at: i64,
    ) -> Result<(), StoreError> {
        self.runs.renew_run(run_id, token, lease_expires_at).await
    }
    async fn release_run(
        &self,
        run_id: &RunId,
        token: u64,
        update: RunUpdate,
    ) -> Result<(), StoreError> {
        self.runs.release_run(run_id, token, update).await
    }
}

#[async_trait]
impl CacheSnapshotStore for Fenced {
    async fn append_snapshot(&self, scope: &str, entry: SnapshotEntry) -> Result<(), StoreError> {
        if scope == self.run_id.as_str() {
            self.check(&self.run_id)?;
        }
        self.snapshots.append_snapshot(scope, entry).await
    }
    async fn load_snapshot_chain(&self, scope: &str) -> Result<Vec<SnapshotEntry>, StoreError> {
        self.snapshots.load_snapshot_chain(scope).await
    }
}

/// The unfinished runs of `stores` whose owner's lease lapsed (their
/// process died without recording an end), oldest first: what
/// `--resume-orphans` takes over.
pub async fn orphaned_runs(stores: &Stores) -> Result<Vec<RunRecord>, StoreError> {
    let now = now_millis();
    let mut out = Vec::new();
    for status in dagger_core::RunStatus::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
    {
        let query = RunQuery {
            status: Some(status),
            ..RunQuery::default()
        };
        out.extend(
            stores
                .runs
                .list_runs(&query)
                .await?
                .into_iter()
                .filter(|r| r.orphaned_since(now).is_some()),
        );
    }
    out.sort_by_key(|r| r.created_at);
    Ok(out)
}
