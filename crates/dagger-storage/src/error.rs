//! Mapping of SQLite errors onto [`dagger_core::StoreError`], so callers see
//! "locked", "read-only" and "full" as typed errors naming the database.

use dagger_core::StoreError;
use rusqlite::ErrorCode;

/// Errors of this crate are [`StoreError`]s; this alias keeps signatures short.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The busy timeout used on every connection, in milliseconds.
pub(crate) const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Maps a rusqlite error to the store error that names `location`.
pub(crate) fn map_sqlite(err: rusqlite::Error, location: &str) -> StoreError {
    let location = location.to_string();
    let (code, msg) = match err {
        rusqlite::Error::SqliteFailure(code, msg) => (code, msg),
        other => {
            return StoreError::Backend {
                location,
                message: other.to_string(),
            };
        }
    };
    match code.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Locked {
            location,
            waited_ms: BUSY_TIMEOUT_MS,
        },
        ErrorCode::ReadOnly => StoreError::ReadOnly { location },
        ErrorCode::DiskFull => StoreError::DiskFull { location },
        ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::PermissionDenied => {
            StoreError::Open {
                location,
                reason: msg.unwrap_or_else(|| code.to_string()),
            }
        }
        _ => StoreError::Backend {
            location,
            message: rusqlite::Error::SqliteFailure(code, msg).to_string(),
        },
    }
}

/// Maps a pool error (a connection could not be opened).
pub(crate) fn map_pool(err: &r2d2::Error, location: &str) -> StoreError {
    StoreError::Open {
        location: location.to_string(),
        reason: err.to_string(),
    }
}

/// Maps a JSON error while encoding or decoding a stored column.
pub(crate) fn decode(what: impl Into<String>, err: impl std::fmt::Display) -> StoreError {
    StoreError::Decode {
        what: what.into(),
        reason: err.to_string(),
    }
}

/// Replaces the default wait of a [`StoreError::Locked`] with the busy
/// timeout the store was opened with; other errors pass through.
pub(crate) fn with_waited(err: StoreError, busy_timeout_ms: u64) -> StoreError {
    match err {
        StoreError::Locked { location, .. } => StoreError::Locked {
            location,
            waited_ms: busy_timeout_ms,
        },
        other => other,
    }
}

/// True when `err` is a failed foreign-key constraint.
pub(crate) fn is_foreign_key(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}
