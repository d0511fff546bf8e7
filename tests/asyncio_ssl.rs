//! CPython's `Lib/test/test_asyncio/test_sslproto.py` (`SslProtoHandshakeTests`,
//! `BaseStartTLS`), translated to tulip's TLS transport over real loopback connections:
//! failures during the handshake, a TLS transport after it closed, `start_tls` on the
//! client and the server side, `BufferedProtocol`s over TLS, a corrupted TLS stream, and no
//! configuration kept alive by a finished connection. The peers are blocking rustls streams
//! in std threads; certificates are made at test time. Each test names the CPython test it
//! comes from. (More of that file, and of `test_ssl.py`, is covered in `tests/tls*.rs`,
//! marked there.)

mod proto_support;
mod support;
mod tls_support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use proto_support::*;
use tls_support::*;
use tulip::tls::rustls;
use tulip::{
    BufferedProtocol, Transport, net::ConnectOptions, net::ServerOptions, tls::TlsOptions,
};

const HELLO: usize = 100 * 1024;

fn tls_client(cfg: Arc<rustls::ClientConfig>) -> ConnectOptions {
    ConnectOptions::new().tls(TlsOptions::client(cfg).server_hostname("localhost"))
}

fn client_opts(pki: &Pki) -> TlsOptions {
    TlsOptions::client(pki.client_config()).server_hostname("localhost")
}

/// A listener and a std thread that accepts one connection and runs `f` on it (blocking).
fn tcp_server<T: Send + 'static>(
    f: impl FnOnce(TcpStream) -> io::Result<T> + Send + 'static,
) -> (u16, JoinHandle<io::Result<T>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept()?;
        f(blocking(s))
    });
    (port, h)
}

/// A TLS server thread: the rustls handshake, then `f`.
fn tls_server_thread<T: Send + 'static>(
    pki: &Pki,
    f: impl FnOnce(ServerStream) -> io::Result<T> + Send + 'static,
) -> (u16, JoinHandle<io::Result<T>>) {
    let cfg = pki.server_config();
    tcp_server(move |s| f(rustls_server(s, cfg)?))
}

fn recv_all<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

async fn connect_tls(port: u16, pki: &Pki, rec: Rec) -> io::Result<Transport> {
    let (t, _) = tulip::create_connection(
        move || rec,
        "127.0.0.1",
        port,
        tls_client(pki.client_config()),
    )
    .await?;
    Ok(t)
}

// ---- SslProtoHandshakeTests ----------------------------------------------------------------

// CPython: test_sslproto.py SslProtoHandshakeTests.test_handshake_timeout_zero (asyncio:
// `ValueError('ssl_handshake_timeout should be a positive number')`; tulip: an
// `InvalidInput` error from the call that would start the handshake)
#[tulip::test]
async fn test_handshake_timeout_zero() {
    let _w = support::watchdog("test_handshake_timeout_zero", 10);
    let pki = Pki::new();
    let (l, addr) = support::listener();
    let p = Probe::new();
    let rec = Rec::new(&p);
    let opts = ConnectOptions::new().tls(client_opts(&pki).handshake_timeout(Duration::ZERO));
    let e = tulip::create_connection(move || rec, "127.0.0.1", addr.port(), opts)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("positive"), "{e}");
    assert!(p.events().is_empty());
    drop(l);
}

// CPython: test_sslproto.py SslProtoHandshakeTests.test_eof_received_waiter: the peer
// closes during the handshake; the connection attempt fails, the protocol hears nothing.
// (asyncio's error is a `ConnectionResetError`; tulip's a `ConnectionAborted` that says
// where it happened.)
#[tulip::test]
async fn test_eof_received_waiter() {
    let _w = support::watchdog("test_eof_received_waiter", 10);
    let pki = Pki::new();
    let (port, h) = tcp_server(|mut s| {
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?; // the ClientHello has begun
        s.shutdown(Shutdown::Write)
    });
    let p = Probe::new();
    let e = connect_tls(port, &pki, Rec::new(&p)).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e:?}");
    assert!(e.to_string().contains("during the TLS handshake"), "{e}");
    assert!(p.events().is_empty(), "{:?}", p.events());
    join_thread(h, 5.0).await.unwrap();
}

