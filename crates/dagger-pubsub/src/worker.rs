//! The loop that feeds one agent its messages, in order, one at a time:
//! input schema check, handler with retries, dead-lettering, durable commits.

use crate::context::PubSubContext;
use crate::dead_letter::DeadLetterReason;
use crate::error::PubSubError;
use crate::message::Message;
use crate::runtime::{Channel, Envelope, Runtime};
use crate::transport::DeliveryOutcome;
use dagger_core::{BoxError, ErrorClass, Permanent, trace_context};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::Instrument;

/// Runs agent `agent` until its queue is closed and drained.
pub(crate) async fn run_worker(rt: Arc<Runtime>, agent: usize, placeholder: Arc<Envelope>) {
    let max_batch = rt.config.max_batch;
    let mut batch: Vec<Arc<Envelope>> = Vec::with_capacity(max_batch);
    let mut commits: Vec<(Arc<Channel>, u64)> = Vec::new();
    let mut ctx = PubSubContext {
        rt: rt.clone(),
        agent,
        envelope: placeholder,
    };
    let mut retired: Vec<Arc<Envelope>> = Vec::new();
    let queue = &rt.agents[agent].queue;
    while queue.pop_batch(&mut batch, max_batch).await {
        let n = batch.len() as u64;
        // Delivered counts are summed per run of same-channel messages, so
        // subscribers do not all hit one shared counter per message; the
        // channel is only cloned when the run changes.
        let mut run: Option<(Arc<Channel>, u64)> = None;
        for env in batch.drain(..) {
            let offset = env.offset;
            let same_run = run
                .as_ref()
                .is_some_and(|(c, _)| Arc::ptr_eq(c, &env.channel));
            let channel = (!same_run || offset > 0).then(|| env.channel.clone());
            let done = std::mem::replace(&mut ctx.envelope, env);
            Envelope::retire(done, &mut retired);
            let handled = handle_one(&rt, &mut ctx).await;
            if handled {
                match (&mut run, &channel) {
                    (Some((_, k)), None) => *k += 1,
                    (Some((c, k)), Some(ch)) if Arc::ptr_eq(c, ch) => *k += 1,
                    (_, Some(ch)) => {
                        if let Some((c, k)) = run.take() {
                            c.delivered.fetch_add(k, Ordering::Relaxed);
                            c.exported.delivered.increment(k);
                        }
                        run = Some((ch.clone(), 1));
                    }
                    (None, None) => {}
                }
            }
            if let Some(channel) = channel
                && offset > 0
            {
                match commits.iter_mut().find(|(c, _)| Arc::ptr_eq(c, &channel)) {
                    Some((_, o)) => *o = (*o).max(offset),
                    None => commits.push((channel, offset)),
                }
            }
        }
        if let Some((c, k)) = run.take() {
            c.delivered.fetch_add(k, Ordering::Relaxed);
            c.exported.delivered.increment(k);
        }
        rt.recycle(&mut retired);
        rt.agents[agent].processed.fetch_add(n, Ordering::Relaxed);
        if !commits.is_empty() {
            commit(&rt, agent, &mut commits).await;
        }
        rt.finish(n);
    }
}

/// Records how far this agent got in each durable channel of the batch.
async fn commit(rt: &Runtime, agent: usize, commits: &mut Vec<(Arc<Channel>, u64)>) {
    let Some(log) = &rt.log else {
        commits.clear();
        return;
    };
    for (channel, offset) in commits.drain(..) {
        if let Err(e) = log
            .commit(&channel.name, &rt.agents[agent].name, offset)
            .await
        {
            rt.commit_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(channel = %channel.name, agent = %rt.agents[agent].name, error = %e, "cannot commit offset");
        }
    }
}

/// Handles one delivery; true when the handler succeeded. A delivery from a
/// transport also gets its outcome reported.
async fn handle_one(rt: &Runtime, ctx: &mut PubSubContext) -> bool {
    if ctx.envelope.remote.is_none() {
        return matches!(handle(rt, ctx, false).await, DeliveryOutcome::Handled);
    }
    let outcome = handle(rt, ctx, true).await;
    let handled = matches!(outcome, DeliveryOutcome::Handled);
    if let Some(remote) = &ctx.envelope.remote {
        remote.report(outcome);
    }
    handled
}

