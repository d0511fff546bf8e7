//! TLS end of file: a peer that closes TCP after the handshake without sending
//! `close_notify` is an EOF by default (asyncio and Python's `ssl`, `suppress_ragged_eofs`):
//! `eof_received`, then `connection_lost(None)`, and a stream's `read_to_eof` returns the
//! data. `TlsOptions::require_close_notify(true)` makes it a truncation instead (see the
//! `..._when_close_notify_is_required` tests in `tests/tls.rs` and `tests/tls_close.rs`).
//! `eof_received` returning `true` has no effect under TLS and is warned about once. Not a
//! received byte is lost.
//!
//! The tests translated from CPython name their source (`Lib/test/test_asyncio/test_ssl.py`).
//! The peers are blocking rustls streams in std threads; certificates are made at test time.

mod proto_support;
mod support;
mod tls_support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto_support::*;
use tls_support::*;
use tulip::tls::rustls;
use tulip::{net::ConnectOptions, net::ServerOptions, tls::TlsOptions};

const KIB: usize = 1024;

fn tls_client(cfg: Arc<rustls::ClientConfig>) -> ConnectOptions {
    ConnectOptions::new().tls(TlsOptions::client(cfg).server_hostname("localhost"))
}

/// A listener and a std thread that accepts one connection, does the rustls handshake as
/// the server, then runs `f` on the stream.
fn rustls_peer<T: Send + 'static>(
    pki: &Pki,
    f: impl FnOnce(ServerStream) -> io::Result<T> + Send + 'static,
) -> (u16, std::thread::JoinHandle<io::Result<T>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = pki.server_config();
    let h = std::thread::spawn(move || {
        let (sock, _) = l.accept()?;
        f(rustls_server(sock, cfg)?)
    });
    (port, h)
}

/// Reads plaintext until `Ok(0)` (the peer's `close_notify`) and returns how much came;
/// a TCP close without `close_notify` is rustls's `UnexpectedEof`.
fn read_all_len<S: Read>(s: &mut S) -> io::Result<usize> {
    let mut buf = vec![0u8; 64 * KIB];
    let mut n = 0;
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(n),
            k => n += k,
        }
    }
}

async fn wait_flag(flag: &AtomicBool, secs: f64) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < until, "the peer did not get there");
        tulip::sleep(Duration::from_millis(1)).await;
    }
}

/// CPython `test_ssl.py::test_shutdown_timeout_handler_not_set`: the server sends data and
/// shuts down its write side without `close_notify` while the client has paused reading
/// (the data waits unprocessed); after `resume_reading` the client gets the data, then EOF,
/// then `connection_lost(None)` — and the peer gets our `close_notify` (its read sees a clean
/// end, the `b''` of the original).
#[tulip::test]
async fn a_close_without_close_notify_while_paused_delivers_everything_then_eof() {
    let _w = support::watchdog("eof_while_paused", 10);
    capture_logs();
    let pki = Pki::new();
    let eof = Arc::new(AtomicBool::new(false));
    let e = eof.clone();
    let (port, h) = rustls_peer(&pki, move |mut s| {
        s.write_all(b"hello")?;
        s.flush()?;
        let mut world = [0u8; 5];
        s.read_exact(&mut world)?;
        assert_eq!(&world, b"world");
        s.write_all(b"extra bytes")?;
        s.flush()?;
        // Sending EOF here, without close_notify.
        s.sock.shutdown(Shutdown::Write)?;
        e.store(true, Ordering::SeqCst);
        read_all_len(&mut s)
    });
    let cp = Probe::new();
    let rec = Rec::new(&cp).on_data(|t, d| {
        if d == b"hello" {
            t.write(b"world");
            // Pausing keeps what comes next (the extra bytes and the EOF) unprocessed.
            t.pause_reading();
        }
    });
    let (t, _) = tulip::create_connection(
        move || rec,
        "127.0.0.1",
        port,
        tls_client(pki.client_config()),
    )
    .await
    .unwrap();
    wait_flag(&eof, 5.0).await;
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(cp.received(), b"hello", "reading is paused");
    assert!(!cp.is_lost());
    t.resume_reading();
    assert_eq!(cp.wait_lost(5.0).await, None, "{:?}", cp.events());
    assert_eq!(cp.received(), b"helloextra bytes");
    let ev = cp.events();
    assert_stream_order(&ev);
    assert_eq!(ev.iter().filter(|e| **e == Event::ER).count(), 1, "{ev:?}");
    assert_eq!(ev[ev.len() - 2], Event::ER, "{ev:?}");
    assert_eq!(
        join_thread(h, 5.0).await.unwrap(),
        0,
        "a clean end for the peer"
    );
    t.close();
}

