//! A line echo server on streams: `tulip::start_server` runs one `async fn` per connection,
//! which reads lines with `StreamReader::readline` and writes them back with
//! `StreamWriter::write` + `drain` (asyncio's `start_server` echo, line by line).
//!
//! ```text
//! cargo run --release --example stream_echo_server [ADDR]
//! ```
//!
//! `ADDR` (`IP:PORT`) defaults to `127.0.0.1:8888`; port 0 picks a free port. Once it
//! listens, the server prints the one line `listening on IP:PORT`. A malformed `ADDR` exits
//! with status 2.
//!
//! Every line (`\n` included) comes back as it was sent; a last line without `\n` comes back
//! at EOF. A line longer than the reader's limit ([`tulip::streams::DEFAULT_LIMIT`], 64 KiB) gets
//! `error: line too long\n` back and the connection is closed — the other connections are
//! not affected. The close is a "lingering" one: the server shuts down its sending side
//! first (the client reads the error line, then EOF) and throws away what the client still
//! sends, for a few seconds at most, before it closes the socket. Closing a socket with
//! unread data makes the kernel answer with a reset, which may destroy the error line before
//! the client reads it.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tulip::{LimitOverrun, StreamReader, StreamWriter};

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// What a client whose line is over the limit gets back.
const TOO_LONG: &[u8] = b"error: line too long\n";
/// How long the server keeps reading (and discarding) after `TOO_LONG`.
const LINGER: Duration = Duration::from_secs(5);

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if args.next().is_some() {
        eprintln!("usage: stream_echo_server [ADDR]");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stream_echo_server: bad address {arg:?}: {e}");
            return ExitCode::from(2);
        }
    };

    // One `echo_lines` task per connection; an `Err` it returns goes to the loop's exception
    // handler, which logs it — the server goes on.
    let server = match tulip::start_server(
        echo_lines,
        &addr.ip().to_string(),
        addr.port(),
        Default::default(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stream_echo_server: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = announce(server.local_addr().expect("a TCP listener")) {
        eprintln!("stream_echo_server: {e}");
        return ExitCode::FAILURE;
    }
    match server.serve_forever().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream_echo_server: {e}");
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

/// Serves one connection: echoes lines until EOF or a line over the limit.
async fn echo_lines(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        match reader.readline().await {
            // EOF, and nothing left: done.
            Ok(line) if line.is_empty() => break,
            // A line, or the partial last one at EOF.
            Ok(line) => {
                writer.write(&line);
                // Waits only if the client does not read what we send (back-pressure).
                writer.drain().await?;
            }
            // Over the limit: the reader already dropped what it buffered of that line.
            Err(e) if LimitOverrun::from_io(&e).is_some() => {
                writer.write(TOO_LONG);
                writer.write_eof(); // the client reads the error line, then EOF
                writer.drain().await?;
                // Discard the rest of what the client sends, until its EOF or LINGER.
                let _ = tulip::timeout(LINGER, async {
                    while !reader.read(64 * 1024).await?.is_empty() {}
                    io::Result::Ok(())
                })
                .await;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    writer.close();
    Ok(())
}
