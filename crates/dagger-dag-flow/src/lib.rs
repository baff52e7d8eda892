//! DAG Flow: workflows defined in YAML as graphs of registered actions.
//!
//! This crate holds the definition model, the loader and validator, the
//! configuration, the action types and the [`DagExecutor`] that keeps loaded
//! workflows. The coordinator in `dagger-coord` runs them.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod action;
mod action_schemas;
mod annotated;
pub mod cache_view;
pub mod config;
pub mod dot;
pub mod error;
pub mod executor;
mod growth;
pub mod last_run;
pub mod loader;
pub mod model;
mod outputs;
pub mod retry_strategy;
mod run_inputs;
pub mod schedule;
pub mod schedule_state;
mod shape;
pub mod store_view;
pub mod validate;
pub mod wait;
mod yaml;

pub use action::{ActionRegistry, NodeAction, NodeCtx, NodeInputs, NodeOutput};
#[doc(hidden)]
pub use annotated::AnnotatedAction;
pub use annotated::{annotated_actions, register_all_actions};
pub use cache_view::CacheView;
pub use config::{DagConfig, DagConfigOverride, HumanTimeoutAction, OnFailure};
pub use dagger_core::{Cache, InputSpec};
pub use dot::{NodeRunView, serialize_run_to_dot, serialize_tree_to_dot};
pub use error::{
    CacheUnavailable, DagError, LoadErrors, LoadIssue, LoadIssueKind, RunInputProblem,
    ScheduleError,
};
pub use executor::{DagExecutor, LoadedWorkflow, StoreSource};
pub use last_run::{LastRun, NodeState, RunMetrics};
pub use loader::{
    STRING_SOURCE, load_yaml_bytes, load_yaml_path, load_yaml_path_with_actions, load_yaml_str,
    load_yaml_str_with_actions,
};
pub use model::{DagMetadata, JsonType, NodeDef, OutputSpec, RunInputDef, WorkflowDef};
pub use outputs::ValueAsRef;
pub use retry_strategy::RetryStrategy;
pub use run_inputs::{apply_run_inputs, closest_name, run_inputs_help};
pub use schedule::{Overlap, Schedule, ScheduleDef};
pub use schedule_state::{ScheduleEntry, ScheduleSource, effective_schedules, stored_schedule};
pub use store_view::{ExecutionTree, ExecutorStore, SerializableData};
pub use validate::{validate_added_nodes, validate_added_nodes_with, validate_workflow};
pub use wait::{OnTimeout, SignalMatch, WaitFor, WaitUntil};
pub use yaml::{MAX_ALIAS_REPLAY_EVENTS, MAX_INPUT_BYTES, MAX_NESTING_DEPTH, MAX_YAML_NODES};
