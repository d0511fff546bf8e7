//! Work off the loop thread: `run_in_executor` / `to_thread` on the `blocking` crate's pool,
//! and `shutdown_default_executor` (asyncio's `base_events.py` and `threads.py`).
//!
//! The pool is global (one per process, grown on demand, idle threads retired); what belongs
//! to a loop is the count of its jobs still on the pool and whether its executor was shut
//! down. That per-loop state is `LoopJobs`, a field of the loop.

use std::cell::{Cell, OnceCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::event_loop::{EventLoop, Inner, closed_error, with_current};
use crate::time::{Sleep, sleep};

/// A loop's jobs on the default executor.
#[derive(Default)]
pub(crate) struct LoopJobs {
    /// `shutdown_default_executor` was called: new jobs are refused.
    shut_down: Cell<bool>,
    /// Shared with the pool threads, allocated on the first job.
    count: OnceCell<Arc<Count>>,
}

/// Jobs submitted and not yet finished (or dropped unstarted), and who waits for zero.
#[derive(Default)]
struct Count {
    state: Mutex<CountState>,
}

#[derive(Default)]
struct CountState {
    outstanding: usize,
    waiters: Vec<Waker>,
}

impl Count {
    fn lock(&self) -> MutexGuard<'_, CountState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts one job while it lives: created on the loop's thread when the job is submitted,
/// moved into the job's closure, dropped when the closure returns, unwinds, or is dropped
/// unstarted (a job cancelled before the pool picked it up).
struct JobGuard(Arc<Count>);

impl JobGuard {
    fn new(count: &Arc<Count>) -> JobGuard {
        count.lock().outstanding += 1;
        JobGuard(count.clone())
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        let waiters = {
            let mut st = self.0.lock();
            st.outstanding -= 1;
            if st.outstanding == 0 {
                std::mem::take(&mut st.waiters)
            } else {
                Vec::new()
            }
        };
        // Wakers are user code: called with no lock held.
        for w in waiters {
            w.wake();
        }
    }
}

impl LoopJobs {
    fn count(&self) -> &Arc<Count> {
        self.count.get_or_init(Default::default)
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.count.get().map_or(0, |c| c.lock().outstanding)
    }
}

impl fmt::Debug for LoopJobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopJobs")
            .field("shut_down", &self.shut_down.get())
            .field("outstanding", &self.outstanding())
            .finish()
    }
}

fn shutdown_error() -> io::Error {
    io::Error::other("executor shutdown has been called: run_in_executor refuses new jobs")
}

fn submit<T, F>(inner: &Inner, f: F) -> RunInExecutor<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let state = if inner.is_closed() {
        State::Failed(Some(closed_error()))
    } else if inner.executor.shut_down.get() {
        State::Failed(Some(shutdown_error()))
    } else {
        let guard = JobGuard::new(inner.executor.count());
        State::Running(blocking::unblock(move || {
            let _guard = guard;
            f()
        }))
    };
    RunInExecutor { state }
}

/// Runs `f` on the blocking thread pool and returns a future of its result (asyncio's
/// `loop.run_in_executor(None, f)`): the loop's thread goes on running callbacks and tasks
/// while `f` blocks.
///
/// The job is submitted at once, when `run_in_executor` is called (as asyncio's
/// `run_in_executor`, which is not a coroutine); awaiting the future waits for its result.
/// The pool is the `blocking` crate's, shared by every loop of the process (the default
/// executor); it grows with demand, up to 500 threads (`BLOCKING_MAX_THREADS`).
///
/// - A panic in `f` resumes in the task that awaits the future, as a panic in an awaited
///   [`Task`](crate::Task) does (asyncio re-raises the exception in the awaiter).
/// - After [`shutdown_default_executor`](EventLoop::shutdown_default_executor), or on a
///   closed loop, the future fails at once with an error of kind `Other`, and `f` is dropped
///   without running (asyncio raises `RuntimeError`).
///
/// # Panics
/// If no loop is running on this thread (see [`EventLoop::run_in_executor`] for the method
/// form).
///
/// ```
/// tulip::run(async {
///     let main = std::thread::current().id();
///     let (v, thread) = tulip::run_in_executor(move || (6 * 7, std::thread::current().id()))
///         .await
///         .unwrap();
///     assert_eq!(v, 42);
///     assert_ne!(thread, main);
/// });
/// ```
pub fn run_in_executor<T, F>(f: F) -> RunInExecutor<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_current(|inner| submit(inner, f))
        .expect("tulip::run_in_executor called outside of a running event loop")
}

/// Runs `f` in a separate thread and returns a future of its result (asyncio's
/// `asyncio.to_thread`): [`run_in_executor`] under asyncio's other name. Arguments are what
/// the closure captures; there are no context variables to copy in Rust.
///
/// # Panics
/// If no loop is running on this thread.
///
/// ```
/// tulip::run(async {
///     let sum = tulip::to_thread(|| [40, 2].iter().sum::<i32>()).await.unwrap();
///     assert_eq!(sum, 42);
/// });
/// ```
pub fn to_thread<T, F>(f: F) -> RunInExecutor<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_current(|inner| submit(inner, f))
        .expect("tulip::to_thread called outside of a running event loop")
}

enum State<T> {
    Running(blocking::Task<T>),
    Failed(Option<io::Error>),
}

