//! The transport core: what every transport does the same way, written once (uvloop's
//! `UVBaseTransport`, asyncio's `_SelectorTransport` and `_FlowControlMixin`).
//!
//! - the protocol cell and the calls into it, with a panic caught, reported and the
//!   connection aborted;
//! - the closing state machine ([`Life`]): `connection_lost` exactly once, then teardown;
//! - write flow control: `pause_writing` / `resume_writing` delivered synchronously, or right
//!   after the protocol's running callback returns (before the loop runs anything else);
//! - `Transport::drain` wakers, the `on_lost` hook, writes after the connection was lost;
//! - reader/writer registration with the selector ([`IoWatch`]).
//!
//! A transport embeds a [`Core`] and implements [`Host`]: how to fail and how to let go of
//! its OS side. No `RefCell` of the core is borrowed while the protocol, a hook, a waker or
//! a protocol's `Drop` runs.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use super::flow::Flow;
use super::proto::{ProtoCell, ProtoObj, call_protocol, report_panic_of};
use crate::event_loop::{EventLoop, NO_KEY, Resource, warn_or_stderr};
use crate::selector::{Direction, IoCallback};

/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const CONNLOST_WRITES_LOG_THRESHOLD: u32 = 5;

/// Where a transport is in its life: asyncio's `_closing` and `_conn_lost`, as one state.
///
/// `Open → Closing → Lost → Closed`; `Open → Lost` (abort, fatal error); `Closing → Closed`
/// (the write buffer drained after `close()`); never back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    /// Reading and writing.
    Open,
    /// `close()` was called: no more reading; what is buffered is still sent.
    Closing,
    /// The connection is lost (closed, aborted, failed): `connection_lost` is scheduled and
    /// writes are dropped.
    Lost,
    /// `connection_lost` ran; the OS side and the protocol were let go of.
    Closed,
}

/// What the core calls on a protocol, whatever kind of transport holds it: a stream
/// protocol (`dyn ProtoObj`) or a datagram protocol.
pub(crate) trait CoreProto {
    /// The transport handle `connection_made` hands the protocol.
    type Handle;
    fn connection_made(&mut self, t: &Self::Handle);
    fn connection_lost(&mut self, exc: Option<io::Error>);
    fn pause_writing(&mut self);
    fn resume_writing(&mut self);
    /// A waker the last call left, to be woken once the protocol's cell is released (the
    /// stream protocol's reader or drain waiters); `None` for a user's protocol.
    fn take_waker(&mut self) -> Option<std::task::Waker> {
        None
    }
    /// The protocol's type name, for the exception context of its panic.
    fn type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

impl CoreProto for dyn ProtoObj {
    #[inline]
    fn take_waker(&mut self) -> Option<std::task::Waker> {
        ProtoObj::take_waker(self)
    }
    fn type_name(&self) -> &'static str {
        ProtoObj::type_name(self)
    }
    type Handle = super::Transport;
    #[inline]
    fn connection_made(&mut self, t: &super::Transport) {
        ProtoObj::connection_made(self, t);
    }
    #[inline]
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        ProtoObj::connection_lost(self, exc);
    }
    #[inline]
    fn pause_writing(&mut self) {
        ProtoObj::pause_writing(self);
    }
    #[inline]
    fn resume_writing(&mut self) {
        ProtoObj::resume_writing(self);
    }
}

/// A protocol in its cell, as the core of `H` holds it.
pub(crate) type HostProto<H> = Rc<ProtoCell<<H as Host>::Proto>>;

/// What the core needs from the transport that embeds it.
pub(crate) trait Host: Sized + 'static {
    /// The kind of protocol the transport drives.
    type Proto: ?Sized + CoreProto + 'static;
    /// The embedded core.
    fn core(&self) -> &Core<Self>;
    /// Fails the connection at once (asyncio's `_force_close`): a protocol callback panicked.
    fn force_close(&self, exc: Option<io::Error>);
    /// Lets go of the OS side (deregister, close): once, after the protocol heard
    /// `connection_lost` (or the loop closed), before the protocol is dropped.
    fn release(&self);
    /// What the transport is, for warnings and errors ("TCP transport 127.0.0.1:80 <->
    /// 127.0.0.1:5000").
    fn describe(&self) -> String {
        "transport".to_owned()
    }
    /// The bytes waiting to be sent (`get_write_buffer_size`), for `EventLoop::dump`.
    fn buffered_bytes(&self) -> Option<usize> {
        None
    }
}

