//! The pipe transports (`tulip::unix::connect_read_pipe` / `connect_write_pipe`) and their
//! stream forms on real pipes, FIFOs in temp dirs, socketpairs, ptys and child processes:
//! CPython's `UnixReadPipeTransportTests` / `UnixWritePipeTransportTests` (what applies
//! through real descriptors rather than mocks) and the functional pipe tests of
//! `test_events.py`, plus the reader going away, `SIGPIPE`, the accepted and refused kinds of
//! descriptor, and the blocking mode handed back.

mod proto_support;
mod support;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proto_support::*;
use tulip::transports::ExtraInfo;
use tulip::unix::{ReadPipeTransport, WritePipeTransport, connect_read_pipe, connect_write_pipe};

// ---- helpers ----------------------------------------------------------------------------

/// A pipe, close-on-exec (other tests spawn children): (read end, write end). Not
/// `std::io::pipe`, which is newer than the crate's `rust-version`.
fn pipe() -> (File, File) {
    use std::os::fd::FromRawFd;
    let mut fds = [-1 as libc::c_int; 2];
    #[cfg(target_os = "linux")]
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", io::Error::last_os_error());
    #[cfg(not(target_os = "linux"))]
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor just opened sets only its close-on-exec flag.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both were just opened by pipe and nothing else owns them.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

fn flags(fd: RawFd) -> libc::c_int {
    // SAFETY: F_GETFL on a descriptor the caller holds open reads its flags only.
    let f = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(f >= 0, "F_GETFL: {}", io::Error::last_os_error());
    f
}

fn is_nonblocking(fd: RawFd) -> bool {
    flags(fd) & libc::O_NONBLOCK != 0
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_SETFL on a descriptor the caller holds open changes only its flags.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFL, flags(fd) | libc::O_NONBLOCK) };
    assert_eq!(r, 0, "F_SETFL: {}", io::Error::last_os_error());
}

/// Reads from a non-blocking pipe end on the loop until `n` bytes or EOF, within `secs`.
async fn read_pipe(r: &mut File, n: usize, secs: f64) -> (Vec<u8>, bool) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
    while got.len() < n {
        match r.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < until,
                    "{} of {n} bytes in {secs} s",
                    got.len()
                );
                tulip::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    (got, false)
}

/// Reads a non-blocking pipe end on the loop until EOF, within `secs`.
async fn read_pipe_to_eof(r: &mut File, secs: f64) -> Vec<u8> {
    let (got, eof) = read_pipe(r, usize::MAX, secs).await;
    assert!(eof);
    got
}

async fn read_transport(p: &Probe, fd: impl Into<OwnedFd>) -> ReadPipeTransport {
    let (t, _) = connect_read_pipe(|| Rec::new(p), fd)
        .await
        .expect("connect_read_pipe");
    t
}

async fn write_transport(p: &Probe, fd: impl Into<OwnedFd>) -> WritePipeTransport {
    let (t, _) = connect_write_pipe(|| Rec::new(p), fd)
        .await
        .expect("connect_write_pipe");
    t
}

fn pipe_fd(info: Option<ExtraInfo>) -> RawFd {
    match info {
        Some(ExtraInfo::Pipe(fd)) => fd.as_raw_fd().expect("an open pipe"),
        other => panic!("no \"pipe\" extra info: {other:?}"),
    }
}

/// A fresh path in the temp dir, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("tulip-pipe-{}-{tag}-{n}", std::process::id());
        TempPath(std::env::temp_dir().join(name))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// A FIFO in the temp dir, opened at both ends: (read end, write end).
fn fifo() -> (TempPath, File, File) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let path = TempPath::new("fifo");
    let c = std::ffi::CString::new(path.0.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo: {}", io::Error::last_os_error());
    // A non-blocking open of the read end succeeds with no writer yet; then the write end.
    let rd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path.0)
        .expect("open FIFO for reading");
    let wr = std::fs::OpenOptions::new()
        .write(true)
        .open(&path.0)
        .expect("open FIFO for writing");
    (path, rd, wr)
}

/// A pty pair: (master, slave), or `None` where the system has none for us.
fn openpty() -> Option<(File, File)> {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two descriptors into `m` and `s`; the name, termios and window
    // size pointers may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if r != 0 {
        eprintln!("openpty: {}: skipped", io::Error::last_os_error());
        return None;
    }
    // SAFETY: both were just opened by openpty and nothing else owns them.
    Some(unsafe { (File::from_raw_fd(m), File::from_raw_fd(s)) })
}

