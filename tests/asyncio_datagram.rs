//! CPython's datagram tests (`Lib/test/test_asyncio/`), translated to real sockets: each
//! test names the test it comes from. Where the original mocks the socket to force a
//! `BlockingIOError`, a Unix datagram socketpair whose other end does not read does the same
//! for real; where it forces an `OSError`, a real one is provoked (a refused port, a
//! datagram larger than UDP allows).

mod support;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use tulip::socket2::{Domain, SockAddr, Socket, Type};
use tulip::{DatagramProtocol, DatagramTransport, LoopFuture, net::DatagramOptions};

/// test_events' `MyDatagramProto`: a state, the bytes received, a `done` future.
struct MyDatagramProto {
    state: &'static str,
    nbytes: usize,
    transport: Option<DatagramTransport>,
    done: LoopFuture<()>,
    /// `_test_create_datagram_endpoint`'s server answers `resp:` + data.
    respond: bool,
    errors: Vec<io::ErrorKind>,
    os_errors: Vec<Option<i32>>,
    got: Vec<Vec<u8>>,
}

impl MyDatagramProto {
    fn new(respond: bool) -> MyDatagramProto {
        MyDatagramProto {
            state: "INITIAL",
            nbytes: 0,
            transport: None,
            done: tulip::get_running_loop().create_future(),
            respond,
            errors: Vec::new(),
            os_errors: Vec::new(),
            got: Vec::new(),
        }
    }
}

impl DatagramProtocol for MyDatagramProto {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.transport = Some(t.clone());
        assert_eq!(self.state, "INITIAL");
        self.state = "INITIALIZED";
    }
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        assert_eq!(self.state, "INITIALIZED");
        self.nbytes += data.len();
        self.got.push(data.to_vec());
        if self.respond {
            let mut resp = b"resp:".to_vec();
            resp.extend_from_slice(data);
            let t = self.transport.as_ref().expect("connection_made first");
            t.sendto(&resp, Some(addr)).unwrap();
        }
    }
    fn error_received(&mut self, exc: io::Error) {
        assert_eq!(self.state, "INITIALIZED");
        self.errors.push(exc.kind());
        self.os_errors.push(exc.raw_os_error());
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        assert_eq!(self.state, "INITIALIZED");
        self.state = "CLOSED";
        self.done.set_result(());
    }
}

/// test_utils' `run_until`: turns of the loop until `f` holds (10 s at most).
async fn run_until(mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "run_until: timed out");
        tulip::sleep(Duration::from_millis(1)).await;
    }
}

fn sockname(t: &DatagramTransport) -> SocketAddr {
    t.sockname()
        .and_then(|a| a.as_socket())
        .expect("an IP address")
}

// ---- test_events -------------------------------------------------------------------------

/// test_events `_test_create_datagram_endpoint`, for `test_create_datagram_endpoint` and
/// `test_create_datagram_endpoint_ipv6`.
async fn create_datagram_endpoint(host: &str, family: Domain) {
    let opts = DatagramOptions::new().local_addr(host, 0).family(family);
    let (s_transport, server) =
        tulip::create_datagram_endpoint(|| MyDatagramProto::new(true), opts)
            .await
            .unwrap();
    let addr = sockname(&s_transport);
    assert_eq!(server.with(|p| p.state), "INITIALIZED");
    assert!(server.with(|p| p.transport.is_some()));

    let opts = DatagramOptions::new().remote_addr(&addr.ip().to_string(), addr.port());
    let (transport, client) = tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
        .await
        .unwrap();
    assert_eq!(client.with(|p| p.state), "INITIALIZED");

    transport.sendto(b"xxx", None).unwrap();
    run_until(|| server.with(|p| p.nbytes) > 0).await;
    assert_eq!(server.with(|p| p.nbytes), 3);
    run_until(|| client.with(|p| p.nbytes) > 0).await;
    assert_eq!(client.with(|p| p.nbytes), 8); // received
    assert!(transport.get_extra_info("sockname").is_some()); // extra info is available

    transport.close(); // close connection
    client.with(|p| p.done.clone()).await.unwrap();
    assert_eq!(client.with(|p| p.state), "CLOSED");
    s_transport.close();
    server.with(|p| p.done.clone()).await.unwrap();
}

#[tulip::test]
async fn test_create_datagram_endpoint() {
    let _w = support::watchdog("test_create_datagram_endpoint", 10);
    create_datagram_endpoint("127.0.0.1", Domain::IPV4).await;
}

#[tulip::test]
async fn test_create_datagram_endpoint_ipv6() {
    let _w = support::watchdog("test_create_datagram_endpoint_ipv6", 10);
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: IPv6 not supported or enabled");
        return;
    }
    create_datagram_endpoint("::1", Domain::IPV6).await;
}

