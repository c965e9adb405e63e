//! A token bucket: `rate` tokens a second, at most `rate` held (the burst). The server limits
//! the frames a client sends with it (`ws.max_frames_per_second`); the Rust SDK paces its own
//! frames under that limit with the same arithmetic.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens (at least one), refilling `rate` a second from `now`.
    pub fn new(rate: f64, now: Instant) -> TokenBucket {
        let rate = rate.max(1.0);
        TokenBucket {
            rate,
            tokens: rate,
            refilled: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.refilled).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate);
        self.refilled = now;
    }

    /// Takes one token if there is one at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes one token whether or not there is one (what must go anyway still counts).
    pub fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// When the bucket next holds a whole token.
    pub fn next_at(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.refilled + Duration::from_secs_f64(missing / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_rate_then_rate_a_second() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(4.0, start);
        assert!((0..4).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert_eq!(bucket.next_at(), start + Duration::from_millis(250));
        assert!(bucket.take(start + Duration::from_millis(250)));
        assert!(!bucket.take(start + Duration::from_millis(250)));
        // Never more than the burst, however long it rested.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 4);
        bucket.spend(later);
        assert_eq!(bucket.next_at(), later + Duration::from_millis(500));
    }
}
