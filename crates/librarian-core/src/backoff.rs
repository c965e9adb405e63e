//! One exponential backoff for everything that retries: the sync core's reloads, the
//! cross-instance listener and both client SDKs. Pure arithmetic: the caller supplies the
//! jitter, so the same failure count always maps to the same window.

use std::time::Duration;

/// `base` doubling per failure up to `max`, scaled by a jitter in `[0.5, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 100 ms doubling up to 5 s: reloads, the listener, SDK reconnects and resends.
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    /// The ceiling of the delay after `failures` consecutive failures (1 = the first).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// The delay after `failures` consecutive failures; `jitter` (clamped to `[0.5, 1]`)
    /// spreads clients that failed together so they do not all retry at once.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        self.ceiling(failures).mul_f64(jitter.clamp(0.5, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_stay_capped_within_the_jitter_window() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(6), Duration::from_millis(3200));
        assert_eq!(b.ceiling(7), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 7.0), Duration::from_millis(400));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
    }
}
