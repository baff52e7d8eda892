//! One attempt of one claimed task: validate input, execute the agent while
//! renewing the lease, interpret the outcome, and commit it with the lease's
//! fencing token.

use crate::agent::{TaskContext, TaskOutcome};
use crate::error::TaskError;
use crate::job::JobRuntime;
use crate::manager::TaskManager;
use crate::ops;
use dagger_core::store::TaskRecord;
use dagger_core::{ErrorClass, Permanent, now_millis};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Stale-lease reports kept for [`TaskManager::take_stale_completions`].
const STALE_KEPT: usize = 1024;

/// How an attempt ended, before it is committed.
enum Attempt {
    Output(Value),
    Waiting,
    Failed {
        class: ErrorClass,
        message: String,
    },
    /// The lease was lost (already reported) or the job stopped: nothing to commit.
    Abandoned,
}

pub(crate) async fn run(m: TaskManager, rt: Arc<JobRuntime>, task: TaskRecord) {
    let token = task.attempts;
    let ctx = TaskContext {
        task_id: task.task_id.clone(),
        job_id: task.job_id.clone(),
        manager: m.clone(),
        idempotency_key: format!("{}/{}/{}", task.job_id, task.task_id, token),
        cancel: rt.stop.child_token(),
        attempt: token,
    };
    let attempt = {
        let execute = execute(&m, &task, &ctx);
        let renew = renew_lease(&m, &rt, &task, &ctx);
        tokio::pin!(execute);
        tokio::select! {
            a = &mut execute => a,
            () = renew => Attempt::Abandoned,
        }
    };
    commit(&m, &rt, &task, attempt);
    {
        let mut r = rt.running.lock();
        r.total = r.total.saturating_sub(1);
        if let Some(n) = r.per_agent.get_mut(&task.agent) {
            *n = n.saturating_sub(1);
        }
    }
    rt.notify.notify_one();
}

/// Renews the lease at a third of its length; returns only when it is lost
/// (then the agent's cancel token fires) or renewing fails.
async fn renew_lease(m: &TaskManager, rt: &JobRuntime, task: &TaskRecord, ctx: &TaskContext) {
    let lease_ms = rt.config.lease_ms;
    let period = Duration::from_millis((lease_ms / 3).max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        ticker.tick().await;
        let until = now_millis().saturating_add(lease_ms as i64);
        let r = ops::run(m.inner.store.as_ref(), |tx| {
            ops::renew(tx, &task.task_id, task.attempts, until)
        });
        match r {
            Ok(()) => {}
            Err(e @ TaskError::StaleLease { .. }) => {
                if !rt.stop.is_cancelled() {
                    report_stale(m, e);
                }
                ctx.cancel.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(task = %task.task_id, error = %e, "lease renewal failed; will retry");
            }
        }
    }
}

fn report_stale(m: &TaskManager, e: TaskError) {
    tracing::warn!(error = %e, "discarded work under a stale lease");
    let mut stale = m.inner.stale.lock();
    if stale.len() >= STALE_KEPT {
        stale.remove(0);
    }
    stale.push(e);
}

async fn execute(m: &TaskManager, task: &TaskRecord, ctx: &TaskContext) -> Attempt {
    let Some(agent) = m.inner.registry.get(&task.agent) else {
        return Attempt::Failed {
            class: ErrorClass::Permanent,
            message: TaskError::UnknownAgent {
                task: task.task_id.to_string(),
                agent: task.agent.clone(),
            }
            .to_string(),
        };
    };
    let schema_error = |direction, violation| Attempt::Failed {
        class: ErrorClass::Schema,
        message: TaskError::Schema {
            task: task.task_id.to_string(),
            agent: task.agent.clone(),
            direction,
            violation: Box::new(violation),
        }
        .to_string(),
    };
    if let Some(s) = agent.input_schema()
        && let Err(v) = s.validate(&task.input)
    {
        return schema_error("input", v);
    }
    let run = agent.execute(task.input.clone(), ctx);
    let timed = async {
        match task.timeout_ms {
            Some(ms) => tokio::time::timeout(Duration::from_millis(ms), run)
                .await
                .map_err(|_| ms),
            None => Ok(run.await),
        }
    };
    let result = tokio::select! {
        r = timed => r,
        () = ctx.cancel.cancelled() => return Attempt::Abandoned,
    };
    let result = match result {
        Ok(r) => r,
        Err(ms) => {
            return Attempt::Failed {
                class: ErrorClass::Timeout,
                message: format!("attempt timed out after {ms} ms"),
            };
        }
    };
    match result {
        Ok(TaskOutcome::WaitingForDependencies) => Attempt::Waiting,
        Ok(TaskOutcome::Completed(v)) => {
            if let Some(s) = agent.output_schema()
                && let Err(violation) = s.validate(&v)
            {
                return schema_error("output", violation);
            }
            Attempt::Output(v)
        }
        Err(e) => Attempt::Failed {
            class: if Permanent::is_permanent(e.as_ref()) {
                ErrorClass::Permanent
            } else {
                ErrorClass::Error
            },
            message: e.to_string(),
        },
    }
}

fn commit(m: &TaskManager, rt: &JobRuntime, task: &TaskRecord, attempt: Attempt) {
    let id = &task.task_id;
    let (end, class) = match attempt {
        Attempt::Abandoned => return,
        Attempt::Output(v) => (ops::AttemptEnd::Output(v), ErrorClass::Error),
        Attempt::Waiting => (ops::AttemptEnd::Waiting, ErrorClass::Error),
        Attempt::Failed { class, message } => (ops::AttemptEnd::Failed(message), class),
    };
    let policy = &rt.config.retry;
    let retry_at = |t: &TaskRecord| {
        let again = match t.max_retries {
            Some(max) => class != ErrorClass::Permanent && t.failures <= max,
            None => policy.should_retry(t.failures, class),
        };
        again.then(|| {
            let delay = policy.delay_for(t.failures).as_millis();
            now_millis().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
        })
    };
    let deps_at_claim = task.dependencies.len();
    let result = ops::run(m.inner.store.as_ref(), |tx| {
        ops::record_attempt(
            tx,
            id,
            task.attempts,
            deps_at_claim,
            &end,
            now_millis(),
            &retry_at,
        )
    });
    match result {
        Ok(ops::Recorded::Completed) => {
            if let ops::AttemptEnd::Output(v) = end {
                m.inner.cache.insert(task.job_id.as_str(), id.as_str(), v);
            }
        }
        Ok(_) => {}
        Err(e @ TaskError::StaleLease { .. }) => {
            if !rt.stop.is_cancelled() {
                report_stale(m, e);
            }
        }
        Err(e) => tracing::error!(task = %id, error = %e, "recording the attempt failed"),
    }
}
