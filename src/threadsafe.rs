//! Crossing threads: [`oneshot`] (a `Send` completer for a future that a loop awaits) and
//! [`run_coroutine_threadsafe`] (a `Send` future submitted to a loop from another thread),
//! both ending in a [`ConcurrentFuture`] — asyncio's `concurrent.futures.Future`, awaitable
//! on any executor and waitable from any thread.

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{Cancelled, TimeoutError};
use crate::event_loop::{LoopHandle, local_loop, try_get_running_loop};

enum Outcome<T> {
    Pending,
    Ready(io::Result<T>),
    Panicked(Box<dyn Any + Send>),
    Taken,
}

struct State<T> {
    outcome: Outcome<T>,
    cancelled: bool,
    /// The `ConcurrentFuture` was dropped: nobody will take the result.
    consumer_gone: bool,
    /// The awaiting side's waker.
    consumer: Option<Waker>,
    /// The producing side's waker (the task of `run_coroutine_threadsafe`), told of `cancel`.
    producer: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when the outcome is set, for `wait`.
    done: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the outcome unless it is set already or nobody waits for it; wakes the consumer.
    fn complete(&self, outcome: Outcome<T>) -> Result<(), Outcome<T>> {
        let (waker, producer) = {
            let mut st = self.lock();
            if !matches!(st.outcome, Outcome::Pending) || st.consumer_gone {
                return Err(outcome);
            }
            st.outcome = outcome;
            (st.consumer.take(), st.producer.take())
        };
        self.done.notify_all();
        // Wakers are user code: woken (and dropped) with no lock held.
        drop(producer);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

fn pair<T>(
    on_drop: fn() -> io::Error,
    loop_id: Option<u64>,
) -> (Completer<T>, ConcurrentFuture<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            outcome: Outcome::Pending,
            cancelled: false,
            consumer_gone: false,
            consumer: None,
            producer: None,
        }),
        done: Condvar::new(),
    });
    (
        Completer {
            shared: Some(shared.clone()),
            on_drop,
        },
        ConcurrentFuture { shared, loop_id },
    )
}

fn completer_dropped() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the Completer was dropped without setting a result",
    )
}

fn loop_went_away() -> io::Error {
    io::Error::other("event loop is closed: the future submitted to it did not finish")
}

/// A `Send` completer and the future it completes: the way for another thread to hand a
/// result to a task on a loop (asyncio: `loop.call_soon_threadsafe(fut.set_result, v)`).
///
/// Give the [`Completer`] to a thread and await the [`ConcurrentFuture`] on the loop. Setting
/// the result from another thread wakes the awaiting task through its loop's thread-safe inbox,
/// so a loop blocked waiting for I/O wakes at once. Neither side needs a running loop: the pair
/// works between plain threads too (`wait` on the receiving side).
///
/// ```
/// tulip::run(async {
///     let (completer, fut) = tulip::oneshot();
///     std::thread::spawn(move || {
///         let _ = completer.set_result(6 * 7);
///     });
///     assert_eq!(fut.await.unwrap(), 42);
/// });
/// ```
pub fn oneshot<T: Send + 'static>() -> (Completer<T>, ConcurrentFuture<T>) {
    pair(completer_dropped, None)
}

/// The sending side of [`oneshot`]: completes its [`ConcurrentFuture`] from any thread.
///
/// Dropping it without a result completes the future with an error of kind `BrokenPipe`.
pub struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
    on_drop: fn() -> io::Error,
}

impl<T> Completer<T> {
    fn take(mut self) -> Arc<Shared<T>> {
        self.shared.take().expect("a Completer completes once")
    }

    /// Completes the future with `value`. Gives `value` back if the future was cancelled or
    /// dropped, so nobody would receive it.
    pub fn set_result(self, value: T) -> Result<(), T> {
        self.take()
            .complete(Outcome::Ready(Ok(value)))
            .map_err(|o| match o {
                Outcome::Ready(Ok(v)) => v,
                _ => unreachable!("complete returns what it was given"),
            })
    }

