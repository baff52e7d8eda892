//! Dagger: workflow orchestration in three paradigms over one core.
//!
//! - **DAG Flow** ([`dag_flow`], [`coord`]): workflows written in YAML, run in
//!   parallel by the coordinator, with retries, timeouts, hooks that grow the
//!   graph, human review and resume after a crash.
//! - **Task Agent** ([`task_core`]): persistent jobs of tasks run by named
//!   agents, with dynamic dependencies, leases and stall detection.
//! - **Pub/Sub** ([`pubsub`]): agents exchanging messages over channels, with
//!   pattern routing, schema validation and a dead-letter channel.
//!
//! This crate holds no logic: it re-exports the crates above, the storage
//! backends and the macros, and gathers what an application needs in
//! [`prelude`]. An application depends on `dagger`, `tokio` and `serde_json`
//! only; `async_trait` and `serde` are re-exported.
//!
//! # Macros
//!
//! [`macro@action`], [`macro@task_agent`] and [`macro@pubsub_agent`] turn plain
//! async functions into actions and agents. Each keeps the function and
//! generates next to it a unit type named after it in CamelCase (`double` ->
//! `Double`) that implements the trait, and records the function so that
//! [`register_all_actions`], [`register_all_task_agents`] and
//! [`register_all_pubsub_agents`] register every annotated function at once.
//!
//! ```
//! use dagger::prelude::*;
//! use serde_json::json;
//!
//! #[action(name = "double", input_schema = r#"{"type": "object", "required": ["x"]}"#)]
//! async fn double(ctx: &NodeCtx) -> Result<NodeOutput, BoxError> {
//!     let x: i64 = ctx.input_as("x")?;
//!     Ok(NodeOutput::success(json!({ "y": 2 * x })))
//! }
//!
//! let registry = ActionRegistry::new();
//! registry.register(std::sync::Arc::new(Double));
//! assert!(registry.contains(Double::NAME));
//! ```
//!
//! `#[derive(Deserialize)]` on a typed action's input needs `serde` as a
//! dependency, or `#[serde(crate = "dagger::serde")]` on the type.
//!
//! `use dagger::prelude::*;` brings what an application needs into scope;
//! `use dagger::*;` (the style of the original examples) works too, since the
//! prelude is also re-exported at the crate root. The core types (ids, cache,
//! store traits, retry policy, statuses) live in [`base`] — not `core`, which
//! would shadow the standard library's `core` under a glob import.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `sqlite` | yes | [`storage`]: the SQLite store (bundled SQLite, nothing to install) |
//! | `macros` | yes | `#[action]`, `#[task_agent]`, `#[pubsub_agent]` and the `register_all_*` functions |
//! | `postgres` | no | `storage::PostgresStore`: runs and task queues in Postgres, shared by many workers |
//! | `nats` | no | `nats`: Pub/Sub channels across processes over NATS JetStream |
//! | `cli` | no | `cli`: the whole `dagger` command as a library (`dagger::cli::run()`, `dagger::cli::Cli`) over the binary's own actions and agents; with `postgres`, its Postgres support too |
//! | `prometheus` | no (on with `cli`) | `metrics::install_prometheus()`: a Prometheus recorder for the `dagger_*` metrics (see `docs/observability.md`) |
//! | `otel` | no | with `cli`: spans exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, one trace per run across `dagger worker` processes |
//! | `full` | no | every feature above |
//!
//! # Supported Rust versions
//!
//! Dagger builds on Rust 1.95 and newer (edition 2024).

#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "macros")]
#[doc(inline)]
pub use dagger_core as base;

#[doc(inline)]
pub use dagger_dag_flow as dag_flow;

#[doc(inline)]
pub use dagger_coord as coord;

#[doc(inline)]
pub use dagger_task_core as task_core;

#[doc(inline)]
pub use dagger_pubsub as pubsub;

#[cfg(feature = "sqlite")]
#[doc(inline)]
pub use dagger_storage as storage;

#[doc(inline)]
pub use dagger_core::metrics;

#[cfg(feature = "nats")]
#[doc(inline)]
pub use dagger_nats as nats;

