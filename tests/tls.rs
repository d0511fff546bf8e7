//! TLS between tulip and tulip (and rustls peers driven by hand in std threads): the call
//! order of protocols on every path (clean close with close_notify, abort, reset, EOF
//! without close_notify, handshake failure), streams, ALPN, client certificates, errors
//! that say what went wrong, handshake timeouts, garbage instead of TLS, 32 MiB under flow
//! control, STARTTLS with the ClientHello already buffered, extra info. Certificates are
//! made with rcgen at test time.

mod proto_support;
mod support;
mod tls_support;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_support::*;
use tls_support::*;
use tulip::tls::rustls;
use tulip::{
    Protocol, Server, Transport, net::ConnectOptions, net::ServerOptions, tls::TlsOptions,
    transports::ExtraInfo,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

type Probes = Rc<RefCell<Vec<Probe>>>;

/// How an async step on the server ended: its value or (kind, message) of its error.
type Outcome<T> = Rc<RefCell<Option<Result<T, (io::ErrorKind, String)>>>>;

/// A server on 127.0.0.1 whose protocols are `make(probe)`, each probe recorded in order
/// (the factory runs at accept time, so a probe exists even when the handshake fails).
async fn recording_server(
    opts: ServerOptions,
    make: impl Fn(&Probe) -> Rec + 'static,
) -> (Server, Probes, SocketAddr) {
    let probes: Probes = Rc::default();
    let ps = probes.clone();
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            ps.borrow_mut().push(p.clone());
            make(&p)
        },
        "127.0.0.1",
        0,
        opts,
    )
    .await
    .expect("create_server");
    let addr = server.local_addr().expect("local_addr");
    (server, probes, addr)
}

fn tls_server(cfg: Arc<rustls::ServerConfig>) -> ServerOptions {
    ServerOptions::new().tls(TlsOptions::server(cfg))
}

/// A server that treats a close without `close_notify` as a truncation (not the default).
fn strict_tls_server(cfg: Arc<rustls::ServerConfig>) -> ServerOptions {
    ServerOptions::new().tls(TlsOptions::server(cfg).require_close_notify(true))
}

fn tls_client(cfg: Arc<rustls::ClientConfig>) -> ConnectOptions {
    ConnectOptions::new().tls(TlsOptions::client(cfg).server_hostname("localhost"))
}

/// Connects a recording protocol with TLS to 127.0.0.1:`port`.
async fn connect(port: u16, opts: ConnectOptions, probe: &Probe) -> io::Result<Transport> {
    let rec = Rec::new(probe);
    let (t, _) = tulip::create_connection(move || rec, "127.0.0.1", port, opts).await?;
    Ok(t)
}

/// Waits until the server has accepted `n` connections (made their protocols).
async fn wait_probes(probes: &Probes, n: usize, secs: f64) -> Vec<Probe> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while probes.borrow().len() < n {
        assert!(
            Instant::now() < until,
            "fewer than {n} connections accepted"
        );
        tulip::sleep(Duration::from_millis(1)).await;
    }
    probes.borrow().clone()
}

/// A protocol that records like [`Rec`] and also keeps the error `connection_lost` got.
struct Keep {
    rec: Rec,
    err: Rc<RefCell<Option<String>>>,
    tls: Rc<Cell<bool>>,
}

impl Protocol for Keep {
    fn connection_made(&mut self, t: &Transport) {
        self.rec.connection_made(t);
    }
    fn data_received(&mut self, d: &[u8]) {
        self.rec.data_received(d);
    }
    fn eof_received(&mut self) -> bool {
        self.rec.eof_received()
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(e) = &exc {
            *self.err.borrow_mut() = Some(e.to_string());
            self.tls.set(tulip::tls::TlsError::from_io(e).is_some());
        }
        self.rec.connection_lost(exc);
    }
    fn pause_writing(&mut self) {
        self.rec.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.rec.resume_writing();
    }
}

/// What a [`Keep`] kept: the error message and whether it carried a `TlsError`.
#[derive(Clone, Default)]
struct Kept {
    err: Rc<RefCell<Option<String>>>,
    tls: Rc<Cell<bool>>,
}

impl Kept {
    fn protocol(&self, rec: Rec) -> Keep {
        Keep {
            rec,
            err: self.err.clone(),
            tls: self.tls.clone(),
        }
    }
    fn message(&self) -> String {
        self.err
            .borrow()
            .clone()
            .expect("connection_lost had an error")
    }
}

/// A loopback address of its own for a client whose failure the server logs: the log line
/// names the peer, and tests run in parallel.
fn own_ip(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 0))
}

// ---- protocols: the call order on every path ----------------------------------------------------

#[tulip::test]
async fn protocols_echo_then_the_client_closes_with_close_notify() {
    let _w = support::watchdog("protocols_clean_close_client", 10);
    let pki = Pki::new();
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    // connection_made ran after the handshake, before create_connection returned.
    assert_eq!(cp.events(), vec![Event::CM]);
    assert!(!t.is_closing());
    t.write(b"hello ");
    t.writelines([&b"over "[..], b"tls"]);
    cp.wait_bytes(14, 5.0).await;
    assert_eq!(cp.received(), b"hello over tls");
    t.close();
    assert!(t.is_closing());
    t.close(); // idempotent
    assert_eq!(cp.wait_lost(5.0).await, None);
    let sp = wait_probes(&probes, 1, 5.0).await[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_eq!(sp.received(), b"hello over tls");
    let (ce, se) = (cp.events(), sp.events());
    assert_stream_order(&ce);
    assert_stream_order(&se);
    // The client's close_notify is the server's EOF.
    assert_eq!(se[se.len() - 2], Event::ER, "{se:?}");
    assert!(!ce.contains(&Event::ER), "{ce:?}");
    // Writes after close are dropped, nothing is called again.
    t.write(b"late");
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(cp.count_cl(), 1);
    assert_eq!(sp.count_cl(), 1);
    server.close();
}

#[tulip::test]
async fn protocols_the_server_closes_and_the_client_gets_eof() {
    let _w = support::watchdog("protocols_server_closes", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_data(|t, d| {
            t.write(d);
            t.write(b" bye");
            t.close();
        })
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    t.write(b"hi");
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert_eq!(
        cp.received(),
        b"hi bye",
        "buffered data is sent before close"
    );
    let ce = cp.events();
    assert_stream_order(&ce);
    assert_eq!(ce[ce.len() - 2], Event::ER, "{ce:?}");
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_stream_order(&sp.events());
    server.close();
}

#[tulip::test]
async fn protocols_eof_received_true_keeps_the_tls_connection_open_for_writing() {
    let _w = support::watchdog("protocols_keep_open", 10);
    let pki = Pki::new();
    // The server answers after the client's close_notify; the client reads it as
    // eof_received (it keeps its side open) and then closes.
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_eof(|t| {
            t.write(b"late answer");
            t.close();
            true
        })
    })
    .await;
    // A rustls peer that sends close_notify and keeps reading.
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"question")?;
        send_close_notify(&mut s)?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    });
    let got = join_thread(h, 5.0).await.unwrap();
    assert_eq!(got, b"late answer");
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, None);
    let se = sp.events();
    assert_stream_order(&se);
    assert_eq!(se[se.len() - 2], Event::ER, "{se:?}");
    server.close();
}