// CPython: test_sslproto.py SslProtoHandshakeTests.test_connection_lost: the connection is
// lost (reset) during the handshake: the attempt fails with that error, it does not hang.
#[tulip::test]
async fn test_connection_lost() {
    let _w = support::watchdog("test_connection_lost", 10);
    let pki = Pki::new();
    let (port, h) = tcp_server(|mut s| {
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        set_rst_on_close(&s);
        Ok(())
    });
    let p = Probe::new();
    let e = tulip::timeout(
        Duration::from_secs(5),
        connect_tls(port, &pki, Rec::new(&p)),
    )
    .await
    .expect("the handshake hung after a reset")
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}");
    assert!(p.events().is_empty());
    join_thread(h, 5.0).await.unwrap();
}

// CPython: test_sslproto.py SslProtoHandshakeTests.test_get_extra_info_on_closed_connection
#[tulip::test]
async fn test_get_extra_info_on_closed_connection() {
    let _w = support::watchdog("test_get_extra_info_on_closed_connection", 10);
    let pki = Pki::new();
    let (port, h) = tls_server_thread(&pki, |mut s| {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
    });
    let p = Probe::new();
    let t = connect_tls(port, &pki, Rec::new(&p)).await.unwrap();
    assert!(t.get_extra_info("socket").is_some());
    assert!(t.get_extra_info("cipher").is_some());
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert!(t.get_extra_info("socket").is_none(), "closed: no socket");
    join_thread(h, 5.0).await.unwrap();
}

// CPython: test_sslproto.py SslProtoHandshakeTests.test_set_new_app_protocol
#[tulip::test]
async fn test_set_new_app_protocol() {
    let _w = support::watchdog("test_set_new_app_protocol", 10);
    let pki = Pki::new();
    let (port, h) = tls_server_thread(&pki, |mut s| {
        s.write_all(b"one\n")?;
        read_line(&mut s)?;
        s.write_all(b"two\n")?;
        send_close_notify(&mut s)
    });
    let p1 = Probe::new();
    let t = connect_tls(port, &pki, Rec::new(&p1)).await.unwrap();
    p1.wait_bytes(4, 5.0).await;
    let p2 = Probe::new();
    t.set_protocol(Rec::new(&p2));
    assert!(
        t.get_protocol::<Rec>()
            .unwrap()
            .with(|r: &mut Rec| r.probe.events().is_empty())
    );
    t.write(b"next\n");
    assert_eq!(p2.wait_lost(5.0).await, None);
    assert_eq!(p2.received(), b"two\n");
    assert_eq!(p1.received(), b"one\n");
    assert_eq!(p1.count_cl(), 0, "the old protocol hears nothing more");
    join_thread(h, 5.0).await.unwrap();
}

// CPython: test_sslproto.py SslProtoHandshakeTests.test_data_received_after_closing: data
// that arrives after `close` is not delivered, and nothing fails.
#[tulip::test]
async fn test_data_received_after_closing() {
    let _w = support::watchdog("test_data_received_after_closing", 10);
    let pki = Pki::new();
    let go = Arc::new(std::sync::Barrier::new(2));
    let g2 = go.clone();
    let (port, h) = tls_server_thread(&pki, move |mut s| {
        g2.wait();
        // Written after the client closed: never delivered.
        s.write_all(b"late data")?;
        s.flush()?;
        // Read the client's close_notify (unread data would make the close a reset).
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        Ok(())
    });
    let seen = capture_exceptions();
    let p = Probe::new();
    let t = connect_tls(port, &pki, Rec::new(&p)).await.unwrap();
    t.close();
    go.wait();
    assert_eq!(p.wait_lost(5.0).await, None);
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(p.received_len(), 0);
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    join_thread(h, 5.0).await.unwrap();
}

