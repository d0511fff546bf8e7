//! The stream state one connection's stream protocol, `StreamReader` and `StreamWriter`
//! share (asyncio's shape: `StreamReaderProtocol` feeds the `StreamReader` it holds): the
//! received bytes, EOF, the error, the flow-control flags and the wakers.
//!
//! Flags are `Cell`s; the buffer and the waker lists are `RefCell`s borrowed only inside
//! this module's short methods, never while a waker or any other user code runs — wakers
//! are taken out first and woken by the caller once every borrow is released.

use std::cell::{Cell, RefCell};
use std::io;
use std::task::Waker;

use super::buf::Buf;
use crate::transports::Transport;

/// Where a reader with a large destination and nothing buffered stands with the socket: it
/// receives straight into its destination (`Transport::try_read_into`) instead of having
/// the protocol receive into the buffer and copying out of it. Only while messages are large
/// (the last receive brought 4 KiB or more, `StreamState::last_recv`): a reader that
/// receives itself runs one loop iteration after the readiness, so the loop reports the
/// readiness once more for data still in the socket — for small messages that costs more
/// than the copy it saves.
///
/// The protocol's `read` (the transport found the socket readable) and the reader's
/// `poll_read` move it:
///
/// | state     | the socket is readable (protocol)               | the reader polls        |
/// |-----------|-------------------------------------------------|-------------------------|
/// | `Off`     | receive into the buffer                         | → `Waiting`, wait       |
/// | `Waiting` | → `Woken`, wake the reader                      | wait                    |
/// | `Ready`   | → `Woken`, wake the reader                      | receive directly        |
/// | `Woken`   | the reader had its turn and did not read: → `Off`, receive into the buffer | receive directly |
/// | `Drained` | polled before the reader emptied the socket: → `Waiting` | wait           |
///
/// A direct receive that fills the destination leaves `Ready` (there may be more); a short
/// one or `WouldBlock` leaves `Drained` (the receive queue is empty, as tokio assumes); EOF,
/// an error, or a transport that cannot leave `Off`. Any buffered read (`readline`, …)
/// sets `Off`. A wrong guess costs one loop iteration, never a hang: epoll is
/// level-triggered, so data that is there is reported again. The `Woken` rule keeps a
/// reader that stopped reading (busy in `drain`, dropped) from making the loop spin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direct {
    Off,
    Waiting,
    Woken,
    Ready,
    Drained,
}

/// A connection's stream state.
pub(crate) struct StreamState {
    /// Received and not yet taken by the reader.
    pub(crate) buf: RefCell<Buf>,
    pub(crate) limit: usize,
    pub(crate) eof: Cell<bool>,
    /// `connection_lost` ran.
    pub(crate) lost: Cell<bool>,
    /// The error the connection was lost with, reported to every later operation.
    exc: RefCell<Option<(io::ErrorKind, String)>>,
    read_waker: Cell<Option<Waker>>,
    drain_wakers: RefCell<Vec<Waker>>,
    closed_wakers: RefCell<Vec<Waker>>,
    /// The transport told `pause_writing` and not yet `resume_writing`.
    pub(crate) write_paused: Cell<bool>,
    /// The stream paused the transport's reading (buffer over 2 × limit).
    pub(crate) read_paused: Cell<bool>,
    pub(crate) direct: Cell<Direct>,
    /// Bytes the last receive brought (by either path): a reader receives directly only
    /// while messages are large, where the copy saved outweighs the readiness the loop
    /// reports once more for data the protocol left in the socket.
    pub(crate) last_recv: Cell<usize>,
    /// The transport, while the connection lives (for pausing and resuming reading).
    transport: RefCell<Option<Transport>>,
}

impl std::fmt::Debug for StreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamState")
            .field("limit", &self.limit)
            .field("eof", &self.eof.get())
            .field("lost", &self.lost.get())
            .finish_non_exhaustive()
    }
}

