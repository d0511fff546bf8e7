//! The `sock_*` futures: asyncio's `loop.sock_recv` & co. as futures.
//!
//! Each one tries its system call at once and waits only on `WouldBlock`: it makes its task
//! the reader (or writer) of the socket's fd and tries again when woken. (One exception:
//! right after a `recv` on a stream socket came back short, with no event since, the next
//! `sock_recv`/`sock_recv_into` waits for readiness at once, saving a `recv` that could only
//! fail with `EAGAIN`; see `selector/rearm.rs`.) Dropping the future
//! removes that registration. The removal reaches the kernel at the end of the loop
//! iteration, so the next operation on the same socket in the same task step finds the fd
//! still armed: a steady echo loop costs no `epoll_ctl` at all (see `selector/rearm.rs`).
//!
//! Sockets must be in non-blocking mode (asyncio raises `ValueError` otherwise); a blocking
//! one is refused with `ErrorKind::InvalidInput` by every operation, always (one
//! `fcntl(F_GETFL)` per operation: no cache can tell a new blocking socket that reuses an
//! fd number and an address from the one before). `recv`/`send` also pass `MSG_DONTWAIT`,
//! so not even a mistake can block the loop.

use std::fmt;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use socket2::{SockAddr, SockRef, Socket, Type};

use crate::event_loop::{Inner, current_rc, with_current};
use crate::selector::Direction;
use crate::transports::stream::READ_BUFFER_SIZE;

use crate::sys::{self, RECV_FLAGS, SEND_FLAGS, is_would_block};

fn blocking_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the socket must be non-blocking: call set_nonblocking(true) before using it with sock_* operations",
    )
}

/// Refuses a socket in blocking mode, always: one `fcntl(F_GETFL)` per operation. No cache
/// can stand in for it — between two operations the socket may be closed and a blocking one
/// opened with the same fd number at the same address (a loop's stack slot), and nothing
/// short of asking the kernel tells them apart; a blocking listener let through would block
/// the loop in `accept`.
///
/// `addr` is the socket object's address: with the fd it keys what the selector learns
/// about the socket for the read-drained hint (`selector/rearm.rs`), a hint that costs one
/// loop iteration at worst when wrong.
fn check_nonblocking(inner: &Inner, fd: RawFd, addr: usize) -> io::Result<()> {
    if !sys::is_nonblocking(fd)? {
        return Err(blocking_error());
    }
    if !inner.selector.is_verified(fd, addr) {
        inner.selector.set_verified(fd, addr);
    }
    Ok(())
}

fn check_first(fd: RawFd, addr: usize) -> io::Result<()> {
    with_current(|inner| check_nonblocking(inner, fd, addr))
        .expect("sock_* futures must be polled on a running tulip event loop")
}

/// As [`check_first`], for a read: also says whether the last `recv` on the stream socket
/// found its queue empty, with no event since (see `selector/rearm.rs`).
fn check_first_read(fd: RawFd, addr: usize) -> io::Result<bool> {
    with_current(|inner| {
        check_nonblocking(inner, fd, addr).map(|()| inner.selector.is_read_drained(fd))
    })
    .expect("sock_* futures must be polled on a running tulip event loop")
}

/// A future's registration as the reader or writer of an fd; dropped, it unregisters.
/// (Also the machinery of `sock_sendfile`, in `src/sendfile.rs`.)
pub(crate) struct Waiter {
    /// `Some` while registered.
    lp: Option<Rc<Inner>>,
    fd: RawFd,
    dir: Direction,
    /// Whether the blocking-mode check passed.
    checked: bool,
}

impl Waiter {
    pub(crate) fn new(dir: Direction) -> Waiter {
        Waiter {
            lp: None,
            fd: -1,
            dir,
            checked: false,
        }
    }

