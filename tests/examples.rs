//! Runs the examples as a user would, through `cargo run --example`, and checks what they
//! print and how they behave on the network.
//!
//! Examples get no `CARGO_BIN_EXE_*` variables, so each test asks the cargo that runs the
//! tests (`env!("CARGO")`) to build and run them. Cargo does not hold the build-directory
//! lock while tests run, and the nested cargo inherits `CARGO_TARGET_DIR`, so it reuses what
//! is already built.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// How long one test may take, building the examples included, before the watchdog aborts.
const WATCHDOG: Duration = Duration::from_secs(120);
/// Read timeout for the test's own sockets.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Aborts the test process if it is still alive after [`WATCHDOG`]; dropping it (at the end
/// of the test, passed or failed) disarms it.
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

fn watchdog(test: &'static str) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
            eprintln!("test `{test}` still running after {WATCHDOG:?}: aborting");
            std::process::abort();
        }
    });
    Watchdog { _disarm: tx }
}

/// `cargo run --quiet --example NAME -- ARGS…` in this package, in the profile the tests
/// were built with. It runs in the package's directory; `--manifest-path` lets a caller
/// choose another one with `Command::current_dir` (cargo runs the example where it is run).
fn example(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    if cfg!(feature = "poller") {
        // The examples run on the selector backend the tests were built with.
        cmd.args(["--features", "poller"]);
    }
    if cfg!(feature = "hyper") {
        // Built with hyper: the hyper examples (`required-features = ["hyper"]`) can run.
        cmd.args(["--features", "hyper"]);
    }
    cmd.args(["--example", name, "--"]).args(args);
    cmd
}

