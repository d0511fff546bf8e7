//! How a transport holds a protocol: one object-safe trait over `Protocol` and
//! `BufferedProtocol`, and the typed handle users keep.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use crate::protocols::{BufferedProtocol, Protocol};
use crate::transports::Transport;
use crate::transports::core::CoreProto;
use crate::transports::socket::SocketIo;
use crate::transports::stream::RawIo;

pub(crate) mod sealed {
    use super::*;

    /// A protocol in its cell, with the type of the user's protocol, which can be checked
    /// without borrowing it (the protocol may be busy in a callback).
    pub struct ProtoCell<T: ?Sized> {
        pub(crate) type_id: TypeId,
        pub(crate) cell: RefCell<T>,
    }

    impl<T: ?Sized> fmt::Debug for ProtoCell<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ProtoCell").finish_non_exhaustive()
        }
    }

    /// The transport's read: one system call into the buffer, `Ok(0)` at end of stream.
    pub(crate) type ReadFn<'a> = dyn FnMut(&mut [u8]) -> io::Result<usize> + 'a;

    /// What one read did.
    #[derive(Debug)]
    pub enum ReadOutcome {
        Data,
        WouldBlock,
        Eof,
        Error(io::Error),
        /// Data was taken or readiness noted, and the protocol holds a waker to wake
        /// once its cell is released (`ProtoObj::take_waker`: the stream protocol's reader,
        /// maybe a foreign executor's). No payload: a larger outcome costs the plain path.
        Wake,
    }

    /// The transport's view of a stream protocol, whichever kind it is.
    pub trait ProtoObj {
        fn connection_made(&mut self, t: &Transport);
        /// One read with the transport's `read` — into `shared` (the loop's read buffer) for a
        /// `Protocol`, into the protocol's own buffer (`get_buffer`) for a `BufferedProtocol`
        /// — then `data_received` / `buffer_updated`.
        fn read(&mut self, read: &mut ReadFn<'_>, shared: &mut [u8]) -> ReadOutcome;
        /// [`read`](ProtoObj::read) from a stream socket, the hottest path of all: the
        /// socket's `recv` is compiled into each protocol's adapter (one indirect call per
        /// read) instead of being called through `ReadFn` (two).
        #[allow(private_interfaces)] // the trait is sealed: only tulip implements and calls it
        fn read_socket(&mut self, io: &SocketIo, shared: &mut [u8]) -> ReadOutcome;
        /// Hands `data`, received by other means (a TLS layer), to the protocol. Fails as
        /// a read would: a `BufferedProtocol` that gives an empty buffer.
        fn feed(&mut self, data: &[u8]) -> io::Result<()>;
        fn eof_received(&mut self) -> bool;
        fn connection_lost(&mut self, exc: Option<io::Error>);
        fn pause_writing(&mut self);
        fn resume_writing(&mut self);
        fn as_any(&mut self) -> &mut dyn Any;
        /// A waker the last call left, to be woken once the protocol's cell is released
        /// (the stream protocol's reader or drain waiters, which may be a foreign
        /// executor's); `None` for a user's protocol.
        fn take_waker(&mut self) -> Option<std::task::Waker> {
            None
        }
        /// The adapter's type name, which names the user's protocol type
        /// (`Plain<my::Echo>`), for the exception context of its panic.
        fn type_name(&self) -> &'static str {
            std::any::type_name::<Self>()
        }
    }
}
pub(crate) use sealed::{ProtoCell, ProtoObj, ReadFn, ReadOutcome};

/// A protocol object as a transport holds it.
pub(crate) type ProtoRc = Rc<ProtoCell<dyn ProtoObj>>;

