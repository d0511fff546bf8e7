//! Runs the examples as a user would, through `cargo run --example`, and checks what they
//! print and how they behave on the network.
//!
//! Examples get no `CARGO_BIN_EXE_*` variables, so each test asks the cargo that runs the
//! tests (`env!("CARGO")`) to build and run them. Cargo does not hold the build-directory
//! lock while tests run, and the nested cargo inherits `CARGO_TARGET_DIR`, so it reuses what
//! is already built.
//!
//! The HTTP, TLS and Unix examples are in `examples_http.rs`, `examples_tls.rs` and
//! `examples_unix.rs`; what they share in `examples_support/`.

mod examples_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use examples_support::*;

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
