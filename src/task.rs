//! Tasks on `async-task`: spawn, the `Task` handle, `yield_now`, and `run` (asyncio.run).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use crate::event_loop::{EventLoop, ExceptionContext, Inner, Ready, schedule, with_current};
use crate::task_info::{StepMeta, TaskEntry, TaskMeta, enter_step, leave_step};

pub use crate::task_group::{GroupTask, RunTaskGroup, SpawnError, TaskFailure};
pub use crate::task_info::{Builder, TaskInfo, TaskState};

/// A panic caught inside a task, on its way to whoever awaits the task. If nobody takes it,
/// dropping it reports it to the loop's exception handler ("never retrieved").
pub(crate) struct TaskPanic {
    payload: Option<Box<dyn Any + Send>>,
    lp: Weak<Inner>,
    meta: Rc<TaskMeta>,
}

impl TaskPanic {
    fn take(mut self) -> Box<dyn Any + Send> {
        self.payload
            .take()
            .unwrap_or_else(|| Box::new("task panicked"))
    }
}

impl Drop for TaskPanic {
    fn drop(&mut self) {
        if let Some(p) = self.payload.take() {
            let ctx = ExceptionContext::new("Task exception was never retrieved")
                .with_panic(p)
                .with_task(self.meta.info(TaskState::Finished));
            match self.lp.upgrade() {
                Some(inner) => inner.report(ctx),
                None => log::error!("{ctx}"),
            }
        }
    }
}

type Output<T> = Result<T, TaskPanic>;

/// Removes the task from the loop's live-task registry when its future is dropped
/// (finished, cancelled, or dropped at close).
struct Registered {
    lp: Weak<Inner>,
    key: usize,
    meta: Rc<TaskMeta>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(inner) = self.lp.upgrade() {
            if let Ok(mut tasks) = inner.tasks.try_borrow_mut() {
                if tasks
                    .get(self.key)
                    .is_some_and(|e| e.meta.id == self.meta.id)
                {
                    drop(tasks.remove(self.key));
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future a task runs: the user's future, with panics caught.
    struct TaskFuture<F> {
        #[pin]
        fut: F,
        reg: Registered,
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = Output<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let fut = this.fut;
        // `current_task()` answers this task during the step.
        let prev = enter_step(this.reg.key);
        let r = catch_unwind(AssertUnwindSafe(|| fut.poll(cx)));
        leave_step(prev);
        match r {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(TaskPanic {
                payload: Some(payload),
                lp: this.reg.lp.clone(),
                meta: this.reg.meta.clone(),
            })),
        }
    }
}

/// Spawns `fut` on `inner`, named `name` (default `Task-<id>`), spawned at `location`.
pub(crate) fn spawn_with<F>(
    inner: &Inner,
    fut: F,
    name: Option<Rc<str>>,
    location: &'static Location<'static>,
) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    inner.check_closed();
    let remote = inner.remote.clone();
    let (runnable, task, meta) = {
        let mut tasks = inner.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let key = entry.key();
        let id = inner.next_task_id.get();
        inner.next_task_id.set(id + 1);
        let meta = Rc::new(TaskMeta::new(
            id,
            name,
            location,
            std::any::type_name::<F>(),
        ));
        let tf = TaskFuture {
            fut,
            reg: Registered {
                lp: inner.this_weak(),
                key,
                meta: meta.clone(),
            },
        };
        let (runnable, task) = async_task::Builder::new()
            .metadata(StepMeta { key, id })
            .spawn_local(move |_| tf, move |r| schedule(&remote, r));
        entry.insert(TaskEntry {
            meta: meta.clone(),
            waker: runnable.waker(),
        });
        (runnable, task, meta)
    };
    inner.ready.push(Ready::Runnable(runnable));
    Task {
        inner: Some(task.fallible()),
        meta,
    }
}

/// Spawns `fut` on the running loop (asyncio's `create_task`).
///
/// The future need not be `Send`; it runs on the loop's thread. Dropping the returned
/// [`Task`] detaches it (it goes on running), as with tokio and asyncio.
///
/// # Panics
/// If no loop is running on this thread.
///
/// ```
/// tulip::run(async {
///     let t = tulip::spawn(async { 6 * 7 });
///     assert_eq!(t.await, 42);
/// });
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let location = Location::caller();
    let mut fut = Some(fut);
    with_current(|inner| spawn_with(inner, fut.take().expect("spawned once"), None, location))
        .expect("tulip::spawn called outside of a running event loop")
}

