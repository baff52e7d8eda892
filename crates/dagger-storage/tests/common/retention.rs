//! One retention suite for every backend: what `prune` removes and, above
//! all, what it must keep.

use super::conformance::{node, run};
use super::message_conformance::record;
use super::task_conformance::{job, task};
use dagger_core::store::{
    ArtifactStore, AttemptError, AttemptLogs, AttemptOutcome, AttemptQuery, AttemptRecord,
    MessageLog, PruneReport, Retention, RunStore, TaskStore, TaskTx, read, transact,
};
use dagger_core::{JobId, JobStatus, NodeId, NodeStatus, RunId, RunStatus, StoreError, TaskId};
use serde_json::json;

const CUTOFF: i64 = 10_000;

fn attempt(run_id: &str, artifact: &dagger_core::store::ArtifactId) -> AttemptRecord {
    AttemptRecord {
        run_id: RunId::from(run_id),
        node_id: NodeId::from("a"),
        invocation_key: String::new(),
        attempt: 1,
        action: "double".to_string(),
        outcome: AttemptOutcome::Succeeded,
        error: None,
        output: json!(null),
        output_artifact_id: Some(artifact.clone()),
        started_at: 1_000,
        finished_at: 1_500,
        logs: AttemptLogs::default(),
    }
}

async fn add_run<S: RunStore>(
    store: &S,
    id: &str,
    status: RunStatus,
    finished_at: Option<i64>,
    artifact: &dagger_core::store::ArtifactId,
) {
    let mut r = run(id, "wf", status, 1_000);
    r.finished_at = finished_at;
    store.create_run(r).await.unwrap();
    let mut n = node(id, "a", "", NodeStatus::Completed);
    n.output_artifact_id = Some(artifact.clone());
    store.put_node_run(n).await.unwrap();
    store.put_attempt(attempt(id, artifact)).await.unwrap();
    store.flush().await.unwrap();
}

/// An ended job last updated at 1 000 with two tasks (the second depends on
/// the first) and a dead letter, and a running job as old with one task.
fn add_jobs(store: &dyn TaskStore, ended: &str, running: &str) {
    transact(store, |tx: &mut dyn TaskTx| {
        let mut done = job(ended);
        done.status = JobStatus::Completed(false);
        done.updated_at = 1_000;
        tx.put_job(&done)?;
        let first = task(&format!("{ended}-1"), ended, 1, 0);
        let mut second = task(&format!("{ended}-2"), ended, 2, 0);
        second.dependencies = vec![first.task_id.clone()];
        tx.put_task(&first)?;
        tx.put_task(&second)?;
        tx.add_attempt_error(&AttemptError {
            task_id: first.task_id.clone(),
            job_id: JobId::from(ended),
            attempt: 1,
            error: "boom".into(),
            at: 900,
        })?;
        let mut live = job(running);
        live.updated_at = 1_000;
        tx.put_job(&live)?;
        tx.put_task(&task(&format!("{running}-1"), running, 3, 0))?;
        Ok::<_, StoreError>(())
    })
    .unwrap();
}

