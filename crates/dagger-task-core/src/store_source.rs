//! What [`crate::TaskManager::new`] keeps its jobs in: an opened store, or
//! the original README's `Option<PathBuf>` (`None`: in memory; a path: a
//! SQLite file).

use dagger_core::store::{MemoryStore, TaskStore};
use std::path::PathBuf;
use std::sync::Arc;

/// The store argument of [`crate::TaskManager::new`]: any opened store
/// (`Arc<SqliteStore>`, `Arc<PostgresStore>`, `Arc<dyn TaskStore>`), or an
/// `Option<PathBuf>`: `None` keeps everything in memory (as
/// [`crate::TaskManager::in_memory`]), `Some(path)` keeps it in the SQLite
/// file at `path`.
///
/// A path is opened at the manager's first operation, not by the
/// constructor (which cannot fail): if it cannot be opened, that operation
/// and every later one returns the store's error (each tries again). To
/// see the error at once, open the store first:
/// `Arc::new(SqliteStore::open("sqlite:path").await?)`.
pub struct TaskStoreSource(Arc<dyn TaskStore>);

impl TaskStoreSource {
    /// The store.
    pub fn into_store(self) -> Arc<dyn TaskStore> {
        self.0
    }
}

impl std::fmt::Debug for TaskStoreSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TaskStoreSource")
            .field(&self.0.location())
            .finish()
    }
}

impl From<Arc<dyn TaskStore>> for TaskStoreSource {
    fn from(store: Arc<dyn TaskStore>) -> Self {
        Self(store)
    }
}

impl<S: TaskStore> From<Arc<S>> for TaskStoreSource {
    fn from(store: Arc<S>) -> Self {
        Self(store)
    }
}

impl From<Option<PathBuf>> for TaskStoreSource {
    fn from(path: Option<PathBuf>) -> Self {
        match path {
            None => Self(Arc::new(MemoryStore::new())),
            Some(path) => Self(file_store(path)),
        }
    }
}

#[cfg(feature = "sqlite")]
fn file_store(path: PathBuf) -> Arc<dyn TaskStore> {
    Arc::new(lazy::LazySqlite::new(path))
}

#[cfg(not(feature = "sqlite"))]
fn file_store(path: PathBuf) -> Arc<dyn TaskStore> {
    Arc::new(unavailable::NoSqlite(path))
}

#[cfg(feature = "sqlite")]
mod lazy {
    use dagger_core::StoreError;
    use dagger_core::store::{TaskStore, TaskTx};
    use dagger_storage::{SqliteOptions, SqliteStore};
    use parking_lot::Mutex;
    use std::path::PathBuf;
    use std::sync::Arc;

    type Body<'a> = dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send + 'a;

    /// A SQLite file opened at its first use.
    pub(super) struct LazySqlite {
        location: String,
        store: Mutex<Option<Arc<SqliteStore>>>,
    }

    impl LazySqlite {
        pub(super) fn new(path: PathBuf) -> Self {
            Self {
                location: format!("sqlite:{}", path.display()),
                store: Mutex::new(None),
            }
        }

        fn store(&self) -> Result<Arc<SqliteStore>, StoreError> {
            let mut slot = self.store.lock();
            if let Some(store) = &*slot {
                return Ok(store.clone());
            }
            let store = Arc::new(SqliteStore::open_blocking(
                &self.location,
                SqliteOptions::default(),
            )?);
            *slot = Some(store.clone());
            Ok(store)
        }
    }

    impl TaskStore for LazySqlite {
        // Called through the trait: with the store's `unstable-raw`
        // feature, `SqliteStore` has inherent methods of the same names.
        fn transact(&self, f: &mut Body<'_>) -> Result<(), StoreError> {
            TaskStore::transact(self.store()?.as_ref(), f)
        }

        fn read(&self, f: &mut Body<'_>) -> Result<(), StoreError> {
            TaskStore::read(self.store()?.as_ref(), f)
        }

        fn location(&self) -> String {
            self.location.clone()
        }

        fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
            TaskStore::change_signal(self.store().ok()?.as_ref())
        }
    }
}

#[cfg(not(feature = "sqlite"))]
mod unavailable {
    use dagger_core::StoreError;
    use dagger_core::store::{TaskStore, TaskTx};
    use std::path::PathBuf;

    /// A path given to a build without SQLite: every operation fails.
    pub(super) struct NoSqlite(pub(super) PathBuf);

    impl TaskStore for NoSqlite {
        fn transact(
            &self,
            _f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
        ) -> Result<(), StoreError> {
            Err(StoreError::InvalidLocation {
                location: self.location(),
                reason: "built without the `sqlite` feature; pass an opened store".into(),
            })
        }

        fn location(&self) -> String {
            format!("sqlite:{}", self.0.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_in_memory_and_a_path_opens_at_first_use() {
        let memory = TaskStoreSource::from(None).into_store();
        assert_eq!(memory.location(), "memory");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs_db");
        let file = TaskStoreSource::from(Some(path.clone())).into_store();
        assert!(!path.exists(), "not opened by the constructor");
        dagger_core::store::read(file.as_ref(), |tx| tx.job(&"j".into())).unwrap();
        assert!(path.exists(), "opened at first use");
    }

    #[test]
    fn a_path_that_cannot_be_opened_fails_each_operation() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("a_file");
        std::fs::write(&not_a_dir, "").unwrap();
        let path = not_a_dir.join("jobs_db");
        let file = TaskStoreSource::from(Some(path)).into_store();
        for _ in 0..2 {
            assert!(dagger_core::store::read(file.as_ref(), |tx| tx.job(&"j".into())).is_err());
        }
    }
}
