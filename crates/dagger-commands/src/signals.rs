//! Stopping on a signal: SIGINT (Ctrl-C), SIGTERM and SIGHUP all cancel the
//! run (or stop the worker) cleanly; the process then exits with 128 + the
//! signal's number (130, 143, 129), the shell convention.

use nix::sys::signal::Signal;
use std::sync::{Arc, OnceLock};
use tokio::signal::unix::{SignalKind, signal};

/// The signals that stop a command cleanly.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Which stop signal arrived first, if any.
#[derive(Clone, Default)]
pub(crate) struct Interrupt(Arc<OnceLock<Signal>>);

impl Interrupt {
    /// The signal that arrived, if one did.
    pub(crate) fn signal(&self) -> Option<Signal> {
        self.0.get().copied()
    }
}

/// The reason a run cancelled by `signal` is recorded with: `signal: SIGTERM`.
pub(crate) fn reason(signal: Signal) -> String {
    format!("signal: {}", signal.as_str())
}

/// The exit code after a clean stop on `signal`: 128 + its number.
pub(crate) fn exit_code(signal: Signal) -> u8 {
    u8::try_from(128 + signal as i32).unwrap_or(u8::MAX)
}

/// Waits for the first of SIGINT, SIGTERM and SIGHUP. A signal whose
/// handler cannot be installed is not waited for (it keeps its default).
pub(crate) async fn first_stop_signal() -> Signal {
    let [mut int, mut term, mut hup] = STOP_SIGNALS.map(|sig| {
        signal(SignalKind::from_raw(sig as i32))
            .inspect_err(
                |e| tracing::warn!(signal = sig.as_str(), error = %e, "cannot handle signal"),
            )
            .ok()
    });
    tokio::select! {
        () = recv(int.as_mut()) => Signal::SIGINT,
        () = recv(term.as_mut()) => Signal::SIGTERM,
        () = recv(hup.as_mut()) => Signal::SIGHUP,
    }
}

async fn recv(stream: Option<&mut tokio::signal::unix::Signal>) {
    // A stream that ends (the runtime shuts down) delivers nothing.
    if let Some(s) = stream
        && s.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

/// Sends on the returned receiver's channel when a stop signal arrives,
/// noting which one in the returned [`Interrupt`].
pub(crate) fn cancel_on_signal() -> (Interrupt, tokio::sync::oneshot::Receiver<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let interrupt = Interrupt::default();
    let set = interrupt.clone();
    tokio::spawn(async move {
        let sig = first_stop_signal().await;
        errln!(
            "{}: cancelling the run (running nodes get a grace period)",
            sig.as_str()
        );
        let _ = set.0.set(sig);
        let _ = tx.send(());
    });
    (interrupt, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(Signal::SIGINT), 130);
        assert_eq!(exit_code(Signal::SIGTERM), 143);
        assert_eq!(exit_code(Signal::SIGHUP), 129);
        assert_eq!(reason(Signal::SIGTERM), "signal: SIGTERM");
    }
}
