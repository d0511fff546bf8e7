//! CPU affinity: which CPUs the process may use, pinning a thread to one, and giving a helper
//! thread the process's affinity back.

use std::io;

fn empty_set() -> libc::cpu_set_t {
    // SAFETY: an all-zero `cpu_set_t` is a valid empty set.
    unsafe { std::mem::zeroed() }
}

/// The affinity of thread (or process) `tid`, 0 meaning the calling thread.
fn get(tid: libc::pid_t) -> io::Result<libc::cpu_set_t> {
    let mut set = empty_set();
    // SAFETY: `set` is valid for writes of the size passed.
    let r =
        unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

fn set(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs the calling thread may run on, in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    match get(0) {
        Ok(set) => (0..8 * std::mem::size_of::<libc::cpu_set_t>())
            // SAFETY: `cpu` is inside the set's size; CPU_ISSET only reads the set.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect(),
        Err(_) => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n).collect()
        }
    }
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
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

/// Gives the calling thread the affinity of the process's main thread. A helper thread
/// inherits the affinity of the thread that started it — for the watchdog, whichever loop
/// first needed it, possibly pinned to one CPU (`PerCore`, a benchmark's server): its timer
/// would then run on, and wake, that loop's CPU.
pub(crate) fn like_main_thread() {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if let Ok(mask) = get(pid) {
        let _ = set(&mask);
    }
}
