//! Virtual time (`EventLoop::with_virtual_time`, `#[tulip::test(virtual_time)]`) and
//! `#[tulip::test(timeout = "…")]`: timers run at exact virtual instants and at once; real
//! sockets still work, and the clock does not jump while I/O may still arrive.

mod support;

use std::cell::RefCell;
use std::future::pending;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Less than this much wall-clock time: the test did not wait for its timers for real.
const INSTANT: Duration = Duration::from_secs(2);

#[tulip::test(virtual_time)]
async fn sleep_30s_advances_the_clock_by_exactly_30s_at_once() {
    let _w = support::watchdog("sleep_30s_advances_the_clock_by_exactly_30s_at_once", 10);
    let lp = tulip::get_running_loop();
    assert!(lp.is_virtual_time());
    let wall = Instant::now();
    let t0 = lp.time();
    std::thread::sleep(ms(5));
    assert_eq!(lp.time(), t0, "the clock does not follow the wall clock");
    tulip::sleep(secs(30)).await;
    assert_eq!(lp.time() - t0, secs(30));
    assert!(wall.elapsed() < INSTANT, "{:?}", wall.elapsed());
}

#[tulip::test(virtual_time)]
async fn timers_fire_in_order_at_their_virtual_instants() {
    let _w = support::watchdog("timers_fire_in_order_at_their_virtual_instants", 10);
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let log = Rc::new(RefCell::new(Vec::new()));
    for (name, delay) in [("c", 3_000), ("a", 1), ("b", 2_500), ("a2", 1)] {
        let (l, lp2) = (log.clone(), lp.clone());
        lp.call_later(ms(delay), move || {
            l.borrow_mut().push((name, lp2.time() - t0));
        });
    }
    tulip::sleep(secs(10)).await;
    assert_eq!(
        *log.borrow(),
        [
            ("a", ms(1)),
            ("a2", ms(1)),
            ("b", ms(2_500)),
            ("c", ms(3_000))
        ]
    );
    assert_eq!(lp.time() - t0, secs(10));
}

/// `call_at` on virtual time: deadline order, then call order; each callback runs at
/// exactly its instant, with no wall-clock wait. (The cancelled one at the same instant as
/// another is uvloop's `tests/test_base.py` `_TestBase.test_call_at`.)
#[test]
fn call_at_orders_by_deadline_then_by_call() {
    let _w = support::watchdog("call_at_orders_by_deadline_then_by_call", 10);
    let lp = tulip::EventLoop::with_virtual_time().unwrap();
    let t0 = lp.time();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.call_at(t0 + secs(3600), move || l.borrow_mut().push((100, secs(0))))
        .cancel();
    for (n, at) in [(3, 7200), (1, 3600), (2, 3600), (0, 1)] {
        let (l, lp2) = (log.clone(), lp.clone());
        lp.call_at(t0 + secs(at), move || {
            l.borrow_mut().push((n, lp2.time() - t0))
        });
    }
    let wall = Instant::now();
    lp.run_until_complete(tulip::sleep_until(t0 + secs(7200)));
    assert_eq!(
        *log.borrow(),
        [
            (0, secs(1)),
            (1, secs(3600)),
            (2, secs(3600)),
            (3, secs(7200))
        ]
    );
    assert!(wall.elapsed() < INSTANT);
    lp.close();
}

#[tulip::test(virtual_time)]
async fn timeout_around_a_never_ready_future_expires_at_once() {
    let _w = support::watchdog("timeout_around_a_never_ready_future_expires_at_once", 10);
    let lp = tulip::get_running_loop();
    let (t0, wall) = (lp.time(), Instant::now());
    let r = tulip::timeout(secs(30), pending::<()>()).await;
    assert!(r.is_err());
    assert_eq!(lp.time() - t0, secs(30));
    assert!(wall.elapsed() < INSTANT);
}

#[tulip::test(virtual_time)]
async fn interval_ticks_at_exact_instants() {
    let _w = support::watchdog("interval_ticks_at_exact_instants", 10);
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let mut ticks = tulip::interval(secs(60));
    for k in 0..5 {
        let tick = ticks.next().await.unwrap();
        assert_eq!(tick, t0 + secs(60 * k));
        assert_eq!(lp.time(), tick);
    }
}

#[tulip::test(virtual_time)]
async fn advance_runs_the_timers_that_came_due() {
    let _w = support::watchdog("advance_runs_the_timers_that_came_due", 10);
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let sleeper = tulip::spawn(async { tulip::sleep(secs(100)).await });
    tulip::yield_now().await;
    lp.advance(secs(250));
    sleeper.await;
    assert_eq!(lp.time() - t0, secs(250));
}

