//! Connections and servers: `create_connection` (with Happy Eyeballs),
//! `create_unix_connection`, `connect_accepted_socket` — from an address to a transport and
//! its protocol — and the options of every entry point that connects or serves
//! ([`ConnectOptions`], [`ServerOptions`], [`DatagramOptions`]).

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use socket2::{Domain, Protocol as IpProto, SockAddr, Socket, Type};

use crate::event_loop::{EventLoop, get_running_loop};
use crate::sock::sock_connect;
use crate::time::{Sleep, sleep};
use crate::transports::socket;
use crate::transports::{ProtoRc, ProtocolRef, StreamProtocol, Transport};

pub use crate::datagram::DatagramOptions;
pub use crate::server::ServerOptions;

/// asyncio's recommended `happy_eyeballs_delay` (RFC 8305's "Connection Attempt Delay").
pub const HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(250);

/// Options of every entry point that opens a connection: [`create_connection`],
/// [`create_unix_connection`],
/// [`open_connection`](crate::open_connection) and
/// [`open_unix_connection`](crate::open_unix_connection) (asyncio's keyword arguments).
/// `Default::default()` is asyncio's defaults.
///
/// An option that the entry point cannot honour is refused (`InvalidInput`, naming the
/// option), never ignored: a Unix socket has no Happy Eyeballs, interleaving or IP local
/// address, and a callback protocol has no stream buffer `limit`.
///
/// ```
/// use std::time::Duration;
/// let opts = tulip::net::ConnectOptions::new()
///     .happy_eyeballs_delay(Some(Duration::from_millis(100)))
///     .interleave(1)
///     .limit(1 << 20);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub(crate) local_addr: Option<SocketAddr>,
    /// `None`: not set (asyncio's 250 ms).
    pub(crate) happy_eyeballs_delay: Option<Option<Duration>>,
    /// `None`: not set (1).
    pub(crate) interleave: Option<usize>,
    /// `None`: not set ([`DEFAULT_LIMIT`](crate::streams::DEFAULT_LIMIT) for streams).
    pub(crate) limit: Option<usize>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsOptions>,
}

/// The error for an option that `entry` cannot honour.
pub(crate) fn unsupported(option: &str, entry: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{option} is not supported by {entry}"),
    )
}

impl ConnectOptions {
    /// The defaults: Happy Eyeballs with a 250 ms delay, families interleaved one by one, the
    /// default stream limit.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Binds the socket to this local address before connecting (asyncio's `local_addr`).
    /// TCP only.
    pub fn local_addr(mut self, addr: SocketAddr) -> ConnectOptions {
        self.local_addr = Some(addr);
        self
    }

    /// How long to wait for an attempt before starting the next one in parallel; `None`
    /// tries the addresses one after the other, each until it fails (no Happy Eyeballs).
    /// TCP only; the default is [`HAPPY_EYEBALLS_DELAY`].
    pub fn happy_eyeballs_delay(mut self, delay: Option<Duration>) -> ConnectOptions {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// Speaks TLS over the connection (asyncio's `ssl=`): the protocol sees plaintext, after
    /// the handshake, through a TLS transport. The server's certificate is verified against
    /// `server_hostname`, by default the host given to `create_connection` (over a Unix
    /// socket, set `TlsOptions::server_hostname`).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsOptions) -> ConnectOptions {
        self.tls = Some(tls);
        self
    }

    /// How many addresses of the first family come before one of the other (RFC 8305's
    /// "First Address Family Count"); 0 keeps the resolver's order. TCP only; default 1.
    pub fn interleave(mut self, n: usize) -> ConnectOptions {
        self.interleave = Some(n);
        self
    }

    /// The stream buffer limit (asyncio's `limit=`): how much a `StreamReader` buffers
    /// before it pauses reading, and the longest line `readline` accepts. Streams only
    /// (`open_connection`, `open_unix_connection`); default
    /// [`DEFAULT_LIMIT`](crate::streams::DEFAULT_LIMIT).
    pub fn limit(mut self, limit: usize) -> ConnectOptions {
        self.limit = Some(limit);
        self
    }

    fn delay(&self) -> Option<Duration> {
        self.happy_eyeballs_delay
            .unwrap_or(Some(HAPPY_EYEBALLS_DELAY))
    }

