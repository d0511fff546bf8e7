//! HTTP/1.1 keep-alive "Hello, World!": the servers, the suite's own load, and `wrk`.
//!
//! Every server answers with `examples/http_hello/http.rs`, included below as `parser`: the
//! example's own parser and static responses, so the bench and the example run the same code.
//! - `http-floor`: one level-triggered epoll loop with `libc`, as echo's floor: `recv` into
//!   one buffer, parse there, `send` the responses of one read in one write, and buffer only
//!   what `send` leaves (or the start of a request a read cut short).
//! - `http-tulip`: the example's `Protocol` (`examples/http_hello/protocol.rs`, included too).
//! - `http-tokio`: tokio's current-thread runtime, one task per connection reading into its
//!   own buffer, parsing there, and writing the responses of one read with `write_all`.
//!
//! Two loads: `http`, the suite's client (`hello_load`: busy-polling, as `load::ping_pong`,
//! 50 keep-alive connections with one request in flight each), and `http-wrk`,
//! `wrk -t1 -c50 --latency` on the load CPU, when `wrk` is on `PATH`; its figures are wrk's
//! own (requests, duration, p99), and the server's CPU is this process's over wrk's run.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::echo::{CONN_BUF, serve_tulip};
use crate::load::{self, Limit, LoadResult, Window};
use crate::servers::{Ready, Server};
use crate::suite::{self, Unit, Workload};
use crate::sys::{self, Epoll, StopFd};

// Cargo builds benches with `cfg(test)`, and this one without a test harness: the parser's
// tests are left out, their helpers are not.
/// The example's parser (`http.rs`) and `Protocol` (`protocol.rs`), as files of its own.
#[path = "../../examples/http_hello"]
mod hello {
    #[cfg_attr(test, allow(dead_code))]
    pub(super) mod http;
    pub(super) mod protocol;
}
use hello::http as parser;
use hello::protocol::HttpHello;

/// Connections of both loads.
const CONNS: usize = 50;
/// What the suite's client sends, over and over, on each connection.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

pub static SERVERS: &[Server] = &[
    Server {
        id: "http-floor",
        name: "floor: epoll responder (libc)",
        serve: serve_floor,
    },
    Server {
        id: "http-tulip",
        name: "tulip `Protocol` (examples/http_hello)",
        serve: |addr, ready| serve_tulip(addr, ready, HttpHello::new),
    },
    Server {
        id: "http-tokio",
        name: "tokio current-thread, `read` + `write_all`",
        serve: serve_tokio,
    },
];

pub fn workloads(_quick: bool) -> Vec<Workload> {
    let ids: Vec<&str> = SERVERS.iter().map(|s| s.id).collect();
    let mut out = vec![Workload {
        id: "http".into(),
        label: format!("HTTP/1.1 hello, {CONNS} conns (suite client)"),
        servers: suite::servers(&ids),
        floor: "http-floor",
        tokio: "http-tokio",
        unit: Unit::Request,
        drive: Box::new(|addr, limit| hello_load(addr, CONNS, limit)),
    }];
    // Not on every machine (CI): then the workload is simply not there.
    if let Some(wrk) = which("wrk") {
        out.push(Workload {
            id: "http-wrk".into(),
            label: format!("HTTP/1.1 hello, {CONNS} conns (wrk -t1)"),
            servers: suite::servers(&ids),
            floor: "http-floor",
            tokio: "http-tokio",
            unit: Unit::Request,
            drive: Box::new(move |addr, limit| wrk_load(&wrk, addr, limit)),
        });
    }
    out
}

// ---- the floor ---------------------------------------------------------------------------------

/// The floor's one receive buffer.
const FLOOR_BUF: usize = 64 * 1024;

/// One floor connection.
struct FloorConn {
    stream: TcpStream,
    /// The start of a request that a read cut short (empty on the fast path).
    partial: Vec<u8>,
    /// How much of it was already searched for the end of its header block.
    scanned: usize,
    /// What `send` left.
    pending: Vec<u8>,
    /// A response closes the connection once `pending` is sent.
    closing: bool,
}