/// Real TCP on 127.0.0.1 under virtual time, with a 30 s timer pending around it: the echo
/// works, and the clock did not move (the loop waited for the I/O, not for the timer).
#[tulip::test(virtual_time)]
async fn real_tcp_echo_works_with_a_timer_pending() {
    let _w = support::watchdog("real_tcp_echo_works_with_a_timer_pending", 10);
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let server = tulip::start_server(
        |mut r: tulip::StreamReader, w: tulip::StreamWriter| async move {
            while let Ok(line) = r.readline().await {
                if line.is_empty() {
                    break;
                }
                w.write(&line);
                let _ = w.drain().await;
            }
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let r = tulip::timeout(secs(30), async {
        let (mut r, w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
        let mut got = Vec::new();
        for i in 0..20 {
            w.write(format!("line {i}\n").as_bytes());
            got.push(r.readline().await?);
        }
        std::io::Result::Ok(got)
    })
    .await;
    let got = r
        .expect("the timeout fired: time jumped over real I/O")
        .unwrap();
    assert_eq!(got.len(), 20);
    assert_eq!(got[19], b"line 19\n");
    assert_eq!(lp.time(), t0, "the clock moved during real I/O");
    server.close();
}

/// A `sock_recv` in progress on a connected pair, a 10 s timeout around it, and a peer
/// thread that writes after 50 ms of real time: the loop waits for the data instead of
/// jumping to the timeout, and the clock reads exactly what it read before.
#[tulip::test(virtual_time)]
async fn a_read_in_progress_holds_the_clock_while_a_peer_thread_writes() {
    let _w = support::watchdog(
        "a_read_in_progress_holds_the_clock_while_a_peer_thread_writes",
        10,
    );
    let lp = tulip::get_running_loop();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let t0 = lp.time();
    let wall = Instant::now();
    let peer = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        theirs.write_all(b"late but real").unwrap();
        theirs
    });
    let data = tulip::timeout(secs(10), tulip::sock_recv(&ours, 64))
        .await
        .expect("time jumped to the timeout while a read was waiting for real data")
        .unwrap();
    assert_eq!(data, b"late but real");
    assert_eq!(lp.time(), t0);
    assert!(wall.elapsed() >= ms(50));
    drop(peer.join().unwrap());
}

/// With I/O pending that never comes, a timeout still expires — after its time for real —
/// and the clock then reads the timer's instant exactly.
#[tulip::test(virtual_time)]
async fn a_silent_socket_times_out_after_real_time_then_jumps_exactly() {
    let _w = support::watchdog(
        "a_silent_socket_times_out_after_real_time_then_jumps_exactly",
        10,
    );
    let lp = tulip::get_running_loop();
    let (ours, _theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let (t0, wall) = (lp.time(), Instant::now());
    let r = tulip::timeout(ms(100), tulip::sock_recv(&ours, 64)).await;
    assert!(r.is_err());
    assert_eq!(lp.time() - t0, ms(100));
    assert!(wall.elapsed() >= ms(100), "{:?}", wall.elapsed());
}

/// A timeout around a read that never completes expires after its time for real even while
/// other I/O keeps arriving (a peer thread writing to another socket every 10 ms): the real
/// waits that I/O cut short count towards it. Each wait used to start the timer's whole
/// time over, so it expired only once the other socket fell silent.
#[tulip::test(virtual_time)]
async fn a_timeout_expires_while_other_io_keeps_arriving() {
    let _w = support::watchdog("a_timeout_expires_while_other_io_keeps_arriving", 20);
    let lp = tulip::get_running_loop();
    let (silent, _keep) = UnixStream::pair().unwrap();
    silent.set_nonblocking(true).unwrap();
    let (chatty, mut peer) = UnixStream::pair().unwrap();
    chatty.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let writer = std::thread::spawn(move || {
        let until = Instant::now() + secs(3);
        while !s.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
            let _ = peer.write_all(b".");
            std::thread::sleep(ms(10));
        }
    });
    let fd = std::os::fd::AsRawFd::as_raw_fd(&chatty);
    lp.add_reader(fd, move || {
        let mut buf = [0u8; 64];
        let _ = std::io::Read::read(&mut &chatty, &mut buf);
    })
    .unwrap();
    let (t0, wall) = (lp.time(), Instant::now());
    let r = tulip::timeout(ms(200), tulip::sock_recv(&silent, 64)).await;
    let took = wall.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    lp.remove_reader(fd).unwrap();
    writer.join().unwrap();
    assert!(r.is_err());
    assert_eq!(lp.time() - t0, ms(200));
    assert!(took >= ms(200), "{took:?}");
    assert!(took < ms(1500), "expired only after {took:?} of real time");
}

/// Work out on the default executor is I/O that can still arrive: no jump while it runs.
#[tulip::test(virtual_time)]
async fn executor_work_holds_the_clock() {
    let _w = support::watchdog("executor_work_holds_the_clock", 10);
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let r = tulip::timeout(
        secs(5),
        tulip::to_thread(|| {
            std::thread::sleep(ms(30));
            7
        }),
    )
    .await;
    assert_eq!(r.unwrap().unwrap(), 7);
    assert_eq!(lp.time(), t0);
}

/// The wall-clock loop is unchanged: `time()` follows `Instant::now()`.
#[tulip::test]
async fn the_default_loop_is_on_the_wall_clock() {
    let lp = tulip::get_running_loop();
    assert!(!lp.is_virtual_time());
    let (t0, wall) = (lp.time(), Instant::now());
    tulip::sleep(ms(20)).await;
    assert!(lp.time() - t0 >= ms(20));
    assert!(wall.elapsed() >= ms(20));
}

#[test]
#[should_panic(expected = "not on virtual time")]
fn advance_on_a_wall_clock_loop_panics() {
    let lp = tulip::EventLoop::new().unwrap();
    lp.advance(secs(1));
}

// ---- CPython's test_timeouts.py, on virtual time: instant and exact -----------------------

// CPython: test_timeouts.py TimeoutTests.test_timeout_basic (virtual time: the 10 ms limit
// and the 10 s sleep take no wall-clock time, and expiry is at exactly 10 ms)
#[tulip::test(virtual_time)]
async fn test_timeout_basic_virtual() {
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let e = tulip::timeout(ms(10), tulip::sleep(secs(10)))
        .await
        .unwrap_err();
    assert_eq!(lp.time() - t0, ms(10));
    assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::TimedOut);
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_at_basic (virtual time: expiry at
// exactly the deadline)
#[tulip::test(virtual_time)]
async fn test_timeout_at_basic_virtual() {
    let lp = tulip::get_running_loop();
    let deadline = lp.time() + ms(10);
    let cm = tulip::timeout_at(deadline, tulip::sleep(secs(10)));
    assert!(cm.await.is_err());
    assert_eq!(lp.time(), deadline);
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_not_called (virtual time: the 10 ms
// of work take exactly 10 ms, where CPython allows 2 s "for slow CI boxes")
#[tulip::test(virtual_time)]
async fn test_timeout_not_called_virtual() {
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let r = tulip::timeout(secs(10), async {
        tulip::sleep(ms(10)).await;
        "done"
    })
    .await;
    assert_eq!(r, Ok("done"));
    assert_eq!(lp.time() - t0, ms(10));
}

// CPython: test_timeouts.py TimeoutTests.test_nested_timeouts_concurrent (virtual time:
// the 10 ms of blocking "number crunching" take no virtual time, and the outer 2 ms limit
// wins over the inner 100 ms one and the 1 s sleep, at exactly 2 ms)
#[tulip::test(virtual_time)]
async fn test_nested_timeouts_concurrent_virtual() {
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let r = tulip::timeout(ms(2), async {
        tulip::timeout(ms(100), async {
            std::thread::sleep(ms(10)); // pretend we crunch some numbers
            tulip::sleep(secs(1)).await;
        })
        .await
    })
    .await;
    assert!(r.is_err());
    assert_eq!(lp.time() - t0, ms(2));
}

// CPython: test_waitfor.py AsyncioWaitForTest.test_wait_for (virtual time: `wait_for` of a
// task sleeping for a long time under a 100 ms limit; the work is cancelled, and the loop's
// time moved by exactly the limit)
#[tulip::test(virtual_time)]
async fn test_wait_for_virtual() {
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let running = Rc::new(std::cell::Cell::new(false));
    let r = running.clone();
    let foo = async move {
        struct Finally(Rc<std::cell::Cell<bool>>);
        impl Drop for Finally {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        r.set(true);
        let _finally = Finally(r);
        tulip::sleep(secs(300)).await;
        "done"
    };
    let out = tulip::timeout(ms(100), foo).await;
    assert!(out.is_err());
    assert!(!running.get(), "foo was cancelled");
    assert_eq!(lp.time() - t0, ms(100));
}

// ---- #[tulip::test(timeout = "…")] --------------------------------------------------------

#[tulip::test(timeout = "200ms")]
#[should_panic(expected = "test `hangs_past_its_timeout` timed out: still running after 200ms")]
async fn hangs_past_its_timeout() {
    pending::<()>().await;
}

/// The limit is wall-clock time, also on virtual time: a virtual hour passes a 5 s limit.
#[tulip::test(virtual_time, timeout = "5s")]
async fn a_virtual_hour_passes_a_5s_limit() {
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    tulip::sleep(secs(3600)).await;
    assert_eq!(lp.time() - t0, secs(3600));
}

#[tulip::test(virtual_time, timeout = "300ms")]
#[should_panic(expected = "timed out")]
async fn virtual_time_test_stuck_on_io_hits_its_limit() {
    // A read that never completes, no timer: the loop waits for real, and the limit ends it.
    let (ours, _theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let _ = tulip::sock_recv(&ours, 1).await;
}

#[tulip::test(timeout = "1.5s")]
async fn a_quick_test_under_a_limit_returns_its_value() -> std::io::Result<()> {
    tulip::sleep(ms(1)).await;
    Ok(())
}