    /// Completes the future with an error (asyncio's `set_exception`); gives it back if the
    /// future was cancelled or dropped.
    pub fn set_exception(self, err: io::Error) -> Result<(), io::Error> {
        self.take()
            .complete(Outcome::Ready(Err(err)))
            .map_err(|o| match o {
                Outcome::Ready(Err(e)) => e,
                _ => unreachable!("complete returns what it was given"),
            })
    }

    /// Whether the result is no longer wanted: the future was cancelled or dropped. A worker
    /// can check it to give up early (`concurrent.futures`' `set_running_or_notify_cancel`).
    pub fn is_cancelled(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| {
            let st = s.lock();
            st.cancelled || st.consumer_gone
        })
    }

    /// Ready once the future was cancelled; registers the producer's waker otherwise.
    fn poll_cancel(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(s) = &self.shared else {
            return Poll::Ready(());
        };
        let mut st = s.lock();
        if st.cancelled {
            return Poll::Ready(());
        }
        let old = match &st.producer {
            Some(w) if w.will_wake(cx.waker()) => None,
            _ => st.producer.replace(cx.waker().clone()),
        };
        drop(st);
        drop(old); // a waker's drop is user code: not under the lock
        Poll::Pending
    }

    fn set_panic(self, payload: Box<dyn Any + Send>) -> Result<(), Box<dyn Any + Send>> {
        self.take()
            .complete(Outcome::Panicked(payload))
            .map_err(|o| match o {
                Outcome::Panicked(p) => p,
                _ => unreachable!("complete returns what it was given"),
            })
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(s) = self.shared.take() {
            let _ = s.complete(Outcome::Ready(Err((self.on_drop)())));
        }
    }
}

impl<T> fmt::Debug for Completer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completer")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A result that another thread produces (asyncio's `concurrent.futures.Future`): from
/// [`oneshot`] or [`run_coroutine_threadsafe`].
///
/// It is `Send`, and can be
/// - awaited, on a tulip loop or on any other executor (the waker is called from the thread
///   that completes it);
/// - waited for, blocking the calling thread: [`wait`](ConcurrentFuture::wait),
///   [`wait_timeout`](ConcurrentFuture::wait_timeout) (`future.result(timeout)`);
/// - cancelled: [`cancel`](ConcurrentFuture::cancel).
///
/// The outcome is the value, the error it was completed with, or [`Cancelled`]. If the work
/// panicked (a future given to [`run_coroutine_threadsafe`]), the panic resumes in whoever
/// awaits or waits, as awaiting a panicked [`Task`](crate::Task) does.
///
/// # Cancel safety
/// Awaiting is cancel-safe: dropping only the `.await` (through `&mut`) keeps the result for
/// the next one. Dropping the `ConcurrentFuture` detaches the work: a task submitted with
/// [`run_coroutine_threadsafe`] runs on and its output is dropped (a panic then goes to the
/// loop's exception handler); a [`Completer`] sees [`is_cancelled`](Completer::is_cancelled).
#[must_use = "dropping a ConcurrentFuture detaches the work; await it, wait for it or cancel it"]
pub struct ConcurrentFuture<T> {
    shared: Arc<Shared<T>>,
    /// The loop that completes it, if known: `wait` on that loop's thread would deadlock.
    loop_id: Option<u64>,
}

fn taken_error() -> io::Error {
    io::Error::other("the ConcurrentFuture's result was already taken")
}

impl<T> ConcurrentFuture<T> {
    /// Cancels it: the outcome becomes [`Cancelled`] at once, and a task submitted with
    /// [`run_coroutine_threadsafe`] is cancelled on its loop (its future is dropped at the
    /// point where it waits). Returns `false` if it was already done.
    pub fn cancel(&self) -> bool {
        let (consumer, producer) = {
            let mut st = self.shared.lock();
            if !matches!(st.outcome, Outcome::Pending) {
                return false;
            }
            st.outcome = Outcome::Ready(Err(Cancelled.into()));
            st.cancelled = true;
            (st.consumer.take(), st.producer.take())
        };
        self.shared.done.notify_all();
        for w in [consumer, producer].into_iter().flatten() {
            w.wake();
        }
        true
    }

