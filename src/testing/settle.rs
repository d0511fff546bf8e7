//! [`settle`]: wait until the loop has nothing ready to run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Waits until no callback is ready on the running loop — until every delivery that the
/// memory transports, the protocols and the tasks scheduled has run, however many loop
/// iterations that takes (asyncio's `test_utils.run_briefly`, repeated until quiet).
///
/// Timers and real I/O are not waited for: a `call_later` still pending, or a socket that
/// has not become readable yet, does not keep it waiting. It never completes while some
/// callback keeps scheduling another (a task looping on `yield_now`).
///
/// ```
/// # tulip::run(async {
/// let lp = tulip::get_running_loop();
/// let ran = std::rc::Rc::new(std::cell::Cell::new(0));
/// let r = ran.clone();
/// lp.call_soon(move || {
///     r.set(1);
///     let r2 = r.clone();
///     tulip::get_running_loop().call_soon(move || r2.set(2));
/// });
/// tulip::testing::settle().await;
/// assert_eq!(ran.get(), 2);
/// # });
/// ```
///
/// # Panics
/// When polled outside a running loop.
pub fn settle() -> Settle {
    Settle { _p: () }
}

/// The future of [`settle`].
///
/// # Cancel safety
/// Cancel-safe: it holds nothing.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Settle {
    _p: (),
}

impl Future for Settle {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let lp = crate::get_running_loop();
        if lp.inner.ready.is_empty() {
            return Poll::Ready(());
        }
        // To the back of the queue: what is ready now runs first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
