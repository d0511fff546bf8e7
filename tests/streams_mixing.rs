//! Callback protocols and async code on one connection: `pause_reading_until` (the "async
//! `data_received`"), the hand-over `Transport::into_streams` from inside `data_received`,
//! a `LoopFuture` completed by a protocol's callbacks, and `Transport::drain`.

mod proto_support;
mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use futures_util::FutureExt;
use proto_support::{
    ByteStream, Checksum, Probe, Rec, checksum_reader, connect_to_std_peer, join_thread, read_n,
    set_rst_on_close,
};
use tulip::{LoopFuture, Protocol, StreamReader, StreamWriter, Transport};

const KIB: usize = 1024;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A client socket connected (on the loop) to `port` on 127.0.0.1.
async fn client(port: u16) -> io::Result<socket2::Socket> {
    let s = support::tcp_socket();
    tulip::sock_connect(&s, proto_support::v4(port)).await?;
    s.set_tcp_nodelay(true)?;
    Ok(s)
}

// ---- a. pause_reading_until ----------------------------------------------------------------

/// Requests `"<id> <delay ms>\n"`; each chunk's requests are answered `"<id>\n"` by a task
/// that sleeps `delay` first. Reading is paused until the task is done, so the answers
/// come in request order even when a later request is quicker.
struct Ordered {
    t: Option<Transport>,
    pending: Vec<u8>,
    in_flight: Rc<Cell<bool>>,
    /// `data_received` while a task was in flight (must stay 0).
    violations: Rc<Cell<usize>>,
    chunks: Rc<Cell<usize>>,
}

impl Protocol for Ordered {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.in_flight.get() {
            self.violations.set(self.violations.get() + 1);
        }
        self.chunks.set(self.chunks.get() + 1);
        self.pending.extend_from_slice(data);
        let mut reqs = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let line = String::from_utf8(line).unwrap();
            let mut it = line.split_whitespace();
            let id: u32 = it.next().unwrap().parse().unwrap();
            let delay: u64 = it.next().unwrap().parse().unwrap();
            reqs.push((id, delay));
        }
        if reqs.is_empty() {
            return;
        }
        let t = self.t.clone().expect("connection_made ran");
        let t2 = t.clone();
        let in_flight = self.in_flight.clone();
        in_flight.set(true);
        t.pause_reading_until(async move {
            for (id, delay) in reqs {
                tulip::sleep(ms(delay)).await;
                t2.write(format!("{id}\n").as_bytes());
            }
            in_flight.set(false);
        })
        .detach();
        assert!(!t.is_reading(), "pause_reading_until pauses at once");
    }
}

