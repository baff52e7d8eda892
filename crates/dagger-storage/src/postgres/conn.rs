//! Pooled Postgres connections with a per-connection statement cache, and
//! the mapping of Postgres errors onto [`StoreError`]s naming the URL.

use dagger_core::StoreError;
use postgres::error::SqlState;
use postgres::{Client, GenericClient, NoTls, Statement};
use std::collections::HashMap;

/// A connection of the pool: the client and the statements prepared on it.
pub(crate) struct PgConn {
    /// The client.
    pub(crate) client: Client,
    /// Statements prepared on this session, by SQL text.
    pub(crate) stmts: StmtCache,
    broken: bool,
}

impl PgConn {
    /// Tells the pool to discard this connection when it is returned.
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }
}

/// Statements prepared on one session (named statements outlive transactions).
#[derive(Default)]
pub(crate) struct StmtCache(HashMap<&'static str, Statement>);

impl StmtCache {
    /// The prepared statement for `sql`, preparing it on first use.
    pub(crate) fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql)?;
        self.0.insert(sql, s.clone());
        Ok(s)
    }
}

/// The r2d2 manager of [`PgConn`]s.
pub(crate) struct PgManager {
    config: postgres::Config,
    location: String,
}

impl PgManager {
    pub(crate) fn new(config: postgres::Config, location: String) -> Self {
        Self { config, location }
    }
}

/// Why a connection could not be opened (a [`StoreError::Open`] in the end).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to `{location}`: {}", describe(source))]
pub(crate) struct ConnectError {
    location: String,
    source: postgres::Error,
}

impl r2d2::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<PgConn, ConnectError> {
        let client = self.config.connect(NoTls).map_err(|source| ConnectError {
            location: self.location.clone(),
            source,
        })?;
        Ok(PgConn {
            client,
            stmts: StmtCache::default(),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), ConnectError> {
        conn.client
            .simple_query("")
            .map(drop)
            .map_err(|source| ConnectError {
                location: self.location.clone(),
                source,
            })
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken || conn.client.is_closed()
    }
}

/// The failure of a closure run on a connection: a raw Postgres error (which
/// [`crate::PostgresStore`] maps, or retries when the connection was lost)
/// or an already typed store error.
#[derive(Debug)]
pub(crate) enum PgFail {
    /// From the client.
    Pg(postgres::Error),
    /// Typed by the caller (not found, already exists, corrupt, ...).
    Store(StoreError),
}

impl From<postgres::Error> for PgFail {
    fn from(e: postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl From<StoreError> for PgFail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// True when the session is gone (server restart, network cut, admin
/// shutdown): the operation did not take effect unless it had committed,
/// and a fresh connection may succeed.
pub(crate) fn is_connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || code.code().starts_with("08")
        }
        // No server error code: an I/O failure on the socket.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// The client's error with its causes (`postgres::Error`'s `Display` alone
/// says only "db error" or "error connecting to server").
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Maps a Postgres error to the store error that names `location`.
pub(crate) fn map_pg(e: &postgres::Error, location: &str) -> StoreError {
    let location = location.to_string();
    if let Some(code) = e.code() {
        let class = &code.code()[..2];
        if *code == SqlState::DISK_FULL {
            return StoreError::DiskFull {
                location,
                file: None,
            };
        }
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return StoreError::ReadOnly { location };
        }
        // Connection exceptions, authorization, unknown database, shutdown.
        if matches!(class, "08" | "28" | "3D" | "57") {
            return StoreError::Open {
                location,
                reason: describe(e),
            };
        }
    }
    StoreError::Backend {
        location,
        message: describe(e),
    }
}

/// Maps a JSON error while encoding or decoding a stored column (the same
/// mapping as the SQLite store's).
pub(crate) use crate::error::decode;

pub(crate) use crate::rows::wide;

/// Keeps a dedicated connection `LISTEN`ing on `channel` until the store
/// behind `alive` is dropped, handing each notification's payload to
/// `on_payload`. After every (re)connection it calls `on_connected`, since
/// notifications sent while not listening are lost. A failed connection is
/// retried with a growing pause; the one-second wait per turn only lets the
/// thread notice that its store was dropped. `what` names the listener in
/// log messages.
pub(crate) fn listen_loop(
    config: &postgres::Config,
    channel: &str,
    alive: &std::sync::Weak<()>,
    location: &str,
    what: &str,
    on_connected: impl Fn(),
    on_payload: impl Fn(&str),
) {
    use postgres::fallible_iterator::FallibleIterator;
    use std::time::Duration;
    let mut pause = Duration::from_millis(100);
    while alive.strong_count() > 0 {
        let mut client = match config.connect(NoTls) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(location, listener = what, error = %describe(&e), "LISTEN connection failed; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")) {
            tracing::warn!(location, listener = what, error = %describe(&e), "LISTEN failed; retrying");
            std::thread::sleep(pause);
            continue;
        }
        pause = Duration::from_millis(100);
        on_connected();
        loop {
            if alive.strong_count() == 0 {
                return;
            }
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_secs(1));
            match iter.next() {
                Ok(Some(n)) => on_payload(n.payload()),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(location, listener = what, error = %describe(&e), "LISTEN connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}
