//! The public entry points: [`Coordinator`] runs and resumes workflows,
//! [`execute_dag`] runs one without hooks, and the control functions reach a
//! run from outside (another task or another process).

use crate::cancel::RunCancel;
use crate::error::CoordError;
use crate::event::EventHook;
use crate::handle::{Forwarder, RunHandle};
use crate::idempotency::{self, KeyPolicy};
use crate::ownership;
use crate::persist;
use crate::report::DagExecutionReport;
use crate::request::RunRequest;
use crate::run::{RunLoop, Setup};
use dagger_core::store::{ControlRequest, Durability, RunClaim, RunOwner, RunRecord, RunUpdate};
use dagger_core::{Cache, NodeId, NodeStatus, RunId, RunStatus, Stores, now_millis};
use dagger_dag_flow::DagExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs DAG Flow workflows in parallel, feeding events to hooks and applying
/// the commands they answer with.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) hooks: Vec<Arc<dyn EventHook>>,
    pub(crate) event_capacity: usize,
    pub(crate) command_capacity: usize,
    pub(crate) cancel_grace: Duration,
    pub(crate) control_poll: Duration,
    pub(crate) tracker: Option<dagger_core::ResourceTracker>,
    pub(crate) node_queue: Option<Arc<dyn dagger_core::store::NodeQueue>>,
    pub(crate) run_lease: Duration,
    /// At most this many nodes of a run at once, whatever the run's config says.
    pub(crate) max_parallel: Option<usize>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("hooks", &self.hooks.len())
            .field("event_capacity", &self.event_capacity)
            .field("command_capacity", &self.command_capacity)
            .finish_non_exhaustive()
    }
}

impl Default for Coordinator {
    /// A coordinator without hooks.
    fn default() -> Self {
        Self::new(Vec::new(), 1, 1)
    }
}

impl Coordinator {
    /// A coordinator with `hooks`; events to hooks and commands back travel
    /// over channels of the given capacities (at least 1).
    pub fn new(
        hooks: Vec<Arc<dyn EventHook>>,
        event_capacity: usize,
        command_capacity: usize,
    ) -> Self {
        Self {
            hooks,
            event_capacity: event_capacity.max(1),
            command_capacity: command_capacity.max(1),
            cancel_grace: Duration::from_secs(5),
            control_poll: Duration::from_millis(250),
            tracker: None,
            node_queue: None,
            run_lease: ownership::DEFAULT_RUN_LEASE,
            max_parallel: None,
        }
    }

    /// [`Coordinator::new`] running at most `max_parallel` nodes of a run
    /// at once (at least 1): the lower of this and the run's
    /// `max_parallel_nodes` applies.
    pub fn new_with_concurrency(
        hooks: Vec<Arc<dyn EventHook>>,
        event_capacity: usize,
        command_capacity: usize,
        max_parallel: usize,
    ) -> Self {
        Self {
            max_parallel: Some(max_parallel.max(1)),
            ..Self::new(hooks, event_capacity, command_capacity)
        }
    }

