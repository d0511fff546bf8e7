//! The sock_* futures on real loopback sockets, socketpairs and UDP.

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};
use tulip::EventLoop;

#[tulip::test]
async fn recv_and_sendall_on_a_socketpair() -> io::Result<()> {
    let _w = support::watchdog("recv_sendall_socketpair", 20);
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let reader = tulip::spawn(async move {
        let mut got = Vec::new();
        loop {
            let chunk = tulip::sock_recv(&b, 4096).await?;
            if chunk.is_empty() {
                return io::Result::Ok(got);
            }
            got.extend_from_slice(&chunk);
        }
    });
    tulip::sock_sendall(&a, b"hello ").await?;
    tulip::sock_sendall(&a, b"world").await?;
    a.shutdown(std::net::Shutdown::Write)?;
    assert_eq!(reader.await?, b"hello world");
    Ok(())
}

#[tulip::test]
async fn recv_into_reads_what_is_there() -> io::Result<()> {
    let _w = support::watchdog("recv_into", 20);
    let (a, mut b) = support::tcp_pair();
    b.set_nonblocking(false)?;
    b.write_all(b"abc")?;
    let mut buf = [0u8; 16];
    let n = tulip::sock_recv_into(&a, &mut buf).await?;
    assert_eq!(&buf[..n], b"abc");
    drop(b);
    assert_eq!(tulip::sock_recv_into(&a, &mut buf).await?, 0, "EOF");
    Ok(())
}

/// A short `recv` on a stream socket lets the next read wait for readiness without trying
/// first: data (or EOF) that arrives in between must still be seen, at once.
#[tulip::test]
async fn data_and_eof_right_after_a_short_read_are_received() -> io::Result<()> {
    let _w = support::watchdog("after_short_read", 20);
    let (a, b) = UnixStream::pair()?;
    b.set_nonblocking(true)?;
    // The first read has to wait, so that epoll watches `b` when it comes back short.
    let writer = tulip::spawn(async move {
        tulip::yield_now().await;
        (&a).write_all(b"one")?;
        io::Result::Ok(a)
    });
    let mut buf = [0u8; 64];
    let n = tulip::sock_recv_into(&b, &mut buf).await?;
    assert_eq!(&buf[..n], b"one");
    // In the same task step: more data lands in the queue that the short read emptied.
    let a = writer.await?;
    (&a).write_all(b"two")?;
    let n = tulip::sock_recv_into(&b, &mut buf).await?;
    assert_eq!(&buf[..n], b"two");
    (&a).write_all(b"three")?;
    assert_eq!(tulip::sock_recv(&b, 64).await?, b"three");
    drop(a);
    assert_eq!(tulip::sock_recv(&b, 64).await?, b"", "EOF");
    Ok(())
}

/// A datagram shorter than the buffer says nothing about the queue: every queued datagram
/// is received.
#[tulip::test]
async fn short_datagrams_in_a_row_are_all_received() -> io::Result<()> {
    let _w = support::watchdog("short_datagrams", 20);
    let (a, b) = UnixDatagram::pair()?;
    b.set_nonblocking(true)?;
    let writer = tulip::spawn(async move {
        tulip::yield_now().await;
        for d in [&b"one"[..], b"two", b"three"] {
            a.send(d)?;
        }
        io::Result::Ok(a)
    });
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(tulip::sock_recv(&b, 64).await?);
    }
    assert_eq!(got, [&b"one"[..], b"two", b"three"]);
    drop(writer.await?);
    Ok(())
}

#[test]
fn a_dropped_sock_recv_leaves_no_registration() {
    let _w = support::watchdog("dropped_recv_no_registration", 20);
    let lp = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let fd = a.as_raw_fd();
    lp.run_until_complete(async {
        let r = tulip::timeout(Duration::from_millis(10), tulip::sock_recv(&a, 10)).await;
        assert!(r.is_err(), "nothing to read: times out");
        // The reader is gone at once; the kernel's interest by the end of the iteration.
        assert_eq!(tulip::get_running_loop().fd_interest(fd).0, (false, false));
        tulip::yield_now().await;
    });
    assert_eq!(lp.fd_interest(fd), ((false, false), (false, false)));

    // A task that is cancelled while waiting leaves nothing either.
    lp.run_until_complete(async {
        let (a2, _b2) = UnixStream::pair().unwrap();
        a2.set_nonblocking(true).unwrap();
        let fd2 = a2.as_raw_fd();
        let t = tulip::spawn(async move {
            let _ = tulip::sock_recv(&a2, 10).await;
        });
        tulip::yield_now().await;
        assert_eq!(tulip::get_running_loop().fd_interest(fd2).0, (true, false));
        assert_eq!(t.cancel().await, None);
        tulip::yield_now().await;
        assert_eq!(
            tulip::get_running_loop().fd_interest(fd2),
            ((false, false), (false, false))
        );
    });
}

