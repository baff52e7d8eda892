//! The SQLite store: an r2d2 pool for readers and one writer thread for
//! every write (see [`writer`]).

pub(crate) mod artifacts;
pub(crate) mod attempts;
mod checkpoint;
pub(crate) mod location;
pub(crate) mod messages;
pub(crate) mod migrations;
mod retention;
mod runs;
mod schedules;
mod snapshots;
pub(crate) mod tasks;
mod writer;

use crate::error::{BUSY_TIMEOUT_MS, dir_writable, map_pool, map_sqlite, with_waited, writable};
use checkpoint::Checkpointer;
use dagger_core::StoreError;
use dagger_core::store::Durability;
use location::SqliteLocation;
use parking_lot::Mutex;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tasks::FileShared;
use writer::{AnyResult, Isolation, Job, Reply};

/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 128;

/// Declares an item that hands out rusqlite types (connections,
/// transactions, errors): public with the `unstable-raw` feature, for the
/// crate's own tests and benches and for tools that need raw SQL;
/// crate-private otherwise, so that no rusqlite type is part of the stable
/// API.
macro_rules! raw_api {
    ($(#[$attr:meta])* pub $($item:tt)*) => {
        #[cfg(feature = "unstable-raw")]
        $(#[$attr])*
        pub $($item)*
        #[cfg(not(feature = "unstable-raw"))]
        $(#[$attr])*
        pub(crate) $($item)*
    };
}

/// Options for opening a [`SqliteStore`].
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// How writes are kept (default [`Durability::Batched`]).
    pub durability: Durability,
    /// Reader connections in the pool.
    pub max_readers: u32,
    /// Limit of database pages (tests use it to simulate a full disk).
    pub max_page_count: Option<u64>,
    /// How long a connection waits for another process's lock before a
    /// write fails with [`StoreError::Locked`] (default 5 s).
    pub busy_timeout: Duration,
    /// Opens the file read-only: reads work, every write fails with
    /// [`StoreError::ReadOnly`]. The schema must already be at
    /// [`crate::sqlite::migrations::latest_version`]. When the file's directory cannot be
    /// written (read-only media), the file is opened `immutable`, since
    /// SQLite could not create the WAL index (`-shm`) it needs otherwise.
    pub read_only: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Batched,
            max_readers: 4,
            max_page_count: None,
            busy_timeout: Duration::from_millis(BUSY_TIMEOUT_MS),
            read_only: false,
        }
    }
}

/// A SQLite database holding runs, artifacts, snapshots, tasks and messages.
/// Cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) location: String,
    pub(crate) durability: Durability,
    /// Opened with [`SqliteOptions::read_only`].
    read_only: bool,
    pub(crate) pool: r2d2::Pool<SqliteConnectionManager>,
    /// What this process's handles on the same file share (its write lock,
    /// the task change signal).
    pub(crate) file: Arc<FileShared>,
    /// Directory for artifacts too large to keep inline.
    pub(crate) artifact_dir: PathBuf,
    /// The configured busy timeout (reported by [`StoreError::Locked`]).
    pub(crate) busy_timeout_ms: u64,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    /// Jobs queued so far; with `processed` it tells a reader whether
    /// accepted writes are still waiting for their commit.
    submitted: AtomicU64,
    /// Jobs the writer has finished, in queue order.
    processed: Arc<AtomicU64>,
    /// The writer thread, which must never wait for itself.
    writer_id: std::thread::ThreadId,
    deferred_error: Arc<Mutex<Option<StoreError>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Runs WAL checkpoints off the commit path (none when read-only).
    /// Declared before the temporary directory, so it stops first.
    _checkpointer: Option<Checkpointer>,
    /// Keeps a `sqlite::memory:` store's files alive until drop.
    _temp_dir: Option<TempDir>,
    /// Started records not written yet (see `RunStore::put_node_started`).
    pub(crate) pending_starts: Arc<crate::sqlite::runs::PendingStarts>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.inner.location)
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sender.lock().take();
        if let Some(handle) = self.writer_thread.lock().take() {
            // A job that captured a store handle can drop the last one on the
            // writer thread; it must not join itself (the join would fail and
            // lose the batch). The writer ends by itself once the queue closes.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

raw_api! {
    /// Maps rusqlite errors to [`StoreError`]s naming a store, without keeping
    /// the store alive: write closures should capture this rather than a
    /// [`SqliteStore`] clone, so that dropping the last handle waits for the
    /// queued writes instead of leaving that to the writer thread.
    #[derive(Debug, Clone)]
    pub struct ErrorMapper {
        location: Arc<str>,
        busy_timeout_ms: u64,
    }
}

impl ErrorMapper {
    raw_api! {
        /// The store error for `err` (`Locked`, `ReadOnly`, `DiskFull`, ...).
        pub fn map_err(&self, err: rusqlite::Error) -> StoreError {
            with_waited(map_sqlite(err, &self.location), self.busy_timeout_ms)
        }
    }
}

/// A directory removed on drop (for `sqlite::memory:`).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn configure(
    conn: &Connection,
    durability: Durability,
    options: &SqliteOptions,
) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    // Every store module keeps its hot statements in this cache (`prepare_cached`);
    // rusqlite's default of 16 would evict them once all areas are in use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let sync = match durability {
        Durability::Memory => "OFF",
        Durability::Batched => "NORMAL",
        Durability::Sync => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    if !options.read_only {
        // The store's checkpointer thread does this off the commit path.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    }
    if let Some(pages) = options.max_page_count {
        conn.pragma_update(
            None,
            "max_page_count",
            i64::try_from(pages).unwrap_or(i64::MAX),
        )?;
    }
    Ok(())
}