#[tulip::test]
async fn pause_reading_until_keeps_responses_in_order() -> io::Result<()> {
    let _w = support::watchdog("pause_reading_until_keeps_responses_in_order", 10);
    let in_flight = Rc::new(Cell::new(false));
    let violations = Rc::new(Cell::new(0));
    let chunks = Rc::new(Cell::new(0));
    let (f, v, c) = (in_flight.clone(), violations.clone(), chunks.clone());
    let server = tulip::create_server(
        move || Ordered {
            t: None,
            pending: Vec::new(),
            in_flight: f.clone(),
            violations: v.clone(),
            chunks: c.clone(),
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let s = client(server.local_addr().unwrap().port()).await?;
    // Slow first, quick later: without the pause, "1" would overtake "0".
    let delays = [60u64, 0, 30, 0, 10, 0, 0, 20];
    for (id, d) in delays.iter().enumerate() {
        tulip::sock_sendall(&s, format!("{id} {d}\n").as_bytes()).await?;
        tulip::sleep(ms(5)).await;
    }
    let want: String = (0..delays.len()).map(|i| format!("{i}\n")).collect();
    let got = read_n(&s, want.len(), 5.0).await;
    assert_eq!(String::from_utf8(got).unwrap(), want);
    assert_eq!(
        violations.get(),
        0,
        "data_received while a task was running"
    );
    assert!(
        chunks.get() < delays.len(),
        "requests sent during a pause wait in the socket ({} chunks)",
        chunks.get()
    );
    // Reading is resumed once the last task is done.
    tulip::sleep(ms(10)).await;
    assert!(!in_flight.get());
    tulip::sock_sendall(&s, b"99 0\n").await?;
    assert_eq!(read_n(&s, 3, 5.0).await, b"99\n");
    server.close();
    Ok(())
}

// ---- b. into_streams from inside data_received ---------------------------------------------

/// Reads a greeting line with callbacks, then hands the connection to an async task.
struct Greeter {
    t: Option<Transport>,
    calls: Rc<Cell<usize>>,
    first_chunk: Rc<Cell<usize>>,
    greeting: Rc<RefCell<Vec<u8>>>,
    done: LoopFuture<Got>,
}

/// What the async side read: a line, 1000 bytes, a line, the rest.
type Got = [Vec<u8>; 4];

async fn after_greeting(mut r: StreamReader, w: StreamWriter) -> io::Result<Got> {
    let line = r.readline().await?;
    let bin = r.readexactly(1000).await?;
    w.write(b"ack\n");
    w.drain().await?;
    let line3 = r.readline().await?;
    let rest = r.read_to_eof().await?;
    assert!(r.at_eof());
    w.write(b"bye\n");
    w.close();
    w.wait_closed().await?;
    Ok([line, bin, line3, rest])
}

impl Protocol for Greeter {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.calls.set(self.calls.get() + 1);
        if self.first_chunk.get() == 0 {
            self.first_chunk.set(data.len());
        }
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            self.greeting.borrow_mut().extend_from_slice(data);
            return;
        };
        self.greeting.borrow_mut().extend_from_slice(&data[..=nl]);
        let t = self.t.take().expect("one hand-over");
        let (r, w) = t.into_streams(&data[nl + 1..], None);
        let done = self.done.clone();
        tulip::spawn(async move {
            match after_greeting(r, w).await {
                Ok(got) => done.set_result(got),
                Err(e) => done.set_exception(e),
            }
        })
        .detach();
    }
}

