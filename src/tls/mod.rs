//! TLS on rustls (asyncio's `sslproto.py`): a protocol that sits on the raw socket
//! transport, drives a `rustls::Connection`, and presents an application transport to the
//! user's protocol — so TLS works for any protocol, for streams, and for `start_tls`.

mod config;
mod protocol;
mod state;
mod transport;

use std::fmt;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    client_config, client_config_from_ca_file, client_config_with_roots,
    dangerous_client_config_without_certificate_verification, rustls, server_config,
    server_config_from_pem_files,
};
pub(crate) use protocol::TlsProtocol;
pub(crate) use transport::TlsTransport;

use crate::event_loop::EventLoop;
use crate::future::LoopFuture;
use crate::transports::{ProtoRc, StreamProtocol, Transport};

/// asyncio's `ssl_handshake_timeout` default.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// asyncio's `ssl_shutdown_timeout` default.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection's TLS configuration (what asyncio calls the `sslcontext`).
#[derive(Clone)]
pub enum TlsConfig {
    /// The client side.
    Client(Arc<rustls::ClientConfig>),
    /// The server side.
    Server(Arc<rustls::ServerConfig>),
}

impl TlsConfig {
    /// The configuration a TLS transport answers `get_extra_info("sslcontext")` with.
    ///
    /// ```no_run
    /// # fn f(t: &tulip::Transport) {
    /// let cfg = t
    ///     .get_extra_info("sslcontext")
    ///     .as_ref()
    ///     .and_then(tulip::tls::TlsConfig::from_extra_info);
    /// # }
    /// ```
    pub fn from_extra_info(info: &crate::transports::ExtraInfo) -> Option<TlsConfig> {
        info.downcast_ref::<TlsConfig>().cloned()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsConfig::Client(_) => "TlsConfig::Client",
            TlsConfig::Server(_) => "TlsConfig::Server",
        })
    }
}

/// The TLS settings of one connection.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub(crate) config: TlsConfig,
    pub(crate) server_hostname: Option<String>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) require_close_notify: bool,
}

impl TlsOptions {
    /// Client side: verify the server with `config` (see [`client_config`]).
    pub fn client(config: Arc<rustls::ClientConfig>) -> TlsOptions {
        TlsOptions::new(TlsConfig::Client(config))
    }

    /// Server side, with `config` (see [`server_config_from_pem_files`]).
    pub fn server(config: Arc<rustls::ServerConfig>) -> TlsOptions {
        TlsOptions::new(TlsConfig::Server(config))
    }

    fn new(config: TlsConfig) -> TlsOptions {
        TlsOptions {
            config,
            server_hostname: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            require_close_notify: false,
        }
    }

    /// The name to verify the server's certificate against (and send as SNI); by default
    /// the host given to `create_connection`.
    pub fn server_hostname(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// How long the handshake may take (default 60 s): a peer that never speaks TLS is
    /// dropped on time. Zero is refused (`InvalidInput`) where the handshake would start.
    pub fn handshake_timeout(mut self, d: Duration) -> TlsOptions {
        self.handshake_timeout = d;
        self
    }

    /// How long a closing connection may wait for its `close_notify` to go out (default
    /// 30 s) before it is aborted. Zero is refused, as for the handshake timeout.
    pub fn shutdown_timeout(mut self, d: Duration) -> TlsOptions {
        self.shutdown_timeout = d;
        self
    }

    /// Whether a peer that closes TCP after the handshake without sending TLS `close_notify`
    /// is an error (default `false`).
    ///
    /// By default such a close is an end of file, as in asyncio and Python's `ssl`
    /// (`suppress_ragged_eofs=True`): the protocol gets `eof_received`, then
    /// `connection_lost(None)`, and a stream's `read_to_eof` returns the data. Many peers
    /// (HTTP servers, `openssl s_server`) close that way. A protocol whose messages carry no
    /// length of their own, and so could not tell a truncated message from a whole one,
    /// sets this: the protocol gets no `eof_received` and `connection_lost` gets an
    /// `UnexpectedEof` error. In both modes every byte received before the close has been
    /// delivered first.
    pub fn require_close_notify(mut self, yes: bool) -> TlsOptions {
        self.require_close_notify = yes;
        self
    }
}

/// A TLS failure: what went wrong, wrapping the rustls error. It travels inside an
/// `io::Error` of kind `InvalidData`.
#[derive(Debug)]
pub struct TlsError {
    context: &'static str,
    source: rustls::Error,
}

impl TlsError {
    /// The rustls error.
    pub fn rustls_error(&self) -> &rustls::Error {
        &self.source
    }

