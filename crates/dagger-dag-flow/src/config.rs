//! Execution configuration of DAG Flow runs, and the partial form a workflow
//! file may give under `config:` to override the executor's.

use crate::retry_strategy::RetryStrategy;
use dagger_core::{Jitter, RetryPolicy};
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
    /// Attempts per node when the node sets no `try_count` (at least 1; `None`: one attempt).
    max_attempts: Option<u32> = None;
    /// The delays between attempts, with their shape.
    retry_strategy: RetryStrategy = RetryStrategy::default();
    /// Randomization of retry delays.
    retry_jitter: Jitter = Jitter::None;
    /// What a node's final failure does to the run.
    on_failure: OnFailure = OnFailure::Continue;
    /// Whole-run timeout in whole seconds.
    timeout_seconds: Option<u64> = None;
    /// How long a node waits for a human, in whole minutes (`None`: forever).
    human_wait_minutes: Option<u64> = None;
    /// What a human wait's timeout does.
    human_timeout_action: HumanTimeoutAction = HumanTimeoutAction::Pause;
    /// Upper bound of the sum of `tokens` actions report.
    max_tokens: Option<u64> = None;
    /// Upper bound of node executions (and so of dynamic growth).
    max_iterations: Option<u64> = None;
    /// Persist each node's outputs as a cache delta when it completes.
    enable_incremental_cache: bool = false;
    /// Persist a full cache snapshot every this many seconds while running (0: only at the end).
    cache_snapshot_interval: u64 = 0;
}

impl DagConfig {
    /// The retry policy for a node with `try_count` attempts (or `max_attempts`).
    pub fn retry_policy(&self, try_count: Option<u32>) -> RetryPolicy {
        let attempts = try_count.or(self.max_attempts).unwrap_or(1);
        self.retry_strategy.policy(attempts, self.retry_jitter)
    }

    /// Every invalid value, as `(field, message)` pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_parallel_nodes == 0 {
            out.push(("max_parallel_nodes", "must be at least 1".to_string()));
        }
        if self.max_attempts == Some(0) {
            out.push(("max_attempts", "must be at least 1".to_string()));
        }
        if let Some(problem) = self.retry_strategy.problem() {
            out.push(("retry_strategy", problem));
        }
        for (name, v) in [
            ("timeout_seconds", self.timeout_seconds),
            ("human_wait_minutes", self.human_wait_minutes),
        ] {
            if v == Some(0) {
                out.push((name, "must be at least 1".to_string()));
            }
        }
        out
    }
}
