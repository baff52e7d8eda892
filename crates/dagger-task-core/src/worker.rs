//! One attempt of one claimed task: validate input, execute the agent while
//! renewing the lease, interpret the outcome, and commit it with the lease's
//! fencing token.

use crate::agent::{TaskContext, TaskOutcome};
use crate::commit;
use crate::error::TaskError;
use crate::job::JobRuntime;
use crate::manager::TaskManager;
use crate::ops;
use dagger_core::store::TaskRecord;
use dagger_core::{ErrorClass, Permanent, catch_panic, now_millis, trace_context};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

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
        app_data: m.app_data(),
    };
    let attempt = {
        // A panicking agent fails its attempt like an error would (the
        // retry policy applies); it neither kills this worker nor leaves
        // the task InProgress to be re-leased without end.
        // The attempt's span; a child of the span that created the task
        // when that one was traced (possibly in another process).
        let span = tracing::info_span!("task", task_id = %task.task_id, job_id = %task.job_id, agent = %task.agent, attempt = token);
        if let Some(parent) = &task.traceparent {
            trace_context::adopt(&span, parent);
        }
        let execute = async {
            match catch_panic(execute(&m, &task, &ctx)).await {
                Ok(a) => a,
                Err(panicked) => {
                    tracing::error!(task = %task.task_id, agent = %task.agent, %panicked, "task agent panicked");
                    Attempt::Failed {
                        class: ErrorClass::Error,
                        message: format!("agent `{}` {panicked}", task.agent),
                    }
                }
            }
        }
        .instrument(span);
        let renew = renew_lease(&m, &rt, &task, &ctx);
        tokio::pin!(execute);
        tokio::select! {
            a = &mut execute => a,
            () = renew => Attempt::Abandoned,
        }
    };
    let abandoned = matches!(attempt, Attempt::Abandoned);
    {
        let mut r = rt.running.lock();
        r.total = r.total.saturating_sub(1);
        if let Some(n) = r.per_agent.get_mut(&task.agent) {
            *n = n.saturating_sub(1);
        }
    }
    commit(&m, &rt, task, attempt);
    if abandoned {
        // Nothing to record; the freed slot may take another task. (A
        // recorded attempt gives its manager-wide slot back once recorded,
        // in `commit::finish`, so that the store never shows more tasks
        // InProgress than the bound.)
        m.inner.slots.release(1);
        rt.notify.notify_one();
        if m.inner.slots.bounded() {
            m.wake_all();
        }
    }
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
                    commit::report_stale(m, e);
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

fn commit(m: &TaskManager, rt: &Arc<JobRuntime>, task: TaskRecord, attempt: Attempt) {
    let (end, class) = match attempt {
        Attempt::Abandoned => return,
        Attempt::Output(v) => (ops::AttemptEnd::Output(v), ErrorClass::Error),
        Attempt::Waiting => (ops::AttemptEnd::Waiting, ErrorClass::Error),
        Attempt::Failed { class, message } => (ops::AttemptEnd::Failed(message), class),
    };
    commit::deliver(
        m,
        commit::Pending {
            manager: m.clone(),
            rt: rt.clone(),
            claimed: task,
            end,
            class,
        },
    );
}
