//! CPython's `Lib/test/test_asyncio/test_timeouts.py` (`TimeoutTests`) and `test_waitfor.py`
//! (`AsyncioWaitForTest`), translated to `tulip::timeout` / `timeout_at`, which are both
//! asyncio's `timeout` context manager and `wait_for`. Rust cancels a future by dropping
//! it, so "the inner coroutine got `CancelledError`" becomes "the inner future was dropped"
//! (a drop guard records it); tests whose point is code that catches `CancelledError` and
//! carries on, or a context manager entered twice, have no Rust counterpart and are left
//! out. Where tulip differs on purpose (README, "Where tulip differs"), the test asserts
//! tulip's documented behaviour and says so.

mod support;

use std::cell::Cell;
use std::future::{Future, pending};
use std::io;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Records that the future holding it was dropped (asyncio: "the coroutine was cancelled").
#[derive(Clone, Default)]
struct Dropped(Rc<Cell<bool>>);

impl Dropped {
    fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }
    fn get(&self) -> bool {
        self.0.get()
    }
}

struct DropGuard(Rc<Cell<bool>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A future that sleeps `d` holding a drop guard.
fn guarded_sleep(d: Duration, dropped: &Dropped) -> impl Future<Output = &'static str> + use<> {
    let g = dropped.guard();
    async move {
        tulip::sleep(d).await;
        drop(g);
        "done"
    }
}

// ---- test_timeouts.py ----------------------------------------------------------------------