    /// The `TlsError` inside `err`, if that is what it carries.
    pub fn from_io(err: &io::Error) -> Option<&TlsError> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn tls_io_error(context: &'static str, source: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsError { context, source })
}

/// How a connection comes to speak TLS: it decides who hears `connection_made` and who
/// hears a handshake failure.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role<'a> {
    /// `create_connection`: the caller awaits the handshake; the protocol then gets
    /// `connection_made`. The name is the server name to verify by default.
    Connect(Option<&'a str>),
    /// A connection a server accepted: `connection_made` after the handshake; a failed
    /// handshake is logged, since nobody awaits it.
    Accept,
    /// `start_tls` on an open connection: the caller awaits the handshake; the protocol had
    /// its `connection_made` already.
    Upgrade(Option<&'a str>),
}

/// A protocol wrapped in TLS: what goes on the raw transport, the TLS transport the user's
/// protocol sees, and the handshake to await.
#[derive(Debug)]
pub(crate) struct Wrapped {
    /// The raw transport's protocol.
    pub(crate) protocol: ProtoRc,
    /// The application transport.
    pub(crate) transport: Rc<TlsTransport>,
    /// Completes when the handshake does, or fails with its error.
    pub(crate) handshake: LoopFuture<()>,
}

/// The one place TLS is composed (asyncio's `SSLProtocol(...)` construction): wraps the
/// user's protocol `user` in a TLS transport for `role`. `create_connection`,
/// `create_server` and `start_tls` all come through here.
///
/// # Errors
/// `InvalidInput` for a client without a usable server name, or a zero handshake or
/// shutdown timeout (asyncio's `ValueError`); rustls' refusal to start.
pub(crate) fn wrap(
    lp: &EventLoop,
    user: ProtoRc,
    options: TlsOptions,
    role: Role<'_>,
) -> io::Result<Wrapped> {
    if options.handshake_timeout.is_zero() || options.shutdown_timeout.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the TLS handshake and shutdown timeouts should be positive",
        ));
    }
    let (transport, handshake) = TlsTransport::new(lp, options, user, &role)?;
    let protocol = TlsProtocol(transport.clone()).into_obj();
    Ok(Wrapped {
        protocol,
        transport,
        handshake,
    })
}

/// Upgrades an open connection to TLS (asyncio's `loop.start_tls`): the transport's
/// current protocol keeps receiving, now decrypted, through the returned TLS transport
/// (it gets no second `connection_made`). `already_received` is what was read off the
/// socket but belongs to the TLS handshake (a peer that did not wait); usually empty.
///
/// # Errors
/// The handshake's failure (an `InvalidData` error carrying a [`TlsError`]), or its
/// timeout (`TimedOut`).
///
/// # Cancel safety
/// Not cancel-safe: the connection belongs to the TLS layer from the first poll. Dropping
/// the future before the handshake completes closes `transport` (as asyncio's `start_tls`
/// does when cancelled); so does a failed handshake.
pub async fn start_tls(
    transport: &Transport,
    options: TlsOptions,
    already_received: &[u8],
) -> io::Result<Transport> {
    let lp = crate::get_running_loop();
    let user = transport.inner.get_protocol().ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotConnected, "the transport has no protocol")
    })?;
    let default_name = transport
        .peername()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip().to_string());
    let w = wrap(&lp, user, options, Role::Upgrade(default_name.as_deref()))?;
    transport.inner.set_protocol(w.protocol);
    let mut guard = CloseOnDrop(Some(transport));
    w.transport.start(transport, already_received);
    w.handshake.await?;
    guard.0 = None;
    Ok(w.transport.handle())
}

/// Closes the transport unless defused: a `start_tls` dropped (or failed) before its
/// handshake completed leaves no connection half-upgraded.
struct CloseOnDrop<'a>(Option<&'a Transport>);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.close();
        }
    }
}
