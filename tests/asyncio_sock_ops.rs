//! CPython's `Lib/test/test_asyncio/test_sock_lowlevel.py` (`BaseSockTestsMixin`), the
//! `sock_*` operations themselves translated (the refusal of blocking sockets is in
//! `tests/asyncio_sock_lowlevel.rs`): client round trips against a small HTTP/1.0 server
//! (asyncio's `run_test_server`, whose `/loop` echoes a POST body), cancelled operations
//! racing the next one, a megabyte in both directions at once, UDP `sock_sendto` /
//! `sock_recvfrom(_into)` against an echo server, and `sock_accept`. Each test names the
//! CPython test it comes from.

mod support;

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tulip::{Server, StreamReader, StreamWriter};

/// asyncio's `run_test_server`: `GET` gets a short page, `POST /loop` its body back.
async fn http_handler(mut r: StreamReader, w: StreamWriter) -> io::Result<()> {
    let head = r.readuntil(b"\r\n\r\n").await?;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let body = match head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) => r.readexactly(n).await?,
        None => b"Test message".to_vec(),
    };
    w.write(format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    w.write(&body);
    w.drain().await?;
    w.close();
    Ok(())
}

async fn http_server() -> (Server, SocketAddr) {
    let s = tulip::start_server(http_handler, "127.0.0.1", 0, Default::default())
        .await
        .unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn tcp_socket() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Reads until EOF.
async fn recv_to_eof<S: std::os::fd::AsFd>(s: &S) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let d = tulip::timeout(Duration::from_secs(5), tulip::sock_recv(s, 65536))
            .await
            .expect("no EOF")
            .unwrap();
        if d.is_empty() {
            return all;
        }
        all.extend_from_slice(&d);
    }
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_sock_client_ops (the non-blocking
// half, with `sock_recv` and with `sock_recv_into`)
#[tulip::test]
async fn test_sock_client_ops() {
    let _w = support::watchdog("test_sock_client_ops", 10);
    let (server, addr) = http_server().await;
    let sock = tcp_socket();
    tulip::sock_connect(&sock, addr).await.unwrap();
    tulip::sock_sendall(&sock, b"GET / HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let data = tulip::sock_recv(&sock, 1024).await.unwrap();
    recv_to_eof(&sock).await; // consume the rest
    assert!(data.starts_with(b"HTTP/1.0 200 OK"), "{data:?}");

    let sock = tcp_socket();
    tulip::sock_connect(&sock, addr).await.unwrap();
    tulip::sock_sendall(&sock, b"GET / HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tulip::sock_recv_into(&sock, &mut buf).await.unwrap();
    assert!(n > 0);
    assert!(buf.starts_with(b"HTTP/1.0 200 OK"));
    server.close();
}

/// A socket path in a fresh temporary directory (removed on drop).
struct SockPath(PathBuf);

impl Drop for SockPath {
    fn drop(&mut self) {
        if let Some(d) = self.0.parent() {
            std::fs::remove_dir_all(d).ok();
        }
    }
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_unix_sock_client_ops
#[tulip::test]
async fn test_unix_sock_client_ops() {
    let _w = support::watchdog("test_unix_sock_client_ops", 10);
    let dir = std::env::temp_dir().join(format!("tulip-asyncio-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = SockPath(dir.join("sock"));
    let server = tulip::start_unix_server(http_handler, &path.0, Default::default())
        .await
        .unwrap();
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    sock.set_nonblocking(true).unwrap();
    tulip::sock_connect(&sock, socket2::SockAddr::unix(&path.0).unwrap())
        .await
        .unwrap();
    tulip::sock_sendall(&sock, b"GET / HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let data = recv_to_eof(&sock).await;
    assert!(data.starts_with(b"HTTP/1.0 200 OK"), "{data:?}");
    assert!(data.ends_with(b"Test message"));
    server.close();
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_sock_client_racing: a cancelled
// `sock_recv` / `sock_recv_into` / `sock_sendall` leaves nothing behind that would steal
// from, or write before, the next call on the same socket.
#[tulip::test]
async fn test_sock_client_racing() {
    let _w = support::watchdog("test_sock_client_racing", 10);
    let (server, addr) = http_server().await;
    // sock_recv
    let sock = std::rc::Rc::new(tcp_socket());
    tulip::sock_connect(&sock, addr).await.unwrap();
    let s2 = sock.clone();
    let task = tulip::spawn(async move { tulip::sock_recv(&*s2, 1024).await });
    tulip::yield_now().await;
    assert!(task.cancel().await.is_none());
    let s3 = sock.clone();
    let send =
        tulip::spawn(async move { tulip::sock_sendall(&*s3, b"GET / HTTP/1.0\r\n\r\n").await });
    let data = tulip::sock_recv(&*sock, 1024).await.unwrap();
    assert!(data.starts_with(b"HTTP/1.0 200 OK"), "{data:?}");
    send.await.unwrap();
    // sock_recv_into
    let sock = tcp_socket();
    tulip::sock_connect(&sock, addr).await.unwrap();
    let mut buf = vec![0u8; 1024];
    assert!(
        tulip::timeout(Duration::ZERO, tulip::sock_recv_into(&sock, &mut buf))
            .await
            .is_err()
    );
    tulip::sock_sendall(&sock, b"GET / HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let n = tulip::sock_recv_into(&sock, &mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.0 200 OK"));
    server.close();

    // sock_sendall, cancelled while the send buffer is full
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let sock = tcp_socket();
    sock.set_send_buffer_size(1024).unwrap();
    tulip::sock_connect(&sock, listener.local_addr().unwrap())
        .await
        .unwrap();
    let (peer, _) = tulip::sock_accept(&listener).await.unwrap();
    let mut size = 8192;
    while size >= 4 {
        while sock.send(&vec![b' '; size]).is_ok() {}
        size /= 2;
    }
    assert!(
        tulip::timeout(Duration::ZERO, tulip::sock_sendall(&sock, b"hello"))
            .await
            .is_err(),
        "the send buffer is full"
    );
    let reader = tulip::spawn(async move {
        let all = recv_to_eof(&peer).await;
        all.into_iter().filter(|&b| b != b' ').collect::<Vec<u8>>()
    });
    tulip::sock_sendall(&sock, b"world").await.unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let data = reader.await;
    assert!(
        data.ends_with(b"world"),
        "{:?}",
        String::from_utf8_lossy(&data)
    );
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_sock_client_connect_racing: a
// `sock_connect` cancelled (or refused) before the listener listens, then retried on the
// same socket, connects.
#[tulip::test]
async fn test_sock_client_connect_racing() {
    let _w = support::watchdog("test_sock_client_connect_racing", 10);
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let sock = tcp_socket();
    let _ = tulip::timeout(Duration::ZERO, tulip::sock_connect(&sock, addr)).await;
    listener.listen(1).unwrap();
    let mut last = None;
    for _ in 0..128 {
        match tulip::sock_connect(&sock, addr).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
    }
    panic!("never connected: {last:?}");
}

/// asyncio's `_basetest_huge_content`: a megabyte POSTed while the echo comes back.
async fn huge_content(recv_into: bool) {
    const DATA_SIZE: usize = 1_000_000;
    let (server, addr) = http_server().await;
    let sock = std::rc::Rc::new(tcp_socket());
    tulip::sock_connect(&sock, addr).await.unwrap();
    let head = format!("POST /loop HTTP/1.0\r\nContent-Length: {DATA_SIZE}\r\n\r\n");
    tulip::sock_sendall(&*sock, head.as_bytes()).await.unwrap();
    let chunk: Vec<u8> = b"0123456789"
        .iter()
        .copied()
        .cycle()
        .take(DATA_SIZE)
        .collect();
    let s2 = sock.clone();
    let sender = tulip::spawn(async move { tulip::sock_sendall(&*s2, &chunk).await });
    let mut all = Vec::new();
    let mut buf = vec![0u8; DATA_SIZE];
    loop {
        let d = if recv_into {
            let n = tulip::sock_recv_into(&*sock, &mut buf).await.unwrap();
            buf[..n].to_vec()
        } else {
            tulip::sock_recv(&*sock, DATA_SIZE).await.unwrap()
        };
        if d.is_empty() {
            break;
        }
        all.extend_from_slice(&d);
    }
    assert!(all.starts_with(b"HTTP/1.0 200 OK"));
    let i = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &all[i..];
    assert_eq!(body.len(), DATA_SIZE);
    assert!(
        body.iter()
            .zip(b"0123456789".iter().cycle())
            .all(|(a, b)| a == b),
        "the body came back in order"
    );
    sender.await.unwrap();
    server.close();
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_huge_content
#[tulip::test]
async fn test_huge_content() {
    let _w = support::watchdog("test_huge_content", 10);
    huge_content(false).await;
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_huge_content_recvinto
#[tulip::test]
async fn test_huge_content_recvinto() {
    let _w = support::watchdog("test_huge_content_recvinto", 10);
    huge_content(true).await;
}

/// asyncio's `run_udp_echo_server`: a thread echoing datagrams until told to stop.
fn udp_echo_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = s.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if &buf[..n] == b"STOP" {
                return;
            }
            s.send_to(&buf[..n], from).unwrap();
        }
    });
    (addr, h)
}

fn udp_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_recvfrom
#[tulip::test]
async fn test_recvfrom() {
    let _w = support::watchdog("test_recvfrom", 10);
    let (server, h) = udp_echo_server();
    let sock = udp_socket();
    let data = vec![1u8; 4096];
    tulip::sock_sendto(&sock, &data, server).await.unwrap();
    let (got, from) = tulip::sock_recvfrom(&sock, 4096).await.unwrap();
    assert_eq!(got, data);
    assert_eq!(from, server);
    tulip::sock_sendto(&sock, b"STOP", server).await.unwrap();
    h.join().unwrap();
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_recvfrom_into (and with a
// buffer larger than the datagram, limited to 4096 bytes)
#[tulip::test]
async fn test_recvfrom_into() {
    let _w = support::watchdog("test_recvfrom_into", 10);
    let (server, h) = udp_echo_server();
    let sock = udp_socket();
    let data = vec![1u8; 4096];
    let mut buf = vec![0u8; 4096];
    tulip::sock_sendto(&sock, &data, server).await.unwrap();
    let (n, from) = tulip::sock_recvfrom_into(&sock, &mut buf).await.unwrap();
    assert_eq!((n, from), (4096, server));
    assert_eq!(buf, data);
    let mut buf = vec![0u8; 8192];
    tulip::sock_sendto(&sock, &data, server).await.unwrap();
    let (n, from) = tulip::sock_recvfrom_into(&sock, &mut buf[..4096])
        .await
        .unwrap();
    assert_eq!((n, from), (4096, server));
    assert_eq!(buf[..4096], data[..]);
    assert!(buf[4096..].iter().all(|&b| b == 0));
    tulip::sock_sendto(&sock, b"STOP", server).await.unwrap();
    h.join().unwrap();
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_sock_accept: the accepted socket
// is non-blocking, and the address is the client's.
#[tulip::test]
async fn test_sock_accept() {
    let _w = support::watchdog("test_sock_accept", 10);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (conn, addr) = tulip::sock_accept(&listener).await.unwrap();
    assert_eq!(addr, client.local_addr().unwrap());
    // Non-blocking: a read with nothing there would block, not wait.
    let mut b = [0u8; 1];
    let e = std::io::Read::read(&mut &conn, &mut b).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
}

// CPython: test_sock_lowlevel.py BaseSockTestsMixin.test_cancel_sock_accept: a
// `sock_accept` cut short by a timeout leaves the listener usable.
#[tulip::test]
async fn test_cancel_sock_accept() {
    let _w = support::watchdog("test_cancel_sock_accept", 10);
    let dir = std::env::temp_dir().join(format!("tulip-asyncio-accept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = SockPath(dir.join("sock"));
    let listener = UnixListener::bind(&path.0).unwrap();
    listener.set_nonblocking(true).unwrap();
    let r = tulip::timeout(Duration::from_millis(20), tulip::sock_accept(&listener)).await;
    assert!(r.is_err(), "TimeoutError");
    let _c = UnixStream::connect(&path.0).unwrap();
    tulip::timeout(Duration::from_secs(5), tulip::sock_accept(&listener))
        .await
        .expect("the listener stayed usable")
        .unwrap();
}
