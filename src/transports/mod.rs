//! Transports: the `Transport` handle that protocols and tasks hold, and its implementations
//! (asyncio's `transports.py` and the selector transports).

pub(crate) mod core;
pub(crate) mod datagram;
mod flow;
#[cfg(unix)]
pub(crate) mod pipe;
pub(crate) mod proto;
pub(crate) mod sendfile;
pub(crate) mod socket;
pub(crate) mod stream;
pub(crate) mod trsock;
mod write_buf;

use std::fmt;
use std::io;
use std::rc::Rc;

pub(crate) use proto::ProtoRc;
pub use proto::{Buffered, ProtocolRef, StreamProtocol};
use socket2::SockAddr;
pub use trsock::TransportFd;

/// What [`Transport::get_extra_info`] answers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ExtraInfo {
    /// A socket address: `"peername"`, `"sockname"`.
    Address(SockAddr),
    /// The transport's socket: `"socket"` — a safe view of it ([`TransportFd`]: addresses,
    /// socket options); the transport still owns it.
    Socket(TransportFd),
    /// A pipe transport's pipe: `"pipe"`, as a [`TransportFd`].
    Pipe(TransportFd),
    /// A name or description: `"cipher"`, `"protocol_version"`, `"server_hostname"`.
    Text(String),
    /// Raw bytes: `"alpn_protocol"`.
    Bytes(Vec<u8>),
    /// The peer's certificate chain, DER, leaf first: `"peercert"`.
    Certificates(Vec<Vec<u8>>),
    /// A value of a type that a layer above this one defines — the TLS layer's
    /// configuration for `"sslcontext"`, say (`tulip::tls::TlsConfig::from_extra_info`
    /// takes it back out). The transport layer does not know the types it carries.
    Object(ExtraObject),
}

impl ExtraInfo {
    /// The value inside an [`ExtraInfo::Object`], if it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        match self {
            ExtraInfo::Object(o) => o.downcast_ref(),
            _ => None,
        }
    }
}

/// A type-erased value carried by [`ExtraInfo::Object`]: cheap to clone (`Rc`), and its
/// `Debug` names the type.
#[derive(Clone)]
pub struct ExtraObject {
    value: Rc<dyn std::any::Any>,
    type_name: &'static str,
}

impl ExtraObject {
    /// Wraps `value`.
    pub fn new<T: 'static>(value: T) -> ExtraObject {
        ExtraObject {
            value: Rc::new(value),
            type_name: std::any::type_name::<T>(),
        }
    }

    /// The value, if it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }
}

impl fmt::Debug for ExtraObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExtraObject({})", self.type_name)
    }
}

/// The operations every stream transport implements.
pub(crate) trait TransportImpl {
    fn write(&self, data: &[u8]);
    fn write_eof(&self);
    fn can_write_eof(&self) -> bool;
    fn close(&self);
    fn abort(&self);
    fn is_closing(&self) -> bool;
    fn pause_reading(&self);
    fn resume_reading(&self);
    fn is_reading(&self) -> bool;
    fn get_write_buffer_size(&self) -> usize;
    fn get_write_buffer_limits(&self) -> (usize, usize);
    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> io::Result<()>;
    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo>;
    fn set_protocol(&self, p: ProtoRc);
    fn get_protocol(&self) -> Option<ProtoRc>;
    /// Whether the write buffer is over its high-water mark (the protocol was or will be
    /// told `pause_writing`).
    fn is_writing_paused(&self) -> bool;
    /// Ready when writing is not paused (or with an error once the connection is lost).
    fn poll_drain(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>>;
    /// One receive straight into `buf`, for a stream reader waiting with a large buffer
    /// (see [`Transport::try_read_into`]). `None` where the transport cannot.
    fn try_read_into(&self, _buf: &mut [u8]) -> Option<io::Result<usize>> {
        None
    }
    /// [`try_read_into`](TransportImpl::try_read_into) into possibly-uninitialised memory
    /// (see [`Transport::try_read_uninit`]).
    fn try_read_uninit(&self, _buf: &mut [std::mem::MaybeUninit<u8>]) -> Option<io::Result<usize>> {
        None
    }
    /// The transport's `sendfile` hook (`transports/sendfile.rs`); `None` where it has none
    /// (TLS: `tulip::sendfile` copies through `write`).
    fn zero_copy(&self) -> Option<&dyn sendfile::ZeroCopy> {
        None
    }
}

/// A connection's transport (asyncio's `Transport`): the handle through which a protocol —
/// or any task — writes, pauses reading, and closes.
///
/// It is a cheap clonable handle (`Rc`): a protocol keeps the one `connection_made` gives
/// it, and tasks can hold clones. Every method may be called from inside any protocol
/// callback without a run-time borrow failure: the transport's state and the protocol live
/// in separate cells, `close` delivers `connection_lost` later (with `call_soon`), and a
/// `pause_writing` that falls due while the protocol is busy in a callback is delivered
/// right after that callback returns.
///
/// After the connection is lost, writes are dropped (and, after five, logged once), as
/// asyncio does.
#[derive(Clone)]
pub struct Transport {
    pub(crate) inner: Rc<dyn TransportImpl>,
}

impl Transport {
    /// Writes `data`: sent at once if nothing is buffered, else (or for what the socket did
    /// not take) buffered and flushed when the socket is writable. Never blocks.
    ///
    /// # Panics
    /// After [`write_eof`](Transport::write_eof) (asyncio raises `RuntimeError`), and on a
    /// read pipe's transport (asyncio's `ReadTransport` has no `write`).
    #[inline]
    pub fn write(&self, data: &[u8]) {
        self.inner.write(data);
    }