// CPython: test_sslproto.py SslProtoHandshakeTests.test_write_after_closing: a write after
// `close` is dropped, without an error.
#[tulip::test]
async fn test_write_after_closing() {
    let _w = support::watchdog("test_write_after_closing", 10);
    let pki = Pki::new();
    let (port, h) = tls_server_thread(&pki, |mut s| {
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        Ok(got)
    });
    let seen = capture_exceptions();
    let p = Probe::new();
    let t = connect_tls(port, &pki, Rec::new(&p)).await.unwrap();
    t.write(b"before");
    t.close();
    t.write(b"after");
    assert_eq!(p.wait_lost(5.0).await, None);
    t.write(b"after lost");
    assert_eq!(join_thread(h, 5.0).await.unwrap(), b"before");
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// ---- BaseStartTLS --------------------------------------------------------------------------

/// A `BufferedProtocol` with a buffer of `size` bytes, recording into a probe.
struct Buf {
    probe: Probe,
    buf: Vec<u8>,
}

impl BufferedProtocol for Buf {
    fn connection_made(&mut self, t: &Transport) {
        self.probe.log.borrow_mut().push(Event::CM);
        *self.probe.transport.borrow_mut() = Some(t.clone());
    }
    fn get_buffer(&mut self, _hint: usize) -> &mut [u8] {
        &mut self.buf
    }
    fn buffer_updated(&mut self, n: usize) {
        self.probe.log.borrow_mut().push(Event::BU(n));
        self.probe
            .data
            .borrow_mut()
            .extend_from_slice(&self.buf[..n]);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.probe
            .log
            .borrow_mut()
            .push(Event::CL(exc.map(|e| e.kind())));
        if !self.probe.lost.done() {
            self.probe.lost.set_result(());
        }
    }
}

// CPython: test_sslproto.py BaseStartTLS.test_buf_feed_data: a `BufferedProtocol` gets all
// of what arrives whatever its buffer's size, over TLS; an empty buffer is an error
// (asyncio: `RuntimeError('get_buffer() returned an empty buffer')`).
#[tulip::test]
async fn test_buf_feed_data() {
    let _w = support::watchdog("test_buf_feed_data", 10);
    let pki = Pki::new();
    for (size, data) in [
        (1, &b"12345"[..]),
        (2, b"12345"),
        (2, b"1234"),
        (4, b"1234"),
        (100, b"12345"),
        (0, b"12345"),
    ] {
        let (port, h) = tls_server_thread(&pki, move |mut s| {
            s.write_all(data)?;
            send_close_notify(&mut s)
        });
        let probe = Probe::new();
        let proto = Buf {
            probe: probe.clone(),
            buf: vec![0; size],
        };
        let (_t, _) = tulip::create_connection(
            move || tulip::Buffered(proto),
            "127.0.0.1",
            port,
            tls_client(pki.client_config()),
        )
        .await
        .unwrap();
        let lost = probe.wait_lost(5.0).await;
        if size == 0 {
            assert_eq!(lost, Some(io::ErrorKind::InvalidInput), "size 0");
            assert_eq!(probe.received_len(), 0);
        } else {
            assert_eq!(lost, None, "size {size}");
            assert_eq!(probe.received(), data, "size {size}");
        }
        let _ = join_thread(h, 5.0).await;
    }
}

/// The server of the client-side `start_tls` tests: `HELLO` in plain text, the handshake,
/// then `steps` — for each, send its byte and receive `HELLO` — then a TCP shutdown
/// without `close_notify` (as Python's `sock.shutdown(SHUT_RDWR)`).
fn start_tls_server(pki: &Pki, steps: &'static [u8]) -> (u16, JoinHandle<io::Result<()>>) {
    let cfg = pki.server_config();
    tcp_server(move |mut sock| {
        assert_eq!(recv_all(&mut sock, HELLO)?.len(), HELLO);
        let mut s = rustls_server(sock, cfg)?;
        for b in steps {
            s.write_all(&[*b])?;
            s.flush()?;
            assert_eq!(recv_all(&mut s, HELLO)?.len(), HELLO);
        }
        s.sock.shutdown(Shutdown::Both)
    })
}

// CPython: test_sslproto.py BaseStartTLS.test_start_tls_client_reg_proto_1, with its
// check that no TLS configuration is kept alive once the connection is gone.
#[tulip::test]
async fn test_start_tls_client_reg_proto_1() {
    let _w = support::watchdog("test_start_tls_client_reg_proto_1", 10);
    let pki = Pki::new();
    let (port, h) = start_tls_server(&pki, b"O");
    let ccfg = pki.client_config();
    let p = Probe::new();
    let rec = Rec::new(&p);
    let (tr, _) = tulip::create_connection(move || rec, "127.0.0.1", port, Default::default())
        .await
        .unwrap();
    tr.write(&vec![b'1'; HELLO]);
    let opts = TlsOptions::client(ccfg.clone()).server_hostname("localhost");
    let new_tr = tulip::start_tls(&tr, opts, b"").await.unwrap();
    p.wait_bytes(1, 5.0).await;
    assert_eq!(p.received(), b"O");
    new_tr.write(&vec![b'1'; HELLO]);
    p.wait_for(5.0, "eof_received", |p| p.events().contains(&Event::ER))
        .await;
    new_tr.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(p.count(|e| *e == Event::CM), 1, "connection_made once");
    join_thread(h, 5.0).await.unwrap();
    drop((tr, new_tr, p));
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        Arc::strong_count(&ccfg),
        1,
        "the client config was not released"
    );
}

