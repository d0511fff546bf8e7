//! Socket calls that differ between systems: accepting a connection, the non-blocking
//! check, `SIGPIPE` suppression, and the errno values the socket code must tell apart.

use std::io;
use std::os::fd::RawFd;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd};

use socket2::{SockAddr, Socket};

use super::retry;

/// Accepts a connection from `listener`: the new socket is non-blocking and close-on-exec.
///
/// On Linux this is one `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`; elsewhere `accept` (socket2
/// sets close-on-exec) and then `fcntl` for non-blocking mode and `SO_NOSIGPIPE` where the
/// system has it.
#[cfg(target_os = "linux")]
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let mut fd = -1;
    // SAFETY: `try_init` hands us storage and its length to fill; accept4 writes at most
    // that many bytes and updates the length.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            fd = retry(|| {
                libc::accept4(
                    listener.as_raw_fd(),
                    storage.cast(),
                    len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            })?;
            Ok(())
        })?
    };
    // SAFETY: `fd` was just returned by accept4 and nothing else owns it.
    Ok((unsafe { Socket::from_raw_fd(fd) }, addr))
}

/// Accepts a connection from `listener` (portable form; see the Linux one).
#[cfg(not(target_os = "linux"))]
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let (sock, addr) = loop {
        match listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    sock.set_nonblocking(true)?;
    prepare_socket(&sock)?;
    Ok((sock, addr))
}

/// Makes a socket that tulip sends on safe from `SIGPIPE` where `MSG_NOSIGNAL` does not exist
/// (Apple systems: `SO_NOSIGPIPE`); nothing elsewhere.
pub(crate) fn prepare_socket(sock: &Socket) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    sock.set_nosigpipe(true)?;
    let _ = sock;
    Ok(())
}

/// Whether `fd` is in non-blocking mode (`fcntl(F_GETFL)`, through `rustix`: on Linux a raw
/// system call, a few instructions where libc's variadic `fcntl` costs tens — it runs once
/// per `sock_*` operation).
#[inline]
pub(crate) fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: the caller holds the socket that owns `fd` for the duration of the call (the
    // `sock_*` futures borrow it), so the descriptor stays open while it is borrowed here.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = rustix::fs::fcntl_getfl(fd)?;
    Ok(flags.contains(rustix::fs::OFlags::NONBLOCK))
}

/// Whether a `connect` error means "in progress": wait for writability, then ask.
/// `EALREADY` is an earlier attempt on the same socket still in progress (one whose future
/// was cancelled, say): it is waited for too, as asyncio does (Python counts `EALREADY` as a
/// `BlockingIOError`).
pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINPROGRESS | libc::EALREADY | libc::EAGAIN | libc::EINTR)
    )
}

/// Whether a `connect` error is `EISCONN`: the socket is connected already (an earlier
/// attempt finished).
pub(crate) fn is_connected_already(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EISCONN)
}

/// Whether an error is `ENOTCONN` (a non-blocking connect that has not finished).
pub(crate) fn is_not_connected(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTCONN)
}

/// What an `accept` failure asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// Nothing more to accept now.
    WouldBlock,
    /// A connection that died in the backlog: accept the next one.
    Retry,
    /// Out of file descriptors or memory: back off.
    OutOfResources,
    /// Anything else: report it.
    Other,
}

/// Classifies an `accept` failure.
pub(crate) fn accept_error(e: &io::Error) -> AcceptError {
    if super::is_would_block(e) {
        return AcceptError::WouldBlock;
    }
    match e.raw_os_error() {
        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => AcceptError::Retry,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptError::OutOfResources
        }
        _ => AcceptError::Other,
    }
}
