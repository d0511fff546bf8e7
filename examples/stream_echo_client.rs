//! A line echo client on streams: `tulip::open_connection`, then `write` + `drain` one line
//! and `readline` its echo (asyncio's `open_connection` echo client).
//!
//! ```text
//! cargo run --release --example stream_echo_server &
//! cargo run --release --example stream_echo_client [ADDR] [MESSAGE]
//! ```
//!
//! `ADDR` (`HOST:PORT`, `[IPv6]:PORT` or `IP:PORT`) defaults to `127.0.0.1:8888`, where
//! `stream_echo_server` listens by default, and `MESSAGE` (one line, no `\n`) to
//! `hello, tulip`. The client sends `MESSAGE\n`, prints the line that comes back (without its
//! `\n`) and exits with status 0 if it is the message. Exit status 1 (and the error on
//! stderr) when connecting fails, the connection breaks, the echo differs or nothing happens
//! for 10 seconds; 2 for a malformed `ADDR` or a `MESSAGE` with a newline.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

/// Where the client connects when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// What the client sends when no message is given.
const DEFAULT_MESSAGE: &str = "hello, tulip";
/// How long the whole exchange may take.
const TIME_LIMIT: Duration = Duration::from_secs(10);

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let message = args.next().unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
    if args.next().is_some() || message.contains('\n') {
        eprintln!("usage: stream_echo_client [ADDR] [MESSAGE (one line)]");
        return ExitCode::from(2);
    }
    let Some((host, port)) = split_addr(&addr) else {
        eprintln!("stream_echo_client: bad address {addr:?}: expected HOST:PORT");
        return ExitCode::from(2);
    };

    match tulip::timeout(TIME_LIMIT, exchange(host, port, &message)).await {
        Ok(Ok(echo)) => {
            println!("{}", String::from_utf8_lossy(&echo));
            if echo == message.as_bytes() {
                ExitCode::SUCCESS
            } else {
                eprintln!("stream_echo_client: the echo differs from the message");
                ExitCode::FAILURE
            }
        }
        Ok(Err(err)) => {
            eprintln!("stream_echo_client: {addr}: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("stream_echo_client: {addr}: {err} after {TIME_LIMIT:?}");
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

/// Sends `message` as one line and returns the line that comes back, without its `\n`.
async fn exchange(host: &str, port: u16, message: &str) -> io::Result<Vec<u8>> {
    let (mut reader, writer) = tulip::open_connection(host, port, Default::default()).await?;
    writer.write(message.as_bytes());
    writer.write(b"\n");
    writer.drain().await?;

    let mut line = reader.readline().await?;
    if line.pop() != Some(b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection before the end of the line",
        ));
    }
    writer.close();
    Ok(line)
}
