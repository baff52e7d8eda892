//! The Postgres store (feature `postgres`): the storage traits of
//! `dagger-core` over one PostgreSQL database, so that many worker processes
//! on many machines can share runs, artifacts, tasks and the message logs of
//! durable Pub/Sub channels (`MessageLog`).
//!
//! The client is the synchronous `postgres` crate on an `r2d2` pool: the
//! `TaskStore` trait is synchronous and transactional (its scheduling rules
//! run inside the transaction), and one client stack serves both it and the
//! async traits, which run their queries on tokio's blocking threads like the
//! SQLite store does. Every write commits before it returns, so the store
//! reports [`Durability::Sync`]. No TLS: the store is meant for loopback or a
//! private network.

mod artifacts;
mod attempts;
mod conn;
mod messages;
mod migrations;
mod nodes;
mod retention;
mod runs;
mod schedules;
mod snapshots;
mod task_columns;
mod tasks;
mod writer;

pub use migrations::latest_pg_version;

use conn::{PgConn, PgManager, map_pg};

use dagger_core::StoreError;
use dagger_core::store::Durability;
use std::sync::Arc;
use std::time::Duration;

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// A schema to keep the tables in (created if missing) instead of the
    /// user's default `search_path`; lets several stores (or tests) share a
    /// database without seeing each other.
    pub schema: Option<String>,
    /// Most connections the pool opens.
    pub pool_size: u32,
    /// How long to wait for the server when connecting.
    pub connect_timeout: Duration,
    /// The server ends a session that sits this long inside a transaction
    /// (`idle_in_transaction_session_timeout`). The store's transactions
    /// take milliseconds, so only a frozen or partitioned worker hits it, and
    /// its row locks are released instead of stalling every other worker.
    pub idle_transaction_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            idle_transaction_timeout: Duration::from_secs(5),
        }
    }
}

/// The Postgres store. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Always `Some` until dropped (see `Drop for Inner`).
    pool: Option<r2d2::Pool<PgManager>>,
    /// The URL without its password, plus the schema when one is set.
    location: String,
    config: postgres::Config,
    schema: Option<String>,
    /// LISTEN/NOTIFY wake-ups for task job loops.
    signal: tasks::TaskSignal,
    /// LISTEN/NOTIFY wake-ups for node workers and dispatching coordinators.
    nodes: nodes::NodeSignal,
    /// The group-commit queue of node records.
    writer: writer::Writer,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing a synchronous client blocks on its own small runtime, which
        // panics inside an async context; the last handle may well be
        // dropped there, so the idle connections are closed on a plain thread.
        if let Some(pool) = self.pool.take() {
            std::thread::spawn(move || drop(pool));
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

/// `url` with any password replaced by `***`, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let slash = if rest.contains('/') { "/" } else { "" };
            format!("{scheme}://{user}:***@{host}{slash}{tail}")
        }
        _ => url.to_string(),
    }
}

