//! CPython's `Lib/test/test_asyncio/test_sock_lowlevel.py`, translated where tulip has the
//! feature — a socket in blocking mode is refused by every `sock_*` call, always — and the
//! `sock_connect` cases of `selector_events.py` (`EALREADY` waits). Each test names the
//! CPython test it comes from, or says it is tulip's own.
//!
//! The tests that need a freed fd number to be reused by the next socket hold one lock.

mod support;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

static FD_LOCK: Mutex<()> = Mutex::new(());

fn fd_lock() -> std::sync::MutexGuard<'static, ()> {
    FD_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn assert_refused<T: std::fmt::Debug>(r: io::Result<T>) {
    let e = r.expect_err("a blocking socket must be refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("non-blocking"), "{e}");
}

/// `test_sock_client_ops` (`_basetest_sock_client_ops`, the blocking-socket part): each of
/// `sock_connect`, `sock_sendall`, `sock_recv`, `sock_recv_into` and `sock_accept` refuses
/// a socket in blocking mode (asyncio raises `ValueError`).
#[test]
fn test_sock_client_ops_blocking() {
    let _w = support::watchdog("test_sock_client_ops_blocking", 20);
    tulip::run(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert_refused(tulip::sock_connect(&s, addr).await);
        let c = TcpStream::connect(addr).unwrap(); // blocking
        assert_refused(tulip::sock_sendall(&c, b"GET / HTTP/1.0\r\n\r\n").await);
        assert_refused(tulip::sock_recv(&c, 1024).await);
        let mut buf = [0u8; 16];
        assert_refused(tulip::sock_recv_into(&c, &mut buf).await);
        assert_refused(tulip::sock_accept(&l).await);
    });
}

/// tulip: a blocking listener that reuses both the fd number and the object address of a
/// non-blocking one a `sock_accept` just used is refused — no cache lets it through to a
/// blocking `accept()` on the loop's thread.
#[test]
fn a_blocking_listener_reusing_fd_and_address_is_refused() {
    let _w = support::watchdog("a_blocking_listener_reusing_fd_and_address_is_refused", 20);
    let _l = fd_lock();
    tulip::run(async {
        let mut slot: Option<TcpListener> = None;
        let mut fds = Vec::new();
        for round in 0..2 {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(round == 0).unwrap();
            // A client waits in the backlog: a wrong `accept()` would return, not hang.
            let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            fds.push(l.as_raw_fd());
            slot = Some(l);
            let l = slot.as_ref().unwrap();
            let r = tulip::sock_accept(l).await;
            if round == 0 {
                r.expect("the non-blocking listener accepts");
            } else {
                assert_refused(r);
            }
            slot = None;
        }
        drop(slot);
        assert_eq!(
            fds[0], fds[1],
            "the fd number was reused (the case under test)"
        );
    });
}

/// tulip: the same for a blocking stream socket after a non-blocking one, for `sock_recv`
/// and `sock_sendall`.
#[test]
fn a_blocking_stream_reusing_fd_and_address_is_refused() {
    let _w = support::watchdog("a_blocking_stream_reusing_fd_and_address_is_refused", 20);
    let _l = fd_lock();
    tulip::run(async {
        let mut slot: Option<UnixStream> = None;
        for round in 0..2 {
            let (a, b) = UnixStream::pair().unwrap();
            a.set_nonblocking(round == 0).unwrap();
            std::io::Write::write_all(&mut &b, b"x").unwrap();
            slot = Some(a);
            let a = slot.as_ref().unwrap();
            let r = tulip::sock_recv(a, 10).await;
            let w = tulip::sock_sendall(a, b"y").await;
            if round == 0 {
                assert_eq!(r.unwrap(), b"x");
                w.unwrap();
            } else {
                assert_refused(r);
                assert_refused(w);
            }
            slot = None;
            drop(b);
        }
        drop(slot);
    });
}

/// tulip: a socket switched back to blocking mode after it was used is refused too.
#[test]
fn a_socket_switched_to_blocking_is_refused() {
    tulip::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        tulip::sock_sendall(&a, b"one").await.unwrap();
        a.set_nonblocking(false).unwrap();
        assert_refused(tulip::sock_sendall(&a, b"two").await);
        drop(b);
    });
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to
/// it stays in progress (until the client retransmits its SYN, about a second later, into
/// a queue with room).
fn full_listener() -> (Socket, SocketAddr, Socket) {
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    // One established connection fills a backlog of 0.
    let filler = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    filler.connect(&addr.into()).unwrap();
    (l, addr, filler)
}

/// `sock_connect` after a cancelled first attempt (`EALREADY`): it waits for the attempt in
/// progress, as asyncio does (`selector_events._sock_connect` treats `EALREADY` as
/// `BlockingIOError`).
#[test]
fn sock_connect_waits_for_an_attempt_already_in_progress() {
    let _w = support::watchdog("sock_connect_waits_for_an_attempt_already_in_progress", 30);
    tulip::run(async {
        let (l, addr, _filler) = full_listener();
        let s = support::tcp_socket();
        // The first attempt cannot finish now; its future is dropped (cancelled).
        let first = tulip::timeout(Duration::from_millis(50), tulip::sock_connect(&s, addr)).await;
        assert!(first.is_err(), "the first attempt timed out: {first:?}");
        // Make room in the queue: the SYN's retransmission will get in.
        let (accepted, _) = l.accept().unwrap();
        let second = tulip::timeout(Duration::from_secs(10), tulip::sock_connect(&s, addr)).await;
        second
            .expect("connected within the timeout")
            .expect("the attempt in progress connected");
        assert_eq!(s.peer_addr().unwrap().as_socket(), Some(addr));
        // Once connected, connecting again to the same address succeeds at once.
        tulip::sock_connect(&s, addr).await.unwrap();
        drop(accepted);
    });
}
