//! The stream transport's side of `tulip::sendfile` (`src/sendfile.rs`): a transport that can
//! hand its socket to `sendfile(2)` for a while.
//!
//! While a sendfile runs ("active"), the transport's own writes are **held**: `write` queues
//! them behind the file, in a second buffer, and they are sent once the sendfile ends
//! (asyncio refuses them with `RuntimeError`; a Rust `write` has no error to return). The
//! held bytes count in the write buffer's size, so the protocol is told `pause_writing` as
//! usual when it writes too much meanwhile. `close()` and `write_eof()` wait for the end
//! too. Reading and the protocol go on.
//!
//! The sendfile future drives: [`ZeroCopy::begin`], wait until the bytes written before it
//! are sent ([`ZeroCopy::poll_flushed`]), then `sendfile(2)` on [`ZeroCopy::socket_fd`]
//! until the socket is full and wait for the transport's writer ([`ZeroCopy::wait_writable`]),
//! and at last (or when dropped) [`ZeroCopy::end`]. The descriptor is used only between a
//! check that the connection is not lost and the end of that poll, all on the loop's thread,
//! so it is never a closed or reused one.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::task::{Context, Poll, Waker};

use super::write_buf::WriteBuf;

/// What a transport that supports `sendfile` offers the sendfile future.
pub(crate) trait ZeroCopy {
    /// Starts a sendfile: from now on the transport's writes are held until
    /// [`end`](ZeroCopy::end).
    ///
    /// # Errors
    /// `NotConnected` if the transport is closing; `ResourceBusy` if a sendfile runs
    /// already.
    fn begin(&self) -> io::Result<()>;
    /// Ready once every byte written before `begin` (and by
    /// [`write_direct`](ZeroCopy::write_direct)) was sent; an error once the connection is
    /// lost.
    fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// The connected socket, for `sendfile(2)` now (`None` for a pipe, or once the
    /// connection is lost). Valid until the caller returns to the loop.
    fn socket_fd(&self) -> Option<RawFd>;
    /// The socket is full: wake `cx` when it is writable (or the connection is lost).
    fn wait_writable(&self, cx: &mut Context<'_>);
    /// Whether a [`wait_writable`](ZeroCopy::wait_writable) (or a pending
    /// [`poll_flushed`](ZeroCopy::poll_flushed)) still waits: its waker was not woken yet.
    /// A future polled for another reason (it shares its task) can then skip a write that
    /// would only be `EAGAIN`, and wait again.
    fn is_waiting(&self) -> bool;
    /// Writes `data` ahead of the held writes (the copy fallback's chunks), without telling
    /// the protocol about flow control.
    fn write_direct(&self, data: &[u8]);
    /// Ends the sendfile: the held writes are sent, and a `close` or `write_eof` that waited
    /// goes on. A no-op if not active.
    fn end(&self);
}

/// A stream transport's sendfile state (see the module docs).
#[derive(Default)]
pub(crate) struct SendfileSlot {
    active: Cell<bool>,
    /// Writes made while active.
    held: RefCell<WriteBuf>,
    /// The sendfile future, waiting for a flush or for room in the socket.
    waker: Cell<Option<Waker>>,
}

impl SendfileSlot {
    /// Whether a sendfile runs (writes are held).
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.active.get()
    }

    /// `Err(ResourceBusy)` if active already; else becomes active.
    pub(crate) fn activate(&self) -> io::Result<()> {
        if self.active.replace(true) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "a sendfile is in progress on this transport",
            ));
        }
        Ok(())
    }

    /// Becomes inactive; returns whether it was active.
    pub(crate) fn deactivate(&self) -> bool {
        self.waker.take();
        self.active.replace(false)
    }

    /// Queues a write made while active; returns the held size.
    pub(crate) fn hold(&self, data: &[u8]) -> usize {
        let mut h = self.held.borrow_mut();
        h.push(data);
        h.len()
    }

    /// Bytes held.
    #[inline]
    pub(crate) fn held_len(&self) -> usize {
        if self.active.get() {
            self.held.borrow().len()
        } else {
            0
        }
    }

    /// Moves the held writes to the end of `wb`.
    pub(crate) fn release_into(&self, wb: &mut WriteBuf) {
        wb.append(&mut self.held.borrow_mut());
    }

    /// Drops the held writes (the connection is lost).
    pub(crate) fn clear(&self) {
        self.held.borrow_mut().clear();
    }

    /// Remembers the future's waker.
    pub(crate) fn set_waker(&self, cx: &Context<'_>) {
        self.waker.set(Some(cx.waker().clone()));
    }

    /// Whether a waker waits to be woken.
    pub(crate) fn is_waiting(&self) -> bool {
        let w = self.waker.take();
        let waiting = w.is_some();
        self.waker.set(w);
        waiting
    }

    /// Wakes the future, if it waits; whether it did.
    pub(crate) fn wake(&self) -> bool {
        match self.waker.take() {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for SendfileSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendfileSlot")
            .field("active", &self.active.get())
            .field("held", &self.held.borrow().len())
            .finish()
    }
}
