//! The stream transport (asyncio's `_SelectorSocketTransport`, uvloop's `UVStream`): the
//! transport core plus a raw byte stream — a socket, a pipe — behind [`RawIo`].
//!
//! Reading: one read per readiness event into the loop's shared read buffer (or the
//! `BufferedProtocol`'s own), handed to the protocol. Writing: tried at once when nothing is
//! buffered; the rest is buffered and flushed with one vectored write when the fd is
//! writable. `write_eof` shuts the write side down once the buffer drained.
//!
//! # Invariant
//! `io`'s descriptor is used only while the core is not `Closed`; it is closed (by
//! [`RawIo::close`]) only in [`Host::release`], after the reader and writer were removed from
//! the selector.

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::task::{Context, Poll};

use super::core::{Core, Host, IoWatch, Life};
use super::proto::{ProtoObj, ProtoRc, ReadOutcome, wake_reader};
use super::sendfile::{SendfileSlot, ZeroCopy};
use super::write_buf::WriteBuf;
use super::{ExtraInfo, Transport, TransportImpl};
use crate::event_loop::{EventLoop, warn_or_stderr};
use crate::selector::{Direction, IoCallback};

/// The loop's shared read buffer size (asyncio's `max_size`).
pub(crate) const READ_BUFFER_SIZE: usize = 256 * 1024;

/// A non-blocking byte stream under a [`StreamTransport`]: the system calls, and the extra
/// information only it knows. Every call is non-blocking (`WouldBlock` when it would wait).
pub(crate) trait RawIo: 'static {
    /// What the log calls it ("socket", "pipe").
    const KIND: &'static str;
    /// The descriptor to watch for readiness.
    fn fd(&self) -> RawFd;
    /// Whether the stream is read at all (a pipe's write end is not).
    fn readable(&self) -> bool {
        true
    }
    /// One read into `buf`; `Ok(0)` is end of stream.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// [`read`](RawIo::read) into possibly-uninitialised memory; returns how many bytes it
    /// initialised at the start of `buf`. By default `buf` is zeroed first (a stream that
    /// can read into it as it is says so).
    fn read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        buf.fill(MaybeUninit::new(0));
        // SAFETY: every byte of `buf` was just initialised; `MaybeUninit<u8>` has the
        // layout of `u8`.
        let init = unsafe { &mut *(std::ptr::from_mut(buf) as *mut [u8]) };
        self.read(init)
    }
    /// One write of `buf`.
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    /// One vectored write of `bufs`.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Whether the stream goes one way only (a pipe end): then the peer's EOF closes the
    /// transport whatever `eof_received` answers, and `write_eof` closes it (once the
    /// buffer drained) instead of shutting a write side down.
    fn one_way(&self) -> bool {
        false
    }
    /// Whether the write side can be shut down alone (a half-close).
    fn can_write_eof(&self) -> bool;
    /// Shuts the write side down.
    fn shutdown_write(&self) -> io::Result<()>;
    /// `get_extra_info(name)` for what the stream knows (`"peername"`, `"socket"`, …).
    fn extra_info(&self, name: &str) -> Option<ExtraInfo>;
    /// Closes the descriptor (it was deregistered). Called once.
    fn close(&self);
    /// The stream socket that `sendfile(2)` can write to, if this is one.
    fn sendfile_fd(&self) -> Option<RawFd> {
        None
    }

    /// One read into the buffer the protocol's adapter chooses, handed to the protocol.
    #[inline]
    fn read_into(&self, p: &mut dyn ProtoObj, shared: &mut [u8]) -> ReadOutcome {
        p.read(&mut |buf| self.read(buf), shared)
    }

    /// Arms the transport's reader or writer (`w`): with the selector, for `fd`. A stream
    /// the selector cannot watch (`tulip::testing`'s memory streams) takes the callback
    /// and runs it itself when it is ready.
    #[inline(always)]
    fn add_watch(
        &self,
        w: &IoWatch,
        lp: &EventLoop,
        fd: RawFd,
        make: impl FnOnce() -> Option<Rc<IoCallback>>,
    ) -> io::Result<()> {
        w.add(lp, fd, make)
    }

    /// Disarms what [`add_watch`](RawIo::add_watch) armed (a no-op if nothing is).
    #[inline(always)]
    fn remove_watch(&self, w: &IoWatch, lp: &EventLoop, fd: RawFd) {
        w.remove(lp, fd);
    }

    /// Disarms `w` for good, before [`close`](RawIo::close).
    #[inline(always)]
    fn close_watch(&self, w: &IoWatch, lp: &EventLoop, fd: RawFd) {
        w.close(lp, fd);
    }
}

