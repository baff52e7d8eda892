//! [`TaskStore`] for [`SqliteStore`].
//!
//! Task transactions need their result at once and run user-side checks in
//! the middle (the scheduling rules of `dagger-task-core`), so they do not go
//! through the group-commit writer: each is one `BEGIN IMMEDIATE`
//! transaction on a pooled connection. SQLite's write lock (with the busy
//! timeout) serializes them against the writer thread and against other
//! processes on the same file, which is what makes claims atomic across
//! processes.
//!
//! Within one process, task transactions on the same file also take a
//! process-wide lock first: without it, two handles (two managers, or two
//! workers of one job) would meet on SQLite's lock, and the busy handler
//! sleeps a millisecond or more before each retry, which is what kept
//! several workers slower than one. The writer thread takes the same lock
//! for each batch, and the checkpointer takes it to let the WAL restart
//! (`checkpoint.rs`).
//!
//! A transaction writes as little as it can: rows it read are remembered
//! (status and dependencies), so writing them back needs no read-back and
//! is an `UPDATE`; per-status counts and the job's `updated_at` are
//! collected and written once at commit, not once per task.

use crate::error::{decode, map_sqlite};
use crate::rows::task::{BreakerRow, Dependencies, JobRow, TaskRow, deps_json};
use crate::rows::to_json;
use crate::sqlite::SqliteStore;
use dagger_core::store::{
    AttemptError, BreakerRecord, JobCounts, JobRecord, TaskRecord, TaskStore, TaskTx, TaskType,
};
use dagger_core::{JobId, JobStatus, StoreError, TaskId, TaskStatus};
use parking_lot::Mutex;
use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior, params};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use tokio::sync::watch;

/// What the [`SqliteStore`] handles of this process that opened the same
/// file share for task transactions.
pub(crate) struct FileShared {
    /// Bumped after each committed task transaction that wrote.
    signal: watch::Sender<u64>,
    /// Held for the whole of each task write transaction (see the module
    /// docs), and by the checkpointer while it makes sure the WAL can restart.
    pub(crate) write: Mutex<()>,
}

/// Per database file (its canonical path).
static SHARED: LazyLock<Mutex<HashMap<String, Arc<FileShared>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// What this process's handles share for the database file at `path`
/// (canonicalized when it exists, so two spellings of one file share it).
pub(crate) fn shared(path: &std::path::Path) -> Arc<FileShared> {
    let key = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    SHARED
        .lock()
        .entry(key)
        .or_insert_with(|| {
            Arc::new(FileShared {
                signal: watch::Sender::new(0),
                write: Mutex::new(()),
            })
        })
        .clone()
}

/// `SELECT <every task column> FROM tasks <tail>`, as one literal (the
/// statement cache is keyed by the text; no formatting per call).
macro_rules! select_tasks {
    ($tail:literal) => {
        concat!(
            "SELECT task_id, job_id, parent_id, task_type, agent, description, \
             acceptance_criteria, input, output, error, priority, seq, status, attempts, failures, \
             max_retries, timeout_ms, lease_owner, lease_expires_at, not_before, created_at, \
             updated_at, started_at, finished_at, dependencies, traceparent FROM tasks ",
            $tail
        )
    };
}

/// Writes back a task known to exist: every column but the key, the job,
/// the insertion order and the creation time (which never change), with the
/// parameters of the insert (unused ones are allowed gaps).
/// Inserts a new task.
const INSERT_TASK: &str = "INSERT INTO tasks (task_id, job_id, parent_id, task_type, agent, \
    description, acceptance_criteria, input, output, error, priority, seq, status, attempts, \
    failures, max_retries, timeout_ms, lease_owner, lease_expires_at, not_before, created_at, \
    updated_at, started_at, finished_at, dependencies, traceparent) VALUES (?1, ?2, ?3, ?4, ?5, \
    ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, \
    ?25, ?26)";