/// Calls a protocol with a panic caught: `Ok(None)` if it is busy in another of its
/// callbacks, `Err(payload)` if it panicked (see [`report_panic`]).
pub(crate) fn call_protocol<T: ?Sized + CoreProto, R>(
    p: &Rc<ProtoCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> Result<Option<R>, Box<dyn Any + Send>> {
    match p.cell.try_borrow_mut() {
        Ok(mut g) => {
            let r = catch_unwind(AssertUnwindSafe(|| f(&mut *g))).map(Some);
            let first = g.take_waker();
            drop(g);
            wake_left(p, first);
            r
        }
        Err(_) => Ok(None),
    }
}

/// Wakes the wakers a protocol call left (`ProtoObj::take_waker`), each with the cell
/// released: a waker may call back into the protocol, so the next one is taken only after
/// it. `first`: the one taken before the cell was released.
fn wake_left<T: ?Sized + CoreProto>(p: &Rc<ProtoCell<T>>, first: Option<std::task::Waker>) {
    let take = || {
        p.cell
            .try_borrow_mut()
            .ok()
            .and_then(|mut g| g.take_waker())
    };
    let mut next = first;
    while let Some(w) = next {
        w.wake();
        next = take();
    }
}

/// After a read that returned [`ReadOutcome::Wake`]: wakes the one waker the read left (the
/// stream protocol's reader), with the protocol's cell released — a waker may call straight
/// back into the stream. A read leaves at most one; other wakers (drain, closed) are left by
/// calls made through [`call_protocol`], which wakes them all.
#[inline]
pub(crate) fn wake_reader(p: &ProtoRc) {
    let w = p
        .cell
        .try_borrow_mut()
        .ok()
        .and_then(|mut g| g.take_waker());
    if let Some(w) = w {
        w.wake();
    }
}

/// Reports a protocol's panic to the loop's exception handler; the caller then aborts the
/// connection.
pub(crate) fn report_panic(lp: &crate::EventLoop, payload: Box<dyn Any + Send>) {
    lp.call_exception_handler(
        &crate::ExceptionContext::new("Exception in a protocol callback; closing the connection")
            .with_panic(payload),
    );
}

/// [`report_panic`], naming the transport and the protocol in the context.
pub(crate) fn report_panic_of(
    lp: &crate::EventLoop,
    payload: Box<dyn Any + Send>,
    transport: Option<String>,
    protocol: Option<&'static str>,
) {
    let mut ctx =
        crate::ExceptionContext::new("Exception in a protocol callback; closing the connection")
            .with_panic(payload);
    if let Some(t) = transport {
        ctx = ctx.with_transport(t);
    }
    if let Some(p) = protocol {
        ctx = ctx.with_protocol(p);
    }
    lp.call_exception_handler(&ctx);
}

/// What a read's result means to the transport.
#[inline(always)]
fn outcome(r: io::Result<usize>) -> Result<usize, ReadOutcome> {
    match r {
        Ok(0) => Err(ReadOutcome::Eof),
        Ok(n) => Ok(n),
        Err(e) if crate::sys::is_would_block(&e) => Err(ReadOutcome::WouldBlock),
        Err(e) => Err(ReadOutcome::Error(e)),
    }
}

/// Holds a [`Protocol`].
pub(crate) struct Plain<P>(pub(crate) P);

impl<P: Protocol> Plain<P> {
    /// The adapter's choice: the loop's shared buffer.
    #[inline(always)]
    fn read_with(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
        shared: &mut [u8],
    ) -> ReadOutcome {
        match outcome(read(shared)) {
            Ok(n) => {
                self.0.data_received(&shared[..n]);
                ReadOutcome::Data
            }
            Err(o) => o,
        }
    }
}

impl<P: Protocol> ProtoObj for Plain<P> {
    fn connection_made(&mut self, t: &Transport) {
        self.0.connection_made(t);
    }
    fn read(&mut self, read: &mut ReadFn<'_>, shared: &mut [u8]) -> ReadOutcome {
        self.read_with(read, shared)
    }
    #[inline]
    fn read_socket(&mut self, io: &SocketIo, shared: &mut [u8]) -> ReadOutcome {
        self.read_with(|b| io.read(b), shared)
    }
    fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        if !data.is_empty() {
            self.0.data_received(data);
        }
        Ok(())
    }
    fn eof_received(&mut self) -> bool {
        self.0.eof_received()
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0.connection_lost(exc);
    }
    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }
    fn as_any(&mut self) -> &mut dyn Any {
        &mut self.0
    }
}

/// Holds a [`BufferedProtocol`].
pub(crate) struct BufferedAdapter<P>(pub(crate) P);

/// A `BufferedProtocol` whose `get_buffer` gave nothing to read into (asyncio's
/// `RuntimeError('get_buffer() returned an empty buffer')`).
fn empty_buffer() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "BufferedProtocol::get_buffer() returned an empty buffer",
    )
}

impl<P: BufferedProtocol> BufferedAdapter<P> {
    /// The adapter's choice: the protocol's own buffer.
    #[inline(always)]
    fn read_with(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
        _shared: &mut [u8],
    ) -> ReadOutcome {
        let buf = self.0.get_buffer(0);
        if buf.is_empty() {
            return ReadOutcome::Error(empty_buffer());
        }
        match outcome(read(buf)) {
            Ok(n) => {
                self.0.buffer_updated(n);
                ReadOutcome::Data
            }
            Err(o) => o,
        }
    }
}

impl<P: BufferedProtocol> ProtoObj for BufferedAdapter<P> {
    fn connection_made(&mut self, t: &Transport) {
        self.0.connection_made(t);
    }
    fn read(&mut self, read: &mut ReadFn<'_>, shared: &mut [u8]) -> ReadOutcome {
        self.read_with(read, shared)
    }
    #[inline]
    fn read_socket(&mut self, io: &SocketIo, shared: &mut [u8]) -> ReadOutcome {
        self.read_with(|b| io.read(b), shared)
    }
    fn feed(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let buf = self.0.get_buffer(data.len());
            if buf.is_empty() {
                return Err(empty_buffer());
            }
            let n = buf.len().min(data.len());
            buf[..n].copy_from_slice(&data[..n]);
            self.0.buffer_updated(n);
            data = &data[n..];
        }
        Ok(())
    }
    fn eof_received(&mut self) -> bool {
        self.0.eof_received()
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0.connection_lost(exc);
    }
    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }
    fn as_any(&mut self) -> &mut dyn Any {
        &mut self.0
    }
}

