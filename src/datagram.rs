//! `create_datagram_endpoint` (asyncio's `loop.create_datagram_endpoint`): UDP and Unix
//! datagram endpoints, bound and/or connected, or on a socket of the caller's.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::event_loop::get_running_loop;
use crate::net::resolve;
use crate::protocols::DatagramProtocol;
use crate::transports::ProtocolRef;
use crate::transports::datagram::{DatagramTransport, Endpoint, into_obj};

/// One end of a datagram endpoint, as the options name it.
#[derive(Debug, Clone)]
enum Addr {
    /// A host name or IP literal and a port, resolved off the loop.
    Host(String, u16),
    /// A Unix socket path.
    Path(PathBuf),
}

/// The options of [`create_datagram_endpoint`], asyncio's keyword arguments as a builder.
///
/// ```
/// let opts = tulip::net::DatagramOptions::new().local_addr("127.0.0.1", 0).allow_broadcast(true);
/// # let _ = opts;
/// ```
#[derive(Default)]
pub struct DatagramOptions {
    local: Option<Addr>,
    remote: Option<Addr>,
    family: Option<Domain>,
    reuse_port: bool,
    allow_broadcast: bool,
    reuse_address: bool,
    gro: bool,
    sock: Option<Socket>,
}

impl DatagramOptions {
    /// No addresses, no options.
    pub fn new() -> DatagramOptions {
        DatagramOptions::default()
    }

    /// Binds to `host:port` (asyncio's `local_addr`); port 0 picks a free one.
    pub fn local_addr(mut self, host: &str, port: u16) -> DatagramOptions {
        self.local = Some(Addr::Host(host.to_owned(), port));
        self
    }

    /// Connects to `host:port` (asyncio's `remote_addr`): `sendto` needs no address, and
    /// only the peer's datagrams arrive.
    pub fn remote_addr(mut self, host: &str, port: u16) -> DatagramOptions {
        self.remote = Some(Addr::Host(host.to_owned(), port));
        self
    }

    /// Binds a Unix datagram socket to `path` (a stale socket file there is removed first;
    /// any other file is left alone, and the bind fails).
    pub fn local_path(mut self, path: impl AsRef<Path>) -> DatagramOptions {
        self.local = Some(Addr::Path(path.as_ref().to_owned()));
        self
    }

    /// Connects a Unix datagram socket to `path`.
    pub fn remote_path(mut self, path: impl AsRef<Path>) -> DatagramOptions {
        self.remote = Some(Addr::Path(path.as_ref().to_owned()));
        self
    }

    /// Only addresses of this family (asyncio's `family`); with no address, an unbound
    /// socket of it.
    pub fn family(mut self, family: Domain) -> DatagramOptions {
        self.family = Some(family);
        self
    }

    /// `SO_REUSEPORT`: other sockets may bind the same address (asyncio's `reuse_port`).
    pub fn reuse_port(mut self, on: bool) -> DatagramOptions {
        self.reuse_port = on;
        self
    }

    /// `SO_BROADCAST`: datagrams may go to broadcast addresses (asyncio's
    /// `allow_broadcast`).
    pub fn allow_broadcast(mut self, on: bool) -> DatagramOptions {
        self.allow_broadcast = on;
        self
    }

    /// asyncio's `reuse_address`: refused, as asyncio does since 3.8.1 — `SO_REUSEADDR` on a
    /// UDP socket lets another process bind the same port and steal its datagrams.
    /// [`create_datagram_endpoint`] fails with `InvalidInput` when it is set; use
    /// [`reuse_port`](DatagramOptions::reuse_port).
    pub fn reuse_address(mut self, on: bool) -> DatagramOptions {
        self.reuse_address = on;
        self
    }

    /// UDP generic receive offload (tulip's own, off by default; Linux ≥ 5.0): the kernel
    /// may hand several datagrams of one sender over as one — what a sender using UDP GSO
    /// (`UDP_SEGMENT`) sent in one call — and the endpoint splits them again: the protocol
    /// still gets one `datagram_received` per datagram, for fewer system calls and fewer
    /// socket-buffer entries in a flood. Also applies to a [`sock`](DatagramOptions::sock)
    /// (a UDP socket given with `UDP_GRO` already on is detected without it).
    /// [`create_datagram_endpoint`] fails with the system's error where the kernel lacks it,
    /// `Unsupported` off Linux, and `InvalidInput` for a Unix datagram endpoint.
    pub fn gro(mut self, on: bool) -> DatagramOptions {
        self.gro = on;
        self
    }

    /// Uses an existing datagram socket (asyncio's `sock`), bound and/or connected as it is;
    /// no other option may be given with it. It is made non-blocking.
    pub fn sock(mut self, sock: Socket) -> DatagramOptions {
        self.sock = Some(sock);
        self
    }
}

