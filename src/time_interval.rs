//! `interval(period)`: a periodic tick as a `futures_core::Stream`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::time::{Sleep, sleep_until};

/// A stream that yields every `period`, the first time at once (tokio's `interval`; asyncio
/// has none, and a periodic callback there is a `call_later` that re-arms itself).
///
/// Each item is the tick's scheduled time (not the time it was delivered).
///
/// # Missed ticks: skipped
/// When the loop was busy past one or more ticks, the late tick is yielded at once, and the
/// ticks missed meanwhile are **skipped**: the next one is the first on the original
/// schedule (`start + k·period`) that is still in the future. There is never a burst of
/// catch-up ticks, and the phase of the schedule is kept (tokio's
/// `MissedTickBehavior::Skip`; tokio's default, `Burst`, would yield every missed tick at
/// once).
///
/// # Panics
/// If `period` is zero.
///
/// ```
/// use futures_util::StreamExt;
/// use std::time::Duration;
/// tulip::run(async {
///     let t0 = std::time::Instant::now();
///     let mut ticks = tulip::interval(Duration::from_millis(10));
///     ticks.next().await; // at once
///     ticks.next().await;
///     ticks.tick().await; // or without `StreamExt`
///     assert!(t0.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    Interval::at(crate::event_loop::now(), period)
}

/// The stream of [`interval`].
///
/// It never ends; drop it to stop the ticks.
///
/// # Cancel safety
/// Cancel-safe: a tick not yet taken stays for the next poll.
#[must_use = "streams do nothing unless polled"]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
}

impl Interval {
    /// An interval whose first tick is at `start`, then every `period`.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn at(start: Instant, period: Duration) -> Interval {
        assert!(
            !period.is_zero(),
            "tulip::interval: the period must be non-zero"
        );
        Interval {
            sleep: sleep_until(start),
            period,
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Waits for the next tick and returns its scheduled time.
    pub fn tick(&mut self) -> Tick<'_> {
        Tick { interval: self }
    }

    /// Polls for the next tick (what the [`Stream`](futures_core::Stream) implementation
    /// and [`tick`](Interval::tick) do).
    ///
    /// # Panics
    /// When polled outside of a running loop.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let tick = self.sleep.deadline();
        self.sleep = sleep_until(next_tick(tick, self.period, crate::event_loop::now()));
        Poll::Ready(tick)
    }
}

/// The first time on the schedule `tick + k·period` (k ≥ 1) that is after `now`.
fn next_tick(tick: Instant, period: Duration, now: Instant) -> Instant {
    let late = now.saturating_duration_since(tick);
    let periods = late.as_nanos() / period.as_nanos() + 1;
    let step = period
        .as_nanos()
        .checked_mul(periods)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_nanos);
    step.and_then(|s| tick.checked_add(s))
        .unwrap_or_else(|| crate::event_loop::deadline_after(Duration::MAX))
}

impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.sleep.deadline())
            .finish()
    }
}

/// The future of [`Interval::tick`].
///
/// # Cancel safety
/// Cancel-safe: a tick not yet taken stays for the next call.
#[must_use = "futures do nothing unless awaited"]
pub struct Tick<'a> {
    interval: &'a mut Interval,
}

impl Future for Tick<'_> {
    type Output = Instant;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        self.interval.poll_tick(cx)
    }
}

impl fmt::Debug for Tick<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tick")
            .field("interval", &self.interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::next_tick;
    use std::time::{Duration, Instant};

    #[test]
    fn next_tick_skips_missed_ticks_and_keeps_the_phase() {
        let t = Instant::now();
        let p = Duration::from_millis(10);
        // On time: the next period.
        assert_eq!(next_tick(t, p, t), t + p);
        assert_eq!(next_tick(t, p, t + Duration::from_millis(9)), t + p);
        // Late by 3.5 periods: ticks 1..=3 are skipped, the 4th is next.
        assert_eq!(next_tick(t, p, t + Duration::from_millis(35)), t + 4 * p);
        // Exactly on a tick that is now: the one after.
        assert_eq!(next_tick(t, p, t + 2 * p), t + 3 * p);
        // A period too long for `Instant` saturates instead of panicking.
        assert!(next_tick(t, Duration::MAX, t) > t);
    }
}
