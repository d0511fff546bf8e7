//! The Unix examples run as a user would (`cargo run --example`): `file_server` (sendfile),
//! `pipe_cat`, `graceful_shutdown` (real signals), `subprocess_date`, `process_pipeline`.

mod examples_support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use examples_support::*;

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
