//! `tcp_echo_server` over TLS: the same flow-control-correct echo `Protocol` (it pauses
//! reading when the transport says `pause_writing`), served with
//! `tulip::create_server(…, ServerOptions::new().tls(TlsOptions::server(config)))`. The
//! protocol sees plaintext; the TLS layer under it does the handshake and the records.
//!
//! ```text
//! cargo run --release --example tls_echo_server [ADDR] [--cert CERT.pem --key KEY.pem]
//! ```
//!
//! `ADDR` (`IP:PORT`) defaults to `127.0.0.1:8888`; port 0 picks a free port. With `--cert`
//! and `--key` the server uses that certificate chain and private key
//! (`tulip::tls::server_config_from_pem_files`). Without them it generates a self-signed
//! certificate for `localhost` and `127.0.0.1` (rcgen) and writes it — the certificate only,
//! the key stays in memory — to `tulip-selfsigned.pem` in the current directory, so that a
//! client can trust it:
//!
//! ```text
//! cargo run --release --example tls_echo_client -- 127.0.0.1:8888 \
//!     --cafile tulip-selfsigned.pem --server-hostname localhost 'Hello TLS!'
//! openssl s_client -connect 127.0.0.1:8888 -CAfile tulip-selfsigned.pem \
//!     -servername localhost -quiet
//! ```
//!
//! Once it listens (and the certificate file is written), the server prints the one line
//! `listening on IP:PORT`. Bad arguments exit with status 2, an unusable certificate or key
//! (or an address it cannot listen on) with 1. A failed handshake (a client that does not
//! trust the certificate, or does not speak TLS) only drops that connection.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use tulip::tls::rustls::ServerConfig;
use tulip::tls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tulip::{Protocol, Transport, net::ServerOptions, tls::TlsOptions};

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// Where the generated self-signed certificate goes (in the current directory).
const SELF_SIGNED_PEM: &str = "tulip-selfsigned.pem";
const USAGE: &str = "usage: tls_echo_server [ADDR] [--cert CERT.pem --key KEY.pem]";

/// Echoes every byte back.
struct EchoServer {
    transport: Option<Transport>,
}

impl Protocol for EchoServer {
    fn connection_made(&mut self, transport: &Transport) {
        // Called after the handshake: `transport` is the TLS transport.
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn pause_writing(&mut self) {
        // The client is not reading what we send: stop reading what it sends.
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }
}

/// The command line.
struct Args {
    addr: SocketAddr,
    /// `--cert` and `--key`, or neither.
    pem_files: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cert" | "--key" => {
                let value = args.next().ok_or(format!("{arg} needs a file"))?;
                let slot = if arg == "--cert" { &mut cert } else { &mut key };
                *slot = Some(value);
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            _ if addr.is_none() => {
                let a = arg
                    .parse()
                    .map_err(|e| format!("bad address {arg:?}: {e}"))?;
                addr = Some(a);
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let pem_files = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    Ok(Args {
        addr: addr.unwrap_or_else(|| DEFAULT_ADDR.parse().expect("a valid default")),
        pem_files,
    })
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, written to
/// [`SELF_SIGNED_PEM`]; the key is used from memory only.
fn self_signed() -> io::Result<Arc<ServerConfig>> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    std::fs::write(SELF_SIGNED_PEM, ck.cert.pem())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {SELF_SIGNED_PEM}: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    tulip::tls::server_config(vec![ck.cert.der().clone()], key)
}

#[tulip::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("tls_echo_server: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match &args.pem_files {
        Some((cert, key)) => tulip::tls::server_config_from_pem_files(cert, key),
        None => self_signed(),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tls_echo_server: {e}");
            return ExitCode::FAILURE;
        }
    };

    let server = match tulip::create_server(
        || EchoServer { transport: None },
        &args.addr.ip().to_string(),
        args.addr.port(),
        ServerOptions::new()
            .backlog(1024)
            .tls(TlsOptions::server(config)),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tls_echo_server: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = announce(server.local_addr().expect("a TCP listener")) {
        eprintln!("tls_echo_server: {e}");
        return ExitCode::FAILURE;
    }
    match server.serve_forever().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls_echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the one `listening on IP:PORT` line.
fn announce(local: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {local}")?;
    out.flush()
}
