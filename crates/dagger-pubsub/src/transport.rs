//! Channels carried by another process: a [`Transport`] takes the messages
//! published to the channels it carries, and hands deliveries back through
//! [`crate::PubSubExecutor::deliver`], which reports each outcome so the
//! transport can acknowledge only what was handled.

use crate::dead_letter::DeadLetterReason;
use crate::message::Message;
use dagger_core::BoxError;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Carries some channels between processes (for example over NATS JetStream).
///
/// A message published to a carried channel is not queued locally: it goes to
/// [`send`](Self::send), and comes back — in this process or another — through
/// [`crate::PubSubExecutor::deliver`] to one subscribing agent at a time.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Whether `channel` is carried by this transport. Asked once per channel,
    /// when the executor first uses it; the dead-letter channel is never asked.
    fn carries(&self, channel: &str) -> bool;

    /// Sends one message; returns once the transport has accepted it.
    async fn send(&self, message: &Message) -> Result<(), BoxError>;

    /// Sends several messages of one channel in order; returns once all are
    /// accepted. The default sends them one by one.
    async fn send_batch(&self, messages: &[Message]) -> Result<(), BoxError> {
        for m in messages {
            self.send(m).await?;
        }
        Ok(())
    }
}

/// What became of a message handed to [`crate::PubSubExecutor::deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The agent's handler succeeded.
    Handled,
    /// The handler failed on every attempt the executor's retry policy allows,
    /// and the delivery was not the last one: nothing was dead-lettered, the
    /// transport should deliver the message again later.
    Failed {
        /// The last error.
        error: String,
        /// Attempts made in this delivery.
        attempts: u32,
    },
    /// The message was dead-lettered here (kept in `dead_letters()` and
    /// published on the dead-letter channel): a schema violation, a permanent
    /// error, or a failure of the last delivery.
    DeadLettered(DeadLetterReason),
    /// The executor dropped the delivery unhandled (its queue was closed, or
    /// the drop-oldest policy discarded it); deliver it again.
    Dropped,
}

/// The part of an envelope that only transport deliveries have.
pub(crate) struct Remote {
    /// Whether a failure of this delivery dead-letters (no later delivery).
    pub(crate) last_delivery: bool,
    report: Mutex<Option<oneshot::Sender<DeliveryOutcome>>>,
}

impl Remote {
    pub(crate) fn new(last_delivery: bool) -> (Self, oneshot::Receiver<DeliveryOutcome>) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                last_delivery,
                report: Mutex::new(Some(tx)),
            },
            rx,
        )
    }

    /// Tells the transport what happened; only the first report counts.
    pub(crate) fn report(&self, outcome: DeliveryOutcome) {
        if let Some(tx) = self.report.lock().take() {
            // The transport may have stopped waiting: nothing to tell then.
            let _ = tx.send(outcome);
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.report(DeliveryOutcome::Dropped);
    }
}

/// Waits for the outcome of one [`crate::PubSubExecutor::deliver`].
#[derive(Debug)]
pub struct Delivery(pub(crate) oneshot::Receiver<DeliveryOutcome>);

impl Delivery {
    /// The outcome, once the agent is done with the message.
    pub async fn outcome(self) -> DeliveryOutcome {
        self.0.await.unwrap_or(DeliveryOutcome::Dropped)
    }
}
