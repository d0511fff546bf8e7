//! Streams and user code that calls back in: a waker (of a "foreign executor") that uses the
//! stream as soon as it is woken — on data, on EOF, on a reset, on `resume_writing` — for
//! both read paths (through the stream's buffer, and straight into a large destination); a
//! `client_connected_cb` that reads, writes and closes before it returns its future;
//! `into_streams` used at once from inside `data_received`. Then the direct read's own
//! semantics: bytes never reordered against the buffer, `pause_reading` respected, EOF and
//! errors as through the buffer.

mod proto_support;
mod support;

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_io::AsyncRead;
use futures_util::FutureExt;
use proto_support::{capture_exceptions, join_thread, set_rst_on_close};
use tulip::{Protocol, StreamReader, StreamWriter, Transport};

const KIB: usize = 1024;

// ---- helpers -------------------------------------------------------------------------------

thread_local! {
    /// What the re-entering waker does when woken (on the loop's thread).
    static ON_WAKE: RefCell<Option<Box<dyn FnMut()>>> = RefCell::new(None);
}

/// A waker that is no tulip task: waking it runs `ON_WAKE` right there, inside whatever
/// tulip code calls `wake` — the way a foreign executor's waker may poll synchronously.
struct Reenter;

impl Wake for Reenter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let f = ON_WAKE.with(|c| c.borrow_mut().take());
        if let Some(mut f) = f {
            f();
            ON_WAKE.with(|c| {
                let mut slot = c.borrow_mut();
                if slot.is_none() {
                    *slot = Some(f);
                }
            });
        }
    }
}

fn reenter_waker(f: impl FnMut() + 'static) -> Waker {
    ON_WAKE.with(|c| *c.borrow_mut() = Some(Box::new(f)));
    Waker::from(Arc::new(Reenter))
}

fn clear_waker() {
    ON_WAKE.with(|c| c.borrow_mut().take());
}

/// A stream pair connected to a non-blocking std socket, driven with `tulip::sock_*`.
async fn sock_peer() -> io::Result<(StreamReader, StreamWriter, TcpStream)> {
    let (l, addr) = support::listener();
    let (r, w) = tulip::open_connection("127.0.0.1", addr.port(), Default::default()).await?;
    let (peer, _) = tulip::sock_accept(&l).await?;
    peer.set_nodelay(true)?;
    Ok((r, w, peer))
}

async fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !pred() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tulip::sleep(Duration::from_millis(1)).await;
    }
}

/// Reads exactly `n` bytes from the peer.
async fn peer_read(peer: &TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = tulip::sock_recv_into(peer, &mut out[got..]).await?;
        assert!(k > 0, "peer saw EOF after {got} of {n} bytes");
        got += k;
    }
    Ok(out)
}

type Shared<T> = Rc<RefCell<T>>;

/// The reader back, once the re-entering waker (which held a clone) is gone.
fn unshare(r: Shared<StreamReader>) -> StreamReader {
    clear_waker();
    match Rc::try_unwrap(r) {
        Ok(cell) => cell.into_inner(),
        Err(_) => panic!("the reader is still shared"),
    }
}

/// What the re-entering waker saw when it polled the reader.
#[derive(Debug, Default)]
struct Seen {
    data: Vec<u8>,
    eof: bool,
    at_eof: bool,
    error: Option<io::ErrorKind>,
    polls: usize,
}

/// Registers a re-entering waker with `reader` (`poll_read` into `size` bytes: Pending),
/// which, when woken, polls the reader again, records what it got, and hands it to `then`.
fn watch_reader(
    reader: &Shared<StreamReader>,
    size: usize,
    mut then: impl FnMut(&Seen) + 'static,
) -> Shared<Seen> {
    let seen: Shared<Seen> = Rc::default();
    let (r, s) = (reader.clone(), seen.clone());
    let waker = reenter_waker(move || {
        let mut buf = vec![0u8; size];
        let waker = Waker::from(Arc::new(Reenter));
        let mut cx = Context::from_waker(&waker);
        let mut reader = r.borrow_mut();
        let p = Pin::new(&mut *reader).poll_read(&mut cx, &mut buf);
        let mut seen = s.borrow_mut();
        seen.polls += 1;
        match p {
            Poll::Ready(Ok(0)) => seen.eof = true,
            Poll::Ready(Ok(n)) => seen.data.extend_from_slice(&buf[..n]),
            Poll::Ready(Err(e)) => seen.error = Some(e.kind()),
            Poll::Pending => {}
        }
        seen.at_eof = reader.at_eof();
        drop(reader);
        then(&seen);
    });
    let mut buf = vec![0u8; size];
    let p =
        Pin::new(&mut *reader.borrow_mut()).poll_read(&mut Context::from_waker(&waker), &mut buf);
    assert!(p.is_pending(), "nothing was sent yet: {p:?}");
    // The large size takes the direct path (a large message came last), the small one not.
    let dbg = format!("{:?}", reader.borrow());
    let direct = dbg.contains("direct: Waiting");
    assert_eq!(direct, size >= 4 * KIB, "{dbg}");
    seen
}

