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
    if let rusqlite::Error::SqliteFailure(e, msg) = &err {
        match e.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Locked {
                    location,
                    waited_ms: BUSY_TIMEOUT_MS,
                };
            }
            ErrorCode::ReadOnly => return StoreError::ReadOnly { location },
            ErrorCode::DiskFull => return StoreError::DiskFull { location },
            ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::PermissionDenied => {
                return StoreError::Open {
                    location,
                    reason: msg.clone().unwrap_or_else(|| e.to_string()),
                };
            }
            _ => {}
        }
    }
    StoreError::Backend {
        location,
        message: err.to_string(),
    }
}

/// Maps a pool error (a connection could not be opened).
pub(crate) fn map_pool(err: r2d2::Error, location: &str) -> StoreError {
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
