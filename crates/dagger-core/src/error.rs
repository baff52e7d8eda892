//! Error types of the core crate. Every variant names its culprit: the input,
//! reference, entity, file or id that caused it.

use crate::schema::SchemaViolation;
use std::fmt;

/// The error type user code returns from actions and agents: anything that
/// implements `std::error::Error`, plus `String` and `&str` through `into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Marks an error as permanent: the retry policy never retries it.
///
/// ```
/// use dagger_core::{BoxError, Permanent};
/// fn check(v: i64) -> Result<(), BoxError> {
///     if v < 0 { return Err(Permanent::new("negative input").into()); }
///     Ok(())
/// }
/// assert!(check(-1).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permanent(pub String);

impl Permanent {
    /// A permanent error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// True when `err` (or any error in its source chain) is a [`Permanent`].
    pub fn is_permanent(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = current {
            if e.is::<Permanent>() {
                return true;
            }
            current = e.source();
        }
        false
    }
}

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}

/// Errors reading or writing the [`crate::Cache`].
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The node declares no input with this name.
    #[error("input `{input}` is not declared by the node")]
    UnknownInput {
        /// The input name that was asked for.
        input: String,
    },
    /// The input's reference points at a value that is not in the cache.
    #[error("input `{input}`: reference `{reference}` has no value in the cache")]
    MissingValue {
        /// The input name.
        input: String,
        /// The reference that was followed (`inputs.key` or `node.output`).
        reference: String,
    },
    /// The value exists but does not deserialize to the requested type.
    #[error("input `{input}`: value at `{reference}` has the wrong type: {message}")]
    WrongType {
        /// The input name.
        input: String,
        /// The reference that was followed.
        reference: String,
        /// What serde reported.
        message: String,
    },
    /// A reference is not of the form `inputs.<key>` or `<node>.<output>`.
    #[error(
        "input `{input}`: reference `{reference}` is not of the form `inputs.<key>` or `<node>.<output>`"
    )]
    InvalidReference {
        /// The input name.
        input: String,
        /// The malformed reference.
        reference: String,
    },
    /// No value under this namespace and key.
    #[error("no value in the cache at `{namespace}.{key}`")]
    NotFound {
        /// The namespace looked in.
        namespace: String,
        /// The key looked for.
        key: String,
    },
    /// A value could not be converted to JSON.
    #[error("value for `{namespace}.{key}` cannot be serialized: {source}")]
    Serialize {
        /// The namespace written to.
        namespace: String,
        /// The key written.
        key: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A snapshot is not a JSON object of objects.
    #[error("cache snapshot is malformed: {0}")]
    MalformedSnapshot(String),
    /// A cache bound is invalid (zero entries, zero memory).
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),
}

/// Errors compiling a JSON Schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema document itself is not a valid JSON Schema.
    #[error("invalid JSON Schema{}: {message}", for_owner(owner))]
    InvalidSchema {
        /// Who owns the schema (an action, agent or channel), when known.
        owner: Option<String>,
        /// Why the schema is invalid.
        message: String,
    },
    /// A value failed validation.
    #[error(transparent)]
    Violation(#[from] SchemaViolation),
}

fn for_owner(owner: &Option<String>) -> String {
    owner
        .as_ref()
        .map(|o| format!(" of `{o}`"))
        .unwrap_or_default()
}

/// An illegal status transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {entity} transition for `{id}`: {from} -> {to}")]
pub struct StatusError {
    /// The kind of entity (`node`, `run`, `task`, `job`).
    pub entity: &'static str,
    /// The entity's id.
    pub id: String,
    /// The current status.
    pub from: String,
    /// The requested status.
    pub to: String,
}

