//! `sock_sendfile` and `sendfile` (asyncio's `loop.sock_sendfile` / `loop.sendfile`) on real
//! loopback sockets and files in the temp dir: CPython's test_sendfile.py (`SockSendfileMixin`,
//! `SendfileMixin`) and the sendfile tests of test_base_events.py / test_unix_events.py,
//! translated, plus a 1 GiB sparse file and cancellation half-way.

mod support;

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use tulip::{SendfileNotAvailable, Transport};

// ---- helpers ---------------------------------------------------------------------------------

/// A file in the temp dir, removed when dropped.
struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    fn create(name: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tulip-sendfile-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create a temp file");
        TempFile { path, file }
    }

    fn with(name: &str, data: &[u8]) -> TempFile {
        let mut t = TempFile::create(name);
        t.file.write_all(data).expect("write the temp file");
        t.file.rewind().expect("rewind");
        t
    }

    /// A sparse file of `len` zero bytes with `MARK`s written at `marks`.
    fn sparse(name: &str, len: u64, marks: &[u64]) -> TempFile {
        let mut t = TempFile::create(name);
        t.file.set_len(len).expect("set_len");
        for &m in marks {
            t.file.seek(io::SeekFrom::Start(m)).expect("seek");
            t.file.write_all(MARK).expect("mark");
        }
        t.file.rewind().expect("rewind");
        t
    }

    fn position(&mut self) -> u64 {
        self.file.stream_position().expect("stream_position")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.path).ok();
    }
}

const MARK: &[u8] = b"<tulip sendfile>";

/// CPython's `DATA`: a recognisable pattern (no run repeats within 251 bytes).
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

/// Reads `sock` to EOF in a task.
fn read_to_eof(sock: TcpStream) -> tulip::Task<io::Result<Vec<u8>>> {
    tulip::spawn(async move {
        let mut got = Vec::new();
        loop {
            let chunk = tulip::sock_recv(&sock, 256 * 1024).await?;
            if chunk.is_empty() {
                return Ok(got);
            }
            got.extend_from_slice(&chunk);
        }
    })
}

fn is_not_available(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported && SendfileNotAvailable::from_io(e).is_some()
}

/// A protocol that records what it receives and whether the connection was lost.
#[derive(Clone, Default)]
struct Rec {
    data: Rc<RefCell<Vec<u8>>>,
    lost: Rc<RefCell<Option<Option<io::ErrorKind>>>>,
}

impl tulip::Protocol for Rec {
    fn data_received(&mut self, data: &[u8]) {
        self.data.borrow_mut().extend_from_slice(data);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        *self.lost.borrow_mut() = Some(exc.map(|e| e.kind()));
    }
}

/// A socket transport on one end of a TCP pair (with a recording protocol) and the peer.
async fn transport_pair() -> io::Result<(Transport, Rec, TcpStream)> {
    let (a, b) = support::tcp_pair();
    let rec = Rec::default();
    let r2 = rec.clone();
    let (t, _) = tulip::connect_accepted_socket(move || r2, a, Default::default()).await?;
    Ok((t, rec, b))
}

/// Polls `fut` once.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}