fn run_example(name: &str, args: &[&str]) -> Output {
    example(name, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run `cargo run --example {name}`: {err}"))
}

/// A running server example; killed and reaped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts the example `name` on a free port and waits for its `listening on` line.
    fn start(name: &str) -> Server {
        Server::start_in(name, Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    /// [`Server::start`], with `dir` as the server's current directory.
    fn start_in(name: &str, dir: &Path) -> Server {
        let mut child = example(name, &["127.0.0.1:0"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start `cargo run --example {name}`: {err}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("cannot read the server's stdout");
        let mut server = Server {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            _stdout: stdout,
        };
        let port: u16 = line
            .trim_end()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                let status = server.child.try_wait();
                panic!("unexpected first line from {name}: {line:?} (status: {status:?})")
            });
        assert_ne!(port, 0, "the server must print the port it really bound");
        server.addr.set_port(port);
        server
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("cannot connect to the server");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `data` from another thread (so that a large payload cannot deadlock against the
/// echo filling our receive buffer) while reading the echo here.
fn echo(stream: &mut TcpStream, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut writer = stream.try_clone()?;
    let payload = data.to_vec();
    let sender = thread::spawn(move || writer.write_all(&payload));
    let mut back = vec![0; data.len()];
    let read = stream.read_exact(&mut back);
    sender.join().expect("the writer thread panicked")?;
    read?;
    Ok(back)
}

#[test]
fn echo_server_and_client() {
    let _watchdog = watchdog("echo_server_and_client");
    let server = Server::start("sock_echo_server");

    // Two connections at once, messages alternating between them.
    let mut a = server.connect();
    let mut b = server.connect();
    for i in 0..5 {
        for (name, conn) in [("a", &mut a), ("b", &mut b)] {
            let msg = format!("message {i} on connection {name}");
            let back = echo(conn, msg.as_bytes()).expect("echo failed");
            assert_eq!(String::from_utf8_lossy(&back), msg);
        }
    }

    // 1 MiB in one go: the server has to send while we are still sending.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let back = echo(&mut a, &big).expect("1 MiB echo failed");
    assert!(back == big, "the 1 MiB echo differs");

    // A connection that the peer resets must not stop the server.
    let c = server.connect();
    tulip::socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    (&c).write_all(b"going away").unwrap();
    drop(c);
    let back = echo(&mut b, b"still there?").expect("echo after a reset failed");
    assert_eq!(back, b"still there?");
    drop((a, b));

    let addr = server.addr.to_string();
    let out = run_example("sock_echo_client", &[&addr, "hello from the examples test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sock_echo_client failed: {out:?}");
    assert!(
        stdout.contains("hello from the examples test"),
        "unexpected output: {stdout:?}"
    );

    let out = run_example("sock_echo_client", &[&addr]);
    assert!(out.status.success(), "sock_echo_client failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, tulip\n");
}

#[test]
fn exit_codes() {
    let _watchdog = watchdog("exit_codes");

    let out = run_example("sock_echo_server", &["not an address"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(!out.stderr.is_empty(), "{out:?}");

    // A port nobody listens on: bind one, note it, close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    for client in [
        "sock_echo_client",
        "tcp_echo_client",
        "stream_echo_client",
        "tls_echo_client",
    ] {
        let out = run_example(client, &[&format!("127.0.0.1:{port}"), "hi"]);
        assert_eq!(out.status.code(), Some(1), "{client}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("refused"),
            "{client}: unexpected stderr: {stderr:?}"
        );
    }

    for name in [
        "tcp_echo_client",
        "http_hello",
        "stream_echo_server",
        "stream_echo_client",
        "mixed",
        "tls_echo_server",
        "tls_echo_client",
        "starttls",
    ] {
        let out = run_example(name, &["not an address"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        assert!(out.stdout.is_empty(), "{name}: {out:?}");
        assert!(!out.stderr.is_empty(), "{name}: {out:?}");
    }
}

#[test]
fn tour() {
    let _watchdog = watchdog("tour");
    let out = run_example("tour", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the tour failed: {out:?}\n--- stdout ---\n{stdout}"
    );

    let position = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("the tour did not print {needle:?}:\n{stdout}"))
    };
    // Callbacks: call_soon in FIFO order, before the timers, which run by deadline.
    let order = [
        "[callback] call_soon #1",
        "[callback] call_soon #2",
        "[callback] call_later(10 ms)",
        "[callback] call_later(20 ms)",
    ]
    .map(position);
    assert!(order.is_sorted(), "callbacks ran out of order:\n{stdout}");

    position("[main] the future resolved: \"the answer is 42\"");
    position("expired");
    position("[callback] running on thread \"main\"");
    position("[main] got 500500 from the worker thread");
    position("[server] accepted 127.0.0.1:");
    for i in 1..=5 {
        position(&format!("[client {i}] echoed 'hello from {i}'"));
    }
    position("[server] task cancelled");

    // The protocol section: the server answers in upper case, the client's future resolves.
    let order = [
        "[protocol client] connection_made, writing \"hello from a protocol\"",
        "[protocol server] data_received(\"hello from a protocol\")",
        "[protocol client] data_received(\"HELLO FROM A PROTOCOL\")",
        "[main] the client protocol's future resolved: \"HELLO FROM A PROTOCOL\"",
        "[protocol server] closed, and its connection is gone",
    ]
    .map(position);
    assert!(
        order.is_sorted(),
        "protocol section out of order:\n{stdout}"
    );

    // The streams section: lines, then EOF, then the server closes.
    let order = [
        "[stream server] listening on 127.0.0.1:",
        "[stream client] readline() = \"hello, Ada!\\n\"",
        "[stream client] readline() = \"hello, Grace!\\n\"",
        "[stream server] readline() = \"\": EOF",
        "[stream client] read_to_eof() = 0 bytes",
        "[stream server] closed, and its connection is gone",
    ]
    .map(position);
    assert!(order.is_sorted(), "streams section out of order:\n{stdout}");
    position("[stream server] readline() = \"Ada\\n\"");
    position("[stream server] readline() = \"Grace\\n\"");
    assert!(
        stdout.ends_with("done: tulip::run closes the loop when main returns\n"),
        "{stdout}"
    );
}

#[test]
fn tcp_echo_server_and_client() {
    let _watchdog = watchdog("tcp_echo_server_and_client");
    let server = Server::start("tcp_echo_server");
    let addr = server.addr.to_string();

    let out = run_example("tcp_echo_client", &[&addr, "hello from the examples test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tcp_echo_client failed: {out:?}");
    assert!(
        stdout.contains("Data received: \"hello from the examples test\""),
        "unexpected output: {stdout:?}"
    );

    let out = run_example("tcp_echo_client", &[&addr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tcp_echo_client failed: {out:?}");
    assert!(
        stdout.contains("Hello World!"),
        "unexpected output: {stdout:?}"
    );

    // A client that sends a lot and does not read at first: the echo backs up into the
    // server's transport, which has to pause reading (and resume later) without losing or
    // reordering a byte. 1 MiB is not enough to get there: Linux absorbs it in the socket
    // buffers (the server's send buffer grows up to `tcp_wmem`'s 4 MiB), so send 8 MiB, to
    // a small receive buffer.
    let sock = tulip::socket2::Socket::new(
        tulip::socket2::Domain::IPV4,
        tulip::socket2::Type::STREAM,
        None,
    )
    .unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    sock.connect(&server.addr.into()).expect("cannot connect");
    let mut conn = TcpStream::from(sock);
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut writer = conn.try_clone().unwrap();
    let payload = big.clone();
    let sender = thread::spawn(move || writer.write_all(&payload));
    thread::sleep(Duration::from_millis(300));
    let mut back = vec![0; big.len()];
    conn.read_exact(&mut back)
        .expect("reading the 8 MiB echo failed");
    sender
        .join()
        .expect("the writer thread panicked")
        .expect("sending 8 MiB failed");
    assert!(back == big, "the 8 MiB echo differs");
}

/// One UDP echo through the server, from a std socket (sent again if it is lost).
fn udp_echo(server: SocketAddr, data: &[u8]) -> Vec<u8> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0; 65536];
    for _ in 0..20 {
        sock.send_to(data, server).unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            assert_eq!(from, server);
            return buf[..n].to_vec();
        }
    }
    panic!("no UDP echo from {server}");
}

#[test]
fn udp_echo_server_and_client() {
    let _watchdog = watchdog("udp_echo_server_and_client");
    let server = Server::start("udp_echo_server");
    let addr = server.addr.to_string();

    let out = run_example("udp_echo_client", &[&addr, "hello over UDP"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "udp_echo_client failed: {out:?}");
    assert!(
        stdout.contains("Received: \"hello over UDP\""),
        "unexpected output: {stdout:?}"
    );
    let out = run_example("udp_echo_client", &[&addr]);
    assert!(out.status.success(), "udp_echo_client failed: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello World!"));
    // An empty message is an empty datagram, and its echo is one too.
    let out = run_example("udp_echo_client", &[&addr, ""]);
    assert!(out.status.success(), "udp_echo_client failed: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Received: \"\""));

    // Every datagram comes back whole, the empty one and a large one too.
    assert_eq!(udp_echo(server.addr, b""), b"");
    let big: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(udp_echo(server.addr, &big), big);

    // No server there: the client gives up with status 1, not a hang or a panic.
    let gone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let out = example("udp_echo_client", &[&gone_addr, "x"])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run udp_echo_client");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run_example("udp_echo_client", &["no-port"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn existing_socket() {
    let _watchdog = watchdog("existing_socket");
    let out = run_example("existing_socket", &[]);
    assert!(out.status.success(), "existing_socket failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Received: abc\nThe other end reads EOF: the transport closed its socket\n"
    );
}

/// A request `http_hello` answers with `200 OK`.
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// One HTTP response, as the tests read it.
#[derive(Debug)]
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts `200 OK` with the body `Hello, World!` (or none, for `HEAD`).
    fn assert_hello(&self, head: bool) {
        assert_eq!(self.status, "HTTP/1.1 200 OK", "{self:?}");
        assert_eq!(self.header("Content-Length"), Some("13"), "{self:?}");
        let body: &[u8] = if head { b"" } else { b"Hello, World!" };
        assert_eq!(self.body, body, "{self:?}");
    }
}

/// Reads one response; after a `HEAD` request (`head`) there is no body, whatever
/// `Content-Length` says.
fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line.trim_end_matches("\r\n").to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| io::Error::other(format!("bad header line {line:?}")))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if !head {
        let len: usize = resp
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no Content-Length: {resp:?}")))?;
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)?;
    }
    Ok(resp)
}

/// Asserts that the server closed the connection: EOF and nothing more.
fn assert_eof(r: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("expected EOF from the server");
    assert!(
        rest.is_empty(),
        "expected EOF, got {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn http_hello() {
    let _watchdog = watchdog("http_hello");
    let server = Server::start("http_hello");
    let connect = || {
        let conn = server.connect();
        conn.set_nodelay(true).unwrap();
        BufReader::new(conn)
    };
    let send = |r: &mut BufReader<TcpStream>, data: &[u8]| r.get_mut().write_all(data).unwrap();

    // Keep-alive: two requests, one after the other, on one connection.
    let mut c = connect();
    for _ in 0..2 {
        send(&mut c, GET);
        let resp = read_response(&mut c, false).expect("keep-alive request failed");
        resp.assert_hello(false);
        assert_eq!(resp.header("Connection"), None, "{resp:?}");
    }

    // HEAD: the headers, and no body: the next response starts right after them.
    send(&mut c, b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    read_response(&mut c, true).unwrap().assert_hello(true);
    send(&mut c, GET);
    read_response(&mut c, false).unwrap().assert_hello(false);

    // Pipelining: three requests in one write, three responses in order (the HEAD in the
    // middle has no body, so a response out of order would not parse).
    let pipelined = [GET, b"HEAD /x HTTP/1.1\r\nHost: test\r\n\r\n", GET].concat();
    send(&mut c, &pipelined);
    for head in [false, true, false] {
        let resp = read_response(&mut c, head).expect("pipelined request failed");
        resp.assert_hello(head);
    }

    // A request split across three writes (one cut inside the final CRLFCRLF), then one
    // whose first part rides along with the end of the previous one.
    let splits: [&[&[u8]]; 2] = [
        &[b"GET / HT", b"TP/1.1\r\nHost: test\r\n\r", b"\n"],
        &[
            b"GET /a HTTP/1.1\r\nHost: test\r\n\r\nGET /b HT",
            b"TP/1.1\r\nHo",
            b"st: test\r\n\r\n",
        ],
    ];
    for parts in splits {
        for part in parts {
            send(&mut c, part);
            thread::sleep(Duration::from_millis(20));
        }
        let requests = parts
            .concat()
            .windows(4)
            .filter(|w| w == b"\r\n\r\n")
            .count();
        for _ in 0..requests {
            let resp = read_response(&mut c, false).expect("split request failed");
            resp.assert_hello(false);
        }
    }

    // `Connection: close`: the response says so, and the server closes.
    send(
        &mut c,
        b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    let resp = read_response(&mut c, false).unwrap();
    resp.assert_hello(false);
    assert_eq!(resp.header("Connection"), Some("close"), "{resp:?}");
    assert_eof(&mut c);

    // HTTP/1.0 closes unless asked to keep the connection alive.
    let mut c = connect();
    send(&mut c, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let resp = read_response(&mut c, false).unwrap();
    resp.assert_hello(false);
    assert_eq!(resp.header("Connection"), Some("keep-alive"), "{resp:?}");
    send(&mut c, b"GET / HTTP/1.0\r\n\r\n");
    let resp = read_response(&mut c, false).unwrap();
    resp.assert_hello(false);
    assert_eq!(resp.header("Connection"), Some("close"), "{resp:?}");
    assert_eof(&mut c);

    // Malformed requests: 400, then the connection is closed.
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost test\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        big_header.as_bytes(),
        &big_header.as_bytes()[..8500], // over 8 KiB and not even complete
    ] {
        let mut c = connect();
        send(&mut c, bad);
        let resp = read_response(&mut c, false).expect("no response to a malformed request");
        assert_eq!(resp.status, "HTTP/1.1 400 Bad Request", "{resp:?}");
        assert_eq!(resp.header("Connection"), Some("close"), "{resp:?}");
        assert_eof(&mut c);
    }

    // The server is still serving.
    let mut c = connect();
    send(&mut c, GET);
    read_response(&mut c, false).unwrap().assert_hello(false);
}

/// A client that pipelines requests and reads the responses only now and then makes
/// `http_hello` stop answering at its high-water mark, even in the middle of a read — not
/// after answering a whole 256 KiB read of requests, which queued ~1 MiB of responses; and
/// every request is answered in the end. The server runs in debug mode, where each
/// `pause_writing` prints how much it has queued.
#[test]
fn http_hello_obeys_flow_control() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let _watchdog = watchdog("http_hello_obeys_flow_control");
    let mut child = example("http_hello", &["127.0.0.1:0"])
        .env("TULIP_DEBUG", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start http_hello");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let stderr = child.stderr.take().expect("piped stderr");
    let err_lines = thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the listening line");
    let port: u16 = line
        .trim_end()
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let server = Server {
        child,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        _stdout: stdout,
    };

    let sock = tulip::socket2::Socket::new(
        tulip::socket2::Domain::IPV4,
        tulip::socket2::Type::STREAM,
        None,
    )
    .unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    sock.set_send_buffer_size(16 * 1024).unwrap();
    sock.connect(&server.addr.into()).expect("cannot connect");
    let mut conn = TcpStream::from(sock);
    conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();

    // Pipeline 2,000 requests per write until told to stop.
    const PER_WRITE: usize = 2000;
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (mut w, sent, stop) = (conn.try_clone().unwrap(), sent.clone(), stop.clone());
        thread::spawn(move || -> io::Result<usize> {
            let chunk = GET.repeat(PER_WRITE);
            while !stop.load(Ordering::SeqCst) {
                w.write_all(&chunk)?;
                sent.fetch_add(PER_WRITE, Ordering::SeqCst);
            }
            Ok(sent.load(Ordering::SeqCst))
        })
    };
    let stalled = || {
        // The server stopped reading: no progress for 300 ms.
        let mut last = usize::MAX;
        loop {
            thread::sleep(Duration::from_millis(300));
            let now = sent.load(Ordering::SeqCst);
            if now == last {
                return;
            }
            last = now;
        }
    };

    let response: &[u8] = b"HTTP/1.1 200 OK\r\nServer: tulip\r\nContent-Type: text/plain\r\n\
        Content-Length: 13\r\n\r\nHello, World!";
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let check = |n: usize, buf: &[u8], got: &mut usize| {
        assert_ne!(n, 0, "EOF after {got} bytes");
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                response[(*got + i) % response.len()],
                "at byte {}",
                *got + i
            );
        }
        *got += n;
    };
    // Stall, read 1 MiB of responses (the server resumes, reads a full buffer of requests),
    // stall again: three times.
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stalled();
    for _ in 0..3 {
        let target = got + (1 << 20);
        while got < target {
            let n = conn.read(&mut buf).expect("reading responses");
            check(n, &buf, &mut got);
        }
        stalled();
    }
    stop.store(true, Ordering::SeqCst);

    // Read the rest: every request is answered.
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut sender = Some(sender);
    let mut total = None;
    let until = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        if sender.as_ref().is_some_and(|s| s.is_finished()) {
            let s = sender.take().expect("checked");
            total = Some(s.join().unwrap().expect("sending failed"));
        }
        if total.is_some_and(|t| got >= t * response.len()) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "{got} bytes of responses"
        );
        match conn.read(&mut buf) {
            Ok(n) => check(n, &buf, &mut got),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the responses: {e}"),
        }
    }
    let total = total.expect("the sender finished");
    assert_eq!(got, total * response.len(), "{total} requests");
    drop(conn);
    drop(server); // kills it: its stderr ends
    let queued: Vec<usize> = err_lines
        .join()
        .unwrap()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("http_hello: pause_writing with ")?
                .strip_suffix(" bytes queued")?
                .parse()
                .ok()
        })
        .collect();
    // (Before the fix: 443,036 and 689,578 bytes in one run.)
    assert!(!queued.is_empty(), "pause_writing never came");
    let most = queued.iter().copied().max().unwrap_or(0);
    // The high-water mark (64 KiB) and the one response that crossed it.
    assert!(
        most <= 64 * 1024 + response.len(),
        "http_hello queued up to {most} bytes before pausing: {queued:?}"
    );
}