    /// The lease a run's owner holds on it (default 15 s), renewed every
    /// third of it. Once an owner stopped renewing (its process died), the
    /// run shows as orphaned and may be resumed elsewhere after this long;
    /// while the lease is live, a resume is refused. At least 30 ms.
    pub fn with_run_lease(mut self, lease: Duration) -> Self {
        self.run_lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How long cancelled actions get to return before they are dropped (default 5 s).
    pub fn with_cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// How often the run checks its store for control requests from other
    /// processes (cancel, approve, reject); default 250 ms.
    pub fn with_control_poll(mut self, every: Duration) -> Self {
        self.control_poll = every.max(Duration::from_millis(10));
        self
    }

    /// Shares `tracker`'s limits (concurrent actions, resident memory) with
    /// every run of this coordinator and anything else holding the tracker.
    pub fn with_resource_tracker(mut self, tracker: dagger_core::ResourceTracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Sends every node attempt's action to `queue` for a worker pool
    /// ([`crate::NodeWorker`] processes) instead of executing it in this
    /// process. Everything else stays here: inputs are resolved and checked
    /// against the action's schema, memoized outputs are reused, outputs are
    /// recorded and cached, and retries, node timeouts, cancellation, events
    /// and hooks work as for local execution; a timed-out or cancelled
    /// attempt withdraws its queue item. The coordinator's own registry must
    /// still know each action (for its schemas and `failure:` handlers,
    /// which run here). Actions on workers see the resolved inputs but an
    /// empty cache and no `app_data`.
    pub fn with_node_queue(mut self, queue: Arc<dyn dagger_core::store::NodeQueue>) -> Self {
        self.node_queue = Some(queue);
        self
    }

    /// Starts the run `request` asks for and answers with its handle (id,
    /// cancel, events; awaited: the report with the node outputs). The run
    /// goes on in its own task. Errors before the run exists come from here:
    /// an unknown workflow, unknown actions, inputs that do not match the
    /// workflow's declared `inputs:`, [`CoordError::RunExists`] for a
    /// recorded id. See [`crate::RunHandle`] for an example.
    pub async fn start(
        &self,
        executor: &DagExecutor,
        request: RunRequest,
    ) -> Result<RunHandle, CoordError> {
        let mut coord = self.clone();
        let events = request.events.then(|| {
            let (hook, events) = Forwarder::new();
            coord.hooks.push(hook);
            events
        });
        let unrecorded;
        let executor = if request.record {
            executor
        } else {
            unrecorded = executor.clone().with_stores(Stores::memory());
            &unrecorded
        };
        let cache = request.cache.unwrap_or_default();
        for (k, v) in request.inputs {
            cache.insert("inputs", &k, v);
        }
        let key = request.key.as_deref().map(|k| (k, request.key_policy));
        let (setup, owner) = coord
            .create(
                executor,
                &cache,
                &request.workflow,
                request.run_id.clone(),
                key,
            )
            .await?;
        let token = request
            .cancel
            .map_or_else(CancellationToken::new, |t| t.child_token());
        let reason = Arc::new(std::sync::OnceLock::new());
        let cancel = RunCancel::with_reason(token.clone(), reason.clone());
        let task = tokio::spawn(async move {
            let mut report = RunLoop::start(&coord, setup, owner, false, cancel).await?;
            report.collect_outputs(&cache);
            Ok(report)
        });
        Ok(RunHandle {
            id: request.run_id,
            cancel: token,
            reason,
            events,
            task,
        })
    }

    /// Runs workflow `dag_name` as run `run_id` (the seed-shaped form of
    /// [`Self::start`]). Run inputs are read from the cache namespace
    /// `inputs`; node outputs land in the cache under each node's id (the
    /// report's `outputs` stay empty). `cancel` is a [`CancellationToken`]
    /// or a `oneshot::Receiver<()>` (sending on its sender, not dropping
    /// it, cancels). Unknown actions are reported before any node runs, and
    /// so are inputs that do not match the workflow's declared `inputs:`
    /// ([`dagger_dag_flow::DagError::InvalidRunInputs`], naming each input);
    /// declared defaults are applied to the cache and recorded with the run.
    pub async fn run_parallel(
        &self,
        executor: &mut DagExecutor,
        cache: &Cache,
        dag_name: &str,
        run_id: impl Into<RunId>,
        cancel: impl Into<RunCancel>,
    ) -> Result<DagExecutionReport, CoordError> {
        self.run_keyed(executor, cache, dag_name, run_id, None, cancel)
            .await
    }

    /// [`Self::run_parallel`] under idempotency key `key` with its policy
    /// (see [`crate::RunRequest::idempotency_key`]): when the key names a
    /// run already, nothing runs and the answer is
    /// [`CoordError::AlreadyStarted`] naming that run. `None` is
    /// [`Self::run_parallel`].
    pub async fn run_keyed(
        &self,
        executor: &mut DagExecutor,
        cache: &Cache,
        dag_name: &str,
        run_id: impl Into<RunId>,
        key: Option<(&str, KeyPolicy)>,
        cancel: impl Into<RunCancel>,
    ) -> Result<DagExecutionReport, CoordError> {
        let (setup, owner) = self
            .create(executor, cache, dag_name, run_id.into(), key)
            .await?;
        let report = RunLoop::start(self, setup, owner, false, cancel.into()).await?;
        executor.record_last_run(&report.dag_name, report.last_run());
        Ok(report)
    }

    /// Creates run `run_id` of `dag_name` in the executor's store, owned by
    /// this process (under an idempotency key, when given), and everything
    /// its loop needs.
    async fn create(
        &self,
        executor: &DagExecutor,
        cache: &Cache,
        dag_name: &str,
        run_id: RunId,
        key: Option<(&str, KeyPolicy)>,
    ) -> Result<(Setup, RunOwner), CoordError> {
        let loaded = executor.workflow(dag_name)?;
        let wf = loaded.def.clone();
        if wf.inputs.is_some() {
            let given = cache.namespace("inputs").unwrap_or_default();
            for (k, v) in dagger_dag_flow::apply_run_inputs(&wf, &given)? {
                if !given.contains_key(&k) {
                    cache.insert("inputs", &k, v);
                }
            }
        }
        let config = executor.effective_config(&wf)?;
        let stores = executor.stores().clone();
        let setup = Setup::new(
            self,
            executor,
            cache,
            wf,
            Vec::new(),
            config.clone(),
            run_id.clone(),
        )?;
        if stores.runs.get_run(&run_id).await?.is_some() {
            return Err(CoordError::RunExists(run_id.to_string()));
        }
        let now = now_millis();
        // The run is born owned by this process (token 1), so no resume can
        // take it between its creation and the first renewal.
        let owner = RunOwner {
            token: 1,
            ..ownership::new_owner(self.run_lease)
        };
        let record = RunRecord {
            run_id: run_id.clone(),
            workflow: dag_name.to_string(),
            // `Durability::Memory` records nothing a resume could use, so
            // the definition is not serialized (it cost as much as the
            // run of a 10k-node no-op workflow).
            definition: if stores.durability == Durability::Memory {
                serde_json::Value::Null
            } else {
                persist::snapshot_json(&setup.wf, &[])
            },
            inputs: cache
                .namespace("inputs")
                .map(serde_json::Value::Object)
                .unwrap_or_default(),
            config: serde_json::to_value(&config).unwrap_or_default(),
            status: RunStatus::Running,
            reason: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            owner: Some(owner.clone()),
            lineage: None,
        };
        match key {
            Some((key, policy)) => {
                idempotency::create_keyed(stores.runs.as_ref(), record, key, policy).await?;
            }
            None => stores.runs.create_run(record).await?,
        }
        Ok((setup, owner))
    }

    /// Resumes run `run_id` from its store: restores the cache and node
    /// states and runs only what had not completed, using the recorded
    /// definition (not the file, which may have changed). A node that was
    /// running at a crash runs again with the same idempotency key and the
    /// next attempt number.
    ///
    /// A run has one owner: resuming takes the run over with a fenced claim
    /// in the store, refused with [`CoordError::RunOwned`] (naming the owner
    /// and when its lease lapses) while another process's lease is live. An
    /// owner on this very host whose process no longer exists (killed) is
    /// known dead, and its run is taken over at once. Of two concurrent
    /// resumes exactly one proceeds.
    pub async fn resume(
        &self,
        executor: &mut DagExecutor,
        cache: &Cache,
        run_id: impl Into<RunId>,
        cancel: impl Into<RunCancel>,
    ) -> Result<DagExecutionReport, CoordError> {
        let run_id = run_id.into();
        let stores = executor.stores().clone();
        let record = stores
            .runs
            .get_run(&run_id)
            .await?
            .ok_or_else(|| CoordError::RunNotFound(run_id.to_string()))?;
        if record.status == RunStatus::Completed {
            return Err(CoordError::AlreadyFinished {
                run_id: run_id.to_string(),
                status: record.status,
            });
        }
        let owner = match stores
            .runs
            .claim_run(
                &run_id,
                ownership::new_owner(self.run_lease),
                ownership::dead_owner(&record),
            )
            .await?
        {
            RunClaim::Claimed(owner) => owner,
            RunClaim::Held(owner) => {
                return Err(CoordError::RunOwned {
                    run_id: run_id.to_string(),
                    host: owner.host,
                    pid: owner.pid,
                    lease_expires_at: owner.lease_expires_at,
                    lease_secs: self.run_lease.as_secs_f64(),
                });
            }
        };
        match self
            .resume_owned(executor, cache, &record, &owner, cancel.into())
            .await
        {
            Ok(report) => {
                executor.record_last_run(&report.dag_name, report.last_run());
                Ok(report)
            }
            Err(e @ (CoordError::OwnershipLost { .. } | CoordError::Store(_))) => Err(e),
            Err(e) => {
                // The run never started here: give it back as it was.
                if let Err(release) = stores
                    .runs
                    .release_run(&run_id, owner.token, RunUpdate::default())
                    .await
                {
                    tracing::warn!(run_id = %run_id, error = %release, "cannot release the run after a failed resume");
                }
                Err(e)
            }
        }
    }

    pub(crate) async fn resume_owned(
        &self,
        executor: &mut DagExecutor,
        cache: &Cache,
        record: &RunRecord,
        owner: &RunOwner,
        cancel: RunCancel,
    ) -> Result<DagExecutionReport, CoordError> {
        let run_id = record.run_id.clone();
        let stores = executor.stores().clone();
        let (wf, added) = persist::parse_snapshot(run_id.as_str(), &record.definition)?;
        let config =
            serde_json::from_value(record.config.clone()).map_err(|e| CoordError::CorruptRun {
                run_id: run_id.to_string(),
                reason: format!("config: {e}"),
            })?;
        if let serde_json::Value::Object(inputs) = &record.inputs {
            for (k, v) in inputs {
                cache.insert("inputs", k, v.clone());
            }
        }
        let progress = persist::load_progress(&stores, &run_id, cache).await?;
        let mut setup = Setup::new(
            self,
            executor,
            cache,
            Arc::new(wf),
            added,
            config,
            run_id.clone(),
        )?;
        setup.restore(progress);
        if let Some(queue) = &self.node_queue {
            // Attempts handed out before the crash are redone under new
            // attempt numbers; stop the old ones.
            let withdrawn = queue.cancel_run(run_id.as_str()).await?;
            if withdrawn > 0 {
                tracing::info!(run_id = %run_id, withdrawn, "withdrew the previous coordinator's node work items");
            }
        }
        stores
            .runs
            .update_run(
                &run_id,
                RunUpdate {
                    status: Some(RunStatus::Running),
                    reason: Some(None),
                    finished_at: Some(None),
                    ..Default::default()
                },
            )
            .await?;
        RunLoop::start(self, setup, owner.clone(), true, cancel).await
    }
}

/// Runs `dag_name` without hooks under a fresh run id.
pub async fn execute_dag(
    executor: &mut DagExecutor,
    cache: &Cache,
    dag_name: &str,
) -> Result<DagExecutionReport, CoordError> {
    Coordinator::default()
        .run_parallel(
            executor,
            cache,
            dag_name,
            RunId::generate(),
            RunCancel::never(),
        )
        .await
}

/// Asks run `run_id` to stop (it may run in another process sharing the store).
/// Refused with [`CoordError::RunEnded`] when the run already ended.
pub async fn request_cancel(
    stores: &Stores,
    run_id: impl Into<RunId>,
    reason: impl Into<String>,
) -> Result<u64, CoordError> {
    let id = run_id.into();
    let record = stores
        .runs
        .get_run(&id)
        .await?
        .ok_or_else(|| CoordError::RunNotFound(id.to_string()))?;
    if has_ended(record.status) {
        return Err(CoordError::RunEnded {
            run_id: id.to_string(),
            status: record.status,
            what: "cancel".into(),
        });
    }
    let request = ControlRequest::Cancel {
        reason: reason.into(),
    };
    Ok(stores.runs.push_control(&id, request).await?)
}

/// Approves node `node_id` of run `run_id`, waiting for a human, with optional
/// input. Checked first by [`check_waiting`]; the first decision recorded for
/// a node wins, a later one is refused with [`CoordError::AlreadyDecided`].
pub async fn approve(
    stores: &Stores,
    run_id: impl Into<RunId>,
    node_id: impl Into<NodeId>,
    input: Option<serde_json::Value>,
) -> Result<u64, CoordError> {
    let (run_id, node_id) = (run_id.into(), node_id.into());
    check_waiting(stores, &run_id, &node_id, "approve").await?;
    decide(stores, &run_id, ControlRequest::Approve { node_id, input }).await
}

/// Rejects node `node_id` of run `run_id`, waiting for a human: the node fails
/// with `reason`. Checked and decided as [`approve`] is.
pub async fn reject(
    stores: &Stores,
    run_id: impl Into<RunId>,
    node_id: impl Into<NodeId>,
    reason: impl Into<String>,
) -> Result<u64, CoordError> {
    let (run_id, node_id) = (run_id.into(), node_id.into());
    check_waiting(stores, &run_id, &node_id, "reject").await?;
    decide(
        stores,
        &run_id,
        ControlRequest::Reject {
            node_id,
            reason: reason.into(),
        },
    )
    .await
}

/// Whether a run in `status` has ended (nothing to cancel or decide).
fn has_ended(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
    )
}

/// The check before a human decision (`verb`: `approve` or `reject`), shared
/// by the CLI, the web interface and its API: the run exists and has not
/// ended ([`CoordError::RunEnded`]), it has node `node_id`
/// ([`CoordError::NodeNotFound`], suggesting the closest id), and the node is
/// waiting for a human ([`CoordError::NotWaiting`]; an approval before the
/// node waits is refused, not kept for later).
pub async fn check_waiting(
    stores: &Stores,
    run_id: impl Into<RunId>,
    node_id: impl Into<NodeId>,
    verb: &str,
) -> Result<(), CoordError> {
    let (run_id, node_id) = (run_id.into(), node_id.into());
    let node_id = node_id.as_str();
    let view = load_run_view(stores, &run_id).await?;
    if has_ended(view.record.status) {
        return Err(CoordError::RunEnded {
            run_id: run_id.to_string(),
            status: view.record.status,
            what: format!("{verb} (node `{node_id}`)"),
        });
    }
    let Some(node) = view.nodes.iter().find(|n| n.id == node_id) else {
        return Err(CoordError::NodeNotFound {
            run_id: run_id.to_string(),
            node_id: node_id.to_string(),
            suggestion: dagger_dag_flow::closest_name(
                node_id,
                view.nodes.iter().map(|n| n.id.as_str()),
            ),
        });
    };
    if node.status != NodeStatus::WaitingForHuman {
        return Err(CoordError::NotWaiting {
            run_id: run_id.to_string(),
            node_id: node_id.to_string(),
            status: node.status,
        });
    }
    Ok(())
}

/// Records a decision; the store refuses it when the node was decided first.
async fn decide(
    stores: &Stores,
    run_id: &RunId,
    request: ControlRequest,
) -> Result<u64, CoordError> {
    match stores.runs.push_control(run_id, request).await {
        Ok(seq) => Ok(seq),
        Err(dagger_core::StoreError::AlreadyDecided {
            run_id,
            node_id,
            decision,
            at_ms,
            ..
        }) => Err(CoordError::AlreadyDecided {
            run_id,
            node_id,
            decision,
            at: chrono::DateTime::from_timestamp_millis(at_ms).map_or_else(
                || format!("{at_ms} ms since the epoch"),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        }),
        Err(dagger_core::StoreError::NotFound { entity: "run", .. }) => {
            Err(CoordError::RunNotFound(run_id.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A recorded run as the store holds it: its record, definition and node outcomes.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The run's record.
    pub record: dagger_core::store::RunRecord,
    /// The definition, including nodes added at run time.
    pub workflow: dagger_dag_flow::WorkflowDef,
    /// Per-node outcomes in definition order (added nodes last); nodes that
    /// never ran are `Pending`.
    pub nodes: Vec<crate::report::NodeReport>,
}

/// Reads run `run_id` back from the store.
pub async fn load_run_view(
    stores: &Stores,
    run_id: impl Into<RunId>,
) -> Result<RunView, CoordError> {
    let id = run_id.into();
    let record = stores
        .runs
        .get_run(&id)
        .await?
        .ok_or_else(|| CoordError::RunNotFound(id.to_string()))?;
    let (mut workflow, added) = persist::parse_snapshot(id.as_str(), &record.definition)?;
    let added_ids: Vec<String> = added.iter().map(|d| d.id.clone()).collect();
    workflow.nodes.extend(added);
    let mut by_node: std::collections::HashMap<String, Vec<dagger_core::store::NodeRunRecord>> =
        Default::default();
    for rec in stores.runs.node_runs(&id).await? {
        by_node
            .entry(rec.node_id.to_string())
            .or_default()
            .push(rec);
    }
    let nodes = workflow
        .nodes
        .iter()
        .map(|n| {
            let recs = by_node.remove(&n.id).unwrap_or_default();
            let plain = recs.iter().find(|r| r.invocation_key.is_empty());
            let status = match plain {
                Some(r) => r.state,
                None if !recs.is_empty() => dagger_core::NodeStatus::Running,
                None => dagger_core::NodeStatus::Pending,
            };
            let started = recs.iter().filter_map(|r| r.started_at).min();
            let finished = plain.and_then(|r| r.finished_at);
            crate::report::NodeReport {
                id: NodeId::from(&n.id),
                action: std::sync::Arc::from(n.action.as_str()),
                status,
                attempts: recs.iter().map(|r| r.attempt).max().unwrap_or(0),
                duration_ms: started
                    .zip(finished)
                    .map(|(s, f)| u64::try_from(f - s).unwrap_or(0)),
                error: plain.and_then(|r| r.error.clone()),
                cache_hit: plain.is_some_and(|r| {
                    r.metadata
                        .get("cache_hit")
                        .and_then(serde_json::Value::as_bool)
                        == Some(true)
                }),
                added_at_runtime: added_ids.contains(&n.id),
                wake_at: plain
                    .filter(|r| r.state == dagger_core::NodeStatus::Waiting)
                    .and_then(|r| r.metadata.get("wake_at"))
                    .and_then(serde_json::Value::as_i64),
                signal: plain
                    .filter(|r| r.state == dagger_core::NodeStatus::Waiting)
                    .and_then(|r| r.metadata.get("signal"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
            }
        })
        .collect();
    Ok(RunView {
        record,
        workflow,
        nodes,
    })
}
