//! `TaskGroup` (asyncio 3.11's `asyncio.TaskGroup`): structured concurrency on the loop.
//!
//! A group is a body (the `async with` block) and the children spawned into it. The group's
//! future, [`TaskGroup::run`], finishes when the body and every child have finished. The
//! first failure — a child or the body returning `Err`, or panicking — cancels the body and
//! every other child; the group then waits until they are gone and returns every failure in
//! a [`TaskGroupError`] (asyncio's `ExceptionGroup`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::task::Task;

/// Where a group is in its life (asyncio's `_entered`/`_aborting`/`_exiting` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Children may be spawned.
    Open,
    /// A failure happened: the body and the children are being cancelled.
    Aborting,
    /// `run` returned, or its future was dropped.
    Finished,
}

/// The state a group's handles, children and `run` future share.
struct Shared<E> {
    phase: Cell<Phase>,
    /// Children whose future has not been dropped yet (finished or cancelled).
    live: Cell<usize>,
    next_id: Cell<u64>,
    /// The children's tasks, to cancel them; `None` while the task is being spawned, or after
    /// it was taken out to be cancelled.
    children: RefCell<Slab<(u64, Option<Task<()>>)>>,
    errors: RefCell<Vec<TaskFailure<E>>>,
    /// The waker of the task that awaits `run`.
    waker: RefCell<Option<Waker>>,
}

impl<E> Shared<E> {
    fn wake(&self) {
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Removes child `id`'s task from the registry; the caller drops it (detaches it) after
    /// the borrow is released.
    fn remove(&self, key: usize, id: u64) -> Option<Task<()>> {
        let mut children = self.children.borrow_mut();
        if children.get(key).is_some_and(|(i, _)| *i == id) {
            children.remove(key).1
        } else {
            None
        }
    }

    /// Records a failure and, the first time, cancels the body and every child.
    fn fail(&self, failure: TaskFailure<E>) {
        self.errors.borrow_mut().push(failure);
        self.abort(Phase::Aborting);
    }

    /// Cancels every child (their futures are dropped on the loop, soon) and moves to `to`.
    fn abort(&self, to: Phase) {
        if self.phase.get() != Phase::Finished {
            self.phase.set(to);
        }
        let tasks: Vec<Task<()>> = self
            .children
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, (_, t))| t.take())
            .collect();
        for t in tasks {
            // Dropping the returned future still cancels the task.
            drop(t.cancel());
        }
        self.wake();
    }
}

