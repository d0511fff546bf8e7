//! The datagram transport (asyncio's `_SelectorDatagramTransport`) on the transport core:
//! UDP and Unix datagram sockets.
//!
//! Receiving: one readiness event takes up to [`BATCH`](crate::sys::BATCH) datagrams with one
//! system call (`recvmmsg` on Linux) into slots of the loop's shared read buffer, and hands
//! each to `datagram_received` — no allocation per datagram; while batches come back full (a
//! flood), a few more are taken before the loop polls again. Sending: `sendto` at once when
//! nothing is queued; on `WouldBlock` the datagram is queued whole and the queue is flushed
//! (`sendmmsg` on Linux) when the socket is writable. An error from one datagram goes to
//! `error_received` and the endpoint stays open.
//!
//! # Invariant
//! `fd` is the descriptor of `sock` while `sock` is `Some`; `sock` is dropped (closing the
//! fd) only in [`Host::release`], after the reader and writer were removed from the selector.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use socket2::{Domain, SockAddr, Socket};

use super::ExtraInfo;
use super::core::{Core, CoreProto, Host, IoWatch, Life};
use super::proto::ProtoCell;
use super::stream::READ_BUFFER_SIZE;
use super::trsock::{FdSlot, TransportFd};
use crate::event_loop::EventLoop;
use crate::protocols::DatagramProtocol;
use crate::selector::{Direction, IoCallback};
use crate::sys::{self, BATCH, RecvBatch};

/// asyncio's per-datagram overhead in the write-buffer size (`_header_size`).
const HEADER_SIZE: usize = 8;
/// A receive slot for an IP datagram: the largest UDP payload fits.
const IP_SLOT: usize = 64 * 1024;
/// Batches one readiness event takes at most (while they come back full).
const MAX_BATCHES: usize = 4;

