//! Runs the examples as a user would, through `cargo run --example`, and checks what they
//! print and how they behave on the network.
//!
//! Examples get no `CARGO_BIN_EXE_*` variables, so each test asks the cargo that runs the
//! tests (`env!("CARGO")`) to build and run them. Cargo does not hold the build-directory
//! lock while tests run, and the nested cargo inherits `CARGO_TARGET_DIR`, so it reuses what
//! is already built.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
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
/// were built with.
fn example(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
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

/// A running `sock_echo_server`; killed and reaped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start() -> Server {
        let mut child = example("sock_echo_server", &["127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start `cargo run --example sock_echo_server`");
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
                panic!("unexpected first line from the server: {line:?} (status: {status:?})")
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
    let server = Server::start();

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
    let out = run_example("sock_echo_client", &[&format!("127.0.0.1:{port}"), "hi"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused"), "unexpected stderr: {stderr:?}");
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
}