/// Handles the delivery in `ctx.envelope`. With `remote`, a
/// failure of a delivery that is not the last is reported instead of
/// dead-lettered. The common case (valid input, first attempt succeeds) stays
/// in this small future; dead-lettering and retries are boxed out of line so
/// they do not enlarge the per-message state.
async fn handle(rt: &Runtime, ctx: &mut PubSubContext, remote: bool) -> DeliveryOutcome {
    let a = &rt.agents[ctx.agent];
    if let Some(schema) = &a.input_schema
        && let Err(violation) = schema.validate(&ctx.envelope.message.payload)
    {
        let reason = DeadLetterReason::InputSchema {
            agent: a.name.to_string(),
            violation,
        };
        return Box::pin(dead_lettered(rt, &ctx.envelope, reason)).await;
    }
    match attempt(rt, ctx).await {
        Ok(()) => DeliveryOutcome::Handled,
        Err(error) => Box::pin(after_failure(rt, ctx, remote, error)).await,
    }
}

/// Runs the handler once; a panic becomes an error.
async fn attempt(rt: &Runtime, ctx: &PubSubContext) -> Result<(), BoxError> {
    let a = &rt.agents[ctx.agent];
    let message = &ctx.envelope.message;
    // A message published in a traced span: the handler's span is its child
    // (an untraced message gets no span).
    let span = match message.headers.get(trace_context::HEADER) {
        Some(parent) => {
            let span = tracing::info_span!("message", channel = %message.channel, agent = %a.name, message_id = %message.id);
            trace_context::adopt(&span, parent);
            span
        }
        None => tracing::Span::none(),
    };
    let handled = a.agent.handle_message(ctx, message).instrument(span);
    // One bad message cannot kill the agent's worker.
    match dagger_core::catch_panic(handled).await {
        Ok(result) => result,
        Err(panic) => Err(format!("handler {panic}").into()),
    }
}

/// Dead-letters the delivery in `env` and says so.
async fn dead_lettered(rt: &Runtime, env: &Envelope, reason: DeadLetterReason) -> DeliveryOutcome {
    rt.dead_letter(&env.channel, env.message.clone(), reason.clone())
        .await;
    DeliveryOutcome::DeadLettered(reason)
}

/// After attempt 1 failed with `error`: retries per the policy, then reports
/// the failure (a redeliverable remote delivery) or dead-letters the message.
async fn after_failure(
    rt: &Runtime,
    ctx: &mut PubSubContext,
    remote: bool,
    mut error: BoxError,
) -> DeliveryOutcome {
    let a = &rt.agents[ctx.agent];
    let policy = &rt.config.retry;
    let mut attempt_no = 1u32;
    loop {
        a.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let class = classify(&error);
        if policy.should_retry(attempt_no, class) {
            let unit = jitter_unit(&ctx.envelope.message, attempt_no);
            let delay = policy.jittered_delay(attempt_no, unit);
            tracing::debug!(agent = %a.name, attempt = attempt_no, ?delay, error = %error, "handler failed; retrying");
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            attempt_no += 1;
            match attempt(rt, ctx).await {
                Ok(()) => return DeliveryOutcome::Handled,
                Err(e) => error = e,
            }
            continue;
        }
        let env = &ctx.envelope;
        let redeliverable = remote
            && class != ErrorClass::Permanent
            && env.remote.as_ref().is_some_and(|r| !r.last_delivery);
        if redeliverable {
            return DeliveryOutcome::Failed {
                error: error.to_string(),
                attempts: attempt_no,
            };
        }
        let reason = DeadLetterReason::HandlerFailed {
            agent: a.name.to_string(),
            error: error.to_string(),
            attempts: attempt_no,
        };
        return dead_lettered(rt, env, reason).await;
    }
}

/// Errors no retry can fix are permanent: [`Permanent`] ones and the typed
/// publish errors of this crate (an undeclared channel stays undeclared).
fn classify(error: &BoxError) -> ErrorClass {
    if Permanent::is_permanent(error.as_ref()) {
        return ErrorClass::Permanent;
    }
    match error.downcast_ref::<PubSubError>() {
        Some(
            PubSubError::UndeclaredPublication { .. }
            | PubSubError::InvalidChannel { .. }
            | PubSubError::OutputSchemaViolation { .. }
            | PubSubError::DepthLimitExceeded { .. },
        ) => ErrorClass::Permanent,
        _ => ErrorClass::Error,
    }
}

/// A number in [0, 1) that differs per message and attempt, for retry jitter.
fn jitter_unit(message: &Message, attempt: u32) -> f64 {
    let mut h = fnv1a(message.id.as_str()) ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn fnv1a(s: &str) -> u64 {
    // FNV-1a: cheap and good enough to spread retries apart.
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
