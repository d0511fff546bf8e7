//! CPython's `Lib/test/test_asyncio/test_ssl.py` (`TestSSL`), its connection tests
//! translated: many TLS clients and servers at once, a clean shutdown with `close_notify`
//! both ways, everything written before `close` flushed first, and no TLS configuration
//! kept alive by a connection that timed out or closed (asyncio checks with a `weakref`;
//! here `Arc::strong_count`). The peers are blocking rustls streams in std threads;
//! certificates are made at test time. Each test names the CPython test it comes from.

mod proto_support;
mod support;
mod tls_support;

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use proto_support::*;
use tls_support::*;
use tulip::tls::rustls;
use tulip::{StreamReader, StreamWriter, net::ConnectOptions, net::ServerOptions, tls::TlsOptions};

const KIB: usize = 1024;

fn tls_client(cfg: Arc<rustls::ClientConfig>) -> ConnectOptions {
    ConnectOptions::new().tls(TlsOptions::client(cfg).server_hostname("localhost"))
}

/// A listener whose next `n` connections each get a thread running the rustls server
/// handshake and then `f`.
fn tls_servers<F>(pki: &Pki, n: usize, f: F) -> (u16, JoinHandle<io::Result<()>>)
where
    F: Fn(ServerStream) -> io::Result<()> + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = pki.server_config();
    let f = Arc::new(f);
    let h = std::thread::spawn(move || {
        let mut threads = Vec::new();
        for _ in 0..n {
            let (s, _) = l.accept()?;
            let (cfg, f) = (cfg.clone(), f.clone());
            threads.push(std::thread::spawn(move || f(rustls_server(s, cfg)?)));
        }
        for t in threads {
            t.join().expect("server thread panicked")?;
        }
        Ok(())
    });
    (port, h)
}

fn recv_all<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

// CPython: test_ssl.py TestSSL.test_create_server_ssl_1: many rustls clients at once
// against a tulip TLS stream server, each in two rounds.
#[tulip::test]
async fn test_create_server_ssl_1() {
    let _w = support::watchdog("test_create_server_ssl_1", 20);
    const TOTAL: usize = 10;
    let a_data = vec![b'A'; 256 * KIB];
    let b_data = vec![b'B'; 256 * KIB];
    let pki = Pki::new();
    let (a2, b2) = (a_data.len(), b_data.len());
    let server = tulip::start_server(
        move |mut r: StreamReader, w: StreamWriter| async move {
            assert_eq!(r.readexactly(a2).await?.len(), a2);
            w.write(b"OK");
            assert_eq!(r.readexactly(b2).await?.len(), b2);
            w.write(b"SPAM");
            w.close();
            w.wait_closed().await
        },
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(pki.server_config())),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let clients: Vec<_> = (0..TOTAL)
        .map(|_| {
            let (ccfg, a, b) = (pki.client_config(), a_data.clone(), b_data.clone());
            std::thread::spawn(move || -> io::Result<Vec<u8>> {
                let mut s = rustls_client(addr, ccfg, "localhost")?;
                s.write_all(&a)?;
                assert_eq!(recv_all(&mut s, 2)?, b"OK");
                s.write_all(&b)?;
                let mut rest = Vec::new();
                s.read_to_end(&mut rest)?; // Ok only after the server's close_notify
                send_close_notify(&mut s)?;
                Ok(rest)
            })
        })
        .collect();
    for c in clients {
        assert_eq!(join_thread(c, 15.0).await.unwrap(), b"SPAM");
    }
    server.close();
    server.wait_closed().await;
}

