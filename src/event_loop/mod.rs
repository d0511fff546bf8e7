//! The event loop: ready queue, timer heap, selector and inbox, run one iteration at a time
//! as asyncio's `BaseEventLoop._run_once` does.

mod clock;
mod context;
mod dump;
mod exception;
mod fileno;
mod handle;
mod ready;
mod remote;
mod resources;
mod timers;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use clock::Clock;
pub(crate) use clock::now;
pub(crate) use context::{Enter, current_rc, schedule, with_current};
pub use context::{get_running_loop, try_get_running_loop};
pub use exception::{ExceptionContext, set_last_resort};
pub(crate) use exception::{emit, error_or_stderr, warn_or_stderr};
pub use fileno::Fileno;
pub(crate) use handle::{Callback, FnCallback, WakerCallback};
pub use handle::{Handle, TimerHandle};
pub(crate) use ready::Ready;
pub use remote::LoopHandle;
pub(crate) use resources::{NO_KEY, Resource};

use crate::future::LoopFuture;
use crate::selector::{Direction, Fire, IoCallback, READ, Selector, WRITE};
use crate::task::Task;
use ready::ReadyQueue;
pub(crate) use remote::Remote;
use remote::RemoteItem;
use resources::Resources;
use timers::TimerHeap;

// For `ConcurrentFuture::wait` (threadsafe.rs): is this loop one of this thread's?
pub(crate) use context::local_loop;

/// asyncio's default `slow_callback_duration`.
const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

pub(crate) fn closed_error() -> io::Error {
    io::Error::other("event loop is closed")
}

/// The loop's state, shared by every `EventLoop` handle to it. Only the loop's thread
/// touches it.
pub(crate) struct Inner {
    pub(crate) id: u64,
    /// This loop, weakly: lets callbacks that only have `&Inner` reach the handler.
    this: Weak<Inner>,
    pub(crate) ready: ReadyQueue,
    timers: RefCell<TimerHeap>,
    /// What `time()` reads: the wall clock, or virtual time (`clock.rs`).
    pub(crate) clock: Clock,
    pub(crate) selector: Selector,
    pub(crate) remote: Arc<Remote>,
    running: Cell<bool>,
    stopping: Cell<bool>,
    closed: Cell<bool>,
    debug: Cell<bool>,
    /// Slow callbacks are reported outside of debug mode too (`dump.rs`).
    watch_slow: Cell<bool>,
    /// `debug || watch_slow`: the run phase times each callback (one flag for it to read).
    timed: Cell<bool>,
    /// While a timed callback runs: what it is, for the report of its panic (`dump.rs`).
    timed_step: Cell<Option<dump::Step>>,
    slow_callback: Cell<Duration>,
    handler: RefCell<Option<ExceptionHandler>>,
    /// The live tasks: their wakers, so that `close` can cancel them, and what they are
    /// (names, spawn locations: `task_info.rs`).
    pub(crate) tasks: RefCell<Slab<crate::task_info::TaskEntry>>,
    /// The id of the next task (tells a reused slab key from the task that had it).
    pub(crate) next_task_id: Cell<u64>,
    inbox_buf: RefCell<Vec<RemoteItem>>,
    /// The read buffer every socket transport of this loop receives into (only one callback
    /// runs at a time), allocated on first use.
    pub(crate) read_buf: RefCell<Vec<u8>>,
    /// The open transports and servers, closed with the loop (`resources.rs`).
    pub(crate) resources: Resources,
    /// The owning handle was dropped while the loop ran: close it when the run ends.
    orphaned: Cell<bool>,
    /// `shutdown` is under way (what it drops may drop the owning handle: no second one).
    shutting_down: Cell<bool>,
    /// This loop's jobs on the default executor (`run_in_executor`, `executor.rs`).
    pub(crate) executor: crate::executor::LoopJobs,
    /// The signals this loop handles (`unix/signal.rs`), removed when it closes.
    pub(crate) signals: crate::unix::signal::LoopSignals,
}