impl StreamState {
    pub(crate) fn new(limit: usize) -> StreamState {
        StreamState {
            buf: RefCell::new(Buf::default()),
            limit,
            eof: Cell::new(false),
            lost: Cell::new(false),
            exc: RefCell::new(None),
            read_waker: Cell::new(None),
            drain_wakers: RefCell::new(Vec::new()),
            closed_wakers: RefCell::new(Vec::new()),
            write_paused: Cell::new(false),
            read_paused: Cell::new(false),
            direct: Cell::new(Direct::Off),
            last_recv: Cell::new(0),
            transport: RefCell::new(None),
        }
    }

    // ---- the transport ----------------------------------------------------------------

    pub(crate) fn set_transport(&self, t: Option<Transport>) {
        let old = self.transport.replace(t);
        // A transport handle's drop runs no user code, but drop it outside the borrow anyway.
        drop(old);
    }

    fn transport(&self) -> Option<Transport> {
        self.transport.borrow().clone()
    }

    /// Whether the stream runs over TLS (its transport answers `"sslcontext"`).
    pub(crate) fn over_tls(&self) -> bool {
        self.transport()
            .is_some_and(|t| t.get_extra_info("sslcontext").is_some())
    }

    /// Stops the transport's reading: more than 2 × limit bytes wait unread.
    pub(crate) fn pause_if_full(&self, buffered: usize) {
        if !self.read_paused.get() && buffered > 2 * self.limit {
            if let Some(t) = self.transport() {
                self.read_paused.set(true);
                t.pause_reading();
            }
        }
    }

    /// Resumes the transport's reading if the stream paused it and `buffered` (what the
    /// reader holds plus what is here) is at or below the limit — or at once with `force`
    /// (the reader waits for more: asyncio's `_wait_for_data`).
    pub(crate) fn resume_if_room(&self, buffered: usize, force: bool) {
        if self.read_paused.get() && (force || buffered <= self.limit) {
            self.read_paused.set(false);
            if let Some(t) = self.transport() {
                t.resume_reading();
            }
        }
    }

    // ---- the error --------------------------------------------------------------------

    /// Records the error the connection was lost with.
    pub(crate) fn set_error(&self, e: &io::Error) {
        let msg = e.to_string();
        *self.exc.borrow_mut() = Some((e.kind(), msg));
    }

    /// The error to report for an operation after the connection was lost with one.
    pub(crate) fn error(&self) -> Option<io::Error> {
        let exc = self.exc.borrow();
        let (kind, msg) = exc.as_ref()?;
        Some(io::Error::new(*kind, msg.clone()))
    }

    // ---- wakers -----------------------------------------------------------------------

    /// Registers the reader's waker (one reader: it replaces the last one).
    pub(crate) fn set_read_waker(&self, w: &Waker) {
        let old = self.read_waker.take();
        match old {
            Some(old) if old.will_wake(w) => self.read_waker.set(Some(old)),
            _ => self.read_waker.set(Some(w.clone())),
        }
    }

    /// Takes the reader's waker, to be woken by the caller.
    #[inline]
    pub(crate) fn take_read_waker(&self) -> Option<Waker> {
        self.read_waker.take()
    }

    pub(crate) fn add_drain_waker(&self, w: &Waker) {
        add_waker(&self.drain_wakers, w);
    }

    pub(crate) fn add_closed_waker(&self, w: &Waker) {
        add_waker(&self.closed_wakers, w);
    }

    /// Takes the wakers of `drain` (and with `all`, of `wait_closed` and the reader too),
    /// appending them to `out` for the caller to wake.
    pub(crate) fn take_wakers(&self, all: bool, out: &mut Vec<Waker>) {
        out.append(&mut self.drain_wakers.borrow_mut());
        if all {
            out.append(&mut self.closed_wakers.borrow_mut());
            out.extend(self.read_waker.take());
        }
    }
}

/// Adds `w` unless it is there; the clone (a waker's code) runs with the list released.
fn add_waker(list: &RefCell<Vec<Waker>>, w: &Waker) {
    if list.borrow().iter().any(|x| x.will_wake(w)) {
        return;
    }
    let w = w.clone();
    list.borrow_mut().push(w);
}