/// Configures the writer connection, switches the file to WAL and brings
/// its schema up to date (or, read-only, checks that it is). Every step may
/// run again.
fn prepare_file(
    writer: &mut Connection,
    durability: Durability,
    options: &SqliteOptions,
    name: &str,
) -> Result<(), StoreError> {
    let sql = |e: rusqlite::Error| map_sqlite(e, name);
    configure(writer, durability, options).map_err(sql)?;
    if options.read_only {
        return migrations::require_latest(writer, name);
    }
    let mode: String = writer
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(location = %name, mode, "could not switch to WAL");
    }
    migrations::migrate(writer, name).map(|_| ())
}

/// Runs `step` again while it fails with [`StoreError::Locked`], until
/// `busy_timeout` has passed. Opening a file that another process is
/// creating (switching it to WAL) or closing as its last user (the final
/// checkpoint) meets locks that SQLite reports at once, without its busy
/// handler; `dagger run` polled by `dagger runs show` failed that way.
fn retry_while_locked(
    busy_timeout: Duration,
    mut step: impl FnMut() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + busy_timeout;
    loop {
        match step() {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `location` with default options.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_with(location, SqliteOptions::default()).await
    }

    /// Opens the store with explicit options.
    pub async fn open_with(location: &str, options: SqliteOptions) -> Result<Self, StoreError> {
        let location = location.to_string();
        tokio::task::spawn_blocking(move || Self::open_blocking(&location, options))
            .await
            .map_err(|e| StoreError::Backend {
                location: "sqlite".into(),
                message: e.to_string(),
            })?
    }

    /// Opens the store from synchronous code.
    pub fn open_blocking(location: &str, options: SqliteOptions) -> Result<Self, StoreError> {
        let parsed = SqliteLocation::parse(location)?;
        let (path, temp_dir, durability) = match parsed {
            SqliteLocation::File(p) => (p, None, options.durability),
            SqliteLocation::Memory => {
                let dir = std::env::temp_dir().join(format!("dagger-mem-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
                    context: format!("creating temporary directory `{}`", dir.display()),
                    source,
                })?;
                (
                    dir.join("memory.db"),
                    Some(TempDir(dir)),
                    Durability::Memory,
                )
            }
        };
        let name = if temp_dir.is_some() {
            "sqlite::memory:".to_string()
        } else {
            format!("sqlite:{}", path.display())
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(StoreError::Open {
                location: name,
                reason: format!("directory `{}` does not exist", parent.display()),
            });
        }
        if path.is_dir() {
            return Err(StoreError::Open {
                location: name,
                reason: format!("`{}` is a directory, not a database file", path.display()),
            });
        }
        let busy_timeout_ms = u64::try_from(options.busy_timeout.as_millis()).unwrap_or(u64::MAX);
        let sql = |e: rusqlite::Error| with_waited(map_sqlite(e, &name), busy_timeout_ms);

        // On read-only media (or in a directory this process cannot write)
        // SQLite cannot create the `-shm` file a WAL database needs, even to
        // read: a read-only store opens such a file immutable, and a
        // read-write store says "read-only" rather than "unable to open".
        let may_write = temp_dir.is_some() || writable(&path);
        // A `-wal` file left by a writer holds commits not yet in the main
        // file; immutable would skip them, so such a file is opened plainly
        // read-only (SQLite reads it when its `-shm` exists too).
        let immutable =
            options.read_only && temp_dir.is_none() && !dir_writable(&path) && !has_wal(&path);
        let (open_path, uri_flag) = if immutable {
            (immutable_uri(&path), OpenFlags::SQLITE_OPEN_URI)
        } else {
            (path.clone(), OpenFlags::empty())
        };
        let read_only_media = |e: StoreError| match e {
            StoreError::Open { .. } | StoreError::Backend { .. } if !may_write => {
                StoreError::ReadOnly {
                    location: name.clone(),
                }
            }
            other => other,
        };
        let mode_flags = if options.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        };
        let mut writer = Connection::open_with_flags(
            &open_path,
            mode_flags | uri_flag | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| read_only_media(sql(e)))?;
        // SQLite quietly opens a file it cannot write read-only (read-only
        // media with a `-wal` left beside the file): every write would fail,
        // so a read-write store says so now, as on media without one.
        if !options.read_only && writer.is_readonly(rusqlite::MAIN_DB).map_err(sql)? {
            return Err(StoreError::ReadOnly { location: name });
        }
        retry_while_locked(options.busy_timeout, || {
            prepare_file(&mut writer, durability, &options, &name)
        })
        .map_err(|e| read_only_media(with_waited(e, busy_timeout_ms)))?;
        // The file exists now, so its canonical path names it.
        let file = tasks::shared(&path);

        let reader_flags = if options.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let max_readers = options.max_readers.max(1);
        let reader_options = SqliteOptions {
            max_page_count: None,
            ..options
        };
        let manager = SqliteConnectionManager::file(&open_path)
            .with_flags(reader_flags | uri_flag | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| configure(c, durability, &reader_options));
        let pool = r2d2::Pool::builder()
            .max_size(max_readers)
            .min_idle(Some(0))
            .build(manager)
            .map_err(|e| map_pool(&e, &name))?;

        let checkpointer = if options.read_only {
            None
        } else {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql)?;
            Some(
                Checkpointer::start(conn, name.clone(), file.clone()).map_err(|source| {
                    StoreError::Io {
                        context: "spawning the SQLite checkpoint thread".into(),
                        source,
                    }
                })?,
            )
        };
        let artifact_dir = artifact_dir_for(&path);
        let (tx, rx) = mpsc::channel();
        let deferred_error = Arc::new(Mutex::new(None));
        let processed = Arc::new(AtomicU64::new(0));
        let thread = {
            let shared = writer::Shared {
                location: name.clone(),
                deferred: deferred_error.clone(),
                processed: processed.clone(),
                busy_timeout_ms,
                file: file.clone(),
            };
            std::thread::Builder::new()
                .name("dagger-sqlite-writer".into())
                .spawn(move || writer::run(writer, &rx, &shared))
                .map_err(|source| StoreError::Io {
                    context: "spawning the SQLite writer thread".into(),
                    source,
                })?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                location: name,
                durability,
                read_only: options.read_only,
                pool,
                file,
                artifact_dir,
                busy_timeout_ms,
                sender: Mutex::new(Some(tx)),
                submitted: AtomicU64::new(0),
                processed,
                deferred_error,
                writer_id: thread.thread().id(),
                writer_thread: Mutex::new(Some(thread)),
                _checkpointer: checkpointer,
                _temp_dir: temp_dir,
                pending_starts: Arc::default(),
            }),
        })
    }

    /// The location this store was opened with (`sqlite:path` or `sqlite::memory:`).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Whether the store was opened read-only ([`SqliteOptions::read_only`]):
    /// every write fails with [`StoreError::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        let guard = self.inner.sender.lock();
        let sender = guard.as_ref().ok_or_else(|| StoreError::Closed {
            location: self.inner.location.clone(),
        })?;
        sender.send(job).map_err(|_| StoreError::Closed {
            location: self.inner.location.clone(),
        })?;
        // Counted under the sender lock, so the count matches queue order.
        self.inner.submitted.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// True when every job queued so far has been processed by the writer.
    fn caught_up(&self) -> bool {
        let submitted = self.inner.submitted.load(Ordering::Acquire);
        self.inner.processed.load(Ordering::Acquire) >= submitted
    }

    /// Waits until the writer has processed everything queued before this
    /// call (a barrier; errors of queued jobs stay for [`SqliteStore::flush`]).
    async fn catch_up(&self) -> Result<(), StoreError> {
        if self.caught_up() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(Job::Flush(Reply::Async(tx)))?;
        rx.await.map(drop).map_err(|_| StoreError::Closed {
            location: self.inner.location.clone(),
        })
    }

    /// [`SqliteStore::catch_up`] for synchronous callers.
    fn catch_up_blocking(&self) -> Result<(), StoreError> {
        // A write job reading through the pool must not wait for its own batch.
        if self.caught_up() || std::thread::current().id() == self.inner.writer_id {
            return Ok(());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.enqueue(Job::Flush(Reply::Blocking(tx)))?;
        rx.recv().map(drop).map_err(|_| StoreError::Closed {
            location: self.inner.location.clone(),
        })
    }

    raw_api! {
        /// Runs `work` on the writer thread inside a group-committed transaction
        /// and resolves after the commit.
        pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
        where
            T: Send + 'static,
            F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        {
            self.write_isolated(work, Isolation::Savepoint).await
        }
    }

    async fn write_isolated<T, F>(&self, work: F, isolation: Isolation) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(Job::Write {
            work: box_work(work),
            reply: Reply::Async(tx),
            isolation,
        })?;
        let result = rx.await.map_err(|_| StoreError::Closed {
            location: self.inner.location.clone(),
        })?;
        unbox(result, &self.inner.location)
    }

    /// Like [`SqliteStore::write`], for synchronous callers (not inside an async task's poll).
    #[cfg(feature = "unstable-raw")]
    pub fn write_blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.enqueue(Job::Write {
            work: box_work(work),
            reply: Reply::Blocking(tx),
            isolation: Isolation::Savepoint,
        })?;
        let result = rx.recv().map_err(|_| StoreError::Closed {
            location: self.inner.location.clone(),
        })?;
        unbox(result, &self.inner.location)
    }

    raw_api! {
        /// Queues `work` without waiting for its commit. Order is kept; an error
        /// is reported by the next [`SqliteStore::flush`] (or the next `submit`,
        /// whichever comes first).
        pub fn submit<F>(&self, work: F) -> Result<(), StoreError>
        where
            F: FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send + 'static,
        {
            self.submit_isolated(work, Isolation::Savepoint)
        }
    }

    fn submit_isolated<F>(&self, work: F, isolation: Isolation) -> Result<(), StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        self.take_deferred_error()?;
        self.enqueue(Job::Write {
            work: box_work(work),
            reply: Reply::None,
            isolation,
        })
    }

    raw_api! {
        /// Writes according to the durability mode: waits for the commit in
        /// [`Durability::Sync`], only queues otherwise.
        pub async fn write_durable<F>(&self, work: F) -> Result<(), StoreError>
        where
            F: FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send + 'static,
        {
            match self.inner.durability {
                Durability::Sync => self.write(work).await,
                Durability::Batched | Durability::Memory => self.submit(work),
            }
        }
    }

    /// [`SqliteStore::write_durable`] for work that needs no savepoint of its
    /// own: it changes the database with one statement, or its earlier
    /// changes may stay when a later statement fails (see
    /// [`Isolation::Statement`]).
    pub(crate) async fn write_durable_statement<F>(&self, work: F) -> Result<(), StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        match self.inner.durability {
            Durability::Sync => self.write_isolated(work, Isolation::Statement).await,
            Durability::Batched | Durability::Memory => {
                self.submit_isolated(work, Isolation::Statement)
            }
        }
    }

    /// Queues statement-isolated `work` without waiting for its commit, in
    /// every durability mode (for records a crash may lose, see
    /// `RunStore::put_node_started`).
    pub(crate) fn submit_statement<F>(&self, work: F) -> Result<(), StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        self.submit_isolated(work, Isolation::Statement)
    }

    /// Waits until every write queued so far is committed; reports the first
    /// error of a queued write since the last flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(Job::Flush(Reply::Async(tx)))?;
        let result = rx.await.map_err(|_| StoreError::Closed {
            location: self.inner.location.clone(),
        })?;
        unbox::<()>(result, &self.inner.location)?;
        self.take_deferred_error()
    }

    fn take_deferred_error(&self) -> Result<(), StoreError> {
        match self.inner.deferred_error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    raw_api! {
        /// Runs `read` with a pooled connection on the blocking thread pool.
        ///
        /// The read sees every write this store accepted before the call,
        /// including queued ([`SqliteStore::submit`]) ones: if any is still
        /// waiting for its commit, the read waits for it first.
        pub async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
        where
            T: Send + 'static,
            F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        {
            self.catch_up().await?;
            let store = self.clone();
            tokio::task::spawn_blocking(move || store.read_pooled(read))
                .await
                .map_err(|e| StoreError::Backend {
                    location: self.inner.location.clone(),
                    message: e.to_string(),
                })?
        }
    }

    raw_api! {
        /// Runs `read` with a pooled connection on the current thread; like
        /// [`SqliteStore::read`], it sees every write accepted before the call.
        pub fn read_blocking<T, F>(&self, read: F) -> Result<T, StoreError>
        where
            F: FnOnce(&Connection) -> Result<T, StoreError>,
        {
            self.catch_up_blocking()?;
            self.read_pooled(read)
        }
    }

    fn read_pooled<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let conn = self
            .inner
            .pool
            .get()
            .map_err(|e| map_pool(&e, &self.inner.location))?;
        read(&conn)
    }

    raw_api! {
        /// An [`ErrorMapper`] for write closures.
        pub fn error_mapper(&self) -> ErrorMapper {
            ErrorMapper {
                location: Arc::from(self.inner.location.as_str()),
                busy_timeout_ms: self.inner.busy_timeout_ms,
            }
        }
    }

    /// Maps a rusqlite error to a store error naming this database.
    pub fn map_err(&self, err: rusqlite::Error) -> StoreError {
        with_waited(
            map_sqlite(err, &self.inner.location),
            self.inner.busy_timeout_ms,
        )
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when the database is sound.
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        let location = self.inner.location.clone();
        self.read(move |c| {
            let rows: Vec<String> = c
                .prepare("PRAGMA integrity_check")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(|e| map_sqlite(e, &location))?;
            if rows == ["ok"] {
                Ok(())
            } else {
                Err(StoreError::Backend {
                    location,
                    message: format!("integrity check failed: {}", rows.join("; ")),
                })
            }
        })
        .await
    }
}