    /// Takes the stream limit out (the streams use it; the transport below must not see it).
    pub(crate) fn take_limit(&mut self) -> io::Result<usize> {
        match self.limit.take() {
            Some(0) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "limit must be positive (a zero stream limit could not hold a byte)",
            )),
            limit => Ok(limit.unwrap_or(crate::streams::DEFAULT_LIMIT)),
        }
    }

    /// Refuses a stream limit: `entry` runs a callback protocol, which has no stream buffer.
    fn check_no_limit(&self, entry: &str) -> io::Result<()> {
        if self.limit.is_some() {
            return Err(unsupported(
                "ConnectOptions::limit (a stream option)",
                entry,
            ));
        }
        Ok(())
    }

    /// Refuses what a Unix socket cannot honour (asyncio's `create_unix_connection` has
    /// none of these arguments).
    fn check_unix(&self, entry: &str) -> io::Result<()> {
        let set = [
            ("ConnectOptions::local_addr", self.local_addr.is_some()),
            (
                "ConnectOptions::happy_eyeballs_delay",
                self.happy_eyeballs_delay.is_some(),
            ),
            ("ConnectOptions::interleave", self.interleave.is_some()),
        ];
        match set.iter().find(|(_, on)| *on) {
            Some((name, _)) => Err(unsupported(name, entry)),
            None => Ok(()),
        }
    }
}

/// Resolves `host:port`: an IP literal at once, a name on the blocking pool (never on the
/// loop's thread). A failure is `NotFound` with a [`ResolveError`](crate::ResolveError)
/// naming the host. The lookup itself lives in `dns.rs`.
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    crate::dns::resolve(host, port).await
}

/// RFC 8305 §4: alternate the families, `first` addresses of the first family at a time.
fn interleave(addrs: Vec<SocketAddr>, first: usize) -> Vec<SocketAddr> {
    if first == 0 || addrs.is_empty() {
        return addrs;
    }
    let v6_first = addrs[0].is_ipv6();
    let (a, b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == v6_first);
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut ai, mut bi) = (a.into_iter(), b.into_iter());
    loop {
        let mut took = false;
        for x in ai.by_ref().take(first) {
            out.push(x);
            took = true;
        }
        if let Some(x) = bi.next() {
            out.push(x);
            took = true;
        }
        if !took {
            return out;
        }
    }
}

type Attempt = Pin<Box<dyn Future<Output = (SocketAddr, io::Result<Socket>)>>>;

fn attempt(addr: SocketAddr, local: Option<SocketAddr>) -> Attempt {
    Box::pin(async move {
        let r = async {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(IpProto::TCP))?;
            s.set_nonblocking(true)?;
            s.set_cloexec(true)?;
            if let Some(l) = local {
                s.bind(&l.into())?;
            }
            sock_connect(&s, addr).await?;
            Ok(s)
        }
        .await;
        (addr, r)
    })
}

/// The error when every attempt failed: it names each address and why.
fn all_failed(host: &str, port: u16, errors: Vec<(SocketAddr, io::Error)>) -> io::Error {
    if errors.len() == 1 {
        let (a, e) = errors.into_iter().next().expect("one error");
        return io::Error::new(e.kind(), format!("connect to {a} failed: {e}"));
    }
    let kind = errors[0].1.kind();
    let same = errors.iter().all(|(_, e)| e.kind() == kind);
    let detail: Vec<String> = errors.iter().map(|(a, e)| format!("{a}: {e}")).collect();
    io::Error::new(
        if same { kind } else { io::ErrorKind::Other },
        format!(
            "could not connect to {host}:{port}; tried {}",
            detail.join("; ")
        ),
    )
}

/// Happy Eyeballs (RFC 8305): start an attempt, and another every `delay` while earlier
/// ones are pending (or as soon as one fails); the first to connect wins and the others are
/// dropped — closing their sockets.
async fn connect_happy(
    host: &str,
    port: u16,
    addrs: Vec<SocketAddr>,
    opts: &ConnectOptions,
) -> io::Result<Socket> {
    let addrs = interleave(addrs, opts.interleave.unwrap_or(1));
    let mut next = 0usize;
    let mut running: Vec<Attempt> = Vec::new();
    let mut errors: Vec<(SocketAddr, io::Error)> = Vec::new();
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut failed = false;
    poll_fn(|cx| {
        loop {
            // Start the next attempt when none runs, when the delay passed, or when an
            // attempt just failed (RFC 8305: a failure starts the next one at once).
            let fired = failed
                || timer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
            failed = false;
            if next < addrs.len() && (running.is_empty() || fired) {
                running.push(attempt(addrs[next], opts.local_addr));
                next += 1;
                timer = opts.delay().map(|d| Box::pin(sleep(d)));
            }
            let mut i = 0;
            while i < running.len() {
                match running[i].as_mut().poll(cx) {
                    Poll::Ready((_, Ok(s))) => return Poll::Ready(Ok(s)),
                    Poll::Ready((a, Err(e))) => {
                        errors.push((a, e));
                        drop(running.swap_remove(i));
                        failed = true;
                    }
                    Poll::Pending => i += 1,
                }
            }
            if running.is_empty() && next >= addrs.len() {
                let errs = std::mem::take(&mut errors);
                return Poll::Ready(Err(all_failed(host, port, errs)));
            }
            if failed && next < addrs.len() {
                continue;
            }
            // Arm the delay timer with this waker (a new timer has not been polled yet).
            if next < addrs.len()
                && timer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready())
            {
                continue;
            }
            return Poll::Pending;
        }
    })
    .await
}