#[tulip::test]
async fn protocols_abort_loses_at_once_and_the_peer_sees_eof_without_close_notify() {
    let _w = support::watchdog("protocols_abort", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(strict_tls_server(pki.server_config()), |p| {
        Rec::new(p).echo()
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    t.write(b"ping");
    cp.wait_bytes(4, 5.0).await;
    t.abort();
    assert!(t.is_closing());
    assert_eq!(cp.wait_lost(5.0).await, None);
    let sp = probes.borrow()[0].clone();
    assert_eq!(
        sp.wait_lost(5.0).await,
        Some(io::ErrorKind::UnexpectedEof),
        "{:?}",
        sp.events()
    );
    assert_stream_order(&cp.events());
    assert_stream_order(&sp.events());
    assert!(!sp.events().contains(&Event::ER), "a truncation is no EOF");
    server.close();
}

#[tulip::test]
async fn protocols_peer_reset_is_connection_reset() {
    let _w = support::watchdog("protocols_reset", 10);
    let pki = Pki::new();
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    t.write(b"ping");
    cp.wait_bytes(4, 5.0).await;
    // The TLS transport hands out the raw socket: SO_LINGER 0 makes abort send RST.
    with_sock(&t, |s| s.set_linger(Some(Duration::ZERO))).unwrap();
    t.abort();
    assert_eq!(cp.wait_lost(5.0).await, None);
    let sp = probes.borrow()[0].clone();
    assert_eq!(
        sp.wait_lost(5.0).await,
        Some(io::ErrorKind::ConnectionReset)
    );
    assert_stream_order(&sp.events());
    assert_stream_order(&cp.events());
    server.close();
}

#[tulip::test]
async fn protocols_eof_without_close_notify_is_unexpected_eof_when_close_notify_is_required() {
    let _w = support::watchdog("protocols_truncation", 10);
    let pki = Pki::new();
    let kept = Kept::default();
    let probes: Probes = Rc::default();
    let (k, ps) = (kept.clone(), probes.clone());
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            ps.borrow_mut().push(p.clone());
            k.protocol(Rec::new(&p).echo())
        },
        "127.0.0.1",
        0,
        strict_tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"ping\n")?;
        let line = read_line(&mut s)?;
        // Drop the write side of TCP without a close_notify, then read what comes.
        s.sock.shutdown(std::net::Shutdown::Write)?;
        let mut rest = Vec::new();
        let r = s.sock.read_to_end(&mut rest);
        assert!(r.is_ok(), "{r:?}");
        Ok(line)
    });
    assert_eq!(join_thread(h, 5.0).await.unwrap(), b"ping\n");
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, Some(io::ErrorKind::UnexpectedEof));
    let msg = kept.message();
    assert!(msg.contains("close_notify"), "{msg}");
    let se = sp.events();
    assert_stream_order(&se);
    assert_eq!(
        se,
        vec![
            Event::CM,
            Event::DR(5),
            Event::CL(Some(io::ErrorKind::UnexpectedEof))
        ]
    );
    server.close();
}

#[tulip::test]
async fn protocols_garbage_after_the_handshake_is_a_tls_error_in_connection_lost() {
    let _w = support::watchdog("protocols_garbage_after", 10);
    let pki = Pki::new();
    let kept = Kept::default();
    let probes: Probes = Rc::default();
    let (k, ps) = (kept.clone(), probes.clone());
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            ps.borrow_mut().push(p.clone());
            k.protocol(Rec::new(&p).echo())
        },
        "127.0.0.1",
        0,
        tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"ping\n")?;
        let line = read_line(&mut s)?;
        // Plain bytes on the socket where a TLS record belongs.
        s.sock.write_all(b"this is not a TLS record\r\n")?;
        let mut rest = Vec::new();
        let _ = s.sock.read_to_end(&mut rest);
        Ok((line, rest))
    });
    let (line, rest) = join_thread(h, 5.0).await.unwrap();
    assert_eq!(line, b"ping\n");
    println!("after the garbage the peer got {} bytes", rest.len());
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, Some(io::ErrorKind::InvalidData));
    assert!(kept.tls.get(), "the error carries a TlsError");
    let msg = kept.message();
    assert!(msg.starts_with("TLS error"), "{msg}");
    assert_stream_order(&sp.events());
    server.close();
}

#[tulip::test]
async fn buffered_protocol_over_tls_gets_get_buffer_buffer_updated_pairs() {
    let _w = support::watchdog("buffered_over_tls", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_made(|t| {
            let mut s = ByteStream::new(3);
            t.write(&s.take(60 * KIB));
            t.write(&s.take(60 * KIB));
            t.close();
        })
    })
    .await;
    let cp = Probe::new();
    let rec = BufRec::new(&cp, 1000);
    let (_t, _) = tulip::create_connection(
        move || tulip::Buffered(rec),
        "127.0.0.1",
        addr.port(),
        tls_client(pki.client_config()),
    )
    .await
    .unwrap();
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert_eq!(cp.received(), ByteStream::new(3).take(120 * KIB));
    let ev = cp.events();
    assert_buffered_order(&ev);
    assert_eq!(ev[ev.len() - 2], Event::ER);
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, None);
    server.close();
}

// ---- handshake failures ----------------------------------------------------------------------

// CPython: test_sslproto.py BaseStartTLS.test_create_connection_ssl_failed_certificate
#[tulip::test]
async fn unknown_ca_fails_the_handshake_on_both_sides_without_connection_made() {
    let _w = support::watchdog("unknown_ca", 10);
    capture_logs();
    let pki = Pki::new();
    let stranger = Pki::new(); // a CA the client does not know signed nothing of ours
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let start = Instant::now();
    let err = connect(
        addr.port(),
        tls_client(stranger.client_config()).local_addr(own_ip(31)),
        &cp,
    )
    .await
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    let msg = assert_tls_error(&err, &["handshake", "certificate", "UnknownIssuer"]);
    println!("client: {msg}");
    assert!(matches!(
        tulip::tls::TlsError::from_io(&err).unwrap().rustls_error(),
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    ));
    assert!(cp.events().is_empty(), "{:?}", cp.events());
    // The server logs the failure (the client's alert), and its protocol never starts.
    let line = wait_log("127.0.0.31:", 5.0).await;
    println!("server log: {line}");
    assert!(line.contains("TLS handshake"), "{line}");
    assert!(line.to_lowercase().contains("unknownca"), "{line}");
    let sp = wait_probes(&probes, 1, 5.0).await[0].clone();
    tulip::sleep(Duration::from_millis(20)).await;
    assert!(sp.events().is_empty(), "{:?}", sp.events());
    assert_eq!(server.connection_count(), 0);
    // The server goes on.
    let good = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &good)
        .await
        .unwrap();
    t.write(b"still here");
    good.wait_bytes(10, 5.0).await;
    t.close();
    good.wait_lost(5.0).await;
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_server_ssl_match_failed
#[tulip::test]
async fn hostname_mismatch_names_the_name() {
    let _w = support::watchdog("hostname_mismatch", 10);
    let pki = Pki::new();
    let (server, _probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let err = connect(
        addr.port(),
        ConnectOptions::new()
            .tls(TlsOptions::client(pki.client_config()).server_hostname("www.example.org")),
        &cp,
    )
    .await
    .unwrap_err();
    let msg = assert_tls_error(&err, &["handshake", "certificate", "not valid for name"]);
    assert!(msg.contains("www.example.org"), "{msg}");
    println!("{msg}");
    assert!(matches!(
        tulip::tls::TlsError::from_io(&err).unwrap().rustls_error(),
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })
            | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
    ));
    assert!(cp.events().is_empty());
    // A name that is no name at all is refused before connecting.
    let err = connect(
        addr.port(),
        ConnectOptions::new()
            .tls(TlsOptions::client(pki.client_config()).server_hostname("not a name!")),
        &cp,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("server_hostname"), "{err}");
    server.close();
}

