//! Execution configuration of DAG Flow runs, and the partial form a workflow
//! file may give under `config:` to override the executor's.

use dagger_core::{Jitter, RetryPolicy, RetryStrategy};
use serde::{Deserialize, Serialize};

/// What a node's final failure does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Dependents are skipped; independent branches go on.
    #[default]
    Continue,
    /// Stop scheduling and cancel running nodes.
    Halt,
    /// Stop scheduling, keep state; the run can be resumed.
    Pause,
}

/// What happens when a human does not answer within `human_wait_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HumanTimeoutAction {
    /// Go on as if approved, without input.
    Autopilot,
    /// Pause the run; it waits for a resume.
    #[default]
    Pause,
}

macro_rules! dag_config {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr ; )*) => {
        /// Configuration of a DAG Flow run. A workflow's `config:` overrides
        /// the executor's field by field (see [`DagConfigOverride`]).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct DagConfig {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl Default for DagConfig {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        /// The fields of [`DagConfig`] a workflow file sets; unset fields keep the executor's value.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct DagConfigOverride {
            $( $(#[$doc])* #[serde(skip_serializing_if = "Option::is_none")] pub $field: Option<$ty>, )*
        }

        impl DagConfigOverride {
            /// `base` with every field set here replaced.
            pub fn apply(&self, base: &DagConfig) -> DagConfig {
                let mut out = base.clone();
                $( if let Some(v) = &self.$field { out.$field = v.clone(); } )*
                out
            }
        }
    };
}

dag_config! {
    /// Run independent nodes concurrently; when false, one node at a time in topological order.
    enable_parallel_execution: bool = true;
    /// At most this many node executions at once (at least 1).
    max_parallel_nodes: usize = 64;
    /// Attempts per node when the node sets no `try_count` (at least 1).
    max_attempts: u32 = 1;
    /// Shape of the delay between attempts.
    retry_strategy: RetryStrategy = RetryStrategy::Exponential;
    /// First retry delay in milliseconds.
    retry_base_delay_ms: u64 = 100;
    /// Largest retry delay in milliseconds.
    retry_max_delay_ms: u64 = 30_000;
    /// Growth factor of exponential delays (at least 1).
    retry_multiplier: f64 = 2.0;
    /// Randomization of retry delays.
    retry_jitter: Jitter = Jitter::None;
    /// What a node's final failure does to the run.
    on_failure: OnFailure = OnFailure::Continue;
    /// Whole-run timeout in seconds.
    timeout_seconds: Option<f64> = None;
    /// How long a node waits for a human, in minutes (`None`: forever).
    human_wait_minutes: Option<f64> = None;
    /// What a human wait's timeout does.
    human_timeout_action: HumanTimeoutAction = HumanTimeoutAction::Pause;
    /// Upper bound of the sum of `tokens` actions report.
    max_tokens: Option<u64> = None;
    /// Upper bound of node executions (and so of dynamic growth).
    max_iterations: Option<u64> = None;
    /// Persist each node's outputs as a cache delta when it completes.
    enable_incremental_cache: bool = false;
    /// Persist a full cache snapshot every this many seconds while running (`None`: only at the end).
    cache_snapshot_interval: Option<f64> = None;
}

impl DagConfig {
    /// The retry policy for a node with `try_count` attempts (or `max_attempts`).
    pub fn retry_policy(&self, try_count: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            max_attempts: try_count.unwrap_or(self.max_attempts).max(1),
            strategy: self.retry_strategy,
            base_delay_ms: self.retry_base_delay_ms,
            max_delay_ms: self.retry_max_delay_ms,
            multiplier: self.retry_multiplier,
            jitter: self.retry_jitter,
            ..RetryPolicy::default()
        }
    }

    /// Every invalid value, as `(field, message)` pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_parallel_nodes == 0 {
            out.push(("max_parallel_nodes", "must be at least 1".to_string()));
        }
        if self.max_attempts == 0 {
            out.push(("max_attempts", "must be at least 1".to_string()));
        }
        if !(self.retry_multiplier.is_finite() && self.retry_multiplier >= 1.0) {
            out.push((
                "retry_multiplier",
                format!("must be a number >= 1, got {}", self.retry_multiplier),
            ));
        }
        if self.retry_base_delay_ms > self.retry_max_delay_ms {
            out.push((
                "retry_base_delay_ms",
                "must not exceed retry_max_delay_ms".to_string(),
            ));
        }
        for (name, v) in [
            ("timeout_seconds", self.timeout_seconds),
            ("human_wait_minutes", self.human_wait_minutes),
            ("cache_snapshot_interval", self.cache_snapshot_interval),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                out.push((name, format!("must be a positive number, got {v}")));
            }
        }
        out
    }
}
