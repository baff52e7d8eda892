//! [`TaskStore`] over Postgres, for task workers in many processes and on
//! many machines sharing one queue.
//!
//! Each [`TaskStore::transact`] is one READ COMMITTED transaction. The
//! scheduling rules of `dagger-task-core` read, check and write inside it, so
//! what they read is locked until commit. Before it touches a job or any of
//! its tasks, a transaction locks the job's row (`FOR NO KEY UPDATE`): the
//! transactions of one job are serialized across every process, always in
//! the order job row, then task rows, then per-status counts, so they cannot
//! deadlock, while different jobs proceed in parallel. Task rows are locked
//! as well (a completion's fencing-token check holds until commit), and the
//! claim query takes its candidates `FOR UPDATE SKIP LOCKED`, so a claimer
//! never waits on a task row another transaction holds. A deadlock (only
//! possible across jobs) or serialization failure rolls back and runs the
//! closure again, which the trait allows; so does a connection lost
//! mid-transaction, on a fresh one.
//!
//! Task rows a transaction has locked are kept in memory and its task
//! writes are sent in one statement (see [`PgTx`]), so a job loop's turn
//! costs a few round trips however many attempts it records and tasks it
//! claims.
//!
//! A committed transaction that made work claimable (a task written as
//! Ready) or changed a job's status is followed by `NOTIFY dagger_tasks`
//! (the payload is the schema) in a transaction of its own, which writes
//! nothing and so holds the server's notification lock only briefly. A
//! listener thread with its own connection turns those notifications into
//! [`TaskStore::change_signal`] wake-ups, so idle job loops in every
//! process wake on each other's changes without polling. Other writes
//! (lease renewals, completions that release nothing) wake only this
//! process's loops: waking every worker for them would make each
//! completion cost one scheduling turn per worker process.

use super::PostgresStore;
use super::conn::{PgConn, StmtCache, decode, is_connection_lost, listen_loop, map_pg, wide};
use super::task_columns::{TaskChanges, TaskColumns, UPDATE_TASKS, UPSERT_TASKS, same_fixed};
use crate::rows::narrow;
use crate::rows::task::{BreakerRow, Dependencies, JobRow, TaskRow};
use crate::rows::to_json;
use dagger_core::store::{
    AttemptError, BreakerRecord, JobCounts, JobRecord, TaskRecord, TaskStore, TaskTx,
};
use dagger_core::{JobId, JobStatus, StoreError, TaskId, TaskStatus};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Row, Transaction};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use tokio::sync::watch;

/// The channel of task-change notifications.
const CHANNEL: &str = "dagger_tasks";

/// How often a transaction that hit a deadlock or serialization failure is
/// tried again before the error is returned.
const MAX_RETRIES: u32 = 20;

/// The columns of a task row, then its dependencies in order.
macro_rules! select_tasks {
    ($tail:literal) => {
        select_tasks!(""; $tail)
    };
    ($extra:literal; $tail:literal) => {
        concat!(
            "SELECT t.task_id, t.job_id, t.parent_id, t.task_type, t.agent, t.description, \
             t.acceptance_criteria, t.input, t.output, t.error, t.priority, t.seq, t.status, \
             t.attempts, t.failures, t.max_retries, t.timeout_ms, t.lease_owner, \
             t.lease_expires_at, t.not_before, t.created_at, t.updated_at, t.started_at, \
             t.finished_at, ARRAY(SELECT d.dependency_id FROM task_dependencies d \
               WHERE d.task_id = t.task_id ORDER BY d.position), t.traceparent",
            $extra,
            " FROM tasks t ",
            $tail
        )
    };
}

/// Tasks by id, locked in id order, each with its dependents (column 26).
const PREFETCH_TASKS: &str = select_tasks!(
    ", ARRAY(SELECT d.task_id FROM task_dependencies d WHERE d.dependency_id = t.task_id \
       ORDER BY d.task_id)";
    "WHERE t.task_id = ANY($1) ORDER BY t.task_id FOR NO KEY UPDATE OF t"
);

/// Sequence numbers a transaction takes at once when it inserts tasks.
const SEQ_BATCH: i32 = 64;

/// The wake-up side of LISTEN/NOTIFY, shared by the clones of one store.
pub(crate) struct TaskSignal {
    sender: watch::Sender<u64>,
    listener: std::sync::Once,
    /// Dropped with the store; the listener thread stops when it is gone.
    alive: Arc<()>,
}

