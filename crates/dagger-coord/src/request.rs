//! [`RunRequest`]: what to run (workflow, inputs, id) and how (recording,
//! events, an outside cancellation token). Started with
//! [`crate::Coordinator::start`], which answers with a [`crate::RunHandle`].

use crate::KeyPolicy;
use dagger_core::{Cache, RunId};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// A run to start: a workflow, its inputs, the run's id and options.
///
/// ```
/// # use dagger_coord::RunRequest;
/// let request = RunRequest::new("enrich_orders")
///     .input("order", 4711)
///     .id("order-4711")
///     .record(false);
/// assert_eq!(request.run_id().as_str(), "order-4711");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until `Coordinator::start` runs it"]
pub struct RunRequest {
    pub(crate) workflow: String,
    pub(crate) inputs: Map<String, Value>,
    pub(crate) run_id: RunId,
    pub(crate) record: bool,
    pub(crate) events: bool,
    pub(crate) cancel: Option<CancellationToken>,
    pub(crate) cache: Option<Cache>,
    pub(crate) key: Option<String>,
    pub(crate) key_policy: KeyPolicy,
}

impl RunRequest {
    /// A run of workflow `workflow` under a fresh run id (UUID v7), with no
    /// inputs, recorded in the executor's stores, without an event stream.
    pub fn new(workflow: impl Into<String>) -> Self {
        Self {
            workflow: workflow.into(),
            inputs: Map::new(),
            run_id: RunId::generate(),
            record: true,
            events: false,
            cancel: None,
            cache: None,
            key: None,
            key_policy: KeyPolicy::Once,
        }
    }

    /// Sets run input `name` (read by nodes as `inputs.<name>`; checked
    /// against the workflow's declared `inputs:` when the run starts).
    pub fn input(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.inputs.insert(name.into(), value.into());
        self
    }

    /// Sets every input of `inputs` (an object; anything else is ignored).
    pub fn inputs(mut self, inputs: Value) -> Self {
        if let Value::Object(map) = inputs {
            self.inputs.extend(map);
        }
        self
    }

    /// Runs under `id` instead of a fresh one. A second start under a
    /// recorded id is refused with [`crate::CoordError::RunExists`], so a
    /// retried request never runs the workflow twice; to be answered with
    /// the existing run instead (and for singleton policies), start under
    /// an [idempotency key](Self::idempotency_key).
    pub fn id(mut self, id: impl Into<RunId>) -> Self {
        self.run_id = id.into();
        self
    }

    /// Starts the run under idempotency key `key` of its workflow: of every
    /// start with the key (in any process on the store) exactly one records
    /// a run; the others get [`crate::CoordError::AlreadyStarted`] naming
    /// it ([`crate::CoordError::existing_run`]). Keys of different workflows
    /// are distinct. The policy is [`KeyPolicy::Once`] unless
    /// [`Self::key_policy`] says otherwise. Ignored with `record(false)`.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// What a start does when its idempotency key names a run already (see
    /// [`KeyPolicy`]); only meaningful with [`Self::idempotency_key`].
    pub fn key_policy(mut self, policy: KeyPolicy) -> Self {
        self.key_policy = policy;
        self
    }

    /// Whether the run is recorded (default true). `false` runs it against
    /// fresh in-memory stores of its own: nothing reaches the executor's
    /// stores (no run record, no node records, no snapshots), so it cannot
    /// be resumed, inspected or cancelled from another process; the report
    /// and the event stream are all it leaves. This replaces building the
    /// executor on `Stores::memory()` (`Durability::Memory`) to mean "do not
    /// record", which still works.
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Whether [`crate::RunHandle::events`] streams the run's
    /// [`crate::ExecutionEvent`]s (default false). Streaming adds a hook to
    /// the run, which costs a little per event.
    pub fn events(mut self, events: bool) -> Self {
        self.events = events;
        self
    }

    /// Cancels the run when `token` is cancelled. It is the one cancellation
    /// type of Dagger: task jobs (`TaskManager::start_job_with_cancel`) and
    /// the pub/sub executor (`PubSubExecutor::run`) take it too, so one token
    /// can stop all three. The run watches a child of `token`:
    /// [`crate::RunHandle::cancel`] stops this run only.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Runs with `cache` (where run inputs are read from the `inputs`
    /// namespace and node outputs are written) instead of a fresh one; for
    /// code that shares a cache between runs.
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The workflow to run.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The run's id.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }
}
