//! The Dagger coordinator: runs DAG Flow workflows in parallel.
//!
//! Actions ([`NodeAction`]) are pure computations; the [`Coordinator`] owns
//! the run loop; [`EventHook`]s see every [`ExecutionEvent`] and answer with
//! [`ExecutorCommand`]s (add nodes, pause or cancel branches, skip nodes)
//! that are applied between events, so the graph never changes under a
//! running decision.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cancel;
mod coordinator;
pub mod error;
mod event;
mod exec;
mod executor_ext;
mod handle;
mod idempotency;
mod machine;
mod node_worker;
mod ownership;
mod persist;
mod remote;
mod report;
mod request;
mod rerun;
mod run;
mod scheduler;
mod signal;
mod worker;

pub use cancel::RunCancel;
pub use coordinator::{
    Coordinator, RunView, approve, check_waiting, execute_dag, load_run_view, reject,
    request_cancel,
};
pub use dagger_core::Cache;
pub use dagger_dag_flow::{
    ActionRegistry, DagConfig, DagExecutor, NodeAction, NodeCtx, NodeInputs, NodeOutput,
};
pub use error::{CoordError, RunFailed};
pub use event::{EventHook, ExecutionEvent, ExecutorCommand, HookContext, NodeRef, NodeSpec};
pub use executor_ext::DagExecutorExt;
pub use handle::{RunEvents, RunFinished, RunHandle};
pub use idempotency::KeyPolicy;
pub use node_worker::{NodeWorker, WorkerStats};
pub use ownership::{host_name, live_owner, orphaned_runs};
pub use report::{DagExecutionReport, ExecutionMetrics, NodeReport};
pub use request::RunRequest;
pub use rerun::RerunRequest;
pub use scheduler::{FireOutcome, Fired, Scheduler};
pub use signal::{SignalSent, broadcast_signal, send_signal};
pub use tokio_util::sync::CancellationToken;
