//! Child processes: the system calls of the child watcher and of `Process` —
//! `pidfd_open` (Linux ≥ 5.3), `waitid(P_PID, WNOWAIT)`, `kill`, CLOEXEC pipes, and what a
//! child does between `fork` and `exec` (`setsid`, clearing `FD_CLOEXEC` on passed fds).
//!
//! Reaping itself is `std::process::Child::try_wait` (`waitpid(pid, WNOHANG)` for that pid
//! only): nothing here ever waits for "any child" (`waitpid(-1)`), which would steal the
//! children of other code in the process.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::retry;

/// A `pidfd` for the child `pid` (`pidfd_open(2)`, Linux ≥ 5.3): readable once the child
/// has exited. It is `O_CLOEXEC` (always, for a pidfd).
///
/// `pid` must be an unreaped child of this process, so that the number cannot have been
/// reused.
///
/// # Errors
/// `ENOSYS` on older kernels (or where a seccomp filter forbids it): fall back to a thread.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: `pidfd_open(pid, 0)` takes two integers and returns a new descriptor or -1.
    let fd = retry(|| unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) })?;
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Blocks until the child `pid` has exited, **without** reaping it
/// (`waitid(P_PID, pid, WEXITED | WNOWAIT)`): the child stays a zombie, so its number
/// cannot be reused, until the loop reaps it with `waitpid(pid, WNOHANG)`. The fallback
/// child watcher's thread blocks here (asyncio's `ThreadedChildWatcher`, minus the reaping).
///
/// # Errors
/// `ECHILD` if the child was reaped by someone else (or never was ours).
pub(crate) fn wait_exited(pid: u32) -> io::Result<()> {
    let id = libc::id_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ECHILD))?;
    // SAFETY: `siginfo_t` is plain old data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid for writes; the other arguments are integers.
    retry(|| unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) })?;
    Ok(())
}

/// Sends `signal` to the process `pid` (`kill(2)`).
///
/// The caller makes sure `pid` is an unreaped child (a zombie at worst), so that the
/// number names that child and no other process.
///
/// # Errors
/// `EINVAL` for a bad signal number, `ESRCH`, `EPERM`.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: `kill` takes two integers; `pid > 0` names one process, never a group.
    retry(|| unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// A pipe, both ends `O_CLOEXEC` (so no child inherits them except through `dup2` onto its
/// stdin/stdout/stderr): `(read end, write end)`.
///
/// # Errors
/// `EMFILE`, `ENFILE`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    #[cfg(not(target_vendor = "apple"))]
    // SAFETY: `fds` is valid for writes of two ints.
    retry(|| unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    #[cfg(target_vendor = "apple")]
    // SAFETY: `fds` is valid for writes of two ints.
    retry(|| unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    // SAFETY: `pipe` returned two fresh descriptors that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(target_vendor = "apple")]
    for fd in [&r, &w] {
        use std::os::fd::AsRawFd;
        // SAFETY: `fd` is open (owned above); `F_SETFD` takes an int.
        retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
    }
    Ok((r, w))
}

/// What the child does between `fork` and `exec`: start a new session (`setsid`), and keep
/// the descriptors `pass_fds` open across `exec` (clears their `FD_CLOEXEC`; the numbers
/// stay the same, as with Python's `pass_fds`). Only calls async-signal-safe functions.
///
/// Installing it turns off std's `posix_spawn` fast path, so `Process` installs it only when
/// one of the two is asked for.
pub(crate) fn set_pre_exec(
    cmd: &mut std::process::Command,
    new_session: bool,
    pass_fds: Vec<RawFd>,
) {
    use std::os::unix::process::CommandExt;
    let hook = move || -> io::Result<()> {
        if new_session {
            // SAFETY: `setsid` takes nothing and is async-signal-safe.
            if unsafe { libc::setsid() } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        for &fd in &pass_fds {
            // SAFETY: `fcntl(F_SETFD, 0)` is async-signal-safe; a bad fd is EBADF.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before `exec` and only makes
    // async-signal-safe system calls (`setsid`, `fcntl`); it allocates nothing and takes no
    // lock (`pass_fds` was allocated before the fork and is only read).
    unsafe {
        cmd.pre_exec(hook);
    }
}
