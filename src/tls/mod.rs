//! TLS on rustls (asyncio's `sslproto.py`): a protocol that sits on the raw socket
//! transport, drives a `rustls::Connection`, and presents an application transport to the
//! user's protocol — so TLS works for any protocol, for streams, and for `start_tls`.

mod config;
mod layer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use config::{
    client_config, client_config_from_ca_file, client_config_with_roots,
    dangerous_client_config_without_certificate_verification, rustls, server_config,
    server_config_from_pem_files,
};
pub use layer::{TlsError, start_tls};
pub(crate) use layer::{TlsLayer, TlsProtocol};

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
        }
    }

    /// The name to verify the server's certificate against (and send as SNI); by default
    /// the host given to `create_connection`.
    pub fn server_hostname(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_hostname = Some(name.into());
        self
    }

    /// How long the handshake may take (default 60 s): a peer that never speaks TLS is
    /// dropped on time.
    pub fn handshake_timeout(mut self, d: Duration) -> TlsOptions {
        self.handshake_timeout = d;
        self
    }

    /// How long a closing connection may wait for its `close_notify` to go out (default
    /// 30 s) before it is aborted.
    pub fn shutdown_timeout(mut self, d: Duration) -> TlsOptions {
        self.shutdown_timeout = d;
        self
    }
}