/// The transport's view of a [`DatagramProtocol`].
pub(crate) trait DgramObj {
    fn connection_made(&mut self, t: &DatagramTransport);
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr);
    fn error_received(&mut self, exc: io::Error);
    fn connection_lost(&mut self, exc: Option<io::Error>);
    fn pause_writing(&mut self);
    fn resume_writing(&mut self);
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<P: DatagramProtocol> DgramObj for P {
    fn connection_made(&mut self, t: &DatagramTransport) {
        DatagramProtocol::connection_made(self, t);
    }
    #[inline]
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        DatagramProtocol::datagram_received(self, data, addr);
    }
    fn error_received(&mut self, exc: io::Error) {
        DatagramProtocol::error_received(self, exc);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        DatagramProtocol::connection_lost(self, exc);
    }
    fn pause_writing(&mut self) {
        DatagramProtocol::pause_writing(self);
    }
    fn resume_writing(&mut self) {
        DatagramProtocol::resume_writing(self);
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

impl CoreProto for dyn DgramObj {
    type Handle = DatagramTransport;
    fn connection_made(&mut self, t: &DatagramTransport) {
        DgramObj::connection_made(self, t);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        DgramObj::connection_lost(self, exc);
    }
    fn pause_writing(&mut self) {
        DgramObj::pause_writing(self);
    }
    fn resume_writing(&mut self) {
        DgramObj::resume_writing(self);
    }
}

/// A datagram protocol as its transport holds it.
pub(crate) type DgramRc = Rc<ProtoCell<dyn DgramObj>>;

/// Puts a user's datagram protocol in its cell.
pub(crate) fn into_obj<P: DatagramProtocol>(p: P) -> DgramRc {
    Rc::new(ProtoCell {
        type_id: TypeId::of::<P>(),
        cell: RefCell::new(p),
    })
}

/// One queued datagram.
struct Queued {
    data: Box<[u8]>,
    /// `None` on a connected endpoint.
    addr: Option<SockAddr>,
}

/// A datagram endpoint: the core, the socket and the send queue.
pub(crate) struct Endpoint {
    core: Core<Self>,
    fd: RawFd,
    sock: Rc<FdSlot<Socket>>,
    /// The connected peer (asyncio's `_address`).
    peer: Option<SockAddr>,
    /// Bytes of a receive slot in the shared buffer.
    slot: usize,
    /// UDP GRO is on: a received datagram may be several, of one segment size each.
    gro: bool,
    /// UDP GSO may be tried (`sendto_segments`); off after the path refused it.
    gso: Cell<bool>,
    queue: RefCell<VecDeque<Queued>>,
    /// The queue's size, with [`HEADER_SIZE`] per datagram.
    queued: Cell<usize>,
    batch: RefCell<Box<RecvBatch>>,
    reader: IoWatch,
    writer: IoWatch,
}

impl Endpoint {
    /// Runs `protocol` on a bound and/or connected, non-blocking datagram socket:
    /// `connection_made` and the start of reading are scheduled with `call_soon`, then
    /// `waiter` is completed, as asyncio does.
    pub(crate) fn start(
        lp: &EventLoop,
        sock: Socket,
        protocol: DgramRc,
        waiter: Option<crate::LoopFuture<()>>,
    ) -> Rc<Endpoint> {
        sys::prepare_socket(&sock).ok();
        let unix = sock.local_addr().is_ok_and(|a| a.domain() == Domain::UNIX);
        let slot = if unix { READ_BUFFER_SIZE } else { IP_SLOT };
        if let Ok(mut shared) = lp.inner.read_buf.try_borrow_mut() {
            let want = (BATCH * IP_SLOT).max(READ_BUFFER_SIZE);
            if shared.len() < want {
                shared.resize(want, 0);
            }
        }
        let peer = sock.peer_addr().ok();
        let gro = !unix && sys::gro_enabled(sock.as_raw_fd());
        let t = Rc::new_cyclic(|this| Endpoint {
            core: Core::new(lp, this, Some(protocol)),
            fd: sock.as_raw_fd(),
            sock: FdSlot::new(sock),
            peer,
            slot,
            gro,
            gso: Cell::new(true),
            queue: RefCell::new(VecDeque::new()),
            queued: Cell::new(0),
            batch: RefCell::new({
                let mut b = RecvBatch::new();
                b.set_gro(gro);
                b
            }),
            reader: IoWatch::new(Direction::Read),
            writer: IoWatch::new(Direction::Write),
        });
        let t2 = t.clone();
        t.core
            .start(t.fd, t.handle(), move || t2.add_reader(), waiter);
        t
    }

    pub(crate) fn handle(self: &Rc<Self>) -> DatagramTransport {
        DatagramTransport {
            inner: self.clone(),
        }
    }

    // ---- receiving --------------------------------------------------------------------

    fn add_reader(&self) {
        let make = || {
            let t = self.core.this()?;
            let cb: Rc<IoCallback> = Rc::new(IoCallback {
                active: Cell::new(true),
                f: move || t.read_ready(),
            });
            Some(cb)
        };
        if let Err(e) = self.reader.add(&self.core.lp, self.fd, make) {
            self.force_close(Some(e));
        }
    }

    fn read_ready(&self) {
        if self.core.is_closing() {
            return;
        }
        let Some(p) = self.core.protocol() else {
            return;
        };
        let Ok(mut g) = p.cell.try_borrow_mut() else {
            return;
        };
        let r = match (
            self.core.lp.inner.read_buf.try_borrow_mut(),
            self.batch.try_borrow_mut(),
        ) {
            (Ok(mut shared), Ok(mut batch)) => catch_unwind(AssertUnwindSafe(|| {
                self.receive(&mut *g, &mut shared, &mut batch)
            })),
            // Only if a protocol re-entered the loop's read path: buffers of our own.
            _ => self.receive_own_buffers(&mut *g),
        };
        drop(g);
        drop(p);
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) if sys::is_would_block(&e) => {}
            Ok(Err(e)) => self.error_received(e),
            Err(payload) => {
                self.core.panicked(payload);
                return;
            }
        }
        if !self.core.flow.in_sync() {
            self.core.deliver_flow();
        }
    }

    /// One batch into `buf`, each datagram handed to the protocol; if it came back full (a
    /// flood: more are likely waiting, where a short batch means the queue is empty), up to
    /// [`MAX_BATCHES`] in all, so that other sockets get their turn.
    #[inline]
    fn receive(
        &self,
        g: &mut (dyn DgramObj + 'static),
        buf: &mut [u8],
        batch: &mut RecvBatch,
    ) -> io::Result<()> {
        if self.gro {
            return self.receive_gro(g, buf, batch);
        }
        let n = batch.recv(self.fd, buf, self.slot, BATCH)?;
        if self.deliver(g, buf, batch, n) && n == BATCH {
            self.receive_more(g, buf, batch)?;
        }
        Ok(())
    }

    /// Hands the `n` datagrams of `batch` to the protocol; `false` if it closed the endpoint.
    #[inline(always)]
    fn deliver(
        &self,
        g: &mut (dyn DgramObj + 'static),
        buf: &[u8],
        batch: &RecvBatch,
        n: usize,
    ) -> bool {
        for i in 0..n {
            let addr = batch.addr(i);
            g.datagram_received(&buf[i * self.slot..][..batch.len(i)], &addr);
            if !self.core.flow.in_sync() {
                // It sent past the high-water mark: it hears so before the next datagram.
                self.core.deliver_flow_held(g);
            }
            if self.core.is_closing() {
                return false; // closed from the callback: asyncio would not read the rest
            }
        }
        true
    }

    /// [`receive`](Self::receive) with UDP GRO on: a received datagram may be several that
    /// one sender sent, coalesced by the kernel (each `segment` bytes, the last one possibly
    /// shorter); they are handed over one by one.
    #[inline(never)]
    fn receive_gro(
        &self,
        g: &mut (dyn DgramObj + 'static),
        buf: &mut [u8],
        batch: &mut RecvBatch,
    ) -> io::Result<()> {
        for round in 0..MAX_BATCHES {
            let n = match batch.recv(self.fd, buf, self.slot, BATCH) {
                Ok(n) => n,
                Err(e) if round > 0 && sys::is_would_block(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
            for i in 0..n {
                let addr = batch.addr(i);
                let data = &buf[i * self.slot..][..batch.len(i)];
                let segment = match batch.segment(i) {
                    0 => data.len().max(1),
                    s => s,
                };
                if !self.deliver_segments(g, data, segment, &addr) {
                    return Ok(());
                }
            }
            if n < BATCH {
                break;
            }
        }
        Ok(())
    }

    /// The datagrams of `data`, `segment` bytes each (the last one possibly shorter; an
    /// empty `data` is one empty datagram), handed over as `deliver` does; `false` if the
    /// protocol closed the endpoint.
    fn deliver_segments(
        &self,
        g: &mut (dyn DgramObj + 'static),
        data: &[u8],
        segment: usize,
        addr: &SockAddr,
    ) -> bool {
        if data.is_empty() {
            g.datagram_received(data, addr);
            if !self.core.flow.in_sync() {
                self.core.deliver_flow_held(g);
            }
            return !self.core.is_closing();
        }
        for d in data.chunks(segment) {
            g.datagram_received(d, addr);
            if !self.core.flow.in_sync() {
                self.core.deliver_flow_held(g);
            }
            if self.core.is_closing() {
                return false;
            }
        }
        true
    }

    /// The batches after a full one (see [`receive`](Self::receive)).
    #[inline(never)]
    fn receive_more(
        &self,
        g: &mut (dyn DgramObj + 'static),
        buf: &mut [u8],
        batch: &mut RecvBatch,
    ) -> io::Result<()> {
        for _ in 1..MAX_BATCHES {
            let n = match batch.recv(self.fd, buf, self.slot, BATCH) {
                Ok(n) => n,
                // The queue emptied exactly at a batch's end.
                Err(e) if sys::is_would_block(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
            if !self.deliver(g, buf, batch, n) || n < BATCH {
                break;
            }
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn receive_own_buffers(
        &self,
        g: &mut (dyn DgramObj + 'static),
    ) -> Result<io::Result<()>, Box<dyn Any + Send>> {
        let mut buf = vec![0u8; self.slot];
        let mut batch = RecvBatch::new();
        batch.set_gro(self.gro);
        catch_unwind(AssertUnwindSafe(|| self.receive(g, &mut buf, &mut batch)))
    }

    /// asyncio's `error_received`: at once, or — when the protocol is busy in one of its
    /// callbacks (it called `sendto` from there) — from the loop, right after.
    fn error_received(&self, e: io::Error) {
        let Some(p) = self.core.protocol() else {
            return;
        };
        let busy = p.cell.try_borrow_mut().is_err();
        drop(p);
        if !busy {
            self.core.call(|g| g.error_received(e));
        } else if let Some(t) = self.core.this() {
            self.core.lp.call_soon(move || {
                t.core.call(|g| g.error_received(e));
            });
        }
    }

    // ---- sending ----------------------------------------------------------------------

    fn add_writer(&self) {
        let make = || {
            let t = self.core.this()?;
            let cb: Rc<IoCallback> = Rc::new(IoCallback {
                active: Cell::new(true),
                f: move || t.write_ready(),
            });
            Some(cb)
        };
        if let Err(e) = self.writer.add(&self.core.lp, self.fd, make) {
            self.force_close(Some(e));
        }
    }

    fn sendto(&self, data: &[u8], addr: Option<&SockAddr>) -> io::Result<()> {
        let addr = self.destination(addr)?;
        if self.core.is_lost() {
            self.core.write_dropped("datagram");
            return Ok(());
        }
        if self.queue.borrow().is_empty() {
            // Optimistic: send now; queue only what would block.
            match sys::sendto(self.fd, data, addr) {
                Ok(_) => return Ok(()),
                Err(e) if sys::is_would_block(&e) => {}
                Err(e) => {
                    self.error_received(e);
                    return Ok(());
                }
            }
            self.queue_datagram(data, addr);
            self.add_writer();
        } else {
            self.queue_datagram(data, addr);
        }
        self.core.buffer_grew(self.queued.get());
        Ok(())
    }

    /// Where a datagram goes: `None` for the connected peer, else `addr` (checked against
    /// asyncio's rules for connected and unconnected endpoints).
    #[inline(always)]
    fn destination<'a>(&self, addr: Option<&'a SockAddr>) -> io::Result<Option<&'a SockAddr>> {
        Ok(match (&self.peer, addr) {
            (Some(peer), Some(a)) if !same_addr(peer, a) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "Invalid address: must be None or {}",
                        crate::datagram::show_addr(peer)
                    ),
                ));
            }
            (Some(_), _) => None,
            (None, Some(a)) => Some(a),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an address is required: the endpoint is not connected",
                ));
            }
        })
    }

    /// `data` as datagrams of `segment` bytes each (the last may be shorter): with UDP GSO
    /// (one system call per up to 64 segments) while nothing is queued and the path takes
    /// it, else one [`sendto`](Endpoint::sendto) per segment — the same datagrams in the
    /// same order either way.
    fn sendto_segments(
        &self,
        data: &[u8],
        segment: usize,
        addr: Option<&SockAddr>,
    ) -> io::Result<()> {
        if segment == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the segment size must be non-zero",
            ));
        }
        if data.len() <= segment {
            return self.sendto(data, addr); // one datagram, maybe empty
        }
        let addr = self.destination(addr)?;
        let mut rest = data;
        if let Ok(seg16) = u16::try_from(segment) {
            let per_send = (sys::GSO_MAX_BYTES / segment).min(sys::GSO_MAX_SEGMENTS);
            while rest.len() > segment
                && per_send > 1
                && self.gso.get()
                && !self.core.is_lost()
                && self.queue.borrow().is_empty()
            {
                let n = rest.len().min(per_send * segment);
                match sys::send_gso(self.fd, &rest[..n], seg16, addr) {
                    Ok(_) => rest = &rest[n..],
                    Err(e) if sys::is_would_block(&e) => break, // queued below, one by one
                    Err(e) => match sys::gso_refused(&e) {
                        // The one-by-one sends below report what is wrong with each datagram.
                        Some(for_good) => {
                            if for_good {
                                self.gso.set(false);
                            }
                            break;
                        }
                        None => {
                            self.error_received(e);
                            rest = &rest[n..];
                        }
                    },
                }
            }
        }
        if rest.is_empty() {
            return Ok(());
        }
        for d in rest.chunks(segment) {
            self.sendto(d, addr)?;
        }
        Ok(())
    }

    fn queue_datagram(&self, data: &[u8], addr: Option<&SockAddr>) {
        self.queue.borrow_mut().push_back(Queued {
            data: data.into(),
            addr: addr.cloned(),
        });
        self.queued
            .set(self.queued.get() + data.len() + HEADER_SIZE);
    }

    /// Takes the first `n` datagrams off the queue.
    fn dequeue(&self, n: usize) {
        let mut q = self.queue.borrow_mut();
        let mut size = self.queued.get();
        for d in q.drain(..n) {
            size -= d.data.len() + HEADER_SIZE;
        }
        self.queued.set(size);
    }

    fn write_ready(&self) {
        if self.core.is_lost() {
            return;
        }
        loop {
            let r = {
                let q = self.queue.borrow();
                if q.is_empty() {
                    break;
                }
                sys::send_batch(self.fd, q.iter().map(|d| (&*d.data, d.addr.as_ref())))
            };
            match r {
                Ok(n) => self.dequeue(n),
                Err(e) if sys::is_would_block(&e) => break,
                Err(e) => {
                    // This datagram failed; the endpoint goes on (asyncio's `_sendto_ready`).
                    self.dequeue(1);
                    self.error_received(e);
                    return;
                }
            }
        }
        self.core.buffer_shrank(self.queued.get()); // may queue more
        if self.queue.borrow().is_empty() && !self.core.is_lost() {
            self.writer.remove(&self.core.lp, self.fd);
            if self.core.life() == Life::Closing {
                Core::finish(self, None);
            }
        }
    }

    fn close(&self) {
        if !self.core.begin_closing() {
            return;
        }
        self.reader.remove(&self.core.lp, self.fd);
        if self.queue.borrow().is_empty() {
            self.writer.remove(&self.core.lp, self.fd);
            self.core.lose(None);
        }
    }

    fn extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let sock = self.sock.borrow();
        match name {
            "peername" => self.peer.clone().map(ExtraInfo::Address),
            "sockname" => sock.as_ref()?.local_addr().ok().map(ExtraInfo::Address),
            "socket" => sock
                .as_ref()
                .map(|_| ExtraInfo::Socket(TransportFd::new(&self.sock))),
            _ => None,
        }
    }
}

