//! The gateway's scheduling policy: `SCHED_BATCH` unless configured otherwise.
//!
//! Under a normal policy a thread that wakes may preempt the one running on its core at once.
//! The gateway wakes for every HTTP request and every database answer, so on a machine it
//! shares with PostgreSQL it would preempt a backend each time, handle one event, and sleep
//! again: measured on 2 cores with 16 clients reading documents, 0.8–1.1 voluntary context
//! switches per request, and 28–34 µs of gateway CPU per request. `SCHED_BATCH` threads do not
//! preempt on waking (sched(7)); they run when the core's current task yields or its slice
//! ends, and then find several events ready. Same rounds: 0.08–0.14 switches and 17–18 µs per
//! request, and the backends' CPU per request fell too (73–109 to 68–92 µs), since their runs
//! of pipelined calls were interrupted less. Throughput went from 78–85% to 96–114% of direct
//! SQL; one client saw no change (a waking thread on an idle core runs at once under either
//! policy).
//!
//! The policy is set on the main thread before the runtime starts, and every thread the
//! runtime makes inherits it. Switching between the two normal policies needs no privilege;
//! where it is refused all the same (a seccomp filter, say), the gateway says so and runs on.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_BATCH`: no preemption on wake-up.
    Batch,
    /// `SCHED_OTHER`, the default policy of Linux threads.
    Normal,
}

impl FromStr for Policy {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "batch" => Ok(Self::Batch),
            "normal" => Ok(Self::Normal),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Batch => "batch",
            Self::Normal => "normal",
        })
    }
}

/// Puts the calling thread under `policy`; threads it starts later inherit it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn apply(policy: Policy) -> std::io::Result<()> {
    let code = match policy {
        Policy::Batch => libc::SCHED_BATCH,
        Policy::Normal => libc::SCHED_OTHER,
    };
    // Both policies take static priority 0.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call, which only reads it; pid 0
    // names the calling thread.
    match unsafe { libc::sched_setscheduler(0, code, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Elsewhere only the normal policy exists.
#[cfg(not(target_os = "linux"))]
pub fn apply(policy: Policy) -> std::io::Result<()> {
    match policy {
        Policy::Normal => Ok(()),
        Policy::Batch => Err(std::io::ErrorKind::Unsupported.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_by_name_and_nothing_else() {
        assert_eq!("batch".parse(), Ok(Policy::Batch));
        assert_eq!(" Normal ".parse(), Ok(Policy::Normal));
        for bad in ["", "fifo", "idle", "batchy", "0"] {
            assert_eq!(bad.parse::<Policy>(), Err(()), "{bad:?}");
        }
        for p in [Policy::Batch, Policy::Normal] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
    }

    /// The policy the kernel reports for the calling thread (field 41 of its stat line).
    #[cfg(target_os = "linux")]
    fn own_policy() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = stat.rsplit_once(')').unwrap().1;
        // Fields after the name start at field 3.
        after_name
            .split_whitespace()
            .nth(41 - 3)
            .unwrap()
            .parse()
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_thread_takes_the_policy_and_its_new_threads_inherit_it() {
        // In a thread of its own, so that the test harness's threads keep theirs.
        std::thread::spawn(|| {
            apply(Policy::Batch).unwrap();
            assert_eq!(own_policy(), libc::SCHED_BATCH);
            let child = std::thread::spawn(own_policy).join().unwrap();
            assert_eq!(child, libc::SCHED_BATCH);
            apply(Policy::Normal).unwrap();
            assert_eq!(own_policy(), libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }
}