    /// Runs `op` until it completes, registering the task to be woken on `WouldBlock`.
    #[inline]
    pub(crate) fn poll_io<R>(
        &mut self,
        cx: &mut Context<'_>,
        fd: RawFd,
        addr: usize,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if !self.checked {
            if let Err(e) = check_first(fd, addr) {
                return Poll::Ready(Err(e));
            }
            self.checked = true;
        }
        loop {
            match op() {
                Ok(v) => {
                    self.unregister();
                    return Poll::Ready(Ok(v));
                }
                Err(e) if is_would_block(&e) => {
                    return match self.register(cx, fd) {
                        Ok(()) => Poll::Pending,
                        Err(e) => Poll::Ready(Err(e)),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.unregister();
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// [`poll_io`](Waiter::poll_io) for a `recv` of up to `len` bytes from `sock`: if the last
    /// one on this stream socket came back short and nothing arrived since, waits for
    /// readiness without trying; if this one comes back short, says so to the selector.
    #[inline]
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        sock: &SockRef<'_>,
        addr: usize,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let fd = sock.as_raw_fd();
        if !self.checked {
            match check_first_read(fd, addr) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(drained) => {
                    self.checked = true;
                    if drained {
                        return match self.register(cx, fd) {
                            Ok(()) => Poll::Pending,
                            Err(e) => Poll::Ready(Err(e)),
                        };
                    }
                }
            }
        }
        let r = self.poll_io(cx, fd, addr, op);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 && n < len {
                let is_stream = || sock.r#type().is_ok_and(|t| t == Type::STREAM);
                with_current(|inner| inner.selector.note_read_drained(fd, is_stream));
            }
        }
        r
    }

    fn register(&mut self, cx: &mut Context<'_>, fd: RawFd) -> io::Result<()> {
        if self.lp.is_none() {
            self.lp = Some(
                current_rc().expect("sock_* futures must be polled on a running tulip event loop"),
            );
            self.fd = fd;
        }
        let lp = self.lp.as_ref().expect("set above");
        let r = lp.selector.register_waker(fd, self.dir, cx.waker());
        if r.is_err() {
            self.unregister();
        }
        r
    }

    fn unregister(&mut self) {
        if let Some(lp) = self.lp.take() {
            lp.selector.unregister_waker(self.fd, self.dir);
        }
    }
}

impl Waiter {
    /// Whether the waiter is registered with the selector.
    pub(crate) fn is_waiting(&self) -> bool {
        self.lp.is_some()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.unregister();
    }
}

pub(crate) fn addr_of<S>(s: &S) -> usize {
    std::ptr::from_ref(s) as usize
}

// ---- sock_recv ----------------------------------------------------------------------------

/// Receives up to `n` bytes (asyncio's `loop.sock_recv`). An empty vector means the peer
/// closed its side (EOF).
///
/// `sock` is any socket type: `TcpStream`, `UnixStream`, `UdpSocket`, `socket2::Socket`…,
/// in non-blocking mode.
///
/// # Errors
/// `InvalidInput` for a socket in blocking mode; otherwise what `recv` reports
/// (`ConnectionReset`, …).
pub fn sock_recv<S: AsFd>(sock: &S, n: usize) -> SockRecv<'_, S> {
    SockRecv {
        sock,
        n,
        waiter: Waiter::new(Direction::Read),
    }
}

/// The future of [`sock_recv`].
///
/// It holds no buffer while it waits: the `recv` goes into the loop's shared read buffer
/// (the one the socket transports use) and the bytes that arrived are copied out into a
/// vector of their exact size, as asyncio allocates only in the `recv` and returns `bytes`
/// of the length received.
///
/// # Cancel safety
/// Cancel-safe: no data is taken from the socket unless the future completes.
#[must_use = "futures do nothing unless awaited"]
pub struct SockRecv<'a, S> {
    sock: &'a S,
    n: usize,
    waiter: Waiter,
}

impl<S: AsFd> Future for SockRecv<'_, S> {
    type Output = io::Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sock = SockRef::from(this.sock);
        let n = this.n;
        let mut out = Vec::new();
        let r = this.waiter.poll_recv(cx, &sock, addr_of(this.sock), n, || {
            out = recv_sized(n, |b| Ok((sock.recv_with_flags(b, RECV_FLAGS)?, ())))?.0;
            Ok(out.len())
        });
        r.map_ok(|_| out)
    }
}