/// Whether two socket addresses name the same endpoint (IP addresses compared as
/// addresses, not as bytes: the padding of a `sockaddr_in` may differ).
fn same_addr(a: &SockAddr, b: &SockAddr) -> bool {
    match (a.as_socket(), b.as_socket()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b || (a.as_pathname().is_some() && a.as_pathname() == b.as_pathname()),
    }
}

impl Host for Endpoint {
    type Proto = dyn DgramObj;

    fn core(&self) -> &Core<Self> {
        &self.core
    }

    fn buffered_bytes(&self) -> Option<usize> {
        Some(self.queued.get())
    }

    fn force_close(&self, exc: Option<io::Error>) {
        if self.core.is_lost() {
            return;
        }
        let q = std::mem::take(&mut *self.queue.borrow_mut());
        drop(q);
        self.queued.set(0);
        self.writer.remove(&self.core.lp, self.fd);
        self.reader.remove(&self.core.lp, self.fd);
        self.core.lose(exc);
    }

    fn release(&self) {
        let lp = &self.core.lp;
        self.reader.close(lp, self.fd);
        self.writer.close(lp, self.fd);
        self.sock.close();
        let q = std::mem::take(&mut *self.queue.borrow_mut());
        drop(q);
        self.queued.set(0);
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if self.core.life() != Life::Closed && self.core.lp.get_debug() {
            log::warn!("unclosed datagram transport for fd {} dropped", self.fd);
        }
    }
}

