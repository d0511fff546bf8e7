//! The stream protocol: a `BufferedProtocol` that receives straight into the buffer the
//! `StreamReader` then reads from (asyncio's `StreamReaderProtocol`, one copy fewer).

use std::io;
use std::task::Waker;

use super::buf::Buf;
use super::{StreamReader, StreamWriter};

use crate::protocols::BufferedProtocol;
use crate::transports::Transport;

/// Called once the connection is made, with the stream pair (the server's per-connection
/// callback).
pub(crate) type OnConnect = Box<dyn FnOnce(StreamReader, StreamWriter)>;

/// The state shared by a connection's `StreamReader`, `StreamWriter` and transport.
pub(crate) struct StreamProto {
    /// Received and not yet taken by the reader.
    pub(crate) buf: Buf,
    pub(crate) limit: usize,
    pub(crate) eof: bool,
    /// The error the connection was lost with, kept to be reported to every later read.
    pub(crate) exc: Option<(io::ErrorKind, String)>,
    pub(crate) lost: bool,
    pub(crate) read_waker: Option<Waker>,
    pub(crate) drain_wakers: Vec<Waker>,
    pub(crate) closed_wakers: Vec<Waker>,
    pub(crate) write_paused: bool,
    /// This protocol paused the transport's reading (buffer over 2 × limit).
    pub(crate) read_paused: bool,
    pub(crate) transport: Option<Transport>,
    on_connect: Option<OnConnect>,
}

impl StreamProto {
    pub(crate) fn new(limit: usize, on_connect: Option<OnConnect>) -> StreamProto {
        StreamProto {
            buf: Buf::default(),
            limit,
            eof: false,
            exc: None,
            lost: false,
            read_waker: None,
            drain_wakers: Vec::new(),
            closed_wakers: Vec::new(),
            write_paused: false,
            read_paused: false,
            transport: None,
            on_connect,
        }
    }

    /// Starts with `data` already received (a hand-over from another protocol).
    pub(crate) fn buf_extend(&mut self, data: &[u8]) {
        self.buf.extend(data);
    }

    /// Sets the transport when the protocol is installed without `connection_made`.
    pub(crate) fn set_transport(&mut self, t: Transport) {
        self.transport = Some(t);
    }

    /// The error to report for an operation after the connection was lost with one.
    pub(crate) fn error(&self) -> Option<io::Error> {
        self.exc
            .as_ref()
            .map(|(k, m)| io::Error::new(*k, m.clone()))
    }

    fn wake_reader(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn set_waker(slot: &mut Option<Waker>, w: &Waker) {
        match slot {
            Some(old) if old.will_wake(w) => {}
            _ => *slot = Some(w.clone()),
        }
    }

    pub(crate) fn add_waker(list: &mut Vec<Waker>, w: &Waker) {
        if !list.iter().any(|x| x.will_wake(w)) {
            list.push(w.clone());
        }
    }
}

impl BufferedProtocol for StreamProto {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        if let Some(cb) = self.on_connect.take() {
            if let Some(pref) = transport.get_protocol::<StreamProto>() {
                let (r, w) = super::pair(transport.clone(), pref, self.limit);
                cb(r, w);
            }
        }
    }

    #[inline]
    fn get_buffer(&mut self, sizehint: usize) -> &mut [u8] {
        self.buf.room(sizehint)
    }

    #[inline]
    fn buffer_updated(&mut self, nbytes: usize) {
        self.buf.filled(nbytes);
        self.wake_reader();
        if !self.read_paused && self.buf.len() > 2 * self.limit {
            if let Some(t) = &self.transport {
                t.pause_reading();
                self.read_paused = true;
            }
        }
    }

    fn eof_received(&mut self) -> bool {
        self.eof = true;
        self.wake_reader();
        // Keep the write side open, as asyncio does for plain sockets.
        true
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.lost = true;
        self.eof = true;
        if let Some(e) = exc {
            self.exc = Some((e.kind(), e.to_string()));
        }
        self.write_paused = false;
        self.wake_reader();
        for w in self
            .drain_wakers
            .drain(..)
            .chain(self.closed_wakers.drain(..))
        {
            w.wake();
        }
        // Break the cycle transport -> protocol -> transport.
        self.transport = None;
    }

    fn pause_writing(&mut self) {
        self.write_paused = true;
    }

    fn resume_writing(&mut self) {
        self.write_paused = false;
        for w in self.drain_wakers.drain(..) {
            w.wake();
        }
    }
}
