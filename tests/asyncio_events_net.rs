//! CPython's `Lib/test/test_asyncio/test_events.py` (`EventLoopTestsMixin`), its
//! connection and server tests translated: `create_connection` (TCP, Unix, TLS) against a
//! small HTTP/1.0 server, a local address in use, `connect_accepted_socket`,
//! `create_server` (TCP, Unix, TLS, `reuse_port`), and a closed server refusing
//! connections. asyncio's `MyProto` (its `state`, `nbytes`, `done`) is the probe of
//! `tests/proto_support`. Each test names the CPython test it comes from.

mod proto_support;
mod support;
mod tls_support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::rc::Rc;

use proto_support::*;
use tls_support::*;
use tulip::{
    Server, StreamReader, StreamWriter, net::ConnectOptions, net::ServerOptions, tls::TlsOptions,
};

/// asyncio's `run_test_server`: answers each HTTP/1.0 request and closes.
async fn http_server(options: ServerOptions) -> (Server, u16) {
    let s = tulip::start_server(
        |mut r: StreamReader, w: StreamWriter| async move {
            r.readuntil(b"\r\n\r\n").await?;
            w.write(b"HTTP/1.0 200 OK\r\n\r\nTest message");
            w.drain().await?;
            w.close();
            io::Result::Ok(())
        },
        "127.0.0.1",
        0,
        options,
    )
    .await
    .unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// asyncio's `MyProto`: sends a request on `connection_made`, counts what comes back.
fn my_proto(p: &Probe) -> Rec {
    Rec::new(p).on_made(|t| t.write(b"GET / HTTP/1.0\r\n\r\n"))
}

/// asyncio's `_basetest_create_connection`.
async fn basetest_create_connection(t: &tulip::Transport, p: &Probe, check_sockname: bool) {
    assert_eq!(p.events().first(), Some(&Event::CM));
    if check_sockname {
        assert!(t.get_extra_info("sockname").is_some());
    }
    assert_eq!(p.wait_lost(5.0).await, None, "the server closes: done");
    assert!(p.received_len() > 0);
    assert!(p.received().ends_with(b"Test message"));
    t.close();
}

/// A socket path in a fresh temporary directory (removed on drop).
struct SockPath(PathBuf);

impl SockPath {
    fn new(name: &str) -> SockPath {
        let dir = std::env::temp_dir().join(format!(
            "tulip-asyncio-events-{}-{name}",
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

// ---- create_connection ---------------------------------------------------------------------

// CPython: test_events.py EventLoopTestsMixin.test_create_connection
#[tulip::test]
async fn test_create_connection() {
    let _w = support::watchdog("test_create_connection", 10);
    let (server, port) = http_server(ServerOptions::new()).await;
    let p = Probe::new();
    let rec = my_proto(&p);
    let (t, _) = tulip::create_connection(move || rec, "127.0.0.1", port, Default::default())
        .await
        .unwrap();
    basetest_create_connection(&t, &p, true).await;
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_unix_connection
#[tulip::test]
async fn test_create_unix_connection() {
    let _w = support::watchdog("test_create_unix_connection", 10);
    let path = SockPath::new("create_unix_connection");
    let server = tulip::start_unix_server(
        |mut r: StreamReader, w: StreamWriter| async move {
            r.readuntil(b"\r\n\r\n").await?;
            w.write(b"HTTP/1.0 200 OK\r\n\r\nTest message");
            w.close();
            io::Result::Ok(())
        },
        &path.0,
        Default::default(),
    )
    .await
    .unwrap();
    let p = Probe::new();
    let rec = my_proto(&p);
    let (t, _) = tulip::create_unix_connection(move || rec, &path.0, Default::default())
        .await
        .unwrap();
    basetest_create_connection(&t, &p, false).await;
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_ssl_connection: and the TLS
// extra info (`sockname`, `peername`, `peercert`, `cipher`).
#[tulip::test]
async fn test_create_ssl_connection() {
    let _w = support::watchdog("test_create_ssl_connection", 10);
    let pki = Pki::new();
    let (server, port) =
        http_server(ServerOptions::new().tls(TlsOptions::server(pki.server_config()))).await;
    let p = Probe::new();
    let rec = my_proto(&p);
    let opts = ConnectOptions::new()
        .tls(TlsOptions::client(pki.client_config()).server_hostname("localhost"));
    let (t, _) = tulip::create_connection(move || rec, "127.0.0.1", port, opts)
        .await
        .unwrap();
    assert!(t.get_extra_info("sockname").is_some());
    assert_eq!(
        sock_addr(t.get_extra_info("peername")),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    );
    let peercert = certs(t.get_extra_info("peercert")).expect("peercert");
    assert_eq!(
        peercert[0],
        pki.server.der.as_ref(),
        "the server's certificate"
    );
    assert!(t.get_extra_info("cipher").is_some());
    basetest_create_connection(&t, &p, true).await;
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_connection_local_addr_in_use:
// the error is `AddrInUse` and names the address.
#[tulip::test]
async fn test_create_connection_local_addr_in_use() {
    let _w = support::watchdog("test_create_connection_local_addr_in_use", 10);
    let (server, port) = http_server(ServerOptions::new()).await;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let p = Probe::new();
    let rec = my_proto(&p);
    let e = tulip::create_connection(
        move || rec,
        "127.0.0.1",
        port,
        ConnectOptions::new().local_addr(addr),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    assert!(p.events().is_empty());
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_connect_accepted_socket
#[tulip::test]
async fn test_connect_accepted_socket() {
    let _w = support::watchdog("test_connect_accepted_socket", 10);
    let lsock = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = lsock.local_addr().unwrap();
    let client = std::thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut c = blocking(TcpStream::connect(addr)?);
        c.write_all(b"test data")?;
        let mut response = vec![0; 99];
        let n = c.read(&mut response)?;
        response.truncate(n);
        Ok(response)
    });
    let (conn, _) = lsock.accept().unwrap();
    let p = Probe::new();
    let rec = Rec::new(&p).on_data(|t, _| t.write(b"roger"));
    let (t, _) = tulip::connect_accepted_socket(move || rec, conn, Default::default())
        .await
        .unwrap();
    assert_eq!(p.wait_lost(5.0).await, None, "the client closes");
    t.close();
    assert_eq!(join_thread(client, 5.0).await.unwrap(), b"roger");
    assert_eq!(p.received(), b"test data");
    assert_stream_order(&p.events());
}

// ---- create_server -------------------------------------------------------------------------

/// A server whose accepted connections record into the probes pushed to the returned list.
async fn recording_server(host: &str, options: ServerOptions) -> (Server, Rc<RefCell<Vec<Probe>>>) {
    let probes: Rc<RefCell<Vec<Probe>>> = Rc::default();
    let pr = probes.clone();
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            pr.borrow_mut().push(p.clone());
            Rec::new(&p)
        },
        host,
        0,
        options,
    )
    .await
    .unwrap();
    (server, probes)
}

async fn first_probe(probes: &Rc<RefCell<Vec<Probe>>>) -> Probe {
    for _ in 0..5000 {
        if let Some(p) = probes.borrow().first() {
            return p.clone();
        }
        tulip::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("no connection accepted");
}

// CPython: test_events.py EventLoopTestsMixin.test_create_server
#[tulip::test]
async fn test_create_server() {
    let _w = support::watchdog("test_create_server", 10);
    let (server, probes) = recording_server("0.0.0.0", ServerOptions::new()).await;
    let socks = server.sockets();
    assert_eq!(socks.len(), 1);
    let local = socks[0].as_socket().unwrap();
    assert_eq!(local.ip(), Ipv4Addr::UNSPECIFIED);
    let mut client = TcpStream::connect(("127.0.0.1", local.port())).unwrap();
    client.write_all(b"xxx").unwrap();
    let p = first_probe(&probes).await;
    p.wait_bytes(3, 5.0).await;
    assert_eq!(p.received_len(), 3);
    let t = p.transport();
    assert!(t.get_extra_info("sockname").is_some());
    assert_eq!(
        sock_addr(t.get_extra_info("peername")).ip(),
        Ipv4Addr::LOCALHOST
    );
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None, "CLOSED");
    drop(client);
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_server_reuse_port: without
// `reuse_port` a second server cannot bind the port; with it on both, it can.
#[tulip::test]
async fn test_create_server_reuse_port() {
    let _w = support::watchdog("test_create_server_reuse_port", 10);
    let (s1, _) = recording_server("127.0.0.1", ServerOptions::new()).await;
    let port = s1.local_addr().unwrap().port();
    let e = tulip::create_server(
        || Rec::new(&Probe::new()),
        "127.0.0.1",
        port,
        ServerOptions::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    s1.close();

    let (s1, _) = recording_server("127.0.0.1", ServerOptions::new().reuse_port(true)).await;
    let port = s1.local_addr().unwrap().port();
    let s2 = tulip::create_server(
        || Rec::new(&Probe::new()),
        "127.0.0.1",
        port,
        ServerOptions::new().reuse_port(true),
    )
    .await
    .expect("SO_REUSEPORT on both: the second bind succeeds");
    assert_eq!(s2.local_addr().unwrap().port(), port);
    s1.close();
    s2.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_unix_server
#[tulip::test]
async fn test_create_unix_server() {
    let _w = support::watchdog("test_create_unix_server", 10);
    let path = SockPath::new("create_unix_server");
    let probes: Rc<RefCell<Vec<Probe>>> = Rc::default();
    let pr = probes.clone();
    let server = tulip::create_unix_server(
        move || {
            let p = Probe::new();
            pr.borrow_mut().push(p.clone());
            Rec::new(&p)
        },
        &path.0,
        ServerOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(server.sockets().len(), 1);
    let mut client = std::os::unix::net::UnixStream::connect(&path.0).unwrap();
    client.write_all(b"xxx").unwrap();
    let p = first_probe(&probes).await;
    p.wait_bytes(3, 5.0).await;
    assert_eq!(p.received_len(), 3);
    p.transport().close();
    assert_eq!(p.wait_lost(5.0).await, None);
    drop(client);
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_server_ssl (with a verifying
// client: asyncio's `test_create_server_ssl_verified`)
#[tulip::test]
async fn test_create_server_ssl() {
    let _w = support::watchdog("test_create_server_ssl", 10);
    let pki = Pki::new();
    let (server, probes) = recording_server(
        "127.0.0.1",
        ServerOptions::new().tls(TlsOptions::server(pki.server_config())),
    )
    .await;
    let port = server.local_addr().unwrap().port();
    let cp = Probe::new();
    let rec = Rec::new(&cp);
    let opts = ConnectOptions::new()
        .tls(TlsOptions::client(pki.client_config()).server_hostname("localhost"));
    let (client, _) = tulip::create_connection(move || rec, "127.0.0.1", port, opts)
        .await
        .unwrap();
    client.write(b"xxx");
    let p = first_probe(&probes).await;
    p.wait_bytes(3, 5.0).await;
    assert_eq!(p.received(), b"xxx");
    assert_eq!(
        sock_addr(client.get_extra_info("peername")),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    );
    assert!(certs(client.get_extra_info("peercert")).is_some());
    p.transport().close();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(cp.wait_lost(5.0).await, None, "the client hears the close");
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_unix_server_ssl
#[tulip::test]
async fn test_create_unix_server_ssl() {
    let _w = support::watchdog("test_create_unix_server_ssl", 10);
    let pki = Pki::new();
    let path = SockPath::new("create_unix_server_ssl");
    let probes: Rc<RefCell<Vec<Probe>>> = Rc::default();
    let pr = probes.clone();
    let server = tulip::create_unix_server(
        move || {
            let p = Probe::new();
            pr.borrow_mut().push(p.clone());
            Rec::new(&p)
        },
        &path.0,
        ServerOptions::new().tls(TlsOptions::server(pki.server_config())),
    )
    .await
    .unwrap();
    let cp = Probe::new();
    let rec = Rec::new(&cp);
    let opts = ConnectOptions::new()
        .tls(TlsOptions::client(pki.client_config()).server_hostname("localhost"));
    let (client, _) = tulip::create_unix_connection(move || rec, &path.0, opts)
        .await
        .unwrap();
    client.write(b"xxx");
    let p = first_probe(&probes).await;
    p.wait_bytes(3, 5.0).await;
    assert_eq!(p.received(), b"xxx");
    p.transport().close();
    assert_eq!(p.wait_lost(5.0).await, None);
    server.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_server_close: once closed, the server
// refuses new connections.
#[tulip::test]
async fn test_server_close() {
    let _w = support::watchdog("test_server_close", 10);
    let (server, _probes) = recording_server("0.0.0.0", ServerOptions::new()).await;
    let port = server.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"xxx").unwrap();
    drop(client);
    server.close();
    let e = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
}
