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
/// 0003 messages (dagger-pubsub), 0004 task attempt errors and circuit
/// breakers (dagger-task-core), 0005 run ownership, 0006 run lineage, 0007 node attempts,
/// 0008 run idempotency keys, 0009 the memo index without unhashed rows (dagger-storage),
/// 0010 task trace context (dagger-task-core), 0011 run signals, 0012 schedule states
/// (dagger-storage).
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
    Migration {
        version: 3,
        name: "pub/sub message logs and subscriber offsets",
        sql: include_str!("schema/0003_messages.sql"),
    },
    Migration {
        version: 4,
        name: "task attempt errors (dead letters) and agent circuit breakers",
        sql: include_str!("schema/0004_task_dead_letters.sql"),
    },
    Migration {
        version: 5,
        name: "run ownership: owner, fencing token, lease",
        sql: include_str!("schema/0005_run_owner.sql"),
    },
    Migration {
        version: 6,
        name: "run lineage: parent run, forked-from node",
        sql: include_str!("schema/0006_run_lineage.sql"),
    },
    Migration {
        version: 7,
        name: "node attempts: every attempt with its outcome, output and logs",
        sql: include_str!("schema/0007_node_attempts.sql"),
    },
    Migration {
        version: 8,
        name: "run idempotency keys",
        sql: include_str!("schema/0008_run_keys.sql"),
    },
    Migration {
        version: 9,
        name: "memo index: only completed nodes with an input hash",
        sql: include_str!("schema/0009_node_runs_memo.sql"),
    },
    Migration {
        version: 10,
        name: "task trace context: the creator's W3C traceparent",
        sql: include_str!("schema/0010_task_traceparent.sql"),
    },
    Migration {
        version: 11,
        name: "run signals: signals sent to runs, kept until delivered",
        sql: include_str!("schema/0011_run_signals.sql"),
    },
    Migration {
        version: 12,
        name: "schedule states: paused overrides, schedules added to the store",
        sql: include_str!("schema/0012_schedule_states.sql"),
    },
];

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings `conn` up to [`latest_version`]; refuses a database from a newer build.
pub(crate) fn migrate(conn: &mut Connection, location: &str) -> Result<i64, StoreError> {
    migrate_to(conn, location, latest_version())
}

/// The schema version of `conn`'s database.
pub(crate) fn current_version(conn: &Connection, location: &str) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| map_sqlite(e, location))
}

/// Checks, without writing, that the database is at [`latest_version`]
/// (for a store opened read-only, which cannot migrate).
pub(crate) fn require_latest(conn: &Connection, location: &str) -> Result<(), StoreError> {
    let current = current_version(conn, location)?;
    if current > latest_version() {
        return Err(StoreError::NewerSchema {
            location: location.to_string(),
            found: current,
            supported: latest_version(),
        });
    }
    if current < latest_version() {
        return Err(StoreError::Open {
            location: location.to_string(),
            reason: format!(
                "schema version {current} must be migrated to {}, but the database is opened read-only",
                latest_version()
            ),
        });
    }
    Ok(())
}