impl TaskSignal {
    pub(crate) fn new() -> Self {
        Self {
            sender: watch::Sender::new(0),
            listener: std::sync::Once::new(),
            alive: Arc::new(()),
        }
    }

    fn bump(&self) {
        self.sender.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A task row this transaction holds locked, as it is now in this
/// transaction (no other transaction can change it before commit).
struct Held {
    task: TaskRecord,
    /// How many of its dependencies are stored (they are only ever added).
    deps_stored: Option<usize>,
    /// Written here but not sent to the server yet.
    dirty: bool,
    /// The next send writes every column: a new row, or one whose fixed
    /// columns changed; otherwise only the changing ones.
    whole: bool,
}

/// The view of the task tables inside one transaction.
///
/// Task rows it has locked are kept ([`Held`]) and served from memory;
/// writes of tasks are kept too and sent in one statement before the next
/// query that could see them (a claim, a scan of the job's tasks) and at
/// commit, so a batch of completions and claims costs a few round trips,
/// not a few per task.
struct PgTx<'a, 't> {
    tx: &'a mut Transaction<'t>,
    stmts: &'a mut StmtCache,
    location: &'a str,
    wrote: bool,
    /// Whether other processes should hear of this transaction.
    notify: bool,
    /// Job statuses as read by this transaction, to notice a change.
    job_status: Vec<(String, &'static str)>,
    /// Set when a statement failed in a way that a new attempt may cure.
    retry: Option<Retry>,
    /// Job rows this transaction has locked, as they are now in it.
    jobs: HashMap<String, Option<JobRecord>>,
    /// Task rows this transaction has locked.
    held: HashMap<String, Held>,
    /// Held tasks written but not sent yet, in the order first written.
    dirty: Vec<String>,
    /// Tasks looked up and not found.
    absent: HashSet<String>,
    /// Dependents of held tasks, read with them.
    dependents: HashMap<String, Vec<TaskId>>,
    /// Sequence numbers taken from `task_seq` and not handed out yet.
    seqs: VecDeque<i64>,
    /// Per-status count changes not yet written: (job, status, delta).
    counts: Vec<(String, &'static str, i64)>,
    /// `updated_at` of jobs touched but not yet written.
    touched: Vec<(String, i64)>,
    /// The caller said this transaction concerns only itself.
    quiet: bool,
}

/// Why a transaction is worth running again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Deadlock or serialization failure: same connection.
    Conflict,
    /// The session is gone: a fresh connection.
    ConnectionLost,
}

fn retry_kind(e: &postgres::Error) -> Option<Retry> {
    if is_connection_lost(e) {
        return Some(Retry::ConnectionLost);
    }
    match e.code() {
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => Some(Retry::Conflict),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => Some(Retry::Conflict),
        _ => None,
    }
}

impl PgTx<'_, '_> {
    fn fail(&mut self, e: &postgres::Error) -> StoreError {
        if let Some(kind) = retry_kind(e) {
            self.retry = Some(kind);
        }
        map_pg(e, self.location)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let result = self
            .stmts
            .get(self.tx, sql)
            .and_then(|stmt| self.tx.query(&stmt, params));
        result.map_err(|e| self.fail(&e))
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let result = self
            .stmts
            .get(self.tx, sql)
            .and_then(|stmt| self.tx.execute(&stmt, params));
        result.map_err(|e| self.fail(&e))
    }

    fn tasks(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.query(sql, params)?.iter().map(decode_task).collect()
    }

    /// The job's row, locked (once per transaction: later calls answer from
    /// memory), which orders this transaction after every other one of the
    /// same job.
    fn locked_job(&mut self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        if let Some(job) = self.jobs.get(job_id) {
            return Ok(job.clone());
        }
        let rows = self.query(
            "SELECT status, allowed_agents, config, started, reason, created_at, updated_at \
             FROM task_jobs WHERE job_id = $1 FOR NO KEY UPDATE",
            &[&job_id],
        )?;
        let job = match rows.first() {
            None => None,
            Some(r) => {
                let what = format!("job `{job_id}`");
                let col = |e: postgres::Error| decode(&what, e);
                let job = JobRow {
                    status: r.try_get(0).map_err(col)?,
                    allowed_agents: r.try_get(1).map_err(col)?,
                    config: r.try_get(2).map_err(col)?,
                    started: r.try_get(3).map_err(col)?,
                    reason: r.try_get(4).map_err(col)?,
                    created_at: r.try_get(5).map_err(col)?,
                    updated_at: r.try_get(6).map_err(col)?,
                }
                .decode(&JobId::from(job_id))?;
                if !self.job_status.iter().any(|(j, _)| j == job_id) {
                    self.job_status
                        .push((job_id.to_string(), job.status.as_str()));
                }
                Some(job)
            }
        };
        self.jobs.insert(job_id.to_string(), job.clone());
        Ok(job)
    }

    /// Locks the job's row (see [`Self::locked_job`]).
    fn lock_job(&mut self, job_id: &str) -> Result<(), StoreError> {
        self.locked_job(job_id).map(drop)
    }

    /// Ids of the jobs whose rows this transaction holds.
    fn locked_ids(&self) -> Vec<String> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.is_some())
            .map(|(id, _)| id.clone())
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

    /// Writes the collected count changes in one statement.
    fn flush_counts(&mut self) -> Result<(), StoreError> {
        let counts = std::mem::take(&mut self.counts);
        let counts: Vec<_> = counts.into_iter().filter(|(_, _, n)| *n != 0).collect();
        if counts.is_empty() {
            return Ok(());
        }
        let jobs: Vec<&str> = counts.iter().map(|(j, _, _)| j.as_str()).collect();
        let statuses: Vec<&str> = counts.iter().map(|(_, s, _)| *s).collect();
        let deltas: Vec<i64> = counts.iter().map(|(_, _, n)| *n).collect();
        self.execute(
            "INSERT INTO task_counts (job_id, status, n) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
             ON CONFLICT (job_id, status) DO UPDATE SET n = task_counts.n + excluded.n",
            &[&jobs, &statuses, &deltas],
        )?;
        Ok(())
    }

    /// Writes the collected job touches (their rows are locked already).
    fn flush_touches(&mut self) -> Result<(), StoreError> {
        for (job, at) in std::mem::take(&mut self.touched) {
            self.execute(
                "UPDATE task_jobs SET updated_at = $2 WHERE job_id = $1",
                &[&job, &at],
            )?;
        }
        Ok(())
    }

    /// Sends the task writes kept so far, in one statement.
    fn flush_tasks(&mut self) -> Result<(), StoreError> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let dirty = std::mem::take(&mut self.dirty);
        let (mut whole, mut changed) = (Vec::new(), Vec::new());
        for id in &dirty {
            if let Some(h) = self.held.get_mut(id) {
                h.dirty = false;
                if std::mem::replace(&mut h.whole, false) {
                    whole.push(id);
                } else {
                    changed.push(id);
                }
            }
        }
        if !whole.is_empty() {
            let rows: Vec<&TaskRecord> = whole
                .iter()
                .filter_map(|id| self.held.get(*id).map(|h| &h.task))
                .collect();
            let columns = TaskColumns::new(&rows)?;
            let result = self
                .stmts
                .get(self.tx, UPSERT_TASKS)
                .and_then(|stmt| self.tx.execute(&stmt, &columns.params()));
            result.map_err(|e| self.fail(&e))?;
        }
        if !changed.is_empty() {
            let rows: Vec<&TaskRecord> = changed
                .iter()
                .filter_map(|id| self.held.get(*id).map(|h| &h.task))
                .collect();
            let columns = TaskChanges::new(&rows)?;
            let result = self
                .stmts
                .get(self.tx, UPDATE_TASKS)
                .and_then(|stmt| self.tx.execute(&stmt, &columns.params()));
            result.map_err(|e| self.fail(&e))?;
        }
        Ok(())
    }

    /// Writes everything collected; called before commit. Tasks first,
    /// then job rows and counts: the order every transaction locks in.
    fn finish(&mut self) -> Result<(), StoreError> {
        self.flush_tasks()?;
        self.flush_touches()?;
        self.flush_counts()
    }

    /// Keeps locked task rows as read.
    fn hold(&mut self, tasks: &[TaskRecord]) {
        for t in tasks {
            self.absent.remove(t.task_id.as_str());
            self.held.insert(
                t.task_id.to_string(),
                Held {
                    task: t.clone(),
                    deps_stored: Some(t.dependencies.len()),
                    dirty: false,
                    whole: false,
                },
            );
        }
    }

    /// Task rows selected and locked by `sql` (after the kept writes are
    /// sent, so that it sees them), kept as read.
    fn held_tasks(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.flush_tasks()?;
        let tasks = self.tasks(sql, params)?;
        self.hold(&tasks);
        Ok(tasks)
    }
}

fn decode_task(r: &Row) -> Result<TaskRecord, StoreError> {
    let task_id: String = r.try_get(0).map_err(|e| decode("task id", e))?;
    let what = format!("task `{task_id}`");
    let col = |e: postgres::Error| decode(&what, e);
    TaskRow {
        job_id: r.try_get(1).map_err(col)?,
        parent_id: r.try_get(2).map_err(col)?,
        task_type: r.try_get(3).map_err(col)?,
        agent: r.try_get(4).map_err(col)?,
        description: r.try_get(5).map_err(col)?,
        acceptance_criteria: r.try_get(6).map_err(col)?,
        input: r.try_get(7).map_err(col)?,
        output: r.try_get(8).map_err(col)?,
        error: r.try_get(9).map_err(col)?,
        priority: r.try_get(10).map_err(col)?,
        seq: r.try_get(11).map_err(col)?,
        status: r.try_get(12).map_err(col)?,
        attempts: r.try_get(13).map_err(col)?,
        failures: r.try_get(14).map_err(col)?,
        max_retries: r.try_get(15).map_err(col)?,
        timeout_ms: r.try_get(16).map_err(col)?,
        lease_owner: r.try_get(17).map_err(col)?,
        lease_expires_at: r.try_get(18).map_err(col)?,
        not_before: r.try_get(19).map_err(col)?,
        created_at: r.try_get(20).map_err(col)?,
        updated_at: r.try_get(21).map_err(col)?,
        started_at: r.try_get(22).map_err(col)?,
        finished_at: r.try_get(23).map_err(col)?,
        dependencies: Dependencies::List(r.try_get(24).map_err(col)?),
        traceparent: r.try_get(25).map_err(col)?,
        task_id,
    }
    .decode()
}

fn decode_breaker(r: &Row) -> Result<BreakerRecord, StoreError> {
    let agent: String = r.try_get(0).map_err(|e| decode("breaker agent", e))?;
    let what = format!("circuit breaker of agent `{agent}`");
    let col = |e: postgres::Error| decode(&what, e);
    BreakerRow {
        state: r.try_get(1).map_err(col)?,
        consecutive_failures: r.try_get(2).map_err(col)?,
        until: r.try_get(3).map_err(col)?,
        last_error: r.try_get(4).map_err(col)?,
        updated_at: r.try_get(5).map_err(col)?,
        agent,
    }
    .decode()
}

impl TaskTx for PgTx<'_, '_> {
    fn job(&mut self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.locked_job(job_id.as_str())
    }