/// Raw mode on a tty: no echo, no line discipline (CPython's `tty.setraw`).
fn set_raw(f: &File) {
    // SAFETY: an all-zero termios is a valid out-parameter for tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `f` is an open tty; `t` is valid for writes.
    let r = unsafe { libc::tcgetattr(f.as_raw_fd(), &mut t) };
    assert_eq!(r, 0);
    // SAFETY: `t` is a termios that tcgetattr filled.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: `t` is a valid termios for the open tty `f`.
    let r = unsafe { libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t) };
    assert_eq!(r, 0);
}

// ---- the read pipe transport ----------------------------------------------------------------

// CPython: test_unix_events.py UnixReadPipeTransportTests.test_ctor, test_ctor_with_waiter
// and test__read_ready.
#[tulip::test]
async fn read_pipe_ctor_connects_then_reads() {
    let _w = support::watchdog("read_pipe_ctor", 10);
    let p = Probe::new();
    let (r, mut w) = pipe();
    let t = read_transport(&p, r).await;
    // The waiter completed after connection_made, and nothing was read yet.
    assert_eq!(p.events(), [Event::CM]);
    assert!(t.is_reading() && !t.is_closing());
    w.write_all(b"data").unwrap();
    p.wait_bytes(4, 5.0).await;
    assert_eq!(p.received(), b"data");
    t.close();
    p.wait_lost(5.0).await;
}

// CPython: test_unix_events.py UnixReadPipeTransportTests.test__read_ready_eof.
#[tulip::test]
async fn read_pipe_eof_is_eof_received_then_connection_lost_none() {
    let _w = support::watchdog("read_pipe_eof", 10);
    let p = Probe::new();
    let (r, mut w) = pipe();
    // eof_received asks to stay open: a read pipe closes all the same (nothing to write).
    let (t, _) = connect_read_pipe(|| Rec::new(&p).keep_open(true), r)
        .await
        .unwrap();
    w.write_all(b"last").unwrap();
    drop(w);
    assert_eq!(p.wait_lost(5.0).await, None);
    assert_eq!(
        p.events(),
        [Event::CM, Event::DR(4), Event::ER, Event::CL(None)]
    );
    assert!(t.is_closing() && !t.is_reading());
    assert!(t.get_extra_info("pipe").is_none(), "closed: no descriptor");
}

// CPython: test_unix_events.py UnixReadPipeTransportTests.test__read_ready_blocked.
#[tulip::test]
async fn read_pipe_with_nothing_to_read_calls_nothing() {
    let _w = support::watchdog("read_pipe_blocked", 10);
    let p = Probe::new();
    let (r, _w2) = pipe();
    let t = read_transport(&p, r).await;
    tulip::sleep(Duration::from_millis(30)).await;
    assert_eq!(p.events(), [Event::CM]);
    t.close();
    p.wait_lost(5.0).await;
}

// CPython: test_unix_events.py UnixReadPipeTransportTests.test__read_ready_error (a real read
// error: a pty master reads `EIO` once its slave closed, on Linux).
#[cfg(target_os = "linux")]
#[tulip::test]
async fn read_pipe_error_is_connection_lost_with_it() {
    let _w = support::watchdog("read_pipe_error", 10);
    let Some((master, slave)) = openpty() else {
        return;
    };
    let p = Probe::new();
    let _t = read_transport(&p, master).await;
    drop(slave);
    let kind = p.wait_lost(5.0).await;
    let err_is_eio = kind.is_some() && p.count(|e| *e == Event::ER) == 0;
    assert!(err_is_eio, "{:?}", p.events());
}

// CPython: test_unix_events.py UnixReadPipeTransportTests.test_pause_reading,
// test_resume_reading, test_pause_reading_on_paused_pipe, test_resume_reading_on_paused_pipe.
#[tulip::test]
async fn read_pipe_pause_and_resume_reading() {
    let _w = support::watchdog("read_pipe_pause", 10);
    let p = Probe::new();
    let (r, mut w) = pipe();
    let t = read_transport(&p, r).await;
    t.pause_reading();
    t.pause_reading(); // paused already: a no-op
    assert!(!t.is_reading());
    w.write_all(b"held").unwrap();
    tulip::sleep(Duration::from_millis(30)).await;
    assert_eq!(p.received_len(), 0, "paused: nothing is delivered");
    t.resume_reading();
    t.resume_reading(); // reading already: a no-op
    assert!(t.is_reading());
    p.wait_bytes(4, 5.0).await;
    assert_eq!(p.events(), [Event::CM, Event::DR(4)]);
    t.close();
    p.wait_lost(5.0).await;
}