/// A transport still open when its loop closes is closed by the loop (see
/// `event_loop/resources.rs`).
impl<H: Host> Resource for H {
    fn describe(&self) -> String {
        Host::describe(self)
    }

    fn close_with_loop(&self) {
        Core::close_with_loop(self);
    }

    fn dump_state(&self) -> String {
        let core = self.core();
        let life = match core.life.get() {
            Life::Open => "open",
            Life::Closing => "closing",
            Life::Lost => "lost",
            Life::Closed => "closed",
        };
        let (low, high) = core.flow.limits();
        let paused = if core.flow.is_paused() {
            ", writing paused"
        } else {
            ""
        };
        let protocol = core
            .protocol()
            .and_then(|p| p.cell.try_borrow().ok().map(|g| g.type_name()))
            .unwrap_or("-");
        let buffered = self
            .buffered_bytes()
            .map(|n| format!(", {n} bytes buffered"))
            .unwrap_or_default();
        format!("{life}{buffered}, write limits {low}..{high}{paused}, protocol {protocol}")
    }
}

/// Lifecycle, protocol calls and flow delivery of one transport (see the module docs).
pub(crate) struct Core<H: Host> {
    pub(crate) lp: EventLoop,
    this: Weak<H>,
    protocol: RefCell<Option<HostProto<H>>>,
    /// Write-side water marks and pause state.
    pub(crate) flow: Flow,
    life: Cell<Life>,
    /// `connection_made` was delivered.
    connected: Cell<bool>,
    /// Writes dropped because the connection was lost (asyncio's `_conn_lost` count).
    dropped_writes: Cell<u32>,
    /// A flow-control delivery waits in a `call_soon`.
    flow_scheduled: Cell<bool>,
    /// Called once when the connection is lost (a server's bookkeeping).
    on_lost: Cell<Option<Box<dyn FnOnce()>>>,
    /// Tasks waiting in `Transport::drain`.
    drain_wakers: RefCell<Vec<Waker>>,
    /// The key of this transport in the loop's resources (`NO_KEY` once let go of).
    res_key: Cell<usize>,
    /// The fd claimed with [`claim_fd`](Core::claim_fd), or -1.
    fd: Cell<RawFd>,
}

impl<H: Host> Core<H> {
    /// A core for the transport `this`, owning `protocol`.
    pub(crate) fn new(lp: &EventLoop, this: &Weak<H>, protocol: Option<HostProto<H>>) -> Core<H> {
        let res: Weak<dyn Resource> = this.clone();
        let res_key = lp.inner.resources.insert(res);
        Core {
            lp: lp.clone(),
            this: this.clone(),
            protocol: RefCell::new(protocol),
            flow: Flow::default(),
            life: Cell::new(Life::Open),
            connected: Cell::new(false),
            dropped_writes: Cell::new(0),
            flow_scheduled: Cell::new(false),
            on_lost: Cell::new(None),
            drain_wakers: RefCell::new(Vec::new()),
            res_key: Cell::new(res_key),
            fd: Cell::new(-1),
        }
    }

    /// Records that this transport owns `fd`: `add_reader` & co. refuse it until the
    /// transport is closed (asyncio's `_ensure_fd_no_transport`).
    pub(crate) fn claim_fd(&self, fd: RawFd) {
        self.fd.set(fd);
        self.lp.inner.resources.claim_fd(fd, self.res_key.get());
    }

    /// Leaves the loop's resources.
    fn unregister(&self) {
        let key = self.res_key.replace(NO_KEY);
        let fd = self.fd.replace(-1);
        let fds: &[RawFd] = if fd >= 0 { &[fd] } else { &[] };
        self.lp.inner.resources.remove(key, fds);
    }

    /// The transport, if it is still alive.
    pub(crate) fn this(&self) -> Option<Rc<H>> {
        self.this.upgrade()
    }

    // ---- state ------------------------------------------------------------------------

