//! How the bridge maps channels to a JetStream stream and consumes them.

use crate::error::NatsError;
use std::time::Duration;

/// Stream, subjects and delivery settings of a [`crate::NatsBridge`].
#[derive(Debug, Clone, PartialEq)]
pub struct NatsConfig {
    /// The JetStream stream holding every carried channel (created when missing).
    pub stream: String,
    /// Channel `c` travels on subject `<subject_prefix>.c`.
    pub subject_prefix: String,
    /// Dead letters of channel `c` go to `<dead_letter_prefix>.c` (same stream).
    pub dead_letter_prefix: String,
    /// How long the stream remembers message ids to drop duplicate publishes.
    pub duplicate_window: Duration,
    /// How long the stream keeps messages (set when the bridge creates it);
    /// `None` keeps them until deleted. A newly created consumer starts at
    /// the oldest message kept.
    pub max_age: Option<Duration>,
    /// Deliveries of one message to one agent before it is dead-lettered (≥ 1).
    pub max_deliver: u32,
    /// How long the server waits for an acknowledgement before redelivering
    /// (a crashed subscriber's messages come back after this).
    pub ack_wait: Duration,
    /// Delay before a message whose handler failed is delivered again.
    pub redelivery_delay: Duration,
    /// Most unacknowledged messages one consumer holds (≥ 1); also its pull batch size.
    pub max_ack_pending: u32,
}

impl NatsConfig {
    /// Defaults for stream `stream`: prefix `dagger`, dead letters on
    /// `dagger_dead_letter`, a 2-minute duplicate window, messages kept until
    /// deleted, 5 deliveries, 30 s ack wait, 1 s redelivery delay, 1 024
    /// unacknowledged messages per consumer.
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            subject_prefix: "dagger".into(),
            dead_letter_prefix: "dagger_dead_letter".into(),
            duplicate_window: Duration::from_secs(120),
            max_age: None,
            max_deliver: 5,
            ack_wait: Duration::from_secs(30),
            redelivery_delay: Duration::from_secs(1),
            max_ack_pending: 1024,
        }
    }

    /// Sets the subject prefix of channels.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// Sets the subject prefix of dead letters.
    pub fn dead_letter_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.dead_letter_prefix = prefix.into();
        self
    }

    /// Sets the duplicate window.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Sets how long the stream keeps messages.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Sets the deliveries per message before dead-lettering.
    pub fn max_deliver(mut self, n: u32) -> Self {
        self.max_deliver = n;
        self
    }

    /// Sets the acknowledgement wait.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// Sets the delay before redelivering a failed message.
    pub fn redelivery_delay(mut self, delay: Duration) -> Self {
        self.redelivery_delay = delay;
        self
    }

    /// Sets the unacknowledged messages per consumer.
    pub fn max_ack_pending(mut self, n: u32) -> Self {
        self.max_ack_pending = n;
        self
    }

    pub(crate) fn check(&self) -> Result<(), NatsError> {
        let bad = |m: String| Err(NatsError::InvalidConfig(m));
        if !valid_name(&self.stream) {
            return bad(format!(
                "stream name `{}` must be non-empty and free of whitespace, `.`, `*`, `>`, `/` and `\\`",
                self.stream
            ));
        }
        for (what, prefix) in [
            ("subject_prefix", &self.subject_prefix),
            ("dead_letter_prefix", &self.dead_letter_prefix),
        ] {
            if let Some(reason) = crate::subject::problem(prefix, false) {
                return bad(format!("{what} `{prefix}`: {reason}"));
            }
        }
        if self.subject_prefix == self.dead_letter_prefix
            || self
                .dead_letter_prefix
                .starts_with(&format!("{}.", self.subject_prefix))
            || self
                .subject_prefix
                .starts_with(&format!("{}.", self.dead_letter_prefix))
        {
            return bad(format!(
                "subject_prefix `{}` and dead_letter_prefix `{}` overlap",
                self.subject_prefix, self.dead_letter_prefix
            ));
        }
        if self.max_deliver == 0 {
            return bad("max_deliver must be at least 1".into());
        }
        if self.max_ack_pending == 0 {
            return bad("max_ack_pending must be at least 1".into());
        }
        if self.max_age.is_some_and(|a| a < self.duplicate_window) {
            return bad("max_age must not be shorter than duplicate_window".into());
        }
        if self.ack_wait.is_zero() {
            return bad("ack_wait must be positive".into());
        }
        Ok(())
    }
}

/// Stream and consumer names: no whitespace, `.`, `*`, `>`, path separators.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
}
