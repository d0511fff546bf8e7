//! Reads and writes on file descriptors: `recv`/`send`/`sendmsg` for sockets,
//! `read`/`write`/`writev` for pipes and other descriptors.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use super::retry;

/// `send`/`sendmsg` flags: never block, and a closed peer is `EPIPE`, not `SIGPIPE`
/// (where `MSG_NOSIGNAL` is missing, [`prepare_socket`](super::prepare_socket) sets
/// `SO_NOSIGPIPE` on the socket instead).
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

/// `recv` flags of the `sock_*` operations: never block, even on a socket in blocking mode.
pub(crate) const RECV_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

/// `recv(2)` into `buf`.
///
/// `fd` must be open for the duration of the call (the caller owns or borrows it).
#[inline]
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; a closed fd is EBADF.
    retry(|| unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) }).map(|n| n as usize)
}

/// `read(2)` into `buf`.
#[inline]
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; a closed fd is EBADF.
    retry(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }).map(|n| n as usize)
}

/// `send(2)` of `buf`, never blocking, never raising `SIGPIPE`.
#[inline]
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes; a closed fd is EBADF.
    retry(|| unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), SEND_FLAGS) })
        .map(|n| n as usize)
}

/// `write(2)` of `buf`.
#[inline]
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes; a closed fd is EBADF.
    retry(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }).map(|n| n as usize)
}

fn iov_len(bufs: &[IoSlice<'_>]) -> libc::c_int {
    // IOV_MAX is at least 1024 everywhere we build; callers pass at most a few dozen.
    bufs.len().min(1024) as libc::c_int
}

/// One `sendmsg(2)` of several buffers on a socket, never blocking, never raising `SIGPIPE`.
#[inline]
pub(crate) fn sendmsg(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` (std guarantees it on Unix); the kernel only
    // reads through the pointer.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov_len(bufs) as _;
    // SAFETY: `msg` points at `msg_iovlen` valid iovecs borrowed for the call.
    retry(|| unsafe { libc::sendmsg(fd, &msg, SEND_FLAGS) }).map(|n| n as usize)
}

/// One `writev(2)` of several buffers (pipes and other non-sockets).
#[inline]
pub(crate) fn writev(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: `IoSlice` is ABI-compatible with `iovec`; the kernel reads `iovcnt` of them.
    retry(|| unsafe { libc::writev(fd, bufs.as_ptr().cast(), iov_len(bufs)) }).map(|n| n as usize)
}

/// Runs a receive call `recv` on the spare capacity of `buf` (at least `max` bytes of it)
/// and extends the length by the count it returns (with what else it returns).
#[inline]
pub(crate) fn recv_into_spare<T>(
    buf: &mut Vec<u8>,
    max: usize,
    recv: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<(usize, T)>,
) -> io::Result<T> {
    if buf.capacity() - buf.len() < max {
        buf.reserve(max);
    }
    let spare: &mut [MaybeUninit<u8>] = &mut buf.spare_capacity_mut()[..max];
    let (n, t) = recv(spare)?;
    assert!(
        n <= max,
        "a receive call reported more bytes than it was given room for"
    );
    // SAFETY: the receive call initialised the first `n` (≤ `max`) bytes of the spare
    // capacity, as it reported.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(t)
}

/// An initialised byte slice seen as possibly-uninitialised memory, for socket2's receive
/// calls.
#[inline]
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the receive calls only write
    // initialised bytes into it, so the slice stays initialised.
    unsafe { &mut *(std::ptr::from_mut(buf) as *mut [MaybeUninit<u8>]) }
}
