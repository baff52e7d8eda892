//! Control intake: requests other processes left in the store (cancel,
//! approve, reject) and signals, read after a sequence number and turned
//! into the machine's [`Control`] events.

use crate::machine::msg::{Control, Signal};
use dagger_core::RunId;
use dagger_core::store::{ControlRequest, RunStore};

/// The requests for `run_id` after `*seq` (advanced past them). When
/// `resuming`, a cancel that stopped an earlier execution is passed over: it
/// does not stop its resume.
pub(crate) async fn read(
    runs: &dyn RunStore,
    run_id: &RunId,
    seq: &mut u64,
    resuming: bool,
) -> Vec<Control> {
    let requests = match runs.controls_after(run_id, *seq).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read control requests");
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(requests.len());
    for (n, request) in requests {
        *seq = (*seq).max(n);
        out.push(match request {
            ControlRequest::Cancel { .. } if resuming => continue,
            ControlRequest::Cancel { reason } => {
                Control::Cancel(format!("run cancelled: {reason}"))
            }
            ControlRequest::Approve { node_id, input } => Control::Approve {
                node_id: node_id.to_string(),
                input,
            },
            ControlRequest::Reject { node_id, reason } => Control::Reject {
                node_id: node_id.to_string(),
                reason,
            },
        });
    }
    out
}

/// The signals sent to `run_id` after `*seq` (advanced past them).
pub(crate) async fn read_signals(
    runs: &dyn RunStore,
    run_id: &RunId,
    seq: &mut u64,
) -> Vec<Control> {
    let signals = match runs.signals_after(run_id, *seq).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read signals");
            return Vec::new();
        }
    };
    signals
        .into_iter()
        .map(|s| {
            *seq = (*seq).max(s.seq);
            Control::Signal(Signal {
                seq: s.seq,
                name: s.name,
                payload: s.payload,
            })
        })
        .collect()
}