/// The floor: one level-triggered epoll loop; `recv` into one buffer, answer the requests in
/// it, `send` their responses in one write, and buffer only what `send` leaves (then stop
/// reading that connection and wait for `EPOLLOUT` until the rest is sent).
fn serve_floor(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let ep = Epoll::new()?;
    let stop = StopFd::new()?;
    const LISTENER: u64 = u64::MAX;
    const STOP: u64 = u64::MAX - 1;
    ep.add(listener.as_raw_fd(), LISTENER)?;
    ep.add(stop.raw(), STOP)?;
    ready(listener.local_addr()?, stop.signaller()?);
    let mut conns: Vec<Option<FloorConn>> = Vec::new();
    let mut buf = vec![0u8; FLOOR_BUF];
    let mut out = Vec::with_capacity(4096);
    let mut events = sys::no_events::<64>();
    loop {
        let n = ep.wait(&mut events, -1)?;
        for ev in &events[..n] {
            match ev.u64 {
                STOP => return Ok(()),
                LISTENER => loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true)?;
                            s.set_nodelay(true)?;
                            let fd = s.as_raw_fd() as usize;
                            ep.add(fd as RawFd, fd as u64)?;
                            if conns.len() <= fd {
                                conns.resize_with(fd + 1, || None);
                            }
                            conns[fd] = Some(FloorConn {
                                stream: s,
                                partial: Vec::new(),
                                scanned: 0,
                                pending: Vec::new(),
                                closing: false,
                            });
                        }
                        Err(e) if sys::would_block(&e) => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                        Err(e) => return Err(e),
                    }
                },
                token => {
                    let fd = token as usize;
                    let Some(c) = conns.get_mut(fd).and_then(Option::as_mut) else {
                        continue;
                    };
                    let keep = if c.pending.is_empty() {
                        floor_read(c, &ep, &mut buf, &mut out)
                    } else {
                        floor_flush(c, &ep)
                    };
                    if !keep {
                        // Closing the last descriptor removes it from the epoll set.
                        conns[fd] = None;
                    }
                }
            }
        }
    }
}

/// Reads, answers, sends; `false` when the connection is done.
fn floor_read(c: &mut FloorConn, ep: &Epoll, buf: &mut [u8], out: &mut Vec<u8>) -> bool {
    let k = match c.stream.read(buf) {
        Ok(0) => return false,
        Ok(k) => k,
        Err(e) => return sys::would_block(&e),
    };
    out.clear();
    let respond = |r: &'static [u8]| out.extend_from_slice(r);
    let open = if c.partial.is_empty() {
        // Fast path: parse right in the read buffer.
        parser::answer(&buf[..k], &mut c.scanned, respond)
            .map(|used| c.partial.extend_from_slice(&buf[used..k]))
    } else {
        c.partial.extend_from_slice(&buf[..k]);
        parser::answer(&c.partial, &mut c.scanned, respond).map(|used| {
            c.partial.drain(..used);
        })
    };
    c.closing = open.is_none();
    if out.is_empty() {
        return !c.closing;
    }
    let sent = match c.stream.write(out) {
        Ok(s) => s,
        Err(e) if sys::would_block(&e) => 0,
        Err(_) => return false,
    };
    if sent < out.len() {
        c.pending.extend_from_slice(&out[sent..]);
        let fd = c.stream.as_raw_fd();
        return ep.modify(fd, fd as u64, false, true).is_ok();
    }
    !c.closing
}

/// Sends what is pending; reads again once it is all sent (or closes, if a response said
/// so). `false` when the connection is done.
fn floor_flush(c: &mut FloorConn, ep: &Epoll) -> bool {
    match c.stream.write(&c.pending) {
        Ok(s) => {
            c.pending.drain(..s);
        }
        Err(e) => return sys::would_block(&e),
    }
    if c.pending.is_empty() {
        if c.closing {
            return false;
        }
        let fd = c.stream.as_raw_fd();
        return ep.modify(fd, fd as u64, true, false).is_ok();
    }
    true
}

// ---- tulip -------------------------------------------------------------------------------------

// ---- tokio -------------------------------------------------------------------------------------

