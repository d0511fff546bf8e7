//! The HTTP/1.1 side of `http_hello`: parsing requests and choosing the response, with no
//! tulip dependency, so that whatever drives the sockets can use it. The example's `Protocol`
//! (`main.rs`) calls [`answer`]; so do the benchmark suite's HTTP servers (`benches/net/http.rs`
//! includes this file), which therefore run exactly the example's parser.
//!
//! - Every well-formed request gets `200 OK` with the body `Hello, World!` and a
//!   `Content-Length`; a `HEAD` request gets the same headers and no body.
//! - Connections are persistent: HTTP/1.1 keeps them open unless the request says
//!   `Connection: close`; HTTP/1.0 closes after the response unless the request says
//!   `Connection: keep-alive` (the response then says so too).
//! - A malformed request — bad request line, bad header line, a header block over
//!   [`MAX_HEAD`], an HTTP/1.1 request without exactly one `Host`, or a version other than
//!   1.0/1.1 — gets `400 Bad Request` and closes the connection.
//! - Request bodies are not supported: a request with `Transfer-Encoding` or a
//!   `Content-Length` other than 0 gets `400` and closes the connection.
//! - Every response is a precomputed `static` byte string (hence no `Date` header), and
//!   nothing here allocates.

/// The largest header block (request line and headers, final empty line included) accepted.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ConnMode {
    /// HTTP/1.1 and open: nothing to say.
    KeepAlive = 0,
    /// HTTP/1.0 and open: `Connection: keep-alive`.
    KeepAlive10 = 1,
    /// Closing after this response: `Connection: close`.
    Close = 2,
}

/// What the server needs to know about a well-formed request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request {
    pub(crate) is_head: bool,
    pub(crate) mode: ConnMode,
}

/// Answers each complete request at the start of `data`, in order, by calling `respond` with
/// its response. Returns how many bytes they took (the rest is the start of an incomplete
/// request, to be kept and given again with what follows), or `None` once a response closes
/// the connection: the caller sends what `respond` got, then closes, and ignores whatever
/// else arrives. `scanned` is how much of the incomplete request was already searched for the
/// end of its header block (0 for a new connection); it is updated for the next call.
#[inline]
#[allow(dead_code)] // the benchmark suite's servers; the example's protocol uses `answer_while`
pub(crate) fn answer(
    data: &[u8],
    scanned: &mut usize,
    mut respond: impl FnMut(&'static [u8]),
) -> Option<usize> {
    answer_while(data, scanned, |r| {
        respond(r);
        true
    })
}

/// [`answer`], where `respond` also says whether to go on: after a `false`, the requests
/// that follow are left unanswered, and the count returned ends with the request answered
/// last (what follows it is kept, as an incomplete request would be, and given again later).
/// A server stops this way while its client does not read (flow control).
#[inline]
pub(crate) fn answer_while(
    data: &[u8],
    scanned: &mut usize,
    mut respond: impl FnMut(&'static [u8]) -> bool,
) -> Option<usize> {
    let mut used = 0;
    while used < data.len() {
        let rest = &data[used..];
        let Some(end) = find_head_end(rest, *scanned) else {
            if rest.len() >= MAX_HEAD {
                respond(BAD_REQUEST);
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
            respond(BAD_REQUEST);
            return None;
        };
        let go_on = respond(RESPONSES[req.is_head as usize][req.mode as usize]);
        if let ConnMode::Close = req.mode {
            return None;
        }
        used += end;
        if !go_on {
            break;
        }
    }
    Some(used)
}

/// The length of the header block at the start of `buf` (through its `\r\n\r\n`), if it is
/// complete; the search starts at `from` (bytes before it hold no end).
#[inline]
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
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
pub(crate) fn parse_head(head: &[u8]) -> Option<Request> {
    // Without the final "\n\r\n", every line ends in '\r'; a line that does not had a bare LF.
    let mut lines = head[..head.len().checked_sub(3)?]
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

    /// Runs `answer` over `data` and collects the responses.
    fn answers(data: &[u8], scanned: &mut usize) -> (Option<usize>, Vec<&'static [u8]>) {
        let mut out = Vec::new();
        let used = answer(data, scanned, |r| out.push(r));
        (used, out)
    }

    #[test]
    fn answers_pipelined_and_partial_requests() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let head = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
        let data = [&get[..], head, b"GET / HT"].concat();
        let mut scanned = 0;
        let (used, out) = answers(&data, &mut scanned);
        assert_eq!(used, Some(get.len() + head.len()));
        assert_eq!(out, [RESPONSES[0][0], RESPONSES[1][0]]);
        assert_eq!(scanned, b"GET / HT".len());
        // The rest of the cut request, with the start kept by the caller.
        let data = [&b"GET / HT"[..], b"TP/1.1\r\nHost: x\r\n\r\n"].concat();
        let (used, out) = answers(&data, &mut scanned);
        assert_eq!((used, out), (Some(data.len()), vec![RESPONSES[0][0]]));
        assert_eq!(scanned, 0);
    }

    #[test]
    fn answer_while_stops_after_a_false_and_keeps_the_rest() {
        let get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let data = get.repeat(3);
        let mut scanned = 0;
        let mut n = 0;
        let used = answer_while(data.as_bytes(), &mut scanned, |_| {
            n += 1;
            n < 2
        });
        assert_eq!((used, n, scanned), (Some(2 * get.len()), 2, 0));
        // The rest is answered when given again.
        let rest = &data.as_bytes()[2 * get.len()..];
        let used = answer_while(rest, &mut scanned, |_| true);
        assert_eq!(used, Some(get.len()));
        // A closing request closes even when told to stop.
        let close = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        assert_eq!(answer_while(close.as_bytes(), &mut 0, |_| false), None);
    }

    #[test]
    fn answers_then_closes() {
        let mut scanned = 0;
        let close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n";
        let (used, out) = answers(close, &mut scanned);
        assert_eq!((used, out), (None, vec![RESPONSES[0][2]]));
        let mut scanned = 0;
        let (used, out) = answers(b"BAD\r\n\r\n", &mut scanned);
        assert_eq!((used, out), (None, vec![BAD_REQUEST]));
        let mut scanned = 0;
        let (used, out) = answers(&[b'a'; MAX_HEAD], &mut scanned);
        assert_eq!((used, out), (None, vec![BAD_REQUEST]));
    }
}
