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