/// One connection: read into the connection's buffer after what is left of a cut request,
/// answer, `write_all` the responses of that read.
async fn tokio_conn(mut s: tokio::net::TcpStream) {
    let mut buf = vec![0u8; CONN_BUF];
    let mut out = Vec::with_capacity(1024);
    let (mut kept, mut scanned) = (0usize, 0usize);
    loop {
        // `answer` refuses a header block of MAX_HEAD (< CONN_BUF), so `kept` never fills
        // the buffer; the check only keeps a change of constants from looping on 0-byte reads.
        if kept == buf.len() {
            return;
        }
        let n = match s.read(&mut buf[kept..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let end = kept + n;
        out.clear();
        let used = parser::answer(&buf[..end], &mut scanned, |r| out.extend_from_slice(r));
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
        let Some(used) = used else {
            // A response closes the connection: dropping the stream does.
            return;
        };
        buf.copy_within(used..end, 0);
        kept = end - used;
    }
}

fn serve_tokio(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let r = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        ready(
            listener.local_addr()?,
            Box::new(move || {
                let _ = tx.send(());
            }),
        );
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                s.set_nodelay(true).ok();
                tokio::spawn(tokio_conn(s));
            }
        });
        let _ = rx.await;
        io::Result::Ok(())
    });
    drop(rt);
    r
}

// ---- the suite's client ------------------------------------------------------------------------

/// The most a response may take in the client's buffer.
const RESPONSE_BUF: usize = 4096;

/// The length of the complete response at the start of `buf`, or `None` while it is
/// incomplete; an error if it is not `200 OK` with a `Content-Length`.
fn response_len(buf: &[u8]) -> io::Result<Option<usize>> {
    let bad = |what: &str| {
        let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{what} in an HTTP response starting {:?}",
                String::from_utf8_lossy(line).trim_end()
            ),
        )
    };
    let Some(head) = parser::find_head_end(buf, 0) else {
        return if buf.len() >= RESPONSE_BUF {
            Err(bad("no end of the header block"))
        } else {
            Ok(None)
        };
    };
    if !buf.starts_with(b"HTTP/1.1 200 ") {
        return Err(bad("not `200`"));
    }
    let length = buf[..head]
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            l[..colon]
                .eq_ignore_ascii_case(b"content-length")
                .then(|| &l[colon + 1..])
        })
        .next()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
        .ok_or_else(|| bad("no valid Content-Length"))?;
    let total = head
        .checked_add(length)
        .filter(|&t| t <= RESPONSE_BUF)
        .ok_or_else(|| bad("a body too large"))?;
    Ok((buf.len() >= total).then_some(total))
}

/// The suite's HTTP load, as `load::ping_pong`: each of `conns` keep-alive connections sends
/// `REQUEST`, reads the whole response (checking its status line and `Content-Length`), and
/// sends the next; busy-polling.
pub fn hello_load(addr: SocketAddr, conns: usize, limit: Limit) -> io::Result<LoadResult> {
    let ep = Epoll::new()?;
    let streams = load::connect_all(&ep, addr, conns)?;
    let mut bufs = vec![[0u8; RESPONSE_BUF]; conns];
    let mut got = vec![0usize; conns];
    let mut events = sys::no_events::<64>();
    let mut w = Window::new(limit);
    let max = w.max_ops();
    let (mut issued, mut done) = (0u64, 0u64);
    let mut sent_at = vec![Instant::now(); conns];
    for (i, s) in streams.iter().enumerate() {
        if issued < max {
            load::write_all_spin(s, REQUEST)?;
            sent_at[i] = Instant::now();
            issued += 1;
        }
    }
    while !w.tick(done)? {
        let n = ep.wait(&mut events, 0)?;
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let mut s = &streams[i];
            let buf = &mut bufs[i];
            match s.read(&mut buf[got[i]..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed a connection",
                    ));
                }
                Ok(k) => got[i] += k,
                Err(e) if sys::would_block(&e) => continue,
                Err(e) => return Err(e),
            }
            let Some(len) = response_len(&buf[..got[i]])? else {
                continue;
            };
            if len != got[i] {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more than one response to one request",
                ));
            }
            got[i] = 0;
            done += 1;
            w.progress(Some(sent_at[i]));
            if issued < max {
                load::write_all_spin(s, REQUEST)?;
                sent_at[i] = Instant::now();
                issued += 1;
            }
        }
    }
    Ok(w.finish(done))
}

// ---- wrk ---------------------------------------------------------------------------------------