// CPython: test_ssl.py TestSSL.test_create_connection_ssl_1: many tulip TLS clients at
// once against rustls servers.
#[tulip::test]
async fn test_create_connection_ssl_1() {
    let _w = support::watchdog("test_create_connection_ssl_1", 20);
    const TOTAL: usize = 10;
    const A: usize = 256 * KIB;
    const B: usize = 256 * KIB;
    let pki = Pki::new();
    let (port, servers) = tls_servers(&pki, TOTAL, |mut s| {
        assert_eq!(recv_all(&mut s, A)?.len(), A);
        s.write_all(b"OK")?;
        assert_eq!(recv_all(&mut s, B)?.len(), B);
        s.write_all(b"SPAM")?;
        send_close_notify(&mut s)?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)?;
        Ok(())
    });
    let clients: Vec<_> = (0..TOTAL)
        .map(|_| {
            let ccfg = pki.client_config();
            tulip::spawn(async move {
                let (mut r, w) =
                    tulip::open_connection("127.0.0.1", port, tls_client(ccfg)).await?;
                w.write(&vec![b'A'; A]);
                assert_eq!(r.readexactly(2).await?, b"OK");
                w.write(&vec![b'B'; B]);
                assert_eq!(r.readexactly(4).await?, b"SPAM");
                assert_eq!(r.read_to_eof().await?, b"", "close_notify: EOF");
                w.close();
                w.wait_closed().await
            })
        })
        .collect();
    for c in clients {
        tulip::timeout(Duration::from_secs(15), c)
            .await
            .expect("a client hung")
            .unwrap();
    }
    join_thread(servers, 5.0).await.unwrap();
}

// CPython: test_ssl.py TestSSL.test_shutdown_cleanly: the server answers and sends
// `close_notify`; the client reads EOF, closes, and `wait_closed` returns cleanly.
#[tulip::test]
async fn test_shutdown_cleanly() {
    let _w = support::watchdog("test_shutdown_cleanly", 20);
    const TOTAL: usize = 10;
    const A: usize = 64 * KIB;
    let pki = Pki::new();
    let (port, servers) = tls_servers(&pki, TOTAL, |mut s| {
        assert_eq!(recv_all(&mut s, A)?.len(), A);
        s.write_all(b"OK")?;
        send_close_notify(&mut s)?; // Python's `sock.unwrap()`
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)?; // the client's close_notify: Ok(0)
        Ok(())
    });
    let clients: Vec<_> = (0..TOTAL)
        .map(|_| {
            let ccfg = pki.client_config();
            tulip::spawn(async move {
                let (mut r, w) =
                    tulip::open_connection("127.0.0.1", port, tls_client(ccfg)).await?;
                w.write(&vec![b'A'; A]);
                assert_eq!(r.readexactly(2).await?, b"OK");
                assert_eq!(r.read_to_eof().await?, b"");
                w.close();
                w.wait_closed().await
            })
        })
        .collect();
    for c in clients {
        tulip::timeout(Duration::from_secs(15), c)
            .await
            .expect("a client hung")
            .expect("a clean shutdown is no error");
    }
    join_thread(servers, 5.0).await.unwrap();
}

// CPython: test_ssl.py TestSSL.test_flush_before_shutdown: what was written before
// `close` is all sent — to a peer slow to read — before the `close_notify`.
#[tulip::test]
async fn test_flush_before_shutdown() {
    let _w = support::watchdog("test_flush_before_shutdown", 20);
    const CHUNK: usize = 128 * KIB;
    const SIZE: usize = 32;
    let pki = Pki::new();
    let (port, servers) = tls_servers(&pki, 1, |mut s| {
        assert_eq!(recv_all(&mut s, 4)?, b"ping");
        s.write_all(b"pong")?;
        std::thread::sleep(Duration::from_millis(100)); // the TCP buffers fill up
        let mut all = Vec::new();
        s.read_to_end(&mut all)?; // Ok only with the client's close_notify at the end
        assert_eq!(all.len(), CHUNK * SIZE);
        Ok(())
    });
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(pki.client_config()))
        .await
        .unwrap();
    w.write(b"ping");
    assert_eq!(r.readexactly(4).await.unwrap(), b"pong");
    for _ in 0..SIZE {
        w.write(&vec![b'x'; CHUNK]);
    }
    w.close();
    tulip::timeout(Duration::from_secs(10), w.wait_closed())
        .await
        .expect("wait_closed hung")
        .ok(); // the server closes without close_notify: EOF or reset, both fine
    join_thread(servers, 10.0).await.unwrap();
}

