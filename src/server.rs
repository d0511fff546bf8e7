//! `create_server`, `create_unix_server` and the `Server` object (asyncio's
//! `base_events.Server`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use slab::Slab;
use socket2::{Domain, Protocol as IpProto, SockAddr, Socket, Type};

use crate::event_loop::{
    EventLoop, ExceptionContext, NO_KEY, Resource, error_or_stderr, get_running_loop,
};
use crate::net::{resolve, unsupported};
use crate::selector::{Direction, IoCallback};
use crate::sys::{self, AcceptError};
use crate::transports::socket::{self, SocketTransport};
use crate::transports::{ProtoRc, StreamProtocol, Transport, TransportImpl};

/// How long accepting pauses after `EMFILE`/`ENFILE` (asyncio's `ACCEPT_RETRY_DELAY`).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Options of every entry point that serves: [`create_server`], [`create_unix_server`],
/// [`start_server`](crate::start_server) and [`start_unix_server`](crate::start_unix_server)
/// (asyncio's keyword arguments). `Default::default()` is asyncio's defaults.
///
/// An option that the entry point cannot honour is refused (`InvalidInput`, naming the
/// option), never ignored: a Unix socket has no `SO_REUSEADDR`/`SO_REUSEPORT`, and a callback
/// protocol has no stream buffer `limit`.
///
/// ```
/// let opts = tulip::net::ServerOptions::new().backlog(1024).reuse_port(true);
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub(crate) backlog: u32,
    /// `None`: not set (on, as asyncio on Unix).
    pub(crate) reuse_address: Option<bool>,
    /// `None`: not set (off).
    pub(crate) reuse_port: Option<bool>,
    pub(crate) start_serving: bool,
    /// `None`: not set ([`DEFAULT_LIMIT`](crate::streams::DEFAULT_LIMIT) for streams).
    pub(crate) limit: Option<usize>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsOptions>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            backlog: 100,
            reuse_address: None,
            reuse_port: None,
            start_serving: true,
            limit: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ServerOptions {
    /// asyncio's defaults: backlog 100, `SO_REUSEADDR` on, `SO_REUSEPORT` off, serving at once.
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// The `listen` backlog, and how many connections are accepted per readiness event.
    pub fn backlog(mut self, n: u32) -> ServerOptions {
        self.backlog = n.max(1);
        self
    }

    /// `SO_REUSEADDR` (default on, as asyncio on Unix). TCP only.
    pub fn reuse_address(mut self, on: bool) -> ServerOptions {
        self.reuse_address = Some(on);
        self
    }

    /// `SO_REUSEPORT`: several sockets — one loop each — may listen on one address. TCP only.
    pub fn reuse_port(mut self, on: bool) -> ServerOptions {
        self.reuse_port = Some(on);
        self
    }

    /// Serves TLS (asyncio's `ssl=`): each connection's protocol sees plaintext after the
    /// handshake; a failed handshake is logged and the protocol never sees
    /// `connection_made`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsOptions) -> ServerOptions {
        self.tls = Some(tls);
        self
    }

    /// Whether to accept at once (default), or only after
    /// [`Server::start_serving`]/[`Server::serve_forever`].
    pub fn start_serving(mut self, on: bool) -> ServerOptions {
        self.start_serving = on;
        self
    }

    /// The stream buffer limit of each connection's `StreamReader` (asyncio's `limit=`).
    /// Streams only (`start_server`, `start_unix_server`); default
    /// [`DEFAULT_LIMIT`](crate::streams::DEFAULT_LIMIT).
    pub fn limit(mut self, limit: usize) -> ServerOptions {
        self.limit = Some(limit);
        self
    }

    /// Takes the stream limit out (the streams use it; the server below must not see it).
    pub(crate) fn take_limit(&mut self) -> io::Result<usize> {
        match self.limit.take() {
            Some(0) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "limit must be positive (a zero stream limit could not hold a byte)",
            )),
            limit => Ok(limit.unwrap_or(crate::streams::DEFAULT_LIMIT)),
        }
    }

    /// Refuses a stream limit given to a callback-protocol server.
    fn check_no_limit(&self, entry: &str) -> io::Result<()> {
        match self.limit {
            Some(_) => Err(unsupported("ServerOptions::limit (a stream option)", entry)),
            None => Ok(()),
        }
    }

    /// Refuses what a Unix socket cannot honour (asyncio's `create_unix_server` has no
    /// `reuse_address`/`reuse_port`).
    fn check_unix(&self, entry: &str) -> io::Result<()> {
        if self.reuse_address.is_some() {
            return Err(unsupported("ServerOptions::reuse_address", entry));
        }
        if self.reuse_port.is_some() {
            return Err(unsupported("ServerOptions::reuse_port", entry));
        }
        Ok(())
    }
}