/// Old finished runs go with their attempts and unshared artifacts; running,
/// paused and recent runs, and an artifact a kept run still uses, stay.
/// `p` keeps ids apart when a backend is shared.
pub(crate) async fn retention_suite<S>(store: &S, p: &str)
where
    S: RunStore + ArtifactStore + MessageLog + Retention + TaskStore,
{
    let ended = format!("{p}ended");
    let busy = format!("{p}busy");
    add_jobs(store, &ended, &busy);
    let own = store
        .put_artifact(format!("{p} own").into_bytes())
        .await
        .unwrap();
    let shared = store
        .put_artifact(format!("{p} shared").into_bytes())
        .await
        .unwrap();
    let done = format!("{p}done");
    let failed = format!("{p}failed");
    let running = format!("{p}running");
    let paused = format!("{p}paused");
    let recent = format!("{p}recent");
    add_run(store, &done, RunStatus::Completed, Some(2_000), &own).await;
    add_run(store, &failed, RunStatus::Failed, Some(2_000), &shared).await;
    add_run(store, &running, RunStatus::Running, None, &shared).await;
    add_run(store, &paused, RunStatus::Paused, None, &shared).await;
    add_run(
        store,
        &recent,
        RunStatus::Completed,
        Some(CUTOFF + 1),
        &shared,
    )
    .await;

    let channel = format!("{p}chan");
    let lonely = format!("{p}lonely");
    store
        .append(&channel, (1..=3).map(record).collect())
        .await
        .unwrap();
    store.commit(&channel, "sub-a", 2).await.unwrap();
    store.commit(&channel, "sub-b", 3).await.unwrap();
    store
        .append(&lonely, (1..=2).map(record).collect())
        .await
        .unwrap();

    let expected = PruneReport {
        runs: 2,
        node_runs: 2,
        node_attempts: 2,
        artifacts: 1,
        task_jobs: 1,
        tasks: 2,
        task_dependencies: 1,
        task_dead_letters: 1,
        // Offset 1 and 2 are behind both subscribers; 3 is the last.
        messages: 2,
        ..PruneReport::default()
    };
    let dry = store.prune(CUTOFF, true).await.unwrap();
    assert_eq!(dry, expected, "a dry run counts what a prune removes");
    assert!(
        store
            .get_run(&RunId::from(done.as_str()))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store.get_artifact(&own).await.is_ok(),
        "a dry run removes nothing"
    );

    let report = store.prune(CUTOFF, false).await.unwrap();
    assert_eq!(report, expected);
    for gone in [&done, &failed] {
        let id = RunId::from(gone.as_str());
        assert!(store.get_run(&id).await.unwrap().is_none(), "{gone} pruned");
        let attempts = store.attempts(&id, &AttemptQuery::default()).await.unwrap();
        assert!(attempts.is_empty(), "{gone}: attempts pruned");
    }
    for kept in [&running, &paused, &recent] {
        let id = RunId::from(kept.as_str());
        let r = store.get_run(&id).await.unwrap();
        assert!(r.is_some(), "{kept} must survive a prune");
        let attempts = store.attempts(&id, &AttemptQuery::default()).await.unwrap();
        assert_eq!(attempts.len(), 1, "{kept}: attempts kept");
    }
    assert!(
        store.get_artifact(&own).await.is_err(),
        "unshared artifact pruned"
    );
    assert_eq!(
        store.get_artifact(&shared).await.unwrap(),
        format!("{p} shared").into_bytes(),
        "an artifact a kept run references stays"
    );
    let left = store.read_from(&channel, 0, 10).await.unwrap();
    assert_eq!(left.iter().map(|m| m.offset).collect::<Vec<_>>(), [3]);
    assert_eq!(store.read_from(&lonely, 0, 10).await.unwrap().len(), 2);
    let (ended_job, busy_job, busy_tasks, dead) = read(store, |tx: &mut dyn TaskTx| {
        Ok::<_, StoreError>((
            tx.job(&JobId::from(ended.as_str()))?,
            tx.job(&JobId::from(busy.as_str()))?,
            tx.job_tasks(&JobId::from(busy.as_str()))?.len(),
            tx.attempt_errors(&TaskId::from(format!("{ended}-1").as_str()))?
                .len(),
        ))
    })
    .unwrap();
    assert!(ended_job.is_none(), "the ended job is pruned");
    assert_eq!(dead, 0, "its dead letters with it");
    assert!(busy_job.is_some(), "a running job stays, however old");
    assert_eq!(busy_tasks, 1);
    let next = store.append(&channel, vec![record(4)]).await.unwrap();
    assert_eq!(next, 4, "offsets keep counting after a prune");

    let again = store.prune(CUTOFF, false).await.unwrap();
    assert_eq!(again, PruneReport::default(), "nothing left to prune");
}
