//! The store a command works on: SQLite (`sqlite:PATH`) or, with the
//! `postgres` feature, Postgres (`postgres://…`), shared by worker processes.

use crate::error::CliError;
use dagger_core::Stores;
use dagger_core::store::{NodeQueue, TaskStore};
use std::sync::Arc;

/// Names a Postgres schema to keep the tables in (created if missing)
/// instead of the user's default `search_path`: several pools (or tests)
/// can share one database.
#[cfg(feature = "postgres")]
pub(crate) const SCHEMA_ENV: &str = "DAGGER_PG_SCHEMA";

/// An opened store.
#[derive(Clone)]
pub(crate) enum AnyStore {
    /// The embedded SQLite store.
    Sqlite(dagger_storage::SqliteStore),
    /// A Postgres database, shareable by many processes.
    #[cfg(feature = "postgres")]
    Postgres(dagger_storage::PostgresStore),
}

/// Whether `db` names a Postgres database.
pub(crate) fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The path of `db` when it names a SQLite file that does not exist.
pub(crate) fn missing_file(db: &str) -> Option<std::path::PathBuf> {
    if is_postgres_url(db) {
        return None;
    }
    match dagger_storage::SqliteLocation::parse(db) {
        Ok(dagger_storage::SqliteLocation::File(path)) if !path.exists() => Some(path),
        _ => None,
    }
}

/// "run `ID` not found: no database at PATH".
fn no_such_run(db: &str, run_id: &str) -> CliError {
    let path = missing_file(db).unwrap_or_default();
    CliError::Other(format!(
        "run `{run_id}` not found: no database at {}",
        path.display()
    ))
}

/// The run `given` names: itself when a run has that id, else the one run
/// whose id starts with it. No match leaves `given` as it is (the caller's
/// lookup then reports the run as not found); several are an error listing
/// them.
pub(crate) async fn resolve_run_id(stores: &Stores, given: &str) -> Result<String, CliError> {
    if given.is_empty()
        || stores
            .runs
            .get_run(&dagger_core::RunId::from(given))
            .await?
            .is_some()
    {
        return Ok(given.to_string());
    }
    let all = stores
        .runs
        .list_runs(&dagger_core::store::RunQuery::default())
        .await?;
    let mut candidates: Vec<String> = all
        .into_iter()
        .map(|r| r.run_id.to_string())
        .filter(|id| id.starts_with(given))
        .collect();
    match candidates.len() {
        0 => Ok(given.to_string()),
        1 => Ok(candidates.remove(0)),
        _ => {
            candidates.sort();
            Err(CliError::AmbiguousRunId {
                prefix: given.to_string(),
                candidates,
            })
        }
    }
}

impl AnyStore {
    /// Opens `db`: a `postgres://` URL or a SQLite location.
    pub(crate) async fn open(db: &str) -> Result<Self, CliError> {
        if is_postgres_url(db) {
            #[cfg(feature = "postgres")]
            {
                let options = dagger_storage::PostgresOptions {
                    schema: std::env::var(SCHEMA_ENV).ok().filter(|s| !s.is_empty()),
                    ..Default::default()
                };
                return Ok(Self::Postgres(
                    dagger_storage::PostgresStore::connect_with(db, options).await?,
                ));
            }
            #[cfg(not(feature = "postgres"))]
            return Err(CliError::Usage(
                "this build of dagger has no Postgres support (feature `postgres`)".into(),
            ));
        }
        Ok(Self::Sqlite(dagger_storage::SqliteStore::open(db).await?))
    }

    /// Opens `db` for a command that only reads, creating nothing: `None`
    /// when `db` is a SQLite file that does not exist (see [`missing_file`]).
    /// An existing file is opened as [`crate::open_store`] does, or, when
    /// SQLite says the database is read-only (read-only media, a
    /// write-protected file or directory), read-only, so that `runs list`,
    /// `runs show`, `dot --run` and `serve` still work there.
    pub(crate) async fn open_for_reading(db: &str) -> Result<Option<Self>, CliError> {
        if missing_file(db).is_some() {
            return Ok(None);
        }
        match crate::open_store(db).await {
            Err(CliError::Store(dagger_core::StoreError::ReadOnly { .. }))
                if !is_postgres_url(db) =>
            {
                let options = dagger_storage::SqliteOptions {
                    read_only: true,
                    ..Default::default()
                };
                Ok(Some(Self::Sqlite(
                    dagger_storage::SqliteStore::open_with(db, options).await?,
                )))
            }
            other => other.map(Some),
        }
    }

    /// [`Self::open_for_reading`] for a command about run `run_id`: a
    /// missing database is the error that the run is not found.
    pub(crate) async fn open_run_for_reading(db: &str, run_id: &str) -> Result<Self, CliError> {
        Self::open_for_reading(db)
            .await?
            .ok_or_else(|| no_such_run(db, run_id))
    }

    /// Opens `db` to act on run `run_id` (resume, re-run, cancel, approve,
    /// reject): as [`crate::open_store`] does, but a SQLite file that does
    /// not exist is the error that the run is not found, not a new database.
    pub(crate) async fn open_run(db: &str, run_id: &str) -> Result<Self, CliError> {
        if missing_file(db).is_some() {
            return Err(no_such_run(db, run_id));
        }
        crate::open_store(db).await
    }

    /// Whether the store was opened read-only (by [`Self::open_for_reading`]).
    pub(crate) fn is_read_only(&self) -> bool {
        match self {
            Self::Sqlite(s) => s.is_read_only(),
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => false,
        }
    }

    /// The run stores.
    pub(crate) fn stores(&self) -> Stores {
        match self {
            Self::Sqlite(s) => s.stores(),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.stores(),
        }
    }

    /// Where it is, for messages.
    pub(crate) fn location(&self) -> String {
        match self {
            Self::Sqlite(s) => s.location().to_string(),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => s.location().to_string(),
        }
    }

    /// The task store.
    pub(crate) fn task_store(&self) -> Arc<dyn TaskStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Retention (`dagger gc`, `dagger worker --prune-older-than`).
    pub(crate) fn retention(&self) -> Arc<dyn dagger_core::store::Retention> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The message log (SQLite only).
    pub(crate) fn message_log(&self) -> Option<Arc<dyn dagger_core::store::MessageLog>> {
        match self {
            Self::Sqlite(s) => Some(Arc::new(s.clone())),
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => None,
        }
    }

    /// The node work queue worker processes share (Postgres only).
    pub(crate) fn node_queue(&self) -> Option<Arc<dyn NodeQueue>> {
        match self {
            Self::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Self::Postgres(s) => Some(Arc::new(s.clone())),
        }
    }
}
