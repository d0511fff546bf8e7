//! The loop's callback machinery: call_soon, timers, handles, stop/run, the iteration rule,
//! the exception handler, call_soon_threadsafe and add_reader/add_writer.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tulip::EventLoop;

fn log() -> Rc<RefCell<Vec<u32>>> {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Rc<RefCell<Vec<u32>>>, n: u32) -> impl FnOnce() + 'static {
    let log = log.clone();
    move || log.borrow_mut().push(n)
}

#[test]
fn call_soon_runs_in_fifo_order() {
    let _w = support::watchdog("call_soon_runs_in_fifo_order", 20);
    let lp = EventLoop::new().unwrap();
    let l = log();
    for i in 0..1000 {
        lp.call_soon(push(&l, i));
    }
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop());
    lp.run_forever();
    assert_eq!(*l.borrow(), (0..1000).collect::<Vec<_>>());
    lp.close();
}

#[test]
fn timers_run_in_deadline_order_and_ties_in_call_order() {
    let _w = support::watchdog("timers_order", 20);
    let lp = EventLoop::new().unwrap();
    let l = log();
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    lp.call_at(at(30), push(&l, 5));
    lp.call_at(at(10), push(&l, 1));
    lp.call_at(at(20), push(&l, 3));
    lp.call_at(at(10), push(&l, 2));
    lp.call_at(at(20), push(&l, 4));
    lp.call_later(Duration::from_millis(40), push(&l, 6));
    lp.run_until_complete(tulip::sleep(Duration::from_millis(60)));
    assert_eq!(*l.borrow(), vec![1, 2, 3, 4, 5, 6]);
    assert!(t0.elapsed() >= Duration::from_millis(40));
}

#[test]
fn timers_do_not_fire_early() {
    let _w = support::watchdog("timers_do_not_fire_early", 20);
    let lp = EventLoop::new().unwrap();
    let fired = Rc::new(Cell::new(None));
    let f = fired.clone();
    let t0 = Instant::now();
    let h = lp.call_later(Duration::from_millis(25), move || {
        f.set(Some(Instant::now()))
    });
    assert!(h.when() >= t0 + Duration::from_millis(25));
    lp.run_until_complete(tulip::sleep(Duration::from_millis(50)));
    let at = fired.get().expect("timer fired");
    assert!(at.duration_since(t0) >= Duration::from_millis(25));
}

#[test]
fn cancelled_handles_never_run() {
    let _w = support::watchdog("cancelled_handles_never_run", 20);
    let lp = EventLoop::new().unwrap();
    let l = log();
    let h1 = lp.call_soon(push(&l, 1));
    lp.call_soon(push(&l, 2));
    let t1 = lp.call_later(Duration::from_millis(1), push(&l, 3));
    lp.call_later(Duration::from_millis(2), push(&l, 4));
    h1.cancel();
    t1.cancel();
    assert!(h1.cancelled() && t1.cancelled());
    // Cancel many timers, enough to trigger compaction, then make sure none runs.
    let many: Vec<_> = (0..1000)
        .map(|i| lp.call_later(Duration::from_millis(3), push(&l, 100 + i)))
        .collect();
    for h in &many {
        h.cancel();
    }
    lp.run_until_complete(tulip::sleep(Duration::from_millis(20)));
    assert_eq!(*l.borrow(), vec![2, 4]);
    // Cancelling after the run is harmless and does not mark it cancelled.
    let h = lp.call_soon(push(&l, 5));
    lp.run_until_complete(tulip::yield_now());
    h.cancel();
    assert!(!h.cancelled());
    assert_eq!(*l.borrow(), vec![2, 4, 5]);
}

#[test]
fn a_callback_can_cancel_a_later_one_in_the_same_iteration() {
    let _w = support::watchdog("cancel_same_iteration", 20);
    let lp = EventLoop::new().unwrap();
    let l = log();
    let later: Rc<RefCell<Option<tulip::Handle>>> = Rc::new(RefCell::new(None));
    let lt = later.clone();
    lp.call_soon(move || lt.borrow().as_ref().unwrap().cancel());
    *later.borrow_mut() = Some(lp.call_soon(push(&l, 1)));
    lp.call_soon(push(&l, 2));
    lp.run_until_complete(tulip::yield_now());
    assert_eq!(*l.borrow(), vec![2]);
}