/// Errors of a store (SQLite, Postgres or in-memory).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location string cannot be understood.
    #[error("invalid storage location `{location}`: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database cannot be opened.
    #[error("cannot open database `{location}`: {reason}")]
    Open {
        /// The location.
        location: String,
        /// The underlying reason.
        reason: String,
    },
    /// Another process holds a lock longer than the busy timeout.
    #[error("database `{location}` is locked by another process (waited {waited_ms} ms)")]
    Locked {
        /// The location.
        location: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// The database or its directory is read-only.
    #[error("database `{location}` is read-only")]
    ReadOnly {
        /// The location.
        location: String,
    },
    /// The disk (or the database's page budget) is full.
    #[error(
        "database `{location}` is full: no space left to write{}",
        .file.as_ref().map(|f| format!(" `{f}`")).unwrap_or_default()
    )]
    DiskFull {
        /// The location.
        location: String,
        /// The file beside the database that could not be written (an
        /// artifact file), when it was not the database itself.
        file: Option<String>,
    },
    /// The database was written by a newer version of Dagger.
    #[error(
        "database `{location}` has schema version {found}, newer than the {supported} this build supports"
    )]
    NewerSchema {
        /// The location.
        location: String,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// An artifact is referenced but its file is missing.
    #[error("artifact {id} is missing (expected at `{path}`)")]
    MissingArtifact {
        /// The artifact's content hash.
        id: String,
        /// Where its file should be.
        path: String,
    },
    /// An artifact's content does not match its hash.
    #[error("artifact {id} at `{path}` is corrupted: {reason}")]
    CorruptArtifact {
        /// The artifact's content hash.
        id: String,
        /// Where it was read from.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A record that must exist does not.
    #[error("{entity} `{id}` not found")]
    NotFound {
        /// The kind of record (`run`, `task`, `job`, ...).
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// A record with this id exists already.
    #[error("{entity} `{id}` already exists")]
    AlreadyExists {
        /// The kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// An approval or rejection of a node that an earlier request already
    /// decided: the first decision recorded wins.
    #[error(
        "node `{node_id}` of run `{run_id}` was already {decision} (control request {seq}, at {at_ms} ms since the epoch)"
    )]
    AlreadyDecided {
        /// The run.
        run_id: String,
        /// The node.
        node_id: String,
        /// The earlier decision: `approved` or `rejected: <reason>`.
        decision: String,
        /// The earlier request's sequence number.
        seq: u64,
        /// When it was recorded (ms since the epoch).
        at_ms: i64,
    },
    /// A lease-holder's fencing token is out of date: someone else owns the record now.
    #[error("stale fencing token for {entity} `{id}`: held {held}, current {current}")]
    StaleToken {
        /// The kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
        /// The token presented.
        held: u64,
        /// The token the store has.
        current: u64,
    },
    /// A write would break an invariant (illegal transition, cycle, finished job).
    #[error("{0}")]
    Conflict(String),
    /// A file-system error outside the database (artifact files, directories).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A stored value cannot be decoded.
    #[error("stored data for {what} cannot be decoded: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The store's writer has shut down.
    #[error("the store `{location}` is closed")]
    Closed {
        /// The location.
        location: String,
    },
    /// Any other backend error, with the backend's message.
    #[error("storage error on `{location}`: {message}")]
    Backend {
        /// The location.
        location: String,
        /// The backend's message.
        message: String,
    },
}

/// Errors of the metrics hook ([`crate::metrics`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The Prometheus recorder could not be installed (another recorder
    /// was installed first, or its configuration was refused).
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Install(String),
}

/// The umbrella error of Dagger. Users convert their own errors into it, for
/// example with `DaggerError::ExecutionError(err.to_string())`.
#[derive(Debug, thiserror::Error)]
pub enum DaggerError {
    /// A user-level execution error.
    #[error("execution error: {0}")]
    ExecutionError(String),
    /// A workflow, task or message failed validation.
    #[error("validation error: {0}")]
    ValidationError(String),
    /// Something took longer than allowed.
    #[error("timeout: {0}")]
    Timeout(String),
    /// Work was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// Reading or writing the cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A schema failed to compile or a value violated one.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// An illegal status transition.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// JSON (de)serialization failed.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<SchemaViolation> for DaggerError {
    fn from(v: SchemaViolation) -> Self {
        DaggerError::Schema(SchemaError::Violation(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum MyWorkflowError {
        #[error("data validation failed: {0}")]
        Validation(String),
    }

    impl From<MyWorkflowError> for DaggerError {
        fn from(err: MyWorkflowError) -> Self {
            DaggerError::ExecutionError(err.to_string())
        }
    }

    fn user_code() -> Result<(), DaggerError> {
        Err(MyWorkflowError::Validation("row 3".into()))?
    }

    #[test]
    fn user_errors_convert_with_question_mark() {
        let err = user_code().unwrap_err();
        assert_eq!(
            err.to_string(),
            "execution error: data validation failed: row 3"
        );
    }

    #[test]
    fn permanent_is_found_through_box() {
        let boxed: BoxError = Permanent::new("bad").into();
        assert!(Permanent::is_permanent(boxed.as_ref()));
        let other: BoxError = "plain".into();
        assert!(!Permanent::is_permanent(other.as_ref()));
    }

    #[test]
    fn store_errors_name_the_location() {
        let e = StoreError::NewerSchema {
            location: "sqlite:x.db".into(),
            found: 9,
            supported: 2,
        };
        assert!(e.to_string().contains("sqlite:x.db"));
        assert!(e.to_string().contains('9'));
    }
}
