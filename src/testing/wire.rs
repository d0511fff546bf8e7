//! The in-memory connection under [`MemorySocket`](super::MemorySocket): two ends, each
//! with the chunks that arrived for it, and the raw I/O ([`RawIo`]) that lets the shared
//! stream transport (`transports/stream.rs`) run on an end as it runs on a socket — the
//! same write buffering, flow control, closing and callback order.
//!
//! There is no fd, so the selector cannot say when an end is ready: the end keeps the
//! transport's reader and writer callbacks ([`RawIo::add_watch`]) and schedules them with
//! `call_soon` while they are armed and the end is ready — once per loop iteration, as a
//! level-triggered selector would. Nothing here runs a callback from inside the call that
//! made the end ready (a write, a feed).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::rc::Rc;

use socket2::SockAddr;

use crate::event_loop::EventLoop;
use crate::selector::{Direction, IoCallback};
use crate::transports::ExtraInfo;
use crate::transports::core::IoWatch;
use crate::transports::stream::RawIo;

/// What an end can have in flight to its peer before its writes block, by default.
pub(crate) const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Who reads an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Nobody yet (an end of `MemorySocket::pair` before `connect`): what arrives is kept
    /// for the transport to come, without limit.
    Nobody,
    /// The test itself (the peer of `MemorySocket::new`): what arrives is only recorded, by
    /// the sender (`written`), and never blocks it.
    Test,
    /// A transport.
    Transport,
    /// Its transport let go of it (the socket is closed): what arrives is dropped.
    Closed,
}

/// What arrived at an end and its transport has not read yet.
#[derive(Debug, Default)]
struct Inbound {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes in `chunks`.
    len: usize,
    /// The peer's EOF: reads return 0 once `chunks` is empty.
    eof: bool,
    /// The connection was reset: reads and writes fail (what was unread is gone).
    reset: bool,
}

/// One end.
struct End {
    holder: Cell<Holder>,
    inbound: RefCell<Inbound>,
    /// Everything this end's transport wrote (what the network took).
    written: RefCell<Vec<u8>>,
    /// The transport shut its write side down (`write_eof`, once the buffer drained).
    wrote_eof: Cell<bool>,
    lp: RefCell<Option<EventLoop>>,
    reader: RefCell<Option<Rc<IoCallback>>>,
    writer: RefCell<Option<Rc<IoCallback>>>,
    read_scheduled: Cell<bool>,
    write_scheduled: Cell<bool>,
    /// The test's knob: the peer takes nothing this end writes.
    peer_paused: Cell<bool>,
    /// What this end may have in flight to a peer with a transport.
    capacity: Cell<usize>,
    sockname: RefCell<SockAddr>,
}

impl End {
    fn new(holder: Holder, sockname: SockAddr) -> End {
        End {
            holder: Cell::new(holder),
            inbound: RefCell::default(),
            written: RefCell::default(),
            wrote_eof: Cell::new(false),
            lp: RefCell::new(None),
            reader: RefCell::new(None),
            writer: RefCell::new(None),
            read_scheduled: Cell::new(false),
            write_scheduled: Cell::new(false),
            peer_paused: Cell::new(false),
            capacity: Cell::new(DEFAULT_CAPACITY),
            sockname: RefCell::new(sockname),
        }
    }

    fn slot(&self, dir: Direction) -> &RefCell<Option<Rc<IoCallback>>> {
        match dir {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        }
    }
}

/// The two ends of one connection.
struct Wire {
    ends: [End; 2],
}

/// One end of a wire, as its handle and its transport's raw I/O see it.
#[derive(Clone)]
pub(crate) struct Side {
    wire: Rc<Wire>,
    me: usize,
}

/// The error a reset connection's reads and writes fail with.
fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "Connection reset by peer")
}