/// Reads one line (`\n` included); an error at EOF.
fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let n = r.read_line(&mut line).expect("cannot read a line");
    assert_ne!(n, 0, "unexpected EOF");
    line
}

/// Reads everything until the server's EOF.
fn read_to_eof(conn: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    conn.read_to_end(&mut all)
        .expect("expected EOF from the server");
    all
}

#[test]
fn stream_echo_server_and_client() {
    let _watchdog = watchdog("stream_echo_server_and_client");
    let server = Server::start("stream_echo_server");
    let addr = server.addr.to_string();

    let out = run_example(
        "stream_echo_client",
        &[&addr, "hello from the examples test"],
    );
    assert!(out.status.success(), "stream_echo_client failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the examples test\n"
    );
    let out = run_example("stream_echo_client", &[&addr]);
    assert!(out.status.success(), "stream_echo_client failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, tulip\n");

    // Several lines in one write, a line split across writes, a 60 KiB line (under the
    // 64 KiB limit), and a last line without `\n`, echoed at EOF.
    let mut conn = server.connect();
    conn.write_all(b"one\ntwo\nthr").unwrap();
    thread::sleep(Duration::from_millis(20));
    conn.write_all(b"ee\n").unwrap();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    for want in ["one\n", "two\n", "three\n"] {
        assert_eq!(read_line(&mut r), want);
    }
    let long = format!("{}\n", "x".repeat(60 * 1024));
    let back = echo(&mut conn, long.as_bytes()).expect("60 KiB line echo failed");
    assert!(
        back == long.as_bytes(),
        "the 60 KiB line came back different"
    );
    conn.write_all(b"no newline").unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut conn), b"no newline");
}