/// Makes the last receive a large one (16 KiB through a large `poll_read`), so that a large
/// destination is received into directly from then on.
async fn large_message_first(reader: &mut StreamReader, peer: &TcpStream) -> io::Result<()> {
    tulip::sock_sendall(peer, &[1u8; 16 * KIB]).await?;
    let mut buf = vec![0u8; 16 * KIB];
    let mut got = 0;
    while got < 16 * KIB {
        got += futures_util::io::AsyncReadExt::read(reader, &mut buf[..16 * KIB - got]).await?;
    }
    Ok(())
}

/// Both read paths: through the buffer (a small destination) and straight into a large one.
const SIZES: [usize; 2] = [100, 16 * KIB];

// ---- a waker that re-enters the stream ------------------------------------------------------

#[tulip::test]
async fn a_woken_waker_reads_and_writes_the_stream_at_once() -> io::Result<()> {
    for size in SIZES {
        let exceptions = capture_exceptions();
        let (mut reader, writer, peer) = sock_peer().await?;
        if size >= 4 * KIB {
            large_message_first(&mut reader, &peer).await?;
        }
        let reader = Rc::new(RefCell::new(reader));
        let w = writer.clone();
        let seen = watch_reader(&reader, size, move |seen| {
            // Writing from inside the wake: the echo of what was read.
            if !seen.data.is_empty() {
                w.write(&seen.data);
            }
        });
        tulip::sock_sendall(&peer, b"hello").await?;
        wait_until("the waker's read", || !seen.borrow().data.is_empty()).await;
        {
            let s = seen.borrow();
            assert_eq!(s.data, b"hello", "size {size}: {s:?}");
            assert_eq!(s.error, None, "size {size}");
        }
        assert_eq!(peer_read(&peer, 5).await?, b"hello", "size {size}");
        clear_waker();
        // The stream goes on as usual afterwards.
        tulip::sock_sendall(&peer, b"more\n").await?;
        let mut reader = unshare(reader);
        assert_eq!(reader.readline().await?, b"more\n");
        assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
    }
    Ok(())
}

#[tulip::test]
async fn a_waker_woken_by_eof_sees_eof_and_the_write_side_stays_open() -> io::Result<()> {
    for size in SIZES {
        let (mut reader, writer, peer) = sock_peer().await?;
        if size >= 4 * KIB {
            large_message_first(&mut reader, &peer).await?;
        }
        let reader = Rc::new(RefCell::new(reader));
        let w = writer.clone();
        let seen = watch_reader(&reader, size, move |seen| {
            if seen.eof {
                w.write(b"bye");
                w.write_eof();
            }
        });
        peer.shutdown(Shutdown::Write)?;
        wait_until("EOF in the waker", || seen.borrow().eof).await;
        {
            let s = seen.borrow();
            assert!(s.at_eof, "size {size}: {s:?}");
            assert_eq!(s.error, None, "size {size}");
        }
        // asyncio keeps the write side of a plain socket open after the peer's EOF.
        assert_eq!(peer_read(&peer, 3).await?, b"bye", "size {size}");
        let mut rest = [0u8; 8];
        assert_eq!(tulip::sock_recv_into(&peer, &mut rest).await?, 0);
        clear_waker();
        writer.close();
        writer.wait_closed().await?;
    }
    Ok(())
}