fn box_work<T, F>(work: F) -> crate::sqlite::writer::Work
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
{
    Box::new(move |tx| work(tx).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>))
}

fn unbox<T: 'static>(result: AnyResult, location: &str) -> Result<T, StoreError> {
    let boxed = result?;
    boxed
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| StoreError::Backend {
            location: location.to_string(),
            message: "internal: writer returned an unexpected type".into(),
        })
}

/// `<db>.artifacts/` beside the database file.
/// Whether a non-empty `-wal` file lies next to the database at `path`.
fn has_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_os_string();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

/// The `file:` URI opening `path` immutable (nothing can change it while it
/// is open, so SQLite takes no locks and needs no `-shm` file). `%`, `?` and
/// `#` are escaped so that any file name survives.
fn immutable_uri(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for c in abs.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    PathBuf::from(uri)
}

fn artifact_dir_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".artifacts");
    db.with_file_name(name)
}

impl SqliteStore {
    /// This store as the bundle of stores a DAG Flow executor records runs in.
    pub fn stores(&self) -> dagger_core::Stores {
        dagger_core::Stores::from(self.clone())
    }
}

impl From<SqliteStore> for dagger_core::Stores {
    fn from(store: SqliteStore) -> Self {
        let durability = store.durability();
        let location = store.location().to_string();
        let shared = Arc::new(store);
        Self {
            runs: shared.clone(),
            artifacts: shared.clone(),
            snapshots: shared.clone(),
            schedules: shared,
            durability,
            location,
        }
    }
}
