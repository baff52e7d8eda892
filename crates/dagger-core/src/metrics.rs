//! Metric names every Dagger crate records through the [`metrics`] facade,
//! and the hook that installs a Prometheus recorder.
//!
//! Until a recorder is installed every metric is a no-op (a call through
//! the facade's no-op recorder). Install one before the first run, in your
//! own binary with `install_prometheus` (feature `prometheus`) or with any
//! recorder of the `metrics` ecosystem; `dagger serve` and
//! `dagger worker --metrics-addr` install it themselves and answer
//! `GET /metrics`. Handles of labelled metrics are registered the first
//! time a label value is seen and then reused (see [`PerLabel`]), so a
//! recorder installed after the first run misses the labels seen before.
//!
//! The list of metrics, their labels and units is in `docs/observability.md`.

use foldhash::fast::RandomState;
use metrics::{Counter, Histogram};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// Runs started (`Coordinator::start` and every entry point built on it).
pub const RUNS_STARTED: &str = "dagger_runs_started_total";
/// Runs finished, by `outcome` (the run's final status: `completed`, `failed`, `cancelled`, …).
pub const RUNS_FINISHED: &str = "dagger_runs_finished_total";
/// Node attempts, by `action` and `outcome` (`succeeded`, `failed`, `cancelled`, `store_failed`).
pub const NODE_ATTEMPTS: &str = "dagger_node_attempts_total";
/// Seconds one node attempt took, by `action` (histogram).
pub const NODE_DURATION: &str = "dagger_node_duration_seconds";
/// Nodes ready to start but not started yet, summed over the runs of the process (gauge).
pub const READY_NODES: &str = "dagger_ready_nodes";
/// Node attempts running, summed over the runs of the process (gauge).
pub const RUNNING_NODES: &str = "dagger_running_nodes";
/// Claims, by `queue` (`tasks`: task-core tasks; `nodes`: node-queue items taken by a worker).
pub const CLAIMS: &str = "dagger_claims_total";
/// Leases that ran out before the holder finished, by `queue` (`tasks`, `nodes`).
pub const LEASE_EXPIRIES: &str = "dagger_lease_expiries_total";
/// Completions refused because the lease had moved on, by `queue` (`tasks`, `nodes`).
pub const STALE_COMPLETIONS: &str = "dagger_stale_completions_rejected_total";
/// Pub/Sub messages accepted on a channel, by `channel`.
pub const PUBSUB_PUBLISHED: &str = "dagger_pubsub_published_total";
/// Pub/Sub deliveries whose handler succeeded, by `channel`.
pub const PUBSUB_DELIVERED: &str = "dagger_pubsub_delivered_total";
/// Pub/Sub messages dead-lettered, by `channel`.
pub const PUBSUB_DEAD_LETTERED: &str = "dagger_pubsub_dead_lettered_total";
/// Seconds one store commit took, by `store` (`sqlite`, `postgres`) (histogram).
pub const STORE_COMMIT: &str = "dagger_store_commit_seconds";
/// Writes one store commit carried, by `store` (histogram).
pub const STORE_COMMIT_BATCH: &str = "dagger_store_commit_batch_size";

/// How a node attempt ended, as the `outcome` label of [`NODE_ATTEMPTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The action returned an output (or a memoized one was reused).
    Succeeded,
    /// The action (or its inputs) failed.
    Failed,
    /// The attempt was cancelled.
    Cancelled,
    /// The attempt could not be recorded.
    StoreFailed,
}

impl AttemptOutcome {
    const ALL: [AttemptOutcome; 4] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::Failed,
        AttemptOutcome::Cancelled,
        AttemptOutcome::StoreFailed,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::StoreFailed => "store_failed",
        }
    }
}

/// The handles of one action: attempts by outcome and the duration histogram.
#[derive(Debug)]
pub struct ActionMetrics {
    attempts: [Counter; 4],
    duration: Histogram,
}

impl ActionMetrics {
    fn new(action: &str) -> Self {
        let attempts = AttemptOutcome::ALL.map(|o| {
            metrics::counter!(NODE_ATTEMPTS, "action" => action.to_owned(), "outcome" => o.as_str())
        });
        Self {
            attempts,
            duration: metrics::histogram!(NODE_DURATION, "action" => action.to_owned()),
        }
    }

    /// Counts one attempt that ended with `outcome` after `seconds`.
    pub fn attempt(&self, outcome: AttemptOutcome, seconds: f64) {
        self.attempts[outcome as usize].increment(1);
        self.duration.record(seconds);
    }
}

/// The handles of one Pub/Sub channel.
#[derive(Debug)]
pub struct ChannelMetrics {
    /// [`PUBSUB_PUBLISHED`].
    pub published: Counter,
    /// [`PUBSUB_DELIVERED`].
    pub delivered: Counter,
    /// [`PUBSUB_DEAD_LETTERED`].
    pub dead_lettered: Counter,
}

impl ChannelMetrics {
    /// Registers the handles of `channel`.
    pub fn new(channel: &str) -> Self {
        Self {
            published: metrics::counter!(PUBSUB_PUBLISHED, "channel" => channel.to_owned()),
            delivered: metrics::counter!(PUBSUB_DELIVERED, "channel" => channel.to_owned()),
            dead_lettered: metrics::counter!(PUBSUB_DEAD_LETTERED, "channel" => channel.to_owned()),
        }
    }
}