#[tulip::test]
async fn streams_report_handshake_failures_too() {
    let _w = support::watchdog("streams_handshake_failure", 10);
    let pki = Pki::new();
    let ran = Rc::new(Cell::new(false));
    let r2 = ran.clone();
    let server = tulip::start_server(
        move |_r: tulip::StreamReader, _w: tulip::StreamWriter| {
            r2.set(true);
            async move { io::Result::Ok(()) }
        },
        "127.0.0.1",
        0,
        tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let err = tulip::open_connection("127.0.0.1", port, tls_client(Pki::new().client_config()))
        .await
        .unwrap_err();
    assert_tls_error(&err, &["UnknownIssuer"]);
    tulip::sleep(Duration::from_millis(20)).await;
    assert!(
        !ran.get(),
        "the handler must not run for a failed handshake"
    );
    server.close();
}

// ---- handshake timeouts ------------------------------------------------------------------------

#[tulip::test]
async fn server_handshake_timeout_drops_a_silent_client_on_time_and_keeps_serving() {
    let _w = support::watchdog("server_handshake_timeout", 10);
    capture_logs();
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(
        ServerOptions::new().tls(
            TlsOptions::server(pki.server_config()).handshake_timeout(Duration::from_millis(200)),
        ),
        |p| Rec::new(p).echo(),
    )
    .await;
    let silent = TcpStream::connect(addr).unwrap();
    silent.set_nonblocking(true).unwrap();
    let me = silent.local_addr().unwrap();
    let start = Instant::now();
    let (got, err) = read_to_end(&silent, 5.0).await;
    let took = start.elapsed();
    assert_eq!((got.len(), err), (0, None), "dropped with a plain close");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let line = wait_log(&me.to_string(), 5.0).await;
    assert!(line.contains("timed out"), "{line}");
    let sp = probes.borrow()[0].clone();
    assert!(sp.events().is_empty(), "{:?}", sp.events());
    // The server goes on: a real client gets through, and a quick one is not cut off.
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    tulip::sleep(Duration::from_millis(300)).await; // past the handshake timeout
    t.write(b"after the timeout");
    cp.wait_bytes(17, 5.0).await;
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert_stream_order(&cp.events());
    server.close();
}

// CPython: test_sslproto.py BaseStartTLS.test_create_connection_ssl_slow_handshake (asyncio: ConnectionAbortedError; tulip: TimedOut)
#[tulip::test]
async fn client_handshake_timeout_against_a_listener_that_never_answers() {
    let _w = support::watchdog("client_handshake_timeout", 10);
    let (l, addr) = support::listener();
    let cp = Probe::new();
    let start = Instant::now();
    let err = connect(
        addr.port(),
        ConnectOptions::new().tls(
            TlsOptions::client(Pki::new().client_config())
                .server_hostname("localhost")
                .handshake_timeout(Duration::from_millis(200)),
        ),
        &cp,
    )
    .await
    .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("handshake"), "{err}");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(cp.events().is_empty());
    // The listener got a ClientHello, then the client closed its socket.
    let (peer, _) = l.accept().unwrap();
    peer.set_nonblocking(true).unwrap();
    let (got, err) = read_to_end(&peer, 5.0).await;
    assert_eq!(err, None);
    assert_eq!(&got[..2], &[0x16, 0x03], "a TLS handshake record");
}

// ---- garbage instead of TLS ----------------------------------------------------------------------

#[tulip::test]
async fn garbage_to_the_server_is_logged_the_connection_closed_and_the_server_goes_on() {
    let _w = support::watchdog("garbage_to_server", 10);
    capture_logs();
    let pki = Pki::new();
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let mut c = TcpStream::connect(addr).unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    c.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let (got, err) = read_to_end(&c, 5.0).await;
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(err, None, "closed, not reset ({got:?})");
    if !got.is_empty() {
        assert_eq!(got[0], 21, "only an alert may come back: {got:?}");
    }
    let line = wait_log(&me.to_string(), 5.0).await;
    println!("server log: {line}");
    assert!(line.contains("TLS handshake"), "{line}");
    let sp = probes.borrow()[0].clone();
    assert!(sp.events().is_empty(), "{:?}", sp.events());
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    t.write(b"ok");
    cp.wait_bytes(2, 5.0).await;
    t.close();
    cp.wait_lost(5.0).await;
    server.close();
}

#[tulip::test]
async fn garbage_to_the_client_is_an_error_from_create_connection() {
    let _w = support::watchdog("garbage_to_client", 10);
    let (l, addr) = support::listener();
    let fake = tulip::spawn(async move {
        let (s, _) = tulip::sock_accept(&l).await.unwrap();
        let hello = tulip::sock_recv(&s, 64 * 1024).await.unwrap();
        assert_eq!(hello[0], 0x16);
        tulip::sock_sendall(&s, b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        // Holds the socket until the client gives up on it.
        read_to_end(&s, 5.0).await
    });
    let cp = Probe::new();
    let start = Instant::now();
    let err = connect(addr.port(), tls_client(Pki::new().client_config()), &cp)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "no need for the timeout"
    );
    let msg = assert_tls_error(&err, &["handshake"]);
    println!("{msg}");
    assert!(cp.events().is_empty());
    let (_alert, e) = fake.await;
    assert_eq!(e, None, "the client closed its socket");
}

// ---- ALPN ----------------------------------------------------------------------------------------

#[tulip::test]
async fn alpn_is_negotiated_and_visible_on_both_sides() {
    let _w = support::watchdog("alpn", 10);
    let pki = Pki::new();
    let scfg = custom_server_config(&pki.server, &[b"h2", b"http/1.1"], None, ALL);
    let (server, probes, addr) = recording_server(tls_server(scfg), |p| Rec::new(p).echo()).await;
    // The server's preference wins over the client's order.
    for (offer, want) in [
        (&[&b"http/1.1"[..], b"h2"][..], Some(&b"h2"[..])),
        (&[&b"http/1.1"[..]][..], Some(&b"http/1.1"[..])),
        (&[][..], None),
    ] {
        let cp = Probe::new();
        let ccfg = custom_client_config(&pki.ca, offer, None, ALL);
        let t = connect(addr.port(), tls_client(ccfg), &cp).await.unwrap();
        assert_eq!(bytes(t.get_extra_info("alpn_protocol")).as_deref(), want);
        t.write(b"x");
        cp.wait_bytes(1, 5.0).await;
        let n = probes.borrow().len();
        let sp = probes.borrow()[n - 1].clone();
        assert_eq!(
            bytes(sp.transport().get_extra_info("alpn_protocol")).as_deref(),
            want
        );
        t.close();
        cp.wait_lost(5.0).await;
    }
    // No protocol in common: the server refuses the handshake.
    let cp = Probe::new();
    let ccfg = custom_client_config(&pki.ca, &[b"spdy/1"], None, ALL);
    let err = connect(addr.port(), tls_client(ccfg), &cp)
        .await
        .unwrap_err();
    let msg = assert_tls_error(&err, &["NoApplicationProtocol"]);
    println!("{msg}");
    server.close();
}

// ---- client certificates ---------------------------------------------------------------------------