#[test]
fn callbacks_scheduled_by_callbacks_run_next_iteration_after_io() {
    let _w = support::watchdog("iteration_rule", 20);
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let events: Rc<RefCell<Vec<&'static str>>> = Rc::new(RefCell::new(Vec::new()));
    // The reader fires once data is there; the chain of call_soon must not starve it.
    let e = events.clone();
    let lp2 = lp.clone();
    let afd = a.try_clone().unwrap();
    let afd_raw = a.as_raw_fd();
    lp.add_reader(a.as_raw_fd(), move || {
        let mut buf = [0u8; 16];
        let _ = (&afd).read(&mut buf);
        e.borrow_mut().push("io");
        lp2.remove_reader(afd_raw).expect("remove_reader");
    })
    .unwrap();
    b.write_all(b"x").unwrap();
    fn chain(lp: EventLoop, e: Rc<RefCell<Vec<&'static str>>>, left: u32) {
        e.borrow_mut().push("cb");
        if left > 0 {
            let lp2 = lp.clone();
            lp.call_soon(move || chain(lp2, e, left - 1));
        }
    }
    let (lp3, e3) = (lp.clone(), events.clone());
    lp.call_soon(move || chain(lp3, e3, 5));
    let lp4 = lp.clone();
    lp.call_later(Duration::from_millis(30), move || lp4.stop());
    lp.run_forever();
    let ev = events.borrow();
    let io_at = ev.iter().position(|s| *s == "io").expect("reader ran");
    // First iteration: the first chain link runs (it was ready before the iteration began).
    // The link it schedules runs on the next iteration, after I/O is polled — so the reader
    // runs before the second link.
    assert_eq!(io_at, 1, "{ev:?}");
    assert_eq!(ev.iter().filter(|s| **s == "cb").count(), 6);
}

#[test]
fn stop_then_run_forever_resumes() {
    let _w = support::watchdog("stop_then_run_forever_resumes", 20);
    let lp = EventLoop::new().unwrap();
    let l = log();
    let lp2 = lp.clone();
    lp.call_soon(push(&l, 1));
    lp.call_soon(move || lp2.stop());
    lp.call_soon(push(&l, 2));
    let lp3 = lp.clone();
    let l3 = l.clone();
    // Scheduled by a callback of the first run: it must wait for the second run.
    lp.call_soon(move || {
        let l4 = l3.clone();
        lp3.call_soon(move || l4.borrow_mut().push(3));
    });
    lp.run_forever();
    assert_eq!(*l.borrow(), vec![1, 2]);
    assert!(!lp.is_running());
    let lp5 = lp.clone();
    lp.call_soon(move || lp5.stop());
    lp.run_forever();
    assert_eq!(*l.borrow(), vec![1, 2, 3]);
    lp.close();
    assert!(lp.is_closed());
    lp.close(); // harmless twice
}

#[test]
fn stop_before_run_forever_runs_one_iteration() {
    let _w = support::watchdog("stop_before_run_forever", 20);
    let lp = EventLoop::new().unwrap();
    let l = log();
    lp.call_soon(push(&l, 1));
    lp.call_later(Duration::from_secs(60), push(&l, 9));
    lp.stop();
    let t0 = Instant::now();
    lp.run_forever();
    assert_eq!(*l.borrow(), vec![1]);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn run_until_complete_returns_the_value_and_borrows() {
    let _w = support::watchdog("run_until_complete_returns", 20);
    let lp = EventLoop::new().unwrap();
    let local = String::from("borrowed");
    let v = lp.run_until_complete(async {
        tulip::sleep(Duration::from_millis(1)).await;
        local.len()
    });
    assert_eq!(v, 8);
    assert_eq!(lp.run_until_complete(async { 42 }), 42);
    assert!(!lp.is_running());
    lp.close();
}

// CPython: test_events.py EventLoopTestsMixin.test_run_until_complete_stopped
#[test]
#[should_panic(expected = "event loop stopped before the future completed")]
fn run_until_complete_panics_when_stopped_early() {
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop());
    lp.run_until_complete(tulip::sleep(Duration::from_secs(30)));
}

