//! Errors of the `dagger` command.

use dagger_coord::CoordError;
use dagger_core::StoreError;

/// Why a command failed. Each maps to an exit code in `main`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// One or more workflow files are invalid (already printed as `file:line:col: message`).
    #[error("{count} problem(s) found")]
    Invalid {
        /// How many problems.
        count: usize,
    },
    /// A usage mistake clap cannot catch (bad `--input`, bad JSON).
    #[error("{0}")]
    Usage(String),
    /// Running or resuming failed before the run could start.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}
