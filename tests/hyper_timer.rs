//! `tulip::hyper::TulipTimer` on virtual time: its sleeps (one loop timer per loop serves
//! them all) end at exactly their deadlines whatever order they were registered in, `reset`
//! moves one either way, and a dropped one is forgotten.
#![cfg(feature = "hyper")]

mod support;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use hyper::rt::Timer;
use tulip::hyper::TulipTimer;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Polls `fut` once; whether it was pending.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx).is_pending()))
        .await
}

#[tulip::test(virtual_time)]
async fn sleeps_end_at_their_deadlines_in_any_registration_order() {
    let _w = support::watchdog(
        "sleeps_end_at_their_deadlines_in_any_registration_order",
        10,
    );
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    assert_eq!(TulipTimer.now(), t0, "hyper's now is the loop's clock");
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut tasks = Vec::new();
    for d in [30, 10, 20, 10, 40] {
        let (log, lp) = (log.clone(), lp.clone());
        tasks.push(tulip::spawn(async move {
            TulipTimer.sleep(secs(d)).await;
            log.borrow_mut().push((d, lp.time() - t0));
        }));
    }
    // One that ends first, registered and dropped: it neither fires nor holds others up.
    let mut early = TulipTimer.sleep(secs(5));
    assert!(poll_once(&mut early).await);
    drop(early);
    for t in tasks {
        t.await;
    }
    assert_eq!(
        *log.borrow(),
        [
            (10, secs(10)),
            (10, secs(10)),
            (20, secs(20)),
            (30, secs(30)),
            (40, secs(40))
        ]
    );
    assert_eq!(lp.time() - t0, secs(40));
}

#[tulip::test(virtual_time)]
async fn reset_moves_a_registered_sleep_earlier_or_later() {
    let _w = support::watchdog("reset_moves_a_registered_sleep_earlier_or_later", 10);
    let lp = tulip::get_running_loop();
    let t0 = lp.time();
    let mut s = TulipTimer.sleep(secs(100));
    assert!(poll_once(&mut s).await);
    TulipTimer.reset(&mut s, t0 + secs(5));
    s.await;
    assert_eq!(lp.time() - t0, secs(5));

    let mut s = TulipTimer.sleep(secs(1));
    assert!(poll_once(&mut s).await);
    TulipTimer.reset(&mut s, t0 + secs(60));
    s.as_mut().await;
    assert_eq!(lp.time() - t0, secs(60));
    // Reset after it fired: it sleeps again.
    TulipTimer.reset(&mut s, t0 + secs(70));
    s.await;
    assert_eq!(lp.time() - t0, secs(70));
}

/// Loops that come and go on one thread each get their own loop timer: a loop closed with
/// a timer armed does not leave the next one's sleeps stranded.
#[test]
fn successive_loops_on_one_thread() {
    let _w = support::watchdog("successive_loops_on_one_thread", 10);
    let virt = tulip::task::RunOptions::new().virtual_time(true);
    // Closed with a sleep still registered (its task is cancelled at close).
    tulip::run_with(
        async {
            tulip::spawn(TulipTimer.sleep(secs(10))).detach();
            tulip::yield_now().await;
        },
        virt.clone(),
    );
    for _ in 0..3 {
        let waited = tulip::run_with(
            async {
                let lp = tulip::get_running_loop();
                let t0 = lp.time();
                TulipTimer.sleep(secs(20)).await;
                lp.time() - t0
            },
            virt.clone(),
        );
        assert_eq!(waited, secs(20));
    }
}

/// A sleep registered on one loop and then awaited on the next loop of the same thread
/// (kept across two `run`s) still ends: its entry, left behind by the closed loop, names a
/// loop whose timer is gone, so the sleep registers again on the running one. It used to
/// stay pending for ever.
#[test]
fn a_sleep_registered_on_a_closed_loop_ends_on_the_next() {
    let _w = support::watchdog("a_sleep_registered_on_a_closed_loop_ends_on_the_next", 10);
    let virt = tulip::task::RunOptions::new().virtual_time(true);
    let s = tulip::run_with(
        async {
            let mut s = TulipTimer.sleep(secs(10));
            assert!(poll_once(&mut s).await);
            // Kept, not awaited: it goes on to the next loop.
            Some(s)
        },
        virt.clone(),
    );
    let waited = tulip::run_with(
        async move {
            let lp = tulip::get_running_loop();
            let t0 = lp.time();
            s.expect("kept").await;
            lp.time() - t0
        },
        virt,
    );
    assert!(waited <= secs(10), "{waited:?}");
}

/// A waker that counts its live clones.
fn counting_waker() -> (std::task::Waker, std::sync::Arc<CountingWake>) {
    let w = std::sync::Arc::new(CountingWake);
    (std::task::Waker::from(w.clone()), w)
}

struct CountingWake;

impl std::task::Wake for CountingWake {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// A sleep polled on the loop's thread and dropped on another thread (it is `Send`, and
/// hyper's `Sleep` must be) leaves its entry behind: the loop's timer removes it when its
/// deadline comes, and the next loop of the thread removes those of a loop that closed
/// first. Either way the waker it held is released.
#[test]
fn a_sleep_dropped_on_another_thread_releases_its_waker() {
    let _w = support::watchdog("a_sleep_dropped_on_another_thread_releases_its_waker", 10);
    let virt = tulip::task::RunOptions::new().virtual_time(true);
    let (waker, count) = counting_waker();
    // Its deadline comes while the loop runs.
    let w2 = waker.clone();
    tulip::run_with(
        async move {
            let mut s = TulipTimer.sleep(secs(5));
            let mut cx = std::task::Context::from_waker(&w2);
            assert!(s.as_mut().poll(&mut cx).is_pending());
            drop(w2);
            std::thread::spawn(move || drop(s)).join().unwrap();
            tulip::sleep(secs(6)).await;
        },
        virt.clone(),
    );
    assert_eq!(
        std::sync::Arc::strong_count(&count),
        2,
        "the entry kept the waker"
    );
    // Its loop closes first; the next loop of the thread cleans up.
    let w2 = waker.clone();
    tulip::run_with(
        async move {
            let mut s = TulipTimer.sleep(secs(5));
            let mut cx = std::task::Context::from_waker(&w2);
            assert!(s.as_mut().poll(&mut cx).is_pending());
            drop(w2);
            std::thread::spawn(move || drop(s)).join().unwrap();
        },
        virt.clone(),
    );
    tulip::run_with(TulipTimer.sleep(secs(1)), virt);
    assert_eq!(
        std::sync::Arc::strong_count(&count),
        2,
        "the entry kept the waker"
    );
    drop(waker);
}
