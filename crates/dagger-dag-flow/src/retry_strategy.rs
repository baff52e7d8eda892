//! The delays between a DAG Flow node's attempts: one value, its shape and
//! its delays together (the form of the DAG Flow guide), turned into the
//! [`RetryPolicy`] every attempt loop uses.

use dagger_core::{BackoffStrategy, Jitter, RetryPolicy};
use serde::{Deserialize, Serialize};

/// How long a failed node waits before its next attempt.
///
/// The `*_secs` variants are the guide's whole-second form; the `*Ms`
/// variants say the same in milliseconds, for delays under a second. In a
/// workflow's `config:` a variant is written `retry_strategy: immediate` or
/// `retry_strategy: { exponential: { initial_delay_secs: 2, max_delay_secs: 60, multiplier: 2.0 } }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RetryStrategy {
    /// Retry at once.
    Immediate,
    /// Wait `delay_secs * attempt` seconds after failed attempt `attempt`.
    Linear {
        /// The first delay, in seconds.
        delay_secs: u64,
    },
    /// Wait `initial_delay_secs * multiplier^(attempt - 1)` seconds, at most
    /// `max_delay_secs`.
    Exponential {
        /// The first delay, in seconds.
        initial_delay_secs: u64,
        /// No delay exceeds this, in seconds.
        max_delay_secs: u64,
        /// Growth factor (at least 1).
        multiplier: f64,
    },
    /// [`RetryStrategy::Linear`] in milliseconds.
    LinearMs {
        /// The first delay, in milliseconds.
        delay_ms: u64,
    },
    /// [`RetryStrategy::Exponential`] in milliseconds.
    ExponentialMs {
        /// The first delay, in milliseconds.
        initial_delay_ms: u64,
        /// No delay exceeds this, in milliseconds.
        max_delay_ms: u64,
        /// Growth factor (at least 1).
        multiplier: f64,
    },
}

impl Default for RetryStrategy {
    /// 100 ms, doubling, at most 30 s.
    fn default() -> Self {
        Self::ExponentialMs {
            initial_delay_ms: 100,
            max_delay_ms: 30_000,
            multiplier: 2.0,
        }
    }
}

impl RetryStrategy {
    /// The policy of `max_attempts` attempts with these delays and `jitter`.
    pub fn policy(&self, max_attempts: u32, jitter: Jitter) -> RetryPolicy {
        let secs = |s: u64| s.saturating_mul(1000);
        let (strategy, base_delay_ms, max_delay_ms, multiplier) = match *self {
            Self::Immediate => (BackoffStrategy::Immediate, 0, 0, 1.0),
            Self::Linear { delay_secs } => {
                (BackoffStrategy::Linear, secs(delay_secs), u64::MAX, 1.0)
            }
            Self::LinearMs { delay_ms } => (BackoffStrategy::Linear, delay_ms, u64::MAX, 1.0),
            Self::Exponential {
                initial_delay_secs,
                max_delay_secs,
                multiplier,
            } => (
                BackoffStrategy::Exponential,
                secs(initial_delay_secs),
                secs(max_delay_secs),
                multiplier,
            ),
            Self::ExponentialMs {
                initial_delay_ms,
                max_delay_ms,
                multiplier,
            } => (
                BackoffStrategy::Exponential,
                initial_delay_ms,
                max_delay_ms,
                multiplier,
            ),
        };
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            strategy,
            base_delay_ms,
            max_delay_ms,
            multiplier,
            jitter,
            ..RetryPolicy::default()
        }
    }

    /// What is wrong with these delays, if anything.
    pub fn problem(&self) -> Option<String> {
        let (first, max, multiplier) = match *self {
            Self::Exponential {
                initial_delay_secs,
                max_delay_secs,
                multiplier,
            } => (initial_delay_secs, max_delay_secs, multiplier),
            Self::ExponentialMs {
                initial_delay_ms,
                max_delay_ms,
                multiplier,
            } => (initial_delay_ms, max_delay_ms, multiplier),
            _ => return None,
        };
        if !(multiplier.is_finite() && multiplier >= 1.0) {
            Some(format!(
                "multiplier must be a number >= 1, got {multiplier}"
            ))
        } else if first > max {
            Some("the initial delay must not exceed the maximum delay".to_string())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_and_milliseconds_give_the_same_delays() {
        let secs = RetryStrategy::Exponential {
            initial_delay_secs: 2,
            max_delay_secs: 60,
            multiplier: 2.0,
        }
        .policy(3, Jitter::None);
        let ms = RetryStrategy::ExponentialMs {
            initial_delay_ms: 2000,
            max_delay_ms: 60_000,
            multiplier: 2.0,
        }
        .policy(3, Jitter::None);
        assert_eq!(secs, ms);
        let delays: Vec<_> = (1..=7).map(|a| secs.delay_for(a).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn linear_grows_by_its_delay_and_immediate_waits_nothing() {
        let p = RetryStrategy::Linear { delay_secs: 5 }.policy(4, Jitter::None);
        let delays: Vec<_> = (1..=3).map(|a| p.delay_for(a)).collect();
        assert_eq!(delays, [5, 10, 15].map(Duration::from_secs));
        let p = RetryStrategy::Immediate.policy(0, Jitter::None);
        assert_eq!((p.max_attempts, p.delay_for(3)), (1, Duration::ZERO));
    }

    #[test]
    fn bad_exponential_values_are_problems() {
        let bad = RetryStrategy::Exponential {
            initial_delay_secs: 2,
            max_delay_secs: 60,
            multiplier: 0.5,
        };
        assert!(bad.problem().is_some_and(|p| p.contains("multiplier")));
        let inverted = RetryStrategy::ExponentialMs {
            initial_delay_ms: 10,
            max_delay_ms: 1,
            multiplier: 2.0,
        };
        assert!(inverted.problem().is_some());
        assert_eq!(RetryStrategy::default().problem(), None);
    }

    #[test]
    fn serde_forms() {
        let s: RetryStrategy = serde_json::from_value(serde_json::json!("immediate")).unwrap();
        assert_eq!(s, RetryStrategy::Immediate);
        let s: RetryStrategy = serde_json::from_value(serde_json::json!(
            {"exponential": {"initial_delay_secs": 2, "max_delay_secs": 60, "multiplier": 2.0}}
        ))
        .unwrap();
        assert_eq!(
            s,
            RetryStrategy::Exponential {
                initial_delay_secs: 2,
                max_delay_secs: 60,
                multiplier: 2.0
            }
        );
    }
}
