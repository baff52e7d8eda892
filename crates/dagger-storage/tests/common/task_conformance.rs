//! One behavioural suite for every `TaskStore` backend (in-memory, SQLite,
//! Postgres): what a transaction reads back, orders, counts and undoes.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use dagger_core::store::{
    AttemptError, BreakerRecord, BreakerState, JobRecord, TaskRecord, TaskStore, TaskType, transact,
};
use dagger_core::{JobId, JobStatus, StoreError, TaskId, TaskStatus};
use serde_json::json;

/// A job record.
pub(crate) fn job(id: &str) -> JobRecord {
    JobRecord {
        job_id: JobId::from(id),
        status: JobStatus::Running,
        allowed_agents: Some(vec!["work".into(), "plan".into()]),
        config: json!({"lease_ms": 1000, "note": "ü \"q\""}),
        started: true,
        reason: None,
        created_at: 10,
        updated_at: 10,
    }
}

/// A task record with every optional column set.
pub(crate) fn task(id: &str, job: &str, seq: u64, priority: i32) -> TaskRecord {
    TaskRecord {
        task_id: TaskId::from(id),
        job_id: JobId::from(job),
        parent_id: Some(TaskId::from("parent")),
        task_type: TaskType::Subtask,
        agent: "work".into(),
        description: format!("do {id}"),
        acceptance_criteria: Some("done well".into()),
        input: json!({"n": seq, "s": "é\n"}),
        output: None,
        error: None,
        dependencies: Vec::new(),
        priority,
        seq,
        status: TaskStatus::Ready,
        attempts: 0,
        failures: 0,
        max_retries: Some(3),
        timeout_ms: Some(5_000),
        lease_owner: None,
        lease_expires_at: None,
        not_before: None,
        created_at: 20,
        updated_at: 20,
        started_at: None,
        finished_at: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

fn ids(tasks: &[TaskRecord]) -> Vec<&str> {
    tasks.iter().map(|t| t.task_id.as_str()).collect()
}

/// Runs every check; `p` keeps ids apart when a backend is shared.
pub(crate) fn run_task_store_suite(store: &dyn TaskStore, p: &str) {
    records_round_trip(store, p);
    claims_are_ordered_by_priority_then_seq(store, p);
    leases_and_deadlines(store, p);
    counts_follow_status_changes(store, p);
    a_failed_transaction_leaves_nothing(store, p);
    a_transaction_reads_its_own_writes(store, p);
    refresh_reads_what_changed_since_the_claim(store, p);
    attempt_errors_and_dead_letters(store, p);
    circuit_breakers_round_trip(store, p);
}

fn attempt_error(task: &str, job: &str, attempt: u32, error: &str) -> AttemptError {
    AttemptError {
        task_id: TaskId::from(task),
        job_id: JobId::from(job),
        attempt,
        error: error.into(),
        at: 100 + i64::from(attempt),
    }
}

/// Every attempt's error is kept in order; a dead letter is a Failed task
/// with an error recorded for its current attempt; a failed transaction
/// keeps none of its attempt errors.
fn attempt_errors_and_dead_letters(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-dead");
    let jid = JobId::from(j.as_str());
    let with = |id: &str, seq, status, attempts| {
        let mut t = task(&format!("{p}-{id}"), &j, seq, 0);
        t.status = status;
        t.attempts = attempts;
        t
    };
    // dead: failed both attempts; propagated: failed by its dependency;
    // earlier: its last attempt did not fail; retrying: Ready again.
    let dead = with("dead", 1, TaskStatus::Failed, 2);
    let propagated = with("propagated", 2, TaskStatus::Failed, 0);
    let earlier = with("earlier", 3, TaskStatus::Failed, 2);
    let retrying = with("retrying", 4, TaskStatus::Ready, 1);
    let id = |t: &TaskRecord| t.task_id.to_string();
    transact(store, |tx| {
        tx.put_job(&job(&j))?;
        for t in [&dead, &propagated, &earlier, &retrying] {
            tx.put_task(t)?;
        }
        tx.add_attempt_error(&attempt_error(&id(&dead), &j, 1, "boom 1"))?;
        tx.add_attempt_error(&attempt_error(&id(&earlier), &j, 1, "once"))?;
        tx.add_attempt_error(&attempt_error(&id(&dead), &j, 2, "panicked: ü \"2\""))?;
        tx.add_attempt_error(&attempt_error(&id(&retrying), &j, 1, "again"))
    })
    .unwrap();
    let err = transact(store, |tx| -> Result<(), StoreError> {
        tx.add_attempt_error(&attempt_error(&id(&dead), &j, 3, "rolled back"))?;
        Err(StoreError::Conflict("no".into()))
    });
    assert!(err.is_err());
    let (errors, letters, all) = transact(store, |tx| {
        Ok::<_, StoreError>((
            tx.attempt_errors(&dead.task_id)?,
            tx.dead_letters(Some(&jid))?,
            tx.dead_letters(None)?,
        ))
    })
    .unwrap();
    assert_eq!(
        errors,
        vec![
            attempt_error(&id(&dead), &j, 1, "boom 1"),
            attempt_error(&id(&dead), &j, 2, "panicked: ü \"2\""),
        ]
    );
    assert_eq!(letters, vec![dead.clone()]);
    assert!(all.contains(&dead), "{all:?}");
    assert!(!all.contains(&earlier) && !all.contains(&propagated));
    let none = transact(store, |tx| tx.attempt_errors(&TaskId::from("nothing"))).unwrap();
    assert!(none.is_empty());
}

/// Breakers are stored per agent, replaced whole, listed by agent, and
/// undone with their transaction.
fn circuit_breakers_round_trip(store: &dyn TaskStore, p: &str) {
    let b = |agent: &str, state, n| BreakerRecord {
        agent: format!("{p}-{agent}"),
        state,
        consecutive_failures: n,
        until: (state != BreakerState::Closed).then_some(5_000),
        last_error: (n > 0).then(|| "it broke: \"ü\"".to_string()),
        updated_at: 77,
    };
    let a_open = b("a", BreakerState::Open, 3);
    let z_closed = b("z", BreakerState::Closed, 0);
    transact(store, |tx| {
        tx.put_breaker(&z_closed)?;
        tx.put_breaker(&b("a", BreakerState::Closed, 1))?;
        tx.put_breaker(&a_open)
    })
    .unwrap();
    let err = transact(store, |tx| -> Result<(), StoreError> {
        tx.put_breaker(&b("a", BreakerState::HalfOpen, 3))?;
        tx.put_breaker(&b("m", BreakerState::Open, 9))?;
        Err(StoreError::Conflict("no".into()))
    });
    assert!(err.is_err());
    let (one, missing, all) = transact(store, |tx| {
        Ok::<_, StoreError>((
            tx.breaker(&a_open.agent)?,
            tx.breaker(&format!("{p}-m"))?,
            tx.breakers()?,
        ))
    })
    .unwrap();
    assert_eq!(one, Some(a_open.clone()));
    assert_eq!(missing, None);
    let mine: Vec<_> = all
        .into_iter()
        .filter(|r| r.agent.starts_with(&format!("{p}-")))
        .collect();
    assert_eq!(mine, vec![a_open, z_closed]);
}

/// `refresh_task` brings a claimed copy up to date with changes made since
/// (another transaction's status, attempts, dependencies, output, lease),
/// and writing the refreshed copy back keeps every column right.
fn refresh_reads_what_changed_since_the_claim(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-refresh");
    let (jr, mut stored) = (job(&j), task(&format!("{p}-refresh-1"), &j, 1, 0));
    let dep = task(&format!("{p}-refresh-dep"), &j, 2, 0);
    let claimed = stored.clone();
    stored.status = TaskStatus::InProgress;
    stored.attempts = 2;
    stored.failures = 1;
    stored.dependencies = vec![dep.task_id.clone()];
    stored.output = Some(json!({"partial": true}));
    stored.error = Some("first try".into());
    stored.lease_owner = Some("w".into());
    stored.lease_expires_at = Some(99);
    stored.started_at = Some(30);
    stored.updated_at = 31;
    let (dep_w, stored_w) = (dep.clone(), stored.clone());
    transact(store, |tx| {
        tx.put_job(&jr)?;
        tx.put_task(&dep_w)?;
        tx.put_task(&stored_w)
    })
    .unwrap();
    let (refreshed, gone) = transact(store, |tx| {
        let mut t = claimed.clone();
        assert!(tx.refresh_task(&mut t)?);
        t.status = TaskStatus::Completed;
        t.finished_at = Some(40);
        tx.put_task(&t)?;
        let mut missing = task(&format!("{p}-refresh-none"), &j, 3, 0);
        Ok::<_, StoreError>((t, !tx.refresh_task(&mut missing)?))
    })
    .unwrap();
    assert!(gone, "a missing task refreshes to false");
    let mut expected = stored.clone();
    expected.status = TaskStatus::Completed;
    expected.finished_at = Some(40);
    assert_eq!(refreshed, expected);
    let back = transact(store, |tx| tx.task(&expected.task_id)).unwrap();
    assert_eq!(back.as_ref(), Some(&expected));
    let jid = JobId::from(j.as_str());
    let counts = transact(store, |tx| tx.job_counts(&jid)).unwrap();
    assert_eq!(counts.in_progress, 0, "{counts:?}");
}

/// Backends write some things late (counts, the job's `updated_at`) or
/// partly (only the columns a claim changes): inside the transaction every
/// read must still see every write, and so must later transactions.
fn a_transaction_reads_its_own_writes(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-own");
    let jid = JobId::from(j.as_str());
    let t = task(&format!("{p}-own-1"), &j, 1, 0);
    let (jr, tr) = (job(&j), t.clone());
    transact(store, |tx| {
        tx.put_job(&jr)?;
        tx.put_task(&tr)
    })
    .unwrap();
    let (claimed, reworded) = transact(store, |tx| {
        // A claim: only running columns change.
        let mut c = tx.task(&t.task_id)?.unwrap();
        c.status = TaskStatus::InProgress;
        c.attempts = 1;
        c.lease_owner = Some("w".into());
        tx.put_task(&c)?;
        tx.touch_job(&jid, 77)?;
        let counts = tx.job_counts(&jid)?;
        assert_eq!((counts.open, counts.in_progress), (1, 1));
        assert_eq!(tx.job(&jid)?.unwrap().updated_at, 77);
        assert_eq!(tx.task(&t.task_id)?, Some(c.clone()));
        // Then a column a claim never changes.
        let mut r = c.clone();
        r.description = "reworded".into();
        r.input = json!({"changed": true});
        r.status = TaskStatus::Completed;
        tx.put_task(&r)?;
        tx.touch_job(&jid, 78)?;
        let counts = tx.job_counts(&jid)?;
        assert_eq!((counts.open, counts.in_progress), (0, 0));
        Ok::<_, StoreError>((c, r))
    })
    .unwrap();
    assert_eq!(claimed.status, TaskStatus::InProgress);
    let (back, job_back, counts) = transact(store, |tx| {
        Ok::<_, StoreError>((tx.task(&t.task_id)?, tx.job(&jid)?, tx.job_counts(&jid)?))
    })
    .unwrap();
    assert_eq!(back, Some(reworded));
    assert_eq!(job_back.unwrap().updated_at, 78);
    assert_eq!((counts.total, counts.open), (1, 0));
}

/// A quiet transaction (a claim, a renewal, a recorded attempt) wakes job
/// loops only when it writes a Ready task or a job; others always do.
pub(crate) fn quiet_transactions_wake_only_when_needed(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-quiet");
    let mut t = task(&format!("{p}-q1"), &j, 1, 0);
    let (jr, tr) = (job(&j), t.clone());
    transact(store, |tx| {
        tx.put_job(&jr)?;
        tx.put_task(&tr)
    })
    .unwrap();
    let mut signal = store.change_signal().unwrap();
    signal.borrow_and_update();
    t.status = TaskStatus::InProgress;
    let claim = t.clone();
    transact(store, |tx| {
        tx.quiet();
        tx.put_task(&claim)
    })
    .unwrap();
    assert!(!signal.has_changed().unwrap(), "a quiet claim wakes nobody");
    t.status = TaskStatus::Ready;
    let back = t.clone();
    transact(store, |tx| {
        tx.quiet();
        tx.put_task(&back)
    })
    .unwrap();
    assert!(
        signal.has_changed().unwrap(),
        "a Ready task wakes the loops"
    );
    signal.borrow_and_update();
    t.status = TaskStatus::InProgress;
    transact(store, |tx| tx.put_task(&t)).unwrap();
    assert!(signal.has_changed().unwrap(), "other writes wake the loops");
}

fn records_round_trip(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-rt");
    let job_rec = job(&j);
    let mut a = task(&format!("{p}-rt-a"), &j, 1, 0);
    a.output = Some(json!({"done": [1, 2]}));
    a.status = TaskStatus::Completed;
    a.lease_owner = Some("w1".into());
    a.lease_expires_at = Some(99);
    a.not_before = Some(5);
    a.started_at = Some(30);
    a.finished_at = Some(40);
    a.error = Some("earlier failure".into());
    a.attempts = 2;
    a.failures = 1;
    let mut b = task(&format!("{p}-rt-b"), &j, 2, 0);
    b.parent_id = None;
    b.acceptance_criteria = None;
    b.max_retries = None;
    b.timeout_ms = None;
    b.task_type = TaskType::Objective;
    b.dependencies = vec![a.task_id.clone(), TaskId::from(format!("{p}-rt-c"))];
    let c = task(&format!("{p}-rt-c"), &j, 3, 0);
    let (ja, ta, tb, tc) = (job_rec.clone(), a.clone(), b.clone(), c.clone());
    transact(store, |tx| {
        tx.put_job(&ja)?;
        tx.put_task(&ta)?;
        tx.put_task(&tb)?;
        tx.put_task(&tc)
    })
    .unwrap();
    let (got_job, got_a, got_b, tasks, deps_of_a, missing) = transact(store, |tx| {
        Ok::<_, StoreError>((
            tx.job(&job_rec.job_id)?,
            tx.task(&a.task_id)?,
            tx.task(&b.task_id)?,
            tx.job_tasks(&job_rec.job_id)?,
            tx.dependents(&a.task_id)?,
            tx.task(&TaskId::from(format!("{p}-none")))?,
        ))
    })
    .unwrap();
    assert_eq!(got_job, Some(job_rec.clone()));
    assert_eq!(got_a, Some(a.clone()));
    assert_eq!(got_b, Some(b.clone()), "dependencies keep their order");
    assert_eq!(
        ids(&tasks),
        [a.task_id.as_str(), b.task_id.as_str(), c.task_id.as_str()]
    );
    assert_eq!(deps_of_a, vec![b.task_id.clone()]);
    assert_eq!(missing, None);

    // Replacing a task adds dependencies, keeping the known ones first.
    let mut b2 = b.clone();
    b2.dependencies.push(TaskId::from(format!("{p}-rt-d")));
    b2.status = TaskStatus::Blocked;
    let d = task(&format!("{p}-rt-d"), &j, 4, 0);
    transact(store, |tx| {
        tx.put_task(&d)?;
        tx.put_task(&b2)
    })
    .unwrap();
    let got = transact(store, |tx| tx.task(&b.task_id)).unwrap();
    assert_eq!(got, Some(b2));

    // Jobs by status, oldest first.
    let mut done = job(&format!("{p}-rt-done"));
    done.status = JobStatus::Completed(true);
    done.created_at = 11;
    transact(store, |tx| tx.put_job(&done)).unwrap();
    let running = transact(store, |tx| tx.jobs_with_status(JobStatus::Running)).unwrap();
    assert!(running.contains(&job_rec.job_id));
    assert!(!running.contains(&done.job_id));
    let completed = transact(store, |tx| tx.jobs_with_status(JobStatus::Completed(true))).unwrap();
    assert!(completed.contains(&done.job_id));

    let s1 = transact(store, |tx| tx.next_seq()).unwrap();
    let s2 = transact(store, |tx| tx.next_seq()).unwrap();
    assert!(s2 > s1, "sequence numbers grow: {s1} then {s2}");
}

fn claims_are_ordered_by_priority_then_seq(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-order");
    let specs = [
        ("low1", 1, 0),
        ("high", 2, 5),
        ("low2", 3, 0),
        ("mid", 4, 2),
    ];
    transact(store, |tx| {
        tx.put_job(&job(&j))?;
        for (name, seq, prio) in specs {
            tx.put_task(&task(&format!("{p}-{name}"), &j, seq, prio))?;
        }
        let mut later = task(&format!("{p}-delayed"), &j, 5, 9);
        later.not_before = Some(1_000);
        tx.put_task(&later)?;
        let mut running = task(&format!("{p}-busy"), &j, 6, 9);
        running.status = TaskStatus::InProgress;
        tx.put_task(&running)
    })
    .unwrap();
    let jid = JobId::from(j.as_str());
    let ready = transact(store, |tx| tx.ready_tasks(&jid, 500, 10)).unwrap();
    let want: Vec<String> = ["high", "mid", "low1", "low2"]
        .iter()
        .map(|n| format!("{p}-{n}"))
        .collect();
    assert_eq!(
        ids(&ready),
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let two = transact(store, |tx| tx.ready_tasks(&jid, 500, 2)).unwrap();
    assert_eq!(ids(&two), [want[0].as_str(), want[1].as_str()]);
    let later = transact(store, |tx| tx.ready_tasks(&jid, 1_000, 1)).unwrap();
    assert_eq!(
        ids(&later),
        [format!("{p}-delayed").as_str()],
        "not_before has passed"
    );
}

fn leases_and_deadlines(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-lease");
    let jid = JobId::from(j.as_str());
    transact(store, |tx| {
        tx.put_job(&job(&j))?;
        for (name, seq, expires) in [("l1", 1, 100), ("l2", 2, 300)] {
            let mut t = task(&format!("{p}-{name}"), &j, seq, 0);
            t.status = TaskStatus::InProgress;
            t.attempts = 1;
            t.lease_owner = Some("w".into());
            t.lease_expires_at = Some(expires);
            tx.put_task(&t)?;
        }
        let mut retry = task(&format!("{p}-retry"), &j, 3, 0);
        retry.not_before = Some(200);
        tx.put_task(&retry)
    })
    .unwrap();
    let expired = transact(store, |tx| tx.expired_leases(&jid, 100)).unwrap();
    assert_eq!(
        ids(&expired),
        [format!("{p}-l1").as_str()],
        "expiry at `now` counts"
    );
    assert_eq!(
        transact(store, |tx| tx.next_deadline(&jid, 50)).unwrap(),
        Some(100)
    );
    assert_eq!(
        transact(store, |tx| tx.next_deadline(&jid, 250)).unwrap(),
        Some(100),
        "an expired lease is still the earliest deadline"
    );
    let empty = JobId::from(format!("{p}-nothing"));
    assert_eq!(
        transact(store, |tx| tx.next_deadline(&empty, 0)).unwrap(),
        None
    );
}

fn counts_follow_status_changes(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-counts");
    let jid = JobId::from(j.as_str());
    let mut t1 = task(&format!("{p}-c1"), &j, 1, 0);
    let t2 = task(&format!("{p}-c2"), &j, 2, 0);
    let mut t3 = task(&format!("{p}-c3"), &j, 3, 0);
    t3.status = TaskStatus::Failed;
    let (a, b, c) = (t1.clone(), t2.clone(), t3.clone());
    transact(store, |tx| {
        tx.put_job(&job(&j))?;
        tx.put_task(&a)?;
        tx.put_task(&b)?;
        tx.put_task(&c)
    })
    .unwrap();
    let counts = transact(store, |tx| tx.job_counts(&jid)).unwrap();
    assert_eq!(
        (
            counts.total,
            counts.open,
            counts.in_progress,
            counts.unsuccessful
        ),
        (3, 2, 0, 1)
    );
    t1.status = TaskStatus::InProgress;
    let a = t1.clone();
    transact(store, |tx| tx.put_task(&a)).unwrap();
    t1.status = TaskStatus::Completed;
    transact(store, |tx| tx.put_task(&t1)).unwrap();
    let counts = transact(store, |tx| tx.job_counts(&jid)).unwrap();
    assert_eq!(
        (
            counts.total,
            counts.open,
            counts.in_progress,
            counts.unsuccessful
        ),
        (3, 1, 0, 1)
    );
}

fn a_failed_transaction_leaves_nothing(store: &dyn TaskStore, p: &str) {
    let j = format!("{p}-undo");
    let jid = JobId::from(j.as_str());
    let t = task(&format!("{p}-u1"), &j, 1, 0);
    transact(store, |tx| {
        tx.put_job(&job(&j))?;
        tx.put_task(&t)
    })
    .unwrap();
    let mut changed = t.clone();
    changed.status = TaskStatus::InProgress;
    changed.attempts = 1;
    let err = transact(store, |tx| -> Result<(), StoreError> {
        tx.put_task(&changed)?;
        tx.put_task(&task(&format!("{p}-u2"), &j, 2, 0))?;
        Err(StoreError::Conflict("rule says no".into()))
    })
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m == "rule says no"),
        "{err:?}"
    );
    let (back, tasks, counts) = transact(store, |tx| {
        Ok::<_, StoreError>((
            tx.task(&t.task_id)?,
            tx.job_tasks(&jid)?,
            tx.job_counts(&jid)?,
        ))
    })
    .unwrap();
    assert_eq!(back, Some(t));
    assert_eq!(tasks.len(), 1);
    assert_eq!((counts.total, counts.open), (1, 1));
}
