//! Schema migrations, versioned with `PRAGMA user_version`. Each migration
//! runs in its own transaction together with the version bump, so a crash
//! leaves the database at one version or the next, never between.

use crate::error::map_sqlite;
use dagger_core::StoreError;
use rusqlite::Connection;

/// One schema step.
pub(crate) struct Migration {
    /// The `user_version` after this step.
    pub(crate) version: i64,
    /// What the step adds.
    pub(crate) name: &'static str,
    /// The SQL.
    pub(crate) sql: &'static str,
}

/// Every migration, in order. Areas own their files:
/// 0001 runs/artifacts/snapshots (dagger-storage), 0002 tasks (dagger-task-core),
/// 0003 messages (dagger-pubsub).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "runs, node runs, artifacts, cache snapshots",
        sql: include_str!("schema/0001_runs.sql"),
    },
    Migration {
        version: 2,
        name: "task jobs, tasks, task dependencies, task counts",
        sql: include_str!("schema/0002_tasks.sql"),
    },
    // Version 3: messages and subscriber offsets (dagger-pubsub) go in
    // `schema/0003_messages.sql`, implemented by `message_log.rs`.
];

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings `conn` up to [`latest_version`]; refuses a database from a newer build.
pub(crate) fn migrate(conn: &mut Connection, location: &str) -> Result<i64, StoreError> {
    migrate_to(conn, location, latest_version())
}

/// Brings `conn` up to `target` (tests use this to build each earlier version).
pub(crate) fn migrate_to(
    conn: &mut Connection,
    location: &str,
    target: i64,
) -> Result<i64, StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| map_sqlite(e, location))?;
    if current > latest_version() {
        return Err(StoreError::NewerSchema {
            location: location.to_string(),
            found: current,
            supported: latest_version(),
        });
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let tx = conn.transaction().map_err(|e| map_sqlite(e, location))?;
        tx.execute_batch(m.sql).map_err(|e| StoreError::Backend {
            location: location.to_string(),
            message: format!("migration {} ({}) failed: {e}", m.version, m.name),
        })?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(|e| map_sqlite(e, location))?;
        tx.commit().map_err(|e| map_sqlite(e, location))?;
    }
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| map_sqlite(e, location))
}
