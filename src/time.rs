//! `sleep`, `sleep_until`, `timeout` and `timeout_at` on the loop's timer heap.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::TimeoutError;
use crate::event_loop::{TimerHandle, WakerCallback, with_current};

pub use crate::time_interval::{Interval, Tick};

/// Waits for `duration` (asyncio's `asyncio.sleep`).
///
/// A zero or past deadline completes at once, without yielding; use
/// [`yield_now`](crate::yield_now) to yield.
///
/// A duration too long for `Instant` — `Duration::MAX`, Rust's "no deadline" — sleeps for
/// ever (until cancelled) and never panics.
///
/// The duration is measured on the running loop's clock ([`EventLoop::time`](crate::EventLoop::time)):
/// on a loop on [virtual time](crate::EventLoop::with_virtual_time) a `sleep(30 s)` ends when
/// the clock has jumped 30 s, at once if nothing else is waited for. Made while no loop runs
/// on the thread, it is measured from the wall clock's now.
///
/// # Panics
/// When polled outside of a running loop.
///
/// ```
/// # tulip::run(async {
/// let t0 = std::time::Instant::now();
/// tulip::sleep(std::time::Duration::from_millis(20)).await;
/// assert!(t0.elapsed() >= std::time::Duration::from_millis(20));
/// # });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(crate::event_loop::deadline_after(duration))
}

/// Waits until `deadline`.
///
/// # Panics
/// When polled outside of a running loop.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timer: None,
    }
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// # Cancel safety
/// Cancel-safe: dropping it cancels its timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    timer: Option<(TimerHandle, Rc<WakerCallback>)>,
}

impl Sleep {
    /// When the sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some((_, cb)) = &self.timer {
            if cb.fired() {
                return Poll::Ready(());
            }
            cb.set_waker(cx.waker());
            return Poll::Pending;
        }
        let deadline = self.deadline;
        // The running loop's clock (virtual time included); the wall clock outside of one.
        let timer = with_current(|inner| {
            if deadline <= inner.clock.now() {
                return None;
            }
            let cb = WakerCallback::new(cx.waker().clone());
            Some((inner.call_at(deadline, cb.clone()), cb))
        });
        match timer {
            Some(None) => Poll::Ready(()),
            Some(timer) => {
                self.timer = timer;
                Poll::Pending
            }
            None if deadline <= Instant::now() => Poll::Ready(()),
            None => panic!("tulip::sleep polled outside of a running event loop"),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((h, _)) = &self.timer {
            h.cancel();
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Runs `fut` for at most `duration` (asyncio's `wait_for` / `asyncio.timeout`).
///
/// On expiry the inner future is dropped — cancelled — at once and the result is
/// `Err(TimeoutError)`, which converts into an `io::Error` of kind `TimedOut`.
///
/// A duration too long for `Instant` (`Duration::MAX`: no deadline) never expires and never
/// panics. Like [`sleep`], it goes by the running loop's clock, virtual time included: a
/// 30 s timeout around a future that never completes expires at once there (see
/// [`EventLoop::with_virtual_time`](crate::EventLoop::with_virtual_time)).
///
/// ```
/// # tulip::run(async {
/// use std::time::Duration;
/// let r = tulip::timeout(Duration::from_millis(10), tulip::sleep(Duration::from_secs(10))).await;
/// assert!(r.is_err());
/// let r = tulip::timeout(Duration::from_secs(10), async { 5 }).await;
/// assert_eq!(r, Ok(5));
/// # });
/// ```
pub fn timeout<F: Future>(duration: Duration, fut: F) -> Timeout<F> {
    timeout_at(crate::event_loop::deadline_after(duration), fut)
}

/// Runs `fut` until `deadline` at most; see [`timeout`].
pub fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Timeout<F> {
    Timeout {
        fut: Some(fut),
        sleep: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`] and [`timeout_at`].
    ///
    /// # Cancel safety
    /// As cancel-safe as the inner future.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        #[pin]
        fut: Option<F>,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(TimeoutError::new()));
        };
        if let Poll::Ready(v) = fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if Pin::new(&mut *this.sleep).poll(cx).is_ready() {
            this.fut.set(None);
            return Poll::Ready(Err(TimeoutError::new()));
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.sleep.deadline)
            .finish_non_exhaustive()
    }
}