/// A datagram endpoint's transport (asyncio's `DatagramTransport`): the handle through which
/// a [`DatagramProtocol`] — or any task — sends and closes.
///
/// A cheap clonable handle (`Rc`). Every method may be called from inside any protocol
/// callback: `close` delivers `connection_lost` later (with `call_soon`), and an
/// `error_received` caused by a `sendto` made from inside a callback is delivered right
/// after that callback.
#[derive(Clone)]
pub struct DatagramTransport {
    inner: Rc<Endpoint>,
}

impl DatagramTransport {
    /// Sends `data` (possibly empty) as one datagram to `addr`, or to the connected peer
    /// when `addr` is `None`: at once if nothing is queued, else (or if the socket's buffer
    /// is full) queued whole and sent when the socket is writable. An error from the system
    /// (`ConnectionRefused`, a datagram too large) goes to the protocol's `error_received`.
    /// After the endpoint is lost, datagrams are dropped.
    ///
    /// # Errors
    /// `InvalidInput` for an address other than the peer's on a connected endpoint, and for
    /// no address on an unconnected one (asyncio's `ValueError` / `TypeError`).
    #[inline]
    pub fn sendto(&self, data: &[u8], addr: Option<&SockAddr>) -> io::Result<()> {
        self.inner.sendto(data, addr)
    }