async fn wait_lost(rec: &Rec) {
    for _ in 0..2000 {
        if rec.lost.borrow().is_some() {
            return;
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    panic!("connection_lost never came");
}

// ---- sock_sendfile ---------------------------------------------------------------------------

// CPython: test_sendfile.py SockSendfileMixin.test_sock_sendfile_success
#[tulip::test]
async fn sock_sendfile_sends_the_whole_file() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_success", 20);
    let d = data(1 << 20);
    let mut f = TempFile::with("success", &d);
    let (a, b) = support::tcp_pair();
    let reader = read_to_eof(b);
    let sent = tulip::sock_sendfile(&a, &f.file, 0, None, false).await?;
    a.shutdown(std::net::Shutdown::Write)?;
    assert_eq!(sent, d.len() as u64);
    assert!(reader.await? == d, "the file arrives intact");
    assert_eq!(
        f.position(),
        d.len() as u64,
        "the position is after what was sent"
    );
    Ok(())
}

// CPython: test_sendfile.py SockSendfileMixin.test_sock_sendfile_with_offset_and_count
#[tulip::test]
async fn sock_sendfile_with_offset_and_count() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_offset_count", 20);
    let d = data(10_000);
    let mut f = TempFile::with("offset", &d);
    let (a, b) = support::tcp_pair();
    let reader = read_to_eof(b);
    let sent = tulip::sock_sendfile(&a, &f.file, 1000, Some(2000), false).await?;
    drop(a);
    assert_eq!(sent, 2000);
    assert_eq!(reader.await?, &d[1000..3000]);
    assert_eq!(f.position(), 3000);
    Ok(())
}

// CPython: test_sendfile.py SockSendfileMixin.test_sock_sendfile_zero_size
#[tulip::test]
async fn sock_sendfile_of_an_empty_file_sends_nothing() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_zero_size", 20);
    let mut f = TempFile::with("empty", b"");
    let (a, b) = support::tcp_pair();
    let reader = read_to_eof(b);
    assert_eq!(tulip::sock_sendfile(&a, &f.file, 0, None, false).await?, 0);
    drop(a);
    assert!(reader.await?.is_empty());
    assert_eq!(f.position(), 0);
    Ok(())
}

// CPython: test_sendfile.py SockSendfileMixin.test_sock_sendfile_mix_with_regular_send
#[tulip::test]
async fn sock_sendfile_between_regular_sends() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_mix", 20);
    let d = data(300_000);
    let f = TempFile::with("mix", &d);
    let (a, b) = support::tcp_pair();
    let reader = read_to_eof(b);
    tulip::sock_sendall(&a, b"head").await?;
    assert_eq!(
        tulip::sock_sendfile(&a, &f.file, 0, None, false).await?,
        d.len() as u64
    );
    tulip::sock_sendall(&a, b"tail").await?;
    drop(a);
    let got = reader.await?;
    assert_eq!(got.len(), d.len() + 8);
    assert_eq!(&got[..4], b"head");
    assert!(got[4..4 + d.len()] == d[..]);
    assert_eq!(&got[4 + d.len()..], b"tail");
    Ok(())
}

// CPython: test_base_events.py BaseLoopSockSendfileTests (count past the end of the file)
#[tulip::test]
async fn sock_sendfile_count_beyond_eof_stops_at_eof() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_beyond_eof", 20);
    let d = data(5000);
    let mut f = TempFile::with("beyond", &d);
    let (a, b) = support::tcp_pair();
    let reader = read_to_eof(b);
    assert_eq!(
        tulip::sock_sendfile(&a, &f.file, 4000, Some(1 << 30), false).await?,
        1000
    );
    // An offset past the end sends nothing.
    assert_eq!(
        tulip::sock_sendfile(&a, &f.file, 6000, None, false).await?,
        0
    );
    drop(a);
    assert_eq!(reader.await?, &d[4000..]);
    assert_eq!(f.position(), 5000);
    Ok(())
}

// CPython: test_unix_events.py SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_not_regular_file
#[tulip::test]
async fn sock_sendfile_of_a_non_regular_file_is_not_available() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_not_regular", 20);
    let (a, b) = support::tcp_pair();
    let zero = File::open("/dev/zero")?;
    let e = tulip::sock_sendfile(&a, &zero, 0, Some(10), false)
        .await
        .unwrap_err();
    assert!(is_not_available(&e), "{e:?}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // Nothing was sent: the socket is as it was.
    tulip::sock_sendall(&a, b"ok").await?;
    drop(a);
    assert_eq!(read_to_eof(b).await?, b"ok");
    Ok(())
}