    fn put_job(&mut self, job: &JobRecord) -> Result<(), StoreError> {
        // The job as written wins over a touch kept for commit.
        self.touched.retain(|(j, _)| j != job.job_id.as_str());
        let allowed = job
            .allowed_agents
            .as_ref()
            .map(|a| serde_json::to_string(a).map_err(|e| decode("allowed agents", e)))
            .transpose()?;
        let config = to_json(&format!("config of job `{}`", job.job_id), &job.config)?;
        self.execute(
            "INSERT INTO task_jobs (job_id, status, allowed_agents, config, started, reason, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, \
               allowed_agents = excluded.allowed_agents, config = excluded.config, \
               started = excluded.started, reason = excluded.reason, \
               updated_at = excluded.updated_at",
            &[
                &job.job_id.as_str(),
                &job.status.as_str(),
                &allowed,
                &config,
                &job.started,
                &job.reason,
                &job.created_at,
                &job.updated_at,
            ],
        )?;
        // Written here, so locked until commit.
        self.jobs.insert(job.job_id.to_string(), Some(job.clone()));
        let known = self
            .job_status
            .iter()
            .find(|(j, _)| j == job.job_id.as_str())
            .map(|(_, s)| *s);
        if known != Some(job.status.as_str()) {
            self.notify = true;
        }
        self.wrote = true;
        Ok(())
    }