/// Aborts a transport whose creation was abandoned (the awaiting future dropped).
struct AbortOnDrop(Option<Transport>);

impl AbortOnDrop {
    #[cfg(feature = "tls")]
    fn defuse(mut self) -> Option<Transport> {
        self.0.take()
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// Starts a transport on a connected socket and waits until the protocol has had its
/// `connection_made`.
pub(crate) async fn start_transport<P: StreamProtocol>(
    lp: &EventLoop,
    sock: Socket,
    protocol: P,
    peername: Option<SockAddr>,
) -> io::Result<(Transport, ProtocolRef<P::Protocol>)> {
    let obj = protocol.into_obj();
    let t = start_obj(lp, sock, obj.clone(), peername).await?;
    Ok((t, ProtocolRef::new(obj)))
}

/// [`start_transport`] for a protocol already in its cell.
async fn start_obj(
    lp: &EventLoop,
    sock: Socket,
    obj: ProtoRc,
    peername: Option<SockAddr>,
) -> io::Result<Transport> {
    let waiter = lp.create_future::<()>();
    let t = socket::start(lp, sock, obj, peername, Some(waiter.clone()));
    let mut guard = AbortOnDrop(Some(t.handle()));
    waiter.await?;
    Ok(guard.0.take().expect("set above"))
}

fn tcp_tune(s: &Socket) -> io::Result<()> {
    s.set_tcp_nodelay(true)
}

/// Opens a TCP connection to `host:port` and runs the protocol from `protocol_factory` on
/// it (asyncio's `loop.create_connection`). Returns the transport and a handle to the
/// protocol once `connection_made` has run.
///
/// The host name is resolved off the loop's thread. With several addresses, Happy Eyeballs
/// (RFC 8305) is on by default: a new attempt starts every 250 ms while earlier ones are
/// pending, and the first to connect wins — a dead IPv6 address does not stall the connect.
/// `TCP_NODELAY` is set, as asyncio does.
///
/// ```no_run
/// # tulip::run(async {
/// struct Hello;
/// impl tulip::Protocol for Hello {
///     fn connection_made(&mut self, t: &tulip::Transport) {
///         t.write(b"hello\n");
///     }
/// }
/// let (transport, _proto) =
///     tulip::create_connection(|| Hello, "localhost", 8888, Default::default()).await?;
/// transport.close();
/// # std::io::Result::Ok(()) });
/// ```
///
/// # Errors
/// A name that does not resolve: `NotFound`, with a [`ResolveError`](crate::ResolveError)
/// naming the host; when every address fails, one error naming each address and why;
/// `InvalidInput` for [`ConnectOptions::limit`] (a stream option).
///
/// # Cancel safety
/// Dropping it before it completes leaves nothing behind, and a new call starts over: a
/// name lookup still running on the blocking pool finishes there and is discarded,
/// connection attempts in progress are closed, and a transport already started (waiting for
/// `connection_made` or the TLS handshake) is aborted — a protocol that had its
/// `connection_made` gets `connection_lost`.
///
/// # Panics
/// Outside of a running loop.
pub async fn create_connection<P, F>(
    protocol_factory: F,
    host: &str,
    port: u16,
    options: ConnectOptions,
) -> io::Result<(Transport, ProtocolRef<P::Protocol>)>
where
    F: FnOnce() -> P,
    P: StreamProtocol,
{
    options.check_no_limit("create_connection")?;
    let lp = get_running_loop();
    let addrs = resolve(host, port).await?;
    let sock = connect_happy(host, port, addrs, &options).await?;
    tcp_tune(&sock)?;
    let peer = sock.peer_addr().ok();
    #[cfg(feature = "tls")]
    if let Some(tls) = options.tls.clone() {
        return start_tls_transport(&lp, sock, protocol_factory(), peer, tls, Some(host)).await;
    }
    start_transport(&lp, sock, protocol_factory(), peer).await
}

/// The TLS variant of `start_transport`: the TLS protocol goes on the socket, the user's
/// protocol on top; returns once the handshake is done.
#[cfg(feature = "tls")]
pub(crate) async fn start_tls_transport<P: StreamProtocol>(
    lp: &EventLoop,
    sock: Socket,
    protocol: P,
    peername: Option<SockAddr>,
    tls: crate::tls::TlsOptions,
    host: Option<&str>,
) -> io::Result<(Transport, ProtocolRef<P::Protocol>)> {
    use crate::tls::{Role, wrap};
    let user = protocol.into_obj();
    let w = wrap(lp, user.clone(), tls, Role::Connect(host))?;
    let raw = start_obj(lp, sock, w.protocol, peername).await?;
    let guard = AbortOnDrop(Some(raw));
    w.handshake.await?;
    drop(guard.defuse());
    Ok((w.transport.handle(), ProtocolRef::new(user)))
}

/// Opens a Unix stream connection to `path` (asyncio's `create_unix_connection`).
///
/// Of the [`ConnectOptions`], [`tls`](ConnectOptions::tls) applies (a TLS client over a
/// Unix socket needs `TlsOptions::server_hostname`); the TCP-only ones and `limit` are
/// refused.
///
/// # Errors
/// What `connect` reports (`NotFound`, `ConnectionRefused`, …), naming the path; the TLS
/// handshake's failure; `InvalidInput` for an option a Unix socket cannot honour
/// (`local_addr`, `happy_eyeballs_delay`, `interleave`) or `limit`.
///
/// # Cancel safety
/// As [`create_connection`]: dropping it closes the socket being connected, or aborts the
/// transport already started.
///
/// # Panics
/// Outside of a running loop.
pub async fn create_unix_connection<P, F>(
    protocol_factory: F,
    path: impl AsRef<Path>,
    options: ConnectOptions,
) -> io::Result<(Transport, ProtocolRef<P::Protocol>)>
where
    F: FnOnce() -> P,
    P: StreamProtocol,
{
    options.check_no_limit("create_unix_connection")?;
    unix_connect(
        protocol_factory,
        path.as_ref(),
        options,
        "create_unix_connection",
    )
    .await
}

/// `create_unix_connection` without the limit check (the streams took the limit out);
/// `entry` names the caller in errors.
pub(crate) async fn unix_connect<P, F>(
    protocol_factory: F,
    path: &Path,
    options: ConnectOptions,
    entry: &str,
) -> io::Result<(Transport, ProtocolRef<P::Protocol>)>
where
    F: FnOnce() -> P,
    P: StreamProtocol,
{
    options.check_unix(entry)?;
    let lp = get_running_loop();
    let addr = SockAddr::unix(path)?;
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    sock_connect(&s, addr.clone())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("connect to {}: {e}", path.display())))?;
    #[cfg(feature = "tls")]
    if let Some(tls) = options.tls.clone() {
        return start_tls_transport(&lp, s, protocol_factory(), Some(addr), tls, None).await;
    }
    start_transport(&lp, s, protocol_factory(), Some(addr)).await
}