/// The executable `name` in a directory of `PATH`, if there is one.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `wrk -t1 -c50 -dSECSs --latency` against `addr` on the load CPU, SECS the window
/// rounded up to whole seconds (wrk takes no fractions; no warm-up); the server's CPU is this
/// process's (every thread but this one, which only waits) over wrk's run.
pub fn wrk_load(wrk: &Path, addr: SocketAddr, limit: Limit) -> io::Result<LoadResult> {
    let Limit::Time { window, .. } = limit else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "wrk runs for a time, not a number of requests",
        ));
    };
    let secs = (window.as_secs_f64().ceil() as u64).max(1);
    // The child inherits this thread's pinning to the load CPU anyway; taskset says so.
    let mut cmd = match which("taskset") {
        Some(taskset) => {
            let mut c = Command::new(taskset);
            c.args(["-c", &sys::LOAD_CPU.to_string()]).arg(wrk);
            c
        }
        None => Command::new(wrk),
    };
    cmd.args([
        "-t1",
        &format!("-c{CONNS}"),
        &format!("-d{secs}s"),
        "--latency",
    ])
    .arg(format!("http://{addr}/"))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let wait0 = sys::others_runq_wait();
    let cpu0 = sys::others_cpu();
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "wrk did not finish in time",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let server_cpu = sys::others_cpu().saturating_sub(cpu0);
    let server_wait = sys::others_runq_wait().saturating_sub(wait0);
    // wrk prints about 1 KiB, at the end: the pipes did not fill before it exited.
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "wrk failed ({}): {}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let r = parse_wrk(&stdout)
        .map_err(|e| io::Error::new(e.kind(), format!("{e}; wrk printed:\n{stdout}")))?;
    Ok(LoadResult {
        ops: r.requests,
        elapsed: r.elapsed,
        server_cpu,
        server_wait,
        // One latency, wrk's p99: the suite's 99th percentile of one value is that value.
        latencies: vec![r.p99_ns.min(u32::MAX as u64) as u32],
    })
}

/// What is read from wrk's report.
#[derive(Debug, PartialEq)]
struct WrkReport {
    requests: u64,
    /// `requests ÷ Requests/sec`: wrk's run time, more precise than the `in 1.00s` it prints.
    elapsed: Duration,
    p99_ns: u64,
}

/// A wrk time (`303.00us`, `1.02ms`, `2.00s`, `1.00m`) in nanoseconds.
fn parse_wrk_time(s: &str) -> Option<u64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let ns_per = match unit {
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * ns_per).round() as u64)
}

/// Parses the report of `wrk --latency`; an error (never a panic) on anything unexpected.
fn parse_wrk(out: &str) -> io::Result<WrkReport> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let (mut requests, mut duration, mut rate, mut p99) = (None, None, None, None);
    for line in out.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            requests = Some(
                n.trim()
                    .parse::<u64>()
                    .map_err(|_| bad("bad request count"))?,
            );
            let t = rest.split(',').next().unwrap_or_default().trim();
            duration = Some(parse_wrk_time(t).ok_or_else(|| bad("bad run time"))?);
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            rate = Some(
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| bad("bad Requests/sec"))?,
            );
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = Some(parse_wrk_time(v.trim()).ok_or_else(|| bad("bad 99% latency"))?);
        } else if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            return Err(bad(&format!("wrk saw errors: {line}")));
        }
    }
    let requests = requests.ok_or_else(|| bad("no `N requests in` line"))?;
    let duration = duration.ok_or_else(|| bad("no run time"))?;
    let rate = rate.ok_or_else(|| bad("no `Requests/sec:` line"))?;
    let p99_ns = p99.ok_or_else(|| bad("no `99%` line (run with --latency)"))?;
    if requests == 0 || !(rate.is_finite() && rate > 0.0) {
        return Err(bad("wrk completed no requests"));
    }
    let secs = requests as f64 / rate;
    // The printed run time has three digits: they agree to within a rounding.
    if (secs * 1e9 - duration as f64).abs() > 0.02 * duration as f64 + 1e7 {
        return Err(bad(&format!(
            "requests ÷ Requests/sec = {secs:.3} s, but wrk says it ran {:.3} s",
            duration as f64 / 1e9
        )));
    }
    Ok(WrkReport {
        requests,
        elapsed: Duration::from_secs_f64(secs),
        p99_ns,
    })
}