/// A task group (asyncio's `asyncio.TaskGroup`): children spawned with [`spawn`] run on the
/// loop; [`TaskGroup::run`] waits for them all.
///
/// `TaskGroup` is a cheap handle (an `Rc`): clone it into children that spawn more children.
/// `E` is the error type the body and the children return.
///
/// # Semantics (asyncio 3.11's)
/// - `run` completes when the body has returned and every child has finished; children may
///   spawn more children until then.
/// - The first failure — a child or the body returns `Err`, or panics — cancels the others:
///   the body is dropped at its current await point (asyncio cancels the parent task) and
///   every running child is cancelled. `run` waits until their futures are dropped, then
///   returns `Err(`[`TaskGroupError`]`)` with every failure, panics included, in the order
///   they happened.
/// - A child cancelled on its own ([`GroupTask::cancel`]) is not a failure.
/// - Dropping the `run` future (the awaiting task is cancelled) drops the body and cancels
///   every child. Rust has no async drop, so their futures are dropped on the loop's next
///   iteration, not before the drop returns.
/// - Spawning into a group that is shutting down (after a failure) or finished is an error,
///   [`SpawnError`].
///
/// [`spawn`]: TaskGroup::spawn
///
/// # Why `run(|tg| async { … })`
/// asyncio's `async with TaskGroup() as tg:` has a body that the group can cancel when a
/// child fails, and whose exception joins the group's. Rust has no async `with`, but a
/// closure that returns the body's future gives both: `run` polls the body itself, so it can
/// drop it on a failure and collect its `Err`; and the group ends exactly when `run`'s
/// future does, so no child outlives it unless the group is leaked — which the type system
/// forbids here, since the handle passed in is only good for spawning. A
/// `TaskGroup::new()` + `wait()` pair could do neither without a second, owning type.
///
/// # Panics
/// [`spawn`](TaskGroup::spawn) panics, as [`tulip::spawn`](crate::spawn), if no loop is
/// running on this thread.
///
/// ```
/// use std::time::Duration;
/// type Error = Box<dyn std::error::Error>;
///
/// tulip::run(async {
///     let (a, b) = tulip::TaskGroup::run(|tg| async move {
///         let a = tg.spawn(async {
///             tulip::sleep(Duration::from_millis(5)).await;
///             Ok(20)
///         })?;
///         let b = tg.spawn(async { Ok(22) })?;
///         Ok::<_, Error>((a, b))
///     })
///     .await
///     .expect("no child failed");
///     assert_eq!(a.await.unwrap() + b.await.unwrap(), 42);
///
///     // The first failure cancels the rest, and the group returns every failure.
///     let r = tulip::TaskGroup::run(|tg| async move {
///         tg.spawn(async { Err::<(), Error>("boom".into()) })?;
///         tg.spawn(async {
///             tulip::sleep(Duration::from_secs(10)).await; // cancelled
///             Ok(())
///         })?;
///         Ok(())
///     })
///     .await;
///     let err = r.unwrap_err();
///     assert_eq!(err.errors().len(), 1);
///     assert_eq!(err.to_string(), "unhandled errors in a TaskGroup (1 sub-exception): boom");
/// });
/// ```
pub struct TaskGroup<E> {
    shared: Rc<Shared<E>>,
}

impl<E> Clone for TaskGroup<E> {
    fn clone(&self) -> TaskGroup<E> {
        TaskGroup {
            shared: self.shared.clone(),
        }
    }
}

impl<E> fmt::Debug for TaskGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("phase", &self.shared.phase.get())
            .field("children", &self.shared.live.get())
            .finish()
    }
}

impl<E: 'static> TaskGroup<E> {
    /// Runs the group: calls `body` with a handle to spawn children, then waits for the body
    /// and every child (asyncio's `async with asyncio.TaskGroup() as tg:` block). The body's
    /// `Ok` value is the group's, if nothing failed.
    ///
    /// The body is polled by the returned future, inside the awaiting task, so it need not
    /// be `'static`.
    pub fn run<F, Fut, T>(body: F) -> RunTaskGroup<Fut, E>
    where
        F: FnOnce(TaskGroup<E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let shared = Rc::new(Shared {
            phase: Cell::new(Phase::Open),
            live: Cell::new(0),
            next_id: Cell::new(0),
            children: RefCell::new(Slab::new()),
            errors: RefCell::new(Vec::new()),
            waker: RefCell::new(None),
        });
        let body = body(TaskGroup {
            shared: shared.clone(),
        });
        RunTaskGroup {
            body: Some(Box::pin(body)),
            output: None,
            shared,
        }
    }

    /// Spawns `fut` as a child of the group (asyncio's `TaskGroup.create_task`). Its `Err`
    /// or panic fails the group; its `Ok` value is kept for the returned [`GroupTask`].
    ///
    /// # Errors
    /// [`SpawnError`] if the group is shutting down after a failure, or finished; `fut` is
    /// dropped.
    ///
    /// # Panics
    /// If no loop is running on this thread.
    #[track_caller]
    pub fn spawn<F, T>(&self, fut: F) -> Result<GroupTask<T>, SpawnError>
    where
        F: Future<Output = Result<T, E>> + 'static,
        T: 'static,
    {
        let sh = &self.shared;
        match sh.phase.get() {
            Phase::Open => {}
            Phase::Aborting => return Err(SpawnError { finished: false }),
            Phase::Finished => return Err(SpawnError { finished: true }),
        }
        let id = sh.next_id.get();
        sh.next_id.set(id + 1);
        let key = sh.children.borrow_mut().insert((id, None));
        sh.live.set(sh.live.get() + 1);
        let slot = Rc::new(Slot {
            state: RefCell::new(SlotState::Running(None)),
        });
        let child = Child {
            fut,
            guard: ChildGuard {
                group: sh.clone(),
                slot: slot.clone(),
                key,
                id,
            },
        };
        let task = crate::spawn(child);
        if let Some(entry) = sh.children.borrow_mut().get_mut(key) {
            entry.1 = Some(task);
        }
        Ok(GroupTask {
            slot,
            group: Rc::downgrade(sh) as Weak<dyn Cancel>,
            key,
            id,
        })
    }

    /// How many children have not finished yet.
    pub fn len(&self) -> usize {
        self.shared.live.get()
    }

    /// Whether every child has finished.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Cancelling one child without knowing the group's error type.