#[test]
fn a_panicking_callback_reaches_the_handler_and_the_loop_goes_on() {
    let _w = support::watchdog("panicking_callback", 20);
    let lp = EventLoop::new().unwrap();
    let seen: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(move |_lp, ctx| {
        s.borrow_mut().push(format!(
            "{}|{}",
            ctx.message(),
            ctx.panic_message().unwrap_or("-")
        ));
    });
    let l = log();
    lp.call_soon(|| panic!("boom in callback"));
    lp.call_soon(push(&l, 1));
    lp.call_later(Duration::from_millis(1), || panic!("boom in timer"));
    lp.call_later(Duration::from_millis(2), push(&l, 2));
    // Ends after the timers whatever the time printing a panic takes.
    let end = lp.create_future::<()>();
    let e = end.clone();
    lp.call_later(Duration::from_millis(3), move || e.set_result(()));
    lp.run_until_complete(end).unwrap();
    assert_eq!(*l.borrow(), vec![1, 2]);
    assert_eq!(
        *seen.borrow(),
        vec![
            "Exception in callback|boom in callback".to_string(),
            "Exception in callback|boom in timer".to_string()
        ]
    );
    // A handler that panics itself does not take the loop down either.
    lp.set_exception_handler(|_, _| panic!("handler broken"));
    lp.call_soon(|| panic!("again"));
    lp.call_soon(push(&l, 3));
    lp.run_until_complete(tulip::yield_now());
    assert_eq!(*l.borrow(), vec![1, 2, 3]);
    lp.reset_exception_handler();
}

#[test]
fn call_soon_threadsafe_from_8_threads_runs_each_exactly_once() {
    let _w = support::watchdog("threadsafe_8x10000", 60);
    let lp = EventLoop::new().unwrap();
    const THREADS: usize = 8;
    const EACH: usize = 10_000;
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..THREADS * EACH).map(|_| AtomicUsize::new(0)).collect());
    let total = Rc::new(Cell::new(0usize));
    let handle = lp.handle();
    let mut joins = Vec::new();
    for t in 0..THREADS {
        let handle = handle.clone();
        let counts = counts.clone();
        joins.push(std::thread::spawn(move || {
            let mut last_seen = Arc::new(AtomicUsize::new(0));
            for i in 0..EACH {
                let counts = counts.clone();
                let order = Arc::new(AtomicUsize::new(i));
                let prev = std::mem::replace(&mut last_seen, order.clone());
                handle
                    .call_soon_threadsafe(move || {
                        counts[t * EACH + i].fetch_add(1, Ordering::Relaxed);
                        // Per-thread order: the previous callback of this thread already ran.
                        assert!(
                            i == 0 || prev.load(Ordering::Relaxed) == usize::MAX,
                            "out of order"
                        );
                        order.store(usize::MAX, Ordering::Relaxed);
                    })
                    .unwrap();
            }
        }));
    }
    let tot = total.clone();
    let c2 = counts.clone();
    let fut = async move {
        loop {
            let done = c2.iter().filter(|c| c.load(Ordering::Relaxed) > 0).count();
            tot.set(done);
            if done == THREADS * EACH {
                break;
            }
            tulip::sleep(Duration::from_millis(1)).await;
        }
    };
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let e = errors.clone();
    lp.set_exception_handler(move |_, ctx| e.borrow_mut().push(ctx.to_string()));
    lp.run_until_complete(fut);
    for j in joins {
        j.join().unwrap();
    }
    // Anything sent after the last check must also run, exactly once.
    lp.run_until_complete(tulip::sleep(Duration::from_millis(5)));
    assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    assert_eq!(total.get(), THREADS * EACH);
    lp.close();
    assert!(handle.call_soon_threadsafe(|| {}).is_err());
}

#[test]
fn call_soon_threadsafe_wakes_a_sleeping_loop() {
    let _w = support::watchdog("threadsafe_wakes", 20);
    let lp = EventLoop::new().unwrap();
    let handle = lp.handle();
    let t0 = Instant::now();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        handle.stop().unwrap();
    });
    lp.run_forever(); // nothing scheduled: blocks in epoll until the other thread wakes it
    th.join().unwrap();
    let dt = t0.elapsed();
    assert!(
        dt >= Duration::from_millis(20) && dt < Duration::from_secs(5),
        "{dt:?}"
    );
}