/// A spawned task (asyncio's `Task`): await it for its output.
///
/// - A panic inside the task is caught; awaiting the task resumes it in the awaiter
///   (asyncio re-raises the exception). If the task is never awaited — detached, or
///   dropped after it finished — the panic goes to the loop's exception handler.
/// - Dropping a `Task` detaches it; [`cancel`](Task::cancel) cancels it: its future is
///   dropped at its current await point (asyncio's `CancelledError`, which in Rust is the
///   drop).
/// - When the loop closes, the tasks still alive are cancelled.
///
/// # Cancel safety
/// Awaiting a `Task` is cancel-safe as long as the handle is kept: dropping only the
/// `.await` (e.g. `timeout(d, &mut task)`) leaves the task running and its output for the
/// next await. Dropping the handle detaches the task (it runs on; its output is lost, a
/// panic goes to the exception handler); to stop it, use [`cancel`](Task::cancel).
///
/// ```
/// use std::time::Duration;
/// tulip::run(async {
///     let mut task = tulip::spawn(async {
///         tulip::sleep(Duration::from_millis(20)).await;
///         7
///     });
///     assert!(tulip::timeout(Duration::from_millis(1), &mut task).await.is_err());
///     assert_eq!(task.await, 7); // it ran on, and its output was kept
/// });
/// ```
#[must_use = "a Task detaches when dropped; await it, or call .detach() to say so"]
pub struct Task<T> {
    inner: Option<async_task::FallibleTask<Output<T>, StepMeta>>,
    meta: Rc<TaskMeta>,
}

impl<T> Task<T> {
    /// Lets the task run on without a handle. Its panic, if any, goes to the exception
    /// handler.
    pub fn detach(mut self) {
        if let Some(t) = self.inner.take() {
            t.detach();
        }
    }

    /// Cancels the task: its future is dropped at the point where it waits. The returned
    /// future resolves to the output if the task had finished before, else `None`. The task
    /// is cancelled even if the returned future is dropped without being awaited.
    pub fn cancel(mut self) -> CancelTask<T>
    where
        T: 'static,
    {
        let t = self.inner.take().expect("Task already completed");
        CancelTask {
            fut: Box::pin(t.cancel()),
        }
    }

    /// Whether the task has finished (or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.inner.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The task's name (asyncio's `get_name()`): given with [`Builder::name`] or
    /// [`set_name`](Task::set_name), else `Task-<id>`. Still answered after the task ended.
    pub fn get_name(&self) -> String {
        self.meta.name()
    }

    /// Renames the task (asyncio's `set_name()`); [`all_tasks`](crate::all_tasks),
    /// [`current_task`](crate::current_task) and reports about the task use the new name.
    pub fn set_name(&self, name: impl AsRef<str>) {
        self.meta.set_name(name.as_ref());
    }

    /// The task's id: unique on its loop, counted from 1 in spawn order.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Where the task was spawned (the caller of [`spawn`], [`EventLoop::spawn`],
    /// [`Builder::spawn`] or [`TaskGroup::spawn`](crate::TaskGroup::spawn)).
    pub fn location(&self) -> &'static Location<'static> {
        self.meta.location
    }
}

fn unwrap_output<T>(out: Output<T>) -> T {
    match out {
        Ok(v) => v,
        Err(p) => resume_unwind(p.take()),
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let t = self.inner.as_mut().expect("Task polled after it completed");
        match Pin::new(t).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                self.inner = None;
                match out {
                    Some(out) => Poll::Ready(unwrap_output(out)),
                    None => panic!("the task was cancelled before it finished"),
                }
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Some(t) = self.inner.take() {
            t.detach();
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.meta.id)
            .field("name", &self.meta.name())
            .field("location", &self.meta.location)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The future of [`Task::cancel`].
///
/// # Cancel safety
/// Dropping it still cancels the task; only the output of a task that had already finished
/// is lost.
#[must_use = "the task is cancelled either way; await this to wait until it is gone"]
pub struct CancelTask<T> {
    fut: Pin<Box<dyn Future<Output = Option<Output<T>>>>>,
}

impl<T> Future for CancelTask<T> {
    type Output = Option<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.fut.as_mut().poll(cx).map(|o| o.map(unwrap_output))
    }
}

impl<T> fmt::Debug for CancelTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelTask").finish_non_exhaustive()
    }
}

