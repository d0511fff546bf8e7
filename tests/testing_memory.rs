//! `tulip::testing::MemorySocket` driving callback protocols: chunks, EOF and the half-close
//! rule, reset, close and abort, write flow control with a peer that stops reading,
//! `pause_reading`, a `BufferedProtocol` with a tiny buffer, extra info, and two protocols
//! talking over a pair. Every test checks the protocol's call order (`CM [DR*] [ER?] CL`).

mod proto_support;
mod support;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use proto_support::*;
use tulip::testing::{MemorySocket, settle};
use tulip::{Buffered, Protocol, Transport};

// ---- a line protocol ----------------------------------------------------------------------

/// Splits what arrives into `\r\n`-terminated lines and answers each with it upper-cased;
/// `QUIT` closes the connection.
#[derive(Default)]
struct Lines {
    transport: Option<Transport>,
    partial: Vec<u8>,
    lines: Rc<RefCell<Vec<String>>>,
}

impl Protocol for Lines {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(i) = self.partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.partial.drain(..i + 2).collect();
            let text = String::from_utf8_lossy(&line[..i]).into_owned();
            let t = self.transport.as_ref().expect("connected");
            if text == "QUIT" {
                t.write(b"BYE\r\n");
                t.close();
            } else {
                t.write(format!("{}\r\n", text.to_uppercase()).as_bytes());
            }
            self.lines.borrow_mut().push(text);
        }
    }
}

#[tulip::test]
async fn line_protocol_at_every_split_point() {
    let _w = support::watchdog("line_split", 20);
    let msg = b"hello\r\nwide world\r\nQUIT\r\n";
    for i in 0..=msg.len() {
        for j in i..=msg.len() {
            let sock = MemorySocket::new();
            let (t, p) = sock.connect(Lines::default());
            sock.feed_chunks([&msg[..i], &msg[i..j], &msg[j..]]);
            settle().await;
            assert_eq!(
                sock.take_written(),
                b"HELLO\r\nWIDE WORLD\r\nBYE\r\n",
                "split at {i}, {j}"
            );
            assert_eq!(
                p.with(|l| l.lines.borrow().clone()),
                ["hello", "wide world", "QUIT"]
            );
            assert!(t.is_closing() && sock.is_closed(), "QUIT closed it");
        }
    }
}

#[tulip::test]
async fn each_chunk_is_one_data_received_delivered_by_the_loop() {
    let _w = support::watchdog("chunks", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    sock.feed(b"ab");
    sock.feed(b"");
    sock.feed_chunks([&b"cde"[..], b"f"]);
    assert!(p.events().is_empty(), "nothing from inside connect or feed");
    assert_eq!(sock.unread(), 6);
    settle().await;
    assert_eq!(
        p.events(),
        [Event::CM, Event::DR(2), Event::DR(3), Event::DR(1)]
    );
    assert_eq!(p.received(), b"abcdef");
    assert_eq!(sock.unread(), 0);
    t.close();
    settle().await;
    assert_stream_order(&p.events());
    assert_eq!(p.lost_kind(), Some(None));
}

// ---- EOF, reset, close, abort ---------------------------------------------------------------

#[tulip::test]
async fn eof_received_false_closes() {
    let _w = support::watchdog("eof_false", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    sock.feed(b"last words");
    sock.feed_eof();
    settle().await;
    assert_eq!(
        p.events(),
        [Event::CM, Event::DR(10), Event::ER, Event::CL(None)]
    );
    assert!(t.is_closing());
    assert!(sock.is_closed());
}

#[tulip::test]
async fn eof_received_true_keeps_the_write_side_open() {
    let _w = support::watchdog("eof_true", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p).keep_open(true));
    sock.feed_eof();
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::ER]);
    assert!(!t.is_closing(), "a half-close");
    t.write(b"still talking");
    t.write_eof();
    settle().await;
    assert_eq!(sock.written(), b"still talking");
    assert!(sock.wrote_eof());
    assert!(!sock.is_closed());
    t.close();
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::ER, Event::CL(None)]);
    assert!(sock.is_closed());
}

