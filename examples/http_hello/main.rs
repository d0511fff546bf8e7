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
//! - Flow control as in `tcp_echo_server`: a client that sends requests but does not read
//!   the responses makes the transport call `pause_writing`, and the server stops reading.
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

use tulip::{Protocol, Transport};

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// The largest header block (request line and headers, final empty line included) accepted.
const MAX_HEAD: usize = 8 * 1024;
/// A connection's buffer grown past this by a large read is given back once it is empty.
const MAX_KEPT_CAPACITY: usize = 4 * MAX_HEAD;

macro_rules! body {
    () => {
        "Hello, World!"
    };
}
const _: () = assert!(body!().len() == 13, "update Content-Length");

/// A `200 OK` response: `$conn` is an extra header line (or nothing), `$body` the body (or
/// nothing, for `HEAD`).
macro_rules! ok_response {
    ($conn:literal, $body:expr) => {
        concat!(
            "HTTP/1.1 200 OK\r\n",
            "Server: tulip\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Length: 13\r\n",
            $conn,
            "\r\n",
            $body
        )
        .as_bytes()
    };
}

/// The responses, by `[is_head as usize][ConnMode as usize]`.
static RESPONSES: [[&[u8]; 3]; 2] = [
    [
        ok_response!("", body!()),
        ok_response!("Connection: keep-alive\r\n", body!()),
        ok_response!("Connection: close\r\n", body!()),
    ],
    [
        ok_response!("", ""),
        ok_response!("Connection: keep-alive\r\n", ""),
        ok_response!("Connection: close\r\n", ""),
    ],
];

static BAD_REQUEST: &[u8] = concat!(
    "HTTP/1.1 400 Bad Request\r\n",
    "Server: tulip\r\n",
    "Content-Type: text/plain\r\n",
    "Content-Length: 12\r\n",
    "Connection: close\r\n",
    "\r\n",
    "Bad Request\n"
)
.as_bytes();

/// What the response says about the connection.
#[derive(Clone, Copy)]
enum ConnMode {
    /// HTTP/1.1 and open: nothing to say.
    KeepAlive = 0,
    /// HTTP/1.0 and open: `Connection: keep-alive`.
    KeepAlive10 = 1,
    /// Closing after this response: `Connection: close`.
    Close = 2,
}

/// What the server needs to know about a well-formed request.
struct Request {
    is_head: bool,
    mode: ConnMode,
}

/// One connection.
struct HttpHello {
    transport: Option<Transport>,
    /// The start of a request that a read cut short (empty on the fast path).
    partial: Vec<u8>,
    /// How much of `partial` was already searched for the end of the header block.
    scanned: usize,
    /// A response closed the connection: ignore whatever still arrives.
    closing: bool,
}