const UPDATE_TASK: &str = "UPDATE tasks SET parent_id = ?3, task_type = ?4, agent = ?5, \
    description = ?6, acceptance_criteria = ?7, input = ?8, output = ?9, error = ?10, \
    priority = ?11, status = ?13, attempts = ?14, failures = ?15, max_retries = ?16, \
    timeout_ms = ?17, lease_owner = ?18, lease_expires_at = ?19, not_before = ?20, \
    updated_at = ?22, started_at = ?23, finished_at = ?24, dependencies = ?25, \
    traceparent = ?26 WHERE task_id = ?1";

/// A task row as this transaction last read or wrote it.
struct Known {
    status: &'static str,
    /// The stored JSON array of dependency ids.
    dependencies: String,
    /// The columns claims and completions never change, as stored (`None`:
    /// not known, so the next write rewrites the whole row).
    fixed: Option<Fixed>,
}

/// The columns of a task that the scheduling rules set once, at insertion.
/// When a write leaves them as stored, only the others are written.
struct Fixed {
    parent_id: Option<TaskId>,
    task_type: TaskType,
    agent: String,
    description: String,
    acceptance_criteria: Option<String>,
    input: serde_json::Value,
    priority: i32,
    max_retries: Option<u32>,
    timeout_ms: Option<u64>,
}

impl Fixed {
    fn of(t: &TaskRecord) -> Self {
        Self {
            parent_id: t.parent_id.clone(),
            task_type: t.task_type,
            agent: t.agent.clone(),
            description: t.description.clone(),
            acceptance_criteria: t.acceptance_criteria.clone(),
            input: t.input.clone(),
            priority: t.priority,
            max_retries: t.max_retries,
            timeout_ms: t.timeout_ms,
        }
    }

    fn matches(&self, t: &TaskRecord) -> bool {
        self.parent_id == t.parent_id
            && self.task_type == t.task_type
            && self.agent == t.agent
            && self.description == t.description
            && self.acceptance_criteria == t.acceptance_criteria
            && self.input == t.input
            && self.priority == t.priority
            && self.max_retries == t.max_retries
            && self.timeout_ms == t.timeout_ms
    }
}

/// Writes back the columns that change as a task runs.
const UPDATE_TASK_STATE: &str = "UPDATE tasks SET output = ?2, error = ?3, status = ?4, \
    attempts = ?5, failures = ?6, lease_owner = ?7, lease_expires_at = ?8, not_before = ?9, \
    updated_at = ?10, started_at = ?11, finished_at = ?12, dependencies = ?13 WHERE task_id = ?1";