impl fmt::Debug for DatagramOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramOptions")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("family", &self.family)
            .field("reuse_port", &self.reuse_port)
            .field("allow_broadcast", &self.allow_broadcast)
            .field("gro", &self.gro)
            .field("sock", &self.sock.is_some())
            .finish()
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// An address as a message shows it: `IP:PORT`, a path, or `unnamed`.
pub(crate) fn show_addr(a: &SockAddr) -> String {
    if let Some(s) = a.as_socket() {
        return s.to_string();
    }
    match a.as_pathname() {
        Some(p) => p.display().to_string(),
        None => "an unnamed address".to_owned(),
    }
}

/// Creates a datagram endpoint and runs the protocol from `protocol_factory` on it
/// (asyncio's `loop.create_datagram_endpoint`). Returns once the protocol has had its
/// `connection_made`.
///
/// With IP addresses, host names are resolved off the loop, and each address family that
/// both ends have is tried in turn until a socket binds and connects. With Unix paths
/// (`local_path`, `remote_path`, or `family(Domain::UNIX)`), a Unix datagram socket.
///
/// ```no_run
/// use tulip::socket2::SockAddr;
///
/// struct Echo(Option<tulip::DatagramTransport>);
/// impl tulip::DatagramProtocol for Echo {
///     fn connection_made(&mut self, t: &tulip::DatagramTransport) {
///         self.0 = Some(t.clone());
///     }
///     fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
///         self.0.as_ref().map(|t| t.sendto(data, Some(addr)));
///     }
/// }
///
/// # tulip::run(async {
/// let opts = tulip::net::DatagramOptions::new().local_addr("127.0.0.1", 9999);
/// let (transport, _proto) = tulip::create_datagram_endpoint(|| Echo(None), opts).await?;
/// # transport.close();
/// # std::io::Result::Ok(()) });
/// ```
///
/// # Errors
/// `InvalidInput` for `reuse_address`, for options given with `sock`, for a socket that is
/// not a datagram socket, for a path mixed with a host, for no address and no family, and
/// for ends with no address family in common (asyncio's `ValueError`s);
/// resolution failures; otherwise the first failure of the bind or connect.
///
/// # Cancel safety
/// Cancel-safe: before it completes it only resolves names (off the loop) and creates the
/// socket; dropping it closes that socket, and no protocol is made or called.
///
/// # Panics
/// Outside of a running loop.
pub async fn create_datagram_endpoint<P, F>(
    protocol_factory: F,
    options: DatagramOptions,
) -> io::Result<(DatagramTransport, ProtocolRef<P>)>
where
    F: FnOnce() -> P,
    P: DatagramProtocol,
{
    let lp = get_running_loop();
    let sock = open(options).await?;
    let obj = into_obj(protocol_factory());
    let waiter = lp.create_future::<()>();
    let t = Endpoint::start(&lp, sock, obj.clone(), Some(waiter.clone())).handle();
    let guard = AbortOnDrop(Some(t));
    waiter.await?;
    Ok((guard.defuse(), ProtocolRef::new_datagram(obj)))
}

/// Aborts an endpoint whose creation was abandoned (the awaiting future dropped).
struct AbortOnDrop(Option<DatagramTransport>);

impl AbortOnDrop {
    fn defuse(mut self) -> DatagramTransport {
        self.0.take().expect("set at creation")
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// The socket the options describe, bound and/or connected, non-blocking.
async fn open(o: DatagramOptions) -> io::Result<Socket> {
    if o.reuse_address {
        return Err(invalid(
            "reuse_address is not supported for datagram endpoints: SO_REUSEADDR lets \
             another process bind the same port and steal its datagrams; use reuse_port",
        ));
    }
    if let Some(sock) = o.sock {
        if o.local.is_some()
            || o.remote.is_some()
            || o.family.is_some()
            || o.reuse_port
            || o.allow_broadcast
        {
            return Err(invalid(
                "socket options (addresses, family, reuse_port, allow_broadcast) cannot be \
                 used with an existing socket",
            ));
        }
        if sock.r#type()? != Type::DGRAM {
            return Err(invalid(format!(
                "a datagram socket is required, not {:?}",
                sock.r#type()?
            )));
        }
        sock.set_nonblocking(true)?;
        if o.gro {
            set_gro(&sock)?;
        }
        return Ok(sock);
    }
    let is_path = |a: &Option<Addr>| matches!(a, Some(Addr::Path(_)));
    if is_path(&o.local) || is_path(&o.remote) || o.family == Some(Domain::UNIX) {
        if o.gro {
            return Err(invalid("gro is for UDP endpoints, not Unix datagram ones"));
        }
        return open_unix(&o);
    }
    open_ip(&o).await
}

fn path_of(a: &Option<Addr>) -> io::Result<Option<&Path>> {
    match a {
        None => Ok(None),
        Some(Addr::Path(p)) => Ok(Some(p)),
        Some(Addr::Host(h, port)) => Err(invalid(format!(
            "a Unix datagram endpoint takes paths, not the host address {h}:{port}"
        ))),
    }
}

/// A Unix datagram socket (asyncio: `family=AF_UNIX`).
fn open_unix(o: &DatagramOptions) -> io::Result<Socket> {
    if o.family.is_some_and(|f| f != Domain::UNIX) {
        return Err(invalid("a path needs the Unix address family"));
    }
    let local = path_of(&o.local)?;
    let remote = path_of(&o.remote)?;
    let sock = Socket::new(Domain::UNIX, Type::DGRAM, None)?;
    sock.set_nonblocking(true)?;
    if let Some(path) = local {
        remove_stale_socket(path);
        sock.bind(&SockAddr::unix(path)?).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
        })?;
    }
    if let Some(path) = remote {
        sock.connect(&SockAddr::unix(path)?).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot connect to {}: {e}", path.display()),
            )
        })?;
    }
    Ok(sock)
}