/// True for a plain lowercase SQL identifier (so it needs no quoting rules).
fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`)
    /// with default options and migrates the schema to the latest version.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with explicit options.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let url = url.to_string();
        let shown = redact(&url);
        tokio::task::spawn_blocking(move || Self::connect_blocking(&url, &options))
            .await
            .map_err(|e| StoreError::Backend {
                location: shown,
                message: format!("connect task failed: {e}"),
            })?
    }

    /// Connects without an async runtime (from a plain thread).
    pub fn connect_blocking(url: &str, options: &PostgresOptions) -> Result<Self, StoreError> {
        let shown = redact(url);
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: shown.clone(),
            reason,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "expected a URL starting with `postgres://` or `postgresql://`".into(),
            ));
        }
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| invalid(e.to_string()))?;
        if options.pool_size == 0 {
            return Err(invalid("the pool size must be at least 1".into()));
        }
        let location = match &options.schema {
            Some(schema) if !valid_schema_name(schema) => {
                return Err(invalid(format!(
                    "schema `{schema}` must be a lowercase identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
                )));
            }
            Some(schema) => format!("{shown} (schema {schema})"),
            None => shown,
        };
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("dagger");
        }

        // One direct connection first: an unreachable server is reported at
        // once, naming the URL, instead of after the pool's retry timeout.
        let mut first = config
            .connect(postgres::NoTls)
            .map_err(|e| StoreError::Open {
                location: location.clone(),
                reason: conn::describe(&e),
            })?;
        let mut session = format!(
            "-c idle_in_transaction_session_timeout={}",
            options.idle_transaction_timeout.as_millis().max(1)
        );
        if let Some(schema) = &options.schema {
            migrations::create_schema(&mut first, schema, &location)?;
            session.push_str(&format!(" -c search_path={schema}"));
            first
                .batch_execute(&format!("SET search_path TO {schema}"))
                .map_err(|e| map_pg(&e, &location))?;
        }
        let existing = config.get_options().unwrap_or_default().to_string();
        config.options(format!("{existing} {session}").trim());
        migrations::migrate(&mut first, &location)?;
        drop(first);

        let manager = PgManager::new(config.clone(), location.clone());
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout.max(Duration::from_secs(1)) * 2)
            // A closed connection is noticed by `has_broken`; skipping the
            // per-checkout ping saves a round trip on every operation.
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Self {
            inner: Arc::new(Inner {
                pool: Some(pool),
                location,
                config,
                schema: options.schema.clone(),
                signal: tasks::TaskSignal::new(),
                nodes: nodes::NodeSignal::new(),
                writer: writer::Writer::default(),
            }),
        })
    }

    /// The URL (without password) and schema, for messages.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The schema the tables live in, when [`PostgresOptions::schema`] set one.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// Drops this store's schema with every table in it (test and
    /// tenant teardown). Refused for a store without its own schema, so it
    /// can never drop the user's default schema.
    pub async fn drop_schema(self) -> Result<(), StoreError> {
        let Some(schema) = self.inner.schema.clone() else {
            return Err(StoreError::Conflict(format!(
                "store `{}` has no schema of its own to drop",
                self.inner.location
            )));
        };
        self.with_conn(move |c| {
            c.client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
            Ok(())
        })
        .await
    }

    /// The stores bundle over this store.
    pub fn stores(&self) -> dagger_core::Stores {
        dagger_core::Stores::from(self.clone())
    }

    /// The connection settings (with the schema's `search_path`), for
    /// opening dedicated connections such as a `LISTEN` session.
    pub(crate) fn config(&self) -> &postgres::Config {
        &self.inner.config
    }

    /// A pooled connection, or [`StoreError::Open`] naming the URL.
    pub(crate) fn conn(&self) -> Result<r2d2::PooledConnection<PgManager>, StoreError> {
        let closed = || StoreError::Closed {
            location: self.inner.location.clone(),
        };
        let pool = self.inner.pool.as_ref().ok_or_else(closed)?;
        pool.get().map_err(|e| StoreError::Open {
            location: self.inner.location.clone(),
            reason: e.to_string(),
        })
    }

    /// Runs `f` on a pooled connection on a blocking thread. A connection
    /// that turns out to be closed (the server restarted) is dropped and `f`
    /// runs once more on a fresh one, so a restart costs callers nothing.
    pub(crate) async fn with_conn<T, F>(&self, mut f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut PgConn) -> Result<T, conn::PgFail> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.with_conn_blocking(&mut f))
            .await
            .map_err(|e| StoreError::Backend {
                location: self.inner.location.clone(),
                message: format!("database task failed: {e}"),
            })?
    }

    /// [`Self::with_conn`] for one write of a run (one commit): its time
    /// goes to the store commit histograms.
    pub(crate) async fn with_write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut PgConn) -> Result<T, conn::PgFail> + Send + 'static,
    {
        let began = std::time::Instant::now();
        let result = self.with_conn(f).await;
        dagger_core::metrics::store_commit("postgres", 1, began.elapsed().as_secs_f64());
        result
    }

    /// The blocking form of [`Self::with_conn`]. A connection found closed
    /// is dropped and `f` runs again on another; after a cut every idle
    /// connection of the pool is closed, so this goes on while the
    /// connections it meets are closed (at most the pool's size plus one
    /// tries). When even a fresh one is lost, the server is unreachable:
    /// [`StoreError::Open`] naming the URL, which callers may retry later.
    pub(crate) fn with_conn_blocking<T>(
        &self,
        f: &mut dyn FnMut(&mut PgConn) -> Result<T, conn::PgFail>,
    ) -> Result<T, StoreError> {
        let tries = self.inner.pool.as_ref().map_or(1, r2d2::Pool::max_size) + 1;
        let mut lost = 0;
        loop {
            let mut conn = self.conn()?;
            match f(&mut conn) {
                Ok(v) => return Ok(v),
                Err(conn::PgFail::Store(e)) => return Err(e),
                Err(conn::PgFail::Pg(e)) if conn::is_connection_lost(&e) => {
                    conn.mark_broken();
                    lost += 1;
                    if lost >= tries {
                        return Err(StoreError::Open {
                            location: self.inner.location.clone(),
                            reason: conn::describe(&e),
                        });
                    }
                    if lost == 1 {
                        tracing::warn!(location = %self.inner.location, error = %e,
                            "postgres connection lost; retrying on a fresh connection");
                    }
                }
                Err(conn::PgFail::Pg(e)) => return Err(map_pg(&e, &self.inner.location)),
            }
        }
    }
}

impl From<PostgresStore> for dagger_core::Stores {
    fn from(store: PostgresStore) -> Self {
        let location = store.location().to_string();
        let shared = Arc::new(store);
        Self {
            runs: shared.clone(),
            artifacts: shared.clone(),
            snapshots: shared.clone(),
            schedules: shared,
            durability: Durability::Sync,
            location,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h:5432/db"), "postgres://u@h:5432/db");
        assert_eq!(redact("postgres://u:p@h"), "postgres://u:***@h");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema_name("t_conformance_123"));
        assert!(!valid_schema_name("Upper"));
        assert!(!valid_schema_name("a;drop"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1abc"));
    }
}