#[tulip::test]
async fn a_waker_woken_by_a_reset_sees_the_error_and_can_close() -> io::Result<()> {
    for size in SIZES {
        let (mut reader, writer, peer) = sock_peer().await?;
        if size >= 4 * KIB {
            large_message_first(&mut reader, &peer).await?;
        }
        let reader = Rc::new(RefCell::new(reader));
        let w = writer.clone();
        let seen = watch_reader(&reader, size, move |seen| {
            if seen.error.is_some() || seen.eof {
                w.close();
            }
        });
        set_rst_on_close(&peer);
        drop(peer);
        wait_until("the reset in the waker", || {
            let s = seen.borrow();
            s.error.is_some() || s.eof
        })
        .await;
        assert_eq!(
            seen.borrow().error,
            Some(io::ErrorKind::ConnectionReset),
            "size {size}: {:?}",
            seen.borrow()
        );
        clear_waker();
        let closed = writer.wait_closed().await;
        assert_eq!(
            closed.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset),
            "size {size}"
        );
        // Every later read reports the error too.
        let again = unshare(reader).read(10).await;
        assert_eq!(
            again.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset)
        );
    }
    Ok(())
}

#[tulip::test]
async fn a_drain_waker_woken_by_resume_writing_writes_again() -> io::Result<()> {
    let (_reader, writer, peer) = sock_peer().await?;
    let chunk = vec![7u8; 64 * KIB];
    let mut sent = 0usize;
    // The peer does not read: fill the socket buffers and go over the high-water mark.
    while !writer.transport().is_closing()
        && writer.transport().get_write_buffer_size()
            <= writer.transport().get_write_buffer_limits().1
    {
        writer.write(&chunk);
        sent += chunk.len();
    }
    let drain: Shared<Pin<Box<dyn Future<Output = io::Result<()>>>>> = {
        let w = writer.clone();
        Rc::new(RefCell::new(Box::pin(async move { w.drain().await })))
    };
    let done: Shared<Option<io::Result<()>>> = Rc::default();
    let closed_early: Shared<Option<bool>> = Rc::default();
    let (d, out, w, ce) = (
        drain.clone(),
        done.clone(),
        writer.clone(),
        closed_early.clone(),
    );
    let waker = reenter_waker(move || {
        let waker = Waker::from(Arc::new(Reenter));
        if let Poll::Ready(r) = d
            .borrow_mut()
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
        {
            if out.borrow().is_none() {
                // Writing from inside the wake, as a writer loop would, and asking whether
                // the connection is closed (it is not: `wait_closed` must wait).
                w.write(b"tail");
                let mut wc = Box::pin(w.wait_closed());
                let p = wc.as_mut().poll(&mut Context::from_waker(Waker::noop()));
                *ce.borrow_mut() = Some(p.is_ready());
                *out.borrow_mut() = Some(r);
            }
        }
    });
    let first = drain
        .borrow_mut()
        .as_mut()
        .poll(&mut Context::from_waker(&waker));
    assert!(first.is_pending(), "writing is paused: drain must wait");
    // Now the peer reads everything, which makes the transport resume writing.
    let total = sent + 4;
    let mut got = 0;
    let mut buf = vec![0u8; 256 * KIB];
    let mut last = Vec::new();
    while got < total {
        let k = tulip::sock_recv_into(&peer, &mut buf).await?;
        assert!(k > 0, "EOF after {got} of {total}");
        got += k;
        last.extend_from_slice(&buf[..k]);
        let keep = last.len().saturating_sub(4);
        last.drain(..keep);
    }
    assert_eq!(&last[..], b"tail");
    assert!(
        matches!(*done.borrow(), Some(Ok(()))),
        "{:?}",
        done.borrow()
    );
    assert_eq!(
        *closed_early.borrow(),
        Some(false),
        "wait_closed inside the wake"
    );
    clear_waker();
    Ok(())
}

// ---- client_connected_cb --------------------------------------------------------------------

