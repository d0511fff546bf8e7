//! A TCP echo client on tulip's `sock_*` futures: `sock_connect` on a non-blocking
//! `socket2::Socket`, then `sock_sendall` and `sock_recv` until the whole echo is back.
//!
//! ```text
//! cargo run --release --example sock_echo_client [ADDR] [MESSAGE]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:8888` (where the `sock_echo_server` example listens by
//! default) and `MESSAGE` to `hello, tulip`. The client prints the echo and exits with
//! status 0; if it cannot connect, or the connection fails or takes more than 10 seconds,
//! it prints the error on stderr and exits with status 1. A malformed `ADDR` exits with
//! status 2.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use tulip::socket2::{Domain, Protocol, Socket, Type};

/// Where the client connects when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// What the client sends when no message is given.
const DEFAULT_MESSAGE: &str = "hello, tulip";
/// How long the whole exchange may take.
const TIME_LIMIT: Duration = Duration::from_secs(10);

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let message = args.next().unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
    if args.next().is_some() {
        eprintln!("usage: sock_echo_client [ADDR] [MESSAGE]");
        return ExitCode::from(2);
    }
    let addr = match resolve(&arg) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("sock_echo_client: bad address {arg:?}: {err}");
            return ExitCode::from(2);
        }
    };

    match tulip::timeout(TIME_LIMIT, exchange(addr, message.as_bytes())).await {
        Ok(Ok(echo)) => {
            println!("{}", String::from_utf8_lossy(&echo));
            if echo == message.as_bytes() {
                ExitCode::SUCCESS
            } else {
                eprintln!("sock_echo_client: the echo differs from the message");
                ExitCode::FAILURE
            }
        }
        Ok(Err(err)) => {
            eprintln!("sock_echo_client: {addr}: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("sock_echo_client: {addr}: {err} after {TIME_LIMIT:?}");
            ExitCode::FAILURE
        }
    }
}

/// The first address `arg` ("IP:PORT" or "HOST:PORT") stands for.
fn resolve(arg: &str) -> io::Result<SocketAddr> {
    arg.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found"))
}

/// Connects to `addr`, sends `message` and returns what comes back: as many bytes as were
/// sent, or fewer if the server closes the connection first.
async fn exchange(addr: SocketAddr, message: &[u8]) -> io::Result<Vec<u8>> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    tulip::sock_connect(&sock, addr).await?;
    tulip::sock_sendall(&sock, message).await?;

    let mut echo = Vec::with_capacity(message.len());
    while echo.len() < message.len() {
        let chunk = tulip::sock_recv(&sock, message.len() - echo.len()).await?;
        if chunk.is_empty() {
            break; // EOF
        }
        echo.extend_from_slice(&chunk);
    }
    Ok(echo)
}