    /// Sends `data` as datagrams of `segment_size` bytes each, the last one shorter if
    /// `data` does not divide evenly — what a QUIC or media sender hands the kernel in one
    /// go. Each datagram arrives as if sent with [`sendto`](DatagramTransport::sendto), in
    /// order. On Linux it uses UDP GSO (`UDP_SEGMENT`: one system call per up to 64
    /// datagrams) while nothing is queued; where the path refuses GSO (another system, an
    /// old kernel, a device without checksum offload) or the socket's buffer is full, the
    /// datagrams are sent or queued one by one, so nothing is lost either way. `data` no
    /// longer than `segment_size` is one datagram. A receiver with
    /// [`DatagramOptions::gro`](crate::net::DatagramOptions::gro) may get them coalesced
    /// again and splits them back.
    ///
    /// # Errors
    /// `InvalidInput` for a zero `segment_size`, and for the address errors of
    /// [`sendto`](DatagramTransport::sendto). Errors of the send itself go to the protocol's
    /// `error_received`.
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use tulip::{DatagramProtocol, net::DatagramOptions};
    ///
    /// struct Quiet;
    /// impl DatagramProtocol for Quiet {}
    ///
    /// tulip::run(async {
    ///     let rx = UdpSocket::bind("127.0.0.1:0")?;
    ///     let port = rx.local_addr()?.port();
    ///     let (t, _) = tulip::create_datagram_endpoint(
    ///         || Quiet,
    ///         DatagramOptions::new().remote_addr("127.0.0.1", port),
    ///     )
    ///     .await?;
    ///     t.sendto_segments(&[7u8; 2500], 1000, None)?; // 1000 + 1000 + 500 bytes
    ///     let mut buf = [0u8; 2000];
    ///     for want in [1000, 1000, 500] {
    ///         assert_eq!(rx.recv(&mut buf)?, want);
    ///     }
    ///     std::io::Result::Ok(())
    /// })?;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn sendto_segments(
        &self,
        data: &[u8],
        segment_size: usize,
        addr: Option<&SockAddr>,
    ) -> io::Result<()> {
        self.inner.sendto_segments(data, segment_size, addr)
    }

    /// Closes the endpoint: queued datagrams are still sent, nothing more is received, then
    /// the protocol's `connection_lost(None)` is called (later, from the loop).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes at once, dropping queued datagrams; `connection_lost(None)` follows.
    pub fn abort(&self) {
        self.inner.force_close(None);
    }

    /// Whether the endpoint is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.inner.core.is_closing()
    }

    /// asyncio's `get_extra_info`: `"sockname"`, `"peername"` (a connected endpoint),
    /// `"socket"`.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.inner.extra_info(name)
    }

    /// The local address.
    pub fn sockname(&self) -> Option<SockAddr> {
        match self.get_extra_info("sockname") {
            Some(ExtraInfo::Address(a)) => Some(a),
            _ => None,
        }
    }

    /// The connected peer's address (`None` for an unconnected endpoint).
    pub fn peername(&self) -> Option<SockAddr> {
        self.inner.peer.clone()
    }

    /// The size of the send queue: the bytes of the queued datagrams plus asyncio's 8 bytes
    /// of overhead for each.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.queued.get()
    }

    /// The send queue's `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.core.flow.limits()
    }

    /// Sets the water marks, as [`Transport::set_write_buffer_limits`](super::Transport::set_write_buffer_limits).
    ///
    /// # Errors
    /// `InvalidInput` if `high < low`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        let core = &self.inner.core;
        core.flow.set_limits(high, low)?;
        let size = self.inner.queued.get();
        if core.flow.check_pause(size) || core.flow.check_resume(size) {
            core.deliver_flow();
        }
        Ok(())
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("fd", &self.inner.fd)
            .field("closing", &self.is_closing())
            .field("write_buffer", &self.get_write_buffer_size())
            .finish()
    }
}
