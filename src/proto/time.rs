//! Deadlines from durations that may be "forever".

use std::time::{Duration, Instant};

/// `now + d`, or far in the future when that does not fit: a caller's `Duration::MAX` means
/// "never", not a panic.
pub fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 30)))
        .unwrap_or(now)
}
