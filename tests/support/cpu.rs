//! This process's CPU time, for benchmarks that report CPU per operation next to rates. Only
//! std, so the benchmark crate in `benches/peers` can include it by path.

use std::time::Duration;

/// CPU time (user + system, all threads) this process has used so far, from
/// `/proc/self/stat`; `None` where that file does not exist. Servers run in other processes
/// and are not included.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every mainstream architecture.
    Some(Duration::from_millis((utime + stime) * 10))
}
