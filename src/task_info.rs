//! What the loop knows about its tasks: names, spawn locations, which one runs (asyncio's
//! `Task.get_name`/`set_name`, `current_task`, `all_tasks`), and the task [`Builder`].
//!
//! Each live task has an entry in its loop's registry (`Inner::tasks`, a slab): its waker,
//! with which `close` cancels it, and its [`TaskMeta`] — id, name, spawn location and the
//! future's type name — shared with the [`Task`] handle. The running task is one
//! thread-local word (its registry key), set and restored around each step; nothing else is
//! done per step.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::rc::Rc;
use std::task::Waker;

use crate::event_loop::{EventLoop, Inner, with_current};
use crate::task::Task;

/// What a task is, shared by its registry entry, its [`Task`] handle and its panic report.
pub(crate) struct TaskMeta {
    pub(crate) id: u64,
    /// `None`: the default name, `Task-<id>` (formatted when asked, not at spawn).
    name: RefCell<Option<Rc<str>>>,
    pub(crate) location: &'static Location<'static>,
    /// `std::any::type_name` of the spawned future (asyncio's `ps` shows the coroutine).
    pub(crate) future: &'static str,
}

impl TaskMeta {
    pub(crate) fn new(
        id: u64,
        name: Option<Rc<str>>,
        location: &'static Location<'static>,
        future: &'static str,
    ) -> TaskMeta {
        TaskMeta {
            id,
            name: RefCell::new(name),
            location,
            future,
        }
    }

    /// The name: the one given, else asyncio's default `Task-<id>`.
    pub(crate) fn name(&self) -> String {
        match &*self.name.borrow() {
            Some(n) => n.to_string(),
            None => format!("Task-{}", self.id),
        }
    }

    pub(crate) fn set_name(&self, name: &str) {
        *self.name.borrow_mut() = Some(Rc::from(name));
    }

    /// A snapshot, in `state`.
    pub(crate) fn info(&self, state: TaskState) -> TaskInfo {
        TaskInfo {
            id: self.id,
            name: self.name(),
            location: self.location,
            future: self.future,
            state,
        }
    }
}

/// One live task in its loop's registry.
pub(crate) struct TaskEntry {
    pub(crate) meta: Rc<TaskMeta>,
    /// Waking it without running the task's step drops the task's future (`close`).
    pub(crate) waker: Waker,
}

/// The metadata of a task's `Runnable`: lets the slow-step report say which task it was
/// without anything done per step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepMeta {
    /// The task's key in the registry.
    pub(crate) key: usize,
    /// Its id (tells a reused key from the task that had it).
    pub(crate) id: u64,
}

/// A task's step as the ready queue holds it.
pub(crate) type TaskRunnable = async_task::Runnable<StepMeta>;

thread_local! {
    /// The registry key of the task whose step runs on this thread, plus one (0: none).
    /// Only one loop runs on a thread at a time, so the key is the running loop's.
    static CURRENT_TASK: Cell<usize> = const { Cell::new(0) };
}

/// Marks the task with registry key `key` as running; returns what to restore after.
#[inline(always)]
pub(crate) fn enter_step(key: usize) -> usize {
    CURRENT_TASK.with(|c| c.replace(key + 1))
}

/// Ends the step begun by [`enter_step`].
#[inline(always)]
pub(crate) fn leave_step(prev: usize) {
    CURRENT_TASK.with(|c| c.set(prev));
}

/// Restores what [`enter_step`] replaced when dropped: for a step that may unwind (the main
/// future's; a task's step catches its panics).
pub(crate) struct StepGuard(usize);

impl StepGuard {
    #[inline(always)]
    pub(crate) fn enter(key: usize) -> StepGuard {
        StepGuard(enter_step(key))
    }
}

impl Drop for StepGuard {
    #[inline(always)]
    fn drop(&mut self) {
        leave_step(self.0);
    }
}

/// The future that [`run_until_complete`](EventLoop::run_until_complete) polls, registered as a
/// task for as long as it runs (asyncio's `run_until_complete` wraps its coroutine in a
/// `Task`): inside it [`current_task`] answers it, and [`all_tasks`] and
/// [`EventLoop::dump`] list it, with the caller of `run_until_complete` (or `tulip::run`, or
/// the `#[tulip::main]` function) as its location.
pub(crate) struct MainTask<'a> {
    inner: &'a Inner,
    key: usize,
    id: u64,
}