#[test]
fn stream_echo_server_line_too_long() {
    let _watchdog = watchdog("stream_echo_server_line_too_long");
    let server = Server::start("stream_echo_server");

    let mut a = server.connect();
    let back = echo(&mut a, b"before\n").expect("echo failed");
    assert_eq!(back, b"before\n");
    // 100 KiB without `\n`, then `\n`, from another thread: the error line, then EOF.
    let mut writer = a.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&vec![b'a'; 100 * 1024])?;
        writer.write_all(b"\n")
    });
    let got = read_to_eof(&mut a);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "error: line too long\n",
        "expected the error line, then EOF"
    );
    sender
        .join()
        .expect("the writer thread panicked")
        .expect("sending the long line failed");
    drop(a);

    // The server goes on serving.
    let mut b = server.connect();
    let back = echo(&mut b, b"still there?\n").expect("echo after the long line failed");
    assert_eq!(back, b"still there?\n");
}

#[test]
fn mixed() {
    let _watchdog = watchdog("mixed");
    let server = Server::start("mixed");

    // JOBS: the greeting and three pipelined requests in one write; the slowest comes first
    // and is still answered first.
    let mut conn = server.connect();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let start = std::time::Instant::now();
    conn.write_all(b"HELLO ann JOBS\nWORK 300 slow\nWORK 10 fast\nWORK 0 now\n")
        .unwrap();
    for want in [
        "WELCOME ann (JOBS)\n",
        "DONE slow 300ms\n",
        "DONE fast 10ms\n",
        "DONE now 0ms\n",
    ] {
        assert_eq!(read_line(&mut r), want);
    }
    assert!(start.elapsed() >= Duration::from_millis(300));

    // Requests in separate writes, the second sent while the first is being worked on (the
    // server does not read it until then), then a bad one, then EOF: every answer, in order,
    // then the server closes.
    conn.write_all(b"WORK 200 first\n").unwrap();
    thread::sleep(Duration::from_millis(30));
    conn.write_all(b"WORK 0 second\r\nbogus\n").unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest,
        "DONE first 200ms\nDONE second 0ms\nERROR bad request\n"
    );

    // STREAM: the greeting, many lines and part of one more in one write, the rest later.
    // The hand-over to the async fn must keep every byte that came after the greeting.
    let mut conn = server.connect();
    let lines: String = (0..500)
        .map(|i| format!("line {i} of the hand-over\n"))
        .collect();
    let first = format!("HELLO bob STREAM\n{lines}sec");
    conn.write_all(first.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(50));
    conn.write_all(b"ond\nthird, no newline").unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let got = read_to_eof(&mut conn);
    let want = format!(
        "WELCOME bob (STREAM)\n{}SECOND\nTHIRD, NO NEWLINE",
        lines.to_ascii_uppercase()
    );
    assert!(
        got == want.as_bytes(),
        "hand-over lost or changed bytes: got {} bytes, want {}\n{:?}",
        got.len(),
        want.len(),
        String::from_utf8_lossy(&got)
    );

    // A greeting split across writes works too.
    let mut conn = server.connect();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    conn.write_all(b"HEL").unwrap();
    thread::sleep(Duration::from_millis(30));
    conn.write_all(b"LO cy STREAM\nabc\n").unwrap();
    assert_eq!(read_line(&mut r), "WELCOME cy (STREAM)\n");
    assert_eq!(read_line(&mut r), "ABC\n");

    // A bad greeting: the error line, then EOF.
    let mut conn = server.connect();
    conn.write_all(b"HI there\nWORK 0 x\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_eof(&mut conn)),
        "ERROR expected HELLO <name> JOBS|STREAM\n"
    );
}

