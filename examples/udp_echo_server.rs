//! The asyncio docs' UDP echo server, as a `DatagramProtocol` on
//! `create_datagram_endpoint`: every datagram (an empty one too) goes back to its sender.
//!
//! ```sh
//! cargo run --release --example udp_echo_server -- 127.0.0.1:9999
//! ```
//! Prints `listening on IP:PORT` once it is bound (port 0 picks a free port).

use std::io::Write;
use std::net::SocketAddr;

use tulip::socket2::SockAddr;
use tulip::{DatagramProtocol, DatagramTransport};

/// Sends every datagram back where it came from.
struct EchoServer {
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for EchoServer {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        if let Some(t) = &self.transport {
            // An unconnected endpoint always has an address to answer: this cannot fail.
            t.sendto(data, Some(addr)).ok();
        }
    }

    fn error_received(&mut self, exc: std::io::Error) {
        // A client that went away (or a datagram too large): the server goes on.
        eprintln!("udp_echo_server: {exc}");
    }
}

#[tulip::main]
async fn main() -> std::io::Result<()> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("udp_echo_server: bad address {arg:?}: {e}");
            std::process::exit(2);
        }
    };
    let opts = tulip::net::DatagramOptions::new().local_addr(&addr.ip().to_string(), addr.port());
    let (transport, _) =
        tulip::create_datagram_endpoint(|| EchoServer { transport: None }, opts).await?;
    let local = transport
        .sockname()
        .and_then(|a| a.as_socket())
        .expect("a UDP socket");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {local}")?;
    out.flush()?;
    drop(out);
    // Serve until killed.
    std::future::pending::<()>().await;
    Ok(())
}