/// A read into a buffer of its own, for when the loop's shared buffer is in use.
#[cold]
#[inline(never)]
fn read_own_buffer<R: RawIo>(
    io: &R,
    p: &mut dyn ProtoObj,
) -> Result<ReadOutcome, Box<dyn std::any::Any + Send>> {
    let mut buf = vec![0u8; READ_BUFFER_SIZE];
    catch_unwind(AssertUnwindSafe(|| io.read_into(p, &mut buf)))
}

/// A stream transport over `R`, owning its protocol.
pub(crate) struct StreamTransport<R: RawIo> {
    core: Core<Self>,
    io: R,
    fd: RawFd,
    write_buf: RefCell<WriteBuf>,
    /// `write_eof()` was called.
    eof: Cell<bool>,
    /// The peer's EOF was read: reading never starts again.
    read_eof: Cell<bool>,
    /// `pause_reading()`.
    paused: Cell<bool>,
    reader: IoWatch,
    writer: IoWatch,
    /// The writer stays registered, with nothing buffered, for a sendfile (or a direct
    /// writer) that was just woken by it and is expected to fill the fd again: its next
    /// [`ZeroCopy::wait_writable`] then costs no `epoll_ctl` (two per wait otherwise). Dropped
    /// at the first readiness nobody waits for, and when the sendfile ends.
    writer_kept: Cell<bool>,
    /// The selector's wait count ([`Selector::waits`](crate::selector::Selector::waits)) when
    /// the sendfile last called `wait_writable`: a readiness from that same wait is older
    /// than the write that filled the fd, and is no news.
    waited_at: Cell<u64>,
    /// A `tulip::sendfile` in progress (`transports/sendfile.rs`).
    sendfile: SendfileSlot,
}

impl<R: RawIo> StreamTransport<R> {
    /// Wraps a connected, non-blocking stream. `connection_made` and the start of reading
    /// are scheduled with `call_soon`, then `waiter` (if any) is completed, as asyncio does.
    pub(crate) fn start(
        lp: &EventLoop,
        io: R,
        protocol: ProtoRc,
        waiter: Option<crate::LoopFuture<()>>,
    ) -> Rc<Self> {
        if let Ok(mut shared) = lp.inner.read_buf.try_borrow_mut() {
            if shared.len() < READ_BUFFER_SIZE {
                shared.resize(READ_BUFFER_SIZE, 0);
            }
        }
        let t = Rc::new_cyclic(|this| StreamTransport {
            core: Core::new(lp, this, Some(protocol)),
            fd: io.fd(),
            io,
            write_buf: RefCell::new(WriteBuf::default()),
            eof: Cell::new(false),
            read_eof: Cell::new(false),
            paused: Cell::new(false),
            reader: IoWatch::new(Direction::Read),
            writer: IoWatch::new(Direction::Write),
            writer_kept: Cell::new(false),
            waited_at: Cell::new(u64::MAX),
            sendfile: SendfileSlot::default(),
        });
        let t2 = t.clone();
        t.core.start(
            t.fd,
            t.handle(),
            move || {
                if !t2.paused.get() {
                    t2.add_reader();
                }
            },
            waiter,
        );
        t
    }

    pub(crate) fn handle(self: &Rc<Self>) -> Transport {
        Transport {
            inner: self.clone(),
        }
    }

    pub(crate) fn set_on_lost(&self, f: impl FnOnce() + 'static) {
        self.core.set_on_lost(f);
    }