#[tulip::test]
async fn client_certificate_required_and_presented() {
    let _w = support::watchdog("client_cert_ok", 10);
    let pki = Pki::new();
    let client = pki.ca.client_leaf("alice");
    let scfg = custom_server_config(&pki.server, &[], Some(&pki.ca), ALL);
    let (server, probes, addr) = recording_server(tls_server(scfg), |p| Rec::new(p).echo()).await;
    for versions in [ALL, TLS12] {
        let cp = Probe::new();
        let ccfg = custom_client_config(&pki.ca, &[], Some(&client), versions);
        let t = connect(addr.port(), tls_client(ccfg), &cp).await.unwrap();
        t.write(b"me");
        cp.wait_bytes(2, 5.0).await;
        let sp = probes.borrow().last().unwrap().clone();
        let st = sp.transport();
        assert_eq!(
            certs(st.get_extra_info("peercert")).unwrap(),
            vec![client.der.to_vec()],
            "the server sees the client's chain"
        );
        assert_eq!(
            certs(t.get_extra_info("peercert")).unwrap(),
            vec![pki.server.der.to_vec()]
        );
        t.close();
        assert_eq!(cp.wait_lost(5.0).await, None);
        assert_eq!(sp.wait_lost(5.0).await, None);
    }
    server.close();
}

#[tulip::test]
async fn client_certificate_required_and_missing_fails_with_a_clear_error() {
    let _w = support::watchdog("client_cert_missing", 10);
    capture_logs();
    let pki = Pki::new();
    let scfg = custom_server_config(&pki.server, &[], Some(&pki.ca), ALL);
    let (server, probes, addr) = recording_server(tls_server(scfg), |p| Rec::new(p).echo()).await;

    // TLS 1.2: the server's refusal comes before the client's handshake is done.
    let cp = Probe::new();
    let ccfg = custom_client_config(&pki.ca, &[], None, TLS12);
    let err = connect(addr.port(), tls_client(ccfg).local_addr(own_ip(41)), &cp)
        .await
        .unwrap_err();
    let msg = assert_tls_error(&err, &["handshake", "alert"]);
    println!("TLS 1.2 client: {msg}");
    assert!(cp.events().is_empty());
    let line = wait_log("127.0.0.41:", 5.0).await;
    println!("TLS 1.2 server log: {line}");
    assert!(line.to_lowercase().contains("certificate"), "{line}");

    // TLS 1.3: the client is done with its handshake when the server refuses it, so
    // create_connection may succeed; the refusal then arrives as connection_lost's error.
    let kept = Kept::default();
    let cp = Probe::new();
    let proto = kept.protocol(Rec::new(&cp));
    let ccfg = custom_client_config(&pki.ca, &[], None, ALL);
    let r = tulip::create_connection(
        move || proto,
        "127.0.0.1",
        addr.port(),
        tls_client(ccfg).local_addr(own_ip(42)),
    )
    .await;
    let msg = match r {
        Err(e) => assert_tls_error(&e, &["alert", "CertificateRequired"]),
        Ok((_t, _)) => {
            assert_eq!(cp.wait_lost(5.0).await, Some(io::ErrorKind::InvalidData));
            assert!(kept.tls.get());
            assert_stream_order(&cp.events());
            kept.message()
        }
    };
    println!("TLS 1.3 client: {msg}");
    assert!(msg.contains("CertificateRequired"), "{msg}");
    let line = wait_log("127.0.0.42:", 5.0).await;
    println!("TLS 1.3 server log: {line}");
    // Neither server protocol ever started.
    for sp in wait_probes(&probes, 2, 5.0).await {
        assert!(sp.events().is_empty(), "{:?}", sp.events());
    }
    server.close();
}

// ---- 32 MiB under flow control ------------------------------------------------------------------

#[tulip::test]
async fn thirty_two_mib_with_a_pausing_reader_arrive_intact_and_memory_stays_bounded() {
    let _w = support::watchdog("bulk_32mib", 30);
    const TOTAL: usize = 32 * MIB;
    let pki = Pki::new();
    // The server pauses reading for 150 ms at 4, 12, 20 and 28 MiB.
    let pauses: Rc<RefCell<Vec<(usize, usize)>>> = Rc::default();
    let ps = pauses.clone();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), move |p| {
        let next = Rc::new(Cell::new(4 * MIB));
        let (p2, ps) = (p.clone(), ps.clone());
        Rec::new(p).on_data(move |t, _| {
            let got = p2.received_len();
            if got >= next.get() {
                next.set(next.get() + 8 * MIB);
                t.pause_reading();
                assert!(!t.is_reading());
                let (t, p3, ps) = (t.clone(), p2.clone(), ps.clone());
                tulip::get_running_loop().call_later(Duration::from_millis(150), move || {
                    ps.borrow_mut().push((got, p3.received_len()));
                    t.resume_reading();
                });
            }
        })
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    let (low, high) = t.get_write_buffer_limits();
    let mut src = ByteStream::new(0x5eed);
    let mut rng = Rng::new(42);
    let mut sum = Checksum::default();
    let (mut sent, mut max_buf) = (0, 0);
    while sent < TOTAL {
        if cp.paused.get() {
            cp.wait_resumed(10.0).await;
        }
        let n = rng.range(1, 64 * KIB).min(TOTAL - sent);
        let chunk = src.take(n);
        sum.update(&chunk);
        t.write(&chunk);
        sent += n;
        max_buf = max_buf.max(t.get_write_buffer_size());
    }
    t.close();
    assert_eq!(cp.wait_lost(20.0).await, None);
    let sp = wait_probes(&probes, 1, 1.0).await[0].clone();
    assert_eq!(sp.wait_lost(20.0).await, None);
    assert_eq!(sp.received_len(), TOTAL);
    let mut got = Checksum::default();
    got.update(&sp.received());
    assert_eq!(got.finish(), sum.finish(), "every byte, in order");
    // The writer was held back: pause_writing came over the high-water mark, and the
    // buffer never grew past it by more than one write.
    let ce = cp.events();
    assert_stream_order(&ce);
    assert!(cp.count(|e| *e == Event::PW) >= 1, "no pause_writing");
    for (pause, size) in cp.flow_sizes.borrow().iter() {
        if *pause {
            assert!(*size > high, "PW at {size} <= high {high}");
        } else {
            assert!(*size <= low, "RW at {size} > low {low}");
        }
    }
    assert!(
        max_buf < high + 64 * KIB + 4 * KIB,
        "write buffer reached {max_buf}"
    );
    // The reader's pauses held: little arrived while paused (at most the rest of one read).
    let pauses = pauses.borrow();
    assert_eq!(pauses.len(), 4, "{pauses:?}");
    for (at, at_resume) in pauses.iter() {
        assert!(
            at_resume - at <= 300 * KIB,
            "{} bytes arrived while paused",
            at_resume - at
        );
    }
    let se = sp.events();
    assert_stream_order(&se);
    assert_eq!(se[se.len() - 2], Event::ER);
    server.close();
}

