//! Errors of the DAG Flow crate.

/// Errors of [`crate::DagExecutor`] operations.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    /// No workflow with this name is loaded.
    #[error("no workflow named `{0}` is loaded")]
    UnknownDag(String),
    /// A workflow with this name is loaded already (from another source).
    #[error("workflow `{name}` is already loaded (from {existing})")]
    DuplicateDag {
        /// The workflow's name.
        name: String,
        /// Where the loaded one came from.
        existing: String,
    },
    /// The effective configuration is invalid.
    #[error("invalid configuration: {field} {message}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stored cache snapshot cannot be read back.
    #[error("cache snapshot `{scope}` is unreadable: {reason}")]
    Snapshot {
        /// The snapshot's scope.
        scope: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] dagger_core::StoreError),
}
