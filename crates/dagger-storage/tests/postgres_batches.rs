//! The batching of the Postgres store: a transaction keeps its task writes
//! and sends them in one statement, yet reads its own writes; batch claims
//! from separate sessions never hand one task out twice; node records share
//! commits (group commit), stay in order and report their errors.
#![cfg(feature = "postgres")]

mod common;

use common::conformance::{attempt, node, run};
use common::postgres::{drop_schema_blocking, fresh_store, open_blocking, unique_schema};
use common::task_conformance::task;
use dagger_core::store::{AttemptQuery, JobRecord, RunStore, TaskRecord, TaskStore, transact};
use dagger_core::{JobId, JobStatus, NodeStatus, RunId, RunStatus, StoreError, TaskId, TaskStatus};
use std::collections::HashSet;

const JOB: &str = "batch";

/// A Ready task of the job, as `insert_tasks` would write it.
fn ready_task(i: usize) -> TaskRecord {
    let mut t = task(&format!("t{i}"), JOB, i as u64, 0);
    t.parent_id = None;
    t
}

/// The job and `n` Ready tasks, in one transaction.
fn seed(store: &dyn TaskStore, n: usize) {
    transact(store, |tx| {
        tx.put_job(&JobRecord {
            job_id: JobId::from(JOB),
            status: JobStatus::Running,
            allowed_agents: None,
            config: serde_json::Value::Null,
            started: true,
            reason: None,
            created_at: 1,
            updated_at: 1,
        })?;
        for i in 0..n {
            tx.put_task(&ready_task(i))?;
        }
        Ok::<_, StoreError>(())
    })
    .expect("seed");
}

/// Claims up to `limit` Ready tasks the way the job loop does: read them
/// (`FOR UPDATE SKIP LOCKED`), write each InProgress with its next attempt.
fn claim(store: &dyn TaskStore, owner: &str, limit: usize) -> Vec<(String, u32)> {
    transact(store, |tx| {
        let mut out = Vec::new();
        for mut t in tx.ready_tasks(&JobId::from(JOB), i64::MAX, limit)? {
            t.status = TaskStatus::InProgress;
            t.attempts += 1;
            t.lease_owner = Some(owner.to_string());
            t.lease_expires_at = Some(i64::MAX);
            tx.put_task(&t)?;
            out.push((t.task_id.to_string(), t.attempts));
        }
        Ok::<_, StoreError>(out)
    })
    .expect("claim")
}

#[test]
fn a_transaction_reads_its_own_kept_task_writes() {
    let schema = unique_schema("own_writes");
    let Some(store) = open_blocking(&schema) else {
        return;
    };
    seed(&store, 3);
    let job = JobId::from(JOB);
    transact(&store, |tx| {
        let mut t = tx.task(&TaskId::from("t0"))?.expect("t0");
        t.status = TaskStatus::InProgress;
        t.attempts = 1;
        t.lease_expires_at = Some(50);
        tx.put_task(&t)?;
        // Reads from memory and queries both see the write.
        let again = tx.task(&TaskId::from("t0"))?.expect("t0");
        assert_eq!((again.status, again.attempts), (TaskStatus::InProgress, 1));
        let ready: Vec<String> = tx
            .ready_tasks(&job, i64::MAX, 10)?
            .iter()
            .map(|t| t.task_id.to_string())
            .collect();
        assert_eq!(ready, ["t1", "t2"]);
        let all = tx.job_tasks(&job)?;
        assert_eq!(all[0].status, TaskStatus::InProgress);
        assert_eq!(tx.next_deadline(&job, 0)?, Some(50));
        assert_eq!(tx.expired_leases(&job, 60)?.len(), 1);
        let counts = tx.job_counts(&job)?;
        assert_eq!((counts.total, counts.in_progress), (3, 1));
        // A new task with a dependency on a kept write.
        let mut late = ready_task(3);
        late.status = TaskStatus::Pending;
        late.dependencies = vec![TaskId::from("t0")];
        late.seq = tx.next_seq()?;
        tx.put_task(&late)?;
        assert_eq!(tx.dependents(&TaskId::from("t0"))?, [TaskId::from("t3")]);
        Ok::<_, StoreError>(())
    })
    .expect("transaction");
    // Committed: another transaction sees it all.
    let (t0, t3, counts) = transact(&store, |tx| {
        Ok::<_, StoreError>((
            tx.task(&TaskId::from("t0"))?.expect("t0"),
            tx.task(&TaskId::from("t3"))?.expect("t3"),
            tx.job_counts(&job)?,
        ))
    })
    .expect("read");
    assert_eq!((t0.status, t0.attempts), (TaskStatus::InProgress, 1));
    assert_eq!(t3.dependencies, [TaskId::from("t0")]);
    assert_eq!((counts.total, counts.open, counts.in_progress), (4, 4, 1));
    drop_schema_blocking(store);
}