/// Runs a protocol on a socket connected elsewhere (asyncio's `connect_accepted_socket`):
/// e.g. one end of a socketpair, or a connection accepted by other code. The socket is put
/// in non-blocking mode; the transport owns it from now on.
///
/// The socket is connected already, so none of the [`ConnectOptions`] applies: pass
/// `Default::default()`. For TLS, call [`tls::start_tls`](crate::tls::start_tls) on the
/// transport.
///
/// # Errors
/// `InvalidInput` for any option set (naming it).
///
/// # Cancel safety
/// Not resumable: the socket is moved in, and dropping the future before
/// `connection_made` has run aborts the transport, which closes it.
///
/// # Panics
/// Outside of a running loop.
pub async fn connect_accepted_socket<P, F>(
    protocol_factory: F,
    sock: impl Into<Socket>,
    options: ConnectOptions,
) -> io::Result<(Transport, ProtocolRef<P::Protocol>)>
where
    F: FnOnce() -> P,
    P: StreamProtocol,
{
    const ENTRY: &str = "connect_accepted_socket";
    options.check_no_limit(ENTRY)?;
    options.check_unix(ENTRY)?;
    #[cfg(feature = "tls")]
    if options.tls.is_some() {
        return Err(unsupported(
            "ConnectOptions::tls (use tls::start_tls on the transport)",
            ENTRY,
        ));
    }
    let lp = get_running_loop();
    let s: Socket = sock.into();
    s.set_nonblocking(true)?;
    if matches!(s.local_addr().map(|a| a.is_ipv4() || a.is_ipv6()), Ok(true)) {
        s.set_tcp_nodelay(true).ok();
    }
    start_transport(&lp, s, protocol_factory(), None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interleaves_families() {
        let v = vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("[::3]:1"),
            a("1.0.0.1:1"),
            a("1.0.0.2:1"),
        ];
        assert_eq!(interleave(v.clone(), 1), vec![v[0], v[3], v[1], v[4], v[2]]);
        assert_eq!(interleave(v.clone(), 2), vec![v[0], v[1], v[3], v[2], v[4]]);
        assert_eq!(interleave(v.clone(), 0), v);
    }
}