/// What the per-connection factory made: the raw transport's protocol and, under TLS, the
/// transport the user's protocol sees (closing it sends `close_notify`).
struct Made {
    proto: ProtoRc,
    app: Option<Weak<dyn TransportImpl>>,
}

type Factory = Box<dyn FnMut() -> Option<Made>>;

/// One open connection.
struct Conn {
    raw: Weak<SocketTransport>,
    app: Option<Weak<dyn TransportImpl>>,
}

impl Conn {
    /// The transport the connection's protocol sees.
    fn transport(&self) -> Option<Transport> {
        if let Some(app) = self.app.as_ref().and_then(Weak::upgrade) {
            return Some(Transport { inner: app });
        }
        self.raw.upgrade().map(|t| t.handle())
    }
}

struct ServerInner {
    lp: EventLoop,
    this: Weak<ServerInner>,
    listeners: RefCell<Vec<Socket>>,
    accept_cbs: RefCell<Vec<Rc<IoCallback>>>,
    /// Taken out while it runs: user code never runs under a borrow of the server.
    factory: Cell<Option<Factory>>,
    backlog: u32,
    is_tcp: bool,
    /// The Unix socket's path, and the device and inode of the socket file it bound: close
    /// unlinks the path only if it is still that file (asyncio compares them too), so a
    /// server that took the path over meanwhile keeps its socket.
    unix_path: Option<(PathBuf, Option<(u64, u64)>)>,
    serving: Cell<bool>,
    closed: Cell<bool>,
    /// Accepting is paused after EMFILE/ENFILE until this timer fires.
    backing_off: Cell<bool>,
    conns: RefCell<Slab<Conn>>,
    waiters: RefCell<Vec<Waker>>,
    /// How many `Server` handles exist: the last one dropped closes the server.
    handles: Cell<usize>,
    /// The key of this server in the loop's resources (`NO_KEY` once closed).
    res_key: Cell<usize>,
}

/// A listening server (asyncio's `Server`), from [`create_server`] or
/// [`create_unix_server`].
///
/// A cheap handle: clones refer to the same server.
///
/// # Closing
/// [`close`](Server::close) stops listening and closes the listening sockets. Dropping the
/// last handle to a server that was not closed closes it too, as dropping a listener does
/// in Rust (asyncio's loop keeps a server it serves alive instead; in Rust the handle is how
/// a program says it still wants the server). Connections already accepted stay open
/// either way. A loop that closes closes its servers and their connections.
pub struct Server {
    inner: Rc<ServerInner>,
}

impl Clone for Server {
    fn clone(&self) -> Server {
        self.inner.handles.set(self.inner.handles.get() + 1);
        Server {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let n = self.inner.handles.get() - 1;
        self.inner.handles.set(n);
        if n == 0 {
            self.inner.close();
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("sockets", &self.sockets())
            .field("serving", &self.is_serving())
            .field("connections", &self.inner.conns.borrow().len())
            .finish()
    }
}

fn open_listener(addr: &SockAddr, opts: &ServerOptions, tcp: bool) -> io::Result<Socket> {
    let domain = if tcp {
        Domain::for_address(
            addr.as_socket()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP address"))?,
        )
    } else {
        Domain::UNIX
    };
    let s = Socket::new(domain, Type::STREAM, tcp.then_some(IpProto::TCP))?;
    s.set_cloexec(true)?;
    s.set_nonblocking(true)?;
    if tcp {
        if opts.reuse_address.unwrap_or(true) {
            s.set_reuse_address(true)?;
        }
        if opts.reuse_port.unwrap_or(false) {
            s.set_reuse_port(true)?;
        }
        if domain == Domain::IPV6 {
            // As asyncio: one socket per family, so the v6 one must not take v4 too.
            s.set_only_v6(true)?;
        }
    }
    s.bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("bind to {}: {e}", show(addr))))?;
    s.listen(opts.backlog.min(i32::MAX as u32) as i32)?;
    Ok(s)
}