// CPython: test_sslproto.py BaseStartTLS.test_create_connection_memory_leak: no garbage
// is left for a TLS client from `create_connection`, even when the protocol stores its
// transport.
#[tulip::test]
async fn test_create_connection_memory_leak() {
    let _w = support::watchdog("test_create_connection_memory_leak", 10);
    let pki = Pki::new();
    let (port, h) = tls_server_thread(&pki, |mut s| {
        s.write_all(b"O")?;
        s.flush()?;
        assert_eq!(recv_all(&mut s, HELLO)?.len(), HELLO);
        s.sock.shutdown(Shutdown::Both)
    });
    let ccfg = pki.client_config();
    let p = Probe::new(); // stores the transport `connection_made` gets
    let rec = Rec::new(&p);
    let (tr, _) =
        tulip::create_connection(move || rec, "127.0.0.1", port, tls_client(ccfg.clone()))
            .await
            .unwrap();
    p.wait_bytes(1, 5.0).await;
    tr.write(&vec![b'1'; HELLO]);
    p.wait_for(5.0, "eof_received", |p| p.events().contains(&Event::ER))
        .await;
    tr.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    join_thread(h, 5.0).await.unwrap();
    // The test lets go of everything; what the protocol holds must go with the transport.
    drop((tr, p));
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        Arc::strong_count(&ccfg),
        1,
        "the client config was not released"
    );
}

// CPython: test_sslproto.py BaseStartTLS.test_start_tls_client_buf_proto_1: a
// `BufferedProtocol` with a 1-byte buffer through `start_tls`, then replaced by a
// `Protocol` on the TLS transport; `connection_made` once in all.
#[tulip::test]
async fn test_start_tls_client_buf_proto_1() {
    let _w = support::watchdog("test_start_tls_client_buf_proto_1", 10);
    let pki = Pki::new();
    let (port, h) = start_tls_server(&pki, b"O2");
    let p1 = Probe::new();
    let first = Buf {
        probe: p1.clone(),
        buf: vec![0; 1],
    };
    let (tr, _) = tulip::create_connection(
        move || tulip::Buffered(first),
        "127.0.0.1",
        port,
        Default::default(),
    )
    .await
    .unwrap();
    tr.write(&vec![b'1'; HELLO]);
    let new_tr = tulip::start_tls(&tr, client_opts(&pki), b"").await.unwrap();
    p1.wait_bytes(1, 5.0).await;
    assert_eq!(p1.received(), b"O");
    assert_eq!(p1.events(), [Event::CM, Event::BU(1)]);
    new_tr.write(&vec![b'1'; HELLO]);
    let p2 = Probe::new();
    new_tr.set_protocol(Rec::new(&p2));
    p2.wait_bytes(1, 5.0).await;
    assert_eq!(p2.received(), b"2");
    new_tr.write(&vec![b'1'; HELLO]);
    p2.wait_for(5.0, "eof_received", |p| p.events().contains(&Event::ER))
        .await;
    new_tr.close();
    assert_eq!(p2.wait_lost(5.0).await, None);
    let made = p1.count(|e| *e == Event::CM) + p2.count(|e| *e == Event::CM);
    assert_eq!(made, 1, "start_tls calls no connection_made");
    join_thread(h, 5.0).await.unwrap();
}