/// The `dagger` command as a library: `fn main() -> std::process::ExitCode
/// { dagger::cli::run() }` is a binary with every subcommand (`validate`,
/// `run`, `resume`, `runs`, `dot`, `approve`, `reject`, `cancel`, `serve`,
/// `worker`, `tasks`, `actions`) over every `#[action]`, `#[task_agent]` and
/// `#[pubsub_agent]` of the program plus the built-ins; [`cli::Cli`] adds
/// hand-registered code and shared state.
#[cfg(feature = "cli")]
pub use dagger_commands as cli;

#[cfg(feature = "macros")]
#[doc(inline)]
pub use dagger_macros::{action, pubsub_agent, task_agent};

#[cfg(feature = "macros")]
pub use dagger_dag_flow::{annotated_actions, register_all_actions};
#[cfg(feature = "macros")]
pub use dagger_pubsub::{annotated_pubsub_agents, register_all_pubsub_agents};
#[cfg(feature = "macros")]
pub use dagger_task_core::{annotated_task_agents, register_all_task_agents};

pub use async_trait::async_trait;
pub use serde;

#[doc(no_inline)]
pub use prelude::*;

/// Everything a typical application needs: `use dagger::prelude::*;`.
pub mod prelude {
    pub use async_trait::async_trait;

    pub use dagger_core::{
        BackoffStrategy, BoxError, Cache, CacheConfig, DaggerError, Durability, EvictionPolicy,
        JobStatus, JsonSchema, NodeStatus, Permanent, ResourceTracker, RetryPolicy, RunStatus,
        Stores, TaskStatus, get_value_from_cache, insert_value, parse_input_from_name,
    };

    pub use dagger_coord::{
        CoordError, Coordinator, DagExecutionReport, DagExecutorExt, EventHook, ExecutionEvent,
        ExecutorCommand, HookContext, NodeSpec, RunEvents, RunFailed, RunHandle, RunRequest,
        execute_dag,
    };

    pub use dagger_dag_flow::{
        ActionRegistry, CacheView, DagConfig, DagError, DagExecutor, HumanTimeoutAction,
        NodeAction, NodeCtx, NodeInputs, NodeOutput, OnFailure, RetryStrategy, SerializableData,
        ValueAsRef,
    };

    pub use dagger_task_core::{
        JobConfig, JobHandle, StallAction, TaskAgent, TaskAgentRegistry, TaskContext, TaskError,
        TaskManager, TaskOutcome, TaskSpec, TaskType,
    };

    pub use dagger_pubsub::{
        CancellationToken, Message, PubSubAgent, PubSubConfig, PubSubContext, PubSubError,
        PubSubExecutor, RunOutcome,
    };

    #[cfg(feature = "sqlite")]
    pub use dagger_storage::SqliteStore;

    #[cfg(feature = "macros")]
    pub use dagger_macros::{action, pubsub_agent, task_agent};

    pub use dagger_core::serialize_cache_to_prettyjson;
    pub use serde_json::json;

    /// `Result<T>` with [`BoxError`] as the default error, so that the
    /// guides' `-> Result<NodeOutput>` and `-> Result<()>` read as written.
    /// A second parameter overrides the error: `Result<T, MyError>`.
    pub type Result<T, E = BoxError> = std::result::Result<T, E>;
}

/// Support for code generated by the macros. Not public API: it changes
/// without notice.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use dagger_core::{BoxError, JsonSchema, Permanent};
    pub use dagger_dag_flow::{NodeAction, NodeCtx, NodeOutput};
    pub use dagger_pubsub::{Message, PubSubAgent, PubSubContext};
    pub use dagger_task_core::{TaskAgent, TaskContext, TaskOutcome};
    pub use serde;
    pub use serde_json;

    #[cfg(feature = "macros")]
    pub use dagger_dag_flow::AnnotatedAction;
    #[cfg(feature = "macros")]
    pub use dagger_pubsub::AnnotatedPubSubAgent;
    #[cfg(feature = "macros")]
    pub use dagger_task_core::AnnotatedTaskAgent;
    #[cfg(feature = "macros")]
    pub use inventory;
    #[cfg(feature = "macros")]
    pub use serde_path_to_error;
}

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