/// The future of [`run_in_executor`] and [`to_thread`]: `f`'s result, or an error if the
/// job was refused.
///
/// # Cancel safety
/// Dropping it detaches the job. A job the pool has not started yet is dropped and never
/// runs; a job already running runs to completion on its thread — a thread cannot be
/// interrupted, as asyncio's docs say of `run_in_executor` — and its result is dropped
/// there. Nothing stays registered on the loop either way; the job still counts for
/// [`shutdown_default_executor`](EventLoop::shutdown_default_executor) until it ends.
#[must_use = "the job runs anyway; await the future for its result"]
pub struct RunInExecutor<T> {
    state: State<T>,
}

impl<T> Future for RunInExecutor<T> {
    type Output = io::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match &mut self.state {
            // `blocking` propagates a panic of the job into this poll.
            State::Running(task) => Pin::new(task).poll(cx).map(Ok),
            State::Failed(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or_else(|| io::Error::other("RunInExecutor polled after it completed")))),
        }
    }
}

impl<T> fmt::Debug for RunInExecutor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Running(t) if t.is_finished() => "finished",
            State::Running(_) => "running",
            State::Failed(_) => "refused",
        };
        f.debug_struct("RunInExecutor")
            .field("state", &state)
            .finish()
    }
}

/// The future of [`EventLoop::shutdown_default_executor`].
///
/// # Cancel safety
/// Dropping it stops only the waiting: the executor stays shut down for this loop, and the
/// jobs go on running.
#[must_use = "the executor is shut down either way; await this to wait for its jobs"]
pub struct ShutdownDefaultExecutor {
    count: Option<Arc<Count>>,
    timeout: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl Future for ShutdownDefaultExecutor {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let left = match &self.count {
            None => 0,
            Some(count) => {
                let mut st = count.lock();
                if st.outstanding > 0 && !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    st.waiters.push(cx.waker().clone());
                }
                st.outstanding
            }
        };
        if left == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some((d, sleep)) = &mut self.timeout {
            if sleep.as_mut().poll(cx).is_ready() {
                let d = *d;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the default executor did not finish within {:.3} seconds: {left} job(s) of this loop still running",
                        d.as_secs_f64()
                    ),
                )));
            }
        }
        Poll::Pending
    }
}

impl fmt::Debug for ShutdownDefaultExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownDefaultExecutor")
            .field("timeout", &self.timeout.as_ref().map(|(d, _)| *d))
            .finish_non_exhaustive()
    }
}

/// `run_in_executor` and `shutdown_default_executor` as loop methods (asyncio's names).
impl EventLoop {
    /// Runs `f` on the blocking thread pool; see [`run_in_executor`](crate::run_in_executor).
    /// Unlike the free function it needs no running loop: the job is submitted now, and the
    /// future is awaited on this loop.
    ///
    /// ```
    /// let lp = tulip::EventLoop::new()?;
    /// let job = lp.run_in_executor(|| "done");
    /// assert_eq!(lp.run_until_complete(job)?, "done");
    /// lp.close();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn run_in_executor<T, F>(&self, f: F) -> RunInExecutor<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        submit(&self.inner, f)
    }

    /// Shuts this loop's default executor down and waits for its jobs (asyncio 3.12's
    /// `shutdown_default_executor(timeout)`).
    ///
    /// The pool is global, so shutting it down means, for this loop: from this call on,
    /// [`run_in_executor`](EventLoop::run_in_executor), [`to_thread`](crate::to_thread),
    /// [`getaddrinfo`](crate::getaddrinfo) / [`getnameinfo`](crate::getnameinfo) — and so the
    /// name lookups of `create_connection` and `create_server` (IP literals need none) — fail
    /// on this loop with an error of kind `Other` ("executor shutdown has been called",
    /// asyncio's `RuntimeError`, for the same calls); the future waits until
    /// every job this loop submitted has finished — detached ones too — and the pool's threads
    /// go on serving other loops. Other loops are not affected.
    ///
    /// With `timeout` `Some(d)`, the wait ends after `d` with an error of kind `TimedOut`
    /// saying how many jobs are still running (asyncio emits a `RuntimeWarning` and returns);
    /// the jobs run on regardless, as threads cannot be stopped. `None` waits as long as it
    /// takes.
    ///
    /// [`run`](crate::run) and `#[tulip::main]` do not call it (asyncio's `asyncio.run` does):
    /// await it at the end of `main` to wait for blocking work before the program exits.
    ///
    /// ```
    /// use std::time::Duration;
    /// tulip::run(async {
    ///     let lp = tulip::get_running_loop();
    ///     let _ = lp.run_in_executor(|| std::thread::sleep(Duration::from_millis(20)));
    ///     lp.shutdown_default_executor(Some(Duration::from_secs(5))).await.unwrap();
    ///     assert!(tulip::to_thread(|| ()).await.is_err()); // refused from now on
    /// });
    /// ```
    pub fn shutdown_default_executor(&self, timeout: Option<Duration>) -> ShutdownDefaultExecutor {
        let jobs = &self.inner.executor;
        jobs.shut_down.set(true);
        ShutdownDefaultExecutor {
            count: jobs.count.get().cloned(),
            timeout: timeout.map(|d| (d, Box::pin(sleep(d)))),
        }
    }

    /// How many jobs this loop has on the default executor that have not finished (for tests
    /// and debugging).
    #[doc(hidden)]
    pub fn executor_jobs(&self) -> usize {
        self.inner.executor.outstanding()
    }
}
