//! The OS fence: every libc call and syscall-level `unsafe` of tulip outside the selector
//! backends lives under this module (mio's `sys/`).
//!
//! One wrapper, [`retry`], turns the C convention (`-1` and `errno`) into an
//! `io::Result` and retries `EINTR`; [`is_would_block`] is the one test for "try again
//! later". Calls that only Linux has (`accept4`, `MSG_NOSIGNAL`, `sched_setaffinity`) sit
//! behind `cfg(target_os = "linux")`, each with its portable fallback beside it, so the
//! crate builds on macOS and the BSDs too.

mod affinity;
mod datagram;
pub(crate) mod dns;
mod io;
mod pipe;
#[cfg(unix)]
mod process;
mod sendfile;
pub(crate) mod signal;
mod socket;

pub(crate) use affinity::{allowed_cpus, like_main_thread, pin_to};
pub(crate) use datagram::{
    BATCH, GSO_MAX_BYTES, GSO_MAX_SEGMENTS, RecvBatch, gro_enabled, gso_refused, send_batch,
    send_gso, sendto, set_gro,
};
pub(crate) use io::{
    RECV_FLAGS, SEND_FLAGS, as_uninit, read, recv, recv_into_spare, send, sendmsg, write, writev,
};
pub(crate) use pipe::{PipeKind, pipe_kind, read_uninit, set_nonblocking, sigpipe_kills};
#[cfg(target_os = "linux")]
pub(crate) use process::pidfd_open;
#[cfg(unix)]
pub(crate) use process::{kill, pipe, set_pre_exec, wait_exited};
pub(crate) use sendfile::{MAX_CHUNK as SENDFILE_MAX_CHUNK, is_sendfile_unsupported, sendfile};
pub(crate) use socket::{
    AcceptError, accept, accept_error, connect_in_progress, is_connected_already, is_nonblocking,
    is_not_connected, prepare_socket,
};

use std::io as stdio;

/// A C return value whose "failed" value is `-1`.
pub(crate) trait MinusOne: Copy {
    /// Whether this is the failure value.
    fn is_minus_one(self) -> bool;
}

macro_rules! minus_one {
    ($($t:ty)*) => {$(
        impl MinusOne for $t {
            #[inline]
            fn is_minus_one(self) -> bool {
                self == -1
            }
        }
    )*};
}
minus_one!(i32 i64 isize);

/// Runs the system call `f` until it does not fail with `EINTR`: `-1` becomes
/// `io::Error::last_os_error()`, anything else is the result.
#[inline]
pub(crate) fn retry<T: MinusOne>(mut f: impl FnMut() -> T) -> stdio::Result<T> {
    loop {
        let r = f();
        if !r.is_minus_one() {
            return Ok(r);
        }
        let e = stdio::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `EAGAIN`/`EWOULDBLOCK` (checked on the errno first: `io::Error::kind` is a long match).
#[inline]
pub(crate) fn is_would_block(e: &stdio::Error) -> bool {
    match e.raw_os_error() {
        Some(code) => code == libc::EAGAIN || code == libc::EWOULDBLOCK,
        None => e.kind() == stdio::ErrorKind::WouldBlock,
    }
}

/// `EBADF`: what a file descriptor number that cannot be open (a negative one) gets.
pub(crate) fn bad_fd() -> stdio::Error {
    stdio::Error::from_raw_os_error(libc::EBADF)
}

/// The signal numbers the loop itself names (run's Ctrl-C, a child's terminate/kill), so that
/// the layers above the fence need no `libc`.
pub(crate) use libc::{
    SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
    SIGWINCH, c_int,
};