impl<'a> MainTask<'a> {
    pub(crate) fn register(
        inner: &'a Inner,
        location: &'static Location<'static>,
        future: &'static str,
    ) -> MainTask<'a> {
        let id = inner.next_task_id.get();
        inner.next_task_id.set(id + 1);
        let meta = Rc::new(TaskMeta::new(id, None, location, future));
        // The loop's close wakes registered tasks to cancel them; the main future is not
        // the loop's to cancel (it returns before a close can run), so its waker does nothing.
        let key = inner.tasks.borrow_mut().insert(TaskEntry {
            meta,
            waker: Waker::noop().clone(),
        });
        MainTask { inner, key, id }
    }

    #[inline(always)]
    pub(crate) fn key(&self) -> usize {
        self.key
    }
}

impl Drop for MainTask<'_> {
    fn drop(&mut self) {
        let removed = match self.inner.tasks.try_borrow_mut() {
            Ok(mut tasks) if tasks.get(self.key).is_some_and(|e| e.meta.id == self.id) => {
                Some(tasks.remove(self.key))
            }
            _ => None,
        };
        drop(removed); // after the borrow: an entry's Drop runs no user code, but keep to the rule
    }
}

/// The registry key of the running task, if a task's step is running.
fn current_key() -> Option<usize> {
    CURRENT_TASK.with(Cell::get).checked_sub(1)
}

/// Whether a task is pending or running, as [`all_tasks`] and [`EventLoop::dump`] see it, or
/// finished, as a report about it after its end says (asyncio's "finished").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Its step is running now: it is the [`current_task`].
    Running,
    /// Waiting to be woken, or woken and waiting for its turn on the ready queue (asyncio's
    /// "pending": a task that is done is no longer listed).
    Pending,
    /// Its future has returned or panicked (only in reports made after its end, such as
    /// "Task exception was never retrieved": [`all_tasks`] lists live tasks only).
    Finished,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Pending => "pending",
            TaskState::Finished => "finished",
        })
    }
}

/// A snapshot of what a task is: what [`current_task`] and [`all_tasks`] return (asyncio
/// returns the `Task` object; a tulip [`Task`] handle is the task's single owner, so these
/// return a description of it instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    id: u64,
    name: String,
    location: &'static Location<'static>,
    future: &'static str,
    state: TaskState,
}

impl TaskInfo {
    /// The task's id, unique on its loop, counted from 1 in spawn order.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The task's name (asyncio's `get_name()`): the one it was given with
    /// [`Builder::name`] or [`Task::set_name`], else `Task-<id>`, asyncio's default.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the task was spawned: the caller of [`spawn`](crate::spawn),
    /// [`EventLoop::spawn`], [`Builder::spawn`] or [`TaskGroup::spawn`](crate::TaskGroup::spawn).
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// The type name of the spawned future (`std::any::type_name`; for an `async` block,
    /// the function it was written in followed by `{{closure}}`).
    pub fn future_type(&self) -> &'static str {
        self.future
    }

    /// Whether it was running or pending when the snapshot was taken.
    pub fn state(&self) -> TaskState {
        self.state
    }
}

impl fmt::Display for TaskInfo {
    /// `Task-3 (pending) spawned at src/main.rs:10:5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) spawned at {}",
            self.name, self.state, self.location
        )
    }
}

impl Inner {
    /// The registry key of the running task, if it is this loop's: the thread-local key
    /// belongs to the running loop, and another loop's registry may hold a task at it.
    fn running_key(&self) -> Option<usize> {
        let key = current_key()?;
        with_current(|running| std::ptr::eq(running, self))
            .unwrap_or(false)
            .then_some(key)
    }

    /// A snapshot of the task with registry key `key`, if it is live and has `id` (when
    /// given).
    pub(crate) fn task_info(&self, key: usize, id: Option<u64>) -> Option<TaskInfo> {
        let tasks = self.tasks.try_borrow().ok()?;
        let e = tasks.get(key)?;
        if id.is_some_and(|id| id != e.meta.id) {
            return None;
        }
        let state = if self.running_key() == Some(key) {
            TaskState::Running
        } else {
            TaskState::Pending
        };
        Some(e.meta.info(state))
    }

    /// What the task of a runnable is, if it is still registered.
    pub(crate) fn task_meta(&self, step: StepMeta) -> Option<Rc<TaskMeta>> {
        let tasks = self.tasks.try_borrow().ok()?;
        let e = tasks.get(step.key)?;
        (e.meta.id == step.id).then(|| e.meta.clone())
    }