    fn jobs_with_status(&mut self, status: JobStatus) -> Result<Vec<JobId>, StoreError> {
        let rows = self.query(
            "SELECT job_id FROM task_jobs WHERE status = $1 ORDER BY created_at, seq",
            &[&status.as_str()],
        )?;
        rows.iter()
            .map(|r| {
                r.try_get::<_, String>(0)
                    .map(JobId::from)
                    .map_err(|e| decode("job id", e))
            })
            .collect()
    }

    fn task(&mut self, task_id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        // Locked (job first): the caller's checks (fencing token, status)
        // hold until commit, and later reads answer from memory. A task of
        // a job this transaction has locked already is read and locked in
        // one round trip.
        if let Some(h) = self.held.get(task_id.as_str()) {
            return Ok(Some(h.task.clone()));
        }
        if self.absent.contains(task_id.as_str()) {
            return Ok(None);
        }
        let locked = self.locked_ids();
        if !locked.is_empty() {
            let found = self
                .tasks(
                    select_tasks!(
                        "WHERE t.task_id = $1 AND t.job_id = ANY($2) FOR NO KEY UPDATE OF t"
                    ),
                    &[&task_id.as_str(), &locked],
                )?
                .pop();
            if let Some(t) = found {
                self.hold(std::slice::from_ref(&t));
                return Ok(Some(t));
            }
        }
        let job = self.query(
            "SELECT job_id FROM tasks WHERE task_id = $1",
            &[&task_id.as_str()],
        )?;
        let Some(job) = job.first() else {
            self.absent.insert(task_id.to_string());
            return Ok(None);
        };
        let job: String = job.try_get(0).map_err(|e| decode("task's job id", e))?;
        self.lock_job(&job)?;
        let found = self
            .tasks(
                select_tasks!("WHERE t.task_id = $1 FOR NO KEY UPDATE OF t"),
                &[&task_id.as_str()],
            )?
            .pop();
        match &found {
            Some(t) => self.hold(std::slice::from_ref(t)),
            None => {
                self.absent.insert(task_id.to_string());
            }
        }
        Ok(found)
    }