    /// Whether it has an outcome (a value, an error, a panic, or cancelled).
    pub fn done(&self) -> bool {
        !matches!(self.shared.lock().outcome, Outcome::Pending)
    }

    /// Whether it was cancelled.
    pub fn cancelled(&self) -> bool {
        self.shared.lock().cancelled
    }

    /// Blocks this thread until the outcome is there, and returns it
    /// (`concurrent.futures.Future.result()`).
    ///
    /// # Errors
    /// The error the future was completed with, [`Cancelled`], or — for a future of
    /// [`run_coroutine_threadsafe`] not done yet and waited for on the thread of its loop,
    /// which cannot run while the thread waits — an error of kind `Deadlock`.
    ///
    /// # Panics
    /// Resumes the panic of a submitted future that panicked.
    pub fn wait(mut self) -> io::Result<T> {
        self.wait_until(None)
    }

    /// [`wait`](ConcurrentFuture::wait) for at most `timeout`
    /// (`concurrent.futures.Future.result(timeout)`).
    ///
    /// # Errors
    /// As `wait`; and an error of kind `TimedOut` ([`TimeoutError`]) if the outcome is not
    /// there in time, which leaves the future pending: wait again, await it or cancel it.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<T> {
        // The wall clock, also beside a loop on virtual time: this thread blocks for real.
        self.wait_until(Some(crate::event_loop::real_deadline_after(timeout)))
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<T> {
        // A loop runs only on the thread that made it: waiting there could never end.
        if let Some(id) = self.loop_id {
            if local_loop(id).is_some() && !self.done() {
                return Err(io::Error::new(
                    io::ErrorKind::Deadlock,
                    "ConcurrentFuture::wait called on the thread of the loop that runs it: \
                     the loop cannot run while this thread waits; await it instead",
                ));
            }
        }
        let mut st = self.shared.lock();
        while matches!(st.outcome, Outcome::Pending) {
            st = match deadline {
                None => self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(TimeoutError::new().into());
                    }
                    self.shared
                        .done
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        take_outcome(st)
    }
}

/// Moves the outcome out (with the lock released before a panic resumes).
fn take_outcome<T>(mut st: MutexGuard<'_, State<T>>) -> io::Result<T> {
    match std::mem::replace(&mut st.outcome, Outcome::Taken) {
        Outcome::Ready(r) => r,
        Outcome::Panicked(p) => {
            drop(st);
            resume_unwind(p)
        }
        Outcome::Taken => Err(taken_error()),
        Outcome::Pending => unreachable!("take_outcome is called on a done future"),
    }
}

impl<T> Future for ConcurrentFuture<T> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let mut st = self.shared.lock();
        if matches!(st.outcome, Outcome::Pending) {
            let old = match &st.consumer {
                Some(w) if w.will_wake(cx.waker()) => None,
                _ => st.consumer.replace(cx.waker().clone()),
            };
            drop(st);
            drop(old); // a waker's drop is user code: not under the lock
            return Poll::Pending;
        }
        Poll::Ready(take_outcome(st))
    }
}

impl<T> Drop for ConcurrentFuture<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.consumer_gone = true;
        // Drop the waker (and, below, any value) outside the lock: both may be user types.
        let waker = st.consumer.take();
        let outcome = std::mem::replace(&mut st.outcome, Outcome::Taken);
        let outcome = match outcome {
            Outcome::Pending => {
                st.outcome = Outcome::Pending;
                None
            }
            other => Some(other),
        };
        drop(st);
        drop(waker);
        drop(outcome);
    }
}