// CPython: test_ssl.py TestSSL.test_handshake_timeout_handler_leak: a TLS
// `create_connection` cancelled by a timeout (the listener never answers) keeps nothing
// alive: the client configuration is released.
#[tulip::test]
async fn test_handshake_timeout_handler_leak() {
    let _w = support::watchdog("test_handshake_timeout_handler_leak", 10);
    let (l, addr) = support::listener();
    let ccfg = tulip::tls::dangerous_client_config_without_certificate_verification();
    let p = Probe::new();
    let rec = Rec::new(&p);
    let r = tulip::timeout(
        Duration::from_millis(100),
        tulip::create_connection(
            move || rec,
            "127.0.0.1",
            addr.port(),
            tls_client(ccfg.clone()),
        ),
    )
    .await;
    assert!(r.is_err(), "TimeoutError");
    drop(p);
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(Arc::strong_count(&ccfg), 1, "the handshake kept the config");
    drop(l);
}

// CPython: test_ssl.py TestSSL.test_shutdown_timeout_handler_leak: a TLS connection
// closed by the client (the server reads a little and closes) keeps nothing alive.
#[tulip::test]
async fn test_shutdown_timeout_handler_leak() {
    let _w = support::watchdog("test_shutdown_timeout_handler_leak", 10);
    let pki = Pki::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let scfg = pki.server_config();
    let server = std::thread::spawn(move || -> io::Result<()> {
        let (s, _) = l.accept()?;
        let mut s = rustls_server(s, scfg)?;
        let mut buf = [0u8; 32];
        let _ = s.read(&mut buf);
        Ok(())
    });
    let ccfg = pki.client_config();
    let p = Probe::new();
    let rec = Rec::new(&p);
    let (t, _) = tulip::create_connection(move || rec, "127.0.0.1", port, tls_client(ccfg.clone()))
        .await
        .unwrap();
    t.close();
    p.wait_lost(5.0).await;
    join_thread(server, 5.0).await.unwrap();
    drop((t, p));
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        Arc::strong_count(&ccfg),
        1,
        "the closed connection kept the config"
    );
}

// CPython: test_ssl.py TestSSL.test_create_connection_ssl_slow_handshake, through the
// streams: a server that never answers the handshake, and a handshake timeout.
#[tulip::test]
async fn test_create_connection_ssl_slow_handshake() {
    let _w = support::watchdog("test_create_connection_ssl_slow_handshake", 10);
    let seen = capture_exceptions();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || -> io::Result<usize> {
        let (mut s, _) = l.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        Ok(all.len())
    });
    let opts = ConnectOptions::new().tls(
        TlsOptions::client(Pki::new().client_config())
            .server_hostname("localhost")
            .handshake_timeout(Duration::from_millis(100)),
    );
    let e = tulip::open_connection("127.0.0.1", port, opts)
        .await
        .unwrap_err();
    // asyncio: ConnectionAbortedError('SSL handshake is taking longer than … seconds').
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(e.to_string().contains("handshake"), "{e}");
    assert!(
        join_thread(server, 5.0).await.unwrap() > 0,
        "a ClientHello went out"
    );
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// CPython: test_ssl.py TestSSL.test_create_connection_ssl_failed_certificate, through the
// streams: the client does not trust the server; the error says why.
#[tulip::test]
async fn test_create_connection_ssl_failed_certificate() {
    let _w = support::watchdog("test_create_connection_ssl_failed_certificate", 10);
    let pki = Pki::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let scfg = pki.server_config();
    let server = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        rustls_server(s, scfg).is_err()
    });
    let stranger = Pki::new(); // trusts another CA
    let e = tulip::open_connection("127.0.0.1", port, tls_client(stranger.client_config()))
        .await
        .unwrap_err();
    assert_tls_error(&e, &["UnknownIssuer"]);
    assert!(
        join_thread(server, 5.0).await,
        "the server's handshake failed too"
    );
}
