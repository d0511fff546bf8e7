//! The socket transport for TCP and Unix stream sockets (asyncio's
//! `_SelectorSocketTransport`).
//!
//! # Invariant
//! `fd` is the descriptor of `sock` while `sock` is `Some`; it is only used while
//! `conn_lost == 0` or before `call_connection_lost` has run, and `sock` is dropped (closing
//! the fd) only after the reader and writer were removed from the selector.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use socket2::{SockAddr, Socket};

use super::flow::Flow;
use super::proto::{ProtoObj, ProtoRc, ReadOutcome, call_protocol, report_panic};
use super::write_buf::WriteBuf;
use super::{ExtraInfo, Transport, TransportImpl};
use crate::event_loop::EventLoop;
use crate::selector::{IoCallback, READ, WRITE};
use crate::sys;

/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const CONNLOST_WRITES_LOG_THRESHOLD: u32 = 5;

/// The loop's shared read buffer size (asyncio's `max_size`).
pub(crate) const READ_BUFFER_SIZE: usize = 256 * 1024;

/// A TCP or Unix stream socket driven by the loop, owning its protocol.
pub(crate) struct SocketTransport {
    lp: EventLoop,
    this: Weak<SocketTransport>,
    fd: RawFd,
    sock: RefCell<Option<Socket>>,
    protocol: RefCell<Option<ProtoRc>>,
    write_buf: RefCell<WriteBuf>,
    flow: Flow,
    /// `close()` or a fatal error happened.
    closing: Cell<bool>,
    /// Counts writes after the connection was lost (asyncio's `_conn_lost`).
    conn_lost: Cell<u32>,
    /// `write_eof()` was called.
    eof: Cell<bool>,
    /// The peer's EOF was read: reading never starts again.
    read_eof: Cell<bool>,
    paused: Cell<bool>,
    /// `connection_made` was delivered.
    connected: Cell<bool>,
    /// `connection_lost` ran (or the transport was torn down): never again.
    lost: Cell<bool>,
    /// A flow-control delivery waits in a `call_soon`.
    flow_scheduled: Cell<bool>,
    reader: RefCell<Option<Rc<IoCallback>>>,
    writer: RefCell<Option<Rc<IoCallback>>>,
    peername: RefCell<Option<SockAddr>>,
    /// Called once when the connection is lost (the server's bookkeeping).
    on_lost: RefCell<Option<Box<dyn FnOnce()>>>,
    /// Tasks waiting in `Transport::drain`.
    drain_wakers: RefCell<Vec<Waker>>,
}

impl SocketTransport {
    /// Wraps a connected, non-blocking socket. `connection_made` and the start of reading are
    /// scheduled with `call_soon`, then `waiter` (if any) is completed, as asyncio does.
    pub(crate) fn start(
        lp: &EventLoop,
        sock: Socket,
        protocol: ProtoRc,
        peername: Option<SockAddr>,
        waiter: Option<crate::LoopFuture<()>>,
    ) -> Rc<SocketTransport> {
        let fd = sock.as_raw_fd();
        // Where `MSG_NOSIGNAL` does not exist, the socket itself must not raise SIGPIPE.
        sys::prepare_socket(&sock).ok();
        let t = Rc::new_cyclic(|this| SocketTransport {
            lp: lp.clone(),
            this: this.clone(),
            fd,
            sock: RefCell::new(Some(sock)),
            protocol: RefCell::new(Some(protocol)),
            write_buf: RefCell::new(WriteBuf::default()),
            flow: Flow::default(),
            closing: Cell::new(false),
            conn_lost: Cell::new(0),
            eof: Cell::new(false),
            read_eof: Cell::new(false),
            paused: Cell::new(false),
            connected: Cell::new(false),
            lost: Cell::new(false),
            flow_scheduled: Cell::new(false),
            reader: RefCell::new(None),
            writer: RefCell::new(None),
            peername: RefCell::new(peername),
            on_lost: RefCell::new(None),
            drain_wakers: RefCell::new(Vec::new()),
        });
        let t2 = t.clone();
        lp.call_soon(move || {
            t2.connected.set(true);
            let handle = t2.handle();
            t2.call(|p| p.connection_made(&handle));
            if !t2.closing.get() && !t2.paused.get() {
                t2.add_reader();
            }
            if let Some(w) = waiter {
                if !w.done() {
                    w.set_result(());
                }
            }
        });
        t
    }

    pub(crate) fn handle(self: &Rc<Self>) -> Transport {
        Transport {
            inner: self.clone(),
        }
    }

    pub(crate) fn set_on_lost(&self, f: impl FnOnce() + 'static) {
        *self.on_lost.borrow_mut() = Some(Box::new(f));
    }

    // ---- calling the protocol ---------------------------------------------------------

