//! The asyncio docs' TCP echo client, as a `Protocol` on `create_connection`.
//!
//! It shows the bridge from callbacks to `async` code: `main` makes an `on_con_lost` future
//! with `get_running_loop().create_future()`, hands it to the protocol, and awaits it; the
//! protocol completes it from `connection_lost`. `connection_made` writes the message,
//! `data_received` prints each piece of the echo, and once the whole echo is back the
//! protocol closes the transport (the docs' client waits for the server to close; an echo
//! server never does, so this one hangs up itself).
//!
//! ```sh
//! cargo run --release --example tcp_echo_server &
//! cargo run --release --example tcp_echo_client -- 127.0.0.1:8888 'Hello World!'
//! ```
//!
//! `ADDR` (`HOST:PORT`, `[IPv6]:PORT` or `IP:PORT`) defaults to `127.0.0.1:8888`, where
//! `tcp_echo_server` listens by default, and `MESSAGE` to `Hello World!`. Exit status: 0 when
//! the whole echo came back, 1 when connecting fails, the connection breaks, the server
//! hangs up early or nothing happens for 10 seconds, and 2 for a malformed `ADDR`.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use tulip::{LoopFuture, Protocol, Transport};

/// Where the client connects when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// What the client sends when no message is given (the docs' message).
const DEFAULT_MESSAGE: &str = "Hello World!";
/// How long the whole exchange may take.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// Sends the message, collects the echo, and reports the end of the connection through
/// `on_con_lost`.
struct EchoClient {
    message: Vec<u8>,
    echo: Vec<u8>,
    transport: Option<Transport>,
    on_con_lost: LoopFuture<()>,
}

impl EchoClient {
    fn close_if_complete(&self) {
        if self.echo.len() >= self.message.len() {
            if let Some(t) = &self.transport {
                t.close();
            }
        }
    }
}

impl Protocol for EchoClient {
    fn connection_made(&mut self, transport: &Transport) {
        transport.write(&self.message);
        println!("Data sent: {:?}", String::from_utf8_lossy(&self.message));
        self.transport = Some(transport.clone());
        self.close_if_complete(); // an empty message has nothing to wait for
    }

    fn data_received(&mut self, data: &[u8]) {
        println!("Data received: {:?}", String::from_utf8_lossy(data));
        self.echo.extend_from_slice(data);
        self.close_if_complete();
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        println!("Connection closed");
        // Called exactly once, so the future is still pending.
        match exc {
            None => self.on_con_lost.set_result(()),
            Some(e) => self.on_con_lost.set_exception(e),
        }
    }
}

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let message = args.next().unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
    if args.next().is_some() {
        eprintln!("usage: tcp_echo_client [ADDR] [MESSAGE]");
        return ExitCode::from(2);
    }
    let Some((host, port)) = split_addr(&addr) else {
        eprintln!("tcp_echo_client: bad address {addr:?}: expected HOST:PORT");
        return ExitCode::from(2);
    };

    match tulip::timeout(TIME_LIMIT, exchange(host, port, message.into_bytes())).await {
        Ok(Ok((sent, echo))) if echo == sent => ExitCode::SUCCESS,
        Ok(Ok((sent, echo))) => {
            eprintln!(
                "tcp_echo_client: {addr}: got {} bytes back for {} sent, and they differ",
                echo.len(),
                sent.len()
            );
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("tcp_echo_client: {addr}: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("tcp_echo_client: {addr}: {err} after {TIME_LIMIT:?}");
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

/// Connects, lets the protocol do its work, and waits until the connection is gone.
/// Returns what was sent and what came back.
async fn exchange(host: &str, port: u16, message: Vec<u8>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    // Get the loop, as the docs do, to make a future the protocol's callbacks can complete.
    let lp = tulip::get_running_loop();
    let on_con_lost = lp.create_future::<()>();

    let (transport, protocol) = tulip::create_connection(
        || EchoClient {
            message,
            echo: Vec::new(),
            transport: None,
            on_con_lost: on_con_lost.clone(),
        },
        host,
        port,
        Default::default(),
    )
    .await?;

    // Closes the transport however this ends (asyncio's `finally: transport.close()`),
    // including when the time limit drops this future.
    struct CloseOnDrop(Transport);
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _guard = CloseOnDrop(transport);

    on_con_lost.await?;
    // The transport has let go of the protocol; the handle still reaches it.
    Ok(protocol.with(|p| (std::mem::take(&mut p.message), std::mem::take(&mut p.echo))))
}