/// Handles keyed by a label value, registered on first use: a lookup
/// afterwards hashes the value and allocates nothing.
pub struct PerLabel<T> {
    make: fn(&str) -> T,
    map: RwLock<HashMap<Box<str>, Arc<T>, RandomState>>,
}

impl<T> std::fmt::Debug for PerLabel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerLabel")
            .field("labels", &self.map.read().len())
            .finish()
    }
}

impl<T> PerLabel<T> {
    /// An empty set whose handles `make` registers.
    pub fn new(make: fn(&str) -> T) -> Self {
        Self {
            make,
            map: RwLock::new(HashMap::default()),
        }
    }

    /// The handles of `label`.
    pub fn get(&self, label: &str) -> Arc<T> {
        if let Some(h) = self.map.read().get(label) {
            return h.clone();
        }
        self.map
            .write()
            .entry(label.into())
            .or_insert_with(|| Arc::new((self.make)(label)))
            .clone()
    }
}

/// The handles of `action` (shared by every run of the process).
pub fn action(action: &str) -> Arc<ActionMetrics> {
    static ACTIONS: std::sync::LazyLock<PerLabel<ActionMetrics>> =
        std::sync::LazyLock::new(|| PerLabel::new(ActionMetrics::new));
    ACTIONS.get(action)
}

/// The `outcome` label of [`RUNS_FINISHED`] for a run that ended as `status`
/// (`completed`, `failed`, `cancelled`, `paused`, `waiting_for_human`, …).
pub const fn run_outcome(status: crate::RunStatus) -> &'static str {
    use crate::RunStatus as S;
    match status {
        S::Pending => "pending",
        S::Running => "running",
        S::Paused => "paused",
        S::WaitingForHuman => "waiting_for_human",
        S::Completed => "completed",
        S::Failed => "failed",
        S::Cancelled => "cancelled",
    }
}

/// Counts one store commit of `writes` writes that took `seconds`.
pub fn store_commit(store: &'static str, writes: usize, seconds: f64) {
    metrics::histogram!(STORE_COMMIT, "store" => store).record(seconds);
    // A batch is far below 2^52 writes: the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!(STORE_COMMIT_BATCH, "store" => store).record(writes as f64);
}

/// Counts `n` leases of `queue` (`tasks`, `nodes`) that ran out before
/// their holder finished: items a claim took over from another holder.
pub fn lease_expiries(queue: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!(LEASE_EXPIRIES, "queue" => queue).increment(n);
    }
}

/// Writes the `# HELP` text of every metric to the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(RUNS_STARTED, "Runs started.");
    describe_counter!(RUNS_FINISHED, "Runs finished, by final status.");
    describe_counter!(NODE_ATTEMPTS, "Node attempts, by action and outcome.");
    describe_histogram!(
        NODE_DURATION,
        Unit::Seconds,
        "Duration of one node attempt, by action."
    );
    describe_gauge!(READY_NODES, "Nodes ready to start, not started yet.");
    describe_gauge!(RUNNING_NODES, "Node attempts running.");
    describe_counter!(CLAIMS, "Claims of queued work, by queue.");
    describe_counter!(LEASE_EXPIRIES, "Leases that ran out, by queue.");
    describe_counter!(
        STALE_COMPLETIONS,
        "Completions refused because the lease had moved on, by queue."
    );
    describe_counter!(PUBSUB_PUBLISHED, "Pub/Sub messages accepted, by channel.");
    describe_counter!(PUBSUB_DELIVERED, "Pub/Sub deliveries handled, by channel.");
    describe_counter!(
        PUBSUB_DEAD_LETTERED,
        "Pub/Sub messages dead-lettered, by channel."
    );
    describe_histogram!(STORE_COMMIT, Unit::Seconds, "Duration of one store commit.");
    describe_histogram!(STORE_COMMIT_BATCH, "Writes carried by one store commit.");
}

#[cfg(feature = "prometheus")]
pub use prometheus::{PrometheusHandle, install_prometheus};

#[cfg(feature = "prometheus")]
mod prometheus {
    use crate::error::MetricsError;
    pub use metrics_exporter_prometheus::PrometheusHandle;
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    /// Buckets of the `_seconds` histograms: 1 ms to 5 min.
    const SECONDS: [f64; 14] = [
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0, 300.0,
    ];
    /// Buckets of the commit batch sizes.
    const BATCH: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

    /// Installs the Prometheus recorder as the process's `metrics` recorder
    /// (once: later calls return the same handle) and returns the handle
    /// whose [`PrometheusHandle::render`] is the text a `/metrics` route
    /// answers. Call it before the first run.
    ///
    /// # Errors
    /// [`MetricsError::Install`] when another recorder is already installed.
    pub fn install_prometheus() -> Result<PrometheusHandle, MetricsError> {
        static HANDLE: parking_lot::Mutex<Option<PrometheusHandle>> = parking_lot::Mutex::new(None);
        let mut installed = HANDLE.lock();
        if let Some(h) = &*installed {
            return Ok(h.clone());
        }
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(super::STORE_COMMIT_BATCH.into()), &BATCH)
            })
            .map_err(|e| MetricsError::Install(e.to_string()))?;
        let handle = builder
            .install_recorder()
            .map_err(|e| MetricsError::Install(e.to_string()))?;
        super::describe();
        *installed = Some(handle.clone());
        Ok(handle)
    }
}