    /// Calls the protocol, catching a panic (reported, and the connection aborted). `None`
    /// if there is no protocol, it is busy in another of its callbacks, or it panicked.
    fn call<R>(&self, f: impl FnOnce(&mut dyn ProtoObj) -> R) -> Option<R> {
        let p = self.protocol.borrow().clone()?;
        match call_protocol(&p, f) {
            Ok(v) => {
                if !self.flow.in_sync() {
                    self.deliver_flow();
                }
                v
            }
            Err(payload) => {
                self.protocol_panicked(payload);
                None
            }
        }
    }

    fn protocol_panicked(&self, payload: Box<dyn Any + Send>) {
        report_panic(&self.lp, payload);
        self.force_close(Some(io::Error::other("protocol callback panicked")));
    }

    fn wake_drainers(&self) {
        let ws = std::mem::take(&mut *self.drain_wakers.borrow_mut());
        for w in ws {
            w.wake();
        }
    }

    /// Tells the protocol `pause_writing` / `resume_writing` as decided; if it is busy in a
    /// callback, right after that callback (`call` flushes), or from the loop.
    fn deliver_flow(&self) {
        while let Some(pause) = self.flow.next_delivery() {
            if !pause {
                // `Transport::drain` waiters hear of a resume whether or not the protocol can.
                self.wake_drainers();
            }
            let Some(p) = self.protocol.borrow().clone() else {
                return;
            };
            let r = call_protocol(&p, |g| {
                if pause {
                    g.pause_writing();
                } else {
                    g.resume_writing();
                }
            });
            match r {
                Ok(Some(())) => {}
                Ok(None) => {
                    // Busy in a callback: after it (`call` flushes), or from the loop.
                    self.flow.undeliver();
                    self.schedule_flow();
                    return;
                }
                Err(payload) => {
                    self.protocol_panicked(payload);
                    return;
                }
            }
        }
    }

    fn schedule_flow(&self) {
        if self.flow_scheduled.replace(true) {
            return;
        }
        if let Some(t) = self.this.upgrade() {
            if !self.lp.is_closed() {
                self.lp.call_soon(move || {
                    t.flow_scheduled.set(false);
                    t.deliver_flow();
                });
            }
        }
    }

    // ---- reading ----------------------------------------------------------------------

    fn add_reader(&self) {
        if self.read_eof.get() {
            return;
        }
        let cb = {
            let mut r = self.reader.borrow_mut();
            if r.is_none() {
                let Some(t) = self.this.upgrade() else { return };
                let cb: Rc<IoCallback> = Rc::new(IoCallback {
                    active: Cell::new(true),
                    f: move || t.read_ready(),
                });
                *r = Some(cb);
            }
            r.clone().expect("set above")
        };
        if let Err(e) = self.lp.inner.selector.set_callback(self.fd, READ, Some(cb)) {
            self.fatal_error(e, "cannot watch the socket for reading");
        }
    }

    fn remove_reader(&self) {
        self.lp
            .inner
            .selector
            .set_callback(self.fd, READ, None)
            .ok();
    }

    #[inline]
    fn read_ready(&self) {
        if self.conn_lost.get() != 0 {
            return;
        }
        let Some(p) = self.protocol.borrow().clone() else {
            return;
        };
        let Ok(mut g) = p.cell.try_borrow_mut() else {
            return;
        };
        let inner = &self.lp.inner;
        let r = match inner.read_buf.try_borrow_mut() {
            Ok(mut shared) => {
                if shared.len() < READ_BUFFER_SIZE {
                    shared.resize(READ_BUFFER_SIZE, 0);
                }
                catch_unwind(AssertUnwindSafe(|| g.read(self.fd, &mut shared)))
            }
            // Only if a protocol re-entered the loop's read path: use a buffer of our own.
            Err(_) => {
                let mut own = vec![0u8; READ_BUFFER_SIZE];
                catch_unwind(AssertUnwindSafe(|| g.read(self.fd, &mut own)))
            }
        };
        drop(g);
        match r {
            Ok(ReadOutcome::Data | ReadOutcome::WouldBlock) => {}
            Ok(ReadOutcome::Wake) => {
                // The stream protocol's reader, woken with the protocol's cell released.
                if let Some(w) = p
                    .cell
                    .try_borrow_mut()
                    .ok()
                    .and_then(|mut g| g.take_waker())
                {
                    w.wake();
                }
            }
            Ok(ReadOutcome::Eof) => self.read_eof(),
            Ok(ReadOutcome::Error(e)) => {
                self.fatal_error(e, "Fatal read error on socket transport")
            }
            Err(payload) => {
                self.protocol_panicked(payload);
                return;
            }
        }
        if !self.flow.in_sync() {
            self.deliver_flow();
        }
    }