#[test]
fn kept_writes_change_every_column_they_change() {
    let schema = unique_schema("kept_columns");
    let Some(store) = open_blocking(&schema) else {
        return;
    };
    seed(&store, 2);
    transact(&store, |tx| {
        // t0: only changing columns (sent as an update of those).
        let mut t0 = tx.task(&TaskId::from("t0"))?.expect("t0");
        t0.status = TaskStatus::InProgress;
        t0.attempts = 3;
        t0.lease_owner = Some("w".into());
        t0.output = Some(serde_json::json!({"partial": true}));
        tx.put_task(&t0)?;
        // t1: a fixed column too (sent whole).
        let mut t1 = tx.task(&TaskId::from("t1"))?.expect("t1");
        t1.priority = 7;
        t1.input = serde_json::json!({"rewritten": 1});
        t1.error = Some("e".into());
        tx.put_task(&t1)?;
        Ok::<_, StoreError>(())
    })
    .expect("write");
    let (t0, t1) = transact(&store, |tx| {
        Ok::<_, StoreError>((
            tx.task(&TaskId::from("t0"))?.expect("t0"),
            tx.task(&TaskId::from("t1"))?.expect("t1"),
        ))
    })
    .expect("read");
    assert_eq!((t0.status, t0.attempts), (TaskStatus::InProgress, 3));
    assert_eq!(t0.lease_owner.as_deref(), Some("w"));
    assert_eq!(t0.output, Some(serde_json::json!({"partial": true})));
    assert_eq!(t0.input, ready_task(0).input, "untouched columns kept");
    assert_eq!((t1.priority, t1.error.as_deref()), (7, Some("e")));
    assert_eq!(t1.input, serde_json::json!({"rewritten": 1}));
    drop_schema_blocking(store);
}

#[test]
fn a_failed_transaction_leaves_no_kept_write_behind() {
    let schema = unique_schema("kept_rollback");
    let Some(store) = open_blocking(&schema) else {
        return;
    };
    seed(&store, 2);
    let failed = transact(&store, |tx| {
        for mut t in tx.ready_tasks(&JobId::from(JOB), i64::MAX, 10)? {
            t.status = TaskStatus::InProgress;
            t.attempts += 1;
            tx.put_task(&t)?;
        }
        Err::<(), _>(StoreError::Conflict("the caller gives up".into()))
    });
    assert!(failed.is_err());
    let ready = claim(&store, "w", 10);
    assert_eq!(ready.len(), 2, "both tasks still Ready, first attempt next");
    assert!(ready.iter().all(|(_, attempt)| *attempt == 1));
    drop_schema_blocking(store);
}

#[test]
fn batch_claims_in_separate_sessions_never_share_a_task() {
    const N: usize = 600;
    let schema = unique_schema("batch_claims");
    let Some(store) = open_blocking(&schema) else {
        return;
    };
    seed(&store, N);
    // Four claimers, each with its own pool (its own sessions), as worker
    // processes have, claiming batches of up to 25 until nothing is left.
    let claimers: Vec<_> = (0..4)
        .map(|w| {
            let schema = schema.clone();
            std::thread::spawn(move || {
                let own = open_blocking(&schema).expect("second pool");
                let mut got = Vec::new();
                loop {
                    let batch = claim(&own, &format!("w{w}"), 25);
                    if batch.is_empty() {
                        break got;
                    }
                    got.extend(batch);
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut per_claimer = Vec::new();
    for c in claimers {
        let got = c.join().expect("claimer");
        per_claimer.push(got.len());
        for (id, attempt) in got {
            assert_eq!(attempt, 1, "{id}: first attempt, so first fencing token");
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), N, "every task claimed once ({per_claimer:?})");
    let counts = transact(&store, |tx| tx.job_counts(&JobId::from(JOB))).expect("counts");
    assert_eq!((counts.total, counts.in_progress), (N, N));
    drop_schema_blocking(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_records_share_commits_and_keep_their_own_errors() {
    let Some(store) = fresh_store("group_commit").await else {
        return;
    };
    store
        .create_run(run("r1", "wf", RunStatus::Running, 1))
        .await
        .expect("run");
    // Queued writes (not waited for) are visible to reads of the store.
    for i in 0..20 {
        store
            .put_node_started(node("r1", &format!("n{i}"), "", NodeStatus::Running))
            .await
            .expect("queued");
    }
    assert_eq!(
        store
            .node_runs(&RunId::from("r1"))
            .await
            .expect("read")
            .len(),
        20
    );
    // Many writers at once: one with an unknown run fails alone.
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                let run_id = if i == 17 { "nope" } else { "r1" };
                s.put_node_run(node(run_id, &format!("n{i}"), "", NodeStatus::Completed))
                    .await
            })
        })
        .collect();
    for (i, w) in writers.into_iter().enumerate() {
        let result = w.await.expect("writer");
        if i == 17 {
            assert!(
                matches!(result, Err(StoreError::NotFound { entity: "run", .. })),
                "{result:?}"
            );
        } else {
            result.expect("a good record is committed");
        }
    }
    let nodes = store.node_runs(&RunId::from("r1")).await.expect("read");
    assert_eq!(nodes.len(), 40);
    for n in &nodes {
        // n17's completion went to another run; its start stays.
        let want = if n.node_id.as_str() == "n17" {
            NodeStatus::Running
        } else {
            NodeStatus::Completed
        };
        assert_eq!(n.state, want, "{}", n.node_id);
    }
    // An attempt of an unknown run is queued; its error shows at flush.
    let attempt = attempt("gone", "n0", "", 1);
    store.put_attempt(attempt).await.expect("queued");
    let flushed = store.flush().await;
    assert!(
        matches!(flushed, Err(StoreError::NotFound { entity: "run", .. })),
        "{flushed:?}"
    );
    store.flush().await.expect("reported once");
    let attempts = store
        .attempts(&RunId::from("r1"), &AttemptQuery::default())
        .await
        .expect("attempts");
    assert!(attempts.is_empty());
    store.drop_schema().await.expect("drop");
}
