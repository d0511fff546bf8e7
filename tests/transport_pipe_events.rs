//! Pipe transports, part 2: asyncio test_events.py's functional pipe and pty tests, the kinds
//! of descriptor accepted, the blocking mode set and restored, the stream forms, SIGPIPE, and
//! no fd leaked over a thousand open/close cycles. The transports themselves are in
//! `transport_pipe.rs`.

mod pipe_support;
mod proto_support;
mod support;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use proto_support::*;
use tulip::unix::{connect_read_pipe, connect_write_pipe};

use pipe_support::*;

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
