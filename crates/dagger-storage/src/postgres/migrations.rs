//! Postgres schema migrations, versioned in `dagger_schema_migrations`
//! (version, name, time applied). Workers starting together take a
//! session-level advisory lock keyed on the schema, so exactly one applies
//! each step; each step runs in its own transaction together with its
//! version row, so a crash leaves the schema at one version or the next.

use super::conn::map_pg;
use dagger_core::StoreError;
use postgres::Client;

/// One schema step.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order.
const MIGRATIONS: &[Migration] = &[
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
        name: "node work queue",
        sql: include_str!("schema/0003_node_queue.sql"),
    },
    Migration {
        version: 4,
        name: "message log: channels, messages, subscriber offsets",
        sql: include_str!("schema/0004_messages.sql"),
    },
    Migration {
        version: 5,
        name: "task attempt errors (dead letters) and agent circuit breakers",
        sql: include_str!("schema/0005_task_dead_letters.sql"),
    },
    Migration {
        version: 6,
        name: "run ownership: owner, fencing token, lease",
        sql: include_str!("schema/0006_run_owner.sql"),
    },
    Migration {
        version: 7,
        name: "run lineage: parent run, forked-from node",
        sql: include_str!("schema/0007_run_lineage.sql"),
    },
    Migration {
        version: 8,
        name: "node attempts: every attempt with its outcome, output and logs",
        sql: include_str!("schema/0008_node_attempts.sql"),
    },
    Migration {
        version: 9,
        name: "run idempotency keys",
        sql: include_str!("schema/0009_run_keys.sql"),
    },
    Migration {
        version: 10,
        name: "memo index: only completed nodes with an input hash",
        sql: include_str!("schema/0010_node_runs_memo.sql"),
    },
    Migration {
        version: 11,
        name: "task trace context: the creator's W3C traceparent",
        sql: include_str!("schema/0011_task_traceparent.sql"),
    },
    Migration {
        version: 12,
        name: "run signals: signals sent to runs, kept until delivered",
        sql: include_str!("schema/0012_run_signals.sql"),
    },
    Migration {
        version: 13,
        name: "schedule states: paused overrides, schedules added to the store",
        sql: include_str!("schema/0013_schedule_states.sql"),
    },
    Migration {
        version: 14,
        name: "artifacts: when last stored again (gc grace period)",
        sql: include_str!("schema/0014_artifact_reuse.sql"),
    },
];

/// First key of the advisory lock held while migrating ("dagr").
const LOCK_CLASS: i32 = 0x6461_6772;

/// The newest Postgres schema version this build knows.
pub fn latest_pg_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

fn err(location: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| map_pg(&e, location)
}

/// Creates `schema` if it does not exist (under the migration lock, since
/// concurrent `CREATE SCHEMA IF NOT EXISTS` can still collide).
pub(crate) fn create_schema(
    client: &mut Client,
    schema: &str,
    location: &str,
) -> Result<(), StoreError> {
    let e = err(location);
    client
        .execute(
            "SELECT pg_advisory_lock($1, hashtext($2))",
            &[&LOCK_CLASS, &schema],
        )
        .map_err(&e)?;
    let created = client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    client
        .execute(
            "SELECT pg_advisory_unlock($1, hashtext($2))",
            &[&LOCK_CLASS, &schema],
        )
        .map_err(&e)?;
    created.map_err(&e)
}

/// Brings the current schema (the first of `search_path`) to the latest
/// version; refuses a schema written by a newer build.
pub(crate) fn migrate(client: &mut Client, location: &str) -> Result<i64, StoreError> {
    migrate_to(client, location, latest_pg_version())
}

/// Brings the current schema up to `target`.
pub(crate) fn migrate_to(
    client: &mut Client,
    location: &str,
    target: i64,
) -> Result<i64, StoreError> {
    let e = err(location);
    let schema: String = client
        .query_one("SELECT current_schema()::text", &[])
        .map_err(&e)?
        .get(0);
    client
        .execute(
            "SELECT pg_advisory_lock($1, hashtext($2))",
            &[&LOCK_CLASS, &schema],
        )
        .map_err(&e)?;
    let result = apply(client, location, target);
    let unlocked = client
        .execute(
            "SELECT pg_advisory_unlock($1, hashtext($2))",
            &[&LOCK_CLASS, &schema],
        )
        .map_err(&e);
    let version = result?;
    unlocked?;
    Ok(version)
}

fn current_version(client: &mut Client, location: &str) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM dagger_schema_migrations",
            &[],
        )
        .map_err(err(location))?;
    Ok(row.get(0))
}

fn apply(client: &mut Client, location: &str, target: i64) -> Result<i64, StoreError> {
    let e = err(location);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS dagger_schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .map_err(&e)?;
    let current = current_version(client, location)?;
    if current > latest_pg_version() {
        return Err(StoreError::NewerSchema {
            location: location.to_string(),
            found: current,
            supported: latest_pg_version(),
        });
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let mut tx = client.transaction().map_err(&e)?;
        tx.batch_execute(m.sql)
            .map_err(|pg| match map_pg(&pg, location) {
                StoreError::Backend { location, message } => StoreError::Backend {
                    location,
                    message: format!("migration {} ({}) failed: {message}", m.version, m.name),
                },
                typed => typed,
            })?;
        tx.execute(
            "INSERT INTO dagger_schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
    }
    current_version(client, location)
}
