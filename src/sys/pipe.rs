//! Descriptors under the pipe transports: what kind of file a descriptor is (the seed's
//! `fstat` check), its blocking mode, and whether `SIGPIPE` would kill the process.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, RawFd};

use rustix::fs::{FileType, OFlags};

/// The kinds of descriptor a pipe transport accepts (asyncio's `S_ISFIFO`, `S_ISSOCK`,
/// `S_ISCHR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipeKind {
    /// A pipe or a FIFO.
    Fifo,
    /// A socket (one end of a socketpair, a connected Unix or TCP socket).
    Socket,
    /// A character device: a tty, a pty, `/dev/null`.
    CharDevice,
}

/// What `fd` is: `Ok(None)` for a kind a pipe transport refuses (a regular file, a
/// directory, a block device).
pub(crate) fn pipe_kind(fd: impl AsFd) -> io::Result<Option<PipeKind>> {
    let st = rustix::fs::fstat(fd)?;
    Ok(match FileType::from_raw_mode(st.st_mode as _) {
        FileType::Fifo => Some(PipeKind::Fifo),
        FileType::Socket => Some(PipeKind::Socket),
        FileType::CharacterDevice => Some(PipeKind::CharDevice),
        _ => None,
    })
}

/// Sets or clears `O_NONBLOCK` on `fd` (on its open file description, which a `dup` or a
/// parent process may share); returns whether it was set before.
pub(crate) fn set_nonblocking(fd: impl AsFd, on: bool) -> io::Result<bool> {
    let fd = fd.as_fd();
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let was = flags.contains(OFlags::NONBLOCK);
    if was != on {
        let new = if on {
            flags | OFlags::NONBLOCK
        } else {
            flags - OFlags::NONBLOCK
        };
        rustix::fs::fcntl_setfl(fd, new)?;
    }
    Ok(was)
}

/// `read(2)` into possibly-uninitialised memory (a vector's spare capacity): no zeroing
/// ahead of the data. Returns how many bytes it wrote at the start of `buf` (≤ its length),
/// which are initialised once it returns.
#[inline]
pub(crate) fn read_uninit(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes (`MaybeUninit<u8>` has the layout
    // of `u8`); the kernel only writes into it, so no uninitialised byte is read. A closed fd
    // is EBADF.
    super::retry(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
        .map(|n| n as usize)
}

/// Whether `SIGPIPE` has its default disposition — a `write` to a pipe whose reader is gone
/// would kill the process instead of failing with `EPIPE`. Rust programs ignore `SIGPIPE`
/// from the start (unless built with `-Zon-broken-pipe=kill` or `inherit`); a C host may
/// not.
pub(crate) fn sigpipe_kills() -> bool {
    // SAFETY: an all-zero `sigaction` is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`, which is valid for
    // writes; no handler is installed or changed.
    let r = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    r == 0 && old.sa_sigaction == libc::SIG_DFL
}
