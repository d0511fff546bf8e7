//! The asyncio docs' TCP echo server, as a `Protocol` — made flow-control correct: when the
//! transport says `pause_writing` (the client sends but does not read), the protocol pauses
//! reading, and resumes on `resume_writing`, so such a client cannot grow the server's memory.
//!
//! ```sh
//! cargo run --release --example tcp_echo_server -- 127.0.0.1:8888
//! ```
//! Prints `listening on IP:PORT` once it listens (port 0 picks a free port).

use std::io::Write;
use std::net::SocketAddr;

use tulip::{Protocol, Transport};

/// Echoes every byte back.
struct EchoServer {
    transport: Option<Transport>,
}

impl Protocol for EchoServer {
    fn connection_made(&mut self, transport: &Transport) {
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

#[tulip::main]
async fn main() -> std::io::Result<()> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8888".into());
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tcp_echo_server: bad address {arg:?}: {e}");
            std::process::exit(2);
        }
    };
    let server = tulip::create_server(
        || EchoServer { transport: None },
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new().backlog(1024),
    )
    .await?;
    let local = server.local_addr().expect("a TCP listener");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {local}")?;
    out.flush()?;
    drop(out);
    server.serve_forever().await
}