    // ---- reading ----------------------------------------------------------------------

    fn add_reader(&self) {
        if self.read_eof.get() || !self.io.readable() {
            return;
        }
        let make = || {
            let t = self.core.this()?;
            let cb: Rc<IoCallback> = Rc::new(IoCallback {
                active: Cell::new(true),
                f: move || t.read_ready(),
            });
            Some(cb)
        };
        if let Err(e) = self
            .io
            .add_watch(&self.reader, &self.core.lp, self.fd, make)
        {
            self.fatal_error(e, "cannot watch the transport for reading");
        }
    }

    fn remove_reader(&self) {
        self.io.remove_watch(&self.reader, &self.core.lp, self.fd);
    }

    #[inline]
    fn read_ready(&self) {
        if self.core.is_lost() {
            return;
        }
        let Some(p) = self.core.protocol() else {
            return;
        };
        let Ok(mut g) = p.cell.try_borrow_mut() else {
            return;
        };
        let io = &self.io;
        let r = match self.core.lp.inner.read_buf.try_borrow_mut() {
            // Sized in `start`.
            Ok(mut shared) => catch_unwind(AssertUnwindSafe(|| io.read_into(&mut *g, &mut shared))),
            // Only if a protocol re-entered the loop's read path: use a buffer of our own.
            Err(_) => read_own_buffer(io, &mut *g),
        };
        drop(g);
        match r {
            Ok(ReadOutcome::Data | ReadOutcome::WouldBlock) => {}
            Ok(ReadOutcome::Wake) => wake_reader(&p),
            Ok(ReadOutcome::Eof) => self.read_eof(),
            // A write pipe's reader closed: with nothing left to send, a plain close
            // (asyncio's write pipe `_read_ready`: `connection_lost(None)`), else BrokenPipe.
            Ok(ReadOutcome::Error(e))
                if self.io.one_way()
                    && e.kind() == io::ErrorKind::BrokenPipe
                    && self.write_buf.borrow().is_empty()
                    && !self.sendfile.is_active() =>
            {
                self.force_close(None)
            }
            Ok(ReadOutcome::Error(e)) => self.fatal_error(e, "Fatal read error"),
            Err(payload) => {
                self.core.panicked(payload);
                return;
            }
        }
        if !self.core.flow.in_sync() {
            self.core.deliver_flow();
        }
    }

    #[cold]
    #[inline(never)]
    fn read_eof(&self) {
        self.read_eof.set(true);
        let keep_open = self.core.call(|p| p.eof_received());
        if self.core.is_lost() {
            return;
        }
        if keep_open == Some(true) && !self.io.one_way() {
            // Half-close: stop reading, keep writing.
            self.remove_reader();
        } else {
            self.close();
        }
    }

    // ---- writing ----------------------------------------------------------------------

    fn add_writer(&self) {
        let make = || {
            let t = self.core.this()?;
            let cb: Rc<IoCallback> = Rc::new(IoCallback {
                active: Cell::new(true),
                f: move || t.write_ready(),
            });
            Some(cb)
        };
        if let Err(e) = self
            .io
            .add_watch(&self.writer, &self.core.lp, self.fd, make)
        {
            self.fatal_error(e, "cannot watch the transport for writing");
        }
    }

    fn remove_writer(&self) {
        self.writer_kept.set(false);
        self.io.remove_watch(&self.writer, &self.core.lp, self.fd);
    }

