//! The datagram transport on real sockets: UDP on loopback (IPv4 and IPv6), Unix datagram
//! sockets and socketpairs. Round trips and their call order, thousands of datagrams
//! checksummed, batches, a refused peer that comes back, broadcast, the send queue and its
//! water marks, close/abort with datagrams queued, panics in every callback.

mod datagram_support;
mod support;

use datagram_support::*;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::Duration;

use tulip::socket2::{Domain, SockAddr, Socket, Type};
use tulip::{net::DatagramOptions, transports::ExtraInfo};

// ---- round trips ----------------------------------------------------------------------------

#[tulip::test]
async fn udp_round_trip_with_empty_datagrams_and_call_order() {
    let _w = support::watchdog("udp_round_trip", 10);
    let slog = Rc::default();
    let server = echo_server(&slog, "127.0.0.1").await.unwrap();
    let saddr = addr_of(&server);
    let clog = Rc::default();
    let opts = DatagramOptions::new().remote_addr("127.0.0.1", saddr.port());
    let (client, proto) = tulip::create_datagram_endpoint(|| Rec::new(&clog), opts)
        .await
        .unwrap();
    assert_eq!(
        events(&clog),
        [Ev::CM],
        "connection_made before the endpoint is returned"
    );
    assert!(proto.with(|p| p.t.is_some()));
    assert_eq!(client.peername().and_then(|a| a.as_socket()), Some(saddr));
    assert!(matches!(
        client.get_extra_info("socket"),
        Some(ExtraInfo::Socket(_))
    ));
    client.sendto(b"hello", None).unwrap();
    client.sendto(b"", None).unwrap();
    client.sendto(b"world", Some(&saddr.into())).unwrap();
    assert!(
        until(5.0, || received(&clog).len() == 3).await,
        "{:?}",
        events(&clog)
    );
    assert_eq!(
        received(&clog),
        [b"hello".to_vec(), vec![], b"world".to_vec()]
    );
    // The server saw the client's address.
    let caddr = addr_of(&client);
    assert!(
        slog.borrow()
            .from
            .iter()
            .all(|a| a.as_socket() == Some(caddr))
    );
    client.close();
    assert!(client.is_closing());
    client.close();
    assert_eq!(lost(&clog).await, None);
    server.abort();
    assert_eq!(lost(&slog).await, None);
    assert_order(&events(&clog), true);
    assert_order(&events(&slog), true);
    // After the endpoint is lost, datagrams are dropped quietly.
    client.sendto(b"late", None).unwrap();
    assert!(client.sockname().is_none(), "the socket is closed");
}

