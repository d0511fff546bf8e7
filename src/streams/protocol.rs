//! The stream protocol (asyncio's `StreamReaderProtocol`): what the transport calls. It
//! receives into the loop's shared read buffer and appends what arrived to the stream
//! state's buffer — or, while a reader waits to receive straight into its own buffer, wakes
//! that reader instead (see [`Direct`]).
//!
//! It holds nothing but the shared state: the reader and writer never borrow it. Wakers are
//! never woken from inside it — they are handed to the transport (`ReadOutcome::Wake`,
//! `ProtoObj::take_waker`), which wakes them once the protocol's cell is released.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::Waker;

use super::state::{Direct, StreamState};
use super::{StreamReader, StreamWriter};

use crate::transports::proto::{ProtoCell, ProtoObj, ReadFn, ReadOutcome};
use crate::transports::socket::SocketIo;
use crate::transports::stream::RawIo;
use crate::transports::{ProtoRc, StreamProtocol, Transport};

/// Called once the connection is made, with the stream pair (the server's per-connection
/// callback: it only spawns the task that runs the user's function).
pub(crate) type OnConnect = Box<dyn FnOnce(StreamReader, StreamWriter)>;

/// A connection's stream protocol.
pub(crate) struct StreamProto {
    state: Rc<StreamState>,
    on_connect: Option<OnConnect>,
    /// Wakers to wake once the transport has released this protocol.
    wake: Vec<Waker>,
    /// `read` told the transport to wake the reader (`ReadOutcome::Wake`).
    wake_reader: bool,
}

impl StreamProto {
    pub(crate) fn new(state: Rc<StreamState>, on_connect: Option<OnConnect>) -> StreamProto {
        StreamProto {
            state,
            on_connect,
            wake: Vec::new(),
            wake_reader: false,
        }
    }

    /// Appends `data` to the buffer.
    #[inline]
    fn received(&mut self, data: &[u8]) {
        let s = &*self.state;
        let len = {
            let mut b = s.buf.borrow_mut();
            b.extend(data);
            b.len()
        };
        s.pause_if_full(len);
    }

    /// The outcome of a read that the reader should hear of: the transport wakes it.
    #[inline]
    fn wake_outcome(&mut self) -> ReadOutcome {
        self.wake_reader = true;
        ReadOutcome::Wake
    }

    /// Moves the reader's waker, if it waits, to `wake` (woken after this call).
    fn wake_reader(&mut self) {
        if let Some(w) = self.state.take_read_waker() {
            self.wake.push(w);
        }
    }
}

impl StreamProtocol for StreamProto {
    type Protocol = StreamProto;
    fn into_obj(self) -> ProtoRc {
        Rc::new(ProtoCell {
            type_id: TypeId::of::<StreamProto>(),
            cell: RefCell::new(self),
        })
    }
}

impl StreamProto {
    /// One read with the transport's `read`, into the loop's shared buffer; what arrived is
    /// appended to the stream buffer. While a direct reader waits (see `Direct`), readiness
    /// is only passed on to it.
    #[inline(always)]
    fn read_with(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
        shared: &mut [u8],
    ) -> ReadOutcome {
        let s = &*self.state;
        match s.direct.get() {
            Direct::Off => {}
            Direct::Waiting | Direct::Ready => {
                // The reader receives itself: tell it the socket is readable.
                s.direct.set(Direct::Woken);
                return self.wake_outcome();
            }
            Direct::Drained => {
                // Polled before the reader emptied the socket: the next readiness is news.
                s.direct.set(Direct::Waiting);
                return ReadOutcome::WouldBlock;
            }
            // The reader had its turn since it was told and did not read: receive for it.
            Direct::Woken => s.direct.set(Direct::Off),
        }
        match read(shared) {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => {
                s.last_recv.set(n);
                self.received(&shared[..n]);
                self.wake_outcome()
            }
            Err(e) if crate::sys::is_would_block(&e) => ReadOutcome::WouldBlock,
            Err(e) => ReadOutcome::Error(e),
        }
    }
}

impl ProtoObj for StreamProto {
    fn connection_made(&mut self, t: &Transport) {
        self.state.set_transport(Some(t.clone()));
        if let Some(cb) = self.on_connect.take() {
            let (r, w) = super::pair(t.clone(), self.state.clone());
            cb(r, w);
        }
    }

    fn read(&mut self, read: &mut ReadFn<'_>, shared: &mut [u8]) -> ReadOutcome {
        self.read_with(read, shared)
    }

    #[inline]
    #[allow(private_interfaces)] // the trait is sealed: only tulip implements and calls it
    fn read_socket(&mut self, io: &SocketIo, shared: &mut [u8]) -> ReadOutcome {
        self.read_with(|b| io.read(b), shared)
    }

    fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        if !data.is_empty() {
            self.received(data);
            self.wake_reader();
        }
        Ok(())
    }

    fn eof_received(&mut self) -> bool {
        self.state.eof.set(true);
        self.wake_reader();
        // Keep the write side open, as asyncio does for plain sockets; over TLS there is no
        // half-close, and asyncio's StreamReaderProtocol answers false there.
        !self.state.over_tls()
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let s = &*self.state;
        s.lost.set(true);
        s.eof.set(true);
        if let Some(e) = &exc {
            s.set_error(e);
        }
        s.write_paused.set(false);
        s.take_wakers(true, &mut self.wake);
        // Break the cycle transport -> protocol -> state -> transport.
        s.set_transport(None);
    }

    fn pause_writing(&mut self) {
        self.state.write_paused.set(true);
    }

    fn resume_writing(&mut self) {
        self.state.write_paused.set(false);
        self.state.take_wakers(false, &mut self.wake);
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    #[inline]
    fn take_waker(&mut self) -> Option<Waker> {
        if std::mem::take(&mut self.wake_reader) {
            if let Some(w) = self.state.take_read_waker() {
                return Some(w);
            }
        }
        self.wake.pop()
    }
}
