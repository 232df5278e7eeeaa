//! Running a thread whose deadline is every audio frame ahead of ordinary work.
//!
//! The engine (capture, encode, decode, playback; a tick every 5 ms) and a room's mixer
//! (a tick every frame) sleep most of each tick and then must finish before the next. On a busy machine — a game
//! beside the call on an old PC, a build beside a room — an ordinary thread waits its
//! turn behind the busy ones, its frames come out late and the listener hears the
//! jitter buffer stretch and conceal. Audio servers ask for real-time priority for the
//! same reason; since these threads sleep most of each frame they cannot starve the
//! machine.

/// How the calling thread now runs, for a debug log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Linux: `SCHED_FIFO` at this (low) real-time priority.
    RealTime(i32),
    /// Windows: `THREAD_PRIORITY_TIME_CRITICAL` within the process's priority class.
    TimeCritical,
    /// The OS refused (no privilege) or this platform has no such request here: the
    /// thread stays an ordinary one.
    Normal,
}

/// `SCHED_FIFO` priority for audio threads: above every ordinary thread, below the
/// kernel's own real-time threads and the priorities audio servers (PipeWire: 20–88)
/// give their device threads.
#[cfg(target_os = "linux")]
const FIFO_PRIORITY: i32 = 10;

/// Raises the calling thread's scheduling priority as far as the OS allows without
/// asking the user; logs (debug) and returns what it got. Never fails: without the
/// privilege (Linux: not root, no CAP_SYS_NICE, no rtprio limit) the thread stays
/// ordinary and works as before.
pub fn raise_current_thread(name: &str) -> Priority {
    let got = raise();
    tracing::debug!("{name} thread priority: {got:?}");
    got
}

#[cfg(target_os = "linux")]
fn raise() -> Priority {
    let param = libc::sched_param { sched_priority: FIFO_PRIORITY };
    // RESET_ON_FORK: threads this one starts (cpal's device threads are started from
    // the engine's) begin as ordinary ones, so only the thread that asked, which sleeps
    // to its deadlines, runs ahead of everything else.
    let policy = libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK;
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc == 0 { Priority::RealTime(FIFO_PRIORITY) } else { Priority::Normal }
}

#[cfg(windows)]
fn raise() -> Priority {
    use windows_sys::Win32::System::Threading::{GetCurrentThread, SetThreadPriority, THREAD_PRIORITY_TIME_CRITICAL};
    // TIME_CRITICAL is priority 15 in the normal class: ahead of every normal thread,
    // games included, and still below the real-time class the OS keeps for itself.
    // SAFETY: GetCurrentThread returns a pseudo-handle valid on the calling thread.
    let ok = unsafe { SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_TIME_CRITICAL) };
    if ok != 0 { Priority::TimeCritical } else { Priority::Normal }
}

#[cfg(not(any(target_os = "linux", windows)))]
fn raise() -> Priority {
    Priority::Normal
}

/// How the calling thread runs now.
#[cfg(target_os = "linux")]
pub fn current() -> Priority {
    // SAFETY: plain syscalls on the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) } & !libc::SCHED_RESET_ON_FORK;
    if policy != libc::SCHED_FIFO {
        return Priority::Normal;
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid out-pointer for the calling thread's parameters.
    if unsafe { libc::sched_getparam(0, &mut param) } != 0 {
        return Priority::Normal;
    }
    Priority::RealTime(param.sched_priority)
}

#[cfg(windows)]
pub fn current() -> Priority {
    use windows_sys::Win32::System::Threading::{GetCurrentThread, GetThreadPriority, THREAD_PRIORITY_TIME_CRITICAL};
    // SAFETY: GetCurrentThread returns a pseudo-handle valid on the calling thread.
    let p = unsafe { GetThreadPriority(GetCurrentThread()) };
    if p == THREAD_PRIORITY_TIME_CRITICAL { Priority::TimeCritical } else { Priority::Normal }
}

#[cfg(not(any(target_os = "linux", windows)))]
pub fn current() -> Priority {
    Priority::Normal
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the call reports is what the thread then has, and it touches only the
    /// calling thread: a thread started afterwards is ordinary.
    #[test]
    fn raising_reports_what_the_thread_then_has_and_only_for_that_thread() {
        let got = std::thread::spawn(|| (raise_current_thread("test"), current())).join().unwrap();
        assert_eq!(got.0, got.1);
        #[cfg(target_os = "linux")]
        assert!(matches!(got.0, Priority::RealTime(FIFO_PRIORITY) | Priority::Normal), "{got:?}");
        let later = std::thread::spawn(current).join().unwrap();
        assert_eq!(later, Priority::Normal);
        // Nor does a thread the raised one starts inherit it.
        let child = std::thread::spawn(|| {
            raise_current_thread("test");
            std::thread::spawn(current).join().unwrap()
        });
        assert_eq!(child.join().unwrap(), Priority::Normal);
    }
}
