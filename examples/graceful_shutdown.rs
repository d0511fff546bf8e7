//! An echo server that shuts down gracefully on `SIGTERM` or Ctrl-C (`SIGINT`).
//!
//! ```text
//! cargo run --release --example graceful_shutdown [ADDR]
//! ```
//!
//! `ADDR` (`IP:PORT`) defaults to `127.0.0.1:8888`; port 0 picks a free port. Once it
//! listens, the server prints the one line `listening on IP:PORT`; a malformed `ADDR` exits
//! with status 2.
//!
//! On the first `SIGTERM` or `SIGINT` it prints `SIGTERM: stopping` (or `SIGINT: …`), stops
//! accepting (new connections are refused) and lets the connected clients finish — their
//! connections keep echoing until they close them — for up to 5 seconds. Then it closes the
//! connections still open (what they were sent is flushed first; `Server::shutdown`), prints
//! `stopped` and exits with status 0. A second signal during the 5 seconds skips the rest of
//! the wait.
//!
//! The signals are watched with `tulip::signal` streams, which also replaces the Ctrl-C
//! handling of `#[tulip::main]` (cancel `main` and die of `SIGINT`) with the program's own.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use futures_lite::future;
use tulip::{Protocol, Transport};

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// How long connected clients may go on after the signal.
const GRACE: Duration = Duration::from_secs(5);
/// How long the connections still open then get to flush what they were sent.
const FLUSH: Duration = Duration::from_secs(1);

/// Echoes every byte back (and stops reading while the client does not read).
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn pause_writing(&mut self) {
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
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if args.next().is_some() {
        eprintln!("usage: graceful_shutdown [ADDR]");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("graceful_shutdown: bad address {arg:?}: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(addr).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graceful_shutdown: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> io::Result<()> {
    // Watch the signals before announcing the address: from then on, a signal is ours.
    let mut sigterm = tulip::signal(tulip::unix::SIGTERM)?;
    let mut sigint = tulip::signal(tulip::unix::SIGINT)?;
    let server = tulip::create_server(
        || Echo { transport: None },
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new(),
    )
    .await?;
    say(&format!(
        "listening on {}",
        server.local_addr().expect("a TCP listener")
    ))?;

    let which = future::or(
        async {
            sigterm.recv().await;
            "SIGTERM"
        },
        async {
            sigint.recv().await;
            "SIGINT"
        },
    )
    .await;
    server.close(); // stop accepting; the connections already accepted go on
    say(&format!(
        "{which}: stopping, {} connection(s) open",
        server.connection_count()
    ))?;

    // Until the clients are done, GRACE is over, or another signal comes.
    let another = async {
        future::or(sigterm.recv(), sigint.recv()).await;
    };
    let _ = tulip::timeout(GRACE, future::or(server.wait_closed(), another)).await;
    if server.connection_count() > 0 {
        say(&format!(
            "closing {} connection(s) still open",
            server.connection_count()
        ))?;
    }
    server.shutdown(FLUSH).await;
    say("stopped")
}

/// Prints one line on stdout, at once.
fn say(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