struct SqlTx<'a, 'c> {
    tx: &'a Transaction<'c>,
    location: &'a str,
    wrote: bool,
    /// Rows read or written by this transaction (point reads and claims);
    /// `None`: read and found missing.
    known: HashMap<TaskId, Option<Known>>,
    /// Per-status count changes not yet written: (job, status, delta).
    counts: Vec<(String, &'static str, i64)>,
    /// `updated_at` of jobs touched but not yet written.
    touched: Vec<(String, i64)>,
    /// See [`TaskTx::quiet`].
    quiet: bool,
    /// Wrote a Ready task or a job: job loops must hear of it.
    loud: bool,
}

impl<'a, 'c> SqlTx<'a, 'c> {
    fn new(tx: &'a Transaction<'c>, location: &'a str) -> Self {
        Self {
            tx,
            location,
            wrote: false,
            known: HashMap::new(),
            counts: Vec::new(),
            touched: Vec::new(),
            quiet: false,
            loud: false,
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        map_sqlite(e, self.location)
    }

    /// Writes the collected job touches.
    fn flush_touches(&mut self) -> Result<(), StoreError> {
        for (job, at) in std::mem::take(&mut self.touched) {
            self.tx
                .prepare_cached("UPDATE task_jobs SET updated_at = ?2 WHERE job_id = ?1")
                .and_then(|mut s| s.execute(params![job, at]))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Writes the collected count changes.
    fn flush_counts(&mut self) -> Result<(), StoreError> {
        for (job, status, delta) in std::mem::take(&mut self.counts) {
            if delta == 0 {
                continue;
            }
            self.tx
                .prepare_cached(
                    "INSERT INTO task_counts (job_id, status, n) VALUES (?1, ?2, ?3)
                     ON CONFLICT (job_id, status) DO UPDATE SET n = n + excluded.n",
                )
                .and_then(|mut s| s.execute(params![job, status, delta]))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Writes everything collected; called before commit.
    fn finish(&mut self) -> Result<(), StoreError> {
        self.flush_touches()?;
        self.flush_counts()
    }

    fn task_from_row(&self, row: &Row<'_>) -> rusqlite::Result<TaskRow> {
        Ok(TaskRow {
            task_id: row.get(0)?,
            job_id: row.get(1)?,
            parent_id: row.get(2)?,
            task_type: row.get(3)?,
            agent: row.get(4)?,
            description: row.get(5)?,
            acceptance_criteria: row.get(6)?,
            input: row.get(7)?,
            output: row.get(8)?,
            error: row.get(9)?,
            priority: row.get(10)?,
            seq: row.get(11)?,
            status: row.get(12)?,
            attempts: row.get(13)?,
            failures: row.get(14)?,
            max_retries: row.get(15)?,
            timeout_ms: row.get(16)?,
            lease_owner: row.get(17)?,
            lease_expires_at: row.get(18)?,
            not_before: row.get(19)?,
            created_at: row.get(20)?,
            updated_at: row.get(21)?,
            started_at: row.get(22)?,
            finished_at: row.get(23)?,
            dependencies: Dependencies::Json(row.get(24)?),
            traceparent: row.get(25)?,
        })
    }

    /// Runs a query returning task rows. With `remember`, the rows are
    /// noted as known (for the few rows a claim or a completion writes back;
    /// not for whole-job listings).
    fn tasks_where(
        &mut self,
        sql: &'static str,
        params: &[&dyn rusqlite::ToSql],
        remember: bool,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let raws: Vec<TaskRow> = {
            let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.err(e))?;
            stmt.query_map(params, |r| self.task_from_row(r))
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        raws.into_iter()
            .map(|raw| {
                let record = raw.decode()?;
                if remember {
                    let known = Known {
                        status: record.status.as_str(),
                        dependencies: deps_json(&record)?,
                        fixed: Some(Fixed::of(&record)),
                    };
                    self.known.insert(record.task_id.clone(), Some(known));
                }
                Ok(record)
            })
            .collect()
    }

    fn bump_count(&mut self, job: &str, status: &'static str, delta: i64) {
        match self
            .counts
            .iter_mut()
            .find(|(j, s, _)| *s == status && j == job)
        {
            Some((_, _, n)) => *n += delta,
            None => self.counts.push((job.to_string(), status, delta)),
        }
    }

    /// Writes every column of `t`: an `UPDATE` of the existing row or an insert.
    fn write_row(
        &self,
        t: &TaskRecord,
        exists: bool,
        output: Option<String>,
        deps_json: &str,
    ) -> Result<(), StoreError> {
        let input = to_json("task input", &t.input)?;
        let sql = if exists { UPDATE_TASK } else { INSERT_TASK };
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.execute(params![
                    t.task_id.as_str(),
                    t.job_id.as_str(),
                    t.parent_id.as_ref().map(TaskId::as_str),
                    t.task_type.as_str(),
                    t.agent,
                    t.description,
                    t.acceptance_criteria,
                    input,
                    output,
                    t.error,
                    t.priority,
                    i64::try_from(t.seq).unwrap_or(i64::MAX),
                    t.status.as_str(),
                    t.attempts,
                    t.failures,
                    t.max_retries,
                    t.timeout_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                    t.lease_owner,
                    t.lease_expires_at,
                    t.not_before,
                    t.created_at,
                    t.updated_at,
                    t.started_at,
                    t.finished_at,
                    deps_json,
                    t.traceparent
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The stored status and dependencies of a task (`None`: no such row).
    fn stored(&mut self, task_id: &TaskId) -> Result<Option<Known>, StoreError> {
        if let Some(k) = self.known.remove(task_id) {
            return Ok(k);
        }
        let row: Option<(String, String)> = self
            .tx
            .prepare_cached("SELECT status, dependencies FROM tasks WHERE task_id = ?1")
            .and_then(|mut s| {
                s.query_row([task_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        row.map(|(status, dependencies)| {
            let status = TaskStatus::parse(&status)
                .ok_or_else(|| {
                    decode(
                        format!("task `{task_id}`"),
                        format!("unknown status `{status}`"),
                    )
                })?
                .as_str();
            Ok(Known {
                status,
                dependencies,
                fixed: None,
            })
        })
        .transpose()
    }
}

fn breaker_row(r: &Row<'_>) -> rusqlite::Result<BreakerRow> {
    Ok(BreakerRow {
        agent: r.get(0)?,
        state: r.get(1)?,
        consecutive_failures: r.get(2)?,
        until: r.get(3)?,
        last_error: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

/// The columns of a task row that change after insertion, before decoding.
struct TaskState {
    output: Option<String>,
    error: Option<String>,
    status: String,
    attempts: u32,
    failures: u32,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    not_before: Option<i64>,
    updated_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    dependencies: String,
}

impl TaskTx for SqlTx<'_, '_> {
    fn job(&mut self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.flush_touches()?;
        let row = self
            .tx
            .prepare_cached(
                "SELECT status, allowed_agents, config, started, reason, created_at, updated_at
                 FROM task_jobs WHERE job_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([job_id.as_str()], |r| {
                    Ok(JobRow {
                        status: r.get(0)?,
                        allowed_agents: r.get(1)?,
                        config: r.get(2)?,
                        started: r.get(3)?,
                        reason: r.get(4)?,
                        created_at: r.get(5)?,
                        updated_at: r.get(6)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        row.map(|r| r.decode(job_id)).transpose()
    }

    fn put_job(&mut self, job: &JobRecord) -> Result<(), StoreError> {
        self.flush_touches()?;
        self.loud = true;
        let allowed = job
            .allowed_agents
            .as_ref()
            .map(|a| serde_json::to_string(a).map_err(|e| decode("allowed agents", e)))
            .transpose()?;
        let config = to_json("job config", &job.config)?;
        self.tx
            .prepare_cached(
                "INSERT INTO task_jobs (job_id, status, allowed_agents, config, started, reason, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (job_id) DO UPDATE SET status = excluded.status,
                   allowed_agents = excluded.allowed_agents, config = excluded.config,
                   started = excluded.started, reason = excluded.reason,
                   updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    job.job_id.as_str(),
                    job.status.as_str(),
                    allowed,
                    config,
                    job.started,
                    job.reason,
                    job.created_at,
                    job.updated_at
                ])
            })
            .map_err(|e| self.err(e))?;
        self.wrote = true;
        Ok(())
    }

    fn jobs_with_status(&mut self, status: JobStatus) -> Result<Vec<JobId>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT job_id FROM task_jobs WHERE status = ?1 ORDER BY created_at, rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([status.as_str()], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(JobId::from).map_err(|e| self.err(e)))
            .collect()
    }

    fn task(&mut self, task_id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let found = self
            .tasks_where(
                select_tasks!("WHERE task_id = ?1"),
                &[&task_id.as_str()],
                true,
            )?
            .pop();
        if found.is_none() {
            self.known.insert(task_id.clone(), None);
        }
        Ok(found)
    }

    fn refresh_task(&mut self, task: &mut TaskRecord) -> Result<bool, StoreError> {
        let row = self
            .tx
            .prepare_cached(
                "SELECT output, error, status, attempts, failures, lease_owner, lease_expires_at, \
                 not_before, updated_at, started_at, finished_at, dependencies \
                 FROM tasks WHERE task_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([task.task_id.as_str()], |r| {
                    Ok(TaskState {
                        output: r.get(0)?,
                        error: r.get(1)?,
                        status: r.get(2)?,
                        attempts: r.get(3)?,
                        failures: r.get(4)?,
                        lease_owner: r.get(5)?,
                        lease_expires_at: r.get(6)?,
                        not_before: r.get(7)?,
                        updated_at: r.get(8)?,
                        started_at: r.get(9)?,
                        finished_at: r.get(10)?,
                        dependencies: r.get(11)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            self.known.insert(task.task_id.clone(), None);
            return Ok(false);
        };
        let what = || format!("task `{}`", task.task_id);
        task.status = TaskStatus::parse(&row.status)
            .ok_or_else(|| decode(what(), format!("unknown status `{}`", row.status)))?;
        task.output = row
            .output
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| decode(what(), e))?;
        task.dependencies =
            serde_json::from_str(&row.dependencies).map_err(|e| decode(what(), e))?;
        task.error = row.error;
        task.attempts = row.attempts;
        task.failures = row.failures;
        task.lease_owner = row.lease_owner;
        task.lease_expires_at = row.lease_expires_at;
        task.not_before = row.not_before;
        task.updated_at = row.updated_at;
        task.started_at = row.started_at;
        task.finished_at = row.finished_at;
        // The caller vouches for the columns set at insertion (the trait's
        // contract), so a write-back of the state needs no full-row rewrite.
        self.known.insert(
            task.task_id.clone(),
            Some(Known {
                status: task.status.as_str(),
                dependencies: row.dependencies,
                fixed: Some(Fixed::of(task)),
            }),
        );
        Ok(true)
    }

    fn put_task(&mut self, t: &TaskRecord) -> Result<(), StoreError> {
        self.loud |= t.status == TaskStatus::Ready;
        let mut old = self.stored(&t.task_id)?;
        let output = t
            .output
            .as_ref()
            .map(|o| to_json("task output", o))
            .transpose()?;
        let deps_json = deps_json(t)?;
        let fixed = old
            .as_mut()
            .and_then(|k| k.fixed.take())
            .filter(|f| f.matches(t));
        if fixed.is_some() {
            self.tx
                .prepare_cached(UPDATE_TASK_STATE)
                .and_then(|mut s| {
                    s.execute(params![
                        t.task_id.as_str(),
                        output,
                        t.error,
                        t.status.as_str(),
                        t.attempts,
                        t.failures,
                        t.lease_owner,
                        t.lease_expires_at,
                        t.not_before,
                        t.updated_at,
                        t.started_at,
                        t.finished_at,
                        deps_json
                    ])
                })
                .map_err(|e| self.err(e))?;
        } else {
            self.write_row(t, old.is_some(), output, &deps_json)?;
        }
        let old_deps: Vec<TaskId> = match &old {
            Some(k) if k.dependencies != deps_json => serde_json::from_str(&k.dependencies)
                .map_err(|e| decode(format!("task `{}`", t.task_id), e))?,
            Some(_) => t.dependencies.clone(),
            None => Vec::new(),
        };
        for (pos, d) in t.dependencies.iter().enumerate() {
            if old_deps.contains(d) {
                continue;
            }
            self.tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO task_dependencies (task_id, dependency_id, position)
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![t.task_id.as_str(), d.as_str(), pos as i64]))
                .map_err(|e| self.err(e))?;
        }
        let old_status = old.as_ref().map(|k| k.status);
        if old_status != Some(t.status.as_str()) {
            if let Some(o) = old_status {
                self.bump_count(t.job_id.as_str(), o, -1);
            }
            self.bump_count(t.job_id.as_str(), t.status.as_str(), 1);
        }
        self.known.insert(
            t.task_id.clone(),
            Some(Known {
                status: t.status.as_str(),
                dependencies: deps_json,
                fixed: Some(fixed.unwrap_or_else(|| Fixed::of(t))),
            }),
        );
        self.wrote = true;
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .tx
            .prepare_cached("UPDATE task_seq SET next = next + 1 WHERE id = 1 RETURNING next")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn job_tasks(&mut self, job_id: &JobId) -> Result<Vec<TaskRecord>, StoreError> {
        self.tasks_where(
            select_tasks!("WHERE job_id = ?1 ORDER BY seq"),
            &[&job_id.as_str()],
            false,
        )
    }

    fn dependents(&mut self, task_id: &TaskId) -> Result<Vec<TaskId>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT task_id FROM task_dependencies WHERE dependency_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([task_id.as_str()], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(TaskId::from).map_err(|e| self.err(e)))
            .collect()
    }

    fn ready_tasks(
        &mut self,
        job_id: &JobId,
        now: i64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.tasks_where(
            select_tasks!(
                "WHERE job_id = ?1 AND status = 'Ready' AND (not_before IS NULL OR not_before <= ?2)
                 ORDER BY priority DESC, seq LIMIT ?3"
            ),
            &[&job_id.as_str(), &now, &limit],
            true,
        )
    }

    fn expired_leases(&mut self, job_id: &JobId, now: i64) -> Result<Vec<TaskRecord>, StoreError> {
        self.tasks_where(
            select_tasks!("WHERE job_id = ?1 AND status = 'InProgress' AND lease_expires_at <= ?2"),
            &[&job_id.as_str(), &now],
            true,
        )
    }

    fn next_deadline(&mut self, job_id: &JobId, now: i64) -> Result<Option<i64>, StoreError> {
        let one = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Option<i64>, StoreError> {
            self.tx
                .prepare_cached(sql)
                .and_then(|mut s| s.query_row(p, |r| r.get::<_, Option<i64>>(0)))
                .map_err(|e| self.err(e))
        };
        let lease = one(
            "SELECT MIN(lease_expires_at) FROM tasks WHERE job_id = ?1 AND status = 'InProgress'",
            &[&job_id.as_str()],
        )?;
        let retry = one(
            "SELECT MIN(not_before) FROM tasks
             WHERE job_id = ?1 AND status = 'Ready' AND not_before IS NOT NULL AND not_before > ?2",
            &[&job_id.as_str(), &now],
        )?;
        Ok(match (lease, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn touch_job(&mut self, job_id: &JobId, now: i64) -> Result<(), StoreError> {
        // Written once at commit (or before the job is read or written).
        match self.touched.iter_mut().find(|(j, _)| j == job_id.as_str()) {
            Some((_, at)) => *at = now,
            None => self.touched.push((job_id.to_string(), now)),
        }
        self.wrote = true;
        Ok(())
    }

    fn quiet(&mut self) {
        self.quiet = true;
    }

    fn add_attempt_error(&mut self, e: &AttemptError) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO task_attempt_errors (task_id, job_id, attempt, error, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    e.task_id.as_str(),
                    e.job_id.as_str(),
                    e.attempt,
                    e.error,
                    e.at
                ])
            })
            .map_err(|e| self.err(e))?;
        self.wrote = true;
        Ok(())
    }

    fn attempt_errors(&mut self, task_id: &TaskId) -> Result<Vec<AttemptError>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT job_id, attempt, error, at FROM task_attempt_errors \
                 WHERE task_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([task_id.as_str()], |r| {
                Ok(AttemptError {
                    task_id: task_id.clone(),
                    job_id: JobId::from(r.get::<_, String>(0)?),
                    attempt: r.get(1)?,
                    error: r.get(2)?,
                    at: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn breaker(&mut self, agent: &str) -> Result<Option<BreakerRecord>, StoreError> {
        let row = self
            .tx
            .prepare_cached(
                "SELECT agent, state, consecutive_failures, until, last_error, updated_at \
                 FROM task_breakers WHERE agent = ?1",
            )
            .and_then(|mut s| s.query_row([agent], breaker_row).optional())
            .map_err(|e| self.err(e))?;
        row.map(BreakerRow::decode).transpose()
    }

    fn put_breaker(&mut self, b: &BreakerRecord) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO task_breakers \
                 (agent, state, consecutive_failures, until, last_error, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (agent) DO UPDATE SET state = excluded.state, \
                 consecutive_failures = excluded.consecutive_failures, until = excluded.until, \
                 last_error = excluded.last_error, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    b.agent,
                    b.state.as_str(),
                    b.consecutive_failures,
                    b.until,
                    b.last_error,
                    b.updated_at
                ])
            })
            .map_err(|e| self.err(e))?;
        self.wrote = true;
        Ok(())
    }

    fn breakers(&mut self) -> Result<Vec<BreakerRecord>, StoreError> {
        let raws: Vec<BreakerRow> = {
            let mut stmt = self
                .tx
                .prepare_cached(
                    "SELECT agent, state, consecutive_failures, until, last_error, updated_at \
                     FROM task_breakers ORDER BY agent",
                )
                .map_err(|e| self.err(e))?;
            stmt.query_map([], breaker_row)
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        raws.into_iter().map(BreakerRow::decode).collect()
    }

    fn dead_letters(&mut self, job: Option<&JobId>) -> Result<Vec<TaskRecord>, StoreError> {
        match job {
            Some(j) => self.tasks_where(
                select_tasks!(
                    "WHERE status = 'Failed' AND job_id = ?1 AND EXISTS (SELECT 1 FROM \
                     task_attempt_errors e WHERE e.task_id = tasks.task_id \
                     AND e.attempt = tasks.attempts) ORDER BY seq"
                ),
                &[&j.as_str()],
                false,
            ),
            None => self.tasks_where(
                select_tasks!(
                    "WHERE status = 'Failed' AND EXISTS (SELECT 1 FROM task_attempt_errors e \
                     WHERE e.task_id = tasks.task_id AND e.attempt = tasks.attempts) \
                     ORDER BY seq"
                ),
                &[],
                false,
            ),
        }
    }

    fn job_counts(&mut self, job_id: &JobId) -> Result<JobCounts, StoreError> {
        self.flush_counts()?;
        let mut stmt = self
            .tx
            .prepare_cached("SELECT status, n FROM task_counts WHERE job_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([job_id.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut c = JobCounts::default();
        for row in rows {
            let (status, n) = row.map_err(|e| self.err(e))?;
            let n = usize::try_from(n).unwrap_or(0);
            c.total += n;
            match status.as_str() {
                "Pending" | "Ready" | "Blocked" => c.open += n,
                "InProgress" => {
                    c.open += n;
                    c.in_progress += n;
                }
                "Failed" | "Rejected" | "Cancelled" => c.unsuccessful += n,
                _ => {}
            }
        }
        Ok(c)
    }
}

/// Takes the process-wide write lock. When another handle holds it and this
/// thread is a worker of a multi-threaded tokio runtime, the wait is
/// announced with `block_in_place`, so the worker's other tasks (running
/// agents, another job's loop) move to a fresh thread instead of waiting
/// behind this one; uncontended, it is a plain lock.
fn lock_for_write(lock: &Mutex<()>) -> parking_lot::MutexGuard<'_, ()> {
    if let Some(guard) = lock.try_lock() {
        return guard;
    }
    let on_multi_thread_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_multi_thread_worker {
        tokio::task::block_in_place(|| lock.lock())
    } else {
        lock.lock()
    }
}

impl TaskStore for SqliteStore {
    fn transact(
        &self,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        let location = self.location().to_string();
        let file = &self.inner.file;
        let wake = self.read_blocking(|conn| {
            let _writing = lock_for_write(&file.write);
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
                .map_err(|e| map_sqlite(e, &location))?;
            let mut view = SqlTx::new(&tx, &location);
            f(&mut view)?;
            view.finish()?;
            let wake = view.wrote && (view.loud || !view.quiet);
            tx.commit().map_err(|e| map_sqlite(e, &location))?;
            Ok(wake)
        })?;
        if wake {
            file.signal.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }

    fn read(
        &self,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        let location = self.location().to_string();
        self.read_blocking(|conn| {
            // A deferred transaction: a consistent snapshot without the write lock.
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Deferred)
                .map_err(|e| map_sqlite(e, &location))?;
            let mut view = SqlTx::new(&tx, &location);
            f(&mut view)?;
            tx.rollback().map_err(|e| map_sqlite(e, &location))
        })
    }

    fn location(&self) -> String {
        SqliteStore::location(self).to_string()
    }

    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        Some(self.inner.file.signal.subscribe())
    }
}
