//! A TCP echo server built only on tulip's `sock_*` futures (asyncio's `loop.sock_accept`,
//! `loop.sock_recv` and `loop.sock_sendall`), with one task per connection.
//!
//! ```text
//! cargo run --release --example sock_echo_server [ADDR]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:8888`; port 0 picks a free port. Once the socket is bound
//! and listening the server prints one line, `listening on IP:PORT` with the real port, to
//! stdout. Errors of single connections (reset by peer, …) are printed to stderr and do not
//! stop the server. A malformed `ADDR` exits with status 2, a failure to bind with status 1.
//!
//! Try it with the `sock_echo_client` example, or with `nc 127.0.0.1 8888`.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if args.next().is_some() {
        eprintln!("usage: sock_echo_server [ADDR]");
        return ExitCode::from(2);
    }
    let addr = match resolve(&arg) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("sock_echo_server: bad address {arg:?}: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match listen(addr) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sock_echo_server: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };

    loop {
        match tulip::sock_accept(&listener).await {
            Ok((conn, peer)) => tulip::spawn(echo(conn, peer)).detach(),
            Err(err) => {
                // Out of file descriptors and the like: say so, and give connections time
                // to close instead of spinning on the same error.
                eprintln!("sock_echo_server: accept: {err}");
                tulip::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The first address `arg` ("IP:PORT" or "HOST:PORT") stands for.
fn resolve(arg: &str) -> io::Result<SocketAddr> {
    arg.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found"))
}

/// Binds a non-blocking listener to `addr` and announces its real address on stdout.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {local}")?;
    out.flush()?;
    Ok(listener)
}

/// Sends back whatever arrives on `conn`, until the peer closes it.
async fn echo(conn: TcpStream, peer: SocketAddr) {
    if let Err(err) = echo_until_eof(&conn).await {
        eprintln!("sock_echo_server: {peer}: {err}");
    }
}

async fn echo_until_eof(conn: &TcpStream) -> io::Result<()> {
    loop {
        let data = tulip::sock_recv(conn, 64 * 1024).await?;
        if data.is_empty() {
            return Ok(());
        }
        tulip::sock_sendall(conn, &data).await?;
    }
}