// CPython: test_unix_events.py UnixReadPipeTransportTests.test_pause_reading_on_closed_pipe,
// test_resume_reading_on_closed_pipe, test_close, test_close_already_closing, test__close,
// test__call_connection_lost.
#[tulip::test]
async fn read_pipe_close_once_then_pause_and_resume_are_no_ops() {
    let _w = support::watchdog("read_pipe_close", 10);
    let p = Probe::new();
    let (r, mut w) = pipe();
    let t = read_transport(&p, r).await;
    assert!(pipe_fd(t.get_extra_info("pipe")) >= 0);
    t.close();
    assert!(t.is_closing() && !t.is_reading());
    t.close(); // closing already
    assert_eq!(
        p.count_cl(),
        0,
        "connection_lost comes later, from the loop"
    );
    assert_eq!(p.wait_lost(5.0).await, None);
    t.pause_reading();
    t.resume_reading();
    assert!(!t.is_reading());
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
    // The protocol was let go of, and the read end closed: the writer gets EPIPE.
    assert!(t.get_protocol::<Rec>().is_none());
    assert!(t.get_extra_info("pipe").is_none());
    let e = w.write_all(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
}

// ---- the write pipe transport -------------------------------------------------------------

// CPython: test_unix_events.py UnixWritePipeTransportTests.test_ctor, test_can_write_eof,
// test_write, test_write_no_data.
#[tulip::test]
async fn write_pipe_ctor_and_write() {
    let _w = support::watchdog("write_pipe_write", 10);
    let p = Probe::new();
    let (mut r, w) = pipe();
    set_nonblocking(r.as_raw_fd());
    let t = write_transport(&p, w).await;
    assert_eq!(p.events(), [Event::CM]);
    assert!(t.can_write_eof());
    t.write(b"");
    t.write(b"data");
    assert_eq!(t.get_write_buffer_size(), 0, "written at once");
    t.writelines([&b"12"[..], b"345"]);
    assert_eq!(read_pipe(&mut r, 9, 5.0).await.0, b"data12345");
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert!(read_pipe_to_eof(&mut r, 5.0).await.is_empty());
}

// CPython: test_unix_events.py UnixWritePipeTransportTests.test_write_partial,
// test_write_buffer, test_write_again, test__write_ready, test__write_ready_partial,
// test__write_ready_again (a real pipe holds 64 KiB: the rest waits in the buffer), and
// asyncio's flow control.
#[tulip::test]
async fn write_pipe_buffers_what_the_pipe_cannot_take_with_flow_control() {
    let _w = support::watchdog("write_pipe_buffer", 20);
    let p = Probe::new();
    let (mut r, w) = pipe();
    set_nonblocking(r.as_raw_fd());
    let t = write_transport(&p, w).await;
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    let mut src = ByteStream::new(7);
    let data = src.take(1 << 20);
    t.write(&data[..512 * 1024]);
    t.write(&data[512 * 1024..]);
    let buffered = t.get_write_buffer_size();
    assert!(buffered > 0 && buffered < data.len(), "{buffered}");
    assert_eq!(
        p.events(),
        [Event::CM, Event::PW],
        "over the high-water mark"
    );
    let (got, _) = read_pipe(&mut r, data.len(), 10.0).await;
    assert!(got == data, "the bytes arrived in order");
    p.wait_resumed(5.0).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(p.events(), [Event::CM, Event::PW, Event::RW]);
    t.set_write_buffer_limits(Some(0), None).unwrap();
    t.drain().await.unwrap();
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
}

// CPython: test_unix_events.py UnixWritePipeTransportTests.test_write_err, test_write_close:
// a write to a pipe whose reader is gone is EPIPE (not SIGPIPE), the transport is lost with
// BrokenPipe, and later writes are dropped.
#[tulip::test]
async fn write_pipe_write_error_is_broken_pipe_and_later_writes_are_dropped() {
    let _w = support::watchdog("write_pipe_err", 10);
    let p = Probe::new();
    let (r, w) = pipe();
    let (t, _) = connect_write_pipe(|| Rec::new(&p), w).await.unwrap();
    drop(r);
    t.write(b"data"); // at once: EPIPE, before the loop saw the hang-up
    assert_eq!(p.wait_lost(5.0).await, Some(io::ErrorKind::BrokenPipe));
    for _ in 0..10 {
        t.write(b"data");
    }
    assert_eq!(t.get_write_buffer_size(), 0);
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.count_cl(), 1);
}