/// An asyncio event loop: callbacks, timers, I/O readiness and tasks on one thread.
///
/// `EventLoop` is a cheap handle (`Rc`): clones refer to the same loop. It is `!Send`; the
/// [`LoopHandle`] from [`handle`](EventLoop::handle) is the way in from other threads.
///
/// # Closing, and dropping an unclosed loop
/// [`close`](EventLoop::close) (which [`run`](crate::run), `#[tulip::main]` and
/// `#[tulip::test]` call when they return) releases everything the loop still holds: tasks
/// are cancelled, callbacks and timers dropped, and every transport and server still open
/// is closed — its socket closed and its protocol dropped, without a `connection_lost`
/// (asyncio closes a transport collected unclosed the same way, with a `ResourceWarning`;
/// tulip logs a warning naming the transport in debug mode).
///
/// The handle returned by [`new`](EventLoop::new) **owns** the loop; clones (and what
/// [`get_running_loop`] returns) do not. Dropping the owner of a loop that was not closed
/// closes it (in debug mode with a warning, asyncio's "unclosed event loop"
/// `ResourceWarning`) — even while a task, a callback or a protocol still holds a clone,
/// which would otherwise keep the loop and its file descriptors alive for ever through a
/// reference cycle. A clone used after that finds the loop closed. If the owner is dropped
/// while the loop runs, the loop is closed when the run returns. (tokio's `Runtime` and its
/// `Handle` split ownership the same way.)
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
///
/// let lp = tulip::EventLoop::new()?;
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// lp.call_later(Duration::from_millis(5), move || l.borrow_mut().push("later"));
/// let l = log.clone();
/// lp.call_soon(move || l.borrow_mut().push("soon"));
/// lp.run_until_complete(tulip::sleep(Duration::from_millis(10)));
/// assert_eq!(*log.borrow(), ["soon", "later"]);
/// lp.close();
/// # std::io::Result::Ok(())
/// ```
pub struct EventLoop {
    pub(crate) inner: Rc<Inner>,
    /// Whether this is the handle `new` returned (see "Closing" above).
    owner: bool,
}

impl Clone for EventLoop {
    /// Another handle to the same loop; it does not own the loop.
    fn clone(&self) -> EventLoop {
        EventLoop::from_inner(self.inner.clone())
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        if !self.owner || self.inner.closed.get() {
            return;
        }
        if self.inner.debug.get() {
            warn_or_stderr!("unclosed event loop {} dropped: closing it", self.inner.id);
        }
        if self.inner.running.get() {
            self.inner.orphaned.set(true);
        } else {
            self.inner.shutdown();
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("id", &self.inner.id)
            .field("running", &self.inner.running.get())
            .field("closed", &self.inner.closed.get())
            .field("debug", &self.inner.debug.get())
            .finish()
    }
}

/// Sets `running` for the duration of a run and clears `running`/`stopping` after it,
/// also when the run unwinds.
struct RunningGuard<'a>(&'a Inner);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.set(false);
        self.0.stopping.set(false);
        if self.0.orphaned.get() {
            self.0.shutdown();
        }
    }
}

/// The waker of the future given to `run_until_complete`: polled by the loop itself, not
/// spawned, so it may borrow from the caller's stack.
struct MainWaker {
    woken: AtomicBool,
    remote: Arc<Remote>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.woken.swap(true, Ordering::AcqRel) {
            return;
        }
        let local = with_current(|inner| {
            let here = inner.id == self.remote.loop_id;
            if here {
                inner.ready.push(Ready::Main);
            }
            here
        });
        if local != Some(true) {
            // Closed loop: nothing will poll the future again anyway.
            let _ = self.remote.push(RemoteItem::Main);
        }
    }
}