    /// Writes each buffer of `list` in order (asyncio's `writelines`).
    pub fn writelines<'a>(&self, list: impl IntoIterator<Item = &'a [u8]>) {
        for d in list {
            self.inner.write(d);
        }
    }

    /// Closes the write side once the buffer has drained (a half-close); reading goes on.
    pub fn write_eof(&self) {
        self.inner.write_eof();
    }

    /// Whether [`write_eof`](Transport::write_eof) is supported (true for TCP and Unix
    /// sockets).
    pub fn can_write_eof(&self) -> bool {
        self.inner.can_write_eof()
    }

    /// Closes the transport: buffered data is still sent, then the connection is closed and
    /// the protocol's `connection_lost(None)` is called (later, from the loop).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes at once, dropping buffered data; `connection_lost(None)` follows.
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    /// Stops calling `data_received` until [`resume_reading`](Transport::resume_reading).
    pub fn pause_reading(&self) {
        self.inner.pause_reading();
    }

    /// Resumes reading after [`pause_reading`](Transport::pause_reading).
    pub fn resume_reading(&self) {
        self.inner.resume_reading();
    }

    /// Whether the transport is receiving data (not paused, not closing).
    pub fn is_reading(&self) -> bool {
        self.inner.is_reading()
    }

    /// Bytes waiting in the write buffer.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.get_write_buffer_size()
    }

    /// The write buffer's `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.get_write_buffer_limits()
    }

    /// Sets the water marks (asyncio's defaults: a missing `high` is 64 KiB or 4 × `low`, a
    /// missing `low` is `high / 4`). `pause_writing` is called when the buffer goes strictly
    /// over `high`, `resume_writing` when it drains to `low` or below.
    ///
    /// # Errors
    /// `InvalidInput` if `high < low`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.inner.set_write_buffer_limits(high, low)
    }

    /// asyncio's `get_extra_info`: `"peername"`, `"sockname"`, `"socket"` (see also
    /// [`socket`](Transport::socket)).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.inner.get_extra_info(name)
    }

    /// The transport's socket, lent safely (`get_extra_info("socket")`): `None` for a
    /// transport that has none (a pipe) or once it is closed. Under TLS, the socket below.
    pub fn socket(&self) -> Option<TransportFd> {
        match self.get_extra_info("socket") {
            Some(ExtraInfo::Socket(s)) if s.as_raw_fd().is_some() => Some(s),
            _ => None,
        }
    }

    /// Waits until the write buffer is at or below the low-water mark after a
    /// `pause_writing` — `drain` for async code that drives a transport without a
    /// protocol of its own. Returns at once when writing is not paused.
    ///
    /// # Errors
    /// `ConnectionReset` if the connection was lost.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only waits; the buffered data is sent either way.
    pub async fn drain(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.inner.poll_drain(cx)).await
    }

    /// The peer's address.
    pub fn peername(&self) -> Option<SockAddr> {
        match self.get_extra_info("peername") {
            Some(ExtraInfo::Address(a)) => Some(a),
            _ => None,
        }
    }

    /// The local address.
    pub fn sockname(&self) -> Option<SockAddr> {
        match self.get_extra_info("sockname") {
            Some(ExtraInfo::Address(a)) => Some(a),
            _ => None,
        }
    }

    /// Hands the connection to a new protocol (asyncio's `set_protocol`): a [`Protocol`], or
    /// a [`BufferedProtocol`] as [`Buffered(p)`](Buffered). The new protocol gets no
    /// `connection_made`. Returns the handle to it.
    ///
    /// [`Protocol`]: crate::Protocol
    /// [`BufferedProtocol`]: crate::BufferedProtocol
    pub fn set_protocol<P: StreamProtocol>(&self, protocol: P) -> ProtocolRef<P::Protocol> {
        let obj = protocol.into_obj();
        self.inner.set_protocol(obj.clone());
        ProtocolRef::new(obj)
    }

    /// One receive straight into `buf`, bypassing the protocol: `None` if the transport
    /// cannot now (not a socket, not connected, reading paused, closing, read side at EOF),
    /// else what `recv` returned, `WouldBlock` included. A 0 (EOF) and an error are also
    /// handled as the transport's own read would: the protocol hears `eof_received`, or the
    /// connection is lost with the error (a copy of it is returned).
    #[inline]
    pub(crate) fn try_read_into(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        self.inner.try_read_into(buf)
    }

    /// [`try_read_into`](Transport::try_read_into) into possibly-uninitialised memory (a
    /// vector's spare capacity): `Some(Ok(n))` means the first `n` bytes of `buf` (n ≤ its
    /// length) are initialised.
    #[inline]
    pub(crate) fn try_read_uninit(
        &self,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Option<io::Result<usize>> {
        self.inner.try_read_uninit(buf)
    }

    /// The current protocol, if it is a `P` (asyncio's `get_protocol`).
    pub fn get_protocol<P: 'static>(&self) -> Option<ProtocolRef<P>> {
        let obj = self.inner.get_protocol()?;
        ProtocolRef::<P>::is_a(&obj).then(|| ProtocolRef::new(obj))
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("closing", &self.is_closing())
            .field("reading", &self.is_reading())
            .field("write_buffer", &self.get_write_buffer_size())
            .finish()
    }
}