fn show(a: &SockAddr) -> String {
    match (a.as_socket(), a.as_pathname()) {
        (Some(s), _) => s.to_string(),
        (None, Some(p)) => p.display().to_string(),
        _ => "?".into(),
    }
}

/// Binds and listens on `host:port` and serves each connection with a protocol from
/// `protocol_factory` (asyncio's `loop.create_server`).
///
/// `host` may be a name (resolved off the loop's thread; one listener per address), an IP,
/// or `""` for all interfaces (`0.0.0.0` and `::`).
///
/// ```no_run
/// # tulip::run(async {
/// struct Echo(Option<tulip::Transport>);
/// impl tulip::Protocol for Echo {
///     fn connection_made(&mut self, t: &tulip::Transport) { self.0 = Some(t.clone()); }
///     fn data_received(&mut self, d: &[u8]) { self.0.as_ref().unwrap().write(d); }
/// }
/// let server = tulip::create_server(|| Echo(None), "127.0.0.1", 8888, Default::default()).await?;
/// server.serve_forever().await
/// # });
/// ```
///
/// # Errors
/// Resolution, `bind` (e.g. `AddrInUse`, naming the address) or `listen` failures;
/// `InvalidInput` for [`ServerOptions::limit`] (a stream option).
///
/// # Cancel safety
/// Cancel-safe: it waits only for the name lookup (which then finishes on the blocking pool
/// and is discarded); nothing is bound until it completes.
///
/// # Panics
/// Outside of a running loop.
pub async fn create_server<P, F>(
    protocol_factory: F,
    host: &str,
    port: u16,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: FnMut() -> P + 'static,
    P: StreamProtocol,
{
    options.check_no_limit("create_server")?;
    let lp = get_running_loop();
    let addrs = if host.is_empty() {
        vec![
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
        ]
    } else {
        resolve(host, port).await?
    };
    let mut listeners = Vec::new();
    let mut seen = Vec::new();
    for a in addrs {
        if seen.contains(&a) {
            continue;
        }
        seen.push(a);
        listeners.push(open_listener(&a.into(), &options, true)?);
    }
    Ok(Server::new(
        &lp,
        listeners,
        protocol_factory,
        options,
        true,
        None,
    ))
}

use std::net::SocketAddr;

/// Listens on the Unix socket `path` (asyncio's `create_unix_server`). A stale socket file
/// at `path` is removed first; the file is removed again when the server closes.
///
/// Of the [`ServerOptions`], `reuse_address` and `reuse_port` (TCP only) and `limit` (a
/// stream option) are refused.
///
/// # Errors
/// `bind`/`listen` failures; `AlreadyExists` if `path` exists and is not a socket;
/// `InvalidInput` for an option a Unix socket cannot honour, or `limit`.
///
/// # Cancel safety
/// Cancel-safe: it completes at its first poll (it waits for nothing).
///
/// # Panics
/// Outside of a running loop.
pub async fn create_unix_server<P, F>(
    protocol_factory: F,
    path: impl AsRef<Path>,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: FnMut() -> P + 'static,
    P: StreamProtocol,
{
    options.check_no_limit("create_unix_server")?;
    unix_server(
        protocol_factory,
        path.as_ref(),
        options,
        "create_unix_server",
    )
}

/// `create_unix_server` without the limit check (the streams took the limit out); `entry`
/// names the caller in errors.
pub(crate) fn unix_server<P, F>(
    protocol_factory: F,
    path: &Path,
    options: ServerOptions,
    entry: &str,
) -> io::Result<Server>
where
    F: FnMut() -> P + 'static,
    P: StreamProtocol,
{
    use std::os::unix::fs::FileTypeExt;
    options.check_unix(entry)?;
    let lp = get_running_loop();
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if md.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
    }
    let l = open_listener(&SockAddr::unix(path)?, &options, false)?;
    let id = std::fs::metadata(path).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    });
    Ok(Server::new(
        &lp,
        vec![l],
        protocol_factory,
        options,
        false,
        Some((path.to_owned(), id)),
    ))
}