/// test_events `test_create_datagram_endpoint_sock`.
#[tulip::test]
async fn test_create_datagram_endpoint_sock() {
    let _w = support::watchdog("test_create_datagram_endpoint_sock", 10);
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    sock.set_nonblocking(true).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let opts = DatagramOptions::new().sock(sock);
    let (tr, pr) = tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
        .await
        .unwrap();
    assert_eq!(pr.with(|p| p.state), "INITIALIZED");
    tr.close();
    pr.with(|p| p.done.clone()).await.unwrap();
}

/// test_events `test_datagram_send_to_non_listening_address` (bpo-44743, gh-91227): an
/// endpoint that sent to an address where nobody listens still receives.
#[tulip::test]
async fn test_datagram_send_to_non_listening_address() {
    let _w = support::watchdog("test_datagram_send_to_non_listening_address", 10);
    async fn endpoint() -> (
        DatagramTransport,
        tulip::ProtocolRef<MyDatagramProto>,
        SockAddr,
    ) {
        let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
        let (t, p) = tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
            .await
            .unwrap();
        let a = t.sockname().unwrap();
        (t, p, a)
    }
    let (transport_1, protocol_1, addr_1) = endpoint().await;
    let (transport_2, protocol_2, addr_2) = endpoint().await;
    // Created and closed at once, to get an address that is not listening.
    let (transport_3, _protocol_3, addr_3) = endpoint().await;
    transport_3.abort();

    transport_1.sendto(b"a", Some(&addr_2)).unwrap();
    run_until(|| protocol_2.with(|p| p.got.len()) == 1).await;
    assert_eq!(protocol_2.with(|p| p.got[0].clone()), b"a");
    transport_2.sendto(b"b", Some(&addr_1)).unwrap();
    run_until(|| protocol_1.with(|p| p.got.len()) == 1).await;
    assert_eq!(protocol_1.with(|p| p.got[0].clone()), b"b");

    // This sends to an address that is not listening.
    transport_1.sendto(b"c", Some(&addr_3)).unwrap();
    tulip::sleep(Duration::ZERO).await;
    // Transport 1 still receives after sending to an address that was not listening.
    transport_2.sendto(b"d", Some(&addr_1)).unwrap();
    run_until(|| protocol_1.with(|p| p.got.len()) == 2).await;
    assert_eq!(protocol_1.with(|p| p.got[1].clone()), b"d");
    assert!(!transport_1.is_closing());
    transport_1.close();
    transport_2.close();
}

// ---- test_base_events --------------------------------------------------------------------

async fn refused(opts: DatagramOptions) -> io::Error {
    tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
        .await
        .map(|_| ())
        .unwrap_err()
}

/// test_base_events `test_create_datagram_endpoint_noaddr_nofamily`: `ValueError`.
#[tulip::test]
async fn test_create_datagram_endpoint_noaddr_nofamily() {
    let e = refused(DatagramOptions::new()).await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}

/// test_base_events `test_create_datagram_endpoint_no_matching_family`: `ValueError`.
#[tulip::test]
async fn test_create_datagram_endpoint_no_matching_family() {
    let opts = DatagramOptions::new()
        .remote_addr("127.0.0.1", 9)
        .local_addr("::1", 0);
    let e = refused(opts).await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}

/// test_base_events `test_create_datagram_endpoint_cant_bind`: the bind's `OSError`, and the
/// socket is closed (no fd leaks: the port stays the other socket's).
#[tulip::test]
async fn test_create_datagram_endpoint_cant_bind() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let opts = DatagramOptions::new()
        .local_addr("127.0.0.1", port)
        .family(Domain::IPV4);
    let e = refused(opts).await;
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}

/// test_base_events `test_create_datagram_endpoint_wrong_sock` (a stream socket) and
/// `test_create_datagram_endpoint_sock_sockopts` (options with `sock`): `ValueError`.
#[tulip::test]
async fn test_create_datagram_endpoint_wrong_sock_and_sock_sockopts() {
    let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let e = refused(DatagramOptions::new().sock(tcp)).await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    for opts in [
        |s| DatagramOptions::new().sock(s).local_addr("127.0.0.1", 0),
        |s| DatagramOptions::new().sock(s).remote_addr("127.0.0.1", 9),
        |s| DatagramOptions::new().sock(s).family(Domain::IPV4),
        |s| DatagramOptions::new().sock(s).reuse_port(true),
        |s| DatagramOptions::new().sock(s).allow_broadcast(true),
    ] as [fn(Socket) -> DatagramOptions; 5]
    {
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let e = refused(opts(udp)).await;
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
}

/// test_base_events `test_create_datagram_endpoint_reuse_address_error` /
/// `_warning`: refused since 3.8.1.
#[tulip::test]
async fn test_create_datagram_endpoint_reuse_address_error() {
    let opts = DatagramOptions::new()
        .local_addr("127.0.0.1", 0)
        .reuse_address(true);
    let e = refused(opts).await;
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("reuse_address"), "{e}");
}

