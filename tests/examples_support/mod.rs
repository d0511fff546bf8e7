//! What the example tests share: building and running an example through the cargo that
//! runs the tests, a server example as a child process, a watchdog, and small clients.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// How long one test may take, building the examples included, before the watchdog aborts.
pub(crate) const WATCHDOG: Duration = Duration::from_secs(120);

/// Read timeout for the test's own sockets.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Aborts the test process if it is still alive after [`WATCHDOG`]; dropping it (at the end
/// of the test, passed or failed) disarms it.
pub(crate) struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

pub(crate) fn watchdog(test: &'static str) -> Watchdog {
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
pub(crate) fn example(name: &str, args: &[&str]) -> Command {
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

pub(crate) fn run_example(name: &str, args: &[&str]) -> Output {
    example(name, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run `cargo run --example {name}`: {err}"))
}

/// A running server example; killed and reaped when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts the example `name` on a free port and waits for its `listening on` line.
    pub(crate) fn start(name: &str) -> Server {
        Server::start_in(name, Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    /// [`Server::start`], with `dir` as the server's current directory.
    pub(crate) fn start_in(name: &str, dir: &Path) -> Server {
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

    pub(crate) fn connect(&self) -> TcpStream {
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
pub(crate) fn echo(stream: &mut TcpStream, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut writer = stream.try_clone()?;
    let payload = data.to_vec();
    let sender = thread::spawn(move || writer.write_all(&payload));
    let mut back = vec![0; data.len()];
    let read = stream.read_exact(&mut back);
    sender.join().expect("the writer thread panicked")?;
    read?;
    Ok(back)
}

/// One UDP echo through the server, from a std socket (sent again if it is lost).
pub(crate) fn udp_echo(server: SocketAddr, data: &[u8]) -> Vec<u8> {
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

/// A request `http_hello` answers with `200 OK`.
pub(crate) const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// One HTTP response, as the tests read it.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts `200 OK` with the body `Hello, World!` (or none, for `HEAD`).
    pub(crate) fn assert_hello(&self, head: bool) {
        assert_eq!(self.status, "HTTP/1.1 200 OK", "{self:?}");
        assert_eq!(self.header("Content-Length"), Some("13"), "{self:?}");
        let body: &[u8] = if head { b"" } else { b"Hello, World!" };
        assert_eq!(self.body, body, "{self:?}");
    }
}

/// Reads one response; after a `HEAD` request (`head`) there is no body, whatever
/// `Content-Length` says.
pub(crate) fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> io::Result<Response> {
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
pub(crate) fn assert_eof(r: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("expected EOF from the server");
    assert!(
        rest.is_empty(),
        "expected EOF, got {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Reads one line (`\n` included); an error at EOF.
pub(crate) fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let n = r.read_line(&mut line).expect("cannot read a line");
    assert_ne!(n, 0, "unexpected EOF");
    line
}

/// Reads everything until the server's EOF.
pub(crate) fn read_to_eof(conn: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    conn.read_to_end(&mut all)
        .expect("expected EOF from the server");
    all
}

/// A fresh, empty directory under the system's temporary directory; removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("tulip-examples-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a temporary directory");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The name of the certificate `tls_echo_server` writes in its current directory.
pub(crate) const SELF_SIGNED_PEM: &str = "tulip-selfsigned.pem";

/// Starts `tls_echo_server` in a temporary directory; returns it with the path of the
/// self-signed certificate it wrote there.
pub(crate) fn start_tls_echo_server(test: &str) -> (Server, TempDir, String) {
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

/// A TLS client on the test's own thread(s), with rustls (tulip's re-export): the handshake
/// on a blocking socket, then a connection the reading and the writing thread share.
pub(crate) struct RustlsClient {
    conn: std::sync::Arc<std::sync::Mutex<tulip::tls::rustls::ClientConnection>>,
    sock: TcpStream,
}

impl RustlsClient {
    pub(crate) fn connect(sock: TcpStream, cafile: &str) -> RustlsClient {
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
    pub(crate) fn send(&self, data: &[u8]) -> io::Result<()> {
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
    pub(crate) fn recv_exact(&self, n: usize) -> io::Result<Vec<u8>> {
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

/// The bytes `pipe_cat` copies: an xorshift stream, so the output can be checked as it
/// arrives without holding 64 MiB twice.
pub(crate) fn pipe_cat_bytes(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

/// Sends `sig` to the example (`cargo run` execs it, so the child's pid is the example's).
pub(crate) fn signal_child(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill with our own child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
}

/// Waits up to `limit` for the child to exit.
pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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
