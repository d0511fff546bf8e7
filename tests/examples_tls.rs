//! The TLS examples run as a user would (`cargo run --example`): the TLS echo server and
//! client, flow control, openssl as the client, STARTTLS.

mod examples_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use examples_support::*;

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