// CPython: test_unix_events.py UnixWritePipeTransportTests.test__read_ready: the reader
// closing is noticed with nothing to write, and with nothing buffered it is a plain close
// (`connection_lost(None)`, as the seed; with data still buffered it is BrokenPipe).
#[tulip::test]
async fn write_pipe_reader_closing_is_noticed_with_nothing_to_write() {
    let _w = support::watchdog("write_pipe_hup", 10);
    let p = Probe::new();
    let (r, w) = pipe();
    let t = write_transport(&p, w).await;
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.events(), [Event::CM], "a write end is not readable");
    drop(r);
    assert_eq!(p.wait_lost(5.0).await, None);
    assert!(t.is_closing());
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

/// The test: a child process reading a write pipe exits while data is still to be
/// sent; the transport gets `connection_lost(BrokenPipe)` and this process is not killed by
/// `SIGPIPE`.
#[tulip::test]
async fn write_pipe_to_a_child_that_exits_is_broken_pipe() {
    let _w = support::watchdog("write_pipe_child", 20);
    let mut child = Command::new("head")
        .args(["-c", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn head");
    let stdin = child.stdin.take().unwrap();
    let p = Probe::new();
    let t = write_transport(&p, stdin).await;
    // More than a pipe holds (64 KiB on Linux), written before the child can exit: data is
    // still buffered in the transport when the reader goes away.
    let chunk = vec![b'x'; 1 << 20];
    t.write(&chunk);
    assert!(
        t.get_write_buffer_size() > 0,
        "a pipe holds less than 1 MiB"
    );
    let until = Instant::now() + Duration::from_secs(10);
    while !p.is_lost() {
        assert!(Instant::now() < until, "{:?}", p.events());
        if t.get_write_buffer_size() < chunk.len() {
            t.write(&chunk);
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(p.lost_kind(), Some(Some(io::ErrorKind::BrokenPipe)));
    assert!(child.wait().unwrap().success());
}

// CPython: test_unix_events.py UnixWritePipeTransportTests.test__write_ready_closing,
// test_write_eof_pending: close (or write_eof) with data buffered sends it all, then
// connection_lost(None), then the reader sees EOF.
#[tulip::test]
async fn write_pipe_close_and_write_eof_drain_first() {
    let _w = support::watchdog("write_pipe_close", 20);
    for use_eof in [false, true] {
        let p = Probe::new();
        let (mut r, w) = pipe();
        set_nonblocking(r.as_raw_fd());
        let t = write_transport(&p, w).await;
        let data = ByteStream::new(3).take(300_000);
        t.write(&data);
        assert!(t.get_write_buffer_size() > 0);
        if use_eof {
            t.write_eof();
        } else {
            t.close();
        }
        assert!(t.is_closing());
        tulip::sleep(Duration::from_millis(10)).await;
        assert_eq!(p.count_cl(), 0, "not before the buffer drained");
        let got = read_pipe_to_eof(&mut r, 10.0).await;
        assert!(got == data, "{} of {} bytes", got.len(), data.len());
        assert_eq!(p.wait_lost(5.0).await, None);
    }
}

// CPython: test_unix_events.py UnixWritePipeTransportTests.test_write_eof, test_close,
// test_close_closing: with nothing buffered, write_eof closes at once (connection_lost(None)
// from the loop); a second close or write_eof does nothing.
#[tulip::test]
async fn write_pipe_write_eof_closes() {
    let _w = support::watchdog("write_pipe_eof", 10);
    let p = Probe::new();
    let (mut r, w) = pipe();
    set_nonblocking(r.as_raw_fd());
    let t = write_transport(&p, w).await;
    t.write_eof();
    assert!(t.is_closing());
    t.close();
    t.write_eof();
    assert_eq!(p.wait_lost(5.0).await, None);
    assert!(read_pipe_to_eof(&mut r, 5.0).await.is_empty());
    tulip::sleep(Duration::from_millis(10)).await;
    assert_eq!(p.events(), [Event::CM, Event::CL(None)]);
}

// CPython: test_unix_events.py UnixWritePipeTransportTests.test_abort,
// test__call_connection_lost: the buffer is dropped, connection_lost(None), the pipe closed.
#[tulip::test]
async fn write_pipe_abort_drops_the_buffer() {
    let _w = support::watchdog("write_pipe_abort", 10);
    let p = Probe::new();
    let (mut r, w) = pipe();
    set_nonblocking(r.as_raw_fd());
    let t = write_transport(&p, w).await;
    t.write(&vec![b'a'; 300_000]);
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert!(t.is_closing());
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(p.wait_lost(5.0).await, None);
    let got = read_pipe_to_eof(&mut r, 5.0).await;
    assert!(got.len() < 300_000, "what the pipe held, not the buffer");
    assert!(t.get_protocol::<Rec>().is_none());
}

// ---- test_events.py: the functional pipe tests ----------------------------------------------

// CPython: test_events.py EventLoopTestsMixin.test_read_pipe.
#[tulip::test]
async fn test_events_read_pipe() {
    let _w = support::watchdog("test_read_pipe", 10);
    let p = Probe::new();
    let (r, mut w) = pipe();
    let t = read_transport(&p, r).await;
    assert_eq!(p.events(), [Event::CM]);
    w.write_all(b"1").unwrap();
    p.wait_bytes(1, 5.0).await;
    w.write_all(b"2345").unwrap();
    p.wait_bytes(5, 5.0).await;
    assert_eq!(p.received(), b"12345");
    assert!(
        t.get_extra_info("pipe").is_some(),
        "extra info is available"
    );
    drop(w);
    assert_eq!(p.wait_lost(5.0).await, None);
    let ev = p.events();
    assert_eq!(&ev[ev.len() - 2..], [Event::ER, Event::CL(None)]);
}

// CPython: test_events.py EventLoopTestsMixin.test_write_pipe.
#[tulip::test]
async fn test_events_write_pipe() {
    let _w = support::watchdog("test_write_pipe", 10);
    let p = Probe::new();
    let (mut r, w) = pipe();
    set_nonblocking(r.as_raw_fd());
    let t = write_transport(&p, w).await;
    t.write(b"1");
    assert_eq!(read_pipe(&mut r, 1, 5.0).await.0, b"1");
    t.write(b"2345");
    assert_eq!(read_pipe(&mut r, 4, 5.0).await.0, b"2345");
    assert_eq!(p.events(), [Event::CM]);
    drop(r);
    assert!(
        t.get_extra_info("pipe").is_some(),
        "extra info is available"
    );
    t.close();
    p.wait_lost(5.0).await;
    assert!(t.is_closing());
    assert_eq!(p.count_cl(), 1);
}

// CPython: test_events.py EventLoopTestsMixin.test_write_pipe_disconnect_on_close (a
// socketpair end as the write pipe; written with `send`).
#[tulip::test]
async fn test_events_write_pipe_disconnect_on_close() {
    let _w = support::watchdog("test_write_pipe_disconnect", 10);
    let (rsock, wsock) = UnixStream::pair().unwrap();
    rsock.set_nonblocking(true).unwrap();
    let p = Probe::new();
    let t = write_transport(&p, wsock).await;
    t.write(b"1");
    assert_eq!(tulip::sock_recv(&rsock, 1024).await.unwrap(), b"1");
    drop(rsock);
    assert_eq!(
        p.wait_lost(5.0).await,
        None,
        "nothing was buffered: a plain close"
    );
}

// CPython: test_events.py EventLoopTestsMixin.test_read_pty_output.
#[tulip::test]
async fn test_events_read_pty_output() {
    let _w = support::watchdog("test_read_pty_output", 10);
    let Some((master, mut slave)) = openpty() else {
        return;
    };
    set_raw(&slave);
    let p = Probe::new();
    let t = read_transport(&p, master).await;
    slave.write_all(b"1").unwrap();
    p.wait_bytes(1, 5.0).await;
    slave.write_all(b"2345").unwrap();
    p.wait_bytes(5, 5.0).await;
    assert_eq!(p.received(), b"12345");
    assert!(t.get_extra_info("pipe").is_some());
    drop(slave);
    t.close();
    p.wait_lost(5.0).await;
    assert_eq!(p.count_cl(), 1);
}

// CPython: test_events.py EventLoopTestsMixin.test_write_pty (a character device: accepted,
// and not watched for reading).
#[tulip::test]
async fn test_events_write_pty() {
    let _w = support::watchdog("test_write_pty", 10);
    let Some((master, slave)) = openpty() else {
        return;
    };
    set_raw(&slave);
    let p = Probe::new();
    let t = write_transport(&p, slave).await;
    t.write(b"1");
    t.write(b"2345");
    // Reading the master end blocks, so a thread does it.
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut got = [0u8; 5];
        master.read_exact(&mut got).map(|()| got)
    });
    let got = join_thread(reader, 5.0).await.expect("read the master");
    assert_eq!(&got, b"12345");
    assert_eq!(p.events(), [Event::CM]);
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);
}

// CPython: test_events.py EventLoopTestsMixin.test_bidirectional_pty: one pty slave, read and
// written by two transports on two descriptors.
#[tulip::test]
async fn test_events_bidirectional_pty() {
    let _w = support::watchdog("test_bidirectional_pty", 10);
    let Some((master, slave)) = openpty() else {
        return;
    };
    set_raw(&slave);
    let write_slave = slave.try_clone().unwrap();
    let (rp, wp) = (Probe::new(), Probe::new());
    let rt = read_transport(&rp, slave).await;
    let wt = write_transport(&wp, write_slave).await;
    let mut m = master.try_clone().unwrap();
    set_nonblocking(m.as_raw_fd());
    let mut read_master = |n: usize| {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        let until = Instant::now() + Duration::from_secs(5);
        while got < n && Instant::now() < until {
            match m.read(&mut buf[got..]) {
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        buf.truncate(got);
        buf
    };
    wt.write(b"1");
    assert_eq!(read_master(1), b"1");
    (&master).write_all(b"a").unwrap();
    rp.wait_bytes(1, 5.0).await;
    wt.write(b"2345");
    assert_eq!(read_master(4), b"2345");
    (&master).write_all(b"bcde").unwrap();
    rp.wait_bytes(5, 5.0).await;
    assert_eq!(rp.received(), b"abcde");
    assert_eq!(wp.events(), [Event::CM]);
    drop((master, m));
    rt.close();
    rp.wait_lost(5.0).await;
    wt.close();
    wp.wait_lost(5.0).await;
}

// CPython: test_events.py EventLoopTestsMixin.test_unclosed_pipe_transport: the loop closes
// with both transports open; they are closed with it (descriptors released, nothing raised).
#[test]
fn unclosed_pipe_transports_are_closed_with_the_loop() {
    let _w = support::watchdog("unclosed_pipes", 10);
    let lp = tulip::EventLoop::new().unwrap();
    let (r1, _w1) = pipe();
    let (_r2, w2) = pipe();
    let (rt, wt) = lp.run_until_complete(async move {
        let (rp, wp) = (Probe::new(), Probe::new());
        (
            read_transport(&rp, r1).await,
            write_transport(&wp, w2).await,
        )
    });
    assert!(rt.get_extra_info("pipe").is_some() && wt.get_extra_info("pipe").is_some());
    lp.close();
    assert!(rt.is_closing() && wt.is_closing());
    // The transports let go of their descriptors (the numbers themselves may be another
    // test's by now).
    assert!(rt.get_extra_info("pipe").is_none() && wt.get_extra_info("pipe").is_none());
}

// ---- kinds of descriptor, and the blocking mode -----------------------------------------------

/// The seed's check: a regular file (or a directory) is refused with `InvalidInput`, the
/// factory is not called; a character device (`/dev/null`) and a FIFO are accepted.
#[tulip::test]
async fn regular_files_are_refused_pipes_fifos_and_devices_accepted() {
    let _w = support::watchdog("pipe_kinds", 10);
    let path = TempPath::new("regular");
    std::fs::write(&path.0, b"not a pipe").unwrap();
    for write in [false, true] {
        let f = File::options()
            .read(true)
            .write(true)
            .open(&path.0)
            .unwrap();
        let called = std::cell::Cell::new(false);
        let factory = || {
            called.set(true);
            Rec::new(&Probe::new())
        };
        let e = if write {
            connect_write_pipe(factory, f).await.unwrap_err()
        } else {
            connect_read_pipe(factory, f).await.unwrap_err()
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("not a pipe"), "{e}");
        assert!(!called.get(), "the factory runs only for a pipe");
    }
    let dir = File::open(std::env::temp_dir()).unwrap();
    let e = tulip::unix::open_read_pipe(dir).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");

    let p = Probe::new();
    let null = File::options().write(true).open("/dev/null").unwrap();
    let t = write_transport(&p, null).await;
    t.write(b"into the void");
    t.close();
    assert_eq!(p.wait_lost(5.0).await, None);

    let (_path, rd, mut wr) = fifo();
    let p = Probe::new();
    let t = read_transport(&p, rd).await;
    wr.write_all(b"through a FIFO").unwrap();
    p.wait_bytes(14, 5.0).await;
    assert_eq!(p.received(), b"through a FIFO");
    drop(wr);
    assert_eq!(p.wait_lost(5.0).await, None);
    assert!(t.is_closing());
}

// A FIFO as the write pipe: the reader closing is noticed as for a pipe.
#[tulip::test]
async fn fifo_write_pipe_notices_its_reader_closing() {
    let _w = support::watchdog("fifo_write", 10);
    let (_path, mut rd, wr) = fifo();
    let p = Probe::new();
    let t = write_transport(&p, wr).await;
    t.write(b"fifo");
    let mut got = [0u8; 4];
    let until = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while n < 4 {
        match rd.read(&mut got[n..]) {
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < until);
                tulip::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(&got, b"fifo");
    drop(rd);
    assert_eq!(
        p.wait_lost(5.0).await,
        None,
        "nothing was buffered: a plain close"
    );
}

/// The descriptor is made non-blocking, and put back in blocking mode when the transport
/// closes it — seen through a `dup`, which shares the open file description (as a `dup` of
/// stdin shares the shell's).
#[tulip::test]
async fn blocking_mode_is_set_then_restored() {
    let _w = support::watchdog("blocking_mode", 10);
    let (r, w) = pipe();
    let r_dup = r.try_clone().unwrap();
    let w_dup = w.try_clone().unwrap();
    assert!(!is_nonblocking(r_dup.as_raw_fd()) && !is_nonblocking(w_dup.as_raw_fd()));
    let (rp, wp) = (Probe::new(), Probe::new());
    let rt = read_transport(&rp, r).await;
    let wt = write_transport(&wp, w).await;
    assert!(is_nonblocking(r_dup.as_raw_fd()) && is_nonblocking(w_dup.as_raw_fd()));
    rt.close();
    wt.close();
    rp.wait_lost(5.0).await;
    wp.wait_lost(5.0).await;
    assert!(!is_nonblocking(r_dup.as_raw_fd()), "read end restored");
    assert!(!is_nonblocking(w_dup.as_raw_fd()), "write end restored");
}

// ---- the stream forms -------------------------------------------------------------------------

/// `open_write_pipe` → pipe → `open_read_pipe`: lines through a `StreamWriter` and a
/// `StreamReader`, `drain` for flow control, and EOF when the writer closes.
#[tulip::test]
async fn stream_reader_and_writer_over_pipes() {
    let _w = support::watchdog("pipe_streams", 20);
    let (r, w) = pipe();
    let mut reader = tulip::unix::open_read_pipe(r).await.unwrap();
    let writer = tulip::unix::open_write_pipe(w).await.unwrap();
    assert!(writer.can_write_eof());
    let big = ByteStream::new(11).take(1 << 20);
    let sent = big.clone();
    let task = tulip::spawn(async move {
        writer.write(b"hello\n");
        writer.write(&sent);
        writer.drain().await?;
        writer.write(b"\nbye\n");
        writer.close();
        writer.wait_closed().await
    });
    assert_eq!(reader.readline().await.unwrap(), b"hello\n");
    let got = reader.readexactly(big.len()).await.unwrap();
    assert!(got == big);
    assert_eq!(reader.readline().await.unwrap(), b"\n");
    assert_eq!(reader.readline().await.unwrap(), b"bye\n");
    assert!(reader.read(100).await.unwrap().is_empty());
    assert!(reader.at_eof());
    task.await.unwrap();
}

// ---- SIGPIPE ------------------------------------------------------------------------------------

/// With `SIGPIPE` at its default action (as in a C host), a socket given as a write pipe is
/// still safe: it is written with `send(MSG_NOSIGNAL)`, so the process lives and the
/// transport gets `BrokenPipe`. (A real pipe would kill such a process: see the module docs
/// of `tulip::unix`.) Runs in a child process, which restores the default action.
#[test]
fn socket_write_pipe_survives_default_sigpipe() {
    const NAME: &str = "socket_write_pipe_survives_default_sigpipe";
    if is_child(NAME) {
        // SAFETY: restoring the default action of SIGPIPE in this single-purpose child.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        tulip::run(async {
            let (a, b) = UnixStream::pair().unwrap();
            let p = Probe::new();
            let t = write_transport(&p, a).await;
            drop(b);
            for _ in 0..100 {
                t.write(b"after the reader closed");
                if p.is_lost() {
                    break;
                }
                tulip::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(p.wait_lost(5.0).await, Some(io::ErrorKind::BrokenPipe));
        });
        println!("child survived");
        return;
    }
    let _w = support::watchdog("socket_sigpipe", 30);
    let out = run_child(NAME, &["env"], &[], 20);
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("child survived"), "{out:?}");
}

// ---- descriptors are not leaked ----------------------------------------------------------------

fn open_fds() -> usize {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    std::fs::read_dir(dir).expect("list fds").count()
}

/// 1,000 cycles of a read and a write pipe transport opened, used and closed (and streams
/// dropped, and a regular file refused) leave the number of open descriptors where it was.
/// Runs in a child process, alone, so that other tests' descriptors do not count.
#[test]
fn a_thousand_open_close_cycles_leave_the_fd_count_flat() {
    const NAME: &str = "a_thousand_open_close_cycles_leave_the_fd_count_flat";
    if is_child(NAME) {
        let path = TempPath::new("fd-count");
        std::fs::write(&path.0, b"regular").unwrap();
        tulip::run(async move {
            let cycle = |path: PathBuf| async move {
                let (r, w) = pipe();
                let (rp, wp) = (Probe::new(), Probe::new());
                let rt = read_transport(&rp, r).await;
                let wt = write_transport(&wp, w).await;
                wt.write(b"ping");
                rp.wait_bytes(4, 5.0).await;
                wt.close();
                assert_eq!(rp.wait_lost(5.0).await, None);
                assert_eq!(wp.wait_lost(5.0).await, None);
                assert!(rt.is_closing());
                let (r, w) = pipe();
                drop(tulip::unix::open_read_pipe(r).await.unwrap());
                drop(tulip::unix::open_write_pipe(w).await.unwrap());
                let f = File::open(path).unwrap();
                assert!(tulip::unix::open_read_pipe(f).await.is_err());
            };
            cycle(path.0.clone()).await; // the loop's own descriptors, made once
            tulip::sleep(Duration::from_millis(5)).await;
            let before = open_fds();
            for _ in 0..1000 {
                cycle(path.0.clone()).await;
            }
            tulip::sleep(Duration::from_millis(5)).await; // the dropped streams' closing
            let after = open_fds();
            assert_eq!(before, after, "descriptors leaked");
            println!("fds: {before} before, {after} after");
        });
        return;
    }
    let _w = support::watchdog("fd_count", 60);
    let out = run_child(NAME, &["env"], &[], 50);
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("fds: "), "{out:?}");
}

/// In a process where `SIGPIPE` kills (restored to its default action here, in a child), the
/// first write pipe logs a warning saying so — once — and tulip leaves the disposition alone.
#[test]
fn default_sigpipe_is_warned_about_once_and_left_alone() {
    const NAME: &str = "default_sigpipe_is_warned_about_once_and_left_alone";
    if is_child(NAME) {
        struct Capture;
        static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        impl log::Log for Capture {
            fn enabled(&self, m: &log::Metadata<'_>) -> bool {
                m.level() <= log::Level::Warn
            }
            fn log(&self, r: &log::Record<'_>) {
                if self.enabled(r.metadata()) {
                    LINES.lock().unwrap().push(r.args().to_string());
                }
            }
            fn flush(&self) {}
        }
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
        // SAFETY: restoring the default action of SIGPIPE in this single-purpose child.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        tulip::run(async {
            for _ in 0..2 {
                let (_r, w) = pipe();
                let p = Probe::new();
                let t = write_transport(&p, w).await;
                t.close();
                p.wait_lost(5.0).await;
            }
        });
        let lines = LINES.lock().unwrap().clone();
        let warned = lines.iter().filter(|l| l.contains("SIGPIPE")).count();
        assert_eq!(warned, 1, "{lines:?}");
        // SAFETY: reading the current action only (a null new action changes nothing).
        let still_default = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
        };
        assert!(still_default, "the disposition was changed");
        println!("warned once");
        return;
    }
    let _w = support::watchdog("sigpipe_warning", 30);
    let out = run_child(NAME, &["env"], &[], 20);
    assert!(out.success && out.stdout.contains("warned once"), "{out:?}");
}