#[tulip::test]
async fn client_connected_cb_uses_the_streams_before_returning_its_future() -> io::Result<()> {
    let exceptions = capture_exceptions();
    let log: Shared<Vec<String>> = Rc::default();
    let l2 = log.clone();
    let server = tulip::start_server(
        move |mut r: StreamReader, w: StreamWriter| {
            // The callback itself (not its future) runs with no tulip borrow held: reading
            // now finds nothing yet (pending, not an error), writing goes out at once.
            let now = r.read(10).now_or_never();
            l2.borrow_mut()
                .push(format!("read now: {:?}", now.map(|x| x.map(|v| v.len()))));
            l2.borrow_mut().push(format!(
                "peer known: {}",
                w.get_extra_info("peername").is_some()
            ));
            w.write(b"hello\n");
            async move {
                let line = r.readline().await?;
                w.write(&line);
                w.close();
                w.wait_closed().await
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().expect("a TCP listener").port();
    let client = support::tcp_socket();
    tulip::sock_connect(&client, proto_support::v4(port)).await?;
    let client: TcpStream = client.into();
    assert_eq!(peer_read(&client, 6).await?, b"hello\n");
    tulip::sock_sendall(&client, b"again\n").await?;
    assert_eq!(peer_read(&client, 6).await?, b"again\n");
    let mut rest = [0u8; 8];
    assert_eq!(
        tulip::sock_recv_into(&client, &mut rest).await?,
        0,
        "closed"
    );
    assert_eq!(*log.borrow(), ["read now: None", "peer known: true"]);
    server.close();
    server.wait_closed().await;
    assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
    Ok(())
}

#[tulip::test]
async fn client_connected_cb_that_closes_at_once() -> io::Result<()> {
    let exceptions = capture_exceptions();
    let server = tulip::start_server(
        |_r: StreamReader, w: StreamWriter| {
            w.write(b"no\n");
            w.close();
            async {}
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await?;
    let port = server.local_addr().expect("a TCP listener").port();
    let client = support::tcp_socket();
    tulip::sock_connect(&client, proto_support::v4(port)).await?;
    let client: TcpStream = client.into();
    assert_eq!(peer_read(&client, 3).await?, b"no\n");
    let mut rest = [0u8; 8];
    assert_eq!(
        tulip::sock_recv_into(&client, &mut rest).await?,
        0,
        "closed"
    );
    server.close();
    server.wait_closed().await;
    assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
    Ok(())
}

// ---- into_streams from inside data_received ------------------------------------------------------

/// Reads a greeting line, hands the connection to streams from inside `data_received`, and
/// uses them at once: reads what followed the greeting and writes it back, then spawns the
/// line echo that goes on.
struct Greeting {
    transport: Option<Transport>,
    log: Shared<Vec<Vec<u8>>>,
}

impl Protocol for Greeting {
    fn connection_made(&mut self, t: &Transport) {
        self.transport = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            return;
        };
        let Some(t) = self.transport.take() else {
            return;
        };
        let (mut reader, writer) = t.into_streams(&data[nl + 1..], None);
        let now = reader.read(100).now_or_never();
        match now {
            Some(Ok(rest)) => {
                writer.write(b"rest:");
                writer.write(&rest);
                self.log.borrow_mut().push(rest);
            }
            other => self
                .log
                .borrow_mut()
                .push(format!("{other:?}").into_bytes()),
        }
        tulip::spawn(async move {
            while let Ok(line) = reader.readline().await {
                if line.is_empty() {
                    break;
                }
                writer.write(&line);
            }
            writer.close();
        })
        .detach();
    }
}

#[tulip::test]
async fn into_streams_used_at_once_inside_data_received() -> io::Result<()> {
    let exceptions = capture_exceptions();
    let log: Shared<Vec<Vec<u8>>> = Rc::default();
    let l2 = log.clone();
    let (peer_end, mine) = support::tcp_pair();
    let _ = peer_end.set_nodelay(true);
    let (_t, _p) = tulip::connect_accepted_socket(
        move || Greeting {
            transport: None,
            log: l2,
        },
        mine,
        Default::default(),
    )
    .await?;
    tulip::sock_sendall(&peer_end, b"HELLO\nfirst").await?;
    assert_eq!(peer_read(&peer_end, 10).await?, b"rest:first");
    tulip::sock_sendall(&peer_end, b" line\nsecond\n").await?;
    assert_eq!(peer_read(&peer_end, 13).await?, b" line\nsecond\n");
    peer_end.shutdown(Shutdown::Write)?;
    let mut rest = [0u8; 8];
    assert_eq!(
        tulip::sock_recv_into(&peer_end, &mut rest).await?,
        0,
        "closed"
    );
    assert_eq!(*log.borrow(), [b"first".to_vec()]);
    assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
    Ok(())
}

// ---- the direct read ------------------------------------------------------------------------

/// A deterministic stream of lines of 1 byte to 40 KiB.
fn lines(seed: u64, total: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(total + 64 * KIB);
    while out.len() < total {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (x >> 33) as usize % (40 * KIB);
        let start = out.len();
        out.extend((0..len - 1).map(|i| b'a' + ((start + i) % 26) as u8));
        out.push(b'\n');
    }
    out
}

#[tulip::test]
async fn direct_reads_never_reorder_bytes_against_the_buffer() -> io::Result<()> {
    let data = lines(7, 4 << 20);
    let expect = data.clone();
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let peer = std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = l.accept()?;
        s.set_nodelay(true)?;
        // Uneven writes, so reads see every alignment.
        let mut x = 1u64;
        let mut at = 0;
        while at < data.len() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let n = (1 + (x >> 40) as usize % (48 * KIB)).min(data.len() - at);
            s.write_all(&data[at..at + n])?;
            at += n;
        }
        s.shutdown(Shutdown::Write)?;
        let mut sink = Vec::new();
        s.read_to_end(&mut sink)?;
        Ok(())
    });
    let (mut reader, writer) =
        tulip::open_connection("127.0.0.1", port, Default::default()).await?;
    let mut got = Vec::with_capacity(expect.len());
    let mut big = vec![0u8; 16 * KIB];
    let mut step = 0u32;
    loop {
        step += 1;
        let n = match step % 4 {
            0 => {
                let line = reader.readline().await?;
                got.extend_from_slice(&line);
                line.len()
            }
            1 | 2 => {
                let n = futures_util::io::AsyncReadExt::read(&mut reader, &mut big).await?;
                got.extend_from_slice(&big[..n]);
                n
            }
            _ => match reader.readexactly(3).await {
                Ok(v) => {
                    got.extend_from_slice(&v);
                    3
                }
                Err(e) => {
                    let inc = tulip::IncompleteRead::from_io(&e).expect("IncompleteRead");
                    got.extend_from_slice(&inc.partial);
                    0
                }
            },
        };
        if n == 0 && reader.at_eof() {
            break;
        }
    }
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "bytes differ");
    writer.close();
    join_thread(peer, 10.0).await?;
    Ok(())
}

