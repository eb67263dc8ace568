//! Reconnection delays, as the official JS client computes them (its `backo2`): the delay doubles
//! from `min` at each attempt up to `max`, with a random deviation of up to `jitter` of it either
//! way. The random number is passed in, so this is deterministic under test.

use std::time::Duration;

/// Exponential backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    attempts: u32,
}

impl Backoff {
    /// JS defaults: `Backoff::new(1 s, 5 s, 0.5)`.
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            jitter: jitter.clamp(0.0, 1.0),
            attempts: 0,
        }
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next delay; `random` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let exponent = self.attempts.min(62);
        self.attempts = self.attempts.saturating_add(1);
        let base = self.min.as_secs_f64() * 2f64.powi(exponent as i32);
        let mut ms = base * 1000.0;
        if self.jitter > 0.0 {
            let random = if random.is_finite() {
                random.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let deviation = (random * self.jitter * ms).floor();
            // The JS client picks the sign from the same random number.
            ms = if ((random * 10.0).floor() as i64) & 1 == 0 {
                ms - deviation
            } else {
                ms + deviation
            };
        }
        let max_ms = self.max.as_secs_f64() * 1000.0;
        let ms = if ms.is_finite() {
            ms.clamp(0.0, max_ms)
        } else {
            max_ms
        };
        Duration::from_millis(ms as u64)
    }

    /// Starts over (after a successful reconnect).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_max_without_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5), 0.0);
        let delays: Vec<u64> = (0..6)
            .map(|_| b.next_delay(0.3).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_as_in_the_js_client() {
        // random 0.2: floor(2) is even, so the deviation is subtracted: 1000 - 100.
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5), 0.5);
        assert_eq!(b.next_delay(0.2), Duration::from_millis(900));
        // random 0.3: floor(3) is odd, added: 2000 + 300.
        assert_eq!(b.next_delay(0.3), Duration::from_millis(2300));
        // Never past the max.
        assert_eq!(b.next_delay(0.99), Duration::from_secs(5));
    }

    #[test]
    fn never_panics_on_extremes() {
        let mut b = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::ZERO, 2.0);
        for r in [f64::NAN, f64::INFINITY, -1.0, 0.5, 2.0] {
            let _ = b.next_delay(r);
        }
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_secs(5), 0.5);
        for _ in 0..200 {
            assert!(b.next_delay(0.7) <= Duration::from_secs(5));
        }
    }
}