/// Brings `conn` up to `target` (tests use this to build each earlier version).
pub(crate) fn migrate_to(
    conn: &mut Connection,
    location: &str,
    target: i64,
) -> Result<i64, StoreError> {
    let current = current_version(conn, location)?;
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
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| map_sqlite(e, location))?;
        // Another process may have applied this step since we looked.
        if current_version(&tx, location)? >= m.version {
            continue;
        }
        tx.execute_batch(m.sql)
            .map_err(|e| match map_sqlite(e, location) {
                StoreError::Backend { location, message } => StoreError::Backend {
                    location,
                    message: format!("migration {} ({}) failed: {message}", m.version, m.name),
                },
                typed => typed,
            })?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(|e| map_sqlite(e, location))?;
        tx.commit().map_err(|e| map_sqlite(e, location))?;
    }
    current_version(conn, location)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut s = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn versions_are_contiguous_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration `{}`", m.name);
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i64);
    }

    /// Every version a database can be at: empty, then after each step.
    fn versions() -> impl Iterator<Item = i64> {
        std::iter::once(0).chain(MIGRATIONS.iter().map(|m| m.version))
    }

    #[test]
    fn from_an_empty_file_to_latest() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("empty.db")).unwrap();
        assert_eq!(migrate(&mut conn, "t").unwrap(), latest_version());
        let names = tables(&conn);
        for table in [
            "artifacts",
            "cache_snapshots",
            "flow_runs",
            "node_runs",
            "run_controls",
            "run_signals",
        ] {
            assert!(names.iter().any(|n| n == table), "{table} in {names:?}");
        }
        // A second run is a no-op.
        assert_eq!(migrate(&mut conn, "t").unwrap(), latest_version());
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    /// The memo lookup still finds its rows through the partial index, and
    /// completed nodes without an input hash have no entries in it.
    #[test]
    fn memo_index_serves_the_lookup_and_skips_unhashed_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("memo.db")).unwrap();
        migrate(&mut conn, "t").unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                crate::sqlite::runs::MEMO_LOOKUP
            ))
            .unwrap()
            .query_map(["noop", "h"], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|d| d.contains("USING INDEX node_runs_memo")),
            "{plan:?}"
        );
        // An index that held every completed row could serve a scan of
        // them; this one cannot (SQLite finds no plan through it).
        let err = conn
            .prepare(
                "SELECT node_id FROM node_runs INDEXED BY node_runs_memo \
                 WHERE action = 'noop' AND state = 'Completed'",
            )
            .expect_err("the index holds no unhashed rows");
        assert!(err.to_string().contains("no query solution"), "{err}");
    }

    #[test]
    fn from_each_earlier_version_to_latest_keeps_data() {
        for start in versions().filter(|v| *v < latest_version()) {
            let dir = tempfile::tempdir().unwrap();
            let mut conn = Connection::open(dir.path().join("old.db")).unwrap();
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            assert_eq!(migrate_to(&mut conn, "t", start).unwrap(), start);
            if start >= 1 {
                conn.execute_batch(
                    "INSERT INTO flow_runs (run_id, workflow, definition, inputs, config, status, reason,
                       created_at, updated_at, finished_at)
                       VALUES ('r1', 'wf', '{}', '{}', '{}', 'Running', NULL, 1, 1, NULL);
                     INSERT INTO artifacts VALUES ('abc', 3, X'010203', NULL, 1);
                     INSERT INTO node_runs (run_id, node_id, invocation_key, action, attempt, state, output_artifact_id)
                       VALUES ('r1', 'a', '', 'act', 1, 'Completed', 'abc');
                     INSERT INTO run_controls VALUES ('r1', 1, '{\"kind\":\"cancel\",\"reason\":\"x\"}', 1);
                     INSERT INTO cache_snapshots VALUES ('r1', 1, 'full', NULL, '{}', 1);",
                )
                .unwrap();
            }
            assert_eq!(
                migrate(&mut conn, "t").unwrap(),
                latest_version(),
                "from {start}"
            );
            if start >= 1 {
                let kept: (String, String, Vec<u8>) = conn
                    .query_row(
                        "SELECT f.status, n.state, a.inline_data FROM flow_runs f
                         JOIN node_runs n USING (run_id)
                         JOIN artifacts a ON a.artifact_id = n.output_artifact_id",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .unwrap();
                assert_eq!(kept, ("Running".into(), "Completed".into(), vec![1, 2, 3]));
            }
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
        }
    }

    #[test]
    fn refuses_a_newer_database_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("new.db")).unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        let err = migrate(&mut conn, "sqlite:new.db").unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == latest_version() + 1),
            "{err:?}"
        );
        assert!(tables(&conn).is_empty());
    }
}