#[tulip::test]
async fn into_streams_inside_data_received_loses_no_byte() -> io::Result<()> {
    let _w = support::watchdog("into_streams_inside_data_received_loses_no_byte", 10);
    let lp = tulip::get_running_loop();
    let calls = Rc::new(Cell::new(0));
    let first_chunk = Rc::new(Cell::new(0));
    let greeting = Rc::new(RefCell::new(Vec::new()));
    let done = lp.create_future();
    let (c, f, g, d) = (
        calls.clone(),
        first_chunk.clone(),
        greeting.clone(),
        done.clone(),
    );
    let server = tulip::create_server(
        move || Greeter {
            t: None,
            calls: c.clone(),
            first_chunk: f.clone(),
            greeting: g.clone(),
            done: d.clone(),
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let s = client(server.local_addr().unwrap().port()).await?;
    // Greeting, a line and 1000 binary bytes (with newlines among them) in ONE write.
    let bin = ByteStream::new(1).take(1000);
    let mut first = b"HELLO tulip\nline two\n".to_vec();
    first.extend_from_slice(&bin);
    tulip::sock_sendall(&s, &first).await?;
    assert_eq!(read_n(&s, 4, 5.0).await, b"ack\n");
    assert_eq!(
        first_chunk.get(),
        first.len(),
        "premise: greeting and data arrived in one read"
    );
    // More after the hand-over: in pieces, then EOF.
    tulip::sock_sendall(&s, b"line ").await?;
    tulip::sleep(ms(5)).await;
    tulip::sock_sendall(&s, b"three\ntrailing").await?;
    tulip::sleep(ms(5)).await;
    tulip::sock_sendall(&s, b" bytes").await?;
    s.shutdown(Shutdown::Write)?;
    let [line2, got_bin, line3, rest] = tulip::timeout(Duration::from_secs(5), done)
        .await
        .expect("the async side did not finish")?;
    assert_eq!(*greeting.borrow(), b"HELLO tulip\n");
    assert_eq!(line2, b"line two\n");
    assert_eq!(got_bin, bin);
    assert_eq!(line3, b"line three\n");
    assert_eq!(rest, b"trailing bytes");
    assert_eq!(
        calls.get(),
        1,
        "the old protocol got nothing after the hand-over"
    );
    let (tail, err) = proto_support::read_to_end(&s, 5.0).await;
    assert_eq!((tail.as_slice(), err), (&b"bye\n"[..], None));
    server.close();
    Ok(())
}

// ---- c. a LoopFuture completed by a protocol's callbacks -----------------------------------

/// Sends a request on `connection_made`, completes `reply` with the answer line and `lost`
/// in `connection_lost`.
struct Ask {
    t: Option<Transport>,
    got: Vec<u8>,
    reply: LoopFuture<Vec<u8>>,
    lost: LoopFuture<Option<io::ErrorKind>>,
}

impl Protocol for Ask {
    fn connection_made(&mut self, t: &Transport) {
        t.write(b"what is tulip?\n");
        self.t = Some(t.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.ends_with(b"\n") && !self.reply.done() {
            self.reply.set_result(self.got.clone());
            if let Some(t) = &self.t {
                t.close();
            }
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.lost.set_result(exc.map(|e| e.kind()));
    }
}

#[tulip::test]
async fn async_code_awaits_a_future_completed_by_protocol_callbacks() -> io::Result<()> {
    let _w = support::watchdog("async_awaits_protocol_future", 10);
    let lp = tulip::get_running_loop();
    let server = tulip::start_server(
        |mut r: StreamReader, w: StreamWriter| async move {
            let q = r.readline().await?;
            tulip::sleep(ms(10)).await;
            w.write(b"an answer to: ");
            w.write(&q);
            w.drain().await?;
            // Wait for the client to close.
            r.read_to_eof().await?;
            io::Result::Ok(())
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().unwrap().port();
    let reply = lp.create_future();
    let lost = lp.create_future();
    let (t, pref) = tulip::create_connection(
        {
            let (reply, lost) = (reply.clone(), lost.clone());
            move || Ask {
                t: None,
                got: Vec::new(),
                reply,
                lost,
            }
        },
        "127.0.0.1",
        port,
        Default::default(),
    )
    .await?;
    let answer = tulip::timeout(Duration::from_secs(5), reply)
        .await
        .expect("no reply")?;
    assert_eq!(answer, b"an answer to: what is tulip?\n");
    let kind = tulip::timeout(Duration::from_secs(5), lost)
        .await
        .expect("no connection_lost")?;
    assert_eq!(kind, None);
    assert!(t.is_closing());
    // The ProtocolRef outlives the connection.
    assert_eq!(pref.with(|p| p.got.len()), answer.len());
    server.close();
    Ok(())
}

// ---- d. Transport::drain -------------------------------------------------------------------

#[tulip::test]
async fn transport_drain_waits_for_resume_and_errors_after_loss() -> io::Result<()> {
    let _w = support::watchdog("transport_drain_waits_for_resume", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    assert!(
        matches!(t.drain().now_or_never(), Some(Ok(()))),
        "not paused"
    );
    let mut bs = ByteStream::new(21);
    let mut sum = Checksum::default();
    let mut chunk = vec![0u8; 256 * KIB];
    let mut n = 0;
    // The peer does not read: write until the protocol is paused.
    while !p.paused.get() {
        bs.fill(&mut chunk);
        t.write(&chunk);
        sum.update(&chunk);
        n += 1;
        assert!(n < 400, "never paused");
    }
    assert!(
        tulip::timeout(ms(100), t.drain()).await.is_err(),
        "drain returned while paused"
    );
    // The peer reads everything: drain completes, after resume_writing.
    let reader = checksum_reader(peer, 0);
    tulip::timeout(Duration::from_secs(5), t.drain())
        .await
        .expect("drain did not complete")?;
    assert!(!p.paused.get(), "drain completed before resume_writing");
    assert!(matches!(t.drain().now_or_never(), Some(Ok(()))));
    t.close();
    assert_eq!(join_thread(reader, 10.0).await?, sum.finish());
    assert_eq!(p.wait_lost(5.0).await, None);
    let e = t.drain().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    Ok(())
}

#[tulip::test]
async fn transport_drain_pending_when_the_connection_is_lost() -> io::Result<()> {
    let _w = support::watchdog("transport_drain_pending_when_lost", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    let chunk = vec![3u8; 256 * KIB];
    let mut n = 0;
    while !p.paused.get() {
        t.write(&chunk);
        n += 1;
        assert!(n < 400, "never paused");
    }
    let drain = {
        let t = t.clone();
        tulip::spawn(async move { t.drain().await })
    };
    tulip::sleep(ms(30)).await;
    assert!(!drain.is_finished());
    set_rst_on_close(&peer);
    drop(peer);
    let e = tulip::timeout(Duration::from_secs(5), drain)
        .await
        .expect("drain still pending after the connection was lost")
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}");
    assert!(p.wait_lost(5.0).await.is_some(), "lost with an error");
    Ok(())
}

/// A hand-over while the transport is paused for writing: the stream writer must see the
/// pause, or `write` + `drain` loops grow the buffer without bound until the next resume.
#[tulip::test]
async fn into_streams_while_writing_is_paused_keeps_back_pressure() -> io::Result<()> {
    let _w = support::watchdog("into_streams_while_writing_is_paused", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    let chunk = vec![5u8; 256 * KIB];
    let mut sum = Checksum::default();
    let mut n = 0;
    while !p.paused.get() {
        t.write(&chunk);
        sum.update(&chunk);
        n += 1;
        assert!(n < 400, "never paused");
    }
    let (_r, w) = t.into_streams(b"", None);
    let (_, high) = t.get_write_buffer_limits();
    assert!(t.get_write_buffer_size() > high);
    assert!(
        tulip::timeout(ms(50), w.drain()).await.is_err(),
        "StreamWriter::drain returned with {} bytes buffered (high {high})",
        t.get_write_buffer_size()
    );
    let reader = checksum_reader(peer, 0);
    tulip::timeout(Duration::from_secs(5), w.drain())
        .await
        .expect("drain did not complete")?;
    w.close();
    assert_eq!(join_thread(reader, 10.0).await?, sum.finish());
    Ok(())
}

/// `into_streams_with_limit` from async code (outside any callback): reading that the old
/// protocol paused is resumed, and the new limit applies.
#[tulip::test]
async fn into_streams_with_limit_resumes_reading_and_applies_the_limit() -> io::Result<()> {
    let _w = support::watchdog("into_streams_with_limit_resumes_reading", 10);
    let p = Probe::new();
    let (t, peer) = connect_to_std_peer(Rec::new(&p)).await;
    tulip::sock_sendall(&peer, b"hello\n").await?;
    p.wait_bytes(6, 5.0).await;
    t.pause_reading();
    let mut long = vec![b'z'; 100];
    long.extend_from_slice(b"\nshort\n");
    tulip::sock_sendall(&peer, &long).await?;
    tulip::sleep(ms(20)).await;
    assert_eq!(p.received(), b"hello\n", "paused: nothing more arrived");
    let (mut r, w) = t.into_streams(b"", Some(64));
    assert!(t.is_reading(), "the hand-over resumed reading");
    assert_eq!(r.limit(), 64);
    let e = r.readline().await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(tulip::LimitOverrun::from_io(&e).is_some());
    assert_eq!(r.readline().await?, b"short\n");
    assert_eq!(
        p.received(),
        b"hello\n",
        "the old protocol got nothing more"
    );
    w.write(b"over streams\n");
    w.close();
    w.wait_closed().await?;
    let (got, err) = proto_support::read_to_end(&peer, 5.0).await;
    assert_eq!((got.as_slice(), err), (&b"over streams\n"[..], None));
    Ok(())
}
