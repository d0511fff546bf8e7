//! The protocol traits, method for method as asyncio's `protocols.py`.
//!
//! A protocol is the callback side of a connection: the transport calls it. Every method has
//! a default body, so a protocol implements only what it needs.
//!
//! # Call order
//! For a stream protocol the transport guarantees `CM [DR*] [ER?] CL` — `connection_made`
//! once, `data_received` any number of times, `eof_received` at most once, and
//! `connection_lost` exactly once, whatever ends the connection. For a [`BufferedProtocol`]
//! it is `CM [GB [BU?]]* [ER?] CL`; for a [`DatagramProtocol`], `CM [DR | ER]* CL`.

use std::io;

use socket2::SockAddr;

use crate::transports::Transport;
use crate::transports::datagram::DatagramTransport;

/// A stream protocol fed with `data_received` (asyncio's `Protocol`).
///
/// ```
/// use tulip::{Protocol, Transport};
///
/// /// Echoes whatever arrives.
/// struct Echo(Option<Transport>);
///
/// impl Protocol for Echo {
///     fn connection_made(&mut self, transport: &Transport) {
///         self.0 = Some(transport.clone());
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.0 {
///             t.write(data);
///         }
///     }
/// }
/// ```
pub trait Protocol: 'static {
    /// The connection is made; `transport` is how to talk back (keep a clone).
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived. `data` borrows the loop's read buffer: copy what must outlive the call.
    fn data_received(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// The peer closed its writing side. Return `true` to keep the connection open for
    /// writing (a half-close); `false` (the default) closes the transport.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is gone: `None` for a normal close or EOF, `Some(error)` otherwise.
    /// Called exactly once.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// The transport's write buffer went over the high-water mark: stop writing for now.
    fn pause_writing(&mut self) {}

    /// The write buffer drained to the low-water mark: writing may go on.
    fn resume_writing(&mut self) {}
}

/// A stream protocol that receives into its own buffer (asyncio's `BufferedProtocol`):
/// no copy out of a shared buffer.
///
/// ```
/// use tulip::{BufferedProtocol, Transport};
///
/// struct Collect {
///     buf: Vec<u8>,
///     filled: usize,
/// }
///
/// impl BufferedProtocol for Collect {
///     fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
///         if self.filled == self.buf.len() {
///             self.buf.resize(self.buf.len() * 2 + 4096, 0);
///         }
///         &mut self.buf[self.filled..]
///     }
///     fn buffer_updated(&mut self, nbytes: usize) {
///         self.filled += nbytes;
///     }
/// }
/// ```
pub trait BufferedProtocol: 'static {
    /// The connection is made; `transport` is how to talk back (keep a clone).
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// The buffer to receive into next. `sizehint` is the size the transport would like, 0
    /// for no preference (asyncio passes -1). An empty buffer is an error that closes the
    /// connection. The default has no room: implement it.
    fn get_buffer(&mut self, sizehint: usize) -> &mut [u8] {
        let _ = sizehint;
        &mut []
    }

    /// `nbytes` bytes were written at the start of the last buffer.
    fn buffer_updated(&mut self, nbytes: usize) {
        let _ = nbytes;
    }

    /// As [`Protocol::eof_received`].
    fn eof_received(&mut self) -> bool {
        false
    }

    /// As [`Protocol::connection_lost`].
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// As [`Protocol::pause_writing`].
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}
}

/// A datagram protocol (asyncio's `DatagramProtocol`), for UDP and Unix datagram endpoints
/// made by [`create_datagram_endpoint`](crate::create_datagram_endpoint).
///
/// The call order is `CM [DR | ER]* CL`: `connection_made` once, then any number of
/// `datagram_received` and `error_received` in any order, then `connection_lost` exactly
/// once. An error from one datagram (a refused port on a connected endpoint, a datagram too
/// large) is an `error_received`, and the endpoint stays open.
///
/// ```
/// use tulip::{DatagramProtocol, DatagramTransport};
/// use tulip::socket2::SockAddr;
///
/// /// Echoes every datagram to its sender.
/// struct Echo(Option<DatagramTransport>);
///
/// impl DatagramProtocol for Echo {
///     fn connection_made(&mut self, transport: &DatagramTransport) {
///         self.0 = Some(transport.clone());
///     }
///     fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
///         if let Some(t) = &self.0 {
///             t.sendto(data, Some(addr)).ok();
///         }
///     }
/// }
/// ```
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready; `transport` is how to send (keep a clone).
    fn connection_made(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }

    /// A datagram arrived from `addr` (possibly empty). `data` borrows the loop's read
    /// buffer: copy what must outlive the call.
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        let _ = (data, addr);
    }

    /// A send or receive failed (`ConnectionRefused` after an ICMP port-unreachable on a
    /// connected endpoint, a datagram too large, …); the endpoint stays open.
    fn error_received(&mut self, exc: io::Error) {
        let _ = exc;
    }

    /// The endpoint is closed: `None` for `close`/`abort`, `Some(error)` if it failed.
    /// Called exactly once.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// The send queue went over the high-water mark: stop sending for now.
    fn pause_writing(&mut self) {}

    /// The send queue drained to the low-water mark: sending may go on.
    fn resume_writing(&mut self) {}
}

/// The protocol of a child process and its pipes (asyncio's `SubprocessProtocol`), driven by
/// a [`SubprocessTransport`](crate::SubprocessTransport) from
/// [`subprocess_exec`](crate::subprocess_exec) or [`subprocess_shell`](crate::subprocess_shell).
///
/// # Call order
/// `connection_made` first; then `pipe_data_received` and `pipe_connection_lost` (once per
/// pipe) and `process_exited` (once) in the order they happen; `connection_lost` last, once,
/// only after every pipe was lost **and** the process exited (asyncio's `_try_finish`).
#[cfg(unix)]
pub trait SubprocessProtocol: 'static {
    /// The child runs and its pipes are connected; keep a clone of `transport`.
    fn connection_made(&mut self, transport: &crate::SubprocessTransport) {
        let _ = transport;
    }

    /// The child wrote `data` to its stdout (`fd == 1`) or stderr (`fd == 2`). `data`
    /// borrows the loop's read buffer.
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }

    /// The pipe for `fd` (0, 1 or 2) was closed: `None` at EOF or after a close, else the
    /// error.
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        let _ = (fd, exc);
    }

    /// The child exited (and was reaped); `get_returncode` has the status.
    fn process_exited(&mut self) {}

    /// All is over: every pipe is closed and the child exited. Called exactly once.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// The stdin pipe's write buffer went over the high-water mark.
    fn pause_writing(&mut self) {}

    /// The stdin pipe's write buffer drained to the low-water mark.
    fn resume_writing(&mut self) {}
}