/// A fresh, empty directory under the system's temporary directory; removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("tulip-examples-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The name of the certificate `tls_echo_server` writes in its current directory.
const SELF_SIGNED_PEM: &str = "tulip-selfsigned.pem";

/// Starts `tls_echo_server` in a temporary directory; returns it with the path of the
/// self-signed certificate it wrote there.
fn start_tls_echo_server(test: &str) -> (Server, TempDir, String) {
    let dir = TempDir::new(test);
    let server = Server::start_in("tls_echo_server", dir.path());
    let pem = dir.path().join(SELF_SIGNED_PEM);
    let text = std::fs::read_to_string(&pem)
        .unwrap_or_else(|e| panic!("no {SELF_SIGNED_PEM} in the server's directory: {e}"));
    assert!(
        text.starts_with("-----BEGIN CERTIFICATE-----") && !text.contains("PRIVATE KEY"),
        "{SELF_SIGNED_PEM} should hold the certificate only:\n{text}"
    );
    let pem = pem.to_str().expect("a UTF-8 temporary path").to_string();
    (server, dir, pem)
}

#[test]
fn tls_echo_server_and_client() {
    let _watchdog = watchdog("tls_echo_server_and_client");
    let (server, _dir, pem) = start_tls_echo_server("tls_echo_server_and_client");
    let addr = server.addr.to_string();

    // Verified against the self-signed certificate, as `localhost`.
    let out = run_example(
        "tls_echo_client",
        &[
            &addr,
            "--cafile",
            &pem,
            "--server-hostname",
            "localhost",
            "hello over TLS",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tls_echo_client failed: {out:?}");
    assert!(
        stdout.contains("certificate verified for \"localhost\"")
            && stdout.contains("Data received: \"hello over TLS\""),
        "unexpected output: {stdout:?}"
    );

    // The wrong name: the handshake fails, and the client says why.
    let out = run_example(
        "tls_echo_client",
        &[&addr, "--cafile", &pem, "--server-hostname", "example.org"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("certificate not valid for name \"example.org\""),
        "unexpected stderr: {stderr:?}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Data received"));

    // The system's roots do not know the self-signed certificate.
    let out = run_example(
        "tls_echo_client",
        &[&addr, "--server-hostname", "localhost"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "unexpected stderr: {stderr:?}"
    );

    // The failed handshakes did not hurt the server; the default name is ADDR's host,
    // 127.0.0.1, which the certificate holds as an IP address.
    let out = run_example("tls_echo_client", &[&addr, "--cafile", &pem]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tls_echo_client failed: {out:?}");
    assert!(
        stdout.contains("certificate verified for \"127.0.0.1\"")
            && stdout.contains("Data received: \"Hello World!\""),
        "unexpected output: {stdout:?}"
    );

    // Half a pair of PEM files is a usage error.
    let out = run_example("tls_echo_server", &["127.0.0.1:0", "--cert", &pem]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// A TLS client on the test's own thread(s), with rustls (tulip's re-export): the handshake
/// on a blocking socket, then a connection the reading and the writing thread share.
struct RustlsClient {
    conn: std::sync::Arc<std::sync::Mutex<tulip::tls::rustls::ClientConnection>>,
    sock: TcpStream,
}

impl RustlsClient {
    fn connect(sock: TcpStream, cafile: &str) -> RustlsClient {
        use tulip::tls::rustls::ClientConnection;
        let config = tulip::tls::client_config_from_ca_file(cafile).expect("the CA file");
        let name = "localhost".try_into().unwrap();
        let mut conn = ClientConnection::new(config, name).unwrap();
        let mut s = sock;
        while conn.is_handshaking() {
            conn.complete_io(&mut s).expect("TLS handshake failed");
        }
        RustlsClient {
            conn: std::sync::Arc::new(std::sync::Mutex::new(conn)),
            sock: s,
        }
    }

    /// Encrypts and sends `data`, a piece at a time (the socket write happens outside the
    /// lock, so that the reader can go on).
    fn send(&self, data: &[u8]) -> io::Result<()> {
        let mut sock = self.sock.try_clone()?;
        for piece in data.chunks(64 * 1024) {
            let mut records = Vec::new();
            {
                let mut conn = self.conn.lock().unwrap();
                conn.writer().write_all(piece)?;
                while conn.wants_write() {
                    conn.write_tls(&mut records)?;
                }
            }
            sock.write_all(&records)?;
        }
        Ok(())
    }

    /// Receives and decrypts exactly `n` bytes.
    fn recv_exact(&self, n: usize) -> io::Result<Vec<u8>> {
        let mut sock = self.sock.try_clone()?;
        let mut plain = Vec::with_capacity(n);
        let mut buf = vec![0; 64 * 1024];
        while plain.len() < n {
            let got = sock.read(&mut buf)?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut records = &buf[..got];
            let mut conn = self.conn.lock().unwrap();
            while !records.is_empty() {
                conn.read_tls(&mut records)?;
                conn.process_new_packets().map_err(io::Error::other)?;
                match conn.reader().read_to_end(&mut plain) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    other => {
                        other?;
                    }
                }
            }
        }
        assert_eq!(plain.len(), n, "more came back than was sent");
        Ok(plain)
    }
}

#[test]
fn tls_echo_server_flow_control() {
    let _watchdog = watchdog("tls_echo_server_flow_control");
    let (server, _dir, pem) = start_tls_echo_server("tls_echo_server_flow_control");

    // As in `tcp_echo_server_and_client`: 8 MiB to a small receive buffer, not read at
    // first, so the echo backs up through the TLS layer into the raw transport, whose
    // pause_writing must reach the protocol (which pauses reading) and resume later,
    // without losing or reordering a byte.
    let sock = tulip::socket2::Socket::new(
        tulip::socket2::Domain::IPV4,
        tulip::socket2::Type::STREAM,
        None,
    )
    .unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    sock.connect(&server.addr.into()).expect("cannot connect");
    let conn = TcpStream::from(sock);
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let client = std::sync::Arc::new(RustlsClient::connect(conn, &pem));

    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sender = {
        let client = client.clone();
        let payload = big.clone();
        thread::spawn(move || client.send(&payload))
    };
    thread::sleep(Duration::from_millis(300));
    let back = client
        .recv_exact(big.len())
        .expect("reading the 8 MiB echo failed");
    sender
        .join()
        .expect("the writer thread panicked")
        .expect("sending 8 MiB failed");
    assert!(back == big, "the 8 MiB echo differs");
}

#[test]
fn tls_echo_server_with_openssl() {
    let _watchdog = watchdog("tls_echo_server_with_openssl");
    if !Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("tls_echo_server_with_openssl: skipped: no `openssl` command");
        return;
    }
    let (server, _dir, pem) = start_tls_echo_server("tls_echo_server_with_openssl");

    // `-quiet` keeps the connection open at the end of stdin, so the test kills it.
    // `-verify_return_error` makes a certificate that does not verify fatal.
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.addr.to_string(),
            "-CAfile",
            &pem,
        ])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args(["-verify_return_error", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start openssl s_client");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"hello from openssl\n").unwrap();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    let _ = child.kill();
    let out = child.wait_with_output().expect("openssl s_client");
    assert!(
        matches!(read, Ok(n) if n > 0) && line == "hello from openssl\n",
        "no echo from openssl s_client: {read:?}, {line:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(stdin);
}

#[test]
fn starttls() {
    let _watchdog = watchdog("starttls");
    let out = run_example("starttls", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "starttls failed: {out:?}\n--- stdout ---\n{stdout}"
    );
    let position = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("starttls did not print {needle:?}:\n{stdout}"))
    };
    // Each side in order; the plaintext request and answer before either side's TLS.
    let client = [
        "[client] plaintext: sent \"STARTTLS\\n\"",
        "[client] plaintext: received \"OK\\n\"",
        "[client] TLS is up: protocol_version=TLSv1_3, cipher=TLS13_",
        "[client] TLS: sent \"the password is swordfish\\n\"",
        "[client] TLS: received \"got 26 bytes, thanks\\n\"",
        "[client] closed",
    ]
    .map(position);
    assert!(client.is_sorted(), "client side out of order:\n{stdout}");
    let server = [
        "[server] listening on 127.0.0.1:",
        "[server] plaintext: received \"STARTTLS\\n\"",
        "[server] plaintext: sent \"OK\\n\", starting TLS",
        "[server] TLS is up: protocol_version=TLSv1_3, cipher=TLS13_",
        "[server] TLS: received \"the password is swordfish\\n\"",
        "[server] TLS: sent \"got 26 bytes, thanks\\n\"",
        "[server] TLS: EOF (close_notify)",
    ]
    .map(position);
    assert!(server.is_sorted(), "server side out of order:\n{stdout}");
    assert!(server[2] < client[1] && client[1] < server[3]);
    assert!(stdout.ends_with("done\n"), "{stdout}");
}

#[test]
fn echo_per_core() {
    let _watchdog = watchdog("echo_per_core");
    let mut child = example("echo_per_core", &["127.0.0.1:0", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start `cargo run --example echo_per_core`");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let mut server = Server {
        child,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        _stdout: stdout,
    };
    let port: u16 = line
        .trim_end()
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    assert_ne!(port, 0);
    server.addr.set_port(port);
    let mut stderr = BufReader::new(server.child.stderr.take().expect("piped stderr"));
    let mut loops = String::new();
    stderr.read_line(&mut loops).unwrap();
    assert_eq!(loops.trim_end(), "echo_per_core: 2 loops");
    // Many connections, so that both loops' sockets get some; each must echo.
    for i in 0..32u32 {
        let mut conn = server.connect();
        let msg = format!("hello {i}");
        assert_eq!(echo(&mut conn, msg.as_bytes()).unwrap(), msg.as_bytes());
    }
    let mut conn = server.connect();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    assert!(
        echo(&mut conn, &big).unwrap() == big,
        "the 1 MiB echo differs"
    );
}

/// `file_server 127.0.0.1:0 FILE` sends the whole file to each connection, then closes it.
#[test]
fn file_server() {
    let _w = watchdog("file_server");
    let dir = TempDir::new("file_server");
    let path = dir.path().join("payload.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).expect("cannot write the payload");
    let path = path.to_str().expect("a UTF-8 temp path").to_owned();
    let mut child = example("file_server", &["127.0.0.1:0", &path])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start `cargo run --example file_server`");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("cannot read stdout");
    let port: Option<u16> = line
        .trim_end()
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|p| p.parse().ok());
    let Some(port) = port.filter(|&p| p != 0) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("unexpected first line from file_server: {line:?}");
    };
    let server = Server {
        child,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        _stdout: stdout,
    };
    // Two clients at once, then one more: each gets the whole file, then EOF.
    let mut a = server.connect();
    let mut b = server.connect();
    assert!(read_to_eof(&mut a) == data, "first client");
    assert!(read_to_eof(&mut b) == data, "second client");
    let mut c = server.connect();
    assert!(read_to_eof(&mut c) == data, "third client");
}

/// The bytes `pipe_cat` copies: an xorshift stream, so the output can be checked as it
/// arrives without holding 64 MiB twice.
fn pipe_cat_bytes(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

#[test]
fn pipe_cat_copies_64_mib() {
    const TOTAL: usize = 64 << 20;
    let _watchdog = watchdog("pipe_cat_copies_64_mib");
    let mut child = example("pipe_cat", &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start `cargo run --example pipe_cat`");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let feeder = thread::spawn(move || {
        let (mut state, mut buf) = (0x9E37_79B9_7F4A_7C15u64, vec![0u8; 1 << 16]);
        for _ in 0..TOTAL / buf.len() {
            pipe_cat_bytes(&mut state, &mut buf);
            stdin.write_all(&buf).expect("feeding pipe_cat");
        }
        // Dropping stdin: EOF for pipe_cat.
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (mut state, mut want) = (0x9E37_79B9_7F4A_7C15u64, vec![0u8; 1 << 16]);
    let (mut got, mut filled, mut total) = (vec![0u8; 1 << 16], 0, 0);
    loop {
        let n = stdout.read(&mut got[filled..]).expect("reading pipe_cat");
        if n == 0 {
            break;
        }
        filled += n;
        total += n;
        if filled == got.len() {
            pipe_cat_bytes(&mut state, &mut want);
            assert!(got == want, "pipe_cat's output differs before byte {total}");
            filled = 0;
        }
    }
    feeder.join().expect("feeder");
    let out = child.wait_with_output().expect("pipe_cat's exit");
    assert_eq!(total, TOTAL, "pipe_cat copied {total} of {TOTAL} bytes");
    assert!(
        out.status.success(),
        "pipe_cat: {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// stdout's reader goes away mid-copy: `pipe_cat` gets `BrokenPipe` from its write pipe
/// transport, says so and exits 1 — not killed by `SIGPIPE`.
#[test]
fn pipe_cat_reader_gone() {
    let _watchdog = watchdog("pipe_cat_reader_gone");
    let mut child = example("pipe_cat", &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start `cargo run --example pipe_cat`");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    stdin.write_all(b"first\n").unwrap();
    let mut first = [0u8; 6];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first\n");
    drop(stdout);
    // Keeps writing until pipe_cat, which no longer reads once its stdout is lost, exits.
    let feeder = thread::spawn(move || {
        let buf = [b'x'; 4096];
        while stdin.write_all(&buf).is_ok() {}
    });
    let out = child.wait_with_output().expect("pipe_cat's exit");
    feeder.join().expect("feeder");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{:?}, stderr: {stderr}",
        out.status
    );
    // Seen by the watch on stdout's write end, or by a write that got EPIPE first.
    let broken = stderr.contains("reader closed") || stderr.contains("Broken pipe");
    assert!(stderr.starts_with("pipe_cat: ") && broken, "{stderr}");
}

/// Sends `sig` to the example (`cargo run` execs it, so the child's pid is the example's).
fn signal_child(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill with our own child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
}

/// Waits up to `limit` for the child to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the example did not exit within {limit:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn graceful_shutdown_lets_clients_finish() {
    let _watchdog = watchdog("graceful_shutdown_lets_clients_finish");
    let mut server = Server::start("graceful_shutdown");
    let mut conn = server.connect();
    assert_eq!(echo(&mut conn, b"hello").unwrap(), b"hello");
    let t0 = std::time::Instant::now();
    signal_child(&server.child, libc::SIGTERM);
    let mut line = String::new();
    server._stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "SIGTERM: stopping, 1 connection(s) open\n");
    // No more accepting; the connected client goes on.
    let refused = TcpStream::connect(server.addr).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(echo(&mut conn, b"still here").unwrap(), b"still here");
    // The client finishes: the server exits 0 without waiting for the grace period.
    drop(conn);
    let status = wait_exit(&mut server.child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let mut rest = String::new();
    server._stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "stopped\n");
}

#[test]
fn graceful_shutdown_closes_the_rest_after_5_s() {
    let _watchdog = watchdog("graceful_shutdown_closes_the_rest_after_5_s");
    let mut server = Server::start("graceful_shutdown");
    let mut idle = server.connect();
    assert_eq!(echo(&mut idle, b"ping").unwrap(), b"ping");
    let t0 = std::time::Instant::now();
    signal_child(&server.child, libc::SIGINT); // Ctrl-C
    let mut line = String::new();
    server._stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "SIGINT: stopping, 1 connection(s) open\n");
    // The idle client never closes: after 5 s the server closes it (EOF) and exits 0.
    assert_eq!(read_to_eof(&mut idle), b"");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_secs(4), "closed after {waited:?}");
    let status = wait_exit(&mut server.child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    server._stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "closing 1 connection(s) still open\nstopped\n");
}

#[test]
fn subprocess_date() {
    let _watchdog = watchdog("subprocess_date");
    let out = run_example("subprocess_date", &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let date = text
        .strip_prefix("Current date: ")
        .unwrap_or_else(|| panic!("unexpected output: {text:?}"));
    // `date` prints the year somewhere, and not as the whole line.
    assert!(date.trim().len() > 4, "{text:?}");
    assert!(date.contains("20"), "{text:?}");
}

#[test]
fn process_pipeline() {
    let _watchdog = watchdog("process_pipeline");
    let mut child = example("process_pipeline", &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start `cargo run --example process_pipeline`");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(b"pear\napple\npear\nfig\npear\napple\n")
        .expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [vec!["2", "apple"], vec!["1", "fig"], vec!["3", "pear"]],
        "{text:?}"
    );
}

/// `hyper_server` keeps connections alive and answers `GET /` with `Hello, World!`; the
/// `hyper_client` example gets it; and so does `curl`, when it is installed.
#[cfg(feature = "hyper")]
#[test]
fn hyper_server_and_client() {
    let _watchdog = watchdog("hyper_server_and_client");
    let server = Server::start("hyper_server");

    // Keep-alive: three requests on one connection, then `Connection: close` ends it.
    let conn = server.connect();
    conn.set_nodelay(true).unwrap();
    let mut c = BufReader::new(conn);
    for _ in 0..3 {
        c.get_mut().write_all(GET).unwrap();
        read_response(&mut c, false)
            .expect("keep-alive request failed")
            .assert_hello(false);
    }
    c.get_mut()
        .write_all(b"GET /nope HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut c, false).expect("request with Connection: close");
    assert_eq!(resp.status, "HTTP/1.1 404 Not Found", "{resp:?}");
    assert_eof(&mut c);

    let url = format!("http://{}/", server.addr);
    let out = run_example("hyper_client", &[&url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HTTP/1.1 200 OK\nHello, World!\n",
        "{out:?}"
    );
    // A 404 is printed too, and fails.
    let out = run_example("hyper_client", &[&format!("{url}nope")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stdout.starts_with(b"HTTP/1.1 404 Not Found\n"),
        "{out:?}"
    );
    // Not http://: a usage error.
    let out = run_example("hyper_client", &["https://example.com/"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // curl: two requests on one connection (it says when it reuses one).
    match Command::new("curl")
        .args(["--silent", "--show-error", "--verbose", &url, &url])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "{out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "Hello, World!Hello, World!"
            );
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(log.contains("< HTTP/1.1 200 OK"), "{log}");
            // curl ≥ 7.x: "Re-using existing connection"; 8.x: "Re-using existing http:
            // connection"; both say the second request went on the first connection.
            assert!(log.contains("Re-using existing"), "{log}");
            assert_eq!(log.matches("Connected to").count(), 1, "{log}");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            println!("hyper_server_and_client: curl is not installed: skipped the curl part");
        }
        Err(e) => panic!("cannot run curl: {e}"),
    }
}
