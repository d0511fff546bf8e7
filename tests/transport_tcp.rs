//! The socket transport and the protocol call order on real TCP connections and
//! socketpairs: every way a connection ends, half-closes, resets, `abort`, `pause_reading`,
//! `BufferedProtocol`, extra info, `connect_accepted_socket`.

mod proto_support;
mod support;

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use proto_support::*;

const MIB: usize = 1024 * 1024;

// ---- how a connection ends: connection_lost exactly once each time --------------------------

// CPython: test_selector_events.py SelectorSocketTransportTests.test_read_ready_eof
#[tulip::test]
async fn peer_eof_closes_the_transport_and_connection_lost_runs_once() {
    let _w = support::watchdog("peer_eof", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p)).await;
    peer.write_all(b"hello").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(p.wait_lost(5.0).await, None);
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(ev[ev.len() - 2], Event::ER, "{ev:?}");
    assert_eq!(p.received(), b"hello");
    assert!(t.is_closing());
    assert!(!t.is_reading());
    // eof_received returned false: the transport closed, and the peer sees it.
    let (rest, err) = read_to_end(&peer, 5.0).await;
    assert_eq!((rest.len(), err), (0, None));
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(p.count_cl(), 1, "{:?}", p.events());
}

#[tulip::test]
async fn close_sends_what_is_buffered_then_connection_lost_runs_once() {
    let _w = support::watchdog("local_close", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.write(b"bye");
    t.close();
    assert!(t.is_closing());
    assert!(!t.is_reading());
    t.close(); // a second close is a no-op
    assert_eq!(
        p.count_cl(),
        0,
        "connection_lost is delivered later, not inside close()"
    );
    assert_eq!(p.wait_lost(5.0).await, None);
    let (got, err) = read_to_end(&peer, 5.0).await;
    assert_eq!((got.as_slice(), err), (&b"bye"[..], None));
    t.close();
    t.abort();
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

#[tulip::test]
async fn abort_ends_the_connection_and_connection_lost_runs_once() {
    let _w = support::watchdog("abort_once", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.abort();
    assert!(t.is_closing());
    t.abort();
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    let (got, _err) = read_to_end(&peer, 5.0).await;
    assert!(got.is_empty());
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_read_ready_conn_reset
#[tulip::test]
async fn peer_reset_gives_connection_lost_with_the_error_once() {
    let _w = support::watchdog("peer_reset_lost", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    set_rst_on_close(&peer);
    drop(peer);
    assert_eq!(p.wait_lost(5.0).await, Some(io::ErrorKind::ConnectionReset));
    assert!(t.is_closing());
    tulip::sleep(Duration::from_millis(20)).await;
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(
        ev,
        [Event::CM, Event::CL(Some(io::ErrorKind::ConnectionReset))],
        "a reset is no EOF"
    );
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_data_received_error
#[tulip::test]
async fn a_panic_in_data_received_is_reported_and_closes_the_connection() {
    let _w = support::watchdog("panic_in_data_received", 10);
    let seen = capture_exceptions();
    let p = Probe::new();
    let (t, mut peer) =
        connect_to_std_peer(Rec::new(&p).panic_on_data("boom in data_received")).await;
    peer.write_all(b"x").unwrap();
    let kind = p.wait_lost(5.0).await;
    assert!(kind.is_some(), "a panic is an error, not a clean close");
    assert!(t.is_closing());
    // The peer sees the connection end (EOF, or a reset).
    let (got, _err) = read_to_end(&peer, 5.0).await;
    assert!(got.is_empty());
    tulip::sleep(Duration::from_millis(20)).await;
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(ev.len(), 3, "CM DR CL: {ev:?}");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].1.as_deref(),
        Some("boom in data_received"),
        "{seen:?}"
    );
}

#[tulip::test]
async fn a_panic_in_connection_made_is_reported_and_closes_the_connection() {
    let _w = support::watchdog("panic_in_connection_made", 10);
    let seen = capture_exceptions();
    let p = Probe::new();
    let (t, peer) =
        connect_to_std_peer(Rec::new(&p).on_made(|_| panic!("boom in connection_made"))).await;
    assert!(t.is_closing());
    assert!(p.wait_lost(5.0).await.is_some());
    let (got, _err) = read_to_end(&peer, 5.0).await;
    assert!(got.is_empty());
    tulip::sleep(Duration::from_millis(20)).await;
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(ev.len(), 2, "CM CL: {ev:?}");
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1.as_deref(), Some("boom in connection_made"));
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write_exception
#[tulip::test]
async fn a_fatal_write_error_gives_connection_lost_once() {
    let _w = support::watchdog("fatal_write_error", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    // Not reading: only the write can find out the peer is gone.
    t.pause_reading();
    set_rst_on_close(&peer);
    drop(peer);
    tulip::sleep(Duration::from_millis(50)).await;
    assert_eq!(p.count_cl(), 0, "nothing noticed the reset yet");
    t.write(b"into the void");
    let kind = p.wait_lost(5.0).await;
    assert!(
        matches!(
            kind,
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        ),
        "{kind:?}"
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    // More writes are dropped silently (past asyncio's log threshold of 5).
    for _ in 0..10 {
        t.write(b"more");
    }
    assert_eq!(t.get_write_buffer_size(), 0);
    tulip::sleep(Duration::from_millis(20)).await;
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(ev.len(), 2, "{ev:?}");
}

/// A big write is pending in the buffer when the peer resets: `connection_lost(Some(_))`
/// once, no panic, no hang — whether the reset is found by the reader or the writer.
async fn reset_during_pending_write(reading: bool) {
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    if !reading {
        t.pause_reading();
    }
    t.set_write_buffer_limits(Some(usize::MAX / 2), None)
        .unwrap();
    t.write(&vec![7u8; 32 * MIB]);
    assert!(
        t.get_write_buffer_size() > 0,
        "the peer does not read: data is buffered"
    );
    tulip::sleep(Duration::from_millis(10)).await;
    set_rst_on_close(&peer);
    drop(peer);
    let kind = p.wait_lost(5.0).await;
    assert!(
        matches!(
            kind,
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        ),
        "{kind:?}"
    );
    assert_eq!(t.get_write_buffer_size(), 0, "the buffer is dropped");
    t.write(b"after");
    tulip::sleep(Duration::from_millis(20)).await;
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(ev.len(), 2, "{ev:?}");
}

#[tulip::test]
async fn peer_reset_during_a_pending_write_while_reading() {
    let _w = support::watchdog("reset_pending_write_reading", 10);
    reset_during_pending_write(true).await;
}

#[tulip::test]
async fn peer_reset_during_a_pending_write_with_reading_paused() {
    let _w = support::watchdog("reset_pending_write_paused", 10);
    reset_during_pending_write(false).await;
}

#[tulip::test]
async fn abort_drops_unsent_data() {
    let _w = support::watchdog("abort_unsent", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.set_write_buffer_limits(Some(usize::MAX / 2), None)
        .unwrap();
    let total = 32 * MIB;
    t.write(&vec![1u8; total]);
    let buffered = t.get_write_buffer_size();
    assert!(buffered > 0);
    t.abort();
    assert_eq!(
        t.get_write_buffer_size(),
        0,
        "abort drops the buffer at once"
    );
    assert_eq!(p.wait_lost(5.0).await, None);
    // The peer gets what the kernel had taken, then the end (EOF or reset): never the rest.
    let (got, _err) = read_to_end(&peer, 5.0).await;
    assert!(
        got.len() <= total - buffered,
        "{} > {}",
        got.len(),
        total - buffered
    );
    assert!(got.iter().all(|&b| b == 1));
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

// ---- half-close -----------------------------------------------------------------------------

// CPython: test_selector_events.py SelectorSocketTransportTests.test_read_ready_eof_keep_open
#[tulip::test]
async fn peer_half_close_with_eof_received_true_keeps_the_transport_writable() {
    let _w = support::watchdog("peer_half_close", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p).keep_open(true)).await;
    peer.write_all(b"question").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    p.wait_for(5.0, "eof_received", |p| p.count(|e| *e == Event::ER) == 1)
        .await;
    tulip::sleep(Duration::from_millis(20)).await;
    assert!(!t.is_closing(), "eof_received returned true: still open");
    assert_eq!(p.count_cl(), 0);
    assert_eq!(p.received(), b"question");
    t.write(b"answer");
    assert_eq!(read_n(&peer, 6, 5.0).await, b"answer");
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    let (rest, err) = read_to_end(&peer, 5.0).await;
    assert_eq!((rest.len(), err), (0, None));
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(ev[ev.len() - 2], Event::ER);
}

#[tulip::test]
async fn write_eof_half_closes_the_tulip_side_and_reading_goes_on() {
    let _w = support::watchdog("write_eof", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p)).await;
    assert!(t.can_write_eof());
    t.write(b"abc");
    t.write_eof();
    t.write_eof(); // idempotent
    assert!(!t.is_closing());
    let (got, err) = read_to_end(&peer, 5.0).await;
    assert_eq!(
        (got.as_slice(), err),
        (&b"abc"[..], None),
        "the peer sees EOF"
    );
    peer.write_all(b"more").unwrap();
    p.wait_bytes(4, 5.0).await;
    assert_eq!(p.received(), b"more");
    drop(peer);
    assert_eq!(p.wait_lost(5.0).await, None);
    let ev = p.events();
    assert_stream_order(&ev);
    assert!(ev.contains(&Event::ER), "{ev:?}");
}

#[tulip::test]
async fn write_eof_waits_for_the_buffer_to_drain() {
    let _w = support::watchdog("write_eof_drain", 20);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p).keep_open(true)).await;
    let mut bs = ByteStream::new(3);
    let data = bs.take(8 * MIB);
    let mut sum = Checksum::default();
    sum.update(&data);
    let peer2 = peer.try_clone().unwrap();
    let reader = checksum_reader(peer2, MIB);
    t.write(&data);
    assert!(t.get_write_buffer_size() > 0);
    t.write_eof();
    // The peer gets every byte, then EOF.
    let got = join_thread(reader, 15.0).await.unwrap();
    assert_eq!(got, sum.finish());
    // The tulip side still receives.
    let mut peer = peer;
    peer.set_nonblocking(true).unwrap();
    peer.write_all(b"still here").unwrap();
    p.wait_bytes(10, 5.0).await;
    assert_eq!(p.received(), b"still here");
    peer.shutdown(Shutdown::Write).unwrap();
    p.wait_for(5.0, "eof_received", |p| p.count(|e| *e == Event::ER) == 1)
        .await;
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_stream_order(&p.events());
}

// ---- writes after the end ---------------------------------------------------------------------

#[tulip::test]
async fn write_after_write_eof_panics_with_a_clear_message() {
    let _w = support::watchdog("write_after_eof", 10);
    let p = Probe::new();
    let (t, _peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.write_eof();
    let r = catch_unwind(AssertUnwindSafe(|| t.write(b"x")));
    let payload = r.expect_err("write after write_eof must panic");
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(msg.contains("write_eof"), "unclear message: {msg:?}");
    // The transport is still usable for closing.
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

#[tulip::test]
async fn writes_after_connection_lost_are_dropped_silently() {
    let _w = support::watchdog("write_after_lost", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.abort();
    assert_eq!(p.wait_lost(5.0).await, None);
    for _ in 0..20 {
        t.write(b"dropped");
    }
    t.writelines([&b"a"[..], &b"b"[..]]);
    t.write_eof();
    t.pause_reading();
    t.resume_reading();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.get_extra_info("socket").is_none(), "the socket is closed");
    let (got, _) = read_to_end(&peer, 5.0).await;
    assert!(got.is_empty(), "nothing reached the peer");
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

/// `close()` with data buffered: the buffer drains, `connection_lost` runs and the socket is
/// closed — so the fd number is free for the next socket. A write after that must be dropped
/// (asyncio counts it in `_conn_lost`); it must never reach whatever socket got the number.
#[tulip::test]
async fn a_write_after_a_draining_close_never_reaches_a_reused_fd() {
    let _w = support::watchdog("write_after_drain_close", 20);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    let old_fd = transport_fd(&t);
    t.write(&vec![9u8; 16 * MIB]);
    assert!(t.get_write_buffer_size() > 0);
    t.close();
    let reader = checksum_reader(peer, 0);
    assert_eq!(p.wait_lost(10.0).await, None);
    join_thread(reader, 10.0).await.unwrap();
    // Take the old fd number with a new connection.
    let mut pairs: Vec<(TcpStream, TcpStream)> = Vec::new();
    let mut victim = None;
    for _ in 0..64 {
        let (a, b) = support::tcp_pair();
        if a.as_raw_fd() == old_fd {
            victim = Some((pairs.len(), true));
        } else if b.as_raw_fd() == old_fd {
            victim = Some((pairs.len(), false));
        }
        pairs.push((a, b));
        if victim.is_some() {
            break;
        }
    }
    let Some((i, a_has_it)) = victim else {
        eprintln!("fd {old_fd} was not reused (other tests took it): inconclusive");
        return;
    };
    t.write(b"LEAK");
    tulip::sleep(Duration::from_millis(20)).await;
    let other = if a_has_it { &pairs[i].1 } else { &pairs[i].0 };
    let mut buf = [0u8; 16];
    let r = std::io::Read::read(&mut &*other, &mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "a write on a lost transport reached an unrelated connection: {r:?} {:?}",
        &buf[..4]
    );
}

// ---- pause_reading ------------------------------------------------------------------------

#[tulip::test]
async fn pause_reading_really_stops_data_received() {
    let _w = support::watchdog("pause_reading", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p)).await;
    assert!(t.is_reading());
    peer.write_all(b"first").unwrap();
    p.wait_bytes(5, 5.0).await;
    t.pause_reading();
    t.pause_reading(); // idempotent
    assert!(!t.is_reading());
    let data = ByteStream::new(11).take(100_000);
    tulip::sock_sendall(&peer, &data).await.unwrap();
    tulip::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        p.received_len(),
        5,
        "data_received while paused: {:?}",
        p.events()
    );
    t.resume_reading();
    t.resume_reading(); // idempotent
    assert!(t.is_reading());
    p.wait_bytes(5 + data.len(), 5.0).await;
    assert_eq!(&p.received()[5..], &data[..]);
    drop(peer);
    assert_eq!(p.wait_lost(5.0).await, None);
    assert!(!t.is_reading(), "closed: not reading");
    assert_stream_order(&p.events());
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_pause_reading_connection_made
#[tulip::test]
async fn pause_reading_in_connection_made_holds_data_and_eof() {
    let _w = support::watchdog("pause_reading_in_cm", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p).on_made(|t| t.pause_reading())).await;
    assert!(!t.is_reading());
    peer.write_all(b"held").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    tulip::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        p.events(),
        [Event::CM],
        "nothing while paused, not even EOF"
    );
    t.resume_reading();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(p.received(), b"held");
    let ev = p.events();
    assert_stream_order(&ev);
    assert!(ev.contains(&Event::ER));
}

// ---- BufferedProtocol -----------------------------------------------------------------------

/// A peer thread sends `total` bytes of a seeded stream in random-size writes and shuts its
/// side down; the `BufferedProtocol` with a `bufsize` buffer must get them all, in order.
async fn buffered_roundtrip(bufsize: usize, total: usize) {
    let p = Probe::new();
    let (t, peer) = connect_buffered_to_std_peer(BufRec::new(&p, bufsize)).await;
    let seed = bufsize as u64 + 1;
    let writer = std::thread::spawn(move || {
        let mut peer = peer;
        peer.set_nonblocking(false).unwrap();
        let mut rng = Rng::new(seed);
        let mut bs = ByteStream::new(seed);
        let mut left = total;
        while left > 0 {
            let n = rng.range(1, 64 * 1024).min(left);
            peer.write_all(&bs.take(n)).unwrap();
            left -= n;
        }
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    assert_eq!(p.wait_lost(15.0).await, None);
    let _peer = join_thread(writer, 5.0).await;
    assert!(t.is_closing());
    let got = p.received();
    assert_eq!(got.len(), total);
    assert!(
        got == ByteStream::new(seed).take(total),
        "bytes out of order or corrupted"
    );
    let ev = p.events();
    assert_buffered_order(&ev);
    assert!(ev.contains(&Event::ER));
    let bus: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::BU(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert!(
        bus.iter().all(|&n| n <= bufsize),
        "a BU bigger than the buffer"
    );
    if bufsize == 1 {
        assert_eq!(bus.len(), total);
    }
}

#[tulip::test]
async fn buffered_protocol_with_a_1_byte_buffer() {
    let _w = support::watchdog("buffered_1", 20);
    buffered_roundtrip(1, 16 * 1024).await;
}

#[tulip::test]
async fn buffered_protocol_with_a_7_byte_buffer() {
    let _w = support::watchdog("buffered_7", 20);
    buffered_roundtrip(7, 64 * 1024).await;
}

#[tulip::test]
async fn buffered_protocol_with_a_4096_byte_buffer() {
    let _w = support::watchdog("buffered_4096", 20);
    buffered_roundtrip(4096, 2 * MIB).await;
}

#[tulip::test]
async fn buffered_protocol_with_a_1_mib_buffer() {
    let _w = support::watchdog("buffered_1mib", 20);
    buffered_roundtrip(MIB, 8 * MIB).await;
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_get_buffer_zerosized
#[tulip::test]
async fn buffered_protocol_returning_an_empty_buffer_is_an_error() {
    let _w = support::watchdog("buffered_empty", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_buffered_to_std_peer(BufRec::new(&p, 0)).await;
    peer.write_all(b"x").unwrap();
    assert_eq!(p.wait_lost(5.0).await, Some(io::ErrorKind::InvalidInput));
    assert!(t.is_closing());
    let ev = p.events();
    assert_buffered_order(&ev);
    assert_eq!(
        ev,
        [
            Event::CM,
            Event::GB,
            Event::CL(Some(io::ErrorKind::InvalidInput))
        ]
    );
}

// ---- extra info, TCP_NODELAY, existing sockets, set_protocol --------------------------------

#[tulip::test]
async fn tcp_nodelay_and_addresses_on_both_ends() {
    let _w = support::watchdog("nodelay_extra_info", 10);
    let accepted: Rc<RefCell<Vec<Probe>>> = Rc::default();
    let acc = accepted.clone();
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            acc.borrow_mut().push(p.clone());
            Rec::new(&p)
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let saddr = server.local_addr().unwrap();
    let c = Probe::new();
    let (ct, _) = tulip::create_connection(
        || Rec::new(&c),
        "127.0.0.1",
        saddr.port(),
        Default::default(),
    )
    .await
    .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while accepted
        .borrow()
        .first()
        .is_none_or(|p| p.count(|e| *e == Event::CM) == 0)
    {
        assert!(Instant::now() < until, "not accepted");
        tulip::sleep(Duration::from_millis(1)).await;
    }
    let sp = accepted.borrow()[0].clone();
    let st = sp.transport();
    assert!(
        with_sock(&ct, |s| s.tcp_nodelay().unwrap()),
        "create_connection: TCP_NODELAY"
    );
    assert!(
        with_sock(&st, |s| s.tcp_nodelay().unwrap()),
        "accepted: TCP_NODELAY"
    );
    // Control: a plain socket does not have it, so the check above can fail.
    let plain = TcpStream::connect(saddr).unwrap();
    assert!(!plain.nodelay().unwrap());
    drop(plain);

    let c_local = ct.sockname().and_then(|a| a.as_socket()).unwrap();
    let c_peer = ct.peername().and_then(|a| a.as_socket()).unwrap();
    let s_local = st.sockname().and_then(|a| a.as_socket()).unwrap();
    let s_peer = st.peername().and_then(|a| a.as_socket()).unwrap();
    assert_eq!(c_peer, saddr);
    assert_eq!(s_local, saddr);
    assert_eq!(s_peer, c_local);
    assert!(c_local.ip().is_loopback() && c_local.port() != 0);
    assert!(matches!(
        ct.get_extra_info("peername"),
        Some(tulip::transports::ExtraInfo::Address(_))
    ));
    assert!(ct.get_extra_info("no such thing").is_none());
    assert_ne!(transport_fd(&ct), transport_fd(&st));

    ct.close();
    assert_eq!(c.wait_lost(5.0).await, None);
    assert_eq!(sp.wait_lost(5.0).await, None);
    assert!(ct.get_extra_info("socket").is_none());
    assert_stream_order(&c.events());
    assert_stream_order(&sp.events());
    server.close();
    server.wait_closed().await;
}

#[tulip::test]
async fn connect_accepted_socket_on_a_socketpair() {
    let _w = support::watchdog("connect_accepted_socketpair", 10);
    let (a, b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let p = Probe::new();
    let (t, pref) = tulip::connect_accepted_socket(|| Rec::new(&p).echo(), a, Default::default())
        .await
        .unwrap();
    assert_eq!(
        p.events(),
        [Event::CM],
        "connection_made ran before it returned"
    );
    assert!(pref.with(|r: &mut Rec| r.probe.count(|e| *e == Event::CM)) == 1);
    tulip::sock_sendall(&b, b"ping").await.unwrap();
    assert_eq!(read_n(&b, 4, 5.0).await, b"ping");
    assert!(t.can_write_eof());
    t.write_eof();
    let (rest, err) = read_to_end(&b, 5.0).await;
    assert_eq!((rest.len(), err), (0, None), "write_eof on a Unix socket");
    drop(b);
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_stream_order(&p.events());
}

#[tulip::test]
async fn connect_accepted_socket_on_tcp_sets_nodelay() {
    let _w = support::watchdog("connect_accepted_tcp", 10);
    let (a, b) = support::tcp_pair();
    assert!(!a.nodelay().unwrap());
    let p = Probe::new();
    let (t, _) = tulip::connect_accepted_socket(|| Rec::new(&p), a, Default::default())
        .await
        .unwrap();
    assert!(with_sock(&t, |s| s.tcp_nodelay().unwrap()));
    assert_eq!(
        t.peername().and_then(|x| x.as_socket()),
        Some(b.local_addr().unwrap())
    );
    drop(b);
    assert_eq!(p.wait_lost(5.0).await, None);
}

#[tulip::test]
async fn set_protocol_hands_the_connection_over() {
    let _w = support::watchdog("set_protocol", 10);
    let p1 = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p1)).await;
    assert!(t.get_protocol::<Rec>().is_some());
    assert!(t.get_protocol::<BufRec>().is_none());
    peer.write_all(b"one").unwrap();
    p1.wait_bytes(3, 5.0).await;
    let p2 = Probe::new();
    let r2 = t.set_protocol(Rec::new(&p2));
    assert!(
        r2.with(|r: &mut Rec| r.probe.events().is_empty()),
        "no connection_made"
    );
    peer.write_all(b"two").unwrap();
    p2.wait_bytes(3, 5.0).await;
    assert_eq!(p2.received(), b"two");
    drop(peer);
    assert_eq!(p2.wait_lost(5.0).await, None);
    assert_eq!(p1.received(), b"one");
    assert_eq!(p1.count_cl(), 0, "the old protocol hears nothing more");
    assert_eq!(p2.events(), [Event::DR(3), Event::ER, Event::CL(None)]);
}

/// `eof_received` is called at most once (`CM [DR*] [ER?] CL`), even when reading is paused
/// and resumed after a half-close that kept the transport open.
#[tulip::test]
async fn eof_received_runs_once_even_if_reading_is_paused_and_resumed_after_it() {
    let _w = support::watchdog("eof_once_after_resume", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p).keep_open(true)).await;
    peer.shutdown(Shutdown::Write).unwrap();
    p.wait_for(5.0, "eof_received", |p| p.count(|e| *e == Event::ER) == 1)
        .await;
    t.pause_reading();
    t.resume_reading();
    tulip::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        p.count(|e| *e == Event::ER),
        1,
        "eof_received twice: {:?}",
        p.events()
    );
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_stream_order(&p.events());
}

/// `get_protocol::<P>()` answers `None` when the protocol is not a `P` — also when asked
/// from inside one of the protocol's own callbacks.
#[tulip::test]
async fn get_protocol_checks_the_type_inside_a_callback_too() {
    let _w = support::watchdog("get_protocol_busy", 10);
    let seen = Rc::new(std::cell::Cell::new(None));
    let s2 = seen.clone();
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p).on_data(move |t, _| {
        s2.set(Some((
            t.get_protocol::<Rec>().is_some(),
            t.get_protocol::<BufRec>().is_some(),
        )));
    }))
    .await;
    // Outside of a callback: right.
    assert!(t.get_protocol::<Rec>().is_some());
    assert!(t.get_protocol::<BufRec>().is_none());
    peer.write_all(b"x").unwrap();
    p.wait_bytes(1, 5.0).await;
    assert_eq!(
        seen.get(),
        Some((true, false)),
        "(is a Rec, is a BufRec) from inside data_received"
    );
    t.abort();
    assert_eq!(p.wait_lost(5.0).await, None);
}