#[tulip::test]
async fn two_thousand_datagrams_of_random_sizes_are_echoed_intact() {
    let _w = support::watchdog("udp_many", 60);
    let slog = Rc::default();
    let server = echo_server(&slog, "127.0.0.1").await.unwrap();
    let saddr = addr_of(&server);
    let clog: Rc<RefCell<Log>> = Rc::default();
    let opts = DatagramOptions::new().remote_addr("127.0.0.1", saddr.port());
    let (client, _) = tulip::create_datagram_endpoint(|| Rec::new(&clog), opts)
        .await
        .unwrap();
    // xorshift: sizes 0..=60 KiB, each datagram's bytes derived from its number.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Each datagram: its number at both ends, a byte pattern of its own between.
    let make = |i: u32, len: usize| -> Vec<u8> {
        let mut d = vec![(i.wrapping_mul(2_654_435_761) >> 24) as u8; len];
        if len >= 8 {
            d[..4].copy_from_slice(&i.to_le_bytes());
            d[len - 4..].copy_from_slice(&i.to_be_bytes());
        }
        d
    };
    const N: u32 = 2000;
    const WINDOW: u32 = 2; // what loopback's default receive buffer holds at 60 KiB each
    let (mut sent, mut sum_sent, mut bytes) = (0u32, 0u64, 0usize);
    // A checksum over 8-byte words (quick enough in a debug build), position-weighted.
    let checksum = |d: &[u8]| -> u64 {
        let mut c = d.len() as u64;
        for (k, w) in d.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..w.len()].copy_from_slice(w);
            c = c.wrapping_add(u64::from_le_bytes(b).wrapping_mul(k as u64 | 1));
        }
        c
    };
    while sent < N {
        let got = count_dr(&clog) as u32;
        if sent - got < WINDOW {
            let len = (rand() % (60 * 1024 + 1)) as usize;
            let d = make(sent, len);
            sum_sent = sum_sent.wrapping_add(checksum(&d));
            bytes += d.len();
            client.sendto(&d, None).unwrap();
            sent += 1;
        } else {
            let want = sent;
            assert!(
                until(5.0, || count_dr(&clog) as u32 > want - WINDOW).await,
                "echoes stopped at {} of {sent}",
                count_dr(&clog)
            );
        }
    }
    assert!(until(10.0, || count_dr(&clog) as u32 == N).await);
    let got = received(&clog);
    let sum_got = got.iter().fold(0u64, |s, d| s.wrapping_add(checksum(d)));
    assert_eq!(sum_got, sum_sent);
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), bytes);
    for (i, d) in got.iter().enumerate() {
        assert!(
            *d == make(i as u32, d.len()),
            "datagram {i} arrived intact and in order"
        );
    }
    assert!(!events(&clog).iter().any(|e| matches!(e, Ev::ER(_))));
    client.close();
    server.close();
    lost(&clog).await;
    lost(&slog).await;
}

#[tulip::test]
async fn a_burst_arrives_whole_one_datagram_received_each() {
    let _w = support::watchdog("udp_burst", 10);
    let slog: Rc<RefCell<Log>> = Rc::default();
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (server, _) = tulip::create_datagram_endpoint(|| Rec::new(&slog), opts)
        .await
        .unwrap();
    let saddr = addr_of(&server);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..100u8 {
        peer.send_to(&[i; 64], saddr).unwrap();
    }
    assert!(until(5.0, || received(&slog).len() == 100).await);
    for (i, d) in received(&slog).iter().enumerate() {
        assert_eq!(d, &vec![i as u8; 64]);
    }
    let paddr = peer.local_addr().unwrap();
    assert!(
        slog.borrow()
            .from
            .iter()
            .all(|a| a.as_socket() == Some(paddr))
    );
    server.close();
    lost(&slog).await;
}

#[tulip::test]
async fn ipv6_round_trip() {
    let _w = support::watchdog("udp_ipv6", 10);
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    let slog = Rc::default();
    let server = echo_server(&slog, "::1").await.unwrap();
    let saddr = addr_of(&server);
    assert!(saddr.is_ipv6());
    let clog = Rc::default();
    let opts = DatagramOptions::new()
        .remote_addr("::1", saddr.port())
        .family(Domain::IPV6);
    let (client, _) = tulip::create_datagram_endpoint(|| Rec::new(&clog), opts)
        .await
        .unwrap();
    client.sendto(b"six", None).unwrap();
    assert!(until(5.0, || received(&clog).len() == 1).await);
    assert_eq!(received(&clog), [b"six".to_vec()]);
    client.close();
    server.close();
    lost(&clog).await;
    lost(&slog).await;
}

// ---- errors that leave the endpoint open ---------------------------------------------------

