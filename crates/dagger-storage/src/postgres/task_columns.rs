//! Many task rows written in one statement: the rows as column arrays,
//! unnested by the server into one `INSERT … ON CONFLICT DO UPDATE`, or,
//! for rows that exist and whose fixed columns (set at insertion: agent,
//! description, input, …) are unchanged, into one `UPDATE` of the columns
//! that change (status, attempts, lease, output, times).

use super::conn::wide;
use crate::rows::to_json;
use dagger_core::StoreError;
use dagger_core::TaskId;
use dagger_core::store::TaskRecord;
use postgres::types::ToSql;

/// Inserts or replaces every row of the arrays (no task twice).
pub(crate) const UPSERT_TASKS: &str = "INSERT INTO tasks (task_id, job_id, parent_id, task_type, \
     agent, description, acceptance_criteria, input, output, error, priority, seq, status, \
     attempts, failures, max_retries, timeout_ms, lease_owner, lease_expires_at, not_before, \
     created_at, updated_at, started_at, finished_at, traceparent) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
       $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int4[], $12::int8[], \
       $13::text[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::text[], \
       $19::int8[], $20::int8[], $21::int8[], $22::int8[], $23::int8[], $24::int8[], \
       $25::text[]) \
     ON CONFLICT (task_id) DO UPDATE SET job_id = excluded.job_id, \
       parent_id = excluded.parent_id, task_type = excluded.task_type, agent = excluded.agent, \
       description = excluded.description, acceptance_criteria = excluded.acceptance_criteria, \
       input = excluded.input, output = excluded.output, error = excluded.error, \
       priority = excluded.priority, seq = excluded.seq, status = excluded.status, \
       attempts = excluded.attempts, failures = excluded.failures, \
       max_retries = excluded.max_retries, timeout_ms = excluded.timeout_ms, \
       lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at, \
       not_before = excluded.not_before, created_at = excluded.created_at, \
       updated_at = excluded.updated_at, started_at = excluded.started_at, \
       finished_at = excluded.finished_at, traceparent = excluded.traceparent";

/// The columns of some task rows, in the order of [`UPSERT_TASKS`].
pub(crate) struct TaskColumns<'a> {
    task_id: Vec<&'a str>,
    job_id: Vec<&'a str>,
    parent_id: Vec<Option<&'a str>>,
    task_type: Vec<&'static str>,
    agent: Vec<&'a str>,
    description: Vec<&'a str>,
    acceptance_criteria: Vec<Option<&'a str>>,
    input: Vec<String>,
    output: Vec<Option<String>>,
    error: Vec<Option<&'a str>>,
    priority: Vec<i32>,
    seq: Vec<i64>,
    status: Vec<&'static str>,
    attempts: Vec<i64>,
    failures: Vec<i64>,
    max_retries: Vec<Option<i64>>,
    timeout_ms: Vec<Option<i64>>,
    lease_owner: Vec<Option<&'a str>>,
    lease_expires_at: Vec<Option<i64>>,
    not_before: Vec<Option<i64>>,
    created_at: Vec<i64>,
    updated_at: Vec<i64>,
    started_at: Vec<Option<i64>>,
    finished_at: Vec<Option<i64>>,
    traceparent: Vec<Option<&'a str>>,
}

impl<'a> TaskColumns<'a> {
    /// The columns of `tasks`; fails only if an input or output cannot be
    /// written as JSON.
    pub(crate) fn new(tasks: &[&'a TaskRecord]) -> Result<Self, StoreError> {
        let n = tasks.len();
        let mut c = Self {
            task_id: Vec::with_capacity(n),
            job_id: Vec::with_capacity(n),
            parent_id: Vec::with_capacity(n),
            task_type: Vec::with_capacity(n),
            agent: Vec::with_capacity(n),
            description: Vec::with_capacity(n),
            acceptance_criteria: Vec::with_capacity(n),
            input: Vec::with_capacity(n),
            output: Vec::with_capacity(n),
            error: Vec::with_capacity(n),
            priority: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            failures: Vec::with_capacity(n),
            max_retries: Vec::with_capacity(n),
            timeout_ms: Vec::with_capacity(n),
            lease_owner: Vec::with_capacity(n),
            lease_expires_at: Vec::with_capacity(n),
            not_before: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
            started_at: Vec::with_capacity(n),
            finished_at: Vec::with_capacity(n),
            traceparent: Vec::with_capacity(n),
        };
        for t in tasks {
            let what = format!("task `{}`", t.task_id);
            c.task_id.push(t.task_id.as_str());
            c.job_id.push(t.job_id.as_str());
            c.parent_id.push(t.parent_id.as_ref().map(TaskId::as_str));
            c.task_type.push(t.task_type.as_str());
            c.agent.push(&t.agent);
            c.description.push(&t.description);
            c.acceptance_criteria.push(t.acceptance_criteria.as_deref());
            c.input.push(to_json(&what, &t.input)?);
            c.output
                .push(t.output.as_ref().map(|o| to_json(&what, o)).transpose()?);
            c.error.push(t.error.as_deref());
            c.priority.push(t.priority);
            c.seq.push(wide(t.seq));
            c.status.push(t.status.as_str());
            c.attempts.push(i64::from(t.attempts));
            c.failures.push(i64::from(t.failures));
            c.max_retries.push(t.max_retries.map(i64::from));
            c.timeout_ms.push(t.timeout_ms.map(wide));
            c.lease_owner.push(t.lease_owner.as_deref());
            c.lease_expires_at.push(t.lease_expires_at);
            c.not_before.push(t.not_before);
            c.created_at.push(t.created_at);
            c.updated_at.push(t.updated_at);
            c.started_at.push(t.started_at);
            c.finished_at.push(t.finished_at);
            c.traceparent.push(t.traceparent.as_deref());
        }
        Ok(c)
    }

    /// The statement's parameters.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 25] {
        [
            &self.task_id,
            &self.job_id,
            &self.parent_id,
            &self.task_type,
            &self.agent,
            &self.description,
            &self.acceptance_criteria,
            &self.input,
            &self.output,
            &self.error,
            &self.priority,
            &self.seq,
            &self.status,
            &self.attempts,
            &self.failures,
            &self.max_retries,
            &self.timeout_ms,
            &self.lease_owner,
            &self.lease_expires_at,
            &self.not_before,
            &self.created_at,
            &self.updated_at,
            &self.started_at,
            &self.finished_at,
            &self.traceparent,
        ]
    }
}