/// A receive of up to `n` bytes into a vector of the size received (with what else `recv`
/// returns): through the loop's shared read buffer (grown only as far as asked, to at most
/// the transports' size), or, for a larger `n` (or the buffer in use), through a vector of
/// capacity `n` shrunk afterwards.
#[inline]
fn recv_sized<T>(
    n: usize,
    mut recv: impl FnMut(&mut [MaybeUninit<u8>]) -> io::Result<(usize, T)>,
) -> io::Result<(Vec<u8>, T)> {
    let shared = with_current(|inner| {
        if n > READ_BUFFER_SIZE {
            return None;
        }
        let mut buf = inner.read_buf.try_borrow_mut().ok()?;
        if buf.len() < n {
            buf.resize(n, 0);
        }
        Some(recv(sys::as_uninit(&mut buf[..n])).map(|(k, t)| (buf[..k].to_vec(), t)))
    })
    .flatten();
    if let Some(r) = shared {
        return r;
    }
    let mut v = Vec::new();
    let t = sys::recv_into_spare(&mut v, n, recv)?;
    v.shrink_to_fit();
    Ok((v, t))
}

// ---- sock_recv_into -----------------------------------------------------------------------

/// Receives into `buf`, returning how many bytes arrived (asyncio's `loop.sock_recv_into`).
/// `0` means EOF (for a non-empty `buf`).
///
/// # Errors
/// As [`sock_recv`].
pub fn sock_recv_into<'a, S: AsFd>(sock: &'a S, buf: &'a mut [u8]) -> SockRecvInto<'a, S> {
    SockRecvInto {
        sock,
        buf,
        waiter: Waiter::new(Direction::Read),
    }
}

/// The future of [`sock_recv_into`].
///
/// # Cancel safety
/// Cancel-safe: no data is taken from the socket unless the future completes.
#[must_use = "futures do nothing unless awaited"]
pub struct SockRecvInto<'a, S> {
    sock: &'a S,
    buf: &'a mut [u8],
    waiter: Waiter,
}

impl<S: AsFd> Future for SockRecvInto<'_, S> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sock = SockRef::from(this.sock);
        let buf = &mut *this.buf;
        let len = buf.len();
        this.waiter
            .poll_recv(cx, &sock, addr_of(this.sock), len, || {
                sock.recv_with_flags(sys::as_uninit(buf), RECV_FLAGS)
            })
    }
}

// ---- sock_sendall -------------------------------------------------------------------------

/// Sends all of `data` (asyncio's `loop.sock_sendall`), waiting for room as often as needed.
///
/// # Errors
/// `InvalidInput` for a socket in blocking mode; otherwise what `send` reports
/// (`BrokenPipe`, `ConnectionReset`, …). `SIGPIPE` is never raised.
pub fn sock_sendall<'a, S: AsFd>(sock: &'a S, data: &'a [u8]) -> SockSendall<'a, S> {
    SockSendall {
        sock,
        data,
        pos: 0,
        waiter: Waiter::new(Direction::Write),
    }
}

/// The future of [`sock_sendall`].
///
/// # Cancel safety
/// Not cancel-safe: if dropped before completion, an unknown prefix of the data may have
/// been sent ([`sent`](SockSendall::sent) tells how much).
#[must_use = "futures do nothing unless awaited"]
pub struct SockSendall<'a, S> {
    sock: &'a S,
    data: &'a [u8],
    pos: usize,
    waiter: Waiter,
}

impl<S> SockSendall<'_, S> {
    /// How many bytes were sent so far.
    pub fn sent(&self) -> usize {
        self.pos
    }
}