trait Cancel {
    fn cancel_child(&self, key: usize, id: u64);
}

impl<E> Cancel for Shared<E> {
    fn cancel_child(&self, key: usize, id: u64) {
        let task = self
            .children
            .borrow_mut()
            .get_mut(key)
            .filter(|(i, _)| *i == id)
            .and_then(|(_, t)| t.take());
        if let Some(t) = task {
            drop(t.cancel());
        }
    }
}

pin_project_lite::pin_project! {
    /// A child's future: the user's, with its outcome delivered to the group and the handle.
    struct Child<F, T, E> {
        #[pin]
        fut: F,
        guard: ChildGuard<T, E>,
    }
}

impl<F, T, E> Future for Child<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let fut = this.fut;
        let out = match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(v))) => {
                let waker = {
                    let mut st = this.guard.slot.state.borrow_mut();
                    let w = match &mut *st {
                        SlotState::Running(w) => w.take(),
                        _ => None,
                    };
                    *st = SlotState::Done(Some(v));
                    w
                };
                if let Some(w) = waker {
                    w.wake();
                }
                return Poll::Ready(());
            }
            Ok(Poll::Ready(Err(e))) => TaskFailure::Error(e),
            Err(payload) => TaskFailure::Panic(payload),
        };
        let g = &this.guard;
        // Not cancelled by the abort it starts: it is finishing anyway.
        let own = g.group.remove(g.key, g.id);
        drop(own);
        g.group.fail(out);
        Poll::Ready(())
    }
}

/// Dropped with the child's future — finished, cancelled, or dropped when the loop closes:
/// tells the group and the handle.
struct ChildGuard<T, E> {
    group: Rc<Shared<E>>,
    slot: Rc<Slot<T>>,
    key: usize,
    id: u64,
}

impl<T, E> Drop for ChildGuard<T, E> {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.slot.state.borrow_mut();
            match &mut *st {
                SlotState::Running(w) => {
                    let w = w.take();
                    *st = SlotState::Done(None);
                    w
                }
                _ => None,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        let own = self.group.remove(self.key, self.id);
        drop(own);
        self.group.live.set(self.group.live.get() - 1);
        self.group.wake();
    }
}

/// Where a child's output waits for its [`GroupTask`].
struct Slot<T> {
    state: RefCell<SlotState<T>>,
}

enum SlotState<T> {
    Running(Option<Waker>),
    /// `Some` if the child returned `Ok`; `None` if it failed or was cancelled.
    Done(Option<T>),
    Taken,
}

/// A child of a [`TaskGroup`] (asyncio's `Task`, as `TaskGroup.create_task` returns it).
///
/// Await it for the child's `Ok` value: `Some(v)`, or `None` if the child failed (its error
/// is in the group's [`TaskGroupError`]) or was cancelled. Dropping the handle does not
/// cancel the child; [`cancel`](GroupTask::cancel) does. It is not `#[must_use]`: the group
/// waits for its children, so ignoring the handle — asyncio's usual
/// `tg.create_task(coro())` — loses nothing but the value.
///
/// # Cancel safety
/// Cancel-safe: dropping only the `.await` leaves the output for the next await.
pub struct GroupTask<T> {
    slot: Rc<Slot<T>>,
    group: Weak<dyn Cancel>,
    key: usize,
    id: u64,
}