    fn put_task(&mut self, t: &TaskRecord) -> Result<(), StoreError> {
        self.lock_job(t.job_id.as_str())?;
        let id = t.task_id.as_str();
        // Rows not held are written whole (new, or unknown here).
        let whole = self
            .held
            .get(id)
            .is_none_or(|h| (h.dirty && h.whole) || !same_fixed(&h.task, t));
        let (old, deps_stored, dirty) = match self.held.get(id) {
            Some(h) => (Some(h.task.status.as_str()), h.deps_stored, h.dirty),
            None if self.absent.contains(id) => (None, Some(0), false),
            None => {
                let rows = self.query(
                    "SELECT status FROM tasks WHERE task_id = $1 FOR NO KEY UPDATE",
                    &[&id],
                )?;
                match rows.first() {
                    Some(r) => {
                        let s: String = r.try_get(0).map_err(|e| decode("task status", e))?;
                        let status = TaskStatus::parse(&s)
                            .ok_or_else(|| decode("task status", format!("unknown `{s}`")))?;
                        (Some(status.as_str()), None, false)
                    }
                    None => (None, Some(0), false),
                }
            }
        };
        // Dependencies are only ever added, so as many as stored are the same.
        if !t.dependencies.is_empty() && deps_stored != Some(t.dependencies.len()) {
            // Known ones keep their position. The foreign keys are checked
            // at commit, so the task's own row may follow.
            let deps: Vec<&str> = t.dependencies.iter().map(TaskId::as_str).collect();
            self.execute(
                "INSERT INTO task_dependencies (task_id, dependency_id, position) \
                 SELECT $1, d, p FROM unnest($2::text[]) WITH ORDINALITY AS u(d, p) \
                 ON CONFLICT DO NOTHING",
                &[&id, &deps],
            )?;
            for d in &t.dependencies {
                self.dependents.remove(d.as_str());
            }
        }
        if old != Some(t.status.as_str()) {
            if let Some(o) = old {
                self.bump_count(t.job_id.as_str(), o, -1);
            }
            self.bump_count(t.job_id.as_str(), t.status.as_str(), 1);
        }
        self.absent.remove(id);
        self.held.insert(
            id.to_string(),
            Held {
                task: t.clone(),
                deps_stored: Some(t.dependencies.len()),
                dirty: true,
                whole,
            },
        );
        if !dirty {
            self.dirty.push(id.to_string());
        }
        if t.status == TaskStatus::Ready {
            self.notify = true;
        }
        self.wrote = true;
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        if self.seqs.is_empty() {
            // A few at once: numbers left unused are gaps, as a rolled
            // back transaction leaves anyway.
            let rows = self.query(
                "SELECT nextval('task_seq') FROM generate_series(1, $1)",
                &[&SEQ_BATCH],
            )?;
            let mut taken = rows
                .iter()
                .map(|r| r.try_get::<_, i64>(0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| decode("task sequence", e))?;
            taken.sort_unstable();
            self.seqs.extend(taken);
        }
        let n = self
            .seqs
            .pop_front()
            .ok_or_else(|| decode("task sequence", "no row"))?;
        narrow("task sequence", n)
    }

    fn job_tasks(&mut self, job_id: &JobId) -> Result<Vec<TaskRecord>, StoreError> {
        self.flush_tasks()?;
        self.tasks(
            select_tasks!("WHERE t.job_id = $1 ORDER BY t.seq"),
            &[&job_id.as_str()],
        )
    }

    fn dependents(&mut self, task_id: &TaskId) -> Result<Vec<TaskId>, StoreError> {
        if let Some(d) = self.dependents.get(task_id.as_str()) {
            return Ok(d.clone());
        }
        let rows = self.query(
            "SELECT task_id FROM task_dependencies WHERE dependency_id = $1 ORDER BY task_id",
            &[&task_id.as_str()],
        )?;
        rows.iter()
            .map(|r| {
                r.try_get::<_, String>(0)
                    .map(TaskId::from)
                    .map_err(|e| decode("dependent task id", e))
            })
            .collect()
    }

    fn prefetch(&mut self, tasks: &[&TaskRecord]) -> Result<(), StoreError> {
        let mut jobs: Vec<&str> = tasks.iter().map(|t| t.job_id.as_str()).collect();
        jobs.sort_unstable();
        jobs.dedup();
        for j in jobs {
            self.lock_job(j)?;
        }
        let ids: Vec<&str> = tasks
            .iter()
            .map(|t| t.task_id.as_str())
            .filter(|id| !self.held.contains_key(*id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rows = self.query(PREFETCH_TASKS, &[&ids])?;
        let mut found = Vec::with_capacity(rows.len());
        for r in &rows {
            let t = decode_task(r)?;
            let dependents: Vec<String> = r
                .try_get(26)
                .map_err(|e| decode(format!("dependents of task `{}`", t.task_id), e))?;
            self.dependents.insert(
                t.task_id.to_string(),
                dependents.into_iter().map(TaskId::from).collect(),
            );
            found.push(t);
        }
        for id in ids {
            if !found.iter().any(|t| t.task_id.as_str() == id) {
                self.absent.insert(id.to_string());
            }
        }
        self.hold(&found);
        Ok(())
    }

    fn ready_tasks(
        &mut self,
        job_id: &JobId,
        now: i64,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        // The claim query: tasks another transaction holds are skipped, not waited for.
        self.lock_job(job_id.as_str())?;
        self.held_tasks(
            select_tasks!(
                "WHERE t.job_id = $1 AND t.status = 'Ready' \
                   AND (t.not_before IS NULL OR t.not_before <= $2) \
                 ORDER BY t.priority DESC, t.seq LIMIT $3 FOR UPDATE OF t SKIP LOCKED"
            ),
            &[&job_id.as_str(), &now, &wide(limit)],
        )
    }

    fn expired_leases(&mut self, job_id: &JobId, now: i64) -> Result<Vec<TaskRecord>, StoreError> {
        self.lock_job(job_id.as_str())?;
        self.held_tasks(
            select_tasks!(
                "WHERE t.job_id = $1 AND t.status = 'InProgress' AND t.lease_expires_at <= $2 \
                 ORDER BY t.seq FOR NO KEY UPDATE OF t"
            ),
            &[&job_id.as_str(), &now],
        )
    }

    fn next_deadline(&mut self, job_id: &JobId, now: i64) -> Result<Option<i64>, StoreError> {
        self.flush_tasks()?;
        let rows = self.query(
            "SELECT LEAST( \
               (SELECT MIN(lease_expires_at) FROM tasks \
                  WHERE job_id = $1 AND status = 'InProgress'), \
               (SELECT MIN(not_before) FROM tasks WHERE job_id = $1 AND status = 'Ready' \
                  AND not_before IS NOT NULL AND not_before > $2))",
            &[&job_id.as_str(), &now],
        )?;
        match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| decode("next deadline", e)),
            None => Ok(None),
        }
    }

    fn touch_job(&mut self, job_id: &JobId, now: i64) -> Result<(), StoreError> {
        // Written once at commit; the status is untouched, so other
        // processes need not hear of it.
        if self.locked_job(job_id.as_str())?.is_none() {
            return Ok(());
        }
        if let Some(Some(job)) = self.jobs.get_mut(job_id.as_str()) {
            job.updated_at = now;
        }
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
        self.execute(
            "INSERT INTO task_attempt_errors (task_id, job_id, attempt, error, at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &e.task_id.as_str(),
                &e.job_id.as_str(),
                &wide(e.attempt),
                &e.error,
                &e.at,
            ],
        )?;
        self.wrote = true;
        Ok(())
    }

