//! TLS: STARTTLS (client and server side, with the ClientHello already buffered),
//! close_notify on every close path, server close/abort of TLS clients, write_eof, extra
//! info, IP hosts, TLS 1.2, the dangerous config. Certificates are made with rcgen at test
//! time.
mod proto_support;
mod support;
mod tls_common;
mod tls_support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto_support::*;
use tls_common::*;
use tls_support::*;
use tulip::tls::rustls;
use tulip::{
    Server, Transport, net::ConnectOptions, net::ServerOptions, tls::TlsOptions,
    transports::ExtraInfo,
};

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