/// Marks a [`BufferedProtocol`] for the functions that take a stream protocol: pass
/// `Buffered(p)` — or `|| Buffered(MyProto::new())` as a factory — and the transport reads
/// into the protocol's own buffer (`get_buffer` / `buffer_updated`), as asyncio does for a
/// protocol that subclasses `BufferedProtocol`. A plain [`Protocol`] is passed as it is.
///
/// ```no_run
/// use tulip::{Buffered, BufferedProtocol};
///
/// struct Collect(Vec<u8>, usize);
/// impl BufferedProtocol for Collect {
///     fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
///         &mut self.0[self.1..]
///     }
///     fn buffer_updated(&mut self, n: usize) {
///         self.1 += n;
///     }
/// }
///
/// # tulip::run(async {
/// let (transport, proto) = tulip::create_connection(
///     || Buffered(Collect(vec![0; 4096], 0)),
///     "127.0.0.1",
///     8888,
///     Default::default(),
/// )
/// .await?;
/// // The handle is to the protocol inside, a `ProtocolRef<Collect>`.
/// let received = proto.with(|c| c.1);
/// # transport.close();
/// # std::io::Result::Ok(()) });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffered<P>(pub P);

/// What the functions that start a stream transport accept as its protocol: every
/// [`Protocol`], and every [`BufferedProtocol`] wrapped in [`Buffered`]. Implemented by
/// tulip only.
pub trait StreamProtocol: Sized + 'static {
    /// The user's protocol type, which [`ProtocolRef`] gives access to (`P` for `P` and for
    /// `Buffered(P)`).
    type Protocol: 'static;
    #[doc(hidden)]
    fn into_obj(self) -> ProtoRc;
}

impl<P: Protocol> StreamProtocol for P {
    type Protocol = P;
    fn into_obj(self) -> ProtoRc {
        Rc::new(ProtoCell {
            type_id: TypeId::of::<P>(),
            cell: RefCell::new(Plain(self)),
        })
    }
}

impl<P: BufferedProtocol> StreamProtocol for Buffered<P> {
    type Protocol = P;
    fn into_obj(self) -> ProtoRc {
        Rc::new(ProtoCell {
            type_id: TypeId::of::<P>(),
            cell: RefCell::new(BufferedAdapter(self.0)),
        })
    }
}

/// The user's handle to a protocol that a transport owns (what asyncio's
/// `create_connection` returns as its second element).
///
/// Access goes through closures, so no borrow can be held across an `await` while the
/// transport needs the protocol.
pub struct ProtocolRef<P> {
    obj: AnyProto,
    _p: PhantomData<Rc<RefCell<P>>>,
}

/// A protocol of any kind in its cell.
#[derive(Clone)]
enum AnyProto {
    Stream(ProtoRc),
    Datagram(super::datagram::DgramRc),
}

impl<P> Clone for ProtocolRef<P> {
    fn clone(&self) -> Self {
        ProtocolRef {
            obj: self.obj.clone(),
            _p: PhantomData,
        }
    }
}

impl<P: 'static> ProtocolRef<P> {
    pub(crate) fn new(obj: ProtoRc) -> ProtocolRef<P> {
        ProtocolRef {
            obj: AnyProto::Stream(obj),
            _p: PhantomData,
        }
    }

    /// The handle to a datagram protocol.
    pub(crate) fn new_datagram(obj: super::datagram::DgramRc) -> ProtocolRef<P> {
        ProtocolRef {
            obj: AnyProto::Datagram(obj),
            _p: PhantomData,
        }
    }

    /// Whether the protocol is a `P`.
    pub(crate) fn is_a(obj: &ProtoRc) -> bool {
        obj.type_id == TypeId::of::<P>()
    }

    /// Runs `f` on the protocol; `None` if the protocol is busy in one of its own callbacks
    /// (calling this from inside the protocol itself).
    pub fn try_with<R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        match &self.obj {
            AnyProto::Stream(obj) => {
                let mut g = obj.cell.try_borrow_mut().ok()?;
                Some(f(g.as_any().downcast_mut::<P>()?))
            }
            AnyProto::Datagram(obj) => {
                let mut g = obj.cell.try_borrow_mut().ok()?;
                Some(f(g.as_any().downcast_mut::<P>()?))
            }
        }
    }

    /// Runs `f` on the protocol.
    ///
    /// # Panics
    /// If called from inside one of this protocol's own callbacks (use `&mut self` there).
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        self.try_with(f)
            .expect("ProtocolRef::with called while the protocol runs one of its callbacks")
    }
}

impl<P> fmt::Debug for ProtocolRef<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolRef")
            .field("type", &std::any::type_name::<P>())
            .finish()
    }
}
