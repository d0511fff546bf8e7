//! The pipe transports (`tulip::unix::connect_read_pipe` / `connect_write_pipe`) and their
//! stream forms on real pipes, FIFOs in temp dirs, socketpairs, ptys and child processes:
//! CPython's `UnixReadPipeTransportTests` / `UnixWritePipeTransportTests` (what applies
//! through real descriptors rather than mocks) and the functional pipe tests of
//! `test_events.py`, plus the reader going away. The functional tests, the kinds of
//! descriptor, the blocking mode, `SIGPIPE` and fd counts are in `transport_pipe_events.rs`.

mod pipe_support;
mod proto_support;
mod support;

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proto_support::*;
use tulip::unix::{connect_read_pipe, connect_write_pipe};

use pipe_support::*;

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