    fn write_ready(&self) {
        if self.core.is_lost() {
            return;
        }
        let io = &self.io;
        let r = self
            .write_buf
            .borrow_mut()
            .flush(|iov| io.write_vectored(iov));
        match r {
            Ok(0) if self.sendfile.is_active() && self.stale_for_sendfile() => return,
            Ok(_) => {}
            Err(e) if crate::sys::is_would_block(&e) => return,
            Err(e) => {
                self.write_buf.borrow_mut().clear();
                self.remove_writer();
                self.fatal_error(e, "Fatal write error");
                return;
            }
        }
        let size = self.write_buf.borrow().len() + self.sendfile.held_len();
        self.core.buffer_shrank(size); // may write more (asyncio: "May append to buffer")
        if self.write_buf.borrow().is_empty() && !self.core.is_lost() {
            if self.sendfile.is_active() {
                // The sendfile goes on; `close` and `write_eof` wait for its end. It will
                // most likely fill the fd and wait again: the writer stays while it is woken.
                if self.sendfile.wake() {
                    self.writer_kept.set(true);
                } else {
                    self.remove_writer();
                }
                return;
            }
            self.remove_writer();
            if self.core.life() == Life::Closing {
                Core::finish(self, None);
            } else if self.eof.get() {
                self.shutdown_write();
            }
        }
    }

    /// Nothing was buffered, and the sendfile that waits for room registered after the wait
    /// that reported it (it filled the fd since): ignore the readiness. The writer stays;
    /// epoll is level-triggered, so the next wait reports the room if there is any.
    #[cold]
    fn stale_for_sendfile(&self) -> bool {
        self.writer_kept.get()
            && self.waited_at.get() == self.core.lp.inner.selector.waits()
            && self.sendfile.is_waiting()
    }

    /// `write` of `data`, the sendfile aside: tried at once when nothing is buffered,
    /// buffered otherwise.
    #[inline]
    fn send_or_buffer(&self, data: &[u8]) {
        let mut wb = self.write_buf.borrow_mut();
        if wb.is_empty() {
            // Optimistic: write now; buffer only what the fd did not take.
            match self.io.write(data) {
                Ok(n) if n == data.len() => {}
                r => {
                    drop(wb);
                    self.write_rest(data, r);
                }
            }
            return;
        }
        wb.push(data);
        let size = wb.len() + self.sendfile.held_len();
        drop(wb);
        self.core.buffer_grew(size);
    }

    /// The optimistic write of `data` did not take it all (`r`): buffer the rest and wait
    /// for the fd to be writable.
    #[cold]
    #[inline(never)]
    fn write_rest(&self, data: &[u8], r: io::Result<usize>) {
        let rest = match r {
            Ok(n) => &data[n..],
            Err(e) if crate::sys::is_would_block(&e) => data,
            Err(e) => {
                self.fatal_error(e, "Fatal write error");
                return;
            }
        };
        let size = {
            let mut wb = self.write_buf.borrow_mut();
            wb.push(rest);
            wb.len() + self.sendfile.held_len()
        };
        self.add_writer();
        self.core.buffer_grew(size);
    }

    fn shutdown_write(&self) {
        // A peer that is already gone makes this fail: the read side will tell.
        self.io.shutdown_write().ok();
    }

    // ---- sendfile (transports/sendfile.rs) ----------------------------------------------

    /// A write while a sendfile runs: held until it ends.
    #[cold]
    #[inline(never)]
    fn write_held(&self, data: &[u8]) {
        let size = self.write_buf.borrow().len() + self.sendfile.hold(data);
        self.core.buffer_grew(size);
    }

    // ---- failing ----------------------------------------------------------------------

    #[cold]
    #[inline(never)]
    fn fatal_error(&self, err: io::Error, message: &str) {
        // Peer resets and broken pipes are part of life: asyncio logs them only in debug.
        let quiet = matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        );
        if !quiet || self.core.lp.get_debug() {
            log::debug!("{message} on {} transport: {err}", R::KIND);
        }
        self.force_close(Some(err));
    }
}

impl<R: RawIo> Host for StreamTransport<R> {
    type Proto = dyn ProtoObj;

    fn core(&self) -> &Core<Self> {
        &self.core
    }

    fn buffered_bytes(&self) -> Option<usize> {
        Some(TransportImpl::get_write_buffer_size(self))
    }

    fn force_close(&self, exc: Option<io::Error>) {
        if self.core.is_lost() {
            return;
        }
        if !self.write_buf.borrow().is_empty() || self.writer_kept.get() {
            self.write_buf.borrow_mut().clear();
            self.remove_writer();
        }
        self.sendfile.clear();
        self.sendfile.wake();
        if self.core.life() == Life::Open {
            self.remove_reader();
        }
        self.core.lose(exc);
    }