impl<T> fmt::Debug for ConcurrentFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        let state = match &st.outcome {
            Outcome::Pending => "pending",
            Outcome::Ready(Ok(_)) => "finished",
            Outcome::Ready(Err(_)) if st.cancelled => "cancelled",
            Outcome::Ready(Err(_)) => "failed",
            Outcome::Panicked(_) => "panicked",
            Outcome::Taken => "finished (taken)",
        };
        f.debug_struct("ConcurrentFuture")
            .field("state", &state)
            .finish()
    }
}

/// Submits a coroutine to the loop of `lp` from any thread, as a task, and returns a
/// [`ConcurrentFuture`] of its output (asyncio's `run_coroutine_threadsafe(coro, loop)`).
///
/// What crosses threads is `make`, a `Send` closure that makes the future on the loop's
/// thread: a future that uses the loop (`sleep`, `sock_recv`, a [`Transport`](crate::Transport))
/// is `!Send`, so it could not be sent itself. Write `|| add(1, 2)`, or `move || fut` for a
/// future that is `Send`. The output must be `Send`.
///
/// The task is spawned in the loop's next iteration (through `call_soon_threadsafe`); a loop
/// that is not running yet runs it when it starts. [`ConcurrentFuture::cancel`] cancels the
/// task on the loop; a panic in the coroutine resumes in whoever awaits or waits for the
/// result. If the loop closes before the task finishes, the result is an error of kind
/// `Other` ("event loop is closed").
///
/// # Errors
/// If the loop is closed already (kind `Other`, "event loop is closed"); `make` is dropped
/// without being called.
///
/// ```
/// let lp = tulip::EventLoop::new()?;
/// let handle = lp.handle();
/// let worker = std::thread::spawn(move || {
///     let fut = tulip::run_coroutine_threadsafe(
///         || async {
///             tulip::sleep(std::time::Duration::from_millis(5)).await;
///             1 + 2
///         },
///         &handle,
///     )?;
///     let v = fut.wait();
///     handle.stop()?;
///     v
/// });
/// lp.run_forever();
/// assert_eq!(worker.join().unwrap()?, 3);
/// lp.close();
/// # std::io::Result::Ok(())
/// ```
pub fn run_coroutine_threadsafe<M, F>(
    make: M,
    lp: &LoopHandle,
) -> io::Result<ConcurrentFuture<F::Output>>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let (completer, result) = pair(loop_went_away, Some(lp.remote.loop_id));
    lp.call_soon_threadsafe(move || {
        // Threadsafe callbacks run only while their loop runs; without it, dropping the
        // completer reports the loop gone.
        if let Some(lp) = try_get_running_loop() {
            lp.spawn(drive(make, completer)).detach();
        }
    })?;
    Ok(result)
}

/// The task of `run_coroutine_threadsafe`: makes the future, runs it until it finishes or
/// the `ConcurrentFuture` is cancelled, and hands over its output or its panic.
async fn drive<M, F>(make: M, completer: Completer<F::Output>)
where
    M: FnOnce() -> F,
    F: Future,
{
    let out = match catch_unwind(AssertUnwindSafe(make)) {
        Err(p) => Some(Err(p)),
        Ok(fut) => {
            let mut fut = pin!(fut);
            poll_fn(|cx| {
                if completer.poll_cancel(cx).is_ready() {
                    return Poll::Ready(None);
                }
                match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(v)) => Poll::Ready(Some(Ok(v))),
                    Err(p) => Poll::Ready(Some(Err(p))),
                }
            })
            .await
            // `fut` is dropped here: at its await point if cancelled (asyncio's
            // `Task.cancel`).
        }
    };
    match out {
        None => {}
        // Nobody waits: the output is dropped.
        Some(Ok(v)) => drop(completer.set_result(v)),
        // Nobody waits: the task's own panic handling reports it ("never retrieved").
        Some(Err(p)) => {
            if let Err(p) = completer.set_panic(p) {
                resume_unwind(p);
            }
        }
    }
}
