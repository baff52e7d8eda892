//! Retry strategies and the policy that turns an attempt number into a delay.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The shape of the delay between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackoffStrategy {
    /// Retry at once.
    Immediate,
    /// `base_delay * attempt`.
    Linear,
    /// `base_delay * multiplier^(attempt - 1)`.
    #[default]
    Exponential,
}

/// How a computed delay is randomized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Use the computed delay as is.
    #[default]
    None,
    /// A uniformly random delay in `[0, delay]` ("full jitter").
    Full,
    /// A uniformly random delay in `[delay / 2, delay]` ("equal jitter").
    Equal,
}

/// The class of an attempt's failure, for deciding whether to retry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The action returned an error.
    Error,
    /// The attempt exceeded its timeout.
    Timeout,
    /// The input or output violated a schema.
    Schema,
    /// The action marked the error [`crate::Permanent`]: never retried.
    Permanent,
}

/// How many times to try, how long to wait between tries, and what to retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Total attempts, including the first (at least 1).
    pub max_attempts: u32,
    /// The delay shape.
    pub strategy: BackoffStrategy,
    /// The first delay, in milliseconds.
    pub base_delay_ms: u64,
    /// No delay exceeds this, in milliseconds.
    pub max_delay_ms: u64,
    /// Growth factor of [`BackoffStrategy::Exponential`].
    pub multiplier: f64,
    /// Randomization of delays.
    pub jitter: Jitter,
    /// Which failures are retried ([`ErrorClass::Permanent`] never is).
    pub retry_on: Vec<ErrorClass>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            strategy: BackoffStrategy::Exponential,
            base_delay_ms: 100,
            max_delay_ms: 30_000,
            multiplier: 2.0,
            jitter: Jitter::None,
            retry_on: vec![ErrorClass::Error, ErrorClass::Timeout],
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts with the default delays.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// Whether a failure of `class` on attempt `attempt` (1-based) is retried.
    pub fn should_retry(&self, attempt: u32, class: ErrorClass) -> bool {
        class != ErrorClass::Permanent
            && attempt < self.max_attempts.max(1)
            && self.retry_on.contains(&class)
    }

    /// The un-jittered delay after failed attempt `attempt` (1-based), capped
    /// at `max_delay_ms`. Pure and monotone in `attempt`.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let attempt = attempt.max(1);
        let base = self.base_delay_ms as f64;
        let raw = match self.strategy {
            BackoffStrategy::Immediate => 0.0,
            BackoffStrategy::Linear => base * f64::from(attempt),
            BackoffStrategy::Exponential => {
                let m = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
                    self.multiplier
                } else {
                    1.0
                };
                // Exponent capped so the float never overflows to inf/NaN.
                base * m.powi(i32::try_from(attempt - 1).unwrap_or(i32::MAX).min(1024))
            }
        };
        let capped = if raw.is_finite() {
            raw.min(self.max_delay_ms as f64)
        } else {
            self.max_delay_ms as f64
        };
        Duration::from_millis(capped.max(0.0) as u64)
    }

    /// The delay after failed attempt `attempt`, with jitter applied using
    /// `unit`, a number in `[0, 1)` the caller draws (kept outside so the
    /// function stays pure and testable).
    pub fn jittered_delay(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.delay_for(attempt);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => d.mul_f64(unit),
            Jitter::Equal => d / 2 + (d / 2).mul_f64(unit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strategy() -> impl Strategy<Value = BackoffStrategy> {
        prop_oneof![
            Just(BackoffStrategy::Immediate),
            Just(BackoffStrategy::Linear),
            Just(BackoffStrategy::Exponential)
        ]
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal)]
    }

    proptest! {
        #[test]
        fn delays_are_monotone_and_capped(
            s in strategy(),
            base in 0u64..100_000,
            cap in 0u64..1_000_000,
            mult in 0.0f64..10.0,
            attempt in 1u32..10_000,
        ) {
            let p = RetryPolicy { strategy: s, base_delay_ms: base, max_delay_ms: cap, multiplier: mult, ..RetryPolicy::default() };
            let now = p.delay_for(attempt);
            let next = p.delay_for(attempt + 1);
            prop_assert!(now <= next, "{:?} > {:?}", now, next);
            prop_assert!(next <= Duration::from_millis(cap));
        }

        #[test]
        fn jitter_never_exceeds_the_cap(
            s in strategy(), j in jitter(), base in 0u64..100_000, cap in 0u64..1_000_000,
            attempt in 1u32..64, unit in 0.0f64..1.0,
        ) {
            let p = RetryPolicy { strategy: s, jitter: j, base_delay_ms: base, max_delay_ms: cap, ..RetryPolicy::default() };
            let d = p.jittered_delay(attempt, unit);
            prop_assert!(d <= p.delay_for(attempt));
            prop_assert!(d <= Duration::from_millis(cap));
        }
    }

    #[test]
    fn shapes() {
        let p = RetryPolicy {
            base_delay_ms: 100,
            max_delay_ms: 1_000,
            ..RetryPolicy::default()
        };
        let exp: Vec<u64> = (1..=6).map(|a| p.delay_for(a).as_millis() as u64).collect();
        assert_eq!(exp, [100, 200, 400, 800, 1000, 1000]);
        let lin = RetryPolicy {
            strategy: BackoffStrategy::Linear,
            ..p.clone()
        };
        assert_eq!(lin.delay_for(3), Duration::from_millis(300));
        let imm = RetryPolicy {
            strategy: BackoffStrategy::Immediate,
            ..p
        };
        assert_eq!(imm.delay_for(3), Duration::ZERO);
    }

    #[test]
    fn retry_decisions() {
        let p = RetryPolicy {
            max_attempts: 3,
            retry_on: vec![ErrorClass::Error],
            ..RetryPolicy::default()
        };
        assert!(p.should_retry(1, ErrorClass::Error));
        assert!(p.should_retry(2, ErrorClass::Error));
        assert!(
            !p.should_retry(3, ErrorClass::Error),
            "third attempt was the last"
        );
        assert!(
            !p.should_retry(1, ErrorClass::Timeout),
            "timeouts not listed"
        );
        assert!(!p.should_retry(1, ErrorClass::Permanent));
    }
}