impl Protocol for HttpHello {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = &self.transport else { return };
        if self.closing {
            return;
        }
        if self.partial.is_empty() {
            // Fast path: parse right in the read buffer.
            match answer(t, data, &mut self.scanned) {
                Some(used) => self.partial.extend_from_slice(&data[used..]),
                None => self.closing = true,
            }
        } else {
            // A request was split: complete it in the connection's buffer.
            self.partial.extend_from_slice(data);
            match answer(t, &self.partial, &mut self.scanned) {
                Some(used) => {
                    self.partial.drain(..used);
                }
                None => {
                    self.closing = true;
                    self.partial.clear();
                }
            }
            if self.partial.is_empty() && self.partial.capacity() > MAX_KEPT_CAPACITY {
                self.partial = Vec::new();
            }
        }
    }

    fn pause_writing(&mut self) {
        // The client does not read its responses: stop reading its requests.
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

/// Answers each complete request at the start of `data`, in order. Returns how many bytes
/// they took (the rest is the start of an incomplete request), or `None` once a response
/// closed the connection. `scanned` is how much of the incomplete request was already
/// searched; it is updated for the next call.
#[inline]
fn answer(t: &Transport, data: &[u8], scanned: &mut usize) -> Option<usize> {
    let mut used = 0;
    while used < data.len() {
        let rest = &data[used..];
        let Some(end) = find_head_end(rest, *scanned) else {
            if rest.len() >= MAX_HEAD {
                t.write(BAD_REQUEST);
                t.close();
                return None;
            }
            *scanned = rest.len();
            return Some(used);
        };
        *scanned = 0;
        let request = if end <= MAX_HEAD {
            parse_head(&rest[..end])
        } else {
            None
        };
        let Some(req) = request else {
            t.write(BAD_REQUEST);
            t.close();
            return None;
        };
        t.write(RESPONSES[req.is_head as usize][req.mode as usize]);
        if let ConnMode::Close = req.mode {
            t.close();
            return None;
        }
        used += end;
    }
    Some(used)
}

/// The length of the header block at the start of `buf` (through its `\r\n\r\n`), if it is
/// complete; the search starts at `from` (bytes before it hold no end).
#[inline]
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from.max(3);
    while i < buf.len() {
        let nl = buf[i..].iter().position(|&b| b == b'\n')?;
        i += nl;
        if i >= 3 && &buf[i - 3..i] == b"\r\n\r" {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Parses a complete header block (ending in `\r\n\r\n`); `None` if it is malformed.
fn parse_head(head: &[u8]) -> Option<Request> {
    // Without the final "\n\r\n", every line ends in '\r'; a line that does not had a bare LF.
    let mut lines = head[..head.len() - 3]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r"));

    let request_line = lines.next()??;
    let mut parts = request_line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.iter().all(|&b| is_tchar(b))
        || target.is_empty()
        || !target.iter().all(|&b| b.is_ascii_graphic())
    {
        return None;
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return None,
    };

    let (mut close, mut keep_alive, mut hosts) = (false, false, 0u32);
    for line in lines {
        let line = line?;
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        // No whitespace in or before the name: this also refuses obsolete line folding.
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        if !value
            .iter()
            .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
        {
            return None;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(trim_ows) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Only an empty body: one decimal number, and zero.
            if value.is_empty() || !value.iter().all(|&b| b == b'0') {
                return None;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return None;
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host.
    if http11 && hosts != 1 {
        return None;
    }
    let mode = match (http11, close, keep_alive) {
        (_, true, _) | (false, false, false) => ConnMode::Close,
        (true, false, _) => ConnMode::KeepAlive,
        (false, false, true) => ConnMode::KeepAlive10,
    };
    Some(Request {
        is_head: method == b"HEAD",
        mode,
    })
}

/// Optional whitespace (spaces and tabs) removed from both ends.
fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Whether `b` may appear in a token (a method or a header name), RFC 9110 §5.6.2.
#[inline]
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

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
        || HttpHello {
            transport: None,
            partial: Vec::new(),
            scanned: 0,
            closing: false,
        },
        &addr.ip().to_string(),
        addr.port(),
        tulip::ServerOptions::new().backlog(1024),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Request> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn parses() {
        let r = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(!r.is_head && matches!(r.mode, ConnMode::KeepAlive));
        let r = parse("HEAD /a?b HTTP/1.1\r\nhost:x\r\nConnection: Close\r\n\r\n").unwrap();
        assert!(r.is_head && matches!(r.mode, ConnMode::Close));
        let r = parse("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(matches!(r.mode, ConnMode::Close));
        let r = parse("GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n").unwrap();
        assert!(matches!(r.mode, ConnMode::KeepAlive10));
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").is_some());
    }

    #[test]
    fn refuses() {
        for bad in [
            "GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn finds_the_end_across_reads() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..req.len() {
            let scanned = if find_head_end(&req[..cut], 0).is_none() {
                cut
            } else {
                0
            };
            assert_eq!(find_head_end(req, scanned), Some(req.len()), "cut at {cut}");
        }
    }
}