impl EventLoop {
    /// A new loop (asyncio's `new_event_loop()`).
    ///
    /// Debug mode starts on when the environment has `TULIP_DEBUG` set to anything but `0`
    /// or an empty string (asyncio's `PYTHONASYNCIODEBUG`).
    ///
    /// # Errors
    /// If the selector (an epoll or kqueue instance) or its notifier cannot be created (e.g.
    /// out of file descriptors).
    pub fn new() -> io::Result<EventLoop> {
        let id = NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed);
        let (selector, notifier) = Selector::new()?;
        let remote = Arc::new(Remote::new(id, notifier));
        let signals = crate::unix::signal::LoopSignals::new(remote.clone());
        let debug = std::env::var_os("TULIP_DEBUG").is_some_and(|v| !v.is_empty() && v != "0");
        let lp = EventLoop {
            owner: true,
            inner: Rc::new_cyclic(|this| Inner {
                id,
                this: this.clone(),
                ready: ReadyQueue::default(),
                timers: RefCell::new(TimerHeap::new()),
                clock: Clock::real(),
                selector,
                remote,
                running: Cell::new(false),
                stopping: Cell::new(false),
                closed: Cell::new(false),
                debug: Cell::new(debug),
                watch_slow: Cell::new(false),
                timed: Cell::new(debug),
                timed_step: Cell::new(None),
                slow_callback: Cell::new(DEFAULT_SLOW_CALLBACK),
                handler: RefCell::new(None),
                tasks: RefCell::new(Slab::new()),
                next_task_id: Cell::new(1),
                inbox_buf: RefCell::new(Vec::new()),
                read_buf: RefCell::new(Vec::new()),
                resources: Resources::default(),
                orphaned: Cell::new(false),
                shutting_down: Cell::new(false),
                executor: Default::default(),
                signals,
            }),
        };
        context::register_loop(id, Rc::downgrade(&lp.inner));
        Ok(lp)
    }

    /// A handle that does not own the loop.
    pub(crate) fn from_inner(inner: Rc<Inner>) -> EventLoop {
        EventLoop {
            inner,
            owner: false,
        }
    }

    // ---- running and stopping -----------------------------------------------------------

    /// Runs the loop until `fut` completes and returns its output (asyncio's
    /// `run_until_complete`).
    ///
    /// Unlike a spawned task, `fut` is polled by the loop itself, so it need not be
    /// `'static` and may borrow from the caller. A panic inside `fut` unwinds out of this call
    /// (asyncio re-raises the exception); the loop stays usable.
    ///
    /// # Panics
    /// If the loop is closed or already running, if another loop runs on this thread, or if
    /// [`stop`](EventLoop::stop) is called before `fut` completes (asyncio raises
    /// `RuntimeError` in each case).
    #[track_caller]
    pub fn run_until_complete<F: Future>(&self, fut: F) -> F::Output {
        let inner = &*self.inner;
        inner.check_can_run();
        let _enter = Enter::new(&self.inner);
        inner.running.set(true);
        let _running = RunningGuard(inner);
        let main_task = crate::task_info::MainTask::register(
            inner,
            std::panic::Location::caller(),
            std::any::type_name::<F>(),
        );
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            remote: inner.remote.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        let out = Cell::new(None);
        let done = Cell::new(false);
        let mut poll_main = || {
            // A wake-up left in the inbox by an earlier run (a waker of its main future,
            // called from another thread after that future was ready) can queue `Main` twice
            // in one iteration: never poll the future again once it is ready.
            if done.get() {
                return;
            }
            main.woken.store(false, Ordering::Release);
            let _step = crate::task_info::StepGuard::enter(main_task.key());
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                done.set(true);
                out.set(Some(v));
            }
        };
        inner.ready.push(Ready::Main);
        loop {
            inner.run_once(Some(&mut poll_main));
            if let Some(v) = out.take() {
                return v;
            }
            if inner.stopping.get() {
                panic!("event loop stopped before the future completed");
            }
        }
    }

    /// Runs the loop until [`stop`](EventLoop::stop) is called (asyncio's `run_forever`).
    ///
    /// If `stop` was called before, the loop runs one iteration — the callbacks already
    /// scheduled, and the I/O ready now — and returns. After `stop`, `run_forever` may be
    /// called again and resumes with what is still scheduled.
    ///
    /// # Panics
    /// If the loop is closed or already running, or another loop runs on this thread.
    pub fn run_forever(&self) {
        let inner = &*self.inner;
        inner.check_can_run();
        let _enter = Enter::new(&self.inner);
        inner.running.set(true);
        let _running = RunningGuard(inner);
        loop {
            inner.run_once(None);
            if inner.stopping.get() {
                break;
            }
        }
    }

    /// Asks the loop to stop once the current iteration is done (asyncio's `stop`).
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Closes the loop (asyncio's `close`): the tasks still alive are cancelled (their
    /// futures are dropped, on this thread), scheduled callbacks and timers are discarded,
    /// the transports and servers still open are closed (their sockets closed, their
    /// protocols dropped without `connection_lost`; a warning naming each in debug mode),
    /// reader and writer registrations are removed, and the selector is closed. Closing a
    /// closed loop does nothing. See also "Closing" in the type's docs.
    ///
    /// # Panics
    /// If the loop is running.
    pub fn close(&self) {
        assert!(
            !self.inner.running.get(),
            "cannot close a running event loop"
        );
        self.inner.shutdown();
    }

    /// Whether [`close`](EventLoop::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    // ---- callbacks and timers -----------------------------------------------------------

    /// The loop's clock: a monotonic `Instant` (asyncio's `loop.time()` returns float
    /// seconds; in Rust the `Instant` is the natural form). It is `Instant::now()`, except on
    /// a loop made by [`with_virtual_time`](EventLoop::with_virtual_time), whose clock moves
    /// only when the loop jumps to its next timer. Timers, [`sleep`](crate::sleep),
    /// [`timeout`](crate::timeout) and [`interval`](crate::interval) all go by this clock.
    pub fn time(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Schedules `f` to run in the next iteration, after the callbacks scheduled before it
    /// (asyncio's `call_soon`; FIFO order is guaranteed, also with
    /// [`call_soon_threadsafe`](LoopHandle::call_soon_threadsafe) callbacks that arrived
    /// before it, from this thread or another).
    ///
    /// A callback that panics does not stop the loop: the panic goes to the
    /// [exception handler](EventLoop::set_exception_handler).
    ///
    /// # Panics
    /// If the loop is closed.
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Handle {
        self.inner.check_closed();
        if self.inner.remote.has_pending() {
            // What other threads sent before this call goes first: asyncio appends both to
            // one ready queue, in order of arrival.
            self.inner.drain_inbox();
        }
        let cb = FnCallback::new_rc(f);
        self.inner.ready.push(Ready::Callback(cb.clone()));
        Handle { cb }
    }

    /// Schedules `f` to run `delay` from now (asyncio's `call_later`). Timers with the same
    /// deadline run in the order they were scheduled. A delay too long for `Instant`
    /// (`Duration::MAX`, Rust's "never") schedules the timer for a moment that never comes,
    /// without panicking.
    ///
    /// # Panics
    /// If the loop is closed.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> TimerHandle {
        // This loop's clock (virtual time included), also when called before it runs.
        self.call_at(add_saturating(self.time(), delay), f)
    }

    /// Schedules `f` to run at `when` (asyncio's `call_at`).
    ///
    /// # Panics
    /// If the loop is closed.
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> TimerHandle {
        self.inner.call_at(when, FnCallback::new_rc(f))
    }

    /// A thread-safe handle for `call_soon_threadsafe`.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            remote: self.inner.remote.clone(),
        }
    }

    // ---- readers and writers ------------------------------------------------------------

    /// Calls `f` whenever `fd` is readable, until [`remove_reader`](EventLoop::remove_reader)
    /// (asyncio's `add_reader`). Level-triggered: `f` keeps being called while data is
    /// there. A reader already registered for `fd` is replaced.
    ///
    /// `fd` is a [`RawFd`] or a reference to what has one (`&sock`; see [`Fileno`]). The
    /// loop does not own it: remove the reader before closing it.
    ///
    /// # Errors
    /// `ResourceBusy` if a transport or server of this loop owns `fd` (asyncio raises
    /// `RuntimeError`: taking its fd over would stall the connection); the message names
    /// the transport. Otherwise what the kernel reports (`epoll_ctl`, `kevent`), e.g. `EBADF`
    /// for a closed fd, or on Linux `EPERM` for a regular file.
    ///
    /// # Panics
    /// If the loop is closed.
    pub fn add_reader(&self, fd: impl Fileno, f: impl Fn() + 'static) -> io::Result<()> {
        self.inner.check_closed();
        self.inner.ensure_fd_no_transport(fd.fileno())?;
        let cb: Rc<IoCallback> = Rc::new(IoCallback {
            active: Cell::new(true),
            f,
        });
        self.inner
            .selector
            .set_callback(fd.fileno(), Direction::Read, Some(cb))
            .map(drop)
    }

    /// Stops watching `fd` for reading; returns whether a reader was registered (asyncio's
    /// `remove_reader`).
    ///
    /// # Errors
    /// `ResourceBusy` if a transport or server of this loop owns `fd` (asyncio raises
    /// `RuntimeError`); nothing is removed then. An error rather than a panic: the caller
    /// decides, and the loop never goes down for it.
    pub fn remove_reader(&self, fd: impl Fileno) -> io::Result<bool> {
        let fd = fd.fileno();
        self.inner.ensure_fd_no_transport(fd)?;
        Ok(self
            .inner
            .selector
            .set_callback(fd, Direction::Read, None)
            .unwrap_or(false))
    }

    /// Calls `f` whenever `fd` is writable, until [`remove_writer`](EventLoop::remove_writer)
    /// (asyncio's `add_writer`); replaces a writer already registered.
    ///
    /// # Errors
    /// `ResourceBusy` if a transport or server of this loop owns `fd` (as
    /// [`add_reader`](EventLoop::add_reader)); otherwise what the kernel reports
    /// (`epoll_ctl`, `kevent`).
    ///
    /// # Panics
    /// If the loop is closed.
    pub fn add_writer(&self, fd: impl Fileno, f: impl Fn() + 'static) -> io::Result<()> {
        self.inner.check_closed();
        self.inner.ensure_fd_no_transport(fd.fileno())?;
        let cb: Rc<IoCallback> = Rc::new(IoCallback {
            active: Cell::new(true),
            f,
        });
        self.inner
            .selector
            .set_callback(fd.fileno(), Direction::Write, Some(cb))
            .map(drop)
    }

    /// Stops watching `fd` for writing; returns whether a writer was registered.
    ///
    /// # Errors
    /// `ResourceBusy` if a transport or server of this loop owns `fd` (as
    /// [`remove_reader`](EventLoop::remove_reader)).
    pub fn remove_writer(&self, fd: impl Fileno) -> io::Result<bool> {
        let fd = fd.fileno();
        self.inner.ensure_fd_no_transport(fd)?;
        Ok(self
            .inner
            .selector
            .set_callback(fd, Direction::Write, None)
            .unwrap_or(false))
    }

    // ---- futures and tasks --------------------------------------------------------------

    /// A new [`LoopFuture`] that callbacks complete and async code awaits (asyncio's
    /// `create_future`).
    pub fn create_future<T: 'static>(&self) -> LoopFuture<T> {
        LoopFuture::new(self.clone())
    }

    /// Spawns `fut` as a task on this loop (asyncio's `create_task`). The future need not be
    /// `Send`. See [`Task`].
    ///
    /// # Panics
    /// If the loop is closed.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let location = std::panic::Location::caller();
        crate::task::spawn_with(&self.inner, fut, None, location)
    }

    // ---- errors and debugging -----------------------------------------------------------

    /// Sets the handler that receives what callbacks and tasks fail with
    /// (asyncio's `set_exception_handler`).
    pub fn set_exception_handler(&self, handler: impl Fn(&EventLoop, &ExceptionContext) + 'static) {
        *self.inner.handler.borrow_mut() = Some(Rc::new(handler));
    }

    /// Goes back to the default handler, which logs (`set_exception_handler(None)`).
    pub fn reset_exception_handler(&self) {
        *self.inner.handler.borrow_mut() = None;
    }

    /// Hands `ctx` to the exception handler (asyncio's `call_exception_handler`). If the
    /// handler itself panics, both are logged.
    pub fn call_exception_handler(&self, ctx: &ExceptionContext) {
        let handler = self.inner.handler.borrow().clone();
        match handler {
            None => exception::default_handler(ctx),
            Some(h) => {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| h(self, ctx))) {
                    let inner_ctx =
                        ExceptionContext::new("Unhandled error in exception handler").with_panic(p);
                    exception::default_handler(&inner_ctx);
                    exception::default_handler(ctx);
                }
            }
        }
    }

    /// The default exception handler: logs `ctx` at `error` level through `log` — or, if no
    /// logger is installed, writes it to stderr on one line (see [`set_last_resort`]).
    pub fn default_exception_handler(&self, ctx: &ExceptionContext) {
        exception::default_handler(ctx);
    }

    /// Turns debug mode on or off: in debug mode callbacks slower than
    /// [`slow_callback_duration`](EventLoop::slow_callback_duration) are logged.
    pub fn set_debug(&self, on: bool) {
        self.inner.debug.set(on);
        self.inner.timed.set(on || self.inner.watch_slow.get());
    }

    /// Whether debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// How long a callback may run before debug mode logs it (default 100 ms; also without
    /// debug mode with [`set_slow_callback_reports`](EventLoop::set_slow_callback_reports)).
    pub fn slow_callback_duration(&self) -> Duration {
        self.inner.slow_callback.get()
    }

    /// Sets [`slow_callback_duration`](EventLoop::slow_callback_duration).
    pub fn set_slow_callback_duration(&self, d: Duration) {
        self.inner.slow_callback.set(d);
    }

    /// Whether a reader / a writer is wanted for `fd`, and whether the kernel watches it
    /// for reading / writing right now (for tests and debugging).
    #[doc(hidden)]
    pub fn fd_interest(&self, fd: impl AsRawFd) -> ((bool, bool), (bool, bool)) {
        let (want, kernel) = self.inner.selector.interest(fd.as_raw_fd());
        (
            (want & READ != 0, want & WRITE != 0),
            (kernel & READ != 0, kernel & WRITE != 0),
        )
    }
}

