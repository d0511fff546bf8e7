//! hyper's HTTP/1.1 client on tulip (the `hyper` feature): `tulip::open_connection`, then
//! `hyper::client::conn::http1::handshake` on the joined `tulip::Stream`, one `GET`.
//!
//! ```text
//! cargo run --release --features hyper --example hyper_server &
//! cargo run --release --features hyper --example hyper_client http://127.0.0.1:8080/
//! ```
//!
//! `URL` is `http://HOST[:PORT][/PATH]` (port 80 by default; no `https`). The client prints
//! the status line (`HTTP/1.1 200 OK`) and then the body and a newline, and exits with status 0 for a
//! 2xx response, 1 for any other status or when connecting or the exchange fails or takes
//! over 10 seconds, 2 for a malformed `URL`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, Uri};

/// How long the whole exchange may take.
const TIME_LIMIT: Duration = Duration::from_secs(10);

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(arg), None) = (args.next(), args.next()) else {
        eprintln!("usage: hyper_client URL");
        return ExitCode::from(2);
    };
    let uri: Uri = match arg.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("hyper_client: bad URL {arg:?}: {e}");
            return ExitCode::from(2);
        }
    };
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        eprintln!("hyper_client: bad URL {arg:?}: only http://HOST[:PORT][/PATH] is supported");
        return ExitCode::from(2);
    }
    match tulip::timeout(TIME_LIMIT, get(&uri)).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            eprintln!("hyper_client: {uri}: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("hyper_client: {uri}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `GET uri`, printing the status line and the body; `Ok(true)` for a 2xx status.
async fn get(uri: &Uri) -> io::Result<bool> {
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(80);
    let (r, w) = tulip::open_connection(host, port, Default::default()).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(r.unsplit(w))
        .await
        .map_err(io::Error::other)?;
    let conn = tulip::spawn(conn);
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let resp = sender.send_request(req).await.map_err(io::Error::other)?;
    let (status, version) = (resp.status(), resp.version());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    drop(sender);
    // With the sender gone the connection closes; its future ends.
    conn.await.map_err(io::Error::other)?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{:?} {} {}",
        version,
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )?;
    out.write_all(&body)?;
    writeln!(out)?;
    out.flush()?;
    Ok(status.is_success())
}