/// Yields to the loop once: the task goes to the back of the ready queue and runs again in
/// the next iteration, after I/O is polled (asyncio's `await asyncio.sleep(0)`).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
///
/// # Cancel safety
/// Cancel-safe: it holds nothing.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Runs `fut` on a new loop and closes it (asyncio's `asyncio.run`): a new
/// [`EventLoop`], `run_until_complete(fut)`, then `close()`, which cancels the tasks still
/// alive. A panic in `fut` unwinds out of `run` after the loop is closed.
///
/// # Ctrl-C
/// As `asyncio.run` since Python 3.11, the first Ctrl-C (`SIGINT`) cancels `fut`: it is
/// dropped at the point where it waits, on the loop, so its `Drop`s — guards, `finally`-style
/// cleanup — run; then the loop is closed (the other tasks are cancelled, transports closed)
/// and the process ends **the way an unhandled Ctrl-C ends it: killed by `SIGINT`**, which a
/// shell reports as exit status 130 (Python does the same after an uncaught
/// `KeyboardInterrupt`). `run` does not return then. A second Ctrl-C, while the cleanup still
/// runs, kills the process at once (`SIGINT`'s default action), even if the loop is stuck.
///
/// This happens only when `run` is called on the main thread and `SIGINT` has its default
/// disposition, that is, when the program has not installed a handler of its own (so
/// `#[tulip::test]` tests, which run on the test harness's threads, are not affected). A
/// handler installed on the loop with [`EventLoop::add_signal_handler`]`(SIGINT, …)` or
/// [`signal`](crate::signal)`(SIGINT)` replaces it. To turn it off, use [`run_with`] and
/// [`RunOptions::handle_sigint`]`(false)`.
///
/// # Panics
/// If the loop cannot be created (no file descriptors left), or if another loop is running
/// on this thread.
///
/// ```
/// let v = tulip::run(async { 1 + 1 });
/// assert_eq!(v, 2);
/// ```
#[track_caller]
pub fn run<F: Future>(fut: F) -> F::Output {
    run_with(fut, RunOptions::new())
}

/// [`run`] with options.
///
/// ```
/// // A program that handles Ctrl-C itself (or wants it to kill at once).
/// let v = tulip::run_with(async { 6 * 7 }, tulip::task::RunOptions::new().handle_sigint(false));
/// assert_eq!(v, 42);
/// ```
///
/// # Panics
/// As [`run`].
#[track_caller]
pub fn run_with<F: Future>(fut: F, options: RunOptions) -> F::Output {
    struct CloseOnDrop(EventLoop);
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            if !self.0.is_running() {
                self.0.close();
            }
        }
    }
    let lp = if options.virtual_time {
        EventLoop::with_virtual_time()
    } else {
        EventLoop::new()
    };
    let lp = lp.expect("tulip::run: cannot create the event loop");
    let guard = CloseOnDrop(lp);
    let interrupt = if options.handle_sigint {
        crate::unix::signal::install_interrupt(&guard.0)
    } else {
        None
    };
    let Some(interrupt) = interrupt else {
        return guard.0.run_until_complete(fut);
    };
    let fut = crate::unix::signal::Interruptible::new(fut, interrupt);
    match guard.0.run_until_complete(fut) {
        Some(v) => v,
        None => {
            // Interrupted: `fut` is gone; close the loop (restores SIGINT), then die of it.
            drop(guard);
            crate::unix::signal::die_of_sigint()
        }
    }
}

/// Options of [`run_with`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    handle_sigint: bool,
    virtual_time: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions::new()
    }
}

impl RunOptions {
    /// The options [`run`] uses: Ctrl-C handling on.
    pub fn new() -> RunOptions {
        RunOptions {
            handle_sigint: true,
            virtual_time: false,
        }
    }

    /// Whether the first Ctrl-C cancels the main future (see [`run`], "Ctrl-C"); on by
    /// default. Off, `SIGINT` keeps whatever disposition it has (by default it kills the
    /// process at once, without running `Drop`s).
    pub fn handle_sigint(mut self, on: bool) -> RunOptions {
        self.handle_sigint = on;
        self
    }

    /// Whether the loop runs on virtual time (see [`EventLoop::with_virtual_time`]); off by
    /// default. `#[tulip::test(virtual_time)]` turns it on.
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = tulip::task::RunOptions::new().virtual_time(true);
    /// let wall = std::time::Instant::now();
    /// tulip::run_with(tulip::sleep(Duration::from_secs(3600)), opts);
    /// assert!(wall.elapsed() < Duration::from_secs(60));
    /// ```
    pub fn virtual_time(mut self, on: bool) -> RunOptions {
        self.virtual_time = on;
        self
    }
}
