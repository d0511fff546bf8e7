//! STARTTLS on streams: one connection that starts in plaintext and is upgraded to TLS in the
//! middle, both ends in tulip, in one process (as in SMTP, IMAP or XMPP).
//!
//! ```text
//! cargo run --release --example starttls
//! ```
//!
//! The server (`tulip::start_server` on a free port of 127.0.0.1) gets a self-signed
//! certificate for `localhost` generated with rcgen; the client (`tulip::open_connection`)
//! trusts exactly that certificate. Then:
//!
//! 1. the client sends `STARTTLS\n` in plaintext, the server answers `OK\n`;
//! 2. both call `StreamWriter::start_tls` (the server with `TlsOptions::server`, the client
//!    with `TlsOptions::client(…).server_hostname("localhost")`) on the same connection: the
//!    handshake runs, and the reader and writer now speak through TLS;
//! 3. the client sends a secret line, the server answers it — both encrypted;
//!    `get_extra_info("protocol_version")` and `("cipher")` tell what was negotiated.
//!
//! Every step is printed, prefixed by `[server]` or `[client]`; the run ends with `done` and
//! exit status 0, or with the error on stderr and status 1 (also if it takes over 10 s).

use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tulip::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tulip::tls::rustls::{ClientConfig, ServerConfig};
use tulip::{LoopFuture, StreamReader, StreamWriter, tls::TlsOptions, transports::ExtraInfo};

/// What the client tells the server over TLS.
const SECRET: &[u8] = b"the password is swordfish\n";
/// How long the whole exchange may take.
const TIME_LIMIT: Duration = Duration::from_secs(10);

#[tulip::main]
async fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("usage: starttls (no arguments)");
        return ExitCode::from(2);
    }
    match tulip::timeout(TIME_LIMIT, run()).await {
        Ok(Ok(())) => {
            println!("done");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("starttls: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("starttls: {e} after {TIME_LIMIT:?}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> io::Result<()> {
    let (server_config, client_config) = configs()?;

    // The server reports how its one connection went through this future.
    let served = tulip::get_running_loop().create_future::<()>();
    let server = {
        let served = served.clone();
        tulip::start_server(
            move |r, w| serve(r, w, server_config.clone(), served.clone()),
            "127.0.0.1",
            0,
            Default::default(),
        )
        .await?
    };
    let addr = server.local_addr().expect("a TCP listener");
    println!("[server] listening on {addr} (plaintext)");

    let client = client(addr.port(), client_config).await;
    // Whatever the client did, wait for the server's side of the story too.
    let served = served.await;
    server.close();
    server.wait_closed().await;
    client?;
    served
}

/// A self-signed certificate for `localhost`: the server's config, and a client config
/// that trusts that certificate only.
fn configs() -> io::Result<(Arc<ServerConfig>, Arc<ClientConfig>)> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(io::Error::other)?;
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server = tulip::tls::server_config(vec![cert.clone()], key)?;
    let client = tulip::tls::client_config_with_roots([cert])?;
    Ok((server, client))
}

/// The server's connection handler; its result goes to `served`.
async fn serve(
    reader: StreamReader,
    writer: StreamWriter,
    config: Arc<ServerConfig>,
    served: LoopFuture<()>,
) {
    let result = serve_one(reader, writer, config).await;
    if !served.done() {
        match result {
            Ok(()) => served.set_result(()),
            Err(e) => served.set_exception(io::Error::new(e.kind(), format!("server: {e}"))),
        }
    }
}

async fn serve_one(
    mut reader: StreamReader,
    mut writer: StreamWriter,
    config: Arc<ServerConfig>,
) -> io::Result<()> {
    let line = reader.readline().await?;
    println!("[server] plaintext: received {:?}", show(&line));
    if line != b"STARTTLS\n" {
        writer.write(b"ERROR expected STARTTLS\n");
        writer.close();
        return Err(io::Error::other("the client did not ask for STARTTLS"));
    }
    writer.write(b"OK\n");
    println!("[server] plaintext: sent \"OK\\n\", starting TLS");
    // `start_tls` drains the "OK\n" first, then runs the handshake as the server.
    writer
        .start_tls(&mut reader, TlsOptions::server(config))
        .await?;
    println!("[server] TLS is up: {}", negotiated(&writer));

    let secret = reader.readline().await?;
    println!("[server] TLS: received {:?}", show(&secret));
    let answer = format!("got {} bytes, thanks\n", secret.len());
    writer.write(answer.as_bytes());
    println!("[server] TLS: sent {:?}", answer);
    writer.drain().await?;

    // The client closes first; its close_notify is our EOF.
    let rest = reader.read_to_eof().await?;
    println!(
        "[server] TLS: EOF (close_notify) after {} more bytes",
        rest.len()
    );
    writer.close();
    writer.wait_closed().await
}

async fn client(port: u16, config: Arc<ClientConfig>) -> io::Result<()> {
    let (mut reader, mut writer) =
        tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    println!("[client] connected to 127.0.0.1:{port}");
    writer.write(b"STARTTLS\n");
    println!("[client] plaintext: sent \"STARTTLS\\n\"");
    let line = reader.readline().await?;
    println!("[client] plaintext: received {:?}", show(&line));
    if line != b"OK\n" {
        return Err(io::Error::other(format!(
            "client: the server refused STARTTLS: {:?}",
            show(&line)
        )));
    }
    println!("[client] starting TLS, verifying the server as \"localhost\"");
    writer
        .start_tls(
            &mut reader,
            TlsOptions::client(config).server_hostname("localhost"),
        )
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("client: {e}")))?;
    println!("[client] TLS is up: {}", negotiated(&writer));

    writer.write(SECRET);
    println!("[client] TLS: sent {:?}", show(SECRET));
    let answer = reader.readline().await?;
    println!("[client] TLS: received {:?}", show(&answer));
    writer.close();
    writer.wait_closed().await?;
    println!("[client] closed");
    Ok(())
}

/// `protocol_version, cipher` as `get_extra_info` reports them.
fn negotiated(writer: &StreamWriter) -> String {
    let text = |name| match writer.get_extra_info(name) {
        Some(ExtraInfo::Text(t)) => t,
        _ => "?".to_string(),
    };
    format!(
        "protocol_version={}, cipher={}",
        text("protocol_version"),
        text("cipher")
    )
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