#[tulip::test]
async fn eight_mib_through_tls_streams_to_a_slow_reader() {
    let _w = support::watchdog("bulk_streams", 30);
    const TOTAL: usize = 8 * MIB;
    let pki = Pki::new();
    let result: Rc<RefCell<Option<(u64, u64)>>> = Rc::default();
    let res = result.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, w: tulip::StreamWriter| {
            let res = res.clone();
            async move {
                let mut sum = Checksum::default();
                let mut reads = 0;
                loop {
                    let d = r.read(32 * KIB).await?;
                    if d.is_empty() {
                        break;
                    }
                    sum.update(&d);
                    reads += 1;
                    if reads % 16 == 0 {
                        tulip::sleep(Duration::from_millis(3)).await;
                    }
                }
                *res.borrow_mut() = Some(sum.finish());
                w.write(b"done");
                w.close();
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    let (_, high) = w.transport().get_write_buffer_limits();
    let mut src = ByteStream::new(77);
    let mut rng = Rng::new(78);
    let mut sum = Checksum::default();
    let (mut sent, mut max_buf, mut paused) = (0, 0, 0);
    while sent < TOTAL {
        let n = rng.range(1, 64 * KIB).min(TOTAL - sent);
        let chunk = src.take(n);
        sum.update(&chunk);
        w.write(&chunk);
        sent += n;
        max_buf = max_buf.max(w.transport().get_write_buffer_size());
        if w.transport().get_write_buffer_size() > high {
            paused += 1;
        }
        w.drain().await.unwrap();
    }
    // No half-close with TLS: close (close_notify) is the end of the data.
    w.close();
    // The server answers with "done" only after reading everything; the client closed,
    // so the answer may or may not arrive. What matters: the server got every byte.
    let _ = r.read_to_eof().await;
    let until = Instant::now() + Duration::from_secs(20);
    while result.borrow().is_none() {
        assert!(Instant::now() < until, "the server never saw the end");
        tulip::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(result.borrow().unwrap(), sum.finish());
    assert!(paused > 0, "the slow reader never held the writer back");
    assert!(
        max_buf < high + 64 * KIB + 4 * KIB,
        "write buffer reached {max_buf}"
    );
    server.close();
}

#[tulip::test]
async fn one_write_far_larger_than_rustls_buffers_arrives_whole() {
    // rustls refuses plaintext past 64 KiB of unsent records by default; one write of
    // 4 MiB must still go out whole (the raw transport buffers; pause_writing follows).
    let _w = support::watchdog("one_big_write", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_made(|t| t.write(b"hi"))
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    cp.wait_bytes(2, 5.0).await;
    let big = ByteStream::new(9).take(4 * MIB);
    t.write(&big);
    assert!(
        cp.paused.get(),
        "one big write goes over the high-water mark"
    );
    assert!(t.get_write_buffer_size() > t.get_write_buffer_limits().1);
    cp.wait_resumed(10.0).await;
    t.close();
    assert_eq!(cp.wait_lost(10.0).await, None);
    let sp = wait_probes(&probes, 1, 1.0).await[0].clone();
    assert_eq!(sp.wait_lost(10.0).await, None);
    assert_eq!(sp.received_len(), 4 * MIB, "bytes lost in one 4 MiB write");
    assert!(sp.received() == big);
    server.close();
}

#[tulip::test]
async fn one_write_larger_than_64_kib_through_streams_arrives_whole() {
    let _w = support::watchdog("one_big_stream_write", 10);
    let pki = Pki::new();
    let got: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, w: tulip::StreamWriter| {
            let g = g.clone();
            async move {
                w.write(b"hi\n");
                let all = r.read_to_eof().await?;
                *g.borrow_mut() = Some(all);
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    assert_eq!(r.readline().await.unwrap(), b"hi\n");
    let big = ByteStream::new(1).take(MIB + 7);
    w.write(&big);
    w.drain().await.unwrap();
    w.close();
    w.wait_closed().await.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while got.borrow().is_none() {
        assert!(Instant::now() < until, "the server never saw the end");
        tulip::sleep(Duration::from_millis(2)).await;
    }
    assert!(got.borrow().as_deref() == Some(&big[..]));
    server.close();
}

/// Writes `n` × 60 KiB right after the handshake, closes at once, and returns what the
/// server got and how its connection ended.
async fn write_then_close_at_once(
    scfg: Arc<rustls::ServerConfig>,
    ccfg: Arc<rustls::ClientConfig>,
    n: usize,
) -> (bool, Option<io::ErrorKind>, usize) {
    let (server, probes, addr) = recording_server(tls_server(scfg), Rec::new).await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(ccfg), &cp).await.unwrap();
    let mut src = ByteStream::new(11);
    let mut sent = Vec::new();
    for _ in 0..n {
        let c = src.take(60 * KIB);
        t.write(&c);
        sent.extend_from_slice(&c);
    }
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    let sp = wait_probes(&probes, 1, 1.0).await[0].clone();
    let kind = sp.wait_lost(5.0).await;
    assert_stream_order(&sp.events());
    server.close();
    (sp.received() == sent, kind, sp.received_len())
}

#[tulip::test]
async fn write_then_close_right_after_the_handshake_loses_nothing() {
    // close() must not stop reading at once: the server's TLS 1.3 session tickets arrive
    // just after the client's handshake is done, and closing a socket with unread data
    // makes the kernel send RST, which destroys what the peer has not read yet.
    let _w = support::watchdog("write_close_at_once", 10);
    let pki = Pki::new();
    let (same, kind, got) =
        write_then_close_at_once(pki.server_config(), pki.client_config(), 16).await;
    assert_eq!(
        (got, kind),
        (16 * 60 * KIB, None),
        "data lost, connection reset"
    );
    assert!(same);
}

#[tulip::test]
async fn write_then_close_right_after_the_handshake_without_post_handshake_messages() {
    // The same with nothing unread at the client (TLS 1.2, or no TLS 1.3 tickets): all of
    // it arrives, then the close_notify.
    let _w = support::watchdog("write_close_at_once_ok", 10);
    let pki = Pki::new();
    let ccfg = custom_client_config(&pki.ca, &[], None, TLS12);
    let r = write_then_close_at_once(pki.server_config(), ccfg, 16).await;
    assert_eq!(r, (true, None, 16 * 60 * KIB));
    let mut scfg = (*custom_server_config(&pki.server, &[], None, ALL)).clone();
    scfg.send_tls13_tickets = 0;
    let r = write_then_close_at_once(Arc::new(scfg), pki.client_config(), 16).await;
    assert_eq!(r, (true, None, 16 * 60 * KIB));
}

#[tulip::test]
async fn pause_reading_inside_data_received_stops_delivery_at_once() {
    let _w = support::watchdog("pause_inside_data_received", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_data(|t, _| t.pause_reading())
    })
    .await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    const TOTAL: usize = 512 * KIB;
    let mut src = ByteStream::new(5);
    for _ in 0..TOTAL / (16 * KIB) {
        t.write(&src.take(16 * KIB));
    }
    let sp = wait_probes(&probes, 1, 5.0).await[0].clone();
    let mut seen = 0;
    while sp.received_len() < TOTAL {
        sp.wait_for(5.0, "a data_received", |p| {
            p.count(|e| matches!(e, Event::DR(_))) > seen
        })
        .await;
        tulip::sleep(Duration::from_millis(5)).await;
        let drs = sp.count(|e| matches!(e, Event::DR(_)));
        assert_eq!(
            drs,
            seen + 1,
            "data_received after pause_reading: {:?}",
            sp.events()
        );
        seen = drs;
        sp.transport().resume_reading();
    }
    t.close();
    cp.wait_lost(5.0).await;
    server.close();
}

// ---- STARTTLS ------------------------------------------------------------------------------------

#[tulip::test]
async fn starttls_with_the_client_hello_sent_with_the_command_in_one_write() {
    let _w = support::watchdog("starttls_early_hello", 10);
    let pki = Pki::new();
    let scfg = pki.server_config();
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let sn = seen.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, mut w: tulip::StreamWriter| {
            let (scfg, sn) = (scfg.clone(), sn.clone());
            async move {
                assert_eq!(r.readline().await?, b"STARTTLS\n");
                // Let the ClientHello sit in the reader's buffer for sure.
                tulip::sleep(Duration::from_millis(50)).await;
                assert!(w.get_extra_info("cipher").is_none());
                w.start_tls(&mut r, TlsOptions::server(scfg)).await?;
                sn.borrow_mut()
                    .push(text(w.get_extra_info("server_hostname")).unwrap_or_default());
                sn.borrow_mut()
                    .push(text(w.get_extra_info("protocol_version")).unwrap_or_default());
                let line = r.readline().await?;
                w.write(&line.to_ascii_uppercase());
                w.drain().await?;
                w.close();
                w.wait_closed().await?;
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let ccfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut sock = blocking(TcpStream::connect(addr)?);
        let mut conn =
            rustls::ClientConnection::new(ccfg, "localhost".try_into().unwrap()).unwrap();
        let mut first = b"STARTTLS\n".to_vec();
        while conn.wants_write() {
            conn.write_tls(&mut first)?;
        }
        assert!(first.len() > 100, "a ClientHello follows the command");
        sock.write_all(&first)?; // one write: no waiting for a "go ahead"
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        s.write_all(b"secret\n")?;
        let line = read_line(&mut s)?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)?; // Ok only after a close_notify
        Ok((line, rest))
    });
    let (line, rest) = join_thread(h, 5.0).await.unwrap();
    assert_eq!(line, b"SECRET\n");
    assert!(rest.is_empty());
    let seen = seen.borrow();
    assert_eq!(seen[0], "localhost");
    assert!(seen[1].starts_with("TLSv1_"), "{}", seen[1]);
    server.close();
}

#[tulip::test]
async fn start_tls_on_a_protocol_keeps_the_protocol_without_a_second_connection_made() {
    let _w = support::watchdog("start_tls_protocol", 10);
    let pki = Pki::new();
    let scfg = pki.server_config();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, mut w: tulip::StreamWriter| {
            let scfg = scfg.clone();
            async move {
                assert_eq!(r.readline().await?, b"STARTTLS\n");
                w.write(b"GO\n");
                w.start_tls(&mut r, TlsOptions::server(scfg)).await?;
                w.write(b"encrypted hello\n");
                let line = r.readline().await?;
                w.write(&line);
                w.drain().await?;
                w.close();
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let cp = Probe::new();
    let plain = connect(port, ConnectOptions::new(), &cp).await.unwrap();
    plain.write(b"STARTTLS\n");
    cp.wait_bytes(3, 5.0).await;
    assert_eq!(cp.received(), b"GO\n");
    let t = tulip::start_tls(
        &plain,
        TlsOptions::client(pki.client_config()).server_hostname("localhost"),
        b"",
    )
    .await
    .unwrap();
    assert!(t.get_extra_info("cipher").is_some());
    assert!(
        plain.get_extra_info("cipher").is_none(),
        "the raw transport stays raw"
    );
    t.write(b"echo me\n");
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert_eq!(cp.received(), b"GO\nencrypted hello\necho me\n");
    let ev = cp.events();
    assert_stream_order(&ev);
    assert_eq!(cp.count(|e| *e == Event::CM), 1);
    assert_eq!(
        ev[ev.len() - 2],
        Event::ER,
        "the server's close_notify: {ev:?}"
    );
    server.close();
}

/// A plain stream server that upgrades with `StreamWriter::start_tls` after "STARTTLS\n"
/// and a "GO\n", recording how its `start_tls` ended ("ok" or the error).
async fn starttls_server(opts: TlsOptions) -> (Server, Outcome<()>) {
    let outcome: Outcome<()> = Rc::default();
    let out = outcome.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, mut w: tulip::StreamWriter| {
            let (opts, out) = (opts.clone(), out.clone());
            async move {
                r.readline().await?;
                w.write(b"GO\n");
                let res = w.start_tls(&mut r, opts).await;
                *out.borrow_mut() = Some(res.map_err(|e| (e.kind(), e.to_string())));
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    (server, outcome)
}

#[tulip::test]
async fn start_tls_against_an_untrusted_server_fails_with_a_tls_error() {
    let _w = support::watchdog("start_tls_untrusted", 10);
    let stranger = Leaf::self_signed(&["localhost"]);
    let scfg = tulip::tls::server_config(stranger.chain(), stranger.key()).unwrap();
    let (server, _outcome) = starttls_server(TlsOptions::server(scfg)).await;
    let port = server.local_addr().unwrap().port();
    let (mut r, mut w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"STARTTLS\n");
    assert_eq!(r.readline().await.unwrap(), b"GO\n");
    let err = w
        .start_tls(
            &mut r,
            TlsOptions::client(Pki::new().client_config()).server_hostname("localhost"),
        )
        .await
        .unwrap_err();
    assert_tls_error(&err, &["UnknownIssuer"]);
    server.close();
}

#[tulip::test]
async fn server_side_start_tls_returns_the_handshake_failure() {
    let _w = support::watchdog("server_start_tls_failure", 10);
    let stranger = Leaf::self_signed(&["localhost"]);
    let scfg = tulip::tls::server_config(stranger.chain(), stranger.key()).unwrap();
    let (server, outcome) = starttls_server(TlsOptions::server(scfg)).await;
    let port = server.local_addr().unwrap().port();
    let (mut r, mut w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"STARTTLS\n");
    assert_eq!(r.readline().await.unwrap(), b"GO\n");
    let err = w
        .start_tls(
            &mut r,
            TlsOptions::client(Pki::new().client_config()).server_hostname("localhost"),
        )
        .await
        .unwrap_err();
    assert_tls_error(&err, &["UnknownIssuer"]);
    // The server's start_tls must end too, with the client's alert.
    let until = Instant::now() + Duration::from_secs(3);
    while outcome.borrow().is_none() {
        assert!(
            Instant::now() < until,
            "the server's start_tls never returned after the handshake failed"
        );
        tulip::sleep(Duration::from_millis(5)).await;
    }
    let (kind, msg) = outcome.borrow().clone().unwrap().unwrap_err();
    assert_eq!(kind, io::ErrorKind::InvalidData, "{msg}");
    assert!(msg.contains("UnknownCA"), "{msg}");
    server.close();
}

#[tulip::test]
async fn server_side_start_tls_times_out() {
    let _w = support::watchdog("server_start_tls_timeout", 10);
    let pki = Pki::new();
    let (server, outcome) = starttls_server(
        TlsOptions::server(pki.server_config()).handshake_timeout(Duration::from_millis(200)),
    )
    .await;
    let port = server.local_addr().unwrap().port();
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"STARTTLS\n");
    assert_eq!(r.readline().await.unwrap(), b"GO\n");
    // ...and then silence. The server drops the connection on time,
    let start = Instant::now();
    assert_eq!(r.read_to_eof().await.unwrap(), b"");
    assert!(start.elapsed() < Duration::from_secs(2));
    // and its start_tls says so.
    let until = Instant::now() + Duration::from_secs(3);
    while outcome.borrow().is_none() {
        assert!(
            Instant::now() < until,
            "the server's start_tls never returned after the handshake timed out"
        );
        tulip::sleep(Duration::from_millis(5)).await;
    }
    let (kind, msg) = outcome.borrow().clone().unwrap().unwrap_err();
    assert_eq!(kind, io::ErrorKind::TimedOut, "{msg}");
    server.close();
}

// ---- close_notify ---------------------------------------------------------------------------------

#[tulip::test]
async fn close_sends_close_notify_the_peer_sees_a_clean_end() {
    let _w = support::watchdog("close_notify", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(tls_server(pki.server_config()), |p| {
        Rec::new(p).on_data(|t, d| {
            if d.ends_with(b"bye\n") {
                t.write(b"bye to you\n");
                t.close();
            }
        })
    })
    .await;
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<(Vec<u8>, bool)> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"bye\n")?;
        let mut all = Vec::new();
        // rustls: Ok(0) after close_notify, UnexpectedEof for a bare TCP FIN.
        s.read_to_end(&mut all)?;
        let clean = s
            .conn
            .process_new_packets()
            .is_ok_and(|st| st.peer_has_closed());
        Ok((all, clean))
    });
    let (all, clean) = join_thread(h, 5.0).await.unwrap();
    assert_eq!(all, b"bye to you\n");
    assert!(clean, "the peer saw a close_notify");
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_stream_order(&sp.events());
    server.close();
}

#[tulip::test]
async fn a_tulip_client_closing_sends_close_notify_to_a_rustls_server() {
    let _w = support::watchdog("client_close_notify", 10);
    let pki = Pki::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let scfg = pki.server_config();
    let h = std::thread::spawn(move || -> io::Result<Result<Vec<u8>, io::ErrorKind>> {
        let (sock, _) = l.accept()?;
        let mut s = rustls_server(sock, scfg)?;
        s.write_all(b"hi")?;
        let mut all = Vec::new();
        Ok(s.read_to_end(&mut all).map(|_| all).map_err(|e| e.kind()))
    });
    let cp = Probe::new();
    let t = connect(port, tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    cp.wait_bytes(2, 5.0).await; // the server\'s session tickets came before
    t.write(b"last words");
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert_eq!(
        join_thread(h, 5.0).await.unwrap(),
        Ok(b"last words".to_vec())
    );

    // And abort is a truncation: no close_notify.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let scfg = pki.server_config();
    let h = std::thread::spawn(move || -> io::Result<Result<Vec<u8>, io::ErrorKind>> {
        let (sock, _) = l.accept()?;
        let mut s = rustls_server(sock, scfg)?;
        s.write_all(b"hi")?;
        let mut all = Vec::new();
        Ok(s.read_to_end(&mut all).map(|_| all).map_err(|e| e.kind()))
    });
    let cp = Probe::new();
    let t = connect(port, tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    cp.wait_bytes(2, 5.0).await;
    t.abort();
    assert_eq!(cp.wait_lost(5.0).await, None);
    assert_eq!(
        join_thread(h, 5.0).await.unwrap(),
        Err(io::ErrorKind::UnexpectedEof)
    );
}

#[tulip::test]
async fn close_ends_within_the_shutdown_timeout_when_the_peer_never_answers() {
    // The peer finishes the handshake and then neither reads nor closes: the server's
    // close (close_notify, then waiting for the peer's) is bounded by shutdown_timeout.
    let _w = support::watchdog("shutdown_timeout", 10);
    let pki = Pki::new();
    let (server, probes, addr) = recording_server(
        ServerOptions::new().tls(
            TlsOptions::server(pki.server_config()).shutdown_timeout(Duration::from_millis(200)),
        ),
        |p| Rec::new(p).on_data(|t, _| t.close()),
    )
    .await;
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<()> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"close please")?;
        std::thread::sleep(Duration::from_millis(1500));
        Ok(())
    });
    let sp = wait_probes(&probes, 1, 5.0).await[0].clone();
    sp.wait_for(5.0, "data", |p| p.received_len() > 0).await;
    let start = Instant::now();
    sp.wait_lost(5.0).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_stream_order(&sp.events());
    join_thread(h, 5.0).await.unwrap();
    server.close();
}

#[tulip::test]
async fn streams_see_a_truncation_as_an_unexpected_eof_error_when_close_notify_is_required() {
    let _w = support::watchdog("streams_truncation", 10);
    let pki = Pki::new();
    let outcome: Outcome<Vec<u8>> = Rc::default();
    let out = outcome.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, _w: tulip::StreamWriter| {
            let out = out.clone();
            async move {
                let res = r.read_to_eof().await;
                *out.borrow_mut() = Some(res.map_err(|e| (e.kind(), e.to_string())));
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        strict_tls_server(pki.server_config()),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let cfg = pki.client_config();
    let h = std::thread::spawn(move || -> io::Result<()> {
        let mut s = rustls_client(addr, cfg, "localhost")?;
        s.write_all(b"half a message")?;
        s.flush()?;
        std::thread::sleep(Duration::from_millis(20));
        s.sock.shutdown(std::net::Shutdown::Both)
    });
    join_thread(h, 5.0).await.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while outcome.borrow().is_none() {
        assert!(Instant::now() < until);
        tulip::sleep(Duration::from_millis(2)).await;
    }
    let (kind, msg) = outcome.borrow().clone().unwrap().unwrap_err();
    assert_eq!(kind, io::ErrorKind::UnexpectedEof, "{msg}");
    assert!(msg.contains("close_notify"), "{msg}");
    server.close();
}

#[tulip::test]
async fn server_abort_clients_ends_every_tls_connection_once() {
    let _w = support::watchdog("abort_clients", 10);
    let pki = Pki::new();
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let cp = Probe::new();
        let strict = ConnectOptions::new().tls(
            TlsOptions::client(pki.client_config())
                .server_hostname("localhost")
                .require_close_notify(true),
        );
        let t = connect(addr.port(), strict, &cp).await.unwrap();
        t.write(b"hi");
        cp.wait_bytes(2, 5.0).await;
        clients.push((t, cp));
    }
    assert_eq!(server.connection_count(), 3);
    server.abort_clients();
    for sp in wait_probes(&probes, 3, 1.0).await {
        assert_eq!(sp.wait_lost(5.0).await, None);
        assert_stream_order(&sp.events());
    }
    for (_t, cp) in &clients {
        // A TLS connection cut without close_notify is a truncation for a peer that
        // requires close_notify.
        assert_eq!(cp.wait_lost(5.0).await, Some(io::ErrorKind::UnexpectedEof));
        assert_stream_order(&cp.events());
    }
    server.close();
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
}

#[tulip::test]
async fn server_close_clients_closes_tls_connections_with_close_notify() {
    let _w = support::watchdog("close_clients", 10);
    let pki = Pki::new();
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    t.write(b"hi");
    cp.wait_bytes(2, 5.0).await;
    tulip::timeout(
        Duration::from_secs(5),
        server.shutdown(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_stream_order(&sp.events());
    // A graceful close of a TLS connection is a close_notify: EOF for the client.
    assert_eq!(cp.wait_lost(5.0).await, None, "{:?}", cp.events());
    let ce = cp.events();
    assert_stream_order(&ce);
    assert_eq!(ce[ce.len() - 2], Event::ER, "{ce:?}");
    drop(t);
}

// ---- write_eof, extra info ------------------------------------------------------------------------

// CPython: test_selector_events.py SelectorSslTransportTests.test_write_eof (asyncio raises NotImplementedError)
#[tulip::test]
async fn write_eof_is_not_supported_and_panics_clearly() {
    let _w = support::watchdog("write_eof", 10);
    let pki = Pki::new();
    let (server, _probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let t = connect(addr.port(), tls_client(pki.client_config()), &cp)
        .await
        .unwrap();
    assert!(!t.can_write_eof());
    // The flow-control knobs are the raw transport's.
    t.set_write_buffer_limits(Some(256 * KIB), None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (64 * KIB, 256 * KIB));
    assert!(t.set_write_buffer_limits(Some(1), Some(2)).is_err());
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.is_reading());
    t.pause_reading();
    assert!(!t.is_reading());
    t.resume_reading();
    assert!(t.is_reading());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.write_eof()));
    let payload = r.expect_err("write_eof must panic");
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(
        msg.contains("TLS") && msg.contains("can_write_eof"),
        "{msg}"
    );
    // Nothing broke: the connection still works.
    t.write(b"fine");
    cp.wait_bytes(4, 5.0).await;
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    server.close();
}

#[tulip::test]
async fn extra_info_on_both_sides() {
    let _w = support::watchdog("extra_info", 10);
    let pki = Pki::new();
    let alice = pki.ca.client_leaf("alice");
    let scfg = custom_server_config(&pki.server, &[b"tulip/1"], Some(&pki.ca), ALL);
    let ccfg = custom_client_config(&pki.ca, &[b"tulip/1"], Some(&alice), ALL);
    let (server, probes, addr) =
        recording_server(tls_server(scfg.clone()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    // "localhost" resolves to ::1 and 127.0.0.1; the name is the default server_hostname.
    let rec = Rec::new(&cp);
    let (t, _) = tulip::create_connection(
        move || rec,
        "localhost",
        addr.port(),
        ConnectOptions::new().tls(TlsOptions::client(ccfg.clone())),
    )
    .await
    .unwrap();
    t.write(b"x");
    cp.wait_bytes(1, 5.0).await;
    let st = probes.borrow()[0].transport();

    assert_eq!(
        certs(t.get_extra_info("peercert")).unwrap(),
        vec![pki.server.der.to_vec()]
    );
    assert_eq!(
        certs(st.get_extra_info("peercert")).unwrap(),
        vec![alice.der.to_vec()]
    );
    for tr in [&t, &st] {
        let cipher = text(tr.get_extra_info("cipher")).unwrap();
        assert!(cipher.starts_with("TLS13_"), "{cipher}");
        assert_eq!(
            text(tr.get_extra_info("protocol_version")).unwrap(),
            "TLSv1_3"
        );
        assert_eq!(
            bytes(tr.get_extra_info("alpn_protocol")).unwrap(),
            b"tulip/1"
        );
        assert!(
            matches!(tr.get_extra_info("socket"), Some(ExtraInfo::Socket(s)) if s.as_raw_fd().is_some())
        );
        assert!(tr.get_extra_info("no such key").is_none());
    }
    assert_eq!(
        text(t.get_extra_info("cipher")),
        text(st.get_extra_info("cipher"))
    );
    // The client's name for the server, and the SNI the server got.
    assert_eq!(
        text(t.get_extra_info("server_hostname")).unwrap(),
        "localhost"
    );
    assert_eq!(
        text(st.get_extra_info("server_hostname")).unwrap(),
        "localhost"
    );
    // The configuration in use.
    let sslcontext = |t: &Transport| {
        t.get_extra_info("sslcontext")
            .as_ref()
            .and_then(tulip::tls::TlsConfig::from_extra_info)
    };
    match sslcontext(&t) {
        Some(tulip::tls::TlsConfig::Client(c)) => {
            assert!(Arc::ptr_eq(&c, &ccfg));
        }
        other => panic!("{other:?}"),
    }
    match sslcontext(&st) {
        Some(tulip::tls::TlsConfig::Server(c)) => {
            assert!(Arc::ptr_eq(&c, &scfg));
        }
        other => panic!("{other:?}"),
    }
    // The raw keys come from the socket under TLS.
    assert_eq!(sock_addr(t.get_extra_info("peername")), addr);
    assert_eq!(sock_addr(st.get_extra_info("sockname")), addr);
    assert_eq!(
        sock_addr(t.get_extra_info("sockname")),
        sock_addr(st.get_extra_info("peername"))
    );
    assert_eq!(t.peername().unwrap().as_socket(), Some(addr));
    assert_eq!(st.sockname().unwrap().as_socket(), Some(addr));
    t.close();
    cp.wait_lost(5.0).await;
    server.close();
}

#[tulip::test]
async fn an_ip_host_is_verified_against_the_ip_san_and_sends_no_sni() {
    let _w = support::watchdog("ip_host", 10);
    let pki = Pki::new();
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let t = connect(
        addr.port(),
        ConnectOptions::new().tls(TlsOptions::client(pki.client_config())),
        &cp,
    )
    .await
    .unwrap();
    t.write(b"x");
    cp.wait_bytes(1, 5.0).await;
    assert_eq!(
        text(t.get_extra_info("server_hostname")).unwrap(),
        "127.0.0.1"
    );
    let st = probes.borrow()[0].transport();
    assert_eq!(
        text(st.get_extra_info("server_hostname")),
        None,
        "no SNI for an IP"
    );
    assert!(bytes(t.get_extra_info("alpn_protocol")).is_none());
    t.close();
    cp.wait_lost(5.0).await;
    server.close();
}

#[tulip::test]
async fn tls12_only_client_negotiates_tls12() {
    let _w = support::watchdog("tls12", 10);
    let pki = Pki::new();
    let (server, probes, addr) =
        recording_server(tls_server(pki.server_config()), |p| Rec::new(p).echo()).await;
    let cp = Probe::new();
    let ccfg = custom_client_config(&pki.ca, &[], None, TLS12);
    let t = connect(addr.port(), tls_client(ccfg), &cp).await.unwrap();
    t.write(b"old school");
    cp.wait_bytes(10, 5.0).await;
    assert_eq!(
        text(t.get_extra_info("protocol_version")).unwrap(),
        "TLSv1_2"
    );
    let cipher = text(t.get_extra_info("cipher")).unwrap();
    assert!(cipher.starts_with("TLS_ECDHE_"), "{cipher}");
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    let sp = probes.borrow()[0].clone();
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert_stream_order(&sp.events());
    server.close();
}

#[tulip::test]
async fn the_dangerous_config_connects_to_a_server_nobody_vouches_for() {
    let _w = support::watchdog("dangerous", 10);
    let stranger = Leaf::self_signed(&["somewhere.invalid"]);
    let scfg = tulip::tls::server_config(stranger.chain(), stranger.key()).unwrap();
    let (server, _probes, addr) = recording_server(tls_server(scfg), |p| Rec::new(p).echo()).await;
    // Verification on: refused.
    let cp = Probe::new();
    let err = connect(addr.port(), tls_client(Pki::new().client_config()), &cp)
        .await
        .unwrap_err();
    assert_tls_error(&err, &["UnknownIssuer"]);
    // Verification off: any name goes.
    let cp = Probe::new();
    let t = connect(
        addr.port(),
        ConnectOptions::new().tls(
            TlsOptions::client(
                tulip::tls::dangerous_client_config_without_certificate_verification(),
            )
            .server_hostname("not-the-name.example"),
        ),
        &cp,
    )
    .await
    .unwrap();
    t.write(b"trust me");
    cp.wait_bytes(8, 5.0).await;
    assert_eq!(cp.received(), b"trust me");
    assert_eq!(
        certs(t.get_extra_info("peercert")).unwrap(),
        vec![stranger.der.to_vec()]
    );
    t.close();
    assert_eq!(cp.wait_lost(5.0).await, None);
    server.close();
}