    fn release(&self) {
        let lp = &self.core.lp;
        self.io.close_watch(&self.reader, lp, self.fd);
        self.io.close_watch(&self.writer, lp, self.fd);
        self.io.close();
        self.write_buf.borrow_mut().clear();
        self.sendfile.clear();
        self.sendfile.wake();
    }

    fn describe(&self) -> String {
        let addr = |name| match self.io.extra_info(name) {
            Some(ExtraInfo::Address(a)) => show_addr(&a),
            _ => "?".to_owned(),
        };
        format!(
            "{} transport (fd {}, {} <-> {})",
            R::KIND,
            self.fd,
            addr("sockname"),
            addr("peername")
        )
    }
}

/// An address as a log line shows it: `ip:port`, a path, or `?`.
pub(crate) fn show_addr(a: &socket2::SockAddr) -> String {
    match (a.as_socket(), a.as_pathname()) {
        (Some(s), _) => s.to_string(),
        (None, Some(p)) => p.display().to_string(),
        _ if a.is_unnamed() => "unnamed".to_owned(),
        _ => "?".to_owned(),
    }
}

impl<R: RawIo> TransportImpl for StreamTransport<R> {
    #[inline]
    fn write(&self, data: &[u8]) {
        assert!(!self.eof.get(), "Transport::write() after write_eof()");
        if data.is_empty() {
            return;
        }
        if self.core.is_lost() {
            self.core.write_dropped(R::KIND);
            return;
        }
        if self.sendfile.is_active() {
            self.write_held(data);
            return;
        }
        self.send_or_buffer(data);
    }

    fn write_eof(&self) {
        if self.core.is_closing() || self.eof.get() {
            return;
        }
        self.eof.set(true);
        if self.io.one_way() {
            self.close();
            return;
        }
        if self.write_buf.borrow().is_empty() && !self.sendfile.is_active() {
            self.shutdown_write();
        }
    }

    fn can_write_eof(&self) -> bool {
        self.io.can_write_eof()
    }

    fn close(&self) {
        if !self.core.begin_closing() {
            return;
        }
        self.remove_reader();
        if self.write_buf.borrow().is_empty() && !self.sendfile.is_active() {
            self.remove_writer();
            self.core.lose(None);
        }
    }

    fn abort(&self) {
        self.force_close(None);
    }

    fn is_closing(&self) -> bool {
        self.core.is_closing()
    }

    fn pause_reading(&self) {
        if self.core.is_closing() || self.paused.replace(true) {
            return;
        }
        if self.core.is_connected() {
            self.remove_reader();
        }
    }

    fn resume_reading(&self) {
        if self.core.is_closing() || !self.paused.replace(false) {
            return;
        }
        if self.core.is_connected() {
            self.add_reader();
        }
    }

    fn is_reading(&self) -> bool {
        !self.paused.get() && !self.core.is_closing()
    }

    fn get_write_buffer_size(&self) -> usize {
        self.write_buf.borrow().len() + self.sendfile.held_len()
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.core.flow.limits()
    }

    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> io::Result<()> {
        self.core.flow.set_limits(high, low)?;
        let size = self.write_buf.borrow().len() + self.sendfile.held_len();
        if self.core.flow.check_pause(size) || self.core.flow.check_resume(size) {
            self.core.deliver_flow();
        }
        Ok(())
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.io.extra_info(name)
    }

    fn set_protocol(&self, p: ProtoRc) {
        self.core.set_protocol(p);
    }

    fn get_protocol(&self) -> Option<ProtoRc> {
        self.core.protocol()
    }

    fn is_writing_paused(&self) -> bool {
        self.core.flow.is_paused()
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core.poll_drain(cx)
    }

    fn try_read_into(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        self.try_read_with(|io| io.read(buf))
    }

    fn try_read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> Option<io::Result<usize>> {
        self.try_read_with(|io| io.read_uninit(buf))
    }