/// The server side: a client that shuts down TCP without `close_notify` after a request is
/// an EOF for the server's protocol, which then answers nothing more and closes cleanly.
#[tulip::test]
async fn a_client_closing_without_close_notify_is_eof_for_the_server_protocol() {
    let _w = support::watchdog("server_eof", 10);
    capture_logs();
    let pki = Pki::new();
    let sp = Probe::new();
    let rec = {
        let sp = sp.clone();
        std::cell::RefCell::new(Some(Rec::new(&sp).echo()))
    };
    let server = tulip::create_server(
        move || rec.borrow_mut().take().expect("one connection"),
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(pki.server_config())),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<(Vec<u8>, usize)> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"ping\n")?;
        s.flush()?;
        let line = read_line(&mut s)?;
        s.sock.shutdown(Shutdown::Write)?;
        Ok((line, read_all_len(&mut s)?))
    });
    assert_eq!(join_thread(h, 5.0).await.unwrap(), (b"ping\n".to_vec(), 0));
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_eq!(
        sp.events(),
        vec![Event::CM, Event::DR(5), Event::ER, Event::CL(None)]
    );
    server.close();
}

/// A stream's `read_to_eof` returns all the data of a peer that closes TCP without
/// `close_notify` (an HTTP/1.0 server, `openssl s_server`, many others do).
#[tulip::test]
async fn read_to_eof_returns_the_data_of_a_peer_closing_without_close_notify() {
    let _w = support::watchdog("read_to_eof_ragged", 10);
    capture_logs();
    let pki = Pki::new();
    let body: Vec<u8> = (0..300 * KIB).map(|i| (i % 251) as u8).collect();
    let sent = body.clone();
    let (port, h) = rustls_peer(&pki, move |mut s| {
        s.write_all(&sent)?;
        s.flush()?;
        // Gone without close_notify.
        s.sock.shutdown(Shutdown::Both)
    });
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    let got = r.read_to_eof().await.unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got == body);
    assert!(r.at_eof());
    join_thread(h, 5.0).await.unwrap();
    w.close();
    tulip::timeout(Duration::from_secs(5), w.wait_closed())
        .await
        .unwrap()
        .unwrap();
}

/// CPython `test_ssl.py::test_remote_shutdown_receives_trailing_data` (its `eof_server`):
/// the server sends EOF without `close_notify` while the client has megabytes queued; the
/// client's reader sees EOF, and the server still receives every byte the client wrote.
#[tulip::test]
async fn remote_shutdown_receives_trailing_data() {
    let _w = support::watchdog("trailing_data", 20);
    capture_logs();
    const CHUNK: usize = 128 * KIB;
    const SIZE: usize = 32;
    let pki = Pki::new();
    let (port, h) = rustls_peer(&pki, move |mut s| {
        let mut ping = [0u8; 4];
        s.read_exact(&mut ping)?;
        assert_eq!(&ping, b"ping");
        s.write_all(b"pong")?;
        s.flush()?;
        std::thread::sleep(Duration::from_millis(200)); // the peer fills its backlog
        s.sock.shutdown(Shutdown::Write)?; // send EOF
        read_all_len(&mut s)
    });
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    w.write(b"ping");
    assert_eq!(r.readexactly(4).await.unwrap(), b"pong");
    let chunk = vec![b'x'; CHUNK];
    for _ in 0..SIZE {
        w.write(&chunk);
    }
    assert_eq!(r.read(64 * KIB).await.unwrap(), b"");
    assert_eq!(join_thread(h, 10.0).await.unwrap(), CHUNK * SIZE);
    w.close();
    tulip::timeout(Duration::from_secs(5), w.wait_closed())
        .await
        .unwrap()
        .unwrap();
}