#[tulip::test]
async fn reset_loses_the_connection_with_connection_reset() {
    let _w = support::watchdog("reset", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    sock.feed(b"x");
    settle().await;
    sock.feed(b"never read");
    sock.reset();
    settle().await;
    assert_eq!(
        p.events(),
        [
            Event::CM,
            Event::DR(1),
            Event::CL(Some(io::ErrorKind::ConnectionReset))
        ]
    );
    assert!(t.is_closing() && sock.is_closed());
    // Writes after the loss are dropped, not sent.
    t.write(b"late");
    assert!(sock.written().is_empty());
}

#[tulip::test]
async fn reset_while_paused_is_found_by_the_next_write() {
    let _w = support::watchdog("reset_paused", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    settle().await;
    t.pause_reading();
    sock.reset();
    settle().await;
    assert_eq!(p.events(), [Event::CM], "not reading: nothing noticed yet");
    t.write(b"hello?");
    settle().await;
    assert_eq!(p.lost_kind(), Some(Some(io::ErrorKind::ConnectionReset)));
    assert_stream_order(&p.events());
}

#[tulip::test]
async fn close_sends_the_buffer_first_then_connection_lost_once() {
    let _w = support::watchdog("close_buffered", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    settle().await;
    sock.pause_peer_reading();
    t.write(b"buffered ");
    t.write(b"data");
    assert_eq!(t.get_write_buffer_size(), 13);
    t.close();
    t.close(); // twice is a no-op
    assert!(t.is_closing());
    settle().await;
    assert_eq!(p.events(), [Event::CM], "waits for the buffer to drain");
    assert!(!sock.is_closed());
    assert!(sock.written().is_empty());
    sock.resume_peer_reading();
    settle().await;
    assert_eq!(sock.written(), b"buffered data");
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
    assert!(sock.is_closed());
    // Whatever else happens now, connection_lost is not called again.
    sock.reset();
    t.abort();
    settle().await;
    assert_eq!(p.count_cl(), 1);
}

#[tulip::test]
async fn abort_drops_the_buffer_and_loses_the_connection_at_once() {
    let _w = support::watchdog("abort", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    settle().await;
    sock.pause_peer_reading();
    t.write(b"never sent");
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(
        p.events().iter().all(|e| !matches!(e, Event::CL(_))),
        "CL comes from the loop"
    );
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
    sock.resume_peer_reading();
    settle().await;
    assert!(sock.written().is_empty());
    assert!(sock.is_closed());
}

#[tulip::test]
async fn close_before_connection_made_still_calls_both() {
    let _w = support::watchdog("close_early", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    t.close();
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

// ---- write flow control -------------------------------------------------------------------

#[tulip::test]
async fn pause_writing_when_the_peer_stops_reading() {
    let _w = support::watchdog("pause_writing", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    settle().await;
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    t.set_write_buffer_limits(Some(100), Some(20)).unwrap();
    t.write(&[b'a'; 30]); // the peer reads: sent at once
    assert_eq!(t.get_write_buffer_size(), 0);
    sock.pause_peer_reading();
    t.write(&[b'b'; 60]);
    assert_eq!(t.get_write_buffer_size(), 60);
    assert!(!p.paused.get(), "60 <= 100");
    t.write(&[b'c'; 60]);
    // Outside a protocol callback, pause_writing comes synchronously (asyncio's rule).
    assert!(p.paused.get());
    assert_eq!(*p.flow_sizes.borrow(), [(true, 120)]);
    settle().await;
    assert_eq!(
        sock.written().len(),
        30,
        "nothing more while the peer is stalled"
    );
    sock.resume_peer_reading();
    settle().await;
    assert!(!p.paused.get());
    assert_eq!(*p.flow_sizes.borrow(), [(true, 120), (false, 0)]);
    let mut want = vec![b'a'; 30];
    want.extend([b'b'; 60]);
    want.extend([b'c'; 60]);
    assert_eq!(sock.written(), want);
    t.close();
    settle().await;
    assert_stream_order(&p.events());
}

#[tulip::test]
async fn pause_writing_from_inside_a_callback_comes_right_after_it() {
    let _w = support::watchdog("pause_in_cb", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    let (t, _) = sock.connect(Rec::new(&p).on_data(move |t, _| {
        t.write(&[0; 200]);
        o.borrow_mut().push("wrote");
    }));
    settle().await;
    t.set_write_buffer_limits(Some(100), None).unwrap();
    sock.pause_peer_reading();
    sock.feed(b"go");
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::DR(2), Event::PW]);
    assert_eq!(*order.borrow(), ["wrote"]);
    // Lowering the high-water mark under the buffered size pauses too; raising it
    // above does not resume (only a drain to the low mark does).
    sock.resume_peer_reading();
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::DR(2), Event::PW, Event::RW]);
    sock.pause_peer_reading();
    t.write(&[1; 50]);
    assert!(!p.paused.get());
    t.set_write_buffer_limits(Some(40), Some(10)).unwrap();
    assert!(
        p.paused.get(),
        "set_write_buffer_limits under the buffer pauses"
    );
    sock.resume_peer_reading();
    settle().await;
    assert!(!p.paused.get());
    assert_eq!(sock.written().len(), 250);
    t.abort();
    settle().await;
    assert_stream_order(&p.events());
}

#[tulip::test]
async fn resume_writing_may_write_more() {
    let _w = support::watchdog("resume_writes", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p).on_resume(|t| t.write(b"after resume")));
    settle().await;
    t.set_write_buffer_limits(Some(10), Some(0)).unwrap();
    sock.pause_peer_reading();
    t.write(&[b'x'; 11]);
    assert!(p.paused.get());
    sock.resume_peer_reading();
    settle().await;
    let mut want = vec![b'x'; 11];
    want.extend_from_slice(b"after resume");
    assert_eq!(sock.written(), want);
    assert_eq!(t.get_write_buffer_size(), 0);
    t.close();
    settle().await;
    assert_stream_order(&p.events());
}

// ---- reading ------------------------------------------------------------------------------

#[tulip::test]
async fn pause_reading_is_honoured() {
    let _w = support::watchdog("pause_reading", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    t.pause_reading(); // before connection_made: reading does not start
    assert!(!t.is_reading());
    sock.feed(b"wait");
    settle().await;
    assert_eq!(p.events(), [Event::CM]);
    assert_eq!(sock.unread(), 4);
    t.resume_reading();
    assert!(t.is_reading());
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::DR(4)]);
    t.pause_reading();
    sock.feed(b"more");
    sock.feed_eof();
    settle().await;
    assert_eq!(p.events(), [Event::CM, Event::DR(4)], "not even the EOF");
    t.resume_reading();
    settle().await;
    assert_eq!(
        p.events(),
        [
            Event::CM,
            Event::DR(4),
            Event::DR(4),
            Event::ER,
            Event::CL(None)
        ]
    );
}

#[tulip::test]
async fn buffered_protocol_with_a_tiny_buffer() {
    let _w = support::watchdog("buffered_tiny", 10);
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (_t, _) = sock.connect(Buffered(BufRec::new(&p, 3)));
    sock.feed(b"hello, world");
    sock.feed(b"!");
    sock.feed_eof();
    settle().await;
    assert_eq!(p.received(), b"hello, world!");
    let ev = p.events();
    let sizes: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::BU(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(
        sizes,
        [3, 3, 3, 3, 1],
        "a chunk larger than the buffer takes several reads"
    );
    assert_buffered_order(&ev);
    assert_eq!(p.lost_kind(), Some(None));
}

// ---- extra info ---------------------------------------------------------------------------

#[tulip::test]
async fn extra_info_answers_made_up_addresses() {
    let _w = support::watchdog("extra_info", 10);
    let sock = MemorySocket::new();
    let addr = |s: &str| socket2::SockAddr::from(s.parse::<std::net::SocketAddr>().unwrap());
    sock.set_sockname(addr("10.0.0.1:1234"));
    let (t, _) = sock.connect(Rec::new(&Probe::new()));
    assert_eq!(t.peername(), Some(addr("127.0.0.1:8000")));
    assert_eq!(t.sockname(), Some(addr("10.0.0.1:1234")));
    assert_eq!(sock.peername(), addr("127.0.0.1:8000"));
    assert!(t.socket().is_none(), "no socket");
    assert!(t.get_extra_info("cipher").is_none());
    assert!(t.can_write_eof());
    t.close();
}

// ---- two protocols ------------------------------------------------------------------------

#[tulip::test]
async fn a_pair_connects_two_protocols_and_close_reaches_the_peer_as_eof() {
    let _w = support::watchdog("pair", 10);
    let (pa, pb) = (Probe::new(), Probe::new());
    let (a, b) = MemorySocket::pair();
    let (ta, _) = a.connect(Rec::new(&pa).echo());
    let (tb, _) = b.connect(Rec::new(&pb));
    settle().await;
    tb.write(b"ping");
    assert!(pa.events() == [Event::CM], "not from inside write");
    settle().await;
    assert_eq!(pa.received(), b"ping");
    assert_eq!(pb.received(), b"ping", "echoed");
    assert_eq!(a.written(), b"ping");
    assert_eq!(b.written(), b"ping");
    assert_eq!(ta.peername(), Some(b.sockname()));
    assert_eq!(tb.peername(), Some(a.sockname()));
    tb.write(b"bye");
    tb.close();
    settle().await;
    // b closed after sending: a reads "bye", then EOF; its eof_received says false, so it
    // closes (its echo of "bye" is dropped: b is gone).
    assert_eq!(pa.received(), b"pingbye");
    assert_eq!(pa.events().last(), Some(&Event::CL(None)));
    assert_eq!(pb.events(), [Event::CM, Event::DR(4), Event::CL(None)]);
    assert_stream_order(&pa.events());
    assert!(a.is_closed() && b.is_closed());
}

#[tulip::test]
async fn a_reader_that_pauses_makes_the_writer_pause() {
    let _w = support::watchdog("pair_backpressure", 20);
    let (pa, pb) = (Probe::new(), Probe::new());
    let (a, b) = MemorySocket::pair();
    a.set_capacity(10_000);
    let (ta, _) = a.connect(Rec::new(&pa));
    let (tb, _) = b.connect(Rec::new(&pb));
    settle().await;
    tb.pause_reading();
    ta.set_write_buffer_limits(Some(50_000), None).unwrap();
    let mut rng = Rng::new(7);
    let data: Vec<u8> = (0..200_000).map(|_| rng.next_u64() as u8).collect();
    for chunk in data.chunks(7_000) {
        ta.write(chunk);
    }
    settle().await;
    assert!(pa.paused.get(), "over the high-water mark");
    assert_eq!(b.unread(), 10_000, "capacity bytes in flight");
    assert_eq!(ta.get_write_buffer_size(), 190_000);
    assert!(pb.received().is_empty());
    tb.resume_reading();
    settle().await;
    assert!(!pa.paused.get());
    assert_eq!(pb.received(), data);
    assert!(
        pb.count(|e| matches!(e, Event::DR(_))) >= 20,
        "at most `capacity` bytes per chunk"
    );
    ta.close();
    settle().await;
    assert_stream_order(&pa.events());
    assert_stream_order(&pb.events());
}

#[tulip::test]
async fn write_eof_reaches_the_peer_after_the_buffer() {
    let _w = support::watchdog("pair_write_eof", 10);
    let (pa, pb) = (Probe::new(), Probe::new());
    let (a, b) = MemorySocket::pair();
    let (ta, _) = a.connect(Rec::new(&pa));
    let (_tb, _) = b.connect(Rec::new(&pb).keep_open(true).on_eof(|t| {
        t.write(b"ack");
        t.close();
        true
    }));
    settle().await;
    a.pause_peer_reading();
    ta.write(b"request");
    ta.write_eof();
    settle().await;
    assert!(!a.wrote_eof(), "the buffer has not drained");
    a.resume_peer_reading();
    settle().await;
    assert!(a.wrote_eof());
    assert_eq!(
        pb.events(),
        [Event::CM, Event::DR(7), Event::ER, Event::CL(None)]
    );
    assert_eq!(pa.received(), b"ack");
    assert_eq!(pa.events().last(), Some(&Event::CL(None)));
    assert_stream_order(&pa.events());
}

#[test]
fn works_on_a_loop_that_is_not_running_yet() {
    let _w = support::watchdog("not_running", 10);
    let lp = tulip::EventLoop::new().unwrap();
    let sock = MemorySocket::new();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    struct Collect(Rc<RefCell<Vec<u8>>>);
    impl Protocol for Collect {
        fn data_received(&mut self, data: &[u8]) {
            self.0.borrow_mut().extend_from_slice(data);
        }
    }
    let (t, _) = sock.connect_on(&lp, Collect(g));
    sock.feed(b"queued before the loop runs");
    lp.run_until_complete(settle());
    assert_eq!(&*got.borrow(), b"queued before the loop runs");
    t.close();
    lp.run_until_complete(settle());
    assert!(sock.is_closed());
    lp.close();
}

// ---- panics, hand-over, the loop closing ------------------------------------------------

#[tulip::test]
async fn a_panicking_protocol_is_reported_and_its_connection_aborted() {
    let _w = support::watchdog("panic", 10);
    let seen = capture_exceptions();
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (_t, _) = sock.connect(Rec::new(&p).panic_on_data("boom"));
    sock.feed(b"x");
    settle().await;
    assert_eq!(
        p.events(),
        [
            Event::CM,
            Event::DR(1),
            Event::CL(Some(io::ErrorKind::Other))
        ]
    );
    assert_eq!(seen.borrow().len(), 1);
    assert_eq!(seen.borrow()[0].1.as_deref(), Some("boom"));
    assert!(sock.is_closed());
}

#[tulip::test]
async fn a_protocol_hands_the_connection_to_streams() {
    let _w = support::watchdog("into_streams", 10);
    let sock = MemorySocket::new();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    /// Reads one greeting line with callbacks, then goes on with streams.
    struct Greeting(Option<Transport>, Rc<RefCell<Option<tulip::Task<Vec<u8>>>>>);
    impl Protocol for Greeting {
        fn connection_made(&mut self, t: &Transport) {
            self.0 = Some(t.clone());
        }
        fn data_received(&mut self, data: &[u8]) {
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                return;
            };
            let t = self.0.take().expect("one greeting");
            let (mut r, w) = t.into_streams(&data[nl + 1..], None);
            *self.1.borrow_mut() = Some(tulip::spawn(async move {
                let line = r.readline().await.unwrap();
                w.write(b"thanks\n");
                line
            }));
        }
    }
    let (_t, _) = sock.connect(Greeting(None, g));
    sock.feed(b"HELLO\nfirst ");
    sock.feed(b"request\n");
    settle().await;
    let task = got.borrow_mut().take().expect("handed over");
    assert_eq!(task.await, b"first request\n");
    settle().await;
    assert_eq!(sock.written(), b"thanks\n");
}

#[test]
fn a_loop_closing_with_memory_transports_open_releases_them() {
    let _w = support::watchdog("loop_close", 10);
    let (a, b) = MemorySocket::pair();
    let (a2, b2) = (a.clone(), b.clone());
    let lost = Rc::new(RefCell::new(0));
    struct Count(Rc<RefCell<u32>>);
    impl Protocol for Count {
        fn connection_lost(&mut self, _: Option<io::Error>) {
            *self.0.borrow_mut() += 1;
        }
    }
    let (l1, l2) = (lost.clone(), lost.clone());
    tulip::run(async move {
        let (ta, _) = a2.connect(Count(l1));
        let (_tb, _) = b2.connect(Count(l2));
        a2.pause_peer_reading();
        ta.write(b"stuck in the buffer");
        settle().await;
    });
    // The loop closed them: no connection_lost (asyncio: a transport collected unclosed),
    // and both ends were let go of.
    assert_eq!(*lost.borrow(), 0);
    assert!(a.is_closed() && b.is_closed());
}

#[tulip::test]
async fn sendfile_copies_through_a_memory_transport_and_holds_writes_back() {
    let _w = support::watchdog("sendfile", 10);
    let dir = std::env::temp_dir().join(format!("tulip-testing-sendfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data");
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let p = Probe::new();
    let sock = MemorySocket::new();
    let (t, _) = sock.connect(Rec::new(&p));
    settle().await;
    t.write(b"head:");
    // No fd to sendfile(2) to: without the fallback it is refused, with it the file is copied.
    let err = tulip::sendfile(&t, &file, 0, None, false)
        .await
        .unwrap_err();
    assert!(
        tulip::SendfileNotAvailable::from_io(&err).is_some(),
        "{err}"
    );
    sock.pause_peer_reading();
    let t2 = t.clone();
    let resume = sock.clone();
    tulip::get_running_loop().call_soon(move || {
        t2.write(b":tail"); // while the file is being sent: held until after it
        resume.resume_peer_reading();
    });
    let sent = tulip::sendfile(&t, &file, 0, None, true).await.unwrap();
    assert_eq!(sent, data.len() as u64);
    t.close();
    settle().await;
    let mut want = b"head:".to_vec();
    want.extend_from_slice(&data);
    want.extend_from_slice(b":tail");
    assert_eq!(sock.written(), want);
    assert_eq!(p.lost_kind(), Some(None));
    std::fs::remove_dir_all(&dir).ok();
}

// ---- review: re-entrancy and leaks ----------------------------------------------------

/// A protocol that calls back into the loop and the test's socket from every callback —
/// `dump()`, `feed`, `take_written`, its transport's state — and counts its drops: none of
/// it may find a borrow held ("already borrowed"), and every protocol is dropped once the
/// test lets go of everything.
struct Nosy {
    sock: MemorySocket,
    transport: Option<Transport>,
    drops: Rc<RefCell<u32>>,
    seen: Rc<RefCell<Vec<String>>>,
}

impl Nosy {
    fn look(&self, what: &str) {
        let lp = tulip::get_running_loop();
        let dump = lp.dump();
        assert!(dump.contains("transports and servers"), "{dump}");
        let _ = format!("{lp} {:?} {:?}", self.sock, self.transport);
        let _ = self.sock.take_written();
        let _ = self.sock.unread();
        if let Some(t) = &self.transport {
            let _ = t.get_write_buffer_size();
            let _ = t.get_extra_info("peername");
            let _ = t.is_closing();
        }
        self.seen.borrow_mut().push(what.to_owned());
    }
}

impl Protocol for Nosy {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
        self.look("CM");
    }
    fn data_received(&mut self, data: &[u8]) {
        self.look("DR");
        if data == b"more" {
            self.sock.feed(b"fed from data_received");
            if let Some(t) = &self.transport {
                t.write(data);
            }
        }
    }
    fn eof_received(&mut self) -> bool {
        self.look("ER");
        false
    }
    fn connection_lost(&mut self, _: Option<io::Error>) {
        self.look("CL");
    }
}

impl Drop for Nosy {
    fn drop(&mut self) {
        *self.drops.borrow_mut() += 1;
        // A user's Drop may touch the socket and the loop too.
        let _ = self.sock.unread();
        let _ = self.sock.take_written();
        if let Some(lp) = tulip::try_get_running_loop() {
            let _ = lp.dump();
        }
    }
}

#[tulip::test]
async fn callbacks_and_drop_may_reenter_the_loop_and_the_socket() {
    let _w = support::watchdog("callbacks_and_drop_may_reenter", 10);
    let drops = Rc::new(RefCell::new(0));
    let seen = Rc::new(RefCell::new(Vec::new()));
    {
        let sock = MemorySocket::new();
        let (t, p) = sock.connect(Nosy {
            sock: sock.clone(),
            transport: None,
            drops: drops.clone(),
            seen: seen.clone(),
        });
        settle().await;
        sock.feed(b"more");
        settle().await;
        sock.feed_eof();
        settle().await;
        assert!(t.is_closing() && sock.is_closed());
        drop((t, p, sock));
    }
    settle().await;
    assert_eq!(*seen.borrow(), ["CM", "DR", "DR", "ER", "CL"]);
    assert_eq!(
        *drops.borrow(),
        1,
        "the protocol was not dropped: a reference cycle"
    );

    // A pair, both sides closed by the test, everything dropped.
    {
        let (a, b) = MemorySocket::pair();
        let mk = |s: &MemorySocket| Nosy {
            sock: s.clone(),
            transport: None,
            drops: drops.clone(),
            seen: Rc::new(RefCell::new(Vec::new())),
        };
        let (ta, pa) = a.connect(mk(&a));
        let (tb, pb) = b.connect(mk(&b));
        settle().await;
        ta.write(b"hello");
        settle().await;
        ta.close();
        settle().await;
        assert!(tb.is_closing(), "b closes on a's EOF (eof_received: false)");
        drop((ta, pa, tb, pb, a, b));
    }
    settle().await;
    assert_eq!(*drops.borrow(), 3, "a pair's protocols were not dropped");
}

/// An exception handler that formats the loop while a protocol's panic is reported (the
/// protocol's cell must be free by then).
#[tulip::test]
async fn an_exception_handler_may_dump_the_loop_during_a_protocol_panic() {
    let _w = support::watchdog("exception_handler_dump", 10);
    struct Boom;
    impl Protocol for Boom {
        fn data_received(&mut self, _: &[u8]) {
            panic!("boom");
        }
    }
    let lp = tulip::get_running_loop();
    let dumps = Rc::new(RefCell::new(Vec::new()));
    let d = dumps.clone();
    lp.set_exception_handler(move |lp, ctx| {
        d.borrow_mut().push(format!("{ctx} / {}", lp.dump()));
    });
    let sock = MemorySocket::new();
    let (t, _p) = sock.connect(Boom);
    sock.feed(b"x");
    settle().await;
    assert!(t.is_closing());
    let dumps = dumps.borrow();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert!(dumps[0].contains("boom"), "{}", dumps[0]);
}

/// Transports left open on a pair, the loop closed, every handle dropped: both protocols
/// and the loop itself are freed (no cycle through the memory ends, which hold the loop).
#[test]
fn nothing_is_left_alive_after_the_loop_closes_with_a_pair_open() {
    let _w = support::watchdog("nothing_left_alive_after_close", 10);
    struct Counted(Rc<RefCell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            *self.0.borrow_mut() += 1;
        }
    }
    impl Protocol for Counted {}
    let drops = Rc::new(RefCell::new(0));
    {
        let lp = tulip::EventLoop::new().unwrap();
        let in_handler = Counted(drops.clone());
        // Dropped with the loop's state: counts only if the loop itself is freed.
        lp.set_exception_handler(move |_, _| {
            let _ = &in_handler;
        });
        let (a, b) = MemorySocket::pair();
        let (ta, pa) = a.connect_on(&lp, Counted(drops.clone()));
        let (tb, pb) = b.connect_on(&lp, Counted(drops.clone()));
        let t = ta.clone();
        lp.run_until_complete(async move {
            t.write(b"in flight");
            settle().await;
        });
        b.feed(b"unread");
        lp.close();
        drop((ta, pa, tb, pb, a, b, lp));
    }
    assert_eq!(*drops.borrow(), 3, "a protocol or the loop is still alive");
}