    fn read_eof(&self) {
        self.read_eof.set(true);
        let keep_open = self.call(|p| p.eof_received());
        if self.conn_lost.get() != 0 {
            return;
        }
        if keep_open == Some(true) {
            // Half-close: stop reading, keep writing.
            self.remove_reader();
        } else {
            self.close();
        }
    }

    // ---- writing ----------------------------------------------------------------------

    fn add_writer(&self) {
        let cb = {
            let mut w = self.writer.borrow_mut();
            if w.is_none() {
                let Some(t) = self.this.upgrade() else { return };
                let cb: Rc<IoCallback> = Rc::new(IoCallback {
                    active: Cell::new(true),
                    f: move || t.write_ready(),
                });
                *w = Some(cb);
            }
            w.clone().expect("set above")
        };
        if let Err(e) = self
            .lp
            .inner
            .selector
            .set_callback(self.fd, WRITE, Some(cb))
        {
            self.fatal_error(e, "cannot watch the socket for writing");
        }
    }

    fn remove_writer(&self) {
        self.lp
            .inner
            .selector
            .set_callback(self.fd, WRITE, None)
            .ok();
    }

    fn write_ready(&self) {
        if self.conn_lost.get() != 0 {
            return;
        }
        let fd = self.fd;
        let r = self
            .write_buf
            .borrow_mut()
            .flush(|iov| sys::sendmsg(fd, iov));
        match r {
            Ok(_) => {}
            Err(e) if sys::is_would_block(&e) => return,
            Err(e) => {
                self.write_buf.borrow_mut().clear();
                self.remove_writer();
                self.fatal_error(e, "Fatal write error on socket transport");
                return;
            }
        }
        let size = self.write_buf.borrow().len();
        if self.flow.check_resume(size) {
            self.deliver_flow(); // may write more (asyncio: "May append to buffer")
        }
        if self.write_buf.borrow().is_empty() && self.conn_lost.get() == 0 {
            self.remove_writer();
            if self.closing.get() {
                self.call_connection_lost(None);
            } else if self.eof.get() {
                self.shutdown_write();
            }
        }
    }

    fn shutdown_write(&self) {
        if let Some(s) = self.sock.borrow().as_ref() {
            // A peer that is already gone makes this fail: the read side will tell.
            s.shutdown(std::net::Shutdown::Write).ok();
        }
    }

    // ---- closing ----------------------------------------------------------------------

    fn fatal_error(&self, err: io::Error, message: &str) {
        // Peer resets and broken pipes are part of life: asyncio logs them only in debug.
        let quiet = matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        );
        if !quiet || self.lp.get_debug() {
            log::debug!("{message}: {err}");
        }
        self.force_close(Some(err));
    }

    fn force_close(&self, exc: Option<io::Error>) {
        if self.conn_lost.get() != 0 {
            return;
        }
        if !self.write_buf.borrow().is_empty() {
            self.write_buf.borrow_mut().clear();
            self.remove_writer();
        }
        if !self.closing.replace(true) {
            self.remove_reader();
        }
        self.conn_lost.set(self.conn_lost.get() + 1);
        self.schedule_connection_lost(exc);
    }

    fn schedule_connection_lost(&self, exc: Option<io::Error>) {
        let Some(t) = self.this.upgrade() else { return };
        if self.lp.is_closed() {
            t.call_connection_lost(exc);
        } else {
            self.lp.call_soon(move || t.call_connection_lost(exc));
        }
    }

    /// Delivers `connection_lost` (once), closes the socket and lets go of the protocol.
    fn call_connection_lost(&self, exc: Option<io::Error>) {
        if self.lost.replace(true) {
            return;
        }
        if self.connected.get() {
            self.call(|p| p.connection_lost(exc));
        }
        self.teardown();
    }

    /// Deregisters, closes the fd and drops the protocol and callbacks (breaking the cycles).
    fn teardown(&self) {
        self.closing.set(true);
        // From now on writes are dropped: the fd is closed and its number may be reused.
        if self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
        }
        self.remove_reader();
        self.remove_writer();
        if let Some(cb) = self.reader.borrow_mut().take() {
            cb.active.set(false);
        }
        if let Some(cb) = self.writer.borrow_mut().take() {
            cb.active.set(false);
        }
        drop(self.sock.borrow_mut().take());
        drop(self.protocol.borrow_mut().take());
        self.write_buf.borrow_mut().clear();
        let hook = self.on_lost.borrow_mut().take();
        if let Some(f) = hook {
            f();
        }
        self.wake_drainers();
    }
}