/// asyncio's `SSLProtocol._call_eof_received`: a protocol whose `eof_received` returns
/// `true` is closed all the same under TLS (no half-close), and a warning says so — once
/// per process, not once per connection. Both ends of a TLS session: the peer's
/// `close_notify`, and a TCP close without it.
#[tulip::test]
async fn eof_received_returning_true_has_no_effect_and_is_warned_about_once() {
    let _w = support::watchdog("keep_open_warning", 10);
    capture_logs();
    let pki = Pki::new();
    for clean in [true, false] {
        let (port, h) = rustls_peer(&pki, move |mut s| {
            s.write_all(b"bye")?;
            s.flush()?;
            if clean {
                send_close_notify(&mut s)?;
            } else {
                s.sock.shutdown(Shutdown::Write)?;
            }
            read_all_len(&mut s)
        });
        let cp = Probe::new();
        let rec = Rec::new(&cp).keep_open(true);
        let (t, _) = tulip::create_connection(
            move || rec,
            "127.0.0.1",
            port,
            tls_client(pki.client_config()),
        )
        .await
        .unwrap();
        assert_eq!(cp.wait_lost(5.0).await, None, "clean={clean}");
        assert_eq!(
            cp.events(),
            vec![Event::CM, Event::DR(3), Event::ER, Event::CL(None)],
            "clean={clean}"
        );
        assert!(t.is_closing());
        assert_eq!(join_thread(h, 5.0).await.unwrap(), 0, "clean={clean}");
    }
    let lines = logs_with("has no effect when using TLS");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("WARN"), "{lines:?}");
}

/// With `require_close_notify(true)`, every byte that came before the truncation is
/// delivered before `connection_lost(UnexpectedEof)` — also when reading was paused.
#[tulip::test]
async fn a_truncation_loses_no_byte_when_close_notify_is_required() {
    let _w = support::watchdog("strict_no_loss", 10);
    capture_logs();
    let pki = Pki::new();
    let eof = Arc::new(AtomicBool::new(false));
    let e = eof.clone();
    let (port, h) = rustls_peer(&pki, move |mut s| {
        s.write_all(b"first")?;
        s.write_all(&vec![b'y'; 100 * KIB])?;
        s.flush()?;
        s.sock.shutdown(Shutdown::Write)?;
        e.store(true, Ordering::SeqCst);
        Ok(())
    });
    let cp = Probe::new();
    let rec = Rec::new(&cp).on_data(|t, _| t.pause_reading());
    let (t, _) = tulip::create_connection(
        move || rec,
        "127.0.0.1",
        port,
        ConnectOptions::new().tls(
            TlsOptions::client(pki.client_config())
                .server_hostname("localhost")
                .require_close_notify(true),
        ),
    )
    .await
    .unwrap();
    wait_flag(&eof, 5.0).await;
    join_thread(h, 5.0).await.unwrap();
    // Resume once per delivery until the connection ends.
    let until = Instant::now() + Duration::from_secs(5);
    while !cp.is_lost() {
        assert!(Instant::now() < until, "{:?}", cp.events());
        t.resume_reading();
        tulip::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(cp.lost_kind(), Some(Some(io::ErrorKind::UnexpectedEof)));
    assert_eq!(cp.received_len(), 5 + 100 * KIB);
    assert!(!cp.events().contains(&Event::ER));
}
