//! Test helpers: connections in memory that drive real protocols and streams without
//! sockets (Twisted's `StringTransport` and `iosim`, in the spirit of tokio-test's
//! `io::Builder`), and [`settle`], which waits until the loop has nothing left to run.
//!
//! A [`MemorySocket`] is one end of a connection in memory. [`connect`](MemorySocket::connect)
//! puts a transport on it — the loop's own stream transport, the one under TCP and pipes,
//! over the memory end instead of a socket — so what a test sees is what the protocol gets
//! in production: `connection_made` from the loop, one `data_received` per chunk that
//! arrives, `eof_received` (returning `false` closes, asyncio's half-close rule),
//! `connection_lost` exactly once (after the buffered data has gone, for `close`; at once
//! for `abort`), `pause_writing` when the write buffer crosses the high-water mark, reading
//! paused and resumed, `get_extra_info("peername")`. Every callback is delivered by the
//! loop (`call_soon`), never from inside the call that caused it.
//!
//! Two ways to use it:
//! - **the test is the peer** ([`MemorySocket::new`], Twisted's `StringTransport`): feed
//!   the protocol bytes in the chunks you choose ([`feed`](MemorySocket::feed)), then an EOF
//!   ([`feed_eof`](MemorySocket::feed_eof)) or a reset ([`reset`](MemorySocket::reset));
//!   look at what it wrote ([`written`](MemorySocket::written),
//!   [`take_written`](MemorySocket::take_written)); stop reading what it writes
//!   ([`pause_peer_reading`](MemorySocket::pause_peer_reading)) so its buffer fills;
//! - **two protocols talk** ([`MemorySocket::pair`], Twisted's `iosim`): a transport on each
//!   end, what one writes is what the other receives, and a reader that pauses makes the
//!   writer's writes block once [`capacity`](MemorySocket::set_capacity) bytes are in
//!   flight — the backpressure of a real socket. The knobs work on each end all the same.
//!
//! The module is always compiled, with no cargo feature: it needs no dependency, a program
//! that does not call it links none of it, and a test helper that must first be switched on
//! is one that users of asyncio and Twisted (whose helpers ship with the library) do not find.
//!
//! ```
//! use tulip::testing::{MemorySocket, settle};
//! use tulip::{Protocol, Transport};
//!
//! /// Answers each line with its length.
//! #[derive(Default)]
//! struct Lengths {
//!     transport: Option<Transport>,
//!     line: Vec<u8>,
//! }
//!
//! impl Protocol for Lengths {
//!     fn connection_made(&mut self, t: &Transport) {
//!         self.transport = Some(t.clone());
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         for &b in data {
//!             if b != b'\n' {
//!                 self.line.push(b);
//!                 continue;
//!             }
//!             let answer = format!("{}\n", self.line.len());
//!             self.line.clear();
//!             if let Some(t) = &self.transport {
//!                 t.write(answer.as_bytes());
//!             }
//!         }
//!     }
//! }
//!
//! # tulip::run(async {
//! let sock = MemorySocket::new();
//! let (transport, _proto) = sock.connect(Lengths::default());
//! sock.feed(b"hel"); // one data_received each
//! sock.feed(b"lo\nwor");
//! sock.feed(b"ld!\n");
//! settle().await;
//! assert_eq!(sock.take_written(), b"5\n6\n");
//!
//! sock.feed_eof(); // eof_received returns false: the transport closes
//! settle().await;
//! assert!(transport.is_closing() && sock.is_closed());
//! # });
//! ```
//!
//! Two stream pairs talking to each other:
//!
//! ```
//! use tulip::testing::MemorySocket;
//!
//! # tulip::run(async {
//! let (client, server) = MemorySocket::pair();
//! let (mut creader, cwriter) = client.open_connection(None);
//! let (mut sreader, swriter) = server.open_connection(None);
//! cwriter.write(b"ping\n");
//! assert_eq!(sreader.readline().await?, b"ping\n");
//! swriter.write(b"pong\n");
//! swriter.close();
//! assert_eq!(creader.readline().await?, b"pong\n");
//! assert!(creader.read(100).await?.is_empty()); // EOF
//! # std::io::Result::Ok(()) }).unwrap();
//! ```

mod settle;
mod wire;

use std::fmt;

use socket2::SockAddr;

pub use settle::{Settle, settle};
use wire::{Holder, MemoryIo, Side};

use crate::event_loop::EventLoop;
use crate::streams::{DEFAULT_LIMIT, StreamReader, StreamWriter};
use crate::transports::stream::StreamTransport;
use crate::transports::{ProtocolRef, StreamProtocol, Transport};

/// One end of a connection in memory, and the test's handle to it (see the [module
/// docs](self)). Clones are handles to the same end.
///
/// The knobs speak for the network and the peer: [`feed`](MemorySocket::feed) is bytes
/// arriving at this end, [`written`](MemorySocket::written) what this end's transport sent,
/// [`pause_peer_reading`](MemorySocket::pause_peer_reading) the peer no longer taking it.
///
/// The addresses are made up: the first end of a pair (and [`new`](MemorySocket::new)'s)
/// is `127.0.0.1:49152`, its peer `127.0.0.1:8000`; `get_extra_info("peername")` and
/// `("sockname")` answer them, `("socket")` nothing.
#[derive(Clone)]
pub struct MemorySocket {
    side: Side,
}

impl MemorySocket {
    /// An end whose peer is the test itself: what its transport writes is recorded
    /// ([`written`](MemorySocket::written)) and taken at once, unless the test
    /// [pauses reading](MemorySocket::pause_peer_reading); what it receives is what the
    /// test [feeds](MemorySocket::feed) it.
    #[allow(clippy::new_without_default)] // a connection, not a value with a default
    pub fn new() -> MemorySocket {
        let (a, _test) = Side::pair(Holder::Test);
        MemorySocket { side: a }
    }

    /// Two connected ends: with a transport on each, what one writes the other receives, in
    /// the chunks it was written in. Each end keeps what arrives for it until it has a
    /// transport.
    pub fn pair() -> (MemorySocket, MemorySocket) {
        let (a, b) = Side::pair(Holder::Nobody);
        (MemorySocket { side: a }, MemorySocket { side: b })
    }

    /// Runs `protocol` on this end, on the running loop (asyncio's `create_connection`,
    /// connected at once): a [`Protocol`](crate::Protocol), or a
    /// [`BufferedProtocol`](crate::BufferedProtocol) as [`Buffered(p)`](crate::Buffered).
    /// `connection_made` comes from the loop, as for a socket.
    ///
    /// # Panics
    /// With no running loop, or if this end has had a transport already.
    pub fn connect<P: StreamProtocol>(&self, protocol: P) -> (Transport, ProtocolRef<P::Protocol>) {
        self.connect_on(&crate::get_running_loop(), protocol)
    }

    /// As [`connect`](MemorySocket::connect), on `lp` (which need not be running yet).
    ///
    /// # Panics
    /// If `lp` is closed, or this end has had a transport already.
    pub fn connect_on<P: StreamProtocol>(
        &self,
        lp: &EventLoop,
        protocol: P,
    ) -> (Transport, ProtocolRef<P::Protocol>) {
        let obj = protocol.into_obj();
        let t = self.attach(lp, obj.clone());
        (t, ProtocolRef::new(obj))
    }

    /// A stream pair on this end, on the running loop (asyncio's `open_connection`).
    /// `limit` is the stream buffer limit; `None` for [`DEFAULT_LIMIT`] (0 is taken as 1).
    /// Join the halves into a [`Stream`](crate::Stream) with
    /// [`StreamReader::unsplit`].
    ///
    /// # Panics
    /// With no running loop, or if this end has had a transport already.
    pub fn open_connection(&self, limit: Option<usize>) -> (StreamReader, StreamWriter) {
        let lp = crate::get_running_loop();
        let limit = limit.unwrap_or(DEFAULT_LIMIT).max(1);
        let (state, obj) = crate::streams::stream_protocol_obj(limit);
        let t = self.attach(&lp, obj);
        crate::streams::pair(t, state)
    }

    fn attach(&self, lp: &EventLoop, obj: crate::transports::ProtoRc) -> Transport {
        assert!(
            self.side.holder() == Holder::Nobody,
            "MemorySocket: this end has had a transport already"
        );
        self.side.attach(lp);
        StreamTransport::start(lp, MemoryIo(self.side.clone()), obj, None).handle()
    }

    // ---- what arrives -------------------------------------------------------------------

    /// `data` arrives at this end as one chunk: one `data_received` (or, for a
    /// `BufferedProtocol` whose buffer is smaller, as many `buffer_updated` as it takes),
    /// from the loop. Nothing if `data` is empty, and dropped once the end is closed or
    /// reset.
    ///
    /// # Panics
    /// After the peer's EOF ([`feed_eof`](MemorySocket::feed_eof), or the peer's transport
    /// closing or shutting its write side down).
    pub fn feed(&self, data: &[u8]) {
        self.side.feed(data);
    }

    /// Feeds each of `chunks` as one chunk: `feed_chunks([&b"GET /"[..], b" HTTP/1.1\r\n"])`.
    ///
    /// # Panics
    /// As [`feed`](MemorySocket::feed).
    pub fn feed_chunks<I>(&self, chunks: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        for c in chunks {
            self.side.feed(c.as_ref());
        }
    }

    /// The peer's EOF arrives, after what was fed before: `eof_received`; if it returns
    /// `false`, the transport closes.
    pub fn feed_eof(&self) {
        self.side.feed_eof();
    }

    /// The connection is reset: what was not read yet is gone, and the transport's next
    /// read or write fails with `ConnectionReset` — `connection_lost(Some(ConnectionReset))`.
    /// A transport that is reading, or has data to send, hears of it at once; one that
    /// paused reading with nothing to send, when it next reads or writes (a socket's reset
    /// is found the same way). Only this end is reset: a peer with a transport sees this end
    /// close (an EOF) once its transport lets go of it.
    pub fn reset(&self) {
        self.side.reset();
    }

    /// Bytes that arrived and this end's transport has not read yet (it paused reading, or
    /// the loop did not run since).
    pub fn unread(&self) -> usize {
        self.side.unread()
    }

    // ---- what was written ---------------------------------------------------------------

    /// Everything this end's transport has sent so far (taken by the network, so not what
    /// waits in its write buffer: see [`Transport::get_write_buffer_size`]).
    pub fn written(&self) -> Vec<u8> {
        self.side.written()
    }

    /// [`written`](MemorySocket::written), emptying the record.
    pub fn take_written(&self) -> Vec<u8> {
        self.side.take_written()
    }

    /// Whether the transport shut its write side down (`write_eof`, after its buffer
    /// drained).
    pub fn wrote_eof(&self) -> bool {
        self.side.wrote_eof()
    }

    /// Whether the transport let go of this end — the socket would be closed: after
    /// `close` once the buffer drained, after `abort` or a failure at once.
    pub fn is_closed(&self) -> bool {
        self.side.holder() == Holder::Closed
    }

    // ---- flow ---------------------------------------------------------------------------

    /// The peer stops reading: from now on the network takes nothing this end writes, so
    /// the transport buffers it, and `pause_writing` comes when the buffer goes over its
    /// high-water mark.
    pub fn pause_peer_reading(&self) {
        self.side.set_peer_paused(true);
    }

    /// The peer reads again: what the transport buffered is sent (by the loop), and
    /// `resume_writing` comes when its buffer drains to the low-water mark.
    pub fn resume_peer_reading(&self) {
        self.side.set_peer_paused(false);
    }

    /// Whether [`pause_peer_reading`](MemorySocket::pause_peer_reading) is in force.
    pub fn is_peer_reading_paused(&self) -> bool {
        self.side.is_peer_paused()
    }

    /// How many bytes this end may have in flight — written, not yet read by the peer's
    /// transport — before its writes block (a socket's buffers; 64 KiB by default). Only
    /// a peer with a transport counts: the test ([`new`](MemorySocket::new)) reads at once.
    /// A capacity of 0 blocks every write, as
    /// [`pause_peer_reading`](MemorySocket::pause_peer_reading) does.
    pub fn set_capacity(&self, bytes: usize) {
        self.side.set_capacity(bytes);
    }

    /// See [`set_capacity`](MemorySocket::set_capacity).
    pub fn capacity(&self) -> usize {
        self.side.capacity()
    }

    // ---- addresses ----------------------------------------------------------------------

    /// This end's address: `get_extra_info("sockname")` here, `("peername")` at the peer.
    pub fn sockname(&self) -> SockAddr {
        self.side.sockname()
    }

    /// The peer's address: `get_extra_info("peername")`.
    pub fn peername(&self) -> SockAddr {
        self.side.peername()
    }

    /// Changes this end's address.
    pub fn set_sockname(&self, addr: SockAddr) {
        self.side.set_sockname(addr);
    }
}

impl fmt::Debug for MemorySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySocket")
            .field("holder", &self.side.holder())
            .field("unread", &self.unread())
            .field("written", &self.side.written_len())
            .finish_non_exhaustive()
    }
}