// CPython: test_timeouts.py TimeoutTests.test_timeout_basic
#[tulip::test]
async fn test_timeout_basic() {
    let _w = support::watchdog("test_timeout_basic", 10);
    let t0 = Instant::now();
    let e = tulip::timeout(ms(10), tulip::sleep(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(t0.elapsed() >= ms(10));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(io::Error::from(e).kind(), io::ErrorKind::TimedOut);
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_at_basic
#[tulip::test]
async fn test_timeout_at_basic() {
    let _w = support::watchdog("test_timeout_at_basic", 10);
    let deadline = tulip::get_running_loop().time() + ms(10);
    let cm = tulip::timeout_at(deadline, tulip::sleep(Duration::from_secs(10)));
    assert!(format!("{cm:?}").contains("deadline"), "{cm:?}");
    assert!(cm.await.is_err());
    assert!(Instant::now() >= deadline, "expired before its deadline");
}

// CPython: test_timeouts.py TimeoutTests.test_nested_timeouts. tulip differs: a `Timeout`
// polls its future before its own deadline (as tokio's does), so of two that expire
// together the inner one reports the `TimeoutError`, as a value the outer one returns
// (asyncio: the outer one raises, the inner one lets `CancelledError` through). Either way
// the work is cancelled and an error comes out.
#[tulip::test]
async fn test_nested_timeouts() {
    let _w = support::watchdog("test_nested_timeouts", 10);
    let deadline = Instant::now() + ms(10);
    let dropped = Dropped::default();
    let inner = tulip::timeout_at(deadline, guarded_sleep(Duration::from_secs(10), &dropped));
    let r = tulip::timeout_at(deadline, inner).await;
    assert!(matches!(r, Ok(Err(tulip::TimeoutError { .. }))), "{r:?}");
    assert!(dropped.get(), "the work was cancelled");
}

// CPython: test_timeouts.py TimeoutTests.test_waiter_cancelled: the work inside is
// cancelled (dropped) when the timeout expires.
#[tulip::test]
async fn test_waiter_cancelled() {
    let _w = support::watchdog("test_waiter_cancelled", 10);
    let dropped = Dropped::default();
    let fut = guarded_sleep(Duration::from_secs(10), &dropped);
    let r = tulip::timeout(ms(10), fut).await;
    assert!(r.is_err());
    assert!(dropped.get());
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_not_called
#[tulip::test]
async fn test_timeout_not_called() {
    let _w = support::watchdog("test_timeout_not_called", 10);
    let dropped = Dropped::default();
    let r = tulip::timeout(Duration::from_secs(10), guarded_sleep(ms(10), &dropped)).await;
    assert_eq!(r, Ok("done"));
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_disabled (`timeout(None)` is
// `Duration::MAX`: no deadline; README, "Where tulip differs")
#[tulip::test]
async fn test_timeout_disabled() {
    let _w = support::watchdog("test_timeout_disabled", 10);
    let r = tulip::timeout(Duration::MAX, async {
        tulip::sleep(ms(10)).await;
        7
    })
    .await;
    assert_eq!(r, Ok(7));
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_zero
#[tulip::test]
async fn test_timeout_zero() {
    let _w = support::watchdog("test_timeout_zero", 10);
    let t0 = Instant::now();
    let r = tulip::timeout(Duration::ZERO, tulip::sleep(Duration::from_secs(10))).await;
    assert!(r.is_err());
    assert!(t0.elapsed() < Duration::from_secs(1));
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_zero_sleep_zero (asyncio's
// `sleep(0)` is tulip's `yield_now()`; README, "Where tulip differs")
#[tulip::test]
async fn test_timeout_zero_sleep_zero() {
    let _w = support::watchdog("test_timeout_zero_sleep_zero", 10);
    let r = tulip::timeout(Duration::ZERO, tulip::yield_now()).await;
    assert!(r.is_err(), "a zero timeout expires at the first yield");
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_in_the_past_sleep_zero
#[tulip::test]
async fn test_timeout_in_the_past_sleep_zero() {
    let _w = support::watchdog("test_timeout_in_the_past_sleep_zero", 10);
    tulip::sleep(ms(2)).await;
    let past = Instant::now() - ms(1);
    let r = tulip::timeout_at(past, tulip::yield_now()).await;
    assert!(r.is_err());
}

// CPython: test_timeouts.py TimeoutTests.test_foreign_exception_passed: an error of the
// work comes out as it is (inside `Ok`), not as a timeout.
#[tulip::test]
async fn test_foreign_exception_passed() {
    let _w = support::watchdog("test_foreign_exception_passed", 10);
    let r = tulip::timeout(ms(10), async {
        io::Result::<()>::Err(io::Error::new(io::ErrorKind::NotFound, "KeyError"))
    })
    .await;
    let e = r.expect("not a timeout").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
}

// CPython: test_timeouts.py TimeoutTests.test_foreign_exception_on_timeout: the work fails
// while being cancelled (its `finally` raises; in Rust, a `Drop` panics): that failure
// comes out, not the timeout.
#[tulip::test]
async fn test_foreign_exception_on_timeout() {
    let _w = support::watchdog("test_foreign_exception_on_timeout", 10);
    struct Crash;
    impl Drop for Crash {
        fn drop(&mut self) {
            panic!("division by zero");
        }
    }
    let crash = async {
        let _c = Crash;
        tulip::sleep(Duration::from_secs(1)).await;
    };
    let p = AssertUnwindSafe(tulip::timeout(ms(10), crash))
        .catch_unwind()
        .await
        .expect_err("the panic of the cancelled work must come out");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"division by zero"));
}

// CPython: test_timeouts.py TimeoutTests.test_foreign_cancel_doesnt_timeout_if_not_expired
#[tulip::test]
async fn test_foreign_cancel_doesnt_timeout_if_not_expired() {
    let _w = support::watchdog("test_foreign_cancel_doesnt_timeout_if_not_expired", 10);
    let dropped = Dropped::default();
    let work = guarded_sleep(Duration::from_secs(10), &dropped);
    let task = tulip::spawn(async move { tulip::timeout(Duration::from_secs(10), work).await });
    tulip::yield_now().await;
    assert!(!task.is_finished());
    assert_eq!(task.cancel().await, None, "cancelled, not timed out");
    assert!(dropped.get());
}

// CPython: test_timeouts.py TimeoutTests.test_outer_task_is_not_cancelled
#[tulip::test]
async fn test_outer_task_is_not_cancelled() {
    let _w = support::watchdog("test_outer_task_is_not_cancelled", 10);
    let task = tulip::spawn(async {
        let r = tulip::timeout(ms(1), tulip::sleep(Duration::from_secs(10))).await;
        assert!(r.is_err());
        "finished normally"
    });
    assert_eq!(task.await, "finished normally");
}

// CPython: test_timeouts.py TimeoutTests.test_nested_timeouts_concurrent: the loop is busy
// past the outer deadline but not the inner one: the outer expires.
#[tulip::test]
async fn test_nested_timeouts_concurrent() {
    let _w = support::watchdog("test_nested_timeouts_concurrent", 10);
    let r = tulip::timeout(ms(2), async {
        tulip::timeout(ms(500), async {
            std::thread::sleep(ms(10)); // pretend we crunch some numbers
            tulip::sleep(Duration::from_secs(1)).await;
        })
        .await
    })
    .await;
    assert!(r.is_err(), "the outer timeout expires: {r:?}");
}

// CPython: test_timeouts.py TimeoutTests.test_nested_timeouts_loop_busy: both deadlines
// pass while the loop is busy; the inner one reports, the code after it goes on, and the
// outer one interrupts its next wait.
#[tulip::test]
async fn test_nested_timeouts_loop_busy() {
    let _w = support::watchdog("test_nested_timeouts_loop_busy", 10);
    let t0 = Instant::now();
    let inner_expired = Rc::new(Cell::new(false));
    let ie = inner_expired.clone();
    let r = tulip::timeout(ms(50), async move {
        let inner = tulip::timeout(ms(5), async {
            std::thread::sleep(ms(50)); // the loop is busy for a while
            tulip::sleep(Duration::from_secs(1)).await;
        })
        .await;
        ie.set(inner.is_err());
        tulip::sleep(Duration::from_secs(10)).await; // interrupted by the outer timeout
    })
    .await;
    assert!(r.is_err());
    assert!(inner_expired.get(), "the inner timeout expired");
    assert!(t0.elapsed() < Duration::from_secs(1));
}

// CPython: test_timeouts.py TimeoutTests.test_timeout_without_task: a timeout needs a
// running loop; outside one it panics with a clear message (asyncio: `RuntimeError`).
#[test]
fn test_timeout_without_task() {
    let r = std::panic::catch_unwind(|| {
        futures_lite::future::block_on(tulip::timeout(Duration::from_secs(10), pending::<()>()))
    });
    let p = r.expect_err("polled outside a loop must panic");
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(msg.contains("outside of a running event loop"), "{msg}");
}

// ---- test_waitfor.py -----------------------------------------------------------------------

// CPython: test_waitfor.py AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0_future_done
#[tulip::test]
async fn test_wait_for_timeout_less_then_0_or_0_future_done() {
    let _w = support::watchdog("test_wait_for_zero_future_done", 10);
    let fut = tulip::get_running_loop().create_future::<&str>();
    fut.set_result("done");
    let t0 = Instant::now();
    let r = tulip::timeout(Duration::ZERO, fut.clone()).await;
    assert_eq!(r.unwrap().unwrap(), "done");
    assert!(fut.done());
    assert!(t0.elapsed() < ms(100));
}

// CPython: test_waitfor.py
// AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started.
// tulip differs (README, "Where tulip differs"): a `Timeout` polls its future first, so
// work that completes without waiting completes even with a zero timeout (asyncio does not
// start the coroutine and raises `TimeoutError`); work that waits is cancelled at once.
#[tulip::test]
async fn test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started() {
    let _w = support::watchdog("test_wait_for_zero_not_started", 10);
    let started = Cell::new(false);
    let r = tulip::timeout(Duration::ZERO, async { started.set(true) }).await;
    assert!(r.is_ok() && started.get(), "ready at its first poll: done");
    let started = Cell::new(false);
    let t0 = Instant::now();
    let r = tulip::timeout(Duration::ZERO, async {
        started.set(true);
        tulip::yield_now().await;
        unreachable!("resumed after a zero timeout");
    })
    .await;
    assert!(r.is_err());
    assert!(t0.elapsed() < ms(100));
}

// CPython: test_waitfor.py AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0.
// tulip differs (README, "Where tulip differs"): a timeout around a `Task` handle drops the
// handle, which detaches the task instead of cancelling it — the task runs on (here the
// handle is borrowed, so the test can still cancel it).
#[tulip::test]
async fn test_wait_for_timeout_less_then_0_or_0() {
    let _w = support::watchdog("test_wait_for_timeout_less_then_0_or_0", 10);
    let now = Instant::now();
    for deadline in [now, now - ms(1)] {
        let running = Rc::new(Cell::new(false));
        let started = tulip::get_running_loop().create_future::<()>();
        let (r2, s2) = (running.clone(), started.clone());
        let mut task = tulip::spawn(async move {
            r2.set(true);
            s2.set_result(());
            tulip::sleep(Duration::from_secs(10)).await;
            r2.set(false);
            "done"
        });
        started.await.unwrap();
        let t0 = Instant::now();
        assert!(tulip::timeout_at(deadline, &mut task).await.is_err());
        assert!(t0.elapsed() < ms(100));
        assert!(!task.is_finished(), "the task runs on");
        assert!(running.get());
        assert_eq!(task.cancel().await, None);
    }
}

// CPython: test_waitfor.py AsyncioWaitForTest.test_wait_for: the work (a future; see the
// test above for a task) is cancelled by the timeout, in time.
#[tulip::test]
async fn test_wait_for() {
    let _w = support::watchdog("test_wait_for", 10);
    let dropped = Dropped::default();
    let t0 = Instant::now();
    let r = tulip::timeout(ms(20), guarded_sleep(Duration::from_secs(10), &dropped)).await;
    assert!(r.is_err());
    assert!(t0.elapsed() >= ms(20) && t0.elapsed() < ms(500));
    assert!(dropped.get(), "foo is no longer running");
}

// CPython: test_waitfor.py AsyncioWaitForTest.test_wait_for_blocking (`timeout=None` is
// `Duration::MAX`)
#[tulip::test]
async fn test_wait_for_blocking() {
    let _w = support::watchdog("test_wait_for_blocking", 10);
    let r = tulip::timeout(Duration::MAX, async { "done" }).await;
    assert_eq!(r, Ok("done"));
}

// CPython: test_waitfor.py AsyncioWaitForTest.test_wait_for_race_condition
#[tulip::test]
async fn test_wait_for_race_condition() {
    let _w = support::watchdog("test_wait_for_race_condition", 10);
    let lp = tulip::get_running_loop();
    let fut = lp.create_future::<&str>();
    let f2 = fut.clone();
    lp.call_later(ms(10), move || f2.set_result("ok"));
    let r = tulip::timeout(ms(200), fut).await;
    assert_eq!(r.unwrap().unwrap(), "ok");
}

// CPython: test_waitfor.py AsyncioWaitForTest.test_cancel_wait_for and
// test_cancel_blocking_wait_for (bpo-23219: cancelling the wait cancels what it waits for)
#[tulip::test]
async fn test_cancel_wait_for() {
    let _w = support::watchdog("test_cancel_wait_for", 10);
    for d in [Duration::from_secs(60), Duration::MAX] {
        let dropped = Dropped::default();
        let g = dropped.guard();
        let blocking = async move {
            let _g = g;
            pending::<()>().await;
        };
        let wait = tulip::spawn(tulip::timeout(d, blocking));
        tulip::yield_now().await;
        assert!(!dropped.get());
        assert!(wait.cancel().await.is_none(), "cancelled");
        assert!(
            dropped.get(),
            "the blocking work was cancelled with the wait"
        );
    }
}

// CPython: test_waitfor.py AsyncioWaitForTest.test_wait_for_issue86296: a task cancelled
// after a `wait_for` that completed at once does not run on.
#[tulip::test]
async fn test_wait_for_issue86296() {
    let _w = support::watchdog("test_wait_for_issue86296", 10);
    let reached_end = Rc::new(Cell::new(false));
    let re = reached_end.clone();
    let task = tulip::spawn(async move {
        tulip::timeout(Duration::from_secs(100), async {})
            .await
            .unwrap();
        tulip::sleep(Duration::from_secs(1)).await;
        re.set(true);
    });
    tulip::yield_now().await;
    assert!(!task.is_finished());
    assert!(task.cancel().await.is_none());
    assert!(!reached_end.get());
}