/// The per-connection protocol maker: the user's, under TLS if the server speaks it.
fn wrap_factory(
    lp: &EventLoop,
    opts: &ServerOptions,
    mut user: impl FnMut() -> ProtoRc + 'static,
) -> Factory {
    #[cfg(feature = "tls")]
    if let Some(tls) = opts.tls.clone() {
        use crate::tls::{Role, wrap};
        let lp = lp.clone();
        return Box::new(move || match wrap(&lp, user(), tls.clone(), Role::Accept) {
            Ok(w) => {
                let app: Rc<dyn TransportImpl> = w.transport;
                Some(Made {
                    proto: w.protocol,
                    app: Some(Rc::downgrade(&app)),
                })
            }
            Err(e) => {
                error_or_stderr!("cannot start TLS for a new connection: {e}");
                None
            }
        });
    }
    let _ = (lp, opts);
    Box::new(move || {
        Some(Made {
            proto: user(),
            app: None,
        })
    })
}

impl Server {
    fn new<P, F>(
        lp: &EventLoop,
        listeners: Vec<Socket>,
        mut factory: F,
        opts: ServerOptions,
        is_tcp: bool,
        unix_path: Option<(PathBuf, Option<(u64, u64)>)>,
    ) -> Server
    where
        F: FnMut() -> P + 'static,
        P: StreamProtocol,
    {
        let inner = Rc::new_cyclic(|this| ServerInner {
            lp: lp.clone(),
            this: this.clone(),
            listeners: RefCell::new(listeners),
            accept_cbs: RefCell::new(Vec::new()),
            factory: Cell::new(Some(wrap_factory(lp, &opts, move || factory().into_obj()))),
            backlog: opts.backlog,
            is_tcp,
            unix_path,
            serving: Cell::new(false),
            closed: Cell::new(false),
            backing_off: Cell::new(false),
            conns: RefCell::new(Slab::new()),
            waiters: RefCell::new(Vec::new()),
            handles: Cell::new(1),
            res_key: Cell::new(NO_KEY),
        });
        let res: Weak<dyn Resource> = Rc::downgrade(&inner) as Weak<ServerInner>;
        let key = lp.inner.resources.insert(res);
        inner.res_key.set(key);
        for l in inner.listeners.borrow().iter() {
            lp.inner.resources.claim_fd(l.as_raw_fd(), key);
        }
        let s = Server { inner };
        if opts.start_serving {
            s.start_serving();
        }
        s
    }

    /// The addresses the server listens on (asyncio's `sockets`, as addresses).
    pub fn sockets(&self) -> Vec<SockAddr> {
        self.inner
            .listeners
            .borrow()
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The first listening address as an IP socket address, if it is one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sockets().into_iter().find_map(|a| a.as_socket())
    }

    /// Starts accepting connections (a no-op if it already does or is closed).
    pub fn start_serving(&self) {
        let inner = &self.inner;
        if inner.closed.get() || inner.serving.replace(true) {
            return;
        }
        inner.add_readers();
    }

    /// Whether the server accepts connections.
    pub fn is_serving(&self) -> bool {
        self.inner.serving.get()
    }

    /// Stops listening and closes the listening sockets (asyncio's `close`). Connections
    /// already accepted stay open; see [`close_clients`](Server::close_clients).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes every connection gracefully (buffered data is sent first).
    pub fn close_clients(&self) {
        for t in self.inner.live_connections() {
            t.close();
        }
    }

    /// Aborts every connection at once.
    pub fn abort_clients(&self) {
        for t in self.inner.live_connections() {
            t.abort();
        }
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.inner.conns.borrow().len()
    }