// CPython: test_base_events.py BaseLoopSockSendfileTests.test_sock_sendfile_fallback
#[tulip::test]
async fn sock_sendfile_falls_back_to_copying_a_non_regular_file() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_fallback", 20);
    let (a, b) = support::tcp_pair();
    let reader = read_to_eof(b);
    // A character device: `count` bytes of it.
    let zero = File::open("/dev/zero")?;
    assert_eq!(
        tulip::sock_sendfile(&a, &zero, 0, Some(700_000), true).await?,
        700_000
    );
    // A stream (a socket opened as a file) to its end, read on the blocking pool.
    let (src, mut feeder) = UnixStream::pair()?;
    let d = data(600_000);
    let d2 = d.clone();
    let feed = std::thread::spawn(move || feeder.write_all(&d2));
    let src = File::from(std::os::fd::OwnedFd::from(src));
    assert_eq!(
        tulip::sock_sendfile(&a, &src, 0, None, true).await?,
        d.len() as u64
    );
    feed.join().expect("feeder").expect("feed");
    drop(a);
    let got = reader.await?;
    assert_eq!(got.len(), 700_000 + d.len());
    assert!(got[..700_000].iter().all(|&b| b == 0));
    assert!(got[700_000..] == d[..]);
    Ok(())
}

// CPython: test_base_events.py BaseLoopSockSendfileTests.test_nonstream_socket,
// test_negative_count / test_zero_count, test_blocking_socket
#[tulip::test]
async fn sock_sendfile_refuses_bad_arguments() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_bad_args", 20);
    let f = TempFile::with("args", b"abc");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    udp.set_nonblocking(true)?;
    let e = tulip::sock_sendfile(&udp, &f.file, 0, None, true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let (a, _b) = support::tcp_pair();
    let e = tulip::sock_sendfile(&a, &f.file, 0, Some(0), true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    a.set_nonblocking(false)?;
    let e = tulip::sock_sendfile(&a, &f.file, 0, None, true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    Ok(())
}

// CPython: test_unix_events.py SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_cancel1
// / test_sock_sendfile_cancel2 (the writer is removed, the position updated)
#[tulip::test]
async fn sock_sendfile_cancelled_half_way_leaves_the_socket_usable() -> io::Result<()> {
    let _w = support::watchdog("sock_sendfile_cancel", 30);
    let len = 64 << 20;
    let mut f = TempFile::sparse("cancel", len, &[]);
    let (a, b) = support::tcp_pair();
    // Nobody reads yet: the socket fills and the future waits.
    let mut fut = Box::pin(tulip::sock_sendfile(&a, &f.file, 0, None, false));
    assert!(poll_once(&mut fut).await.is_pending());
    let sent = fut.sent();
    assert!(sent > 0 && sent < len, "{sent}");
    drop(fut);
    assert_eq!(f.position(), sent, "the position is after what was sent");
    let lp = tulip::get_running_loop();
    assert!(
        !lp.remove_writer(a.as_raw_fd())?,
        "no writer registration is left behind"
    );
    let reader = read_to_eof(b);
    tulip::sock_sendall(&a, b"tail").await?;
    drop(a);
    let got = reader.await?;
    assert_eq!(got.len() as u64, sent + 4);
    assert!(got[..sent as usize] == vec![0u8; sent as usize][..]);
    assert_eq!(&got[sent as usize..], b"tail");
    Ok(())
}

// ---- sendfile on a transport -----------------------------------------------------------------

// CPython: test_sendfile.py SendfileMixin.test_sendfile
#[tulip::test]
async fn sendfile_sends_the_file_over_a_transport() -> io::Result<()> {
    let _w = support::watchdog("sendfile", 20);
    let d = data(2 << 20);
    let mut f = TempFile::with("transport", &d);
    let (t, _rec, peer) = transport_pair().await?;
    let reader = read_to_eof(peer);
    assert_eq!(
        tulip::sendfile(&t, &f.file, 0, None, false).await?,
        d.len() as u64
    );
    t.close();
    assert!(reader.await? == d);
    assert_eq!(f.position(), d.len() as u64);
    Ok(())
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_partial
#[tulip::test]
async fn sendfile_with_offset_and_count() -> io::Result<()> {
    let _w = support::watchdog("sendfile_partial", 20);
    let d = data(10_000);
    let mut f = TempFile::with("partial", &d);
    let (t, _rec, peer) = transport_pair().await?;
    let reader = read_to_eof(peer);
    assert_eq!(
        tulip::sendfile(&t, &f.file, 1000, Some(100), true).await?,
        100
    );
    t.close();
    assert_eq!(reader.await?, &d[1000..1100]);
    assert_eq!(f.position(), 1100);
    Ok(())
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_pre_and_post_data
#[tulip::test]
async fn sendfile_data_written_before_arrives_first() -> io::Result<()> {
    let _w = support::watchdog("sendfile_pre_post", 20);
    let d = data(1 << 20);
    let f = TempFile::with("prepost", &d);
    let (t, _rec, peer) = transport_pair().await?;
    // More than the socket takes at once: part of it waits in the transport's buffer.
    let pre = vec![b'P'; 8 << 20];
    t.write(&pre);
    assert!(t.get_write_buffer_size() > 0);
    let reader = read_to_eof(peer);
    assert_eq!(
        tulip::sendfile(&t, &f.file, 0, None, false).await?,
        d.len() as u64
    );
    t.write(b"POST");
    t.close();
    let got = reader.await?;
    assert_eq!(got.len(), pre.len() + d.len() + 4);
    assert!(got[..pre.len()] == pre[..], "the buffered data comes first");
    assert!(got[pre.len()..pre.len() + d.len()] == d[..]);
    assert_eq!(&got[pre.len() + d.len()..], b"POST");
    Ok(())
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_prevents_bare_write (asyncio raises
// RuntimeError; tulip holds the write and sends it after the file)
#[tulip::test]
async fn sendfile_holds_writes_made_meanwhile_and_keeps_reading() -> io::Result<()> {
    let _w = support::watchdog("sendfile_held_writes", 30);
    let len = 32 << 20;
    let f = TempFile::sparse("held", len, &[0, len - 16]);
    let (t, rec, peer) = transport_pair().await?;
    let mut fut = Box::pin(tulip::sendfile(&t, &f.file, 0, None, false));
    assert!(
        poll_once(&mut fut).await.is_pending(),
        "nobody reads: the socket fills"
    );
    t.write(b"after");
    assert_eq!(
        t.get_write_buffer_size(),
        5,
        "the held write counts in the buffer"
    );
    // Reading goes on while the file is sent.
    // (Non-blocking, 4 bytes into an empty socket buffer.)
    assert_eq!((&peer).write(b"ping")?, 4);
    let reader = read_to_eof(peer);
    assert_eq!(fut.await?, len);
    t.close();
    let got = reader.await?;
    assert_eq!(got.len() as u64, len + 5);
    assert_eq!(&got[..16], MARK);
    assert_eq!(&got[got.len() - 21..got.len() - 5], MARK);
    assert_eq!(
        &got[got.len() - 5..],
        b"after",
        "the held write comes after the file"
    );
    assert_eq!(&rec.data.borrow()[..], b"ping");
    Ok(())
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_force_fallback
#[tulip::test]
async fn sendfile_falls_back_to_copying_a_non_regular_file() -> io::Result<()> {
    let _w = support::watchdog("sendfile_fallback", 20);
    let (t, _rec, peer) = transport_pair().await?;
    let reader = read_to_eof(peer);
    let zero = File::open("/dev/zero")?;
    t.write(b"pre");
    let sent = tulip::sendfile(&t, &zero, 0, Some(3 << 20), true).await?;
    assert_eq!(sent, 3 << 20);
    t.write(b"post");
    t.close();
    let got = reader.await?;
    assert_eq!(got.len(), 7 + (3 << 20));
    assert_eq!(&got[..3], b"pre");
    assert!(got[3..3 + (3 << 20)].iter().all(|&b| b == 0));
    assert_eq!(&got[3 + (3 << 20)..], b"post");
    Ok(())
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_force_unsupported_native
#[tulip::test]
async fn sendfile_without_fallback_refuses_a_non_regular_file() -> io::Result<()> {
    let _w = support::watchdog("sendfile_no_fallback", 20);
    let (t, _rec, peer) = transport_pair().await?;
    let reader = read_to_eof(peer);
    let zero = File::open("/dev/zero")?;
    let e = tulip::sendfile(&t, &zero, 0, Some(10), false)
        .await
        .unwrap_err();
    assert!(is_not_available(&e), "{e:?}");
    // The transport is untouched and still writes at once.
    t.write(b"still here");
    assert_eq!(t.get_write_buffer_size(), 0);
    t.close();
    assert_eq!(reader.await?, b"still here");
    Ok(())
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_for_closing_transp
#[tulip::test]
async fn sendfile_on_a_closing_transport_fails() -> io::Result<()> {
    let _w = support::watchdog("sendfile_closing", 20);
    let f = TempFile::with("closing", b"abc");
    let (t, _rec, _peer) = transport_pair().await?;
    t.close();
    let e = tulip::sendfile(&t, &f.file, 0, None, true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotConnected, "{e}");
    Ok(())
}

/// `close()` during a sendfile waits for the file (and what was held), then closes.
// CPython: test_sendfile.py SendfileMixin.test_sendfile_close_peer_after_receiving (the
// transport side)
#[tulip::test]
async fn sendfile_close_meanwhile_waits_for_the_file() -> io::Result<()> {
    let _w = support::watchdog("sendfile_close_meanwhile", 30);
    let len = 16 << 20;
    let f = TempFile::sparse("closewait", len, &[len - 16]);
    let (t, rec, peer) = transport_pair().await?;
    let mut fut = Box::pin(tulip::sendfile(&t, &f.file, 0, None, false));
    assert!(poll_once(&mut fut).await.is_pending());
    t.write(b"bye");
    t.close();
    let reader = read_to_eof(peer);
    assert_eq!(fut.await?, len);
    let got = reader.await?;
    assert_eq!(got.len() as u64, len + 3);
    assert_eq!(&got[got.len() - 19..], b"<tulip sendfile>bye");
    wait_lost(&rec).await;
    assert_eq!(*rec.lost.borrow(), Some(None));
    Ok(())
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_close_peer_in_the_middle_of_receiving
#[tulip::test]
async fn sendfile_peer_closing_half_way_is_an_error() -> io::Result<()> {
    let _w = support::watchdog("sendfile_peer_closes", 30);
    let len = 64 << 20;
    let f = TempFile::sparse("peerclose", len, &[]);
    let (t, rec, peer) = transport_pair().await?;
    let mut fut = Box::pin(tulip::sendfile(&t, &f.file, 0, None, false));
    assert!(poll_once(&mut fut).await.is_pending());
    // Closing with unread data resets the connection.
    drop(peer);
    let e = fut.await.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{e:?}"
    );
    t.abort();
    wait_lost(&rec).await;
    Ok(())
}

/// `abort()` during a sendfile ends it with an error at once; no hang, no use of the closed fd.
#[tulip::test]
async fn sendfile_abort_meanwhile_fails_the_sendfile() -> io::Result<()> {
    let _w = support::watchdog("sendfile_abort", 30);
    let len = 64 << 20;
    let f = TempFile::sparse("abort", len, &[]);
    let (t, rec, _peer) = transport_pair().await?;
    let mut fut = Box::pin(tulip::sendfile(&t, &f.file, 0, None, false));
    assert!(poll_once(&mut fut).await.is_pending());
    t.abort();
    let e = fut.await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    wait_lost(&rec).await;
    Ok(())
}

/// Dropped half-way, a transport's sendfile leaves the transport usable: what it held goes
/// out, and so do later writes.
#[tulip::test]
async fn sendfile_cancelled_half_way_leaves_the_transport_usable() -> io::Result<()> {
    let _w = support::watchdog("sendfile_cancel", 30);
    let len = 64 << 20;
    let mut f = TempFile::sparse("tcancel", len, &[]);
    let (t, _rec, peer) = transport_pair().await?;
    let mut fut = Box::pin(tulip::sendfile(&t, &f.file, 0, None, false));
    assert!(poll_once(&mut fut).await.is_pending());
    t.write(b"held");
    // A second sendfile while one runs is refused.
    let e = tulip::sendfile(&t, &f.file, 0, None, true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ResourceBusy, "{e}");
    drop(fut);
    let sent = f.position();
    assert!(sent > 0 && sent < len, "{sent}");
    t.write(b"+more");
    let reader = read_to_eof(peer);
    t.close();
    let got = reader.await?;
    assert_eq!(got.len() as u64, sent + 9);
    assert_eq!(&got[sent as usize..], b"held+more");
    Ok(())
}

/// The 1 GiB sparse file arrives intact: every chunk checked against the expected bytes as
/// it is received (a debug build sends 256 MiB unless `TULIP_SENDFILE_GIB=1`).
#[tulip::test]
async fn sendfile_of_a_sparse_gigabyte_arrives_intact() -> io::Result<()> {
    let _w = support::watchdog("sendfile_gigabyte", 60);
    let full = !cfg!(debug_assertions) || std::env::var_os("TULIP_SENDFILE_GIB").is_some();
    let len: u64 = if full { 1 << 30 } else { 256 << 20 };
    let marks: Vec<u64> = (0..16).map(|k| k * (len / 16) + 12_345).collect();
    let f = TempFile::sparse("gigabyte", len, &marks);
    let (t, _rec, peer) = transport_pair().await?;
    let check = {
        let marks = marks.clone();
        std::thread::spawn(move || verify(peer, &marks))
    };
    assert_eq!(tulip::sendfile(&t, &f.file, 0, None, false).await?, len);
    t.close();
    // Let the close reach the socket, then wait for the checker (it needs no loop).
    while !t.is_closing() {
        tulip::yield_now().await;
    }
    tulip::sleep(Duration::from_millis(10)).await;
    let (n, bad) = check.join().expect("checker")?;
    assert_eq!(n, len);
    assert_eq!(bad, None, "first wrong byte");
    Ok(())
}

/// Receives to EOF, comparing each chunk with the expected bytes (zeros and the marks).
/// Returns the bytes received and the offset of the first wrong one.
fn verify(peer: TcpStream, marks: &[u64]) -> io::Result<(u64, Option<u64>)> {
    peer.set_nonblocking(false)?;
    let mut peer = peer;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    let mut bad = None;
    loop {
        let n = peer.read(&mut buf)?;
        if n == 0 {
            return Ok((pos, bad));
        }
        let mut want = vec![0u8; n];
        for &m in marks {
            for (i, &b) in MARK.iter().enumerate() {
                let at = m + i as u64;
                if at >= pos && at < pos + n as u64 {
                    want[(at - pos) as usize] = b;
                }
            }
        }
        if bad.is_none() && buf[..n] != want[..] {
            let i = (0..n).find(|&i| buf[i] != want[i]).unwrap_or(0);
            bad = Some(pos + i as u64);
        }
        pos += n as u64;
    }
}

// CPython: test_sendfile.py SendfileMixin.test_sendfile_ssl (asyncio copies over TLS too) and
// test_sendfile_no_fallback_for_fallback_transport
#[cfg(feature = "tls")]
#[tulip::test]
async fn sendfile_over_tls_copies_or_is_not_available() -> io::Result<()> {
    use tulip::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tulip::{net::ConnectOptions, net::ServerOptions, tls::TlsOptions};
    let _w = support::watchdog("sendfile_tls", 30);
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let scfg = tulip::tls::server_config(vec![cert.clone()], key).expect("server config");
    let ccfg = tulip::tls::client_config_with_roots([cert]).expect("client config");
    let received = Rc::new(RefCell::new(None));
    let r2 = received.clone();
    let server = tulip::start_server(
        move |mut r: tulip::StreamReader, w: tulip::StreamWriter| {
            let r2 = r2.clone();
            async move {
                let all = r.read_to_eof().await?;
                *r2.borrow_mut() = Some(all);
                w.close();
                io::Result::Ok(())
            }
        },
        "127.0.0.1",
        0,
        ServerOptions::new().tls(TlsOptions::server(scfg)),
    )
    .await?;
    let port = server.local_addr().expect("TCP").port();
    let rec = Rec::default();
    let r3 = rec.clone();
    let opts = ConnectOptions::new().tls(TlsOptions::client(ccfg).server_hostname("localhost"));
    let (t, _) = tulip::create_connection(move || r3, "127.0.0.1", port, opts).await?;
    let d = data(1 << 20);
    let mut f = TempFile::with("tls", &d);
    let e = tulip::sendfile(&t, &f.file, 0, None, false)
        .await
        .unwrap_err();
    assert!(is_not_available(&e), "{e:?}");
    t.write(b"pre");
    assert_eq!(
        tulip::sendfile(&t, &f.file, 0, None, true).await?,
        d.len() as u64
    );
    assert_eq!(f.position(), d.len() as u64);
    t.close();
    wait_lost(&rec).await;
    for _ in 0..2000 {
        if received.borrow().is_some() {
            break;
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    let got = received
        .borrow_mut()
        .take()
        .expect("the server read to EOF");
    assert_eq!(&got[..3], b"pre");
    assert!(got[3..] == d[..]);
    server.close();
    Ok(())
}

/// Records the flow-control calls.
#[derive(Clone, Default)]
struct Flow {
    calls: Rc<RefCell<Vec<&'static str>>>,
}

impl tulip::Protocol for Flow {
    fn pause_writing(&mut self) {
        self.calls.borrow_mut().push("pause");
    }
    fn resume_writing(&mut self) {
        self.calls.borrow_mut().push("resume");
    }
}

/// Writes held during a sendfile count for flow control: over the high-water mark the
/// protocol hears `pause_writing`, and `resume_writing` once they drained after the file.
/// `write_eof()` meanwhile waits for the file and the held writes.
#[tulip::test]
async fn sendfile_held_writes_are_flow_controlled_and_write_eof_waits() -> io::Result<()> {
    let _w = support::watchdog("sendfile_flow", 30);
    let len = 16 << 20;
    let f = TempFile::sparse("flow", len, &[]);
    let (a, peer) = support::tcp_pair();
    let flow = Flow::default();
    let f2 = flow.clone();
    let (t, _) = tulip::connect_accepted_socket(move || f2, a, Default::default()).await?;
    let mut fut = Box::pin(tulip::sendfile(&t, &f.file, 0, None, false));
    assert!(poll_once(&mut fut).await.is_pending());
    let held = vec![b'h'; 100 * 1024];
    t.write(&held);
    assert_eq!(
        *flow.calls.borrow(),
        ["pause"],
        "over the 64 KiB high-water mark"
    );
    t.write_eof();
    let reader = read_to_eof(peer);
    assert_eq!(fut.await?, len);
    let got = reader.await?;
    assert_eq!(
        got.len() as u64,
        len + held.len() as u64,
        "EOF after the held data"
    );
    assert!(got[len as usize..] == held[..]);
    assert_eq!(*flow.calls.borrow(), ["pause", "resume"]);
    t.close();
    Ok(())
}