impl<T> GroupTask<T> {
    /// Cancels the child (asyncio's `Task.cancel`): its future is dropped at its current
    /// await point, on the loop's next iteration. This is not a failure of the group.
    pub fn cancel(&self) {
        if let Some(g) = self.group.upgrade() {
            g.cancel_child(self.key, self.id);
        }
    }

    /// Whether the child has finished, failed or been cancelled (asyncio's `Task.done`).
    pub fn is_finished(&self) -> bool {
        !matches!(*self.slot.state.borrow(), SlotState::Running(_))
    }
}

impl<T> Future for GroupTask<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut st = self.slot.state.borrow_mut();
        match &mut *st {
            SlotState::Running(w) => {
                *w = Some(cx.waker().clone());
                Poll::Pending
            }
            SlotState::Done(v) => {
                let v = v.take();
                *st = SlotState::Taken;
                Poll::Ready(v)
            }
            SlotState::Taken => panic!("GroupTask polled after it completed"),
        }
    }
}

impl<T> fmt::Debug for GroupTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupTask")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The future of [`TaskGroup::run`].
///
/// # Cancel safety
/// Dropping it drops the body and cancels every child (their futures are dropped on the
/// loop's next iteration); their outputs are lost.
#[must_use = "futures do nothing unless awaited"]
pub struct RunTaskGroup<Fut: Future, E> {
    body: Option<Pin<Box<Fut>>>,
    output: Option<Fut::Output>,
    shared: Rc<Shared<E>>,
}

// The body is boxed; nothing else is pinned.
impl<Fut: Future, E> Unpin for RunTaskGroup<Fut, E> {}

impl<Fut, T, E> Future for RunTaskGroup<Fut, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, TaskGroupError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        *this.shared.waker.borrow_mut() = Some(cx.waker().clone());
        if this.shared.phase.get() == Phase::Open {
            if let Some(body) = this.body.as_mut() {
                match catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => {}
                    Ok(Poll::Ready(Ok(v))) => {
                        this.body = None;
                        this.output = Some(Ok(v));
                    }
                    Ok(Poll::Ready(Err(e))) => {
                        this.body = None;
                        this.shared.fail(TaskFailure::Error(e));
                    }
                    Err(payload) => {
                        this.body = None;
                        this.shared.fail(TaskFailure::Panic(payload));
                    }
                }
            }
        }
        if this.shared.phase.get() != Phase::Open {
            // A failure: cancel the body (asyncio cancels the parent task). Its `Drop`s run
            // here, with no borrow held.
            this.body = None;
        }
        if this.body.is_some() || this.shared.live.get() > 0 {
            return Poll::Pending;
        }
        this.shared.phase.set(Phase::Finished);
        let errors = std::mem::take(&mut *this.shared.errors.borrow_mut());
        if errors.is_empty() {
            match this.output.take() {
                Some(Ok(v)) => Poll::Ready(Ok(v)),
                _ => panic!("RunTaskGroup polled after it completed"),
            }
        } else {
            this.output = None;
            Poll::Ready(Err(TaskGroupError { errors }))
        }
    }
}

impl<Fut: Future, E> Drop for RunTaskGroup<Fut, E> {
    fn drop(&mut self) {
        // The body first: it may hold handles and guards of its own.
        self.body = None;
        self.shared.waker.borrow_mut().take();
        if self.shared.phase.get() != Phase::Finished {
            self.shared.abort(Phase::Finished);
        }
    }
}

impl<Fut: Future, E> fmt::Debug for RunTaskGroup<Fut, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunTaskGroup")
            .field("phase", &self.shared.phase.get())
            .field("children", &self.shared.live.get())
            .finish_non_exhaustive()
    }
}

