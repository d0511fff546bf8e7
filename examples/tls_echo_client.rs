//! A TLS echo client on streams: `open_connection(host, port, ConnectOptions::new().tls(…))`
//! connects, verifies the server's certificate, sends a message and prints the echo.
//!
//! ```text
//! cargo run --release --example tls_echo_client -- [ADDR] [--cafile PEM]
//!     [--server-hostname NAME] [MESSAGE]
//! ```
//!
//! `ADDR` (`HOST:PORT`, `[IPv6]:PORT` or `IP:PORT`) defaults to `127.0.0.1:8888`, where
//! `tls_echo_server` listens by default, and `MESSAGE` to `Hello World!`. The server's
//! certificate is verified against the system's trust roots (`tulip::tls::client_config`),
//! or, with `--cafile`, against the certificates in that PEM file only
//! (`tulip::tls::client_config_from_ca_file`) — e.g. the `tulip-selfsigned.pem` that
//! `tls_echo_server` writes. The name checked (and sent as SNI) is `--server-hostname`, by
//! default `ADDR`'s host.
//!
//! Exit status: 0 when the whole echo came back; 1 when the CA file is unusable, connecting
//! fails, the certificate does not verify (the rustls error is printed on stderr), the
//! connection breaks or nothing happens for 10 seconds; 2 for bad arguments.

use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tulip::tls::TlsError;
use tulip::tls::rustls::{self, ClientConfig};
use tulip::{StreamWriter, net::ConnectOptions, tls::TlsOptions, transports::ExtraInfo};

/// Where the client connects when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// What the client sends when no message is given.
const DEFAULT_MESSAGE: &str = "Hello World!";
/// How long the whole exchange may take.
const TIME_LIMIT: Duration = Duration::from_secs(10);
const USAGE: &str =
    "usage: tls_echo_client [ADDR] [--cafile PEM] [--server-hostname NAME] [MESSAGE]";

/// The command line.
struct Args {
    addr: String,
    cafile: Option<String>,
    server_hostname: Option<String>,
    message: String,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let (mut cafile, mut server_hostname) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cafile" => cafile = Some(args.next().ok_or("--cafile needs a file")?),
            "--server-hostname" => {
                server_hostname = Some(args.next().ok_or("--server-hostname needs a name")?);
            }
            "-h" | "--help" => return Err(String::new()),
            "--" => positional.extend(args.by_ref()),
            s if s.starts_with("--") => return Err(format!("unknown option {s:?}")),
            _ => positional.push(arg),
        }
    }
    if positional.len() > 2 {
        return Err(format!("unexpected argument {:?}", positional[2]));
    }
    let mut positional = positional.into_iter();
    Ok(Args {
        addr: positional.next().unwrap_or_else(|| DEFAULT_ADDR.into()),
        message: positional.next().unwrap_or_else(|| DEFAULT_MESSAGE.into()),
        cafile,
        server_hostname,
    })
}

#[tulip::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("tls_echo_client: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some((host, port)) = split_addr(&args.addr) else {
        eprintln!(
            "tls_echo_client: bad address {:?}: expected HOST:PORT",
            args.addr
        );
        return ExitCode::from(2);
    };
    let config = match &args.cafile {
        Some(path) => tulip::tls::client_config_from_ca_file(path),
        None => tulip::tls::client_config(),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tls_echo_client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = args.server_hostname.as_deref().unwrap_or(host);

    let exchange = exchange(host, port, config, name, args.message.as_bytes());
    match tulip::timeout(TIME_LIMIT, exchange).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("tls_echo_client: {}: {err}", args.addr);
            if is_unknown_issuer(&err) && args.cafile.is_none() {
                eprintln!(
                    "tls_echo_client: (the system does not trust the server's certificate; \
                     for a self-signed one, pass it with --cafile)"
                );
            }
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("tls_echo_client: {}: {err} after {TIME_LIMIT:?}", args.addr);
            ExitCode::FAILURE
        }
    }
}

/// `HOST:PORT` or `[IPv6]:PORT` → (host, port).
fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

/// Whether `err` is a certificate that chains to no trusted root.
fn is_unknown_issuer(err: &io::Error) -> bool {
    matches!(
        TlsError::from_io(err).map(TlsError::rustls_error),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    )
}

/// Connects (the handshake verifies the server as `name`), sends `message`, prints the
/// echo, and closes with `close_notify`.
async fn exchange(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
    name: &str,
    message: &[u8],
) -> io::Result<()> {
    let tls = TlsOptions::client(config).server_hostname(name);
    let (mut reader, writer) =
        tulip::open_connection(host, port, ConnectOptions::new().tls(tls)).await?;
    println!(
        "TLS: {}, {}; certificate verified for {name:?}",
        text_info(&writer, "protocol_version"),
        text_info(&writer, "cipher")
    );

    writer.write(message);
    writer.drain().await?;
    println!("Data sent: {:?}", String::from_utf8_lossy(message));
    let echo = reader.readexactly(message.len()).await?;
    println!("Data received: {:?}", String::from_utf8_lossy(&echo));

    writer.close();
    writer.wait_closed().await
}

/// A text item of `get_extra_info`, or `?`.
fn text_info(writer: &StreamWriter, name: &str) -> String {
    match writer.get_extra_info(name) {
        Some(ExtraInfo::Text(t)) => t,
        _ => "?".into(),
    }
}
