//! The HTTP examples run as a user would (`cargo run --example`): `http_hello` (keep-alive,
//! pipelining, flow control) and hyper on tulip (`hyper_server`, `hyper_client`, curl).

mod examples_support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use examples_support::*;

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

/// `hyper_server` keeps connections alive and answers `GET /` with `Hello, World!`; the
/// `hyper_client` example gets it; and so does `curl`, when it is installed.
#[cfg(feature = "hyper")]
#[test]
fn hyper_server_and_client() {
    use std::process::Command;
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
