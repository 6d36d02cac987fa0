//! Backoff between attempts of a failed sync or interface scan.

use std::time::Duration;

/// When to try a failed sync (or interface scan) again.
pub(super) struct Retry {
    pub(super) first: Duration,
    pub(super) max: Duration,
    /// Failures in a row.
    pub(super) attempts: u32,
    pub(super) at: Option<tokio::time::Instant>,
}

impl Retry {
    pub(super) fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            attempts: 0,
            at: None,
        }
    }

    /// After a failure: `first` doubling to `max`, each ±20% so that a fleet of agents
    /// failing together does not retry together.
    pub(super) fn failed(&mut self) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        let base = self
            .first
            .saturating_mul(1 << self.attempts.saturating_sub(1).min(6))
            .min(self.max);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // 0.8 to 1.2 times the base, from the clock's low bits.
        let delay = base.mul_f64(0.8 + f64::from(nanos % 1000) / 2500.0);
        self.at = Some(tokio::time::Instant::now() + delay);
        delay
    }

    pub(super) fn succeeded(&mut self) {
        self.attempts = 0;
        self.at = None;
    }
}