#[tulip::test]
async fn a_direct_read_respects_pause_reading() -> io::Result<()> {
    let (mut reader, _writer, peer) = sock_peer().await?;
    large_message_first(&mut reader, &peer).await?;
    reader.transport().pause_reading();
    tulip::sock_sendall(&peer, b"abc").await?;
    let mut big = vec![0u8; 16 * KIB];
    let r = tulip::timeout(
        Duration::from_millis(150),
        futures_util::io::AsyncReadExt::read(&mut reader, &mut big),
    )
    .await;
    assert!(r.is_err(), "read while reading is paused: {r:?}");
    reader.transport().resume_reading();
    let n = futures_util::io::AsyncReadExt::read(&mut reader, &mut big).await?;
    assert_eq!(&big[..n], b"abc");
    Ok(())
}

#[tulip::test]
async fn a_direct_read_sees_eof_after_the_data() -> io::Result<()> {
    let (mut reader, writer, peer) = sock_peer().await?;
    large_message_first(&mut reader, &peer).await?;
    let mut big = vec![0u8; 16 * KIB];
    let pending =
        Pin::new(&mut reader).poll_read(&mut Context::from_waker(Waker::noop()), &mut big);
    assert!(pending.is_pending());
    assert!(
        format!("{reader:?}").contains("direct: Waiting"),
        "{reader:?}"
    );
    tulip::sock_sendall(&peer, &[5u8; 20 * KIB]).await?;
    peer.shutdown(Shutdown::Write)?;
    let mut total = 0;
    loop {
        let n = futures_util::io::AsyncReadExt::read(&mut reader, &mut big).await?;
        if n == 0 {
            break;
        }
        assert!(big[..n].iter().all(|&b| b == 5));
        total += n;
    }
    assert_eq!(total, 20 * KIB);
    assert!(reader.at_eof());
    assert!(
        !writer.is_closing(),
        "the write side stays open after the peer's EOF"
    );
    writer.write(b"x");
    assert_eq!(peer_read(&peer, 1).await?, b"x");
    Ok(())
}
