//! What `#[tulip::test(timeout = "…")]` expands to: the test's future under a wall-clock
//! watchdog that fails the test, with a message naming the limit, when it runs too long.
//!
//! Wall-clock time on purpose, also under `virtual_time`: the limit guards against a test
//! that hangs, not against the time the code under test thinks passed; a virtual-time test
//! that sleeps an hour passes a 5 s limit, since it takes microseconds. The watchdog is a
//! thread, not a loop timer, so it does not change when virtual time jumps.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the test's future and its watchdog thread share.
#[derive(Default)]
struct Watch {
    expired: AtomicBool,
    /// The test has finished (or was dropped): the watchdog stops waiting.
    done: Mutex<bool>,
    done_cv: Condvar,
    waker: Mutex<Option<Waker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can be left half-written by a panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `fut` and panics if it is still running `limit` (wall-clock time) after its first
/// poll. `test` and `written` (the limit as the attribute spelled it) go into the message.
#[doc(hidden)]
pub fn with_timeout<F: Future>(
    limit: Duration,
    test: &'static str,
    written: &'static str,
    fut: F,
) -> TestTimeout<F> {
    TestTimeout {
        fut,
        limit,
        test,
        written,
        watch: Arc::default(),
        thread: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`with_timeout`].
    ///
    /// # Cancel safety
    /// As the inner future; dropping it stops the watchdog.
    #[doc(hidden)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct TestTimeout<F> {
        #[pin]
        fut: F,
        limit: Duration,
        test: &'static str,
        written: &'static str,
        watch: Arc<Watch>,
        thread: Option<JoinHandle<()>>,
    }

    impl<F> PinnedDrop for TestTimeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            *lock(&this.watch.done) = true;
            this.watch.done_cv.notify_all();
            if let Some(t) = this.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl<F: Future> Future for TestTimeout<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.watch.expired.load(Ordering::Acquire) {
            panic!(
                "test `{}` timed out: still running after {} of wall-clock time \
                 (#[tulip::test(timeout = \"{}\")])",
                this.test, this.written, this.written
            );
        }
        {
            let mut w = lock(&this.watch.waker);
            match &*w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        if this.thread.is_none() {
            let watch = this.watch.clone();
            let limit = *this.limit;
            let spawned = std::thread::Builder::new()
                .name(format!("tulip-test-timeout-{}", this.test))
                .spawn(move || watchdog(&watch, limit));
            // Without a thread (out of resources) the test runs without its limit.
            *this.thread = spawned.ok();
        }
        this.fut.poll(cx)
    }
}

fn watchdog(watch: &Watch, limit: Duration) {
    let done = lock(&watch.done);
    let (done, _) = watch
        .done_cv
        .wait_timeout_while(done, limit, |done| !*done)
        .unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    drop(done);
    watch.expired.store(true, Ordering::Release);
    let waker = lock(&watch.waker).take();
    if let Some(w) = waker {
        w.wake();
    }
}

impl<F> fmt::Debug for TestTimeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestTimeout")
            .field("test", &self.test)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}