/// Removes a socket file left at `path` by an earlier endpoint, as asyncio does; any other
/// kind of file stays (and the bind then fails).
fn remove_stale_socket(path: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("cannot remove stale socket {}: {e}", path.display());
            }
        }
    }
}

async fn resolve_end(a: &Option<Addr>) -> io::Result<Option<Vec<SocketAddr>>> {
    match a {
        None => Ok(None),
        Some(Addr::Host(h, port)) => resolve(h, *port).await.map(Some),
        Some(Addr::Path(_)) => unreachable!("paths are opened by open_unix"),
    }
}

/// A UDP socket: the families both ends resolved to, tried in turn.
async fn open_ip(o: &DatagramOptions) -> io::Result<Socket> {
    if o.local.is_none() && o.remote.is_none() {
        let family = o.family.ok_or_else(|| {
            invalid("unexpected address family: give a local or remote address, or a family")
        })?;
        return ip_socket(o, family);
    }
    let keep = |v: Vec<SocketAddr>| -> Vec<SocketAddr> {
        v.into_iter()
            .filter(|a| o.family.is_none_or(|f| f == Domain::for_address(*a)))
            .collect()
    };
    let local = resolve_end(&o.local).await?.map(keep);
    let remote = resolve_end(&o.remote).await?.map(keep);
    // Families in the order the addresses came, each with its first local and remote address.
    let mut families: Vec<Domain> = Vec::new();
    for a in local.iter().chain(remote.iter()).flatten() {
        let d = Domain::for_address(*a);
        if !families.contains(&d) {
            families.push(d);
        }
    }
    let first = |v: &Option<Vec<SocketAddr>>, d: Domain| -> Option<Option<SocketAddr>> {
        match v {
            None => Some(None),
            Some(v) => v
                .iter()
                .find(|a| Domain::for_address(**a) == d)
                .map(|a| Some(*a)),
        }
    };
    let mut errors: Vec<io::Error> = Vec::new();
    let mut tried = false;
    for d in families {
        let (Some(l), Some(r)) = (first(&local, d), first(&remote, d)) else {
            continue; // this family is missing at one end
        };
        tried = true;
        match ip_socket(o, d).and_then(|s| {
            if let Some(l) = l {
                s.bind(&l.into())
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {l}: {e}")))?;
            }
            if let Some(r) = r {
                s.connect(&r.into())
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {r}: {e}")))?;
            }
            Ok(s)
        }) {
            Ok(s) => return Ok(s),
            Err(e) => errors.push(e),
        }
    }
    if !tried {
        return Err(invalid(
            "can not get address information: no address family common to both ends",
        ));
    }
    Err(errors.swap_remove(0))
}

fn ip_socket(o: &DatagramOptions, family: Domain) -> io::Result<Socket> {
    let s = Socket::new(family, Type::DGRAM, Some(socket2::Protocol::UDP))?;
    s.set_nonblocking(true)?;
    if o.reuse_port {
        s.set_reuse_port(true)?;
    }
    if o.allow_broadcast {
        s.set_broadcast(true)?;
    }
    if o.gro {
        set_gro(&s)?;
    }
    Ok(s)
}

/// Turns UDP GRO on, saying what failed.
fn set_gro(s: &Socket) -> io::Result<()> {
    if s.local_addr().is_ok_and(|a| a.domain() == Domain::UNIX) {
        return Err(invalid("gro is for UDP endpoints, not Unix datagram ones"));
    }
    crate::sys::set_gro(std::os::fd::AsRawFd::as_raw_fd(s), true)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot turn UDP GRO on: {e}")))
}