impl<S: AsFd> Future for SockSendall<'_, S> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.pos >= this.data.len() {
            return Poll::Ready(Ok(()));
        }
        let sock = SockRef::from(this.sock);
        let data = this.data;
        let pos = &mut this.pos;
        this.waiter.poll_io(
            cx,
            this.sock.as_fd().as_raw_fd(),
            addr_of(this.sock),
            || loop {
                let n = sock.send_with_flags(&data[*pos..], SEND_FLAGS)?;
                *pos += n;
                if *pos >= data.len() {
                    return Ok(());
                }
            },
        )
    }
}

// ---- sock_connect -------------------------------------------------------------------------

/// Connects `sock` to `addr` (asyncio's `loop.sock_connect`): a non-blocking `connect`,
/// then, once the socket is writable, `SO_ERROR` tells how it went.
///
/// `sock` is any socket, as for the other `sock_*` operations (`socket2::Socket`, a std
/// socket type, …: anything that is `AsFd`). `addr` is anything that converts into a
/// `socket2::SockAddr`: a `std::net::SocketAddr`, or `SockAddr::unix(path)?` for a Unix
/// socket.
///
/// ```no_run
/// # tulip::run(async {
/// use socket2::{Domain, Socket, Type};
/// let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
/// sock.set_nonblocking(true)?;
/// tulip::sock_connect(&sock, "127.0.0.1:8888".parse::<std::net::SocketAddr>().unwrap()).await?;
/// let stream: std::net::TcpStream = sock.into();
/// # std::io::Result::Ok(()) });
/// ```
///
/// A socket whose earlier non-blocking connect is still in progress (`EALREADY`: the future
/// of a first `sock_connect` was dropped, say) is waited for, as asyncio does; one that the
/// earlier attempt already connected to `addr` succeeds at once.
///
/// # Errors
/// `InvalidInput` for a socket in blocking mode; `ConnectionRefused`, `TimedOut`,
/// `HostUnreachable`… as the kernel reports.
pub fn sock_connect<S: AsFd>(sock: &S, addr: impl Into<SockAddr>) -> SockConnect<'_, S> {
    SockConnect {
        sock,
        addr: addr.into(),
        started: false,
        waiter: Waiter::new(Direction::Write),
    }
}

/// The future of [`sock_connect`].
///
/// # Cancel safety
/// Dropping it leaves the socket with a connection attempt in progress: close the socket,
/// or call `sock_connect` again with the same address, which waits for that attempt.
#[must_use = "futures do nothing unless awaited"]
pub struct SockConnect<'a, S> {
    sock: &'a S,
    addr: SockAddr,
    started: bool,
    waiter: Waiter,
}

impl<S: AsFd> Future for SockConnect<'_, S> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let addr = &this.addr;
        let started = &mut this.started;
        let key = addr_of(this.sock);
        let sock = SockRef::from(this.sock);
        let fd = sock.as_raw_fd();
        this.waiter.poll_io(cx, fd, key, || {
            if !*started {
                *started = true;
                return match sock.connect(addr) {
                    Ok(()) => Ok(()),
                    Err(e) if sys::connect_in_progress(&e) => Err(io::ErrorKind::WouldBlock.into()),
                    // An earlier attempt to the same address (cancelled) got there first.
                    Err(e)
                        if sys::is_connected_already(&e)
                            && sock.peer_addr().is_ok_and(|p| p == *addr) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
            }
            if let Some(e) = sock.take_error()? {
                return Err(e);
            }
            match sock.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if sys::is_not_connected(&e) => Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(e),
            }
        })
    }
}

// ---- sock_accept --------------------------------------------------------------------------

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::net::TcpListener {}
    impl Sealed for std::os::unix::net::UnixListener {}
    impl Sealed for socket2::Socket {}
    impl Sealed for std::net::UdpSocket {}
    impl Sealed for std::os::unix::net::UnixDatagram {}
}