impl Inner {
    pub(crate) fn this_weak(&self) -> Weak<Inner> {
        self.this.clone()
    }

    pub(crate) fn check_closed(&self) {
        assert!(!self.closed.get(), "event loop is closed");
    }

    /// Whether the loop was closed.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Refuses `fd` if a transport or server owns it (asyncio's `_ensure_fd_no_transport`).
    fn ensure_fd_no_transport(&self, fd: RawFd) -> io::Result<()> {
        match self.resources.owner_of(fd) {
            None => Ok(()),
            Some(owner) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "file descriptor {fd} is used by {}: use the transport, not add_reader/add_writer/remove_reader/remove_writer",
                    owner.describe()
                ),
            )),
        }
    }

    fn check_can_run(&self) {
        self.check_closed();
        assert!(!self.running.get(), "this event loop is already running");
    }

    pub(crate) fn call_at(&self, when: Instant, cb: Rc<dyn Callback>) -> TimerHandle {
        self.check_closed();
        let mut timers = self.timers.borrow_mut();
        timers.push(when, cb.clone());
        TimerHandle {
            cb,
            when,
            cancelled_in_heap: timers.cancelled_counter().clone(),
        }
    }

    fn drain_inbox(&self) {
        let mut buf = std::mem::take(&mut *self.inbox_buf.borrow_mut());
        self.remote.take(&mut buf);
        for item in buf.drain(..) {
            self.ready.push(match item {
                RemoteItem::Callback(f) => Ready::Remote(f),
                RemoteItem::Runnable(r) => Ready::Runnable(r),
                RemoteItem::Main => Ready::Main,
            });
        }
        *self.inbox_buf.borrow_mut() = buf;
        if self.remote.take_signaled() {
            self.signals.dispatch(self);
        }
    }

    /// One iteration (asyncio's `_run_once`). `main` polls the future of
    /// `run_until_complete`, if one is being run.
    fn run_once(&self, main: Option<&mut dyn FnMut()>) {
        // Fast path: callbacks are ready and there is nothing to poll — no fd armed or
        // waiting to be, no timer, nothing from other threads. Skipping straight to the run
        // phase is exactly what the full path would do.
        if !self.ready.is_empty()
            && self.selector.is_idle()
            && self.timers.borrow().is_empty()
            && !self.remote.has_pending()
        {
            self.run_ready(main);
            return;
        }
        self.selector.sync();
        if self.remote.has_pending() {
            self.drain_inbox();
        }
        let next = self.timers.borrow_mut().next_deadline();
        let busy = self.stopping.get() || !self.ready.is_empty();
        // Virtual time only matters with a timer pending: without one, not a check more.
        let mut jump = None;
        let timeout = match next {
            Some(when) => {
                let mut d = Duration::ZERO;
                if !busy {
                    d = when.saturating_duration_since(self.clock.now());
                }
                if self.clock.is_virtual() {
                    (d, jump) = self.virtual_wait(when, d);
                }
                Some(d)
            }
            None if busy => Some(Duration::ZERO),
            None => None,
        };
        let n = match self.selector.select(timeout) {
            Ok(n) => n,
            Err(e) => {
                self.report(ExceptionContext::new("selector wait failed").with_error(e));
                0
            }
        };
        if n > 0 {
            self.selector.dispatch(n, |f| self.fire(f));
        }
        if self.remote.has_pending() {
            self.drain_inbox();
        }
        if next.is_some() {
            if let Some(jump) = jump {
                self.virtual_wait_done(jump, n);
            }
            let now = self.clock.now();
            self.timers
                .borrow_mut()
                .pop_due(now, |cb| self.ready.push(Ready::Callback(cb)));
        }
        self.run_ready(main);
    }

    /// The run phase: only what was ready when it began.
    ///
    /// One `catch_unwind` covers the whole batch and is set up again only after a callback
    /// panicked; a panic of the main future is resumed, not reported, so that it unwinds out
    /// of `run_until_complete`.
    #[inline]
    fn run_ready(&self, main: Option<&mut dyn FnMut()>) {
        self.run_ready_n(self.ready.len(), main);
    }

    /// The run phase for the first `left` items of the ready queue.
    fn run_ready_n(&self, mut left: usize, mut main: Option<&mut dyn FnMut()>) {
        let debug = self.timed.get();
        let in_main = Cell::new(false);
        while left > 0 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                while left > 0 {
                    left -= 1;
                    let Some(item) = self.ready.pop() else {
                        left = 0;
                        break;
                    };
                    if debug {
                        // Timed, and described if slow (`dump.rs`), out of line.
                        self.run_item_timed(item, &mut main, &in_main);
                    } else {
                        self.run_item(item, &mut main, &in_main);
                    }
                }
            }));
            if let Err(p) = r {
                // What was running, if it was timed (`dump.rs`); taken in any case.
                let step = self.timed_step.take();
                if in_main.get() {
                    resume_unwind(p);
                }
                let ctx = ExceptionContext::new("Exception in callback").with_panic(p);
                self.report(self.with_step(ctx, step));
            }
        }
    }

    #[inline]
    fn run_item(&self, item: Ready, main: &mut Option<&mut dyn FnMut()>, in_main: &Cell<bool>) {
        match item {
            Ready::Runnable(r) => {
                r.run();
            }
            Ready::Callback(cb) => cb.run(),
            Ready::Io(cb) => cb.run(),
            Ready::Remote(f) => f(),
            Ready::Main => {
                if let Some(poll_main) = main.as_mut() {
                    in_main.set(true);
                    poll_main();
                    in_main.set(false);
                }
            }
        }
    }

    #[inline]
    fn fire(&self, f: Fire) {
        match f {
            Fire::Wake(w) => w.wake(),
            Fire::Call(cb) => self.ready.push(Ready::Io(cb)),
        }
    }

    /// Hands `ctx` to the exception handler.
    pub(crate) fn report(&self, ctx: ExceptionContext) {
        match self.this.upgrade() {
            Some(inner) => EventLoop::from_inner(inner).call_exception_handler(&ctx),
            // The loop is being dropped: only the default handler is left.
            None => exception::default_handler(&ctx),
        }
    }

    /// Close: cancel the live tasks, drop callbacks and timers, deregister, refuse more.
    fn shutdown(&self) {
        if self.closed.get() || self.shutting_down.replace(true) {
            return;
        }
        // Dropping a future may wake or spawn others, and so may closing a transport
        // (its protocol's `Drop`): repeat until nothing is left.
        for _ in 0..1000 {
            let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
            let open = if tasks.is_empty() {
                self.resources.take_all()
            } else {
                Vec::new()
            };
            if tasks.is_empty()
                && open.is_empty()
                && self.ready.is_empty()
                && !self.remote.has_pending()
            {
                break;
            }
            // Transports and servers still open: closed here, with no borrow of the loop
            // held (their protocols' `Drop` may run).
            for r in open {
                if self.debug.get() {
                    warn_or_stderr!("unclosed {}: closed with its event loop", r.describe());
                }
                r.close_with_loop();
            }
            // Waking puts each task's runnable on the queue; dropping the runnable instead of
            // running it drops the task's future.
            for (_, t) in tasks {
                t.waker.wake();
            }
            if self.remote.has_pending() {
                self.drain_inbox();
            }
            while let Some(item) = self.ready.pop() {
                drop(item);
            }
        }
        // Signal handlers go before the loop is marked closed (asyncio's `close` removes
        // them first): the process's dispositions are restored, signal streams end.
        self.signals.close();
        self.closed.set(true);
        let timers = self.timers.borrow_mut().clear();
        drop(timers);
        self.selector.clear();
        let left = self.remote.close();
        drop(left);
        while let Some(item) = self.ready.pop() {
            drop(item);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
        context::unregister_loop(self.id);
    }
}

/// Now on the running loop's clock (the wall clock when no loop runs) `+ d`, or a moment that
/// never comes if that does not fit (`Duration::MAX` means "no deadline" in Rust: it must not
/// panic).
pub(crate) fn deadline_after(d: Duration) -> Instant {
    add_saturating(now(), d)
}

/// [`deadline_after`] on the wall clock, for waits off the loop (another thread blocking).
pub(crate) fn real_deadline_after(d: Duration) -> Instant {
    add_saturating(Instant::now(), d)
}

/// `now + d`, or a moment that never comes if that does not fit.
pub(crate) fn add_saturating(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or_else(|| {
        // About 30 years: later than any loop runs, and fits every platform's `Instant`.
        now.checked_add(Duration::from_secs(30 * 365 * 86_400))
            .unwrap_or(now)
    })
}