    #[inline]
    pub(crate) fn life(&self) -> Life {
        self.life.get()
    }

    /// `close()` was called or the connection is lost (asyncio's `is_closing`).
    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.life.get() != Life::Open
    }

    /// The connection is lost: writes are dropped, the fd must not be used.
    #[inline]
    pub(crate) fn is_lost(&self) -> bool {
        matches!(self.life.get(), Life::Lost | Life::Closed)
    }

    /// `Open → Closing`; false if the transport was not open.
    pub(crate) fn begin_closing(&self) -> bool {
        if self.life.get() != Life::Open {
            return false;
        }
        self.life.set(Life::Closing);
        true
    }

    #[cfg(feature = "tls")] // only the TLS transport needs it
    /// `Open | Closing → Lost` with no `connection_lost` scheduled: for a transport whose
    /// loss is reported by the layer under it (TLS, by its raw transport). False if it was
    /// lost already.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))] // only TLS has a layer under it
    pub(crate) fn set_lost(&self) -> bool {
        if self.is_lost() {
            return false;
        }
        self.life.set(Life::Lost);
        true
    }

    #[cfg(feature = "tls")] // only the TLS transport needs it
    /// The protocol counts as connected without a `connection_made` from this transport
    /// (it had one from the transport it was on before: `start_tls`).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))] // only `start_tls` hands over
    pub(crate) fn set_connected(&self) {
        self.connected.set(true);
    }

    /// Whether `connection_made` was delivered.
    #[inline]
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.get()
    }

    pub(crate) fn set_on_lost(&self, f: impl FnOnce() + 'static) {
        self.on_lost.set(Some(Box::new(f)));
    }

    // ---- the protocol -----------------------------------------------------------------

    /// The current protocol.
    #[inline]
    pub(crate) fn protocol(&self) -> Option<HostProto<H>> {
        self.protocol.borrow().clone()
    }

    /// Hands the connection to `p`; the old protocol is dropped after the cell is released.
    pub(crate) fn set_protocol(&self, p: HostProto<H>) {
        let old = self.protocol.replace(Some(p));
        drop(old);
    }

    /// Delivers `connection_made` (once).
    /// asyncio's start of a transport, scheduled with `call_soon`: the protocol's
    /// `connection_made(handle)`, then `start_reading` unless the transport began closing
    /// meanwhile, then `waiter` (if any) completes. The transport claims `fd` at once, so that
    /// `add_reader` & co. refuse it while the transport owns it.
    pub(crate) fn start(
        &self,
        fd: RawFd,
        handle: <H::Proto as CoreProto>::Handle,
        start_reading: impl FnOnce() + 'static,
        waiter: Option<crate::LoopFuture<()>>,
    ) where
        <H::Proto as CoreProto>::Handle: 'static,
    {
        self.claim_fd(fd);
        let Some(t) = self.this() else { return };
        self.lp.call_soon(move || {
            let core = t.core();
            core.connection_made(&handle);
            if !core.is_closing() {
                start_reading();
            }
            if let Some(w) = waiter {
                if !w.done() {
                    w.set_result(());
                }
            }
        });
    }

    pub(crate) fn connection_made(&self, t: &<H::Proto as CoreProto>::Handle) {
        self.connected.set(true);
        self.call(|p| p.connection_made(t));
    }

    /// Calls the protocol, catching a panic (reported, and the connection aborted); then
    /// delivers a flow-control change that fell due meanwhile. `None` if there is no
    /// protocol, it is busy in another of its callbacks, or it panicked.
    #[inline]
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut H::Proto) -> R) -> Option<R> {
        let p = self.protocol()?;
        match call_protocol(&p, f) {
            Ok(v) => {
                drop(p);
                if !self.flow.in_sync() {
                    self.deliver_flow();
                }
                v
            }
            Err(payload) => {
                drop(p);
                self.panicked(payload);
                None
            }
        }
    }

    /// A protocol callback panicked: report it and abort the connection.
    pub(crate) fn panicked(&self, payload: Box<dyn Any + Send>) {
        // The context names the transport and the protocol (asyncio's `context['transport']`
        // and `['protocol']`); the protocol's cell is free again once its call unwound.
        let protocol = self
            .protocol()
            .and_then(|p| p.cell.try_borrow().ok().map(|g| g.type_name()));
        let transport = self.this().map(|h| Host::describe(&*h));
        report_panic_of(&self.lp, payload, transport, protocol);
        if let Some(h) = self.this() {
            h.force_close(Some(io::Error::other("protocol callback panicked")));
        }
    }

    // ---- flow control -----------------------------------------------------------------

    /// The write buffer grew to `size`: pause the protocol if it went over the high mark.
    #[inline]
    pub(crate) fn buffer_grew(&self, size: usize) {
        if self.flow.check_pause(size) {
            self.deliver_flow();
        }
    }

    /// The write buffer shrank to `size`: resume the protocol if it drained to the low mark.
    /// The protocol may write more from `resume_writing`.
    #[inline]
    pub(crate) fn buffer_shrank(&self, size: usize) {
        if self.flow.check_resume(size) {
            self.deliver_flow();
        }
    }

    /// Tells the protocol `pause_writing` / `resume_writing` as decided; if it is busy in a
    /// callback, right after that callback ([`call`](Core::call) delivers), or from the loop.
    pub(crate) fn deliver_flow(&self) {
        while let Some(pause) = self.flow.next_delivery() {
            if !pause {
                // `Transport::drain` waiters hear of a resume whether or not the protocol can.
                self.wake_drainers();
            }
            let Some(p) = self.protocol() else {
                return;
            };
            let r = call_protocol(&p, |g| {
                if pause {
                    g.pause_writing();
                } else {
                    g.resume_writing();
                }
            });
            drop(p);
            match r {
                Ok(Some(())) => {}
                Ok(None) => {
                    // Busy in a callback: after it (`call` delivers), or from the loop.
                    self.flow.undeliver();
                    self.schedule_flow();
                    return;
                }
                Err(payload) => {
                    self.panicked(payload);
                    return;
                }
            }
        }
    }

    /// Delivers a due flow-control change to `p`, the protocol the caller holds already: a
    /// transport that calls its protocol several times under one borrow (a batch of
    /// datagrams) tells it between two calls, as it would right after a callback.
    #[inline]
    pub(crate) fn deliver_flow_held(&self, p: &mut H::Proto) {
        while let Some(pause) = self.flow.next_delivery() {
            if pause {
                p.pause_writing();
            } else {
                self.wake_drainers();
                p.resume_writing();
            }
        }
    }

    fn schedule_flow(&self) {
        if self.flow_scheduled.replace(true) || self.lp.is_closed() {
            return;
        }
        if let Some(t) = self.this() {
            self.lp.call_soon(move || {
                let core = t.core();
                core.flow_scheduled.set(false);
                core.deliver_flow();
            });
        }
    }

    /// `Transport::drain`: ready when writing is not paused, an error once the connection
    /// is lost.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_lost() {
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

    fn wake_drainers(&self) {
        let ws = std::mem::take(&mut *self.drain_wakers.borrow_mut());
        for w in ws {
            w.wake();
        }
    }

    // ---- closing ----------------------------------------------------------------------

    /// A write after the connection was lost: dropped, and logged once (asyncio logs from
    /// the fifth on).
    #[cold]
    #[inline(never)]
    pub(crate) fn write_dropped(&self, what: &str) {
        let n = self.dropped_writes.get() + 1;
        self.dropped_writes.set(n);
        if n == CONNLOST_WRITES_LOG_THRESHOLD {
            warn_or_stderr!("{what}: writes after the connection was lost are dropped");
        }
    }

    /// `Open | Closing → Lost`, and `connection_lost(exc)` scheduled with `call_soon` (at
    /// once if the loop is closed). False if the connection was lost already.
    pub(crate) fn lose(&self, exc: Option<io::Error>) -> bool {
        if self.is_lost() {
            return false;
        }
        self.life.set(Life::Lost);
        let Some(t) = self.this() else { return true };
        if self.lp.is_closed() {
            Core::finish(&*t, exc);
        } else {
            self.lp.call_soon(move || Core::finish(&*t, exc));
        }
        true
    }

    /// `→ Closed`: delivers `connection_lost` (once, if `connection_made` was), lets go of
    /// the OS side, then of the protocol, runs the `on_lost` hook and wakes drainers.
    pub(crate) fn finish(host: &H, exc: Option<io::Error>) {
        let core = host.core();
        if core.life.replace(Life::Closed) == Life::Closed {
            return;
        }
        if core.connected.get() {
            core.call(|p| p.connection_lost(exc));
        }
        host.release();
        core.unregister();
        // The protocol's `Drop` runs with the cell released: it may use the transport.
        let p = core.protocol.take();
        drop(p);
        if let Some(f) = core.on_lost.take() {
            f();
        }
        core.wake_drainers();
    }

    /// `→ Closed` because the loop closes with the transport still open: lets go of the OS
    /// side and drops the protocol, which hears nothing (asyncio: a transport collected
    /// unclosed closes its socket, and its protocol gets no `connection_lost`). This breaks
    /// the cycles (transport → reader callback → transport, protocol → transport) that would
    /// keep both alive for ever.
    pub(crate) fn close_with_loop(host: &H) {
        let core = host.core();
        if core.life.replace(Life::Closed) == Life::Closed {
            return;
        }
        // The loop took every resource out of its registry already: the key is stale (and
        // may be a new resource's by now), so it is forgotten, not removed.
        core.res_key.set(NO_KEY);
        core.fd.set(-1);
        host.release();
        let p = core.protocol.take();
        drop(p);
        if let Some(f) = core.on_lost.take() {
            f();
        }
        core.wake_drainers();
    }
}