#[tulip::test]
async fn a_refused_peer_is_error_received_and_the_endpoint_works_when_it_is_back() {
    let _w = support::watchdog("udp_refused", 10);
    let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let paddr = gone.local_addr().unwrap();
    drop(gone);
    let clog: Rc<RefCell<Log>> = Rc::default();
    let opts = DatagramOptions::new().remote_addr("127.0.0.1", paddr.port());
    let (client, _) = tulip::create_datagram_endpoint(|| Rec::new(&clog), opts)
        .await
        .unwrap();
    // The ICMP port-unreachable comes back as ECONNREFUSED on a later receive or send.
    let refused = || events(&clog).contains(&Ev::ER(io::ErrorKind::ConnectionRefused));
    for _ in 0..50 {
        client.sendto(b"anyone?", None).unwrap();
        if until(0.1, refused).await {
            break;
        }
    }
    assert!(refused(), "{:?}", events(&clog));
    assert!(
        !client.is_closing(),
        "an error from one datagram leaves the endpoint open"
    );
    // The peer comes back on the same port.
    let Ok(back) = UdpSocket::bind(paddr) else {
        eprintln!("skipped the second half: the port was taken meanwhile");
        return;
    };
    back.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.sendto(b"there you are", None).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = blocking(move || {
        let r = back
            .recv_from(&mut buf)
            .map(|(n, a)| (buf[..n].to_vec(), a));
        (r, back)
    })
    .await
    .map(|(r, back)| {
        let (d, a) = r.unwrap();
        back.send_to(b"back", a).unwrap();
        (d.len(), a)
    })
    .unwrap();
    assert_eq!((n, from), (13, addr_of(&client)));
    assert!(until(5.0, || received(&clog).contains(&b"back".to_vec())).await);
    client.close();
    assert_eq!(lost(&clog).await, None);
    assert_order(&events(&clog), true);
}

/// Runs `f` on a thread and awaits it without blocking the loop.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let h = std::thread::spawn(f);
    while !h.is_finished() {
        tulip::sleep(Duration::from_millis(1)).await;
    }
    h.join().ok()
}

