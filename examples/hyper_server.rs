//! hyper's HTTP/1.1 server on tulip (the `hyper` feature): `tulip::start_server` hands each
//! connection, as one `tulip::Stream`, to `hyper::server::conn::http1::Builder`, with
//! `tulip::hyper::TulipTimer` for hyper's timeouts.
//!
//! ```text
//! cargo run --release --features hyper --example hyper_server [ADDR]
//! curl http://127.0.0.1:8080/
//! ```
//!
//! `ADDR` (`IP:PORT`) defaults to `127.0.0.1:8080`; port 0 picks a free port. Once it
//! listens, the server prints the one line `listening on IP:PORT`. A malformed `ADDR` exits
//! with status 2.
//!
//! `GET /` (and `HEAD /`) → `200 OK` with the body `Hello, World!`; any other path → `404`.
//! Connections are kept alive (HTTP/1.1's default) until the client closes or sends
//! `Connection: close`.

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tulip::{StreamReader, StreamWriter};

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if args.next().is_some() {
        eprintln!("usage: hyper_server [ADDR]");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hyper_server: bad address {arg:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match tulip::start_server(
        serve,
        &addr.ip().to_string(),
        addr.port(),
        Default::default(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hyper_server: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = announce(server.local_addr().expect("a TCP listener")) {
        eprintln!("hyper_server: {e}");
        return ExitCode::FAILURE;
    }
    match server.serve_forever().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyper_server: {e}");
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

/// Serves one connection with hyper until the client is done. A broken connection is the
/// client's business: it is not reported.
async fn serve(reader: StreamReader, writer: StreamWriter) {
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(tulip::hyper::TulipTimer)
        .serve_connection(reader.unsplit(writer), hyper::service::service_fn(hello))
        .await;
}

/// `/` → `Hello, World!`; anything else → 404.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    if req.uri().path() != "/" {
        *resp.status_mut() = StatusCode::NOT_FOUND;
        *resp.body_mut() = Full::new(Bytes::from_static(b"Not Found"));
    }
    Ok(resp)
}