/// A listening socket type that [`sock_accept`] takes.
pub trait Accept: AsFd + sealed::Sealed {
    /// The accepted connection.
    type Stream;
    /// The peer's address.
    type Addr;
    /// One `accept`; the new connection is returned in non-blocking mode.
    #[doc(hidden)]
    fn accept_nonblocking(&self) -> io::Result<(Self::Stream, Self::Addr)>;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;
    fn accept_nonblocking(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self.accept()?;
        s.set_nonblocking(true)?;
        Ok((s, a))
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;
    type Addr = std::os::unix::net::SocketAddr;
    fn accept_nonblocking(&self) -> io::Result<(UnixStream, Self::Addr)> {
        let (s, a) = self.accept()?;
        s.set_nonblocking(true)?;
        Ok((s, a))
    }
}

impl Accept for Socket {
    type Stream = Socket;
    type Addr = SockAddr;
    fn accept_nonblocking(&self) -> io::Result<(Socket, SockAddr)> {
        let (s, a) = self.accept()?;
        s.set_nonblocking(true)?;
        Ok((s, a))
    }
}

/// Accepts one connection (asyncio's `loop.sock_accept`); the new socket is non-blocking.
///
/// # Errors
/// `InvalidInput` for a listener in blocking mode; otherwise what `accept` reports
/// (`EMFILE` when out of file descriptors, …).
pub fn sock_accept<L: Accept>(listener: &L) -> SockAccept<'_, L> {
    SockAccept {
        listener,
        waiter: Waiter::new(Direction::Read),
    }
}

/// The future of [`sock_accept`].
///
/// # Cancel safety
/// Cancel-safe: a connection is taken from the backlog only when the future completes.
#[must_use = "futures do nothing unless awaited"]
pub struct SockAccept<'a, L> {
    listener: &'a L,
    waiter: Waiter,
}

impl<L: Accept> Future for SockAccept<'_, L> {
    type Output = io::Result<(L::Stream, L::Addr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let l = this.listener;
        this.waiter
            .poll_io(cx, l.as_fd().as_raw_fd(), addr_of(l), || {
                l.accept_nonblocking()
            })
    }
}

// ---- sock_recvfrom / sock_sendto ----------------------------------------------------------

/// A datagram socket type that [`sock_recvfrom`] takes, with its address type.
pub trait RecvFrom: AsFd + sealed::Sealed {
    /// The sender's address.
    type Addr;
    /// Turns the kernel's address into `Addr`.
    #[doc(hidden)]
    fn convert(addr: SockAddr) -> io::Result<Self::Addr>;
}

impl RecvFrom for UdpSocket {
    type Addr = SocketAddr;
    fn convert(addr: SockAddr) -> io::Result<SocketAddr> {
        addr.as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP address"))
    }
}

impl RecvFrom for UnixDatagram {
    type Addr = SockAddr;
    fn convert(addr: SockAddr) -> io::Result<SockAddr> {
        Ok(addr)
    }
}

impl RecvFrom for Socket {
    type Addr = SockAddr;
    fn convert(addr: SockAddr) -> io::Result<SockAddr> {
        Ok(addr)
    }
}

/// Receives one datagram of up to `n` bytes and its sender (asyncio's
/// `loop.sock_recvfrom`). A longer datagram is truncated to `n` bytes.
///
/// # Errors
/// `InvalidInput` for a socket in blocking mode; otherwise what `recvfrom` reports.
pub fn sock_recvfrom<S: RecvFrom>(sock: &S, n: usize) -> SockRecvFrom<'_, S> {
    SockRecvFrom {
        sock,
        n,
        waiter: Waiter::new(Direction::Read),
    }
}

/// The future of [`sock_recvfrom`].
///
/// Like [`SockRecv`], it holds no buffer while it waits and returns a vector of the
/// datagram's size.
///
/// # Cancel safety
/// Cancel-safe: no datagram is taken unless the future completes.
#[must_use = "futures do nothing unless awaited"]
pub struct SockRecvFrom<'a, S> {
    sock: &'a S,
    n: usize,
    waiter: Waiter,
}

