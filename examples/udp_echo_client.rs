//! The asyncio docs' UDP echo client, as a `DatagramProtocol` on a connected
//! `create_datagram_endpoint`: `connection_made` sends the message, `datagram_received`
//! prints the echo and closes the endpoint, and `main` awaits the `on_con_lost` future that
//! `connection_lost` completes.
//!
//! ```sh
//! cargo run --release --example udp_echo_server &
//! cargo run --release --example udp_echo_client -- 127.0.0.1:9999 'Hello World!'
//! ```
//!
//! `ADDR` (`HOST:PORT`, `[IPv6]:PORT`) defaults to `127.0.0.1:9999`, where `udp_echo_server`
//! listens by default, and `MESSAGE` to `Hello World!`. UDP may lose a datagram: the client
//! sends again every second. An `error_received` (no server there: the port is refused) ends
//! the exchange. Exit status: 0 when the echo came back, 1 on an error or after 10 seconds
//! without an echo, 2 for a malformed `ADDR`.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use tulip::socket2::SockAddr;
use tulip::{DatagramProtocol, DatagramTransport, LoopFuture};

const DEFAULT_ADDR: &str = "127.0.0.1:9999";
const DEFAULT_MESSAGE: &str = "Hello World!";
const TIME_LIMIT: Duration = Duration::from_secs(10);
const RESEND: Duration = Duration::from_secs(1);

/// Sends the message, waits for the echo.
struct EchoClient {
    message: Vec<u8>,
    echo: Option<Vec<u8>>,
    error: Option<io::Error>,
    transport: Option<DatagramTransport>,
    on_con_lost: LoopFuture<()>,
}

impl DatagramProtocol for EchoClient {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        println!("Send: {:?}", String::from_utf8_lossy(&self.message));
        transport.sendto(&self.message, None).ok();
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        println!("Received: {:?}", String::from_utf8_lossy(data));
        self.echo = Some(data.to_vec());
        println!("Close the socket");
        if let Some(t) = &self.transport {
            t.close();
        }
    }

    fn error_received(&mut self, exc: io::Error) {
        println!("Error received: {exc}");
        self.error = Some(exc);
        if let Some(t) = &self.transport {
            t.close();
        }
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        println!("Connection closed");
        self.on_con_lost.set_result(());
    }
}

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let message = args.next().unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
    if args.next().is_some() {
        eprintln!("usage: udp_echo_client [ADDR] [MESSAGE]");
        return ExitCode::from(2);
    }
    let Some((host, port)) = split_addr(&addr) else {
        eprintln!("udp_echo_client: bad address {addr:?}: expected HOST:PORT");
        return ExitCode::from(2);
    };
    match tulip::timeout(TIME_LIMIT, exchange(host, port, message.into_bytes())).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("udp_echo_client: {addr}: the echo differs from the message");
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("udp_echo_client: {addr}: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("udp_echo_client: {addr}: no echo: {err} after {TIME_LIMIT:?}");
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

/// Sends until the echo is back; whether it equals the message.
async fn exchange(host: &str, port: u16, message: Vec<u8>) -> io::Result<bool> {
    let on_con_lost = tulip::get_running_loop().create_future::<()>();
    let (transport, protocol) = tulip::create_datagram_endpoint(
        || EchoClient {
            message: message.clone(),
            echo: None,
            error: None,
            transport: None,
            on_con_lost: on_con_lost.clone(),
        },
        tulip::net::DatagramOptions::new().remote_addr(host, port),
    )
    .await?;
    // Closes the endpoint however this ends, the time limit included.
    struct CloseOnDrop(DatagramTransport);
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _guard = CloseOnDrop(transport.clone());
    // Wait for the end of the exchange; if a second passes first, the datagram or its echo
    // was lost on the way: send again.
    loop {
        match tulip::timeout(RESEND, on_con_lost.clone()).await {
            Ok(closed) => break closed?,
            Err(_elapsed) => transport.sendto(&message, None)?,
        }
    }
    protocol.with(|p| match p.error.take() {
        Some(e) => Err(e),
        None => Ok(p.echo.as_deref() == Some(&message[..])),
    })
}