/// Sets the changing columns of existing rows (no task twice).
pub(crate) const UPDATE_TASKS: &str = "UPDATE tasks t SET output = u.output, error = u.error, \
     status = u.status, attempts = u.attempts, failures = u.failures, \
     lease_owner = u.lease_owner, lease_expires_at = u.lease_expires_at, \
     not_before = u.not_before, updated_at = u.updated_at, started_at = u.started_at, \
     finished_at = u.finished_at \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
       $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[]) \
       AS u(task_id, output, error, status, attempts, failures, lease_owner, lease_expires_at, \
         not_before, updated_at, started_at, finished_at) \
     WHERE t.task_id = u.task_id";

/// True when `a` and `b` agree on every column [`UPDATE_TASKS`] leaves alone
/// (dependencies live in their own table).
pub(crate) fn same_fixed(a: &TaskRecord, b: &TaskRecord) -> bool {
    a.task_id == b.task_id
        && a.job_id == b.job_id
        && a.parent_id == b.parent_id
        && a.task_type == b.task_type
        && a.agent == b.agent
        && a.description == b.description
        && a.acceptance_criteria == b.acceptance_criteria
        && a.priority == b.priority
        && a.seq == b.seq
        && a.max_retries == b.max_retries
        && a.timeout_ms == b.timeout_ms
        && a.created_at == b.created_at
        && a.traceparent == b.traceparent
        && a.input == b.input
}

/// The changing columns of some task rows, in the order of [`UPDATE_TASKS`].
pub(crate) struct TaskChanges<'a> {
    task_id: Vec<&'a str>,
    output: Vec<Option<String>>,
    error: Vec<Option<&'a str>>,
    status: Vec<&'static str>,
    attempts: Vec<i64>,
    failures: Vec<i64>,
    lease_owner: Vec<Option<&'a str>>,
    lease_expires_at: Vec<Option<i64>>,
    not_before: Vec<Option<i64>>,
    updated_at: Vec<i64>,
    started_at: Vec<Option<i64>>,
    finished_at: Vec<Option<i64>>,
}

impl<'a> TaskChanges<'a> {
    /// The changing columns of `tasks`; fails only if an output cannot be
    /// written as JSON.
    pub(crate) fn new(tasks: &[&'a TaskRecord]) -> Result<Self, StoreError> {
        let n = tasks.len();
        let mut c = Self {
            task_id: Vec::with_capacity(n),
            output: Vec::with_capacity(n),
            error: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            failures: Vec::with_capacity(n),
            lease_owner: Vec::with_capacity(n),
            lease_expires_at: Vec::with_capacity(n),
            not_before: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
            started_at: Vec::with_capacity(n),
            finished_at: Vec::with_capacity(n),
        };
        for t in tasks {
            c.task_id.push(t.task_id.as_str());
            c.output.push(
                t.output
                    .as_ref()
                    .map(|o| to_json(&format!("task `{}`", t.task_id), o))
                    .transpose()?,
            );
            c.error.push(t.error.as_deref());
            c.status.push(t.status.as_str());
            c.attempts.push(i64::from(t.attempts));
            c.failures.push(i64::from(t.failures));
            c.lease_owner.push(t.lease_owner.as_deref());
            c.lease_expires_at.push(t.lease_expires_at);
            c.not_before.push(t.not_before);
            c.updated_at.push(t.updated_at);
            c.started_at.push(t.started_at);
            c.finished_at.push(t.finished_at);
        }
        Ok(c)
    }

    /// The statement's parameters.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.task_id,
            &self.output,
            &self.error,
            &self.status,
            &self.attempts,
            &self.failures,
            &self.lease_owner,
            &self.lease_expires_at,
            &self.not_before,
            &self.updated_at,
            &self.started_at,
            &self.finished_at,
        ]
    }
}
