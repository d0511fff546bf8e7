//! A minimal HTTP/1.1 "Hello, World!" server as a `Protocol`: a benchmark target (`wrk`)
//! that still speaks enough HTTP/1.1 to be correct.
//!
//! ```sh
//! cargo run --release --example http_hello -- 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/
//! wrk -t1 -c100 -d10s http://127.0.0.1:8080/
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:8888`; port 0 picks a free port. Once listening, the server
//! prints one line, `listening on IP:PORT`, to stdout. A malformed `ADDR` exits with status
//! 2, a failure to listen with status 1.
//!
//! # What it does
//! - Every well-formed request gets `200 OK` with the body `Hello, World!` and a
//!   `Content-Length`; a `HEAD` request gets the same headers and no body.
//! - Connections are persistent: HTTP/1.1 keeps them open unless the request says
//!   `Connection: close`; HTTP/1.0 closes after the response unless the request says
//!   `Connection: keep-alive` (the response then says so too).
//! - Pipelining: several requests in one read get their responses in order. A request split
//!   across reads is kept in the connection's buffer until its header block is complete.
//! - A malformed request — bad request line, bad header line, a header block over 8 KiB, an
//!   HTTP/1.1 request without exactly one `Host`, or a version other than 1.0/1.1 — gets
//!   `400 Bad Request` and the connection is closed.
//! - Request bodies are not supported: a request with `Transfer-Encoding` or a
//!   `Content-Length` other than 0 is answered with `400` and the connection closed (the body
//!   is not read, so the connection could not be reused anyway).
//! - No `Date` header, to keep every response a precomputed constant.
//! - Flow control: a client that sends requests but does not read the responses makes the
//!   transport's buffer pass its high-water mark; the server then stops answering (even in
//!   the middle of a read of pipelined requests), keeps the requests it has not answered,
//!   and stops reading (`pause_writing`). At `resume_writing` it answers the kept requests
//!   and reads again. What it queues stays near the high-water mark (64 KiB). In the loop's
//!   debug mode (`TULIP_DEBUG=1`) each `pause_writing` prints
//!   `http_hello: pause_writing with N bytes queued` to stderr.
//!
//! # How it is built
//! `http.rs` parses the requests and picks each response, with no tulip dependency (the
//! benchmark suite's HTTP servers, `benches/net/http.rs`, run the same file); `main.rs` is
//! the `Protocol` that feeds it what arrives and writes what it answers.
//!
//! # The hot path allocates nothing
//! `data_received` parses the requests right in the loop's read buffer that it is given;
//! only when a read ends in the middle of a request is the rest copied into the connection's
//! `Vec` (which keeps its capacity for the next time). Each response is one
//! `Transport::write` of a `static` byte string, which the transport sends at once when its
//! write buffer is empty.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

mod http;
mod protocol;

use protocol::HttpHello;

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if args.next().is_some() {
        eprintln!("usage: http_hello [ADDR]");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("http_hello: bad address {arg:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match tulip::create_server(
        HttpHello::new,
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new().backlog(1024),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("http_hello: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = announce(server.local_addr().expect("a TCP listener")) {
        eprintln!("http_hello: {e}");
        return ExitCode::FAILURE;
    }
    match server.serve_forever().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_hello: {e}");
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
