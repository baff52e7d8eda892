//! DAG Flow: workflows defined in YAML as graphs of registered actions.
//!
//! This crate holds the definition model, the loader and validator, the
//! configuration, the action types and the [`DagExecutor`] that keeps loaded
//! workflows. The coordinator in `dagger-coord` runs them.

pub mod action;
pub mod config;
pub mod error;
pub mod executor;
pub mod model;

pub use action::{ActionRegistry, NodeAction, NodeCtx, NodeInputs, NodeOutput};
pub use config::{DagConfig, DagConfigOverride, HumanTimeoutAction, OnFailure};
pub use dagger_core::{Cache, InputSpec, RetryStrategy};
pub use error::DagError;
pub use executor::{DagExecutor, LoadedWorkflow};
pub use model::{DagMetadata, NodeDef, OutputSpec, WorkflowDef};
