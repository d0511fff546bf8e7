//! `sendfile(2)`: bytes of a file sent to a stream socket straight from the page cache.
//!
//! Three systems, three signatures: Linux (`sendfile(out, in, &mut off, count)`), Apple
//! (`sendfile(fd, s, offset, &mut len, hdtr, flags)`) and FreeBSD/DragonFly
//! (`sendfile(fd, s, offset, nbytes, hdtr, &mut sbytes, flags)`). [`sendfile`] hides them:
//! one call, `EINTR` retried, and a partial send reported as its byte count even when the
//! call failed with `EAGAIN` after sending some (the BSDs do that). Elsewhere it is
//! `Unsupported`, and the callers copy instead.

use std::io;
use std::os::fd::RawFd;

/// The most one call is asked to send (Linux's own cap, `0x7ffff000`, on every system).
pub(crate) const MAX_CHUNK: usize = 0x7fff_f000;

/// One `sendfile(2)` of at most `count` bytes (> 0) of `file` from `offset` to the stream
/// socket `sock`, which is non-blocking. Returns the bytes sent: `Ok(0)` means `offset` is
/// at or past the end of the file; `WouldBlock` means the socket took nothing. The file's
/// position is not used or moved.
///
/// Both descriptors must be open for the duration of the call (the caller borrows them).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sendfile(sock: RawFd, file: RawFd, offset: u64, count: usize) -> io::Result<usize> {
    let count = count.min(MAX_CHUNK);
    let mut off = libc::off_t::try_from(offset).map_err(|_| too_far())?;
    // SAFETY: `off` is a valid `off_t` the kernel writes back to; a closed fd is EBADF.
    super::retry(|| unsafe { libc::sendfile(sock, file, &mut off, count) }).map(|n| n as usize)
}

/// See the Linux version.
#[cfg(target_vendor = "apple")]
pub(crate) fn sendfile(sock: RawFd, file: RawFd, offset: u64, count: usize) -> io::Result<usize> {
    let offset = libc::off_t::try_from(offset).map_err(|_| too_far())?;
    // `len == 0` would mean "to the end of the file": `count` is never 0 here.
    let want = libc::off_t::try_from(count.clamp(1, MAX_CHUNK)).unwrap_or(libc::off_t::MAX);
    loop {
        let mut len = want;
        // SAFETY: `len` is a valid `off_t` the kernel reads and writes back; no header or
        // trailer (`hdtr` null); a closed fd is EBADF.
        let r = unsafe { libc::sendfile(file, sock, offset, &mut len, std::ptr::null_mut(), 0) };
        if let Some(n) = partial(r, len)? {
            return Ok(n);
        }
    }
}

/// See the Linux version.
#[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
pub(crate) fn sendfile(sock: RawFd, file: RawFd, offset: u64, count: usize) -> io::Result<usize> {
    let offset = libc::off_t::try_from(offset).map_err(|_| too_far())?;
    // `nbytes == 0` would mean "to the end of the file": `count` is never 0 here.
    let nbytes = count.clamp(1, MAX_CHUNK);
    loop {
        let mut sbytes: libc::off_t = 0;
        // SAFETY: `sbytes` is a valid `off_t` the kernel writes to; no header or trailer
        // (`hdtr` null); a closed fd is EBADF.
        let r = unsafe {
            libc::sendfile(
                file,
                sock,
                offset,
                nbytes,
                std::ptr::null_mut(),
                &mut sbytes,
                0,
            )
        };
        if let Some(n) = partial(r, sbytes)? {
            return Ok(n);
        }
    }
}

/// Where the system has no `sendfile(2)` that tulip knows.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
pub(crate) fn sendfile(
    _sock: RawFd,
    _file: RawFd,
    _offset: u64,
    _count: usize,
) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "sendfile(2) is not available on this system",
    ))
}

/// A BSD `sendfile` result: `r` and the bytes it reports sent. `Ok(None)` is "interrupted
/// before sending anything: call again".
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
fn partial(r: libc::c_int, sent: libc::off_t) -> io::Result<Option<usize>> {
    let sent = usize::try_from(sent).unwrap_or(0);
    if r == 0 {
        return Ok(Some(sent));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Sent some, then the socket filled (or a signal came): that is a partial send.
        Some(libc::EAGAIN | libc::EINTR) if sent > 0 => Ok(Some(sent)),
        Some(libc::EINTR) => Ok(None),
        _ => Err(e),
    }
}

fn too_far() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "sendfile offset out of range")
}

/// Whether a first `sendfile(2)` failed because this file or socket cannot be sent from
/// (asyncio falls back to copying on any error of the first call; tulip only on these, so
/// that a reset connection is still reported as one).
pub(crate) fn is_sendfile_unsupported(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    matches!(
        e.raw_os_error(),
        Some(
            libc::EINVAL
                | libc::ENOSYS
                | libc::ENOTSOCK
                | libc::EOPNOTSUPP
                | libc::EAFNOSUPPORT
                | libc::ESPIPE
                | libc::EOVERFLOW
        )
    ) || e.raw_os_error() == Some(libc::ENOTSUP)
}
