//! The one plan of [`dagger_core::store::Retention::prune`], run by both
//! backends: temporary tables name what goes (finished runs, their
//! artifacts no remaining run references, ended jobs and their tasks), then
//! one `DELETE` (or, in a dry run, one `COUNT`) per table.
//!
//! The cutoff is an `i64` formatted into the text (Postgres takes no bind
//! parameters in `CREATE TABLE AS`); nothing else varies.

use dagger_core::store::PruneReport;

/// A Postgres prune keeps every artifact stored again (`artifacts.reused_at`,
/// the server's clock) less than this long before the prune's transaction
/// began: a run that stores an output identical to an artifact being pruned
/// records its node right after, and that record must not point at a
/// removed row. Ten minutes cover the store's own delay between the two
/// writes many times over, and [`REUSE_MARK_MS`].
pub(crate) const ARTIFACT_GRACE_MS: i64 = 10 * 60 * 1000;

/// A reuse mark younger than this is not refreshed (a popular output stored
/// again and again writes its mark at most once a minute).
#[cfg(feature = "postgres")]
pub(crate) const REUSE_MARK_MS: i64 = 60 * 1000;

/// Which report count a step adds to (`None`: removed, not reported).
pub(crate) type Count = Option<fn(&mut PruneReport) -> &mut u64>;

/// One table's share of a prune.
pub(crate) struct Step {
    pub(crate) count: Count,
    pub(crate) table: &'static str,
    pub(crate) filter: String,
}

impl Step {
    /// The statement that removes the step's rows.
    pub(crate) fn delete(&self) -> String {
        format!("DELETE FROM {} WHERE {}", self.table, self.filter)
    }

    /// The statement that counts them.
    pub(crate) fn count(&self) -> String {
        format!("SELECT COUNT(*) FROM {} WHERE {}", self.table, self.filter)
    }
}

/// The temporary tables a prune builds and drops.
pub(crate) const TEMP_TABLES: [&str; 4] = ["gc_runs", "gc_artifacts", "gc_jobs", "gc_tasks"];

/// Statements building the temporary tables, in order. `create` is how the
/// backend starts a transaction-scoped temporary table up to its name
/// (`CREATE TEMP TABLE`), `suffix` what follows the name.
pub(crate) fn setup(cutoff_ms: i64, create: &str, suffix: &str) -> Vec<String> {
    let kept_run = "run_id NOT IN (SELECT run_id FROM gc_runs) AND output_artifact_id IS NOT NULL";
    let gone_run = "run_id IN (SELECT run_id FROM gc_runs) AND output_artifact_id IS NOT NULL";
    vec![
        format!(
            "{create} gc_runs{suffix} AS SELECT run_id FROM flow_runs \
             WHERE status IN ('Completed', 'Failed', 'Cancelled') \
             AND COALESCE(finished_at, updated_at) < {cutoff_ms}"
        ),
        format!(
            "{create} gc_artifacts{suffix} AS SELECT output_artifact_id AS artifact_id FROM ( \
               SELECT output_artifact_id FROM node_runs WHERE {gone_run} \
               UNION SELECT output_artifact_id FROM node_attempts WHERE {gone_run} \
               EXCEPT SELECT output_artifact_id FROM node_runs WHERE {kept_run} \
               EXCEPT SELECT output_artifact_id FROM node_attempts WHERE {kept_run}) AS gone"
        ),
        format!(
            "{create} gc_jobs{suffix} AS SELECT job_id FROM task_jobs \
             WHERE status IN ('Succeeded', 'Failed', 'Cancelled') AND updated_at < {cutoff_ms}"
        ),
        format!(
            "{create} gc_tasks{suffix} AS SELECT task_id FROM tasks \
             WHERE job_id IN (SELECT job_id FROM gc_jobs)"
        ),
    ]
}

/// The steps in order (children before parents). `postgres`: the Postgres
/// backend, which has the node work queue table and the artifacts' reuse
/// mark.
pub(crate) fn steps(cutoff_ms: i64, postgres: bool) -> Vec<Step> {
    let in_runs = "run_id IN (SELECT run_id FROM gc_runs)";
    let in_jobs = "job_id IN (SELECT job_id FROM gc_jobs)";
    let step = |count: Count, table: &'static str, filter: &str| Step {
        count,
        table,
        filter: filter.to_string(),
    };
    let mut steps = vec![
        step(Some(|r| &mut r.node_attempts), "node_attempts", in_runs),
        step(Some(|r| &mut r.node_runs), "node_runs", in_runs),
        step(None, "run_controls", in_runs),
        step(None, "run_signals", in_runs),
        step(
            Some(|r| &mut r.snapshots),
            "cache_snapshots",
            "scope IN (SELECT run_id FROM gc_runs)",
        ),
        step(Some(|r| &mut r.run_keys), "flow_run_keys", in_runs),
        step(Some(|r| &mut r.runs), "flow_runs", in_runs),
        Step {
            count: Some(|r| &mut r.artifacts),
            table: "artifacts",
            filter: if postgres {
                // `now()`: when the prune's transaction began.
                format!(
                    "artifact_id IN (SELECT artifact_id FROM gc_artifacts) \
                     AND COALESCE(reused_at, 0) < \
                       (extract(epoch FROM now()) * 1000)::bigint - {ARTIFACT_GRACE_MS}"
                )
            } else {
                "artifact_id IN (SELECT artifact_id FROM gc_artifacts)".to_string()
            },
        },
        step(
            Some(|r| &mut r.task_dependencies),
            "task_dependencies",
            "task_id IN (SELECT task_id FROM gc_tasks)",
        ),
        step(
            Some(|r| &mut r.task_dead_letters),
            "task_attempt_errors",
            in_jobs,
        ),
        step(None, "task_counts", in_jobs),
        step(Some(|r| &mut r.tasks), "tasks", in_jobs),
        step(Some(|r| &mut r.task_jobs), "task_jobs", in_jobs),
        Step {
            count: Some(|r| &mut r.messages),
            table: "messages",
            filter: format!(
                "published_at < {cutoff_ms} \
                 AND seq < (SELECT MAX(m.seq) FROM messages m WHERE m.channel = messages.channel) \
                 AND seq <= (SELECT MIN(o.committed) FROM message_offsets o \
                             WHERE o.channel = messages.channel)"
            ),
        },
    ];
    if postgres {
        steps.push(Step {
            count: Some(|r| &mut r.node_queue_items),
            table: "node_queue",
            // Finished items nobody took, and every item of a pruned run
            // (left by a coordinator that died; nobody will take them).
            filter: format!(
                "(state = 'done' AND updated_at < {cutoff_ms}) \
                 OR run_id IN (SELECT run_id FROM gc_runs)"
            ),
        });
    }
    steps
}
