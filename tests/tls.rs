//! TLS between tulip and tulip (and rustls peers driven by hand in std threads): the call
//! order of protocols on every path (clean close with close_notify, abort, reset, EOF
//! without close_notify, handshake failure), handshake failures and timeouts, garbage
//! instead of TLS, ALPN, client certificates. Flow control is in `tls_flow.rs`, STARTTLS,
//! close_notify and extra info in `tls_close.rs`. Certificates are made with rcgen at test
//! time.
mod proto_support;
mod support;
mod tls_common;
mod tls_support;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use proto_support::*;
use tls_common::*;
use tls_support::*;
use tulip::tls::rustls;
use tulip::{net::ConnectOptions, net::ServerOptions, tls::TlsOptions};

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