    /// Waits until the server is closed and all its connections are gone (asyncio 3.12's
    /// `wait_closed`).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only watches; the server is left as it is.
    pub async fn wait_closed(&self) {
        let inner = self.inner.clone();
        poll_fn(move |cx| {
            inner.wait_for(cx, inner.closed.get() && inner.conns.borrow().is_empty())
        })
        .await;
    }

    /// Starts serving and waits until the server is closed (asyncio's `serve_forever`).
    /// Dropping the future (cancelling it) closes the server, as in asyncio.
    ///
    /// # Errors
    /// An error of kind `Other` ("server is closed") if the server was closed before, as
    /// asyncio raises `RuntimeError`.
    ///
    /// # Cancel safety
    /// Not cancel-safe, on purpose: dropping it closes the server (stops listening; the
    /// connections already accepted stay open), as cancelling asyncio's `serve_forever` does.
    pub async fn serve_forever(&self) -> io::Result<()> {
        struct CloseOnDrop(Rc<ServerInner>);
        impl Drop for CloseOnDrop {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        if self.inner.closed.get() {
            return Err(io::Error::other("server is closed"));
        }
        self.start_serving();
        let guard = CloseOnDrop(self.inner.clone());
        let inner = self.inner.clone();
        poll_fn(move |cx| inner.wait_for(cx, inner.closed.get())).await;
        drop(guard);
        Ok(())
    }

    /// Graceful shutdown: stops accepting, closes the connections that have nothing left to
    /// send, lets the others finish sending and close, and aborts whatever is still open
    /// after `deadline`. Returns when every connection is gone.
    ///
    /// # Cancel safety
    /// The server is closed and its connections asked to close at the first poll; dropping
    /// the future later only skips the abort at `deadline`, so connections that never finish
    /// sending may stay open.
    pub async fn shutdown(&self, deadline: Duration) {
        let until = crate::event_loop::deadline_after(deadline);
        self.close();
        self.close_clients();
        let _ = crate::time::timeout_at(until, self.wait_closed()).await;
        if self.connection_count() > 0 {
            self.abort_clients();
            self.wait_closed().await;
        }
    }
}

impl ServerInner {
    fn add_readers(&self) {
        let Some(me) = self.this.upgrade() else {
            return;
        };
        let n = self.listeners.borrow().len();
        let mut cbs = self.accept_cbs.borrow_mut();
        if cbs.is_empty() {
            for i in 0..n {
                let s = me.clone();
                let cb: Rc<IoCallback> = Rc::new(IoCallback {
                    active: Cell::new(true),
                    f: move || s.accept_ready(i),
                });
                cbs.push(cb);
            }
        }
        let listeners = self.listeners.borrow();
        for (l, cb) in listeners.iter().zip(cbs.iter()) {
            if let Err(e) = self.lp.inner.selector.set_callback(
                l.as_raw_fd(),
                Direction::Read,
                Some(cb.clone()),
            ) {
                error_or_stderr!("cannot watch listening socket: {e}");
            }
        }
    }

    fn remove_readers(&self) {
        for l in self.listeners.borrow().iter() {
            self.lp
                .inner
                .selector
                .set_callback(l.as_raw_fd(), Direction::Read, None)
                .ok();
        }
    }

    fn accept_ready(&self, i: usize) {
        if !self.serving.get() || self.backing_off.get() {
            return;
        }
        for _ in 0..self.backlog {
            let r = {
                let ls = self.listeners.borrow();
                let Some(l) = ls.get(i) else { return };
                sys::accept(l)
            };
            match r {
                Ok((sock, peer)) => self.serve(sock, peer),
                Err(e) => match sys::accept_error(&e) {
                    AcceptError::WouldBlock => return,
                    AcceptError::Retry => continue,
                    AcceptError::OutOfResources => {
                        self.back_off(e);
                        return;
                    }
                    AcceptError::Other => {
                        self.lp.call_exception_handler(
                            &ExceptionContext::new("socket.accept() failed").with_error(e),
                        );
                        return;
                    }
                },
            }
        }
    }

