//! CPU time of the calling thread and of the process, for `viz demo`'s report.

use std::time::Duration;

// `cpu-time` reads clock_gettime's CPU clocks on Unix and GetThreadTimes /
// GetProcessTimes on Windows. A clock that cannot be read reports zero: these figures
// are informational and must never stop a call.

/// CPU time used by the calling thread so far.
pub fn thread_cpu_time() -> Duration {
    cpu_time::ThreadTime::try_now().map(|t| t.as_duration()).unwrap_or_default()
}

/// CPU time used by the whole process so far.
pub fn process_cpu_time() -> Duration {
    cpu_time::ProcessTime::try_now().map(|t| t.as_duration()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_shows_up() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() > before);
        assert!(process_cpu_time() >= thread_cpu_time());
    }
}