    fn attempt_errors(&mut self, task_id: &TaskId) -> Result<Vec<AttemptError>, StoreError> {
        let rows = self.query(
            "SELECT job_id, attempt, error, at FROM task_attempt_errors \
             WHERE task_id = $1 ORDER BY seq",
            &[&task_id.as_str()],
        )?;
        let what = format!("attempt error of task `{task_id}`");
        rows.iter()
            .map(|r| {
                Ok(AttemptError {
                    task_id: task_id.clone(),
                    job_id: JobId::from(r.try_get::<_, String>(0).map_err(|e| decode(&what, e))?),
                    attempt: narrow(&what, r.try_get(1).map_err(|e| decode(&what, e))?)?,
                    error: r.try_get(2).map_err(|e| decode(&what, e))?,
                    at: r.try_get(3).map_err(|e| decode(&what, e))?,
                })
            })
            .collect()
    }

    fn breaker(&mut self, agent: &str) -> Result<Option<BreakerRecord>, StoreError> {
        let rows = self.query(
            "SELECT agent, state, consecutive_failures, until, last_error, updated_at \
             FROM task_breakers WHERE agent = $1 FOR UPDATE",
            &[&agent],
        )?;
        rows.first().map(decode_breaker).transpose()
    }

    fn put_breaker(&mut self, b: &BreakerRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO task_breakers \
             (agent, state, consecutive_failures, until, last_error, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (agent) DO UPDATE SET state = excluded.state, \
             consecutive_failures = excluded.consecutive_failures, until = excluded.until, \
             last_error = excluded.last_error, updated_at = excluded.updated_at",
            &[
                &b.agent,
                &b.state.as_str(),
                &wide(b.consecutive_failures),
                &b.until,
                &b.last_error,
                &b.updated_at,
            ],
        )?;
        self.wrote = true;
        Ok(())
    }