/// A reader or writer registration of one fd: the selector's callback, made once and
/// re-armed cheaply.
pub(crate) struct IoWatch {
    dir: Direction,
    cb: RefCell<Option<Rc<IoCallback>>>,
}

impl IoWatch {
    /// A watch for the reader or the writer side.
    pub(crate) fn new(dir: Direction) -> IoWatch {
        IoWatch {
            dir,
            cb: RefCell::new(None),
        }
    }

    /// Registers `fd`, making the callback with `make` the first time.
    pub(crate) fn add(
        &self,
        lp: &EventLoop,
        fd: RawFd,
        make: impl FnOnce() -> Option<Rc<IoCallback>>,
    ) -> io::Result<()> {
        let cb = {
            let mut c = self.cb.borrow_mut();
            if c.is_none() {
                *c = make();
            }
            match c.clone() {
                Some(cb) => cb,
                None => return Ok(()),
            }
        };
        lp.inner.selector.set_callback(fd, self.dir, Some(cb))?;
        Ok(())
    }

    /// Deregisters `fd` (a no-op if it was not registered).
    pub(crate) fn remove(&self, lp: &EventLoop, fd: RawFd) {
        lp.inner.selector.set_callback(fd, self.dir, None).ok();
    }

    /// Deregisters and disarms the callback for good (it holds the transport: this breaks
    /// the cycle).
    pub(crate) fn close(&self, lp: &EventLoop, fd: RawFd) {
        self.remove(lp, fd);
        let cb = self.cb.borrow_mut().take();
        if let Some(cb) = cb {
            cb.active.set(false);
        }
    }
}

impl std::fmt::Debug for IoWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoWatch").field("dir", &self.dir).finish()
    }
}

/// For a stream the selector does not watch (`tulip::testing`'s memory streams, through
/// `RawIo::add_watch`): the callback is kept here as for an fd, but the stream runs it.
impl IoWatch {
    /// The reader or writer side.
    pub(crate) fn direction(&self) -> Direction {
        self.dir
    }

    /// The callback, made with `make` the first time.
    pub(crate) fn callback(
        &self,
        make: impl FnOnce() -> Option<Rc<IoCallback>>,
    ) -> Option<Rc<IoCallback>> {
        let mut c = self.cb.borrow_mut();
        if c.is_none() {
            *c = make();
        }
        c.clone()
    }

    /// Disarms the callback for good, with no selector to tell (see [`close`](IoWatch::close)).
    pub(crate) fn disarm(&self) {
        let cb = self.cb.borrow_mut().take();
        if let Some(cb) = cb {
            cb.active.set(false);
        }
    }
}