#[test]
fn consecutive_operations_keep_the_fd_armed() {
    let _w = support::watchdog("consecutive_ops_armed", 20);
    let lp = EventLoop::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let fd = a.as_raw_fd();
    lp.run_until_complete(async {
        let echo = tulip::spawn(async move {
            for _ in 0..100 {
                let d = tulip::sock_recv(&b, 64).await.unwrap();
                tulip::sock_sendall(&b, &d).await.unwrap();
            }
        });
        for i in 0..100u32 {
            tulip::sock_sendall(&a, &i.to_le_bytes()).await.unwrap();
            let d = tulip::sock_recv(&a, 64).await.unwrap();
            assert_eq!(d, i.to_le_bytes());
        }
        echo.await;
        // The last recv finished; its interest lingers only until the iteration ends.
        tulip::yield_now().await;
        tulip::yield_now().await;
        assert_eq!(
            tulip::get_running_loop().fd_interest(fd),
            ((false, false), (false, false))
        );
    });
}

#[tulip::test]
async fn sendall_of_8_mib_to_a_slow_reader_arrives_intact() -> io::Result<()> {
    let _w = support::watchdog("sendall_8mib_slow_reader", 60);
    let (a, b) = support::tcp_pair();
    b.set_nonblocking(false)?;
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let expected = data.clone();
    // A slow reader on another thread: small reads with pauses.
    let reader = std::thread::spawn(move || {
        let mut b = b;
        let mut got = Vec::with_capacity(8 * 1024 * 1024);
        let mut buf = [0u8; 64 * 1024];
        let mut reads = 0u32;
        loop {
            let n = b.read(&mut buf).unwrap();
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
            reads += 1;
            if reads % 16 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let fut = tulip::sock_sendall(&a, &data);
    fut.await?;
    a.shutdown(std::net::Shutdown::Write)?;
    let got = join_thread(reader).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "data corrupted");
    Ok(())
}

#[tulip::test]
async fn connecting_to_a_closed_port_is_connection_refused() {
    let _w = support::watchdog("connect_refused", 20);
    // Bind then drop to get a port with nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = support::tcp_socket();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let err = tulip::sock_connect(&s, addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[tulip::test]
async fn connect_accept_and_echo_over_tcp() -> io::Result<()> {
    let _w = support::watchdog("connect_accept_echo", 20);
    let (l, addr) = support::listener();
    let server = tulip::spawn(async move {
        let (conn, peer) = tulip::sock_accept(&l).await?;
        assert!(peer.ip().is_loopback());
        let d = tulip::sock_recv(&conn, 100).await?;
        tulip::sock_sendall(&conn, &d).await?;
        io::Result::Ok(())
    });
    let s = support::tcp_socket();
    tulip::sock_connect(&s, addr).await?;
    tulip::sock_sendall(&s, b"ping").await?;
    assert_eq!(tulip::sock_recv(&s, 100).await?, b"ping");
    server.await
}

#[tulip::test]
async fn unix_stream_connect_and_accept() -> io::Result<()> {
    let _w = support::watchdog("unix_connect_accept", 20);
    let dir = std::env::temp_dir().join(format!("tulip-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("sock_ops.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path)?;
    l.set_nonblocking(true)?;
    let server = tulip::spawn(async move {
        let (conn, _) = tulip::sock_accept(&l).await?;
        tulip::sock_sendall(&conn, b"over unix").await
    });
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    tulip::sock_connect(&s, SockAddr::unix(&path)?).await?;
    assert_eq!(tulip::sock_recv(&s, 100).await?, b"over unix");
    server.await?;
    std::fs::remove_file(&path)?;
    Ok(())
}

#[tulip::test]
async fn blocking_sockets_are_rejected() {
    let _w = support::watchdog("blocking_rejected", 20);
    let (a, _b) = UnixStream::pair().unwrap(); // blocking by default
    let err = tulip::sock_recv(&a, 10).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("non-blocking"), "{err}");
    let err = tulip::sock_sendall(&a, b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = tulip::sock_accept(&l).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let err = tulip::sock_connect(&s, l.local_addr().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = tulip::sock_recvfrom(&u, 10).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[tulip::test]
async fn udp_recvfrom_and_sendto() -> io::Result<()> {
    let _w = support::watchdog("udp", 20);
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let (aa, ba) = (a.local_addr()?, b.local_addr()?);
    let rx = tulip::spawn(async move {
        let (d, from) = tulip::sock_recvfrom(&b, 100).await?;
        tulip::sock_sendto(&b, &d, from).await?;
        io::Result::Ok(from)
    });
    assert_eq!(tulip::sock_sendto(&a, b"dgram", ba).await?, 5);
    let (d, from) = tulip::sock_recvfrom(&a, 100).await?;
    assert_eq!((d.as_slice(), from), (&b"dgram"[..], ba));
    assert_eq!(rx.await?, aa);
    // Unix datagram sockets answer with a socket2 address.
    let (x, y) = UnixDatagram::pair()?;
    x.set_nonblocking(true)?;
    y.set_nonblocking(true)?;
    x.send(b"u")?;
    let (d, _addr) = tulip::sock_recvfrom(&y, 10).await?;
    assert_eq!(d, b"u");
    Ok(())
}

#[tulip::test]
async fn peer_reset_is_an_error_not_a_hang() {
    let _w = support::watchdog("peer_reset", 20);
    let (a, b) = support::tcp_pair();
    // SO_LINGER 0 makes close send RST.
    socket2::SockRef::from(&b)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    let waiting = tulip::spawn(async move { tulip::sock_recv(&a, 10).await });
    tulip::sleep(Duration::from_millis(5)).await;
    drop(b);
    let err = waiting.await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[tulip::test]
async fn two_hundred_concurrent_clients_against_a_sock_accept_server() -> io::Result<()> {
    let _w = support::watchdog("200_clients", 60);
    let (l, addr) = support::listener();
    let server = tulip::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..200 {
            let (conn, _) = tulip::sock_accept(&l).await?;
            conns.push(tulip::spawn(async move {
                loop {
                    let d = tulip::sock_recv(&conn, 4096).await?;
                    if d.is_empty() {
                        return io::Result::Ok(());
                    }
                    tulip::sock_sendall(&conn, &d).await?;
                }
            }));
        }
        for c in conns {
            c.await?;
        }
        io::Result::Ok(())
    });
    let clients: Vec<_> = (0..200u32)
        .map(|i| {
            tulip::spawn(async move {
                let s = support::tcp_socket();
                tulip::sock_connect(&s, addr).await?;
                for round in 0..5u32 {
                    let msg = format!("client {i} round {round}");
                    tulip::sock_sendall(&s, msg.as_bytes()).await?;
                    let mut got = Vec::new();
                    while got.len() < msg.len() {
                        let d = tulip::sock_recv(&s, 4096).await?;
                        assert!(!d.is_empty(), "early EOF");
                        got.extend_from_slice(&d);
                    }
                    assert_eq!(got, msg.as_bytes());
                }
                io::Result::Ok(())
            })
        })
        .collect();
    for c in clients {
        c.await?;
    }
    server.await
}

#[test]
fn std_stream_and_socket2_types_both_work() {
    let _w = support::watchdog("std_and_socket2", 20);
    tulip::run(async {
        let (a, b) = support::tcp_pair();
        let s2: Socket = b.into();
        tulip::sock_sendall(&a, b"via std").await.unwrap();
        assert_eq!(tulip::sock_recv(&s2, 100).await.unwrap(), b"via std");
        let back: TcpStream = s2.into();
        tulip::sock_sendall(&back, b"and back").await.unwrap();
        assert_eq!(tulip::sock_recv(&a, 100).await.unwrap(), b"and back");
    });
}

/// Waits for a thread without blocking the loop.
async fn join_thread<T>(h: std::thread::JoinHandle<T>) -> T {
    while !h.is_finished() {
        tulip::sleep(Duration::from_millis(1)).await;
    }
    h.join().expect("thread panicked")
}

/// The hazard of deferred deregistration: a socket is closed and a new one gets the same fd
/// number in the same task step, right after an operation on the old one had to wait. The
/// new socket must still be woken (at worst after the selector's short verification delay).
#[tulip::test]
async fn a_reused_fd_number_is_never_mistaken_for_an_armed_one() {
    let _w = support::watchdog("reused_fd", 30);
    let (l, addr) = support::listener();
    // A peer that answers each connection once, after a pause, so that every recv waits.
    let peer = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        for _ in 0..20 {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            std::thread::sleep(Duration::from_millis(3));
            c.write_all(&b).unwrap();
        }
    });
    let mut fds = Vec::new();
    for i in 0..20u8 {
        // Blocking connect, then non-blocking: no sock_connect (whose write interest would
        // resynchronise the registration by itself).
        let s = TcpStream::connect(addr).unwrap();
        s.set_nonblocking(true).unwrap();
        fds.push(s.as_raw_fd());
        tulip::sock_sendall(&s, &[i]).await.unwrap();
        let got = tulip::timeout(Duration::from_secs(5), tulip::sock_recv(&s, 1))
            .await
            .expect("woken, not hung")
            .unwrap();
        assert_eq!(got, [i]);
        drop(s); // closes the fd; the next connect reuses its number
    }
    peer.join().unwrap();
    fds.dedup();
    assert!(fds.len() < 20, "fd numbers were reused: {fds:?}");
}