/// test_base_events `test_create_datagram_endpoint_sockopts`: `reuse_port` and
/// `allow_broadcast` reach the socket.
#[tulip::test]
async fn test_create_datagram_endpoint_sockopts() {
    let opts = DatagramOptions::new()
        .local_addr("127.0.0.1", 0)
        .reuse_port(true)
        .allow_broadcast(true);
    let (t, p) = tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
        .await
        .unwrap();
    let Some(tulip::transports::ExtraInfo::Socket(sock)) = t.get_extra_info("socket") else {
        panic!("no socket");
    };
    sock.with(|s| {
        assert!(s.reuse_port().unwrap());
        assert!(s.broadcast().unwrap());
        assert!(!s.reuse_address().unwrap());
    })
    .expect("the socket is open");
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

/// test_base_events `test_create_datagram_endpoint_existing_sock_unix`, and the stale-socket
/// removal of `create_datagram_endpoint(family=AF_UNIX, local_addr=path)`.
#[tulip::test]
async fn test_create_datagram_endpoint_existing_sock_unix() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let opts = DatagramOptions::new().sock(Socket::from(std::os::fd::OwnedFd::from(a)));
    let (t, p) = tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
        .await
        .unwrap();
    b.send(b"unix").unwrap();
    run_until(|| p.with(|p| p.nbytes) == 4).await;
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

// ---- test_selector_events SelectorDatagramTransportTests --------------------------------

async fn udp_endpoint(
    remote: Option<SocketAddr>,
) -> (DatagramTransport, tulip::ProtocolRef<MyDatagramProto>) {
    let opts = match remote {
        Some(r) => DatagramOptions::new().remote_addr(&r.ip().to_string(), r.port()),
        None => DatagramOptions::new().local_addr("127.0.0.1", 0),
    };
    tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
        .await
        .unwrap()
}

/// An endpoint on a Unix datagram socketpair whose other end does not read yet: sends
/// queue as they would on `BlockingIOError`.
async fn blocked_endpoint() -> (
    DatagramTransport,
    tulip::ProtocolRef<MyDatagramProto>,
    UnixDatagram,
) {
    let (a, b) = UnixDatagram::pair().unwrap();
    let opts = DatagramOptions::new().sock(Socket::from(std::os::fd::OwnedFd::from(a)));
    let (t, p) = tulip::create_datagram_endpoint(|| MyDatagramProto::new(false), opts)
        .await
        .unwrap();
    let mut n = 0;
    while t.get_write_buffer_size() == 0 {
        t.sendto(&[1; 512], None).unwrap();
        n += 1;
        assert!(n < 100_000, "the socket never pushed back");
    }
    (t, p, b)
}

fn drain(peer: &UnixDatagram) -> Vec<Vec<u8>> {
    peer.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = peer.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// `test_read_ready`: `datagram_received(data, addr)`.
#[tulip::test]
async fn test_read_ready() {
    let (t, p) = udp_endpoint(None).await;
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"data", sockname(&t)).unwrap();
    run_until(|| p.with(|p| p.nbytes) == 4).await;
    assert_eq!(p.with(|p| p.got.clone()), [b"data".to_vec()]);
    t.close();
}

/// `test_read_ready_oserr`: a receive error is `error_received`, not fatal.
#[tulip::test]
async fn test_read_ready_oserr() {
    let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let (t, p) = udp_endpoint(Some(addr)).await;
    // The port-unreachable for this send comes back on the receive path.
    t.sendto(b"x", None).unwrap();
    run_until(|| !p.with(|p| p.errors.is_empty())).await;
    assert_eq!(
        p.with(|p| p.errors.clone()),
        [io::ErrorKind::ConnectionRefused]
    );
    assert!(!t.is_closing());
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

/// `test_sendto` and `test_sendto_no_data`: sent at once, an empty datagram too.
#[tulip::test]
async fn test_sendto_and_sendto_no_data() {
    let (t, p) = udp_endpoint(None).await;
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to: SockAddr = peer.local_addr().unwrap().into();
    t.sendto(b"data", Some(&to)).unwrap();
    t.sendto(b"", Some(&to)).unwrap();
    assert_eq!(t.get_write_buffer_size(), 0, "nothing was queued");
    let mut buf = [0u8; 16];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"data"[..], sockname(&t)));
    assert_eq!(peer.recv_from(&mut buf).unwrap().0, 0);
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

/// `test_sendto_buffer`, `test_sendto_buffer_nodata` and `test_sendto_tryagain`: with
/// datagrams queued, the next ones queue behind them (an empty one too), whole and in order.
#[tulip::test]
async fn test_sendto_buffer_and_tryagain() {
    let (t, p, peer) = blocked_endpoint().await;
    let queued = t.get_write_buffer_size();
    assert_eq!(queued, 512 + 8);
    t.sendto(b"data2", None).unwrap();
    t.sendto(b"", None).unwrap();
    assert_eq!(t.get_write_buffer_size(), queued + 5 + 8 + 8);
    let mut got = Vec::new();
    run_until(|| {
        got.extend(drain(&peer));
        t.get_write_buffer_size() == 0
    })
    .await;
    tulip::sleep(Duration::from_millis(5)).await;
    got.extend(drain(&peer));
    let tail: Vec<&[u8]> = got[got.len() - 3..].iter().map(Vec::as_slice).collect();
    assert_eq!(tail, [&[1u8; 512][..], b"data2", b""]);
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

/// `test_sendto_error_received`: an `OSError` from one datagram (here `EMSGSIZE`: more than
/// UDP carries) is `error_received`; the endpoint stays open.
#[tulip::test]
async fn test_sendto_error_received() {
    let (t, p) = udp_endpoint(None).await;
    let to: SockAddr = "127.0.0.1:9".parse::<SocketAddr>().unwrap().into();
    t.sendto(&vec![0u8; 70_000], Some(&to)).unwrap();
    assert_eq!(p.with(|p| p.os_errors.clone()), [Some(libc::EMSGSIZE)]);
    assert!(!t.is_closing());
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

/// `test_sendto_error_received_connected`: `ConnectionRefused` on a connected endpoint is
/// `error_received`, not fatal.
#[tulip::test]
async fn test_sendto_error_received_connected() {
    let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let (t, p) = udp_endpoint(Some(addr)).await;
    for _ in 0..100 {
        t.sendto(b"data", None).unwrap();
        if !p.with(|p| p.errors.is_empty()) {
            break;
        }
        tulip::sleep(Duration::from_millis(2)).await;
    }
    assert!(p.with(|p| p.errors.contains(&io::ErrorKind::ConnectionRefused)));
    assert!(!t.is_closing());
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

/// `test_sendto_connected_addr`: another address on a connected endpoint is an error.
#[tulip::test]
async fn test_sendto_connected_addr() {
    let (t, _p) = udp_endpoint(Some("127.0.0.1:1".parse().unwrap())).await;
    let other: SockAddr = "127.0.0.1:2".parse::<SocketAddr>().unwrap().into();
    assert_eq!(
        t.sendto(b"str", Some(&other)).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    let same: SockAddr = "127.0.0.1:1".parse::<SocketAddr>().unwrap().into();
    t.sendto(b"str", Some(&same)).unwrap();
    t.close();
}

/// `test_sendto_closing`: after `close()`, datagrams are dropped.
#[tulip::test]
async fn test_sendto_closing() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_nonblocking(true).unwrap();
    let (t, p) = udp_endpoint(Some(peer.local_addr().unwrap())).await;
    t.close();
    t.sendto(b"data", None).unwrap();
    p.with(|p| p.done.clone()).await.unwrap();
    tulip::sleep(Duration::from_millis(5)).await;
    assert!(peer.recv(&mut [0u8; 8]).is_err(), "nothing was sent");
}

/// `test_sendto_ready_closing`: a queue that drains after `close()` is sent, then the socket
/// is closed and `connection_lost(None)` runs.
#[tulip::test]
async fn test_sendto_ready_closing() {
    let (t, p, peer) = blocked_endpoint().await;
    t.sendto(b"data", None).unwrap();
    t.close();
    assert_eq!(p.with(|p| p.state), "INITIALIZED");
    let mut got = Vec::new();
    run_until(|| {
        got.extend(drain(&peer));
        p.with(|p| p.state) == "CLOSED"
    })
    .await;
    got.extend(drain(&peer));
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"data"[..]));
    assert!(t.get_extra_info("socket").is_none(), "the socket is closed");
}

/// `test_sendto_ready_no_data` and `get_write_buffer_size`: nothing queued, nothing to flush.
#[tulip::test]
async fn test_sendto_ready_no_data() {
    let (t, p) = udp_endpoint(None).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    t.close();
    p.with(|p| p.done.clone()).await.unwrap();
}

/// protocols.py: every `DatagramProtocol` method has a default body — a protocol that
/// implements none receives, closes and is torn down.
#[tulip::test]
async fn datagram_protocol_defaults() {
    struct Nothing;
    impl DatagramProtocol for Nothing {}
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    let (t, _p) = tulip::create_datagram_endpoint(|| Nothing, opts)
        .await
        .unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"ignored", sockname(&t)).unwrap();
    tulip::sleep(Duration::from_millis(5)).await;
    t.close();
    run_until(|| t.get_extra_info("socket").is_none()).await;
}
