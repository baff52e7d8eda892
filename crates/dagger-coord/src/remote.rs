//! Dispatch of a node attempt to a worker pool through a [`NodeQueue`]
//! (see [`crate::Coordinator::with_node_queue`]).
//!
//! Only the action's execution moves: the attempt in `worker.rs` has
//! already resolved and checked the inputs and looked for a memoized
//! output, and it records, times out and retries exactly as for a local
//! action. Here the attempt becomes a [`NodeWorkItem`], and the result
//! comes back as the action's `Result<NodeOutput, _>`. When the attempt is
//! cancelled (timeout, run cancelled) or dropped, the item is withdrawn
//! from the queue, so the worker running it stops at its next renewal and
//! its late completion is rejected.

use dagger_core::store::{NodeQueue, NodeResult, NodeWorkItem};
use dagger_core::{BoxError, Permanent};
use dagger_dag_flow::{NodeCtx, NodeOutput};
use std::sync::Arc;
use std::time::Duration;

/// Withdraws the item if the dispatch ends without a result (the attempt
/// future was dropped after its grace period, or the run was aborted).
struct Withdraw {
    queue: Arc<dyn NodeQueue>,
    item_id: Option<String>,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let (Some(id), Ok(rt)) = (self.item_id.take(), tokio::runtime::Handle::try_current()) {
            let queue = self.queue.clone();
            rt.spawn(async move {
                if let Err(e) = queue.cancel(&id).await {
                    tracing::warn!(item = %id, error = %e, "cannot withdraw a node work item");
                }
            });
        }
    }
}

/// Runs `action` for `ctx` on a worker of the pool behind `queue`.
pub(crate) async fn execute(
    queue: &Arc<dyn NodeQueue>,
    action: &str,
    ctx: &NodeCtx,
    timeout: Option<Duration>,
) -> Result<NodeOutput, BoxError> {
    let item_id = NodeWorkItem::id_for(&ctx.idempotency_key, ctx.attempt);
    let inputs = match ctx.inputs.to_value() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let item = NodeWorkItem {
        item_id: item_id.clone(),
        dag_name: ctx.dag_name.to_string(),
        run_id: ctx.run_id.clone(),
        node_id: ctx.node_id.clone(),
        invocation_key: ctx.invocation_key.clone(),
        attempt: ctx.attempt,
        action: action.to_string(),
        inputs,
        idempotency_key: ctx.idempotency_key.clone(),
        timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        traceparent: dagger_core::trace_context::traceparent(&tracing::Span::current()),
    };
    queue.enqueue(item).await?;
    let mut withdraw = Withdraw {
        queue: queue.clone(),
        item_id: Some(item_id.clone()),
    };
    let result = tokio::select! {
        r = queue.wait_result(&item_id) => r,
        () = ctx.cancel.cancelled() => {
            withdraw.item_id = None;
            queue.cancel(&item_id).await?;
            return Err(format!("node `{}` cancelled", ctx.node_id).into());
        }
    };
    withdraw.item_id = None;
    match result? {
        NodeResult::Output {
            outputs,
            success,
            metadata,
            logs,
        } => {
            ctx.logs.extend(logs);
            Ok(NodeOutput {
                outputs,
                success,
                metadata,
            })
        }
        NodeResult::Error {
            message,
            permanent,
            logs,
        } => {
            ctx.logs.extend(logs);
            if permanent {
                Err(Box::new(Permanent::new(message)))
            } else {
                Err(message.into())
            }
        }
    }
}
