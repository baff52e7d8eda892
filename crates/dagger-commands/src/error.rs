//! Errors of the `dagger` command and of building it ([`crate::Cli::build`]).

use dagger_coord::CoordError;
use dagger_core::StoreError;

/// Why a command failed, or why a [`crate::Cli`] cannot be built. Each maps
/// to an exit code (2 for usage mistakes, 1 otherwise).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
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
    /// Two actions or agents of the binary share a name.
    #[error("{kind} `{name}`: {why}")]
    Duplicate {
        /// `action`, `task agent` or `pub/sub agent`.
        kind: &'static str,
        /// The shared name.
        name: String,
        /// Who else has it.
        why: &'static str,
    },
    /// A run id prefix that more than one run's id starts with.
    #[error("run id `{prefix}` is ambiguous: {}", list_candidates(.candidates))]
    AmbiguousRunId {
        /// What was given.
        prefix: String,
        /// The ids of the runs it could mean, sorted.
        candidates: Vec<String>,
    },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// "`a`, `b` or `c`" (the first ten, then how many more).
fn list_candidates(ids: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    format!("it could be {text}")
}