    /// Out of file descriptors (or memory): stop accepting for a second instead of spinning
    /// on a listener that stays readable, then resume by itself.
    fn back_off(&self, e: io::Error) {
        error_or_stderr!(
            "socket.accept() out of system resource ({e}); pausing accepting for {:?}",
            ACCEPT_RETRY_DELAY
        );
        self.backing_off.set(true);
        self.remove_readers();
        let Some(me) = self.this.upgrade() else {
            return;
        };
        self.lp.call_later(ACCEPT_RETRY_DELAY, move || {
            me.backing_off.set(false);
            if me.serving.get() && !me.closed.get() {
                me.add_readers();
            }
        });
    }

    fn serve(&self, sock: Socket, peer: SockAddr) {
        if self.is_tcp {
            sock.set_tcp_nodelay(true).ok();
        }
        // The factory is user code: it runs with no borrow of the server held, so it may
        // call into the server (and a factory that re-enters itself finds it taken).
        let Some(mut factory) = self.factory.take() else {
            error_or_stderr!("the protocol factory re-entered itself; connection dropped");
            return;
        };
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut factory));
        self.factory.set(Some(factory));
        let made = match made {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(payload) => {
                self.lp.call_exception_handler(
                    &ExceptionContext::new("protocol factory panicked; connection dropped")
                        .with_panic(payload),
                );
                return;
            }
        };
        let t = socket::start(&self.lp, sock, made.proto, Some(peer), None);
        let key = self.conns.borrow_mut().insert(Conn {
            raw: Rc::downgrade(&t),
            app: made.app,
        });
        let me = self.this.clone();
        t.set_on_lost(move || {
            if let Some(s) = me.upgrade() {
                s.detach(key);
            }
        });
    }

    fn detach(&self, key: usize) {
        let empty = {
            let mut c = self.conns.borrow_mut();
            if c.contains(key) {
                c.remove(key);
            }
            c.is_empty()
        };
        if empty && self.closed.get() {
            self.wake_waiters();
        }
    }

    /// The transports of the open connections (collected first: closing one runs no user
    /// code now, but the list is not borrowed while it happens).
    fn live_connections(&self) -> Vec<Transport> {
        self.conns
            .borrow()
            .iter()
            .filter_map(|(_, c)| c.transport())
            .collect()
    }

    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        self.serving.set(false);
        self.remove_readers();
        let cbs = std::mem::take(&mut *self.accept_cbs.borrow_mut());
        for cb in &cbs {
            cb.active.set(false);
        }
        drop(cbs);
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        let fds: Vec<_> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
        self.lp
            .inner
            .resources
            .remove(self.res_key.replace(NO_KEY), &fds);
        drop(listeners);
        if let Some((path, id)) = &self.unix_path {
            unlink_if_ours(path, *id);
        }
        self.wake_waiters();
    }

    /// Ready if `done`, else registers the waker to be woken on close / last detach.
    fn wait_for(&self, cx: &mut std::task::Context<'_>, done: bool) -> Poll<()> {
        if done {
            return Poll::Ready(());
        }
        let mut w = self.waiters.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn wake_waiters(&self) {
        let ws = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in ws {
            w.wake();
        }
    }
}

/// Removes the socket file at `path` if it is still the one the server bound (same device
/// and inode): a server started meanwhile on the same path keeps its socket.
fn unlink_if_ours(path: &Path, id: Option<(u64, u64)>) {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = id else { return };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.dev() == dev && m.ino() == ino => {
            std::fs::remove_file(path).ok();
        }
        _ => {}
    }
}

impl Resource for ServerInner {
    fn describe(&self) -> String {
        let addrs: Vec<String> = self
            .listeners
            .borrow()
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .map(|a| show(&a))
            .collect();
        if addrs.is_empty() {
            "server (closed)".to_owned()
        } else {
            format!("server listening on {}", addrs.join(", "))
        }
    }

    /// The loop closes: stop listening and let go of the protocol factory (the
    /// connections are resources of their own).
    fn close_with_loop(&self) {
        // Already out of the loop's registry: forget the stale key (see `Core`).
        self.res_key.set(NO_KEY);
        self.close();
        let factory = self.factory.take();
        drop(factory);
    }
}