fn v4(port: u16) -> SockAddr {
    SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

impl Side {
    /// A connected pair; the second end is read by `second` (`Nobody` or `Test`).
    pub(crate) fn pair(second: Holder) -> (Side, Side) {
        let wire = Rc::new(Wire {
            ends: [
                End::new(Holder::Nobody, v4(49152)),
                End::new(second, v4(8000)),
            ],
        });
        let a = Side {
            wire: wire.clone(),
            me: 0,
        };
        (a, Side { wire, me: 1 })
    }

    fn end(&self) -> &End {
        &self.wire.ends[self.me]
    }

    fn other(&self) -> Side {
        Side {
            wire: self.wire.clone(),
            me: 1 - self.me,
        }
    }

    fn peer_end(&self) -> &End {
        &self.wire.ends[1 - self.me]
    }

    pub(crate) fn holder(&self) -> Holder {
        self.end().holder.get()
    }

    /// A transport on `lp` reads this end from now on.
    pub(crate) fn attach(&self, lp: &EventLoop) {
        let end = self.end();
        end.holder.set(Holder::Transport);
        *end.lp.borrow_mut() = Some(lp.clone());
    }

    // ---- readiness ----------------------------------------------------------------------

    /// How much this end may write now.
    fn room(&self) -> usize {
        let peer = self.peer_end();
        match peer.holder.get() {
            Holder::Closed => usize::MAX,
            _ if self.end().peer_paused.get() => 0,
            Holder::Transport => {
                let len = peer.inbound.borrow().len;
                self.end().capacity.get().saturating_sub(len)
            }
            Holder::Nobody | Holder::Test => usize::MAX,
        }
    }

    fn readable(&self) -> bool {
        let i = self.end().inbound.borrow();
        i.reset || i.eof || i.len > 0
    }

    fn writable(&self) -> bool {
        self.end().inbound.borrow().reset || self.room() > 0
    }

    fn ready(&self, dir: Direction) -> bool {
        match dir {
            Direction::Read => self.readable(),
            Direction::Write => self.writable(),
        }
    }

    /// Schedules the transport's reader or writer callback if it is armed and the end is
    /// ready, and again after it ran while that stays so (a level-triggered selector).
    fn schedule(&self, dir: Direction) {
        let end = self.end();
        let flag = match dir {
            Direction::Read => &end.read_scheduled,
            Direction::Write => &end.write_scheduled,
        };
        if flag.get() || end.slot(dir).borrow().is_none() || !self.ready(dir) {
            return;
        }
        let Some(lp) = end.lp.borrow().clone() else {
            return;
        };
        if lp.is_closed() {
            return;
        }
        flag.set(true);
        let me = self.clone();
        lp.call_soon(move || {
            let end = me.end();
            match dir {
                Direction::Read => end.read_scheduled.set(false),
                Direction::Write => end.write_scheduled.set(false),
            }
            let cb = end.slot(dir).borrow().clone();
            if let Some(cb) = cb {
                if me.ready(dir) {
                    cb.run();
                }
            }
            me.schedule(dir);
        });
    }

    fn wake(&self) {
        self.schedule(Direction::Read);
        self.schedule(Direction::Write);
    }

    // ---- the test's knobs -------------------------------------------------------------

    /// `data` arrives, as one chunk.
    pub(crate) fn feed(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        {
            let mut i = self.end().inbound.borrow_mut();
            assert!(!i.eof, "MemorySocket::feed after the peer's EOF");
            if i.reset || self.holder() == Holder::Closed {
                return;
            }
            i.chunks.push_back(data.to_vec());
            i.len += data.len();
        }
        self.schedule(Direction::Read);
    }

    /// The peer's EOF arrives, after what is in flight.
    pub(crate) fn feed_eof(&self) {
        self.end().inbound.borrow_mut().eof = true;
        self.schedule(Direction::Read);
    }

    /// The connection is reset: what was unread is dropped, reads and writes fail.
    pub(crate) fn reset(&self) {
        let old = {
            let mut i = self.end().inbound.borrow_mut();
            i.reset = true;
            i.len = 0;
            std::mem::take(&mut i.chunks)
        };
        drop(old);
        self.wake();
    }

    pub(crate) fn unread(&self) -> usize {
        self.end().inbound.borrow().len
    }

    pub(crate) fn written(&self) -> Vec<u8> {
        self.end().written.borrow().clone()
    }

    pub(crate) fn written_len(&self) -> usize {
        self.end().written.borrow().len()
    }

    pub(crate) fn take_written(&self) -> Vec<u8> {
        std::mem::take(&mut *self.end().written.borrow_mut())
    }

    pub(crate) fn wrote_eof(&self) -> bool {
        self.end().wrote_eof.get()
    }

    pub(crate) fn set_peer_paused(&self, paused: bool) {
        self.end().peer_paused.set(paused);
        if !paused {
            self.schedule(Direction::Write);
        }
    }

    pub(crate) fn is_peer_paused(&self) -> bool {
        self.end().peer_paused.get()
    }

    pub(crate) fn set_capacity(&self, n: usize) {
        self.end().capacity.set(n);
        self.schedule(Direction::Write);
    }

    pub(crate) fn capacity(&self) -> usize {
        self.end().capacity.get()
    }

    pub(crate) fn sockname(&self) -> SockAddr {
        self.end().sockname.borrow().clone()
    }

    pub(crate) fn peername(&self) -> SockAddr {
        self.peer_end().sockname.borrow().clone()
    }

    pub(crate) fn set_sockname(&self, addr: SockAddr) {
        *self.end().sockname.borrow_mut() = addr;
    }
}

/// The raw I/O of a transport on one end.
pub(crate) struct MemoryIo(pub(crate) Side);

impl RawIo for MemoryIo {
    const KIND: &'static str = "memory";

    fn fd(&self) -> RawFd {
        -1
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let s = &self.0;
        let n = {
            let mut i = s.end().inbound.borrow_mut();
            if i.reset {
                return Err(reset_error());
            }
            let Some(front) = i.chunks.front_mut() else {
                if i.eof {
                    return Ok(0);
                }
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let n = front.len().min(buf.len());
            buf[..n].copy_from_slice(&front[..n]);
            if n == front.len() {
                i.chunks.pop_front();
            } else {
                front.drain(..n);
            }
            i.len -= n;
            n
        };
        // Room for the peer's writes again.
        s.other().schedule(Direction::Write);
        Ok(n)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let s = &self.0;
        if s.end().inbound.borrow().reset {
            return Err(reset_error());
        }
        let room = s.room();
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut chunk = Vec::new();
        for b in bufs {
            let take = (room - chunk.len()).min(b.len());
            chunk.extend_from_slice(&b[..take]);
            if chunk.len() == room {
                break;
            }
        }
        let n = chunk.len();
        if n == 0 {
            return Ok(0);
        }
        s.end().written.borrow_mut().extend_from_slice(&chunk);
        let peer = s.other();
        if matches!(peer.holder(), Holder::Nobody | Holder::Transport) {
            let mut i = peer.end().inbound.borrow_mut();
            if !i.reset && !i.eof {
                i.len += n;
                i.chunks.push_back(chunk);
            }
        }
        peer.schedule(Direction::Read);
        Ok(n)
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let s = &self.0;
        s.end().wrote_eof.set(true);
        let peer = s.other();
        if matches!(peer.holder(), Holder::Nobody | Holder::Transport) {
            peer.feed_eof();
        }
        Ok(())
    }

    fn extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "peername" => Some(ExtraInfo::Address(self.0.peername())),
            "sockname" => Some(ExtraInfo::Address(self.0.sockname())),
            _ => None,
        }
    }

    fn close(&self) {
        let s = &self.0;
        let end = s.end();
        end.holder.set(Holder::Closed);
        let old = {
            let mut i = end.inbound.borrow_mut();
            i.len = 0;
            std::mem::take(&mut i.chunks)
        };
        drop(old);
        let peer = s.other();
        if matches!(peer.holder(), Holder::Nobody | Holder::Transport) {
            // The peer reads our EOF after what is in flight; its writes are dropped now.
            peer.end().inbound.borrow_mut().eof = true;
            peer.wake();
        }
    }

    fn add_watch(
        &self,
        w: &IoWatch,
        _lp: &EventLoop,
        _fd: RawFd,
        make: impl FnOnce() -> Option<Rc<IoCallback>>,
    ) -> io::Result<()> {
        let Some(cb) = w.callback(make) else {
            return Ok(());
        };
        let dir = w.direction();
        let old = self.0.end().slot(dir).replace(Some(cb));
        drop(old);
        self.0.schedule(dir);
        Ok(())
    }

    fn remove_watch(&self, w: &IoWatch, _lp: &EventLoop, _fd: RawFd) {
        let old = self.0.end().slot(w.direction()).take();
        drop(old);
    }

    fn close_watch(&self, w: &IoWatch, lp: &EventLoop, fd: RawFd) {
        self.remove_watch(w, lp, fd);
        w.disarm();
    }
}
