//! CPython's `Lib/test/test_asyncio/test_events.py` (`EventLoopTestsMixin`), more of it
//! translated: running and stopping, callbacks and timers, readers and writers on a
//! socketpair, prompt cancellation, and what a closed or running loop refuses. asyncio
//! raises `RuntimeError` for a closed or running loop; tulip panics with a clear message (a
//! programming error, listed under `# Panics`), except where the API returns an error.
//! Each test names the CPython test it comes from.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::EventLoop;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Runs `f`, which must panic with a message containing `words`.
fn assert_panics(what: &str, words: &str, f: impl FnOnce()) {
    let p = catch_unwind(AssertUnwindSafe(f)).expect_err(what);
    let msg = panic_message(&*p);
    assert!(msg.contains(words), "{what}: {msg}");
}

// CPython: test_events.py EventLoopTestsMixin.test_run_until_complete
#[test]
fn test_run_until_complete() {
    let _w = support::watchdog("test_run_until_complete", 10);
    let lp = EventLoop::new().unwrap();
    let t0 = lp.time();
    lp.run_until_complete(tulip::sleep(ms(20)));
    assert!(lp.time() - t0 >= ms(20));
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_call_later
#[test]
fn test_call_later() {
    let _w = support::watchdog("test_call_later", 10);
    let lp = EventLoop::new().unwrap();
    let results: Rc<RefCell<Vec<&str>>> = Rc::default();
    let (r, l2) = (results.clone(), lp.clone());
    let t0 = Instant::now();
    lp.call_later(ms(20), move || {
        r.borrow_mut().push("hello world");
        l2.stop();
    });
    lp.run_forever();
    assert_eq!(*results.borrow(), ["hello world"]);
    assert!(t0.elapsed() >= ms(20));
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_call_soon
#[test]
fn test_call_soon() {
    let lp = EventLoop::new().unwrap();
    let results: Rc<RefCell<Vec<(&str, &str)>>> = Rc::default();
    let (r, l2) = (results.clone(), lp.clone());
    lp.call_soon(move || {
        r.borrow_mut().push(("hello", "world"));
        l2.stop();
    });
    lp.run_forever();
    assert_eq!(*results.borrow(), [("hello", "world")]);
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_reader_callback
#[test]
fn test_reader_callback() {
    let _w = support::watchdog("test_reader_callback", 10);
    let lp = EventLoop::new().unwrap();
    let (r, mut w) = UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    let r = Rc::new(RefCell::new(Some(r)));
    let bytes_read: Rc<RefCell<Vec<u8>>> = Rc::default();
    let removed = Rc::new(std::cell::Cell::new(false));
    let (rr, br, rm, l2) = (r.clone(), bytes_read.clone(), removed.clone(), lp.clone());
    let fd = r.borrow().as_ref().unwrap().as_raw_fd();
    lp.add_reader(fd, move || {
        let mut buf = [0u8; 1024];
        let n = match rr.borrow_mut().as_mut().map(|s| s.read(&mut buf)) {
            Some(Ok(n)) => n,
            _ => return, // a spurious wakeup (WouldBlock)
        };
        if n > 0 {
            br.borrow_mut().extend_from_slice(&buf[..n]);
        } else {
            rm.set(l2.remove_reader(fd).unwrap());
            rr.borrow_mut().take(); // close it
            l2.stop();
        }
    })
    .unwrap();
    lp.run_until_complete(async {
        w.write_all(b"abc").unwrap();
        while bytes_read.borrow().len() < 3 {
            tulip::sleep(ms(1)).await;
        }
        w.write_all(b"def").unwrap();
        while bytes_read.borrow().len() < 6 {
            tulip::sleep(ms(1)).await;
        }
    });
    drop(w);
    lp.run_forever();
    assert_eq!(*bytes_read.borrow(), b"abcdef");
    assert!(removed.get(), "remove_reader returned true");
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_writer_callback
#[test]
fn test_writer_callback() {
    let _w = support::watchdog("test_writer_callback", 10);
    let lp = EventLoop::new().unwrap();
    let (mut r, w) = UnixStream::pair().unwrap();
    w.set_nonblocking(true).unwrap();
    let w = Rc::new(w);
    let data = vec![b'x'; 1024];
    let (w2, d2, l2) = (w.clone(), data.clone(), lp.clone());
    lp.add_writer(w.as_raw_fd(), move || {
        (&*w2).write_all(&d2).unwrap();
        l2.stop();
    })
    .unwrap();
    lp.run_forever();
    assert!(lp.remove_writer(w.as_raw_fd()).unwrap());
    assert!(!lp.remove_writer(w.as_raw_fd()).unwrap());
    drop(w);
    let mut read = Vec::new();
    r.read_to_end(&mut read).unwrap();
    assert_eq!(read, data, "the writer ran exactly once before stop");
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_prompt_cancellation: a `sock_recv`
// waiting on a socket is cancelled at once, and its task reports the cancel.
#[test]
fn test_prompt_cancellation() {
    let _w = support::watchdog("test_prompt_cancellation", 10);
    let lp = EventLoop::new().unwrap();
    let (r, _w) = UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    let res = lp.run_until_complete(async move {
        let f = tulip::spawn(async move { tulip::sock_recv(&r, 1).await });
        tulip::yield_now().await;
        assert!(!f.is_finished());
        let t0 = Instant::now();
        let out = f.cancel().await;
        assert!(t0.elapsed() < ms(100), "cancelled promptly");
        match out {
            None => "cancelled",
            Some(_) => "completed",
        }
    });
    assert_eq!(res, "cancelled");
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_remove_fds_after_closing: removing
// after close finds nothing registered.
#[test]
fn test_remove_fds_after_closing() {
    let lp = EventLoop::new().unwrap();
    let (r, w) = UnixStream::pair().unwrap();
    lp.add_reader(r.as_raw_fd(), || {}).unwrap();
    lp.add_writer(w.as_raw_fd(), || {}).unwrap();
    lp.close();
    assert!(!lp.remove_reader(r.as_raw_fd()).unwrap());
    assert!(!lp.remove_writer(w.as_raw_fd()).unwrap());
}

// CPython: test_events.py EventLoopTestsMixin.test_add_fds_after_closing
#[test]
fn test_add_fds_after_closing() {
    let lp = EventLoop::new().unwrap();
    let (r, w) = UnixStream::pair().unwrap();
    lp.close();
    assert_panics("add_reader on a closed loop", "closed", || {
        let _ = lp.add_reader(r.as_raw_fd(), || {});
    });
    assert_panics("add_writer on a closed loop", "closed", || {
        let _ = lp.add_writer(w.as_raw_fd(), || {});
    });
}

// CPython: test_events.py EventLoopTestsMixin.test_close_running_event_loop
#[test]
fn test_close_running_event_loop() {
    let lp = EventLoop::new().unwrap();
    let l2 = lp.clone();
    assert_panics("close inside run_until_complete", "running", || {
        lp.run_until_complete(async move { l2.close() })
    });
    assert!(!lp.is_closed(), "the loop survived the refused close");
    assert_eq!(lp.run_until_complete(async { 5 }), 5);
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_close: a closed loop refuses to run
// and to schedule. (`call_soon_threadsafe` returns an error instead: it may be called from
// any thread, whose code cannot know the loop closed.)
#[test]
fn test_close() {
    let lp = EventLoop::new().unwrap();
    lp.close();
    assert!(lp.is_closed());
    assert_panics("run_forever", "closed", || lp.run_forever());
    assert_panics("run_until_complete", "closed", || {
        let f = lp.create_future::<()>();
        let _ = lp.run_until_complete(f);
    });
    assert_panics("call_soon", "closed", || {
        lp.call_soon(|| ());
    });
    assert_panics("call_later", "closed", || {
        lp.call_later(Duration::from_secs(1), || ());
    });
    assert_panics("call_at", "closed", || {
        lp.call_at(lp.time(), || ());
    });
    assert_panics("spawn", "closed", || {
        lp.spawn(async {}).detach();
    });
    let e = lp.handle().call_soon_threadsafe(|| ()).unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
}