impl<S: RecvFrom> Future for SockRecvFrom<'_, S> {
    type Output = io::Result<(Vec<u8>, S::Addr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sock = SockRef::from(this.sock);
        let n = this.n;
        let r = this.waiter.poll_io(
            cx,
            this.sock.as_fd().as_raw_fd(),
            addr_of(this.sock),
            || recv_sized(n, |b| sock.recv_from_with_flags(b, RECV_FLAGS)),
        );
        match r {
            Poll::Ready(Ok((buf, addr))) => Poll::Ready(S::convert(addr).map(|a| (buf, a))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Receives one datagram into `buf` and returns its length and sender (asyncio's
/// `loop.sock_recvfrom_into`; pass `&mut buf[..nbytes]` for its `nbytes`). A longer datagram
/// is truncated to `buf.len()` bytes; nothing is allocated.
///
/// # Errors
/// As [`sock_recvfrom`].
pub fn sock_recvfrom_into<'a, S: RecvFrom>(
    sock: &'a S,
    buf: &'a mut [u8],
) -> SockRecvFromInto<'a, S> {
    SockRecvFromInto {
        sock,
        buf,
        waiter: Waiter::new(Direction::Read),
    }
}

/// The future of [`sock_recvfrom_into`].
///
/// # Cancel safety
/// Cancel-safe: no datagram is taken unless the future completes.
#[must_use = "futures do nothing unless awaited"]
pub struct SockRecvFromInto<'a, S> {
    sock: &'a S,
    buf: &'a mut [u8],
    waiter: Waiter,
}

impl<S: RecvFrom> Future for SockRecvFromInto<'_, S> {
    type Output = io::Result<(usize, S::Addr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sock = SockRef::from(this.sock);
        let buf = &mut *this.buf;
        let r = this.waiter.poll_io(
            cx,
            this.sock.as_fd().as_raw_fd(),
            addr_of(this.sock),
            || sock.recv_from_with_flags(sys::as_uninit(buf), RECV_FLAGS),
        );
        match r {
            Poll::Ready(Ok((n, addr))) => Poll::Ready(S::convert(addr).map(|a| (n, a))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Sends one datagram to `addr` (asyncio's `loop.sock_sendto`); returns the bytes sent.
///
/// # Errors
/// `InvalidInput` for a socket in blocking mode; otherwise what `sendto` reports.
pub fn sock_sendto<'a, S: AsFd>(
    sock: &'a S,
    data: &'a [u8],
    addr: impl Into<SockAddr>,
) -> SockSendTo<'a, S> {
    SockSendTo {
        sock,
        data,
        addr: addr.into(),
        waiter: Waiter::new(Direction::Write),
    }
}

/// The future of [`sock_sendto`].
///
/// # Cancel safety
/// Cancel-safe: the datagram is sent whole or not at all.
#[must_use = "futures do nothing unless awaited"]
pub struct SockSendTo<'a, S> {
    sock: &'a S,
    data: &'a [u8],
    addr: SockAddr,
    waiter: Waiter,
}

impl<S: AsFd> Future for SockSendTo<'_, S> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sock = SockRef::from(this.sock);
        let (data, addr) = (this.data, &this.addr);
        this.waiter.poll_io(
            cx,
            this.sock.as_fd().as_raw_fd(),
            addr_of(this.sock),
            || sock.send_to_with_flags(data, addr, SEND_FLAGS),
        )
    }
}

macro_rules! debug_future {
    ($($name:ident<$($lt:lifetime),* $(, $g:ident)?>),*) => {$(
        impl<$($lt,)* $($g)?> fmt::Debug for $name<$($lt,)* $($g)?> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("waiting", &self.waiter.lp.is_some())
                    .finish_non_exhaustive()
            }
        }
    )*};
}

debug_future!(
    SockRecv<'a, S>,
    SockRecvInto<'a, S>,
    SockSendall<'a, S>,
    SockConnect<'a, S>,
    SockAccept<'a, L>,
    SockRecvFrom<'a, S>,
    SockRecvFromInto<'a, S>,
    SockSendTo<'a, S>
);
