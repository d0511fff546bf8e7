//! `interval(period)`: a periodic tick as a `futures_core::Stream`, skipping missed ticks.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tulip::time::Interval;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whether `t` is on the schedule `start + k·period`, k ≥ 1 (a busy machine may skip ticks,
/// so tests do not count on which one comes next).
fn on_schedule(t: Instant, start: Instant, period: Duration) -> bool {
    t > start && (t - start).as_nanos() % period.as_nanos() == 0
}

#[test]
fn ticks_at_once_then_every_period() {
    let _w = support::watchdog("interval_every_period", 20);
    tulip::run(async {
        let t0 = Instant::now();
        let mut iv = tulip::interval(ms(10));
        assert_eq!(iv.period(), ms(10));
        let first = iv.tick().await;
        assert!(t0.elapsed() < ms(10), "the first tick is at once");
        let mut last = first;
        for _ in 0..3 {
            let tick = iv.tick().await;
            // Each item is the tick's scheduled time, on the original schedule.
            assert!(on_schedule(tick, first, ms(10)) && tick > last);
            assert!(Instant::now() >= tick);
            last = tick;
        }
        assert!(t0.elapsed() >= ms(30));
    });
}

#[test]
fn is_a_stream() {
    let _w = support::watchdog("interval_stream", 20);
    tulip::run(async {
        let t0 = Instant::now();
        let ticks: Vec<Instant> = tulip::interval(ms(5)).take(4).collect().await;
        assert_eq!(ticks.len(), 4);
        for w in ticks.windows(2) {
            assert!(on_schedule(w[1], w[0], ms(5)));
        }
        assert!(t0.elapsed() >= ms(15));
    });
}

/// In virtual time, so that the busy stretch is exactly 3.5 periods (on the wall clock a loaded
/// machine could oversleep into a fourth period and the test would not know which tick comes).
#[tulip::test(virtual_time)]
async fn missed_ticks_are_skipped_not_burst() {
    let lp = tulip::get_running_loop();
    let mut iv = tulip::interval(ms(20));
    let t0 = iv.tick().await;
    assert_eq!(t0, lp.time(), "the first tick is at once");
    // The loop is busy for 3.5 periods: ticks 1, 2 and 3 are missed.
    lp.advance(ms(70));
    // The late tick comes at once...
    assert_eq!(iv.tick().await, t0 + ms(20));
    assert_eq!(lp.time(), t0 + ms(70), "the late tick is delivered at once");
    // ...then ticks 2 and 3 are skipped: the next is the 4th, on the original phase.
    assert_eq!(iv.tick().await, t0 + ms(80));
    assert_eq!(lp.time(), t0 + ms(80));
}

#[test]
fn at_starts_later_and_tick_is_cancel_safe() {
    let _w = support::watchdog("interval_at", 20);
    tulip::run(async {
        let start = Instant::now() + ms(30);
        let mut iv = Interval::at(start, ms(10));
        // A tick abandoned by a timeout is not lost: it comes on the next call.
        assert!(tulip::timeout(ms(5), iv.tick()).await.is_err());
        assert_eq!(iv.tick().await, start);
        assert!(Instant::now() >= start);
        let next = iv.next().await.unwrap();
        assert!(on_schedule(next, start, ms(10)));
        assert!(format!("{iv:?}").contains("Interval"));
    });
}

#[test]
#[should_panic(expected = "the period must be non-zero")]
fn a_zero_period_panics() {
    let _ = tulip::interval(Duration::ZERO);
}