    /// Snapshots of every live task, in id order.
    pub(crate) fn task_infos(&self) -> Vec<TaskInfo> {
        let current = self.running_key();
        let Ok(tasks) = self.tasks.try_borrow() else {
            return Vec::new();
        };
        let mut v: Vec<TaskInfo> = tasks
            .iter()
            .map(|(key, e)| {
                let state = if current == Some(key) {
                    TaskState::Running
                } else {
                    TaskState::Pending
                };
                e.meta.info(state)
            })
            .collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// The running task, if this loop runs one's step now.
    pub(crate) fn current_task(&self) -> Option<TaskInfo> {
        self.task_info(current_key()?, None)
    }
}

/// The task whose step is running (asyncio's `asyncio.current_task()`), or `None` outside
/// of a task (no loop running, or a plain callback running). The future given to
/// [`run_until_complete`](EventLoop::run_until_complete) or [`run`](crate::run) counts as a
/// task while it runs, as in asyncio (which wraps it in one): it has an id and a default
/// name, and its location is the caller of `run_until_complete` / `run`.
///
/// ```
/// tulip::run(async {
///     let main = tulip::current_task().expect("the main future is a task");
///     assert!(main.name().starts_with("Task-"));
///     let t = tulip::task::Builder::new().name("worker").spawn(async {
///         tulip::current_task().map(|t| t.name().to_owned())
///     });
///     assert_eq!(t.await.as_deref(), Some("worker"));
/// });
/// ```
pub fn current_task() -> Option<TaskInfo> {
    with_current(Inner::current_task).flatten()
}

/// The running loop's live tasks, in spawn order (asyncio's `asyncio.all_tasks()`; it lists
/// the tasks not done yet, and so does this).
///
/// # Panics
/// If no loop is running on this thread (asyncio raises `RuntimeError`); see
/// [`EventLoop::all_tasks`] for a loop that is not running.
///
/// ```
/// tulip::run(async {
///     let t = tulip::spawn(std::future::pending::<()>());
///     let tasks = tulip::all_tasks();
///     assert_eq!(tasks.len(), 2);
///     assert_eq!(tasks[0].name(), "Task-1"); // the main future
///     assert_eq!(tasks[1].name(), "Task-2");
///     drop(t.cancel());
/// });
/// ```
pub fn all_tasks() -> Vec<TaskInfo> {
    with_current(Inner::task_infos)
        .expect("tulip::all_tasks called outside of a running event loop")
}

impl EventLoop {
    /// The loop's live tasks, in spawn order (asyncio's `asyncio.all_tasks(loop)`).
    pub fn all_tasks(&self) -> Vec<TaskInfo> {
        self.inner.task_infos()
    }
}

/// Spawns a task with options (asyncio's `create_task(coro, name=...)`).
///
/// ```
/// tulip::run(async {
///     let t = tulip::task::Builder::new().name("fetcher").spawn(async { 7 });
///     assert_eq!(t.get_name(), "fetcher");
///     assert_eq!(t.await, 7);
/// });
/// ```
#[derive(Debug, Default, Clone)]
#[must_use = "a Builder does nothing until .spawn()"]
pub struct Builder {
    name: Option<Rc<str>>,
}

impl Builder {
    /// A builder with the defaults: the name `Task-<id>`.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The task's name (asyncio's `name=`).
    pub fn name(mut self, name: impl AsRef<str>) -> Builder {
        self.name = Some(Rc::from(name.as_ref()));
        self
    }

    /// Spawns `fut` on the running loop, as [`spawn`](crate::spawn).
    ///
    /// # Panics
    /// If no loop is running on this thread.
    #[track_caller]
    pub fn spawn<F>(self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let location = Location::caller();
        let mut fut = Some(fut);
        let name = self.name;
        with_current(|inner| {
            crate::task::spawn_with(inner, fut.take().expect("spawned once"), name, location)
        })
        .expect("tulip::task::Builder::spawn called outside of a running event loop")
    }

    /// Spawns `fut` on `lp`, as [`EventLoop::spawn`].
    ///
    /// # Panics
    /// If the loop is closed.
    #[track_caller]
    pub fn spawn_on<F>(self, lp: &EventLoop, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        crate::task::spawn_with(&lp.inner, fut, self.name, Location::caller())
    }
}
