//! Mapping of SQLite errors onto [`dagger_core::StoreError`], so callers see
//! "locked", "read-only" and "full" as typed errors naming the database.
//!
//! A full disk does not always reach us as `SQLITE_FULL`: SQLite reports
//! `ENOSPC` as `SQLITE_FULL` only for writes to the database and journal
//! files; growing the WAL index (`-shm`, `SQLITE_IOERR_SHMSIZE`), syncing or
//! truncating a file report `SQLITE_IOERR_*`, and rusqlite does not pass on
//! the `errno`. So a write-side I/O error on a file system with (almost) no
//! space left is reported as [`StoreError::DiskFull`] too.

use crate::sqlite::location::SqliteLocation;
use dagger_core::StoreError;
use rusqlite::ErrorCode;
use rusqlite::ffi;
use std::path::{Path, PathBuf};

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
        ErrorCode::DiskFull => StoreError::DiskFull {
            location,
            file: None,
        },
        ErrorCode::SystemIoFailure
            if is_write_io_error(code.extended_code) && no_space_left(&location) =>
        {
            StoreError::DiskFull {
                location,
                file: None,
            }
        }
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

/// Free space below which a write-side I/O error is taken for a full disk:
/// more than any single allocation SQLite makes (a page, a 32 KiB `-shm`
/// region), far less than any disk in ordinary use keeps free.
const FULL_BELOW_BYTES: u64 = 1 << 20;

/// Whether an extended `SQLITE_IOERR_*` code comes from writing, growing,
/// syncing or truncating a file, the operations that fail with `ENOSPC`.
fn is_write_io_error(extended: i32) -> bool {
    matches!(
        extended,
        ffi::SQLITE_IOERR
            | ffi::SQLITE_IOERR_WRITE
            | ffi::SQLITE_IOERR_FSYNC
            | ffi::SQLITE_IOERR_DIR_FSYNC
            | ffi::SQLITE_IOERR_TRUNCATE
            | ffi::SQLITE_IOERR_SHMOPEN
            | ffi::SQLITE_IOERR_SHMSIZE
            | ffi::SQLITE_IOERR_SHMMAP
    )
}

/// The directory holding the files of the store at `location` (a
/// `sqlite::memory:` store lives in the temporary directory).
pub(crate) fn directory_of(location: &str) -> Option<PathBuf> {
    match SqliteLocation::parse(location).ok()? {
        SqliteLocation::Memory => Some(std::env::temp_dir()),
        SqliteLocation::File(path) => Some(match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }),
    }
}

/// Whether the file system holding the store at `location` has less than
/// [`FULL_BELOW_BYTES`] available (false when that cannot be told).
fn no_space_left(location: &str) -> bool {
    directory_of(location)
        .and_then(|dir| available_bytes(&dir))
        .is_some_and(|free| free < FULL_BELOW_BYTES)
}

/// Bytes available to this process on the file system holding `dir`.
#[cfg(unix)]
pub(crate) fn available_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    #[allow(clippy::useless_conversion)] // the widths differ between platforms
    let (blocks, size) = (
        u64::try_from(st.blocks_available()).ok()?,
        u64::try_from(st.fragment_size()).ok()?,
    );
    Some(blocks.saturating_mul(size))
}

/// Bytes available on the file system holding `dir` (unknown here).
#[cfg(not(unix))]
pub(crate) fn available_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Whether this process may write `path`: its directory (for the `-wal`
/// and `-shm` files) and, when it exists, the file itself. A read-only
/// mount answers no even for root; unknown (non-unix) answers yes.
#[cfg(unix)]
pub(crate) fn writable(path: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    dir_writable(path) && (!path.exists() || access(path, AccessFlags::W_OK).is_ok())
}

/// Whether this process may create files (`-wal`, `-shm`) beside `path`.
#[cfg(unix)]
pub(crate) fn dir_writable(path: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    access(dir, AccessFlags::W_OK).is_ok()
}

/// Whether this process may write `path` (assumed so here).
#[cfg(not(unix))]
pub(crate) fn writable(_path: &Path) -> bool {
    true
}

/// Whether this process may create files beside `path` (assumed so here).
#[cfg(not(unix))]
pub(crate) fn dir_writable(_path: &Path) -> bool {
    true
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