// CPython: test_sslproto.py BaseStartTLS.test_start_tls_server_1: a server protocol writes
// `HELLO` in plain text, upgrades its connection with `start_tls(server_side=True)`, and
// answers over TLS once `HELLO` came back.
#[tulip::test]
async fn test_start_tls_server_1() {
    let _w = support::watchdog("test_start_tls_server_1", 10);
    const ANSWER: &[u8] = b"answer";
    let pki = Pki::new();
    let p = Probe::new();
    let tls_tr: Rc<RefCell<Option<Transport>>> = Rc::default();
    let (p2, tt) = (p.clone(), tls_tr.clone());
    let server = tulip::create_server(
        move || {
            let (tt, p3) = (tt.clone(), p2.clone());
            let answered = Rc::new(std::cell::Cell::new(false));
            Rec::new(&p2).on_data(move |_, _| {
                // The answer goes through the TLS transport (asyncio's `replace_transport`).
                let t = tt.borrow().clone();
                if let Some(t) = t {
                    if p3.received_len() >= HELLO && !answered.replace(true) {
                        t.write(ANSWER);
                    }
                }
            })
        },
        "127.0.0.1",
        0,
        ServerOptions::new(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let ccfg = pki.client_config();
    let client = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut sock = blocking(TcpStream::connect(addr)?);
        assert_eq!(recv_all(&mut sock, HELLO)?.len(), HELLO);
        let conn = rustls::ClientConnection::new(ccfg, "localhost".try_into().unwrap())
            .map_err(io::Error::other)?;
        let mut s = rustls::StreamOwned::new(conn, sock);
        s.write_all(&vec![b'1'; HELLO])?;
        let answer = recv_all(&mut s, ANSWER.len())?;
        s.sock.shutdown(Shutdown::Both)?;
        Ok(answer)
    });
    p.wait_for(5.0, "connection_made", |p| !p.events().is_empty())
        .await;
    let tr = p.transport();
    tr.write(&vec![b'h'; HELLO]);
    assert_eq!(p.received_len(), 0);
    let new_tr = tulip::start_tls(&tr, TlsOptions::server(pki.server_config()), b"")
        .await
        .unwrap();
    *tls_tr.borrow_mut() = Some(new_tr.clone());
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(p.received(), vec![b'1'; HELLO]);
    new_tr.close();
    assert_eq!(join_thread(client, 5.0).await.unwrap(), ANSWER);
    server.close();
    server.wait_closed().await;
}

// CPython: test_sslproto.py BaseStartTLS.test_start_tls_client_corrupted_ssl: plain bytes
// injected into the TLS stream make the stream's next read fail with a TLS error.
#[tulip::test]
async fn test_start_tls_client_corrupted_ssl() {
    let _w = support::watchdog("test_start_tls_client_corrupted_ssl", 10);
    let pki = Pki::new();
    let (port, h) = tls_server_thread(&pki, |mut s| {
        s.write_all(b"A\n")?;
        s.flush()?;
        recv_all(&mut s, 1)?;
        s.sock.write_all(b"please corrupt the SSL connection")?;
        let mut rest = Vec::new();
        let _ = s.sock.read_to_end(&mut rest);
        Ok(())
    });
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    assert_eq!(r.readline().await.unwrap(), b"A\n");
    w.write(b"B");
    let e = r.readline().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e:?}");
    assert!(e.to_string().contains("TLS error"), "{e}");
    w.close();
    join_thread(h, 5.0).await.unwrap();
}