impl TransportImpl for SocketTransport {
    #[inline]
    fn write(&self, data: &[u8]) {
        assert!(!self.eof.get(), "Transport::write() after write_eof()");
        if data.is_empty() {
            return;
        }
        let lost = self.conn_lost.get();
        if lost != 0 {
            if lost == CONNLOST_WRITES_LOG_THRESHOLD {
                log::warn!(
                    "socket.send() raised exception: writes after the connection was lost are dropped"
                );
            }
            self.conn_lost.set(lost + 1);
            return;
        }
        let mut data = data;
        let mut wb = self.write_buf.borrow_mut();
        if wb.is_empty() {
            // Optimistic: send now; buffer only what the socket did not take.
            match sys::send(self.fd, data) {
                Ok(n) => {
                    data = &data[n..];
                    if data.is_empty() {
                        return;
                    }
                }
                Err(e) if sys::is_would_block(&e) => {}
                Err(e) => {
                    drop(wb);
                    self.fatal_error(e, "Fatal write error on socket transport");
                    return;
                }
            }
            wb.push(data);
            let size = wb.len();
            drop(wb);
            self.add_writer();
            if self.flow.check_pause(size) {
                self.deliver_flow();
            }
            return;
        }
        wb.push(data);
        let size = wb.len();
        drop(wb);
        if self.flow.check_pause(size) {
            self.deliver_flow();
        }
    }

    fn write_eof(&self) {
        if self.closing.get() || self.eof.get() {
            return;
        }
        self.eof.set(true);
        if self.write_buf.borrow().is_empty() {
            self.shutdown_write();
        }
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn close(&self) {
        if self.closing.replace(true) {
            return;
        }
        self.remove_reader();
        if self.write_buf.borrow().is_empty() {
            self.conn_lost.set(self.conn_lost.get() + 1);
            self.remove_writer();
            self.schedule_connection_lost(None);
        }
    }

    fn abort(&self) {
        self.force_close(None);
    }

    fn is_closing(&self) -> bool {
        self.closing.get()
    }

    fn pause_reading(&self) {
        if self.closing.get() || self.paused.replace(true) {
            return;
        }
        if self.connected.get() {
            self.remove_reader();
        }
    }

    fn resume_reading(&self) {
        if self.closing.get() || !self.paused.replace(false) {
            return;
        }
        if self.connected.get() {
            self.add_reader();
        }
    }

    fn is_reading(&self) -> bool {
        !self.paused.get() && !self.closing.get()
    }

    fn get_write_buffer_size(&self) -> usize {
        self.write_buf.borrow().len()
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.flow.limits()
    }

    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> io::Result<()> {
        self.flow.set_limits(high, low)?;
        let size = self.write_buf.borrow().len();
        if self.flow.check_pause(size) || self.flow.check_resume(size) {
            self.deliver_flow();
        }
        Ok(())
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let sock = self.sock.borrow();
        match name {
            "peername" => {
                let mut cached = self.peername.borrow_mut();
                if cached.is_none() {
                    *cached = sock.as_ref()?.peer_addr().ok();
                }
                cached.clone().map(ExtraInfo::Address)
            }
            "sockname" => sock.as_ref()?.local_addr().ok().map(ExtraInfo::Address),
            "socket" => sock.as_ref().map(|s| ExtraInfo::Fd(s.as_raw_fd())),
            _ => None,
        }
    }

    fn set_protocol(&self, p: ProtoRc) {
        *self.protocol.borrow_mut() = Some(p);
    }

    fn get_protocol(&self) -> Option<ProtoRc> {
        self.protocol.borrow().clone()
    }

    fn is_writing_paused(&self) -> bool {
        self.flow.is_paused()
    }

    fn try_read_into(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        if self.conn_lost.get() != 0
            || self.closing.get()
            || self.paused.get()
            || self.read_eof.get()
            || !self.connected.get()
        {
            return None;
        }
        match sys::recv(self.fd, buf) {
            Ok(0) => {
                // As `read_ready` would: the protocol hears `eof_received`.
                self.read_eof();
                Some(Ok(0))
            }
            Ok(n) => Some(Ok(n)),
            Err(e) if sys::is_would_block(&e) => Some(Err(e)),
            Err(e) => {
                let copy = match e.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(e.kind(), e.to_string()),
                };
                self.fatal_error(e, "Fatal read error on socket transport");
                Some(Err(copy))
            }
        }
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.lost.get() || self.conn_lost.get() != 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "Connection lost",
            )));
        }
        if !self.flow.is_paused() {
            return Poll::Ready(Ok(()));
        }
        let mut ws = self.drain_wakers.borrow_mut();
        if !ws.iter().any(|w| w.will_wake(cx.waker())) {
            ws.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for SocketTransport {
    fn drop(&mut self) {
        if !self.lost.get() && self.lp.get_debug() {
            log::warn!("unclosed transport for fd {} dropped", self.fd);
        }
    }
}