    fn breakers(&mut self) -> Result<Vec<BreakerRecord>, StoreError> {
        let rows = self.query(
            "SELECT agent, state, consecutive_failures, until, last_error, updated_at \
             FROM task_breakers ORDER BY agent",
            &[],
        )?;
        rows.iter().map(decode_breaker).collect()
    }

    fn dead_letters(&mut self, job: Option<&JobId>) -> Result<Vec<TaskRecord>, StoreError> {
        self.flush_tasks()?;
        match job {
            Some(j) => self.tasks(
                select_tasks!(
                    "WHERE t.status = 'Failed' AND t.job_id = $1 AND EXISTS (SELECT 1 FROM \
                     task_attempt_errors e WHERE e.task_id = t.task_id \
                     AND e.attempt = t.attempts) ORDER BY t.seq"
                ),
                &[&j.as_str()],
            ),
            None => self.tasks(
                select_tasks!(
                    "WHERE t.status = 'Failed' AND EXISTS (SELECT 1 FROM task_attempt_errors e \
                     WHERE e.task_id = t.task_id AND e.attempt = t.attempts) ORDER BY t.seq"
                ),
                &[],
            ),
        }
    }

    fn job_counts(&mut self, job_id: &JobId) -> Result<JobCounts, StoreError> {
        let rows = self.query(
            "SELECT status, n FROM task_counts WHERE job_id = $1",
            &[&job_id.as_str()],
        )?;
        let mut by_status: Vec<(String, i64)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let status: String = r.try_get(0).map_err(|e| decode("task count", e))?;
            let n: i64 = r.try_get(1).map_err(|e| decode("task count", e))?;
            by_status.push((status, n));
        }
        // This transaction's changes, written at commit.
        for (j, status, delta) in &self.counts {
            if j != job_id.as_str() {
                continue;
            }
            match by_status.iter_mut().find(|(s, _)| s == status) {
                Some((_, n)) => *n += delta,
                None => by_status.push(((*status).to_string(), *delta)),
            }
        }
        let mut c = JobCounts::default();
        for (status, n) in &by_status {
            let n = usize::try_from(*n).unwrap_or(0);
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

/// The end of one attempt at a transaction.
enum Attempt {
    /// Whether this process's job loops should hear of it.
    Committed {
        wake: bool,
    },
    Retry(Retry, StoreError),
    Failed(StoreError),
}

/// Runs `f` where the synchronous client may block: directly on a plain
/// thread, in `block_in_place` on a multi-threaded runtime's worker, and on a
/// scoped thread from a current-thread runtime (whose only thread must not
/// block on another runtime).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => f(),
    }
}

impl PostgresStore {
    fn attempt(
        &self,
        conn: &mut PgConn,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Attempt {
        let location = self.location();
        let PgConn { client, stmts, .. } = conn;
        let mut tx = match client.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let err = map_pg(&e, location);
                return match retry_kind(&e) {
                    Some(kind) => Attempt::Retry(kind, err),
                    None => Attempt::Failed(err),
                };
            }
        };
        let mut view = PgTx {
            tx: &mut tx,
            stmts,
            location,
            wrote: false,
            notify: false,
            job_status: Vec::new(),
            retry: None,
            jobs: HashMap::new(),
            held: HashMap::new(),
            dirty: Vec::new(),
            absent: HashSet::new(),
            dependents: HashMap::new(),
            seqs: VecDeque::new(),
            counts: Vec::new(),
            touched: Vec::new(),
            quiet: false,
        };
        let result = f(&mut view).and_then(|()| view.finish());
        let (wrote, notify, retry) = (view.wrote, view.notify, view.retry);
        let wake = wrote && (notify || !view.quiet);
        if let Err(e) = result {
            return match retry {
                Some(kind) => Attempt::Retry(kind, e),
                None => Attempt::Failed(e),
            };
        }
        match tx.commit() {
            Ok(()) => {
                // After the commit, in a transaction of its own: one that
                // notifies holds the server's notification lock until its
                // commit is flushed, so a notifying write would serialize
                // every such write on that flush; this one writes nothing.
                if notify {
                    let sent = stmts
                        .get(client, "SELECT pg_notify($1, current_schema())")
                        .and_then(|stmt| client.execute(&stmt, &[&CHANNEL]));
                    if let Err(e) = sent {
                        tracing::warn!(location = %location, error = %e,
                            "task notification not sent; other processes' job loops wake on their timers");
                    }
                }
                Attempt::Committed { wake }
            }
            Err(e) => match retry_kind(&e) {
                Some(kind) => Attempt::Retry(kind, map_pg(&e, location)),
                None => Attempt::Failed(map_pg(&e, location)),
            },
        }
    }