#[tulip::test]
async fn broadcast_is_refused_without_allow_broadcast() {
    let _w = support::watchdog("udp_broadcast", 10);
    // Loopback's broadcast address: the test's datagrams never leave the machine. A
    // receiver bound to the wildcard address gets what is broadcast there.
    let receiver = UdpSocket::bind("0.0.0.0:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = receiver.local_addr().unwrap().port();
    let bcast: SockAddr = SocketAddr::from(([127, 255, 255, 255], port)).into();

    let log: Rc<RefCell<Log>> = Rc::default();
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (t, _) = tulip::create_datagram_endpoint(|| Rec::new(&log), opts)
        .await
        .unwrap();
    t.sendto(b"refused", Some(&bcast)).unwrap();
    assert_eq!(
        events(&log),
        [Ev::CM, Ev::ER(io::ErrorKind::PermissionDenied)],
        "EACCES without SO_BROADCAST, as error_received"
    );
    assert!(!t.is_closing());
    t.close();
    lost(&log).await;

    let log2: Rc<RefCell<Log>> = Rc::default();
    let opts = DatagramOptions::new()
        .local_addr("127.0.0.1", 0)
        .allow_broadcast(true);
    let (t, _) = tulip::create_datagram_endpoint(|| Rec::new(&log2), opts)
        .await
        .unwrap();
    let Some(ExtraInfo::Socket(sock)) = t.get_extra_info("socket") else {
        panic!("no socket")
    };
    assert!(
        sock.with(|s| s.broadcast().unwrap()).expect("open"),
        "SO_BROADCAST is set"
    );
    t.sendto(b"to all", Some(&bcast)).unwrap();
    let got = blocking(move || {
        let mut buf = [0u8; 16];
        receiver.recv_from(&mut buf).map(|(n, _)| buf[..n].to_vec())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        got, b"to all",
        "the broadcast arrived (and the refused one did not)"
    );
    assert_eq!(events(&log2), [Ev::CM]);
    t.close();
    lost(&log2).await;
}

#[tulip::test]
async fn sendto_checks_the_address() {
    let _w = support::watchdog("udp_sendto_addr", 10);
    let log: Rc<RefCell<Log>> = Rc::default();
    let opts = DatagramOptions::new().remote_addr("127.0.0.1", 9);
    let (t, _) = tulip::create_datagram_endpoint(|| Rec::new(&log), opts)
        .await
        .unwrap();
    let other: SockAddr = "127.0.0.1:10".parse::<SocketAddr>().unwrap().into();
    let e = t.sendto(b"x", Some(&other)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
    t.close();
    lost(&log).await;

    let log: Rc<RefCell<Log>> = Rc::default();
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (t, _) = tulip::create_datagram_endpoint(|| Rec::new(&log), opts)
        .await
        .unwrap();
    let e = t.sendto(b"x", None).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(t.peername().is_none());
    t.close();
    lost(&log).await;
}

// ---- options -------------------------------------------------------------------------------

#[tulip::test]
async fn options_that_asyncio_refuses_are_refused() {
    let _w = support::watchdog("dgram_options", 10);
    let log: Rc<RefCell<Log>> = Rc::default();
    let refused = |o: DatagramOptions| {
        let log = log.clone();
        async move {
            tulip::create_datagram_endpoint(|| Rec::new(&log), o)
                .await
                .map(|_| ())
                .unwrap_err()
        }
    };
    let e = refused(
        DatagramOptions::new()
            .local_addr("127.0.0.1", 0)
            .reuse_address(true),
    )
    .await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("reuse_port"), "{e}");
    let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    let e = refused(DatagramOptions::new().sock(udp).local_addr("127.0.0.1", 0)).await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let e = refused(DatagramOptions::new().sock(tcp)).await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = refused(DatagramOptions::new()).await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = refused(
        DatagramOptions::new()
            .local_path("/tmp/x")
            .remote_addr("127.0.0.1", 1),
    )
    .await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = refused(
        DatagramOptions::new()
            .local_addr("127.0.0.1", 0)
            .remote_addr("::1", 9),
    )
    .await;
    assert_eq!(
        e.kind(),
        io::ErrorKind::InvalidInput,
        "no family common to both ends: {e}"
    );
    assert!(events(&log).is_empty());

    // reuse_port: two endpoints on one port.
    let opts = DatagramOptions::new()
        .local_addr("127.0.0.1", 0)
        .reuse_port(true);
    let (a, _) = tulip::create_datagram_endpoint(|| Rec::new(&log), opts)
        .await
        .unwrap();
    let port = addr_of(&a).port();
    let opts = DatagramOptions::new()
        .local_addr("127.0.0.1", port)
        .reuse_port(true);
    let (b, _) = tulip::create_datagram_endpoint(|| Rec::new(&log), opts)
        .await
        .unwrap();
    assert_eq!(addr_of(&b).port(), port);
    // A family alone: an unbound socket of it.
    let opts = DatagramOptions::new().family(Domain::IPV4);
    let (c, _) = tulip::create_datagram_endpoint(|| Rec::new(&log), opts)
        .await
        .unwrap();
    c.sendto(b"x", Some(&addr_of(&a).into())).unwrap();
    for t in [a, b, c] {
        t.close();
    }
    assert!(
        until(5.0, || events(&log)
            .iter()
            .filter(|e| matches!(e, Ev::CL(_)))
            .count()
            == 3)
        .await
    );
}

// ---- panics in callbacks -------------------------------------------------------------------

#[test]
fn a_panic_in_any_callback_aborts_the_endpoint_and_connection_lost_runs_once() {
    let _w = support::watchdog("dgram_panics", 20);
    for panic_in in [
        PanicIn::ConnectionMade,
        PanicIn::DatagramReceived,
        PanicIn::ErrorReceived,
        PanicIn::PauseWriting,
        PanicIn::ResumeWriting,
        PanicIn::ConnectionLost,
    ] {
        let lp = tulip::EventLoop::new().unwrap();
        let reported = Rc::new(RefCell::new(0));
        let r2 = reported.clone();
        lp.set_exception_handler(move |_, _| *r2.borrow_mut() += 1);
        let log: Rc<RefCell<Log>> = Rc::default();
        let l2 = log.clone();
        lp.run_until_complete(async move {
            let (a, b) = UnixDatagram::pair().unwrap();
            let opts = DatagramOptions::new().sock(Socket::from(std::os::fd::OwnedFd::from(a)));
            let made = tulip::create_datagram_endpoint(
                || Rec {
                    panic_in,
                    ..Rec::new(&l2)
                },
                opts,
            )
            .await;
            let Ok((t, _)) = made else {
                return; // the panic in connection_made can fail the creation too
            };
            let mut b = Some(b);
            match panic_in {
                PanicIn::DatagramReceived => {
                    let b = b.as_ref().unwrap();
                    b.send(b"x").unwrap();
                    b.send(b"y").unwrap();
                }
                PanicIn::ErrorReceived => {
                    drop(b.take()); // the peer is gone: sendto fails
                    t.sendto(b"x", None).unwrap();
                }
                PanicIn::PauseWriting => {
                    t.set_write_buffer_limits(Some(0), Some(0)).unwrap();
                    fill(&t, 10);
                }
                PanicIn::ResumeWriting => {
                    t.set_write_buffer_limits(Some(0), Some(0)).unwrap();
                    fill(&t, 10); // paused; reading the peer below lets the queue drain
                }
                PanicIn::ConnectionLost => t.close(),
                _ => {}
            }
            until(5.0, || {
                if let (PanicIn::ResumeWriting, Some(b)) = (panic_in, &b) {
                    drain_peer(b);
                }
                events(&l2).iter().any(|e| matches!(e, Ev::CL(_)))
            })
            .await;
            tulip::sleep(Duration::from_millis(5)).await;
        });
        let ev = events(&log);
        assert_order(&ev, true);
        let expect = if panic_in == PanicIn::ConnectionLost {
            None
        } else {
            Some(io::ErrorKind::Other)
        };
        assert_eq!(ev.last(), Some(&Ev::CL(expect)), "{ev:?}");
        if panic_in == PanicIn::DatagramReceived {
            assert_eq!(received(&log), [b"x".to_vec()], "nothing after the panic");
        }
        if panic_in == PanicIn::ResumeWriting {
            assert!(
                ev.contains(&Ev::Pause) && ev.contains(&Ev::Resume),
                "{ev:?}"
            );
        }
        assert_eq!(*reported.borrow(), 1, "the panic was reported once");
        lp.close();
    }
}

// ---- sock_recvfrom_into ---------------------------------------------------------------------

#[tulip::test]
async fn sock_recvfrom_into_fills_the_callers_buffer() -> io::Result<()> {
    let _w = support::watchdog("sock_recvfrom_into", 10);
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    let (aa, ba) = (a.local_addr()?, b.local_addr()?);
    let rx = tulip::spawn(async move {
        let mut buf = [0u8; 4];
        // Waits: nothing has been sent yet. A longer datagram is truncated to the buffer.
        let (n, from) = tulip::sock_recvfrom_into(&b, &mut buf).await?;
        io::Result::Ok((buf, n, from))
    });
    tulip::yield_now().await;
    tulip::sock_sendto(&a, b"datagram", ba).await?;
    assert_eq!(rx.await?, (*b"data", 4, aa));
    // Unix datagram sockets answer with a socket2 address; an empty datagram is 0 bytes.
    let (x, y) = UnixDatagram::pair()?;
    y.set_nonblocking(true)?;
    x.send(b"")?;
    x.send(b"u")?;
    let mut buf = [9u8; 8];
    let (n, _addr) = tulip::sock_recvfrom_into(&y, &mut buf).await?;
    assert_eq!(n, 0);
    let (n, _addr) = tulip::sock_recvfrom_into(&y, &mut buf[..2]).await?;
    assert_eq!((n, buf[0]), (1, b'u'));
    // A socket in blocking mode is refused, as for every sock_* operation.
    let u = UdpSocket::bind("127.0.0.1:0")?;
    let err = tulip::sock_recvfrom_into(&u, &mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    Ok(())
}