    fn zero_copy(&self) -> Option<&dyn ZeroCopy> {
        Some(self)
    }
}

impl<R: RawIo> StreamTransport<R> {
    /// `try_read_into` with the read `read` makes.
    #[inline]
    fn try_read_with(
        &self,
        read: impl FnOnce(&R) -> io::Result<usize>,
    ) -> Option<io::Result<usize>> {
        if self.core.is_closing()
            || self.paused.get()
            || self.read_eof.get()
            || !self.core.is_connected()
            || !self.io.readable()
        {
            return None;
        }
        match read(&self.io) {
            Ok(0) => {
                // As `read_ready` would: the protocol hears `eof_received`.
                self.read_eof();
                Some(Ok(0))
            }
            Ok(n) => Some(Ok(n)),
            Err(e) if crate::sys::is_would_block(&e) => Some(Err(e)),
            Err(e) => {
                let copy = match e.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(e.kind(), e.to_string()),
                };
                self.fatal_error(e, "Fatal read error");
                Some(Err(copy))
            }
        }
    }
}

impl<R: RawIo> ZeroCopy for StreamTransport<R> {
    fn begin(&self) -> io::Result<()> {
        if self.core.is_closing() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "sendfile on a closing transport",
            ));
        }
        self.sendfile.activate()
    }

    fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.core.is_lost() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "Connection lost",
            )));
        }
        if self.write_buf.borrow().is_empty() {
            return Poll::Ready(Ok(()));
        }
        // The writer is registered while anything is buffered: `write_ready` wakes us.
        self.sendfile.set_waker(cx);
        Poll::Pending
    }

    fn socket_fd(&self) -> Option<RawFd> {
        if self.core.is_lost() {
            return None;
        }
        self.io.sendfile_fd()
    }

    fn wait_writable(&self, cx: &mut Context<'_>) {
        if self.core.is_lost() {
            cx.waker().wake_by_ref();
            return;
        }
        // A waker that still waits means the writer is registered (for it, or for the
        // buffer that `poll_flushed` waits on): no need to ask the kernel again.
        let registered = self.writer_kept.get() || self.sendfile.is_waiting();
        self.sendfile.set_waker(cx);
        self.waited_at.set(self.core.lp.inner.selector.waits());
        if !registered {
            self.add_writer();
        }
    }

    fn is_waiting(&self) -> bool {
        !self.core.is_lost() && self.sendfile.is_waiting()
    }

    fn write_direct(&self, data: &[u8]) {
        if !data.is_empty() && !self.core.is_lost() {
            let mut wb = self.write_buf.borrow_mut();
            if !wb.is_empty() {
                wb.push(data);
                return;
            }
            match self.io.write(data) {
                Ok(n) if n == data.len() => {}
                Ok(n) => {
                    wb.push(&data[n..]);
                    drop(wb);
                    self.add_writer();
                }
                Err(e) if crate::sys::is_would_block(&e) => {
                    wb.push(data);
                    drop(wb);
                    self.add_writer();
                }
                Err(e) => {
                    drop(wb);
                    self.fatal_error(e, "Fatal write error");
                }
            }
        }
    }

    fn end(&self) {
        if !self.sendfile.deactivate() || self.core.is_lost() {
            self.sendfile.clear();
            return;
        }
        let empty = {
            let mut wb = self.write_buf.borrow_mut();
            self.sendfile.release_into(&mut wb);
            wb.is_empty()
        };
        if !empty {
            self.writer_kept.set(false);
            self.add_writer();
        } else if self.core.life() == Life::Closing {
            self.remove_writer();
            self.core.lose(None);
        } else {
            if self.writer_kept.get() {
                self.remove_writer();
            }
            if self.eof.get() {
                self.shutdown_write();
            }
        }
    }
}

impl<R: RawIo> Drop for StreamTransport<R> {
    fn drop(&mut self) {
        if self.core.life() != Life::Closed && self.core.lp.get_debug() {
            warn_or_stderr!("unclosed {} dropped", Host::describe(self));
        }
    }
}
