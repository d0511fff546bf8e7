//! CPython's `Lib/test/test_asyncio/test_selector_events.py` (`SelectorTransportTests`,
//! `SelectorSocketTransportTests`, `SelectorSocketTransportBufferedProtocolTests`),
//! translated. asyncio's tests drive a `_SelectorSocketTransport` over a mock socket and
//! look at its `_buffer`; here the transport runs over a real loopback connection, and what
//! they check inside is checked from outside: what the peer receives, the protocol's
//! callbacks, `get_write_buffer_size`. Each test names the CPython test it comes from. (More
//! of that file is covered in `tests/transport_tcp.rs`, marked there.)

mod proto_support;
mod support;

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use proto_support::*;
use tulip::{BufferedProtocol, Transport};

/// Fills the socket's kernel buffers (the peer does not read) until a write stays in the
/// transport's buffer: asyncio's "send returned less" / `BlockingIOError`. Returns how many
/// bytes were written.
fn fill(t: &Transport) -> usize {
    let chunk = vec![b'.'; 64 * 1024];
    let mut n = 0;
    while t.get_write_buffer_size() == 0 {
        t.write(&chunk);
        n += chunk.len();
        assert!(n < 64 << 20, "the socket never filled");
    }
    n
}

/// A transport with a small kernel send buffer (so that `fill` is quick) and a write
/// high-water mark out of the way.
async fn small_sndbuf() -> (Probe, Transport, TcpStream) {
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    with_sock(&t, |s| s.set_send_buffer_size(4096)).unwrap();
    t.set_write_buffer_limits(Some(1 << 30), None).unwrap();
    (p, t, peer)
}

// ---- the transport's life ------------------------------------------------------------------

// CPython: test_selector_events.py SelectorSocketTransportTests.test_ctor and
// test_ctor_with_waiter: when `create_connection` returns, `connection_made` has run with
// the transport, and it is reading.
#[tulip::test]
async fn test_ctor() {
    let _w = support::watchdog("test_ctor", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p)).await;
    assert_eq!(p.events(), [Event::CM]);
    assert_eq!(
        p.transport().sockname().and_then(|a| a.as_socket()),
        t.sockname().and_then(|a| a.as_socket()),
        "connection_made got this transport"
    );
    assert!(t.is_reading());
    assert!(!t.is_closing());
    peer.write_all(b"x").unwrap();
    p.wait_bytes(1, 5.0).await;
    t.close();
}

