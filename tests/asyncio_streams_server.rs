//! CPython's `Lib/test/test_asyncio/test_streams.py` (`StreamTests`), the connection half,
//! translated: `open_connection` / `open_unix_connection` (plain and TLS) against a small
//! HTTP/1.0 server (asyncio's `run_test_server`), `start_server` round trips, `start_tls`
//! on both sides, errors, `drain` and `wait_closed`. Each test names the CPython test it
//! comes from. (Four more of that file are covered in `tests/streams.rs`, marked there.)

mod proto_support;
mod support;
mod tls_support;

use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use proto_support::{Seen, capture_exceptions, read_n, set_rst_on_close};
use tls_support::Pki;
use tulip::tls::TlsConfig;
use tulip::{
    Server, StreamReader, StreamWriter, net::ConnectOptions, net::ServerOptions, tls::TlsOptions,
};

const BODY: &[u8] = b"Test message";

/// asyncio's `run_test_server`: answers one HTTP/1.0 request and closes.
async fn http_handler(mut r: StreamReader, w: StreamWriter) -> io::Result<()> {
    r.readuntil(b"\r\n\r\n").await?;
    w.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    w.write(BODY);
    w.drain().await?;
    w.close();
    w.wait_closed().await
}

async fn http_server(options: ServerOptions) -> (Server, u16) {
    let s = tulip::start_server(http_handler, "127.0.0.1", 0, options)
        .await
        .expect("start_server");
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// A socket path in a fresh temporary directory (removed on drop).
struct SockPath(PathBuf);

impl SockPath {
    fn new(name: &str) -> SockPath {
        let dir = std::env::temp_dir().join(format!(
            "tulip-asyncio-streams-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        SockPath(dir.join("sock"))
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            std::fs::remove_dir_all(d).ok();
        }
    }
}

/// asyncio's `_basetest_open_connection`: a request, the status line, the rest to EOF.
async fn basetest_open_connection(mut r: StreamReader, w: StreamWriter, seen: &Seen) {
    w.write(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.readline().await.unwrap(), b"HTTP/1.0 200 OK\r\n");
    let data = r.read_to_eof().await.unwrap();
    assert!(data.ends_with(b"\r\n\r\nTest message"), "{data:?}");
    w.close();
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

fn tls_server(pki: &Pki) -> ServerOptions {
    ServerOptions::new().tls(TlsOptions::server(pki.server_config()))
}

fn tls_client(pki: &Pki) -> ConnectOptions {
    ConnectOptions::new().tls(TlsOptions::client(pki.client_config()).server_hostname("localhost"))
}

// ---- open_connection -----------------------------------------------------------------------

// CPython: test_streams.py StreamTests.test_open_connection
#[tulip::test]
async fn test_open_connection() {
    let _w = support::watchdog("test_open_connection", 10);
    let seen = capture_exceptions();
    let (server, port) = http_server(ServerOptions::new()).await;
    let (r, w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    basetest_open_connection(r, w, &seen).await;
    server.close();
}

// CPython: test_streams.py StreamTests.test_open_unix_connection
#[tulip::test]
async fn test_open_unix_connection() {
    let _w = support::watchdog("test_open_unix_connection", 10);
    let seen = capture_exceptions();
    let path = SockPath::new("open_unix");
    let server = tulip::start_unix_server(http_handler, &path.0, Default::default())
        .await
        .unwrap();
    let (r, w) = tulip::open_unix_connection(&path.0, Default::default())
        .await
        .unwrap();
    basetest_open_connection(r, w, &seen).await;
    server.close();
}

// CPython: test_streams.py StreamTests.test_open_connection_no_loop_ssl
#[tulip::test]
async fn test_open_connection_no_loop_ssl() {
    let _w = support::watchdog("test_open_connection_no_loop_ssl", 10);
    let seen = capture_exceptions();
    let pki = Pki::new();
    let (server, port) = http_server(tls_server(&pki)).await;
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, tls_client(&pki))
        .await
        .unwrap();
    w.write(b"GET / HTTP/1.0\r\n\r\n");
    let data = r.read_to_eof().await.unwrap();
    assert!(data.ends_with(b"\r\n\r\nTest message"), "{data:?}");
    w.close();
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    server.close();
}

// CPython: test_streams.py StreamTests.test_open_unix_connection_no_loop_ssl
#[tulip::test]
async fn test_open_unix_connection_no_loop_ssl() {
    let _w = support::watchdog("test_open_unix_connection_no_loop_ssl", 10);
    let seen = capture_exceptions();
    let pki = Pki::new();
    let path = SockPath::new("open_unix_ssl");
    let server = tulip::start_unix_server(http_handler, &path.0, tls_server(&pki))
        .await
        .unwrap();
    let (mut r, w) = tulip::open_unix_connection(&path.0, tls_client(&pki))
        .await
        .unwrap();
    w.write(b"GET / HTTP/1.0\r\n\r\n");
    let data = r.read_to_eof().await.unwrap();
    assert!(data.ends_with(b"\r\n\r\nTest message"), "{data:?}");
    w.close();
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    server.close();
}

// CPython: test_streams.py StreamTests.test_open_connection_error (asyncio calls
// `connection_lost(ZeroDivisionError())` by hand; here the peer resets the connection)
#[tulip::test]
async fn test_open_connection_error() {
    let _w = support::watchdog("test_open_connection_error", 10);
    let seen = capture_exceptions();
    let (l, addr) = support::listener();
    let (mut r, w) = tulip::open_connection("127.0.0.1", addr.port(), Default::default())
        .await
        .unwrap();
    let (peer, _) = tulip::sock_accept(&l).await.unwrap();
    set_rst_on_close(&peer);
    drop(peer);
    let e = tulip::timeout(Duration::from_secs(5), r.read_to_eof())
        .await
        .expect("read did not see the reset")
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    w.close();
    tulip::yield_now().await;
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// ---- start_server --------------------------------------------------------------------------

/// The echo-a-line client of asyncio's `test_start_server`.
async fn line_client(port: u16) -> Vec<u8> {
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"hello world!\n");
    let back = r.readline().await.unwrap();
    w.close();
    w.wait_closed().await.unwrap();
    back
}

async fn echo_line(mut r: StreamReader, w: StreamWriter) -> io::Result<()> {
    let data = r.readline().await?;
    w.write(&data);
    w.drain().await?;
    w.close();
    w.wait_closed().await
}

// CPython: test_streams.py StreamTests.test_start_server (both variants: the coroutine
// handler, and the plain callback that creates the task itself)
#[tulip::test]
async fn test_start_server() {
    let _w = support::watchdog("test_start_server", 10);
    let seen = capture_exceptions();
    let server = tulip::start_server(echo_line, "127.0.0.1", 0, Default::default())
        .await
        .unwrap();
    let msg = line_client(server.local_addr().unwrap().port()).await;
    server.close();
    server.wait_closed().await;
    assert_eq!(msg, b"hello world!\n");

    let server = tulip::start_server(
        |r, w| {
            tulip::spawn(echo_line(r, w)).detach();
            std::future::ready(())
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let msg = line_client(server.local_addr().unwrap().port()).await;
    server.close();
    server.wait_closed().await;
    assert_eq!(msg, b"hello world!\n");
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

fn has_sslcontext(w: &StreamWriter) -> bool {
    w.get_extra_info("sslcontext")
        .as_ref()
        .and_then(TlsConfig::from_extra_info)
        .is_some()
}

// CPython: test_streams.py StreamTests.test_start_tls
#[tulip::test]
async fn test_start_tls() {
    let _w = support::watchdog("test_start_tls", 10);
    let seen = capture_exceptions();
    let pki = Pki::new();
    let scfg = pki.server_config();
    let server = tulip::start_server(
        move |mut r: StreamReader, mut w: StreamWriter| {
            let scfg = scfg.clone();
            async move {
                let data1 = r.readline().await?;
                w.write(&data1);
                w.drain().await?;
                assert!(!has_sslcontext(&w));
                w.start_tls(&mut r, TlsOptions::server(scfg)).await?;
                assert!(has_sslcontext(&w));
                let data2 = r.readline().await?;
                w.write(&data2);
                w.drain().await?;
                w.close();
                w.wait_closed().await
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (mut r, mut w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"hello world 1!\n");
    w.drain().await.unwrap();
    let msg1 = r.readline().await.unwrap();
    assert!(!has_sslcontext(&w));
    let opts = TlsOptions::client(pki.client_config()).server_hostname("localhost");
    w.start_tls(&mut r, opts).await.unwrap();
    assert!(has_sslcontext(&w));
    w.write(b"hello world 2!\n");
    w.drain().await.unwrap();
    let msg2 = r.readline().await.unwrap();
    w.close();
    w.wait_closed().await.unwrap();
    server.close();
    assert_eq!(msg1, b"hello world 1!\n");
    assert_eq!(msg2, b"hello world 2!\n");
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// ---- drain, close, wait_closed -------------------------------------------------------------

// CPython: test_streams.py StreamTests.test_multiple_drain: ten tasks waiting in `drain`
// on one paused writer all return when it resumes.
#[tulip::test]
async fn test_multiple_drain() {
    let _w = support::watchdog("test_multiple_drain", 10);
    let (l, addr) = support::listener();
    let (_r, w) = tulip::open_connection("127.0.0.1", addr.port(), Default::default())
        .await
        .unwrap();
    let (peer, _) = tulip::sock_accept(&l).await.unwrap();
    let chunk = vec![5u8; 256 * 1024];
    let (_, high) = w.transport().get_write_buffer_limits();
    let mut sent = 0;
    while w.transport().get_write_buffer_size() <= high {
        w.write(&chunk);
        sent += chunk.len();
        assert!(sent < 100 << 20, "the write buffer never filled");
    }
    let drained = Rc::new(Cell::new(0));
    let drainers: Vec<_> = (0..10)
        .map(|_| {
            let (w, d) = (w.clone(), drained.clone());
            tulip::spawn(async move {
                w.drain().await.unwrap();
                d.set(d.get() + 1);
            })
        })
        .collect();
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(drained.get(), 0, "drain returned while writing was paused");
    let got = read_n(&peer, sent, 5.0).await;
    assert_eq!(got.len(), sent);
    for d in drainers {
        tulip::timeout(Duration::from_secs(5), d)
            .await
            .expect("a drainer was not woken");
    }
    assert_eq!(drained.get(), 10);
}

// CPython: test_streams.py StreamTests.test_wait_closed_on_close_with_unread_data
#[tulip::test]
async fn test_wait_closed_on_close_with_unread_data() {
    let _w = support::watchdog("test_wait_closed_on_close_with_unread_data", 10);
    let (server, port) = http_server(ServerOptions::new()).await;
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.readline().await.unwrap(), b"HTTP/1.0 200 OK\r\n");
    w.close();
    tulip::timeout(Duration::from_secs(5), w.wait_closed())
        .await
        .expect("wait_closed hung with unread data")
        .unwrap();
    server.close();
}

// CPython: test_streams.py StreamTests.test_async_writer_api
#[tulip::test]
async fn test_async_writer_api() {
    let _w = support::watchdog("test_async_writer_api", 10);
    let seen = capture_exceptions();
    let (server, port) = http_server(ServerOptions::new()).await;
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.readline().await.unwrap(), b"HTTP/1.0 200 OK\r\n");
    let data = r.read_to_eof().await.unwrap();
    assert!(data.ends_with(b"\r\n\r\nTest message"));
    assert!(!w.is_closing());
    w.close();
    assert!(w.is_closing());
    w.wait_closed().await.unwrap();
    server.close();
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// CPython: test_streams.py StreamTests.test_async_writer_api_exception_after_close
#[tulip::test]
async fn test_async_writer_api_exception_after_close() {
    let _w = support::watchdog("test_async_writer_api_exception_after_close", 10);
    let seen = capture_exceptions();
    let (server, port) = http_server(ServerOptions::new()).await;
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.write(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.readline().await.unwrap(), b"HTTP/1.0 200 OK\r\n");
    assert!(r.read_to_eof().await.unwrap().ends_with(BODY));
    w.close();
    w.write(b"data");
    let e = w.drain().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    server.close();
    // A write after close is a warning (asyncio logs "socket.send() raised exception." only
    // after 5 of them), not an exception handler call.
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// CPython: test_streams.py StreamTests.test_eof_feed_when_closing_writer: closing the
// writer ends the reader (bpo-35065).
#[tulip::test]
async fn test_eof_feed_when_closing_writer() {
    let _w = support::watchdog("test_eof_feed_when_closing_writer", 10);
    let seen = capture_exceptions();
    let (server, port) = http_server(ServerOptions::new()).await;
    let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default())
        .await
        .unwrap();
    w.close();
    w.wait_closed().await.unwrap();
    assert!(r.at_eof());
    assert_eq!(r.read_to_eof().await.unwrap(), b"");
    server.close();
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// CPython: test_streams.py StreamTests.test_invalid_limit — asyncio raises ValueError for a
// limit <= 0; tulip refuses a zero limit with InvalidInput at every stream entry point.
#[tulip::test]
async fn test_invalid_limit() {
    let err = tulip::open_connection("127.0.0.1", 9, ConnectOptions::new().limit(0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
    let err = tulip::start_server(
        |_r, _w| async {},
        "127.0.0.1",
        0,
        ServerOptions::new().limit(0),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}