#[test]
fn add_reader_replaces_and_remove_reports() {
    let _w = support::watchdog("add_reader_replaces", 20);
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let l = log();
    let l1 = l.clone();
    lp.add_reader(a.as_raw_fd(), move || l1.borrow_mut().push(1))
        .unwrap();
    let (l2, lp2, a2) = (l.clone(), lp.clone(), a.try_clone().unwrap());
    let a_raw = a.as_raw_fd();
    lp.add_reader(a.as_raw_fd(), move || {
        l2.borrow_mut().push(2);
        let mut buf = [0u8; 8];
        let _ = (&a2).read(&mut buf);
        assert!(lp2.remove_reader(a_raw).expect("remove_reader"));
        lp2.stop();
    })
    .unwrap();
    b.write_all(b"hi").unwrap();
    lp.run_forever();
    assert_eq!(*l.borrow(), vec![2]);
    assert!(!lp.remove_reader(a.as_raw_fd()).expect("remove_reader"));
    assert_eq!(
        lp.fd_interest(a.as_raw_fd()),
        ((false, false), (false, false))
    );
}

#[test]
fn add_writer_fires_when_writable_and_readers_are_level_triggered() {
    let _w = support::watchdog("add_writer", 20);
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let writes = Rc::new(Cell::new(0));
    let (w2, lp2, a2) = (writes.clone(), lp.clone(), a.as_raw_fd());
    lp.add_writer(a.as_raw_fd(), move || {
        w2.set(w2.get() + 1);
        if w2.get() == 3 {
            assert!(lp2.remove_writer(a2).expect("remove_writer"));
        }
    })
    .unwrap();
    // Level-triggered: a reader that does not read keeps being called.
    let reads = Rc::new(Cell::new(0));
    let (r2, lp3, a3) = (reads.clone(), lp.clone(), a.as_raw_fd());
    lp.add_reader(a.as_raw_fd(), move || {
        r2.set(r2.get() + 1);
        if r2.get() == 5 {
            lp3.remove_reader(a3).expect("remove_reader");
            lp3.stop();
        }
    })
    .unwrap();
    b.write_all(b"x").unwrap();
    lp.run_forever();
    assert_eq!(writes.get(), 3);
    assert_eq!(reads.get(), 5);
}

#[test]
fn add_reader_on_a_bad_fd_is_an_error() {
    let lp = EventLoop::new().unwrap();
    let err = lp.add_reader(987_654, || {}).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_ebadf()));
    let f = std::fs::File::open("Cargo.toml").unwrap();
    assert!(lp.add_reader(f.as_raw_fd(), || {}).is_err()); // epoll refuses regular files (EPERM)
}

fn libc_ebadf() -> i32 {
    9
}

#[test]
fn debug_mode_and_slow_callback_duration() {
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    assert!(lp.get_debug());
    lp.set_slow_callback_duration(Duration::from_millis(1));
    assert_eq!(lp.slow_callback_duration(), Duration::from_millis(1));
    lp.call_soon(|| std::thread::sleep(Duration::from_millis(3)));
    lp.run_until_complete(tulip::yield_now()); // logs a warning through `log`
    lp.set_debug(false);
    assert!(!lp.get_debug());
}

#[test]
fn get_running_loop_inside_and_outside() {
    assert!(tulip::try_get_running_loop().is_none());
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        let cur = tulip::get_running_loop();
        assert!(cur.is_running());
        let h = cur.call_soon(|| {});
        drop(h);
        assert_eq!(format!("{cur:?}"), format!("{lp2:?}"));
    });
    assert!(tulip::try_get_running_loop().is_none());
}

#[test]
#[should_panic(expected = "cannot run the event loop while another loop is running")]
fn running_a_loop_inside_another_panics() {
    let outer = EventLoop::new().unwrap();
    outer.run_until_complete(async {
        let inner = EventLoop::new().unwrap();
        inner.run_until_complete(async {});
    });
}

#[test]
#[should_panic(expected = "event loop is closed")]
fn call_soon_on_a_closed_loop_panics() {
    let lp = EventLoop::new().unwrap();
    lp.close();
    lp.call_soon(|| {});
}

#[test]
fn a_panic_in_the_main_future_unwinds_out_and_the_loop_stays_usable() {
    let _w = support::watchdog("main_future_panics", 20);
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    lp.set_exception_handler(move |_, _| s.set(s.get() + 1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run_until_complete(async {
            tulip::yield_now().await;
            panic!("main boom");
        })
    }));
    let p = r.expect_err("the panic reaches the caller");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"main boom"));
    assert_eq!(seen.get(), 0, "not reported as a callback failure");
    assert!(!lp.is_running());
    assert_eq!(lp.run_until_complete(async { 3 }), 3);
    lp.close();
}