// CPython: test_selector_events.py SelectorTransportTests.test_close: `close` marks the
// transport closing at once; `connection_lost(None)` runs once, later; a second close
// changes nothing.
#[tulip::test]
async fn test_close() {
    let _w = support::watchdog("test_close", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.close();
    assert!(t.is_closing());
    assert!(!t.is_reading(), "close stops reading at once");
    assert_eq!(p.count_cl(), 0);
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    t.close();
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
    assert_eq!(read_to_end(&peer, 5.0).await, (Vec::new(), None));
}

// CPython: test_selector_events.py SelectorTransportTests.test_close_write_buffer and
// SelectorSocketTransportTests.test_write_ready_closing: closed with data still buffered,
// the transport sends it all first; `connection_lost` waits for that.
#[tulip::test]
async fn test_close_write_buffer() {
    let _w = support::watchdog("test_close_write_buffer", 10);
    let (p, t, peer) = small_sndbuf().await;
    let n = fill(&t);
    t.write(b"tail");
    t.close();
    assert!(t.get_write_buffer_size() > 0, "premise: data is buffered");
    assert_eq!(p.count_cl(), 0);
    // Everything arrives before the EOF: the socket was not closed with data buffered.
    let (got, err) = read_to_end(&peer, 5.0).await;
    assert_eq!(err, None);
    assert_eq!(got.len(), n + 4);
    assert!(got.ends_with(b"tail"));
    assert_eq!(p.wait_lost(5.0).await, None);
}

// CPython: test_selector_events.py SelectorTransportTests.test_force_close and test_abort:
// `abort` drops the buffer, closes at once, and `connection_lost(None)` runs once.
#[tulip::test]
async fn test_force_close() {
    let _w = support::watchdog("test_force_close", 10);
    let (p, t, peer) = small_sndbuf().await;
    let n = fill(&t);
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert!(t.is_closing());
    assert_eq!(t.get_write_buffer_size(), 0, "the buffer is dropped");
    t.abort();
    assert_eq!(p.wait_lost(5.0).await, None);
    let (got, _) = read_to_end(&peer, 5.0).await;
    assert!(got.len() < n, "everything arrived although aborted");
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

// CPython: test_selector_events.py SelectorTransportTests.test_connection_lost: after
// `connection_lost(exc)` the socket is closed and the transport lets go of it.
#[tulip::test]
async fn test_connection_lost() {
    let _w = support::watchdog("test_connection_lost", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    assert!(t.get_extra_info("socket").is_some());
    set_rst_on_close(&peer);
    drop(peer);
    assert_eq!(p.wait_lost(5.0).await, Some(io::ErrorKind::ConnectionReset));
    assert!(t.get_extra_info("socket").is_none(), "the socket is closed");
    assert!(t.is_closing());
}

// ---- reading -------------------------------------------------------------------------------

// CPython: test_selector_events.py SelectorSocketTransportTests.test_pause_resume_reading
// (the modern form: pausing twice or resuming twice is a no-op, not a `RuntimeError`)
#[tulip::test]
async fn test_pause_resume_reading() {
    let _w = support::watchdog("test_pause_resume_reading", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p)).await;
    assert!(t.is_reading());
    t.pause_reading();
    assert!(!t.is_reading());
    t.pause_reading();
    assert!(!t.is_reading());
    peer.write_all(b"held").unwrap();
    tulip::sleep(Duration::from_millis(20)).await;
    assert_eq!(p.received_len(), 0);
    t.resume_reading();
    assert!(t.is_reading());
    t.resume_reading();
    assert!(t.is_reading());
    p.wait_bytes(4, 5.0).await;
    assert_eq!(p.received(), b"held");
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_read_ready
#[tulip::test]
async fn test_read_ready() {
    let _w = support::watchdog("test_read_ready", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p)).await;
    peer.write_all(b"data").unwrap();
    p.wait_bytes(4, 5.0).await;
    assert_eq!(p.events(), [Event::CM, Event::DR(4)]);
    assert_eq!(p.received(), b"data");
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_read_eof_received_error:
// a failing `eof_received` (a panic, in Rust) is reported and closes the transport.
#[tulip::test]
async fn test_read_eof_received_error() {
    let _w = support::watchdog("test_read_eof_received_error", 10);
    let seen = capture_exceptions();
    let p = Probe::new();
    let (t, peer) =
        connect_to_std_peer(Rec::new(&p).on_eof(|_| panic!("boom in eof_received"))).await;
    peer.shutdown(Shutdown::Write).unwrap();
    assert!(p.wait_lost(5.0).await.is_some(), "a panic is an error");
    assert!(t.is_closing());
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.count_cl(), 1);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1.as_deref(), Some("boom in eof_received"));
}

// ---- writing -------------------------------------------------------------------------------

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write
#[tulip::test]
async fn test_write() {
    let _w = support::watchdog("test_write", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.write(b"data");
    assert_eq!(
        t.get_write_buffer_size(),
        0,
        "sent at once, nothing buffered"
    );
    assert_eq!(read_n(&peer, 4, 5.0).await, b"data");
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write_no_data: an
// empty write neither sends nor changes the buffer.
#[tulip::test]
async fn test_write_no_data() {
    let _w = support::watchdog("test_write_no_data", 10);
    let (_p, t, peer) = small_sndbuf().await;
    t.write(b"");
    assert_eq!(t.get_write_buffer_size(), 0);
    let n = fill(&t);
    let size = t.get_write_buffer_size();
    t.write(b"");
    t.writelines([&b""[..], &b""[..]]);
    assert_eq!(t.get_write_buffer_size(), size);
    t.close();
    let (got, _) = read_to_end(&peer, 5.0).await;
    assert_eq!(got.len(), n);
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write_buffer,
// test_write_partial and test_write_ready_partial: while the socket is full, writes queue
// in order behind what is buffered (nothing jumps ahead), `get_write_buffer_size` counts
// them, and the transport sends them when the socket has room.
#[tulip::test]
async fn test_write_buffer() {
    let _w = support::watchdog("test_write_buffer", 10);
    let (_p, t, peer) = small_sndbuf().await;
    let n = fill(&t);
    let size = t.get_write_buffer_size();
    t.write(b"data1");
    t.write(b"data2");
    assert_eq!(t.get_write_buffer_size(), size + 10);
    let got = read_n(&peer, n + 10, 5.0).await;
    assert!(got[..n].iter().all(|&b| b == b'.'));
    assert_eq!(&got[n..], b"data1data2");
    // Drained: the buffer is empty again, and the next write goes straight out.
    for _ in 0..1000 {
        if t.get_write_buffer_size() == 0 {
            break;
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(t.get_write_buffer_size(), 0);
    t.write(b"next");
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(read_n(&peer, 4, 5.0).await, b"next");
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_writelines_send_full
#[tulip::test]
async fn test_writelines_send_full() {
    let _w = support::watchdog("test_writelines_send_full", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.writelines([&b"data1"[..], &b"data2"[..], &b""[..], &b"data3"[..]]);
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(read_n(&peer, 15, 5.0).await, b"data1data2data3");
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_writelines_send_partial:
// what does not fit stays buffered, in order.
#[tulip::test]
async fn test_writelines_send_partial() {
    let _w = support::watchdog("test_writelines_send_partial", 10);
    let (_p, t, peer) = small_sndbuf().await;
    let n = fill(&t);
    t.writelines([&b"data1"[..], &b"data2"[..]]);
    t.write(b"data3");
    let got = read_n(&peer, n + 15, 5.0).await;
    assert_eq!(&got[n..], b"data1data2data3");
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_writelines_pauses_protocol
#[tulip::test]
async fn test_writelines_pauses_protocol() {
    let _w = support::watchdog("test_writelines_pauses_protocol", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    with_sock(&t, |s| s.set_send_buffer_size(4096)).unwrap();
    t.set_write_buffer_limits(Some(1), Some(0)).unwrap();
    let big = vec![b'z'; 256 << 10];
    t.writelines([&big[..], &b"end"[..]]);
    assert!(
        p.paused.get(),
        "writelines over the high-water mark pauses the protocol"
    );
    assert_eq!(p.events(), [Event::CM, Event::PW]);
    let got = read_n(&peer, big.len() + 3, 5.0).await;
    assert!(got.ends_with(b"end"));
    p.wait_resumed(5.0).await;
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write_closing: a write
// after `close` is not sent (asyncio counts it in `_conn_lost`).
#[tulip::test]
async fn test_write_closing() {
    let _w = support::watchdog("test_write_closing", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    t.write(b"before");
    t.close();
    t.write(b"after");
    assert_eq!(t.get_write_buffer_size(), 0);
    let (got, err) = read_to_end(&peer, 5.0).await;
    assert_eq!((got.as_slice(), err), (&b"before"[..], None));
    assert_eq!(p.wait_lost(5.0).await, None);
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write_ready_exception:
// the send of buffered data fails (the peer reset): `connection_lost` gets the error, once,
// the buffer is dropped, and later writes are dropped too.
#[tulip::test]
async fn test_write_ready_exception() {
    let _w = support::watchdog("test_write_ready_exception", 10);
    let seen = capture_exceptions();
    let (p, t, peer) = small_sndbuf().await;
    t.pause_reading(); // only the send path may notice the reset
    fill(&t);
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
    for _ in 0..10 {
        t.write(b"data");
    }
    assert_eq!(t.get_write_buffer_size(), 0);
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.count_cl(), 1);
    // A peer's reset is not a bug of the program: nothing for the exception handler.
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write_eof: the peer
// sees EOF; a second `write_eof` does nothing; the transport still reads.
#[tulip::test]
async fn test_write_eof() {
    let _w = support::watchdog("test_write_eof", 10);
    let p = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p)).await;
    assert!(t.can_write_eof());
    t.write_eof();
    t.write_eof();
    assert_eq!(read_to_end(&peer, 5.0).await, (Vec::new(), None));
    peer.write_all(b"still reading").unwrap();
    p.wait_bytes(13, 5.0).await;
    assert!(!t.is_closing());
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
}

// CPython: test_selector_events.py SelectorSocketTransportTests.test_write_eof_buffer: with
// data buffered, the shutdown waits until it is sent.
#[tulip::test]
async fn test_write_eof_buffer() {
    let _w = support::watchdog("test_write_eof_buffer", 10);
    let (_p, t, peer) = small_sndbuf().await;
    let n = fill(&t);
    t.write(b"data");
    t.write_eof();
    assert!(t.get_write_buffer_size() > 0);
    let (got, err) = read_to_end(&peer, 5.0).await;
    assert_eq!(err, None);
    assert_eq!(got.len(), n + 4, "everything, then EOF");
    assert!(got.ends_with(b"data"));
    t.close();
}

// ---- BufferedProtocol ----------------------------------------------------------------------

/// What a `BufferedProtocol` test needs to make go wrong.
#[derive(Clone, Copy, PartialEq)]
enum Fail {
    None,
    GetBuffer,
    BufferUpdated,
    KeepOpen,
}

/// A `BufferedProtocol` that records into a probe and fails where told to.
struct Buffered {
    probe: Probe,
    buf: Vec<u8>,
    fail: Fail,
}

impl BufferedProtocol for Buffered {
    fn connection_made(&mut self, t: &Transport) {
        self.probe.log.borrow_mut().push(Event::CM);
        *self.probe.transport.borrow_mut() = Some(t.clone());
    }
    fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
        self.probe.log.borrow_mut().push(Event::GB);
        if self.fail == Fail::GetBuffer {
            panic!("boom in get_buffer");
        }
        &mut self.buf
    }
    fn buffer_updated(&mut self, n: usize) {
        self.probe.log.borrow_mut().push(Event::BU(n));
        self.probe
            .data
            .borrow_mut()
            .extend_from_slice(&self.buf[..n]);
        if self.fail == Fail::BufferUpdated {
            panic!("boom in buffer_updated");
        }
    }
    fn eof_received(&mut self) -> bool {
        self.probe.log.borrow_mut().push(Event::ER);
        self.fail == Fail::KeepOpen
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

async fn buffered(fail: Fail) -> (Probe, Transport, TcpStream) {
    let probe = Probe::new();
    let proto = Buffered {
        probe: probe.clone(),
        buf: vec![0; 16],
        fail,
    };
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (t, _) = tulip::create_connection(
        || tulip::Buffered(proto),
        "127.0.0.1",
        port,
        Default::default(),
    )
    .await
    .unwrap();
    let (peer, _) = l.accept().unwrap();
    peer.set_nonblocking(true).unwrap();
    (probe, t, peer)
}

type Reports = Rc<RefCell<Vec<(String, Option<String>)>>>;

fn panics(seen: &Reports) -> Vec<String> {
    seen.borrow()
        .iter()
        .filter_map(|(_, p)| p.clone())
        .collect()
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_get_buffer_error
#[tulip::test]
async fn test_get_buffer_error() {
    let _w = support::watchdog("test_get_buffer_error", 10);
    let seen = capture_exceptions();
    let (p, t, mut peer) = buffered(Fail::GetBuffer).await;
    peer.write_all(b"data").unwrap();
    assert!(p.wait_lost(5.0).await.is_some());
    assert!(t.is_closing());
    assert_eq!(p.events()[..2], [Event::CM, Event::GB]);
    assert_eq!(p.received_len(), 0, "no buffer_updated without a buffer");
    assert_eq!(panics(&seen), ["boom in get_buffer"]);
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_buffer_updated_error
#[tulip::test]
async fn test_buffer_updated_error() {
    let _w = support::watchdog("test_buffer_updated_error", 10);
    let seen = capture_exceptions();
    let (p, t, mut peer) = buffered(Fail::BufferUpdated).await;
    peer.write_all(b"data").unwrap();
    assert!(p.wait_lost(5.0).await.is_some());
    assert!(t.is_closing());
    assert_eq!(p.received(), b"data");
    assert_eq!(panics(&seen), ["boom in buffer_updated"]);
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_read_ready
#[tulip::test]
async fn test_buffered_read_ready() {
    let _w = support::watchdog("test_buffered_read_ready", 10);
    let (p, t, mut peer) = buffered(Fail::None).await;
    peer.write_all(b"data").unwrap();
    p.wait_bytes(4, 5.0).await;
    assert_eq!(p.events(), [Event::CM, Event::GB, Event::BU(4)]);
    // More than the 16-byte buffer: several get_buffer/buffer_updated rounds, in order.
    let data: Vec<u8> = (0..100u8).collect();
    peer.write_all(&data).unwrap();
    p.wait_bytes(104, 5.0).await;
    assert_eq!(&p.received()[4..], &data[..]);
    t.close();
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_read_ready_eof
#[tulip::test]
async fn test_buffered_read_ready_eof() {
    let _w = support::watchdog("test_buffered_read_ready_eof", 10);
    let (p, t, peer) = buffered(Fail::None).await;
    peer.shutdown(Shutdown::Write).unwrap();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert!(t.is_closing(), "eof_received returned false: closed");
    assert_buffered_order(&p.events());
    assert!(p.events().contains(&Event::ER));
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_read_ready_eof_keep_open
#[tulip::test]
async fn test_buffered_read_ready_eof_keep_open() {
    let _w = support::watchdog("test_buffered_read_ready_eof_keep_open", 10);
    let (p, t, peer) = buffered(Fail::KeepOpen).await;
    peer.shutdown(Shutdown::Write).unwrap();
    p.wait_for(5.0, "eof_received", |p| p.events().contains(&Event::ER))
        .await;
    tulip::sleep(Duration::from_millis(10)).await;
    assert!(!t.is_closing(), "eof_received returned true: still open");
    t.write(b"after eof");
    assert_eq!(read_n(&peer, 9, 5.0).await, b"after eof");
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_read_ready_conn_reset
#[tulip::test]
async fn test_buffered_read_ready_conn_reset() {
    let _w = support::watchdog("test_buffered_read_ready_conn_reset", 10);
    let seen = capture_exceptions();
    let (p, _t, peer) = buffered(Fail::None).await;
    set_rst_on_close(&peer);
    drop(peer);
    assert_eq!(p.wait_lost(5.0).await, Some(io::ErrorKind::ConnectionReset));
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

// CPython: test_selector_events.py SelectorSocketTransportBufferedProtocolTests.test_proto_type_switch:
// a `Protocol` replaced by a `BufferedProtocol` (`set_protocol`) gets the next bytes
// through `get_buffer` / `buffer_updated`.
#[tulip::test]
async fn test_proto_type_switch() {
    let _w = support::watchdog("test_proto_type_switch", 10);
    let p1 = Probe::new();
    let (t, mut peer) = connect_to_std_peer(Rec::new(&p1)).await;
    peer.write_all(b"one").unwrap();
    p1.wait_bytes(3, 5.0).await;
    let p2 = Probe::new();
    t.set_protocol(tulip::Buffered(Buffered {
        probe: p2.clone(),
        buf: vec![0; 16],
        fail: Fail::None,
    }));
    peer.write_all(b"two").unwrap();
    p2.wait_bytes(3, 5.0).await;
    assert_eq!(p2.events(), [Event::GB, Event::BU(3)]);
    assert_eq!(p1.events(), [Event::CM, Event::DR(3)]);
    t.close();
    assert_eq!(p2.wait_lost(5.0).await, None);
}