/// One failure in a [`TaskGroupError`]: an `Err` a child or the body returned, or a panic.
pub enum TaskFailure<E> {
    /// The child or the body returned `Err`.
    Error(E),
    /// The child or the body panicked: the panic's payload, as `catch_unwind` gives it
    /// (`std::panic::resume_unwind` re-raises it).
    Panic(Box<dyn Any + Send>),
}

impl<E> TaskFailure<E> {
    /// The error, if this is one (not a panic).
    pub fn as_error(&self) -> Option<&E> {
        match self {
            TaskFailure::Error(e) => Some(e),
            TaskFailure::Panic(_) => None,
        }
    }

    /// The panic's message, if this is a panic with a string message.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            TaskFailure::Error(_) => None,
            TaskFailure::Panic(p) => panic_message(&**p),
        }
    }

    /// Whether this is a panic.
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskFailure::Panic(_))
    }
}

fn panic_message(p: &(dyn Any + Send)) -> Option<&str> {
    p.downcast_ref::<&'static str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
}

impl<E: fmt::Debug> fmt::Debug for TaskFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskFailure::Error(e) => f.debug_tuple("Error").field(e).finish(),
            TaskFailure::Panic(p) => f
                .debug_tuple("Panic")
                .field(&panic_message(&**p).unwrap_or("Box<dyn Any>"))
                .finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for TaskFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskFailure::Error(e) => e.fmt(f),
            TaskFailure::Panic(p) => match panic_message(&**p) {
                Some(m) => write!(f, "panicked: {m}"),
                None => f.write_str("panicked"),
            },
        }
    }
}

/// The error of [`TaskGroup::run`]: every failure of the group, in the order they happened
/// (asyncio's `ExceptionGroup`, "unhandled errors in a TaskGroup").
///
/// It is never empty. Today it holds exactly one failure: the first one cancels the body and
/// every other child at once, a cancelled child is never polled again, and a Rust `Drop`
/// cannot fail the way asyncio's `except CancelledError:` clean-up can raise (asyncio's
/// source of the extra failures). It is a list so that it keeps asyncio's shape. A nested group's error is one failure of the outer group when the
/// outer `E` can hold it (e.g. `Box<dyn Error>`: `TaskGroupError<E>` is an `Error` when `E`
/// is `Debug` and `Display`, as `Box<dyn Error>` is).
pub struct TaskGroupError<E> {
    errors: Vec<TaskFailure<E>>,
}

impl<E> TaskGroupError<E> {
    /// The failures, in the order they happened.
    pub fn errors(&self) -> &[TaskFailure<E>] {
        &self.errors
    }

    /// The failures, owned.
    pub fn into_errors(self) -> Vec<TaskFailure<E>> {
        self.errors
    }
}

impl<E: fmt::Debug> fmt::Debug for TaskGroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroupError")
            .field("errors", &self.errors)
            .finish()
    }
}

impl<E: fmt::Display> fmt::Display for TaskGroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "unhandled errors in a TaskGroup ({n} sub-exception{})",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.errors.iter().enumerate() {
            write!(f, "{}{e}", if i == 0 { ": " } else { "; " })?;
        }
        Ok(())
    }
}

// `Debug + Display`, not `Error`: so that `E = Box<dyn Error>` (which is no `Error`) nests.
impl<E: fmt::Debug + fmt::Display> std::error::Error for TaskGroupError<E> {}

/// The error of [`TaskGroup::spawn`] when the group takes no more children: it is shutting
/// down after a failure, or finished (asyncio's `RuntimeError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnError {
    finished: bool,
}

impl SpawnError {
    /// Whether the group had finished (rather than shutting down after a failure).
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.finished {
            "the TaskGroup is finished"
        } else {
            "the TaskGroup is shutting down"
        })
    }
}

impl std::error::Error for SpawnError {}

impl From<SpawnError> for io::Error {
    fn from(e: SpawnError) -> io::Error {
        io::Error::other(e)
    }
}