    fn transact_blocking(
        &self,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            let mut conn = self.conn()?;
            match self.attempt(&mut conn, f) {
                Attempt::Committed { wake } => {
                    if wake {
                        self.inner.signal.bump();
                    }
                    return Ok(());
                }
                Attempt::Failed(e) => return Err(e),
                Attempt::Retry(kind, e) => {
                    tries += 1;
                    if kind == Retry::ConnectionLost {
                        conn.mark_broken();
                    }
                    let limit = if kind == Retry::ConnectionLost {
                        2
                    } else {
                        MAX_RETRIES
                    };
                    if tries >= limit {
                        return Err(e);
                    }
                    tracing::debug!(location = %self.location(), ?kind, error = %e,
                        "task transaction retried");
                }
            }
        }
    }

    fn start_listener(&self) {
        let config = self.config().clone();
        let schema = self
            .schema()
            .map(str::to_string)
            .unwrap_or_else(|| "public".to_string());
        let sender = self.inner.signal.sender.clone();
        let alive = Arc::downgrade(&self.inner.signal.alive);
        let location = self.location().to_string();
        let spawned = std::thread::Builder::new()
            .name("dagger-pg-listen".into())
            .spawn(move || listen(&config, &schema, &sender, &alive, &location));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the postgres LISTEN thread; job loops rely on their timers");
        }
    }
}

/// The listener thread: `LISTEN dagger_tasks` on a dedicated connection and
/// a wake-up for each notification about this store's schema. A lost
/// connection is reopened (with a growing pause) and followed by one
/// wake-up, since notifications sent meanwhile are lost. The one-second
/// timeout only lets the thread notice that its store was dropped.
fn listen(
    config: &postgres::Config,
    schema: &str,
    sender: &watch::Sender<u64>,
    alive: &Weak<()>,
    location: &str,
) {
    let bump = || sender.send_modify(|n| *n = n.wrapping_add(1));
    listen_loop(config, CHANNEL, alive, location, "tasks", bump, |payload| {
        if payload == schema {
            bump();
        }
    });
}

impl TaskStore for PostgresStore {
    fn transact(
        &self,
        f: &mut (dyn FnMut(&mut dyn TaskTx) -> Result<(), StoreError> + Send),
    ) -> Result<(), StoreError> {
        off_runtime(|| self.transact_blocking(f))
    }

    fn location(&self) -> String {
        PostgresStore::location(self).to_string()
    }

    fn change_signal(&self) -> Option<watch::Receiver<u64>> {
        self.inner
            .signal
            .listener
            .call_once(|| self.start_listener());
        Some(self.inner.signal.sender.subscribe())
    }
}
