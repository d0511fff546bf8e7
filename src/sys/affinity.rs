//! CPU affinity: which CPUs the process may use, pinning a thread to one, and giving a helper
//! thread the process's affinity back. Linux has `sched_setaffinity`; elsewhere there is no
//! pinning (every CPU is allowed and `pin_to` reports `Unsupported`).

use std::io;

#[cfg(target_os = "linux")]
mod imp {
    use super::super::retry;
    use std::io;

    fn empty_set() -> libc::cpu_set_t {
        // SAFETY: an all-zero `cpu_set_t` is a valid empty set.
        unsafe { std::mem::zeroed() }
    }

    const SET_BITS: usize = 8 * std::mem::size_of::<libc::cpu_set_t>();

    /// The affinity of thread (or process) `tid`, 0 meaning the calling thread.
    fn get(tid: libc::pid_t) -> io::Result<libc::cpu_set_t> {
        let mut set = empty_set();
        // SAFETY: `set` is valid for writes of the size passed.
        retry(|| unsafe {
            libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        })?;
        Ok(set)
    }

    fn set(set: &libc::cpu_set_t) -> io::Result<()> {
        // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
        retry(|| unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set)
        })?;
        Ok(())
    }

    pub(crate) fn allowed_cpus() -> Option<Vec<usize>> {
        let set = get(0).ok()?;
        // SAFETY: `cpu` is inside the set's size; CPU_ISSET only reads the set.
        Some(
            (0..SET_BITS)
                .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
                .collect(),
        )
    }

    pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
        if cpu >= SET_BITS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CPU index out of range",
            ));
        }
        let mut one = empty_set();
        // SAFETY: `cpu` was checked against the set's size.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        set(&one)
    }

    pub(crate) fn like_main_thread() {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        if let Ok(mask) = get(pid) {
            let _ = set(&mask);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    pub(crate) fn allowed_cpus() -> Option<Vec<usize>> {
        None
    }

    pub(crate) fn pin_to(_cpu: usize) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pinning a thread to a CPU is only supported on Linux",
        ))
    }

    pub(crate) fn like_main_thread() {}
}

/// The CPUs the calling thread may run on, in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    imp::allowed_cpus().unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    })
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// `InvalidInput` for a CPU out of range, what the system reports, or `Unsupported` where
/// there is no pinning (not Linux).
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    imp::pin_to(cpu)
}

/// Gives the calling thread the affinity of the process's main thread. A helper thread
/// inherits the affinity of the thread that started it — for the watchdog, whichever loop
/// first needed it, possibly pinned to one CPU (`PerCore`, a benchmark's server): its timer
/// would then run on, and wake, that loop's CPU.
pub(crate) fn like_main_thread() {
    imp::like_main_thread();
}
