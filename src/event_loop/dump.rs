//! Introspection: what a slow or failing step was, and [`EventLoop::dump`] — the loop's
//! readers and writers, timers, tasks, transports and servers as text (what
//! `python -m asyncio ps` and tokio-console show), in release builds and without debug mode.
//!
//! Nothing here runs per callback unless the loop times its callbacks (debug mode, or
//! [`EventLoop::set_slow_callback_reports`]), and then only a copy of a few words is taken
//! before each; the text is made only for a callback that was slow or panicked.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::ready::Ready;
use super::{EventLoop, ExceptionContext, Inner, warn_or_stderr};
use crate::selector::{Direction, READ, WRITE};
use crate::task_info::TaskMeta;

/// How many timers [`EventLoop::dump`] lists by deadline.
const TIMERS_LISTED: usize = 5;

/// What a ready-queue entry is, taken before it runs: a few words, no allocation.
#[derive(Clone)]
pub(super) enum Step {
    /// `call_soon`, a timer, a done callback: the closure's type name.
    Callback(&'static str),
    /// A reader or writer callback (its address finds its fd afterwards).
    Io { cb: *const (), name: &'static str },
    /// A task's step: what the task is, taken before the step (which may end it).
    Task(Option<Rc<TaskMeta>>),
    /// A `call_soon_threadsafe` callback.
    Threadsafe,
    /// The future of `run_until_complete`.
    Main,
}

impl Step {
    #[inline]
    pub(super) fn of(inner: &Inner, item: &Ready) -> Step {
        match item {
            Ready::Callback(cb) => Step::Callback(cb.type_name()),
            Ready::Io(cb) => Step::Io {
                cb: Rc::as_ptr(cb).cast::<()>(),
                name: cb.f.type_name(),
            },
            Ready::Runnable(r) => Step::Task(inner.task_meta(*r.metadata())),
            Ready::Remote(_) => Step::Threadsafe,
            Ready::Main => Step::Main,
        }
    }
}

impl Inner {
    /// What `step` was, in words: the callback's type name; for a reader or writer, its fd
    /// and the transport or server owning it; for a task, its name and spawn location.
    fn describe_step(&self, step: Step) -> String {
        match step {
            Step::Callback(name) => format!("callback {name}"),
            Step::Io { cb, name } => match self.selector.find_callback(cb) {
                Some((fd, dir)) => {
                    let dir = match dir {
                        Direction::Read => "reader",
                        Direction::Write => "writer",
                    };
                    match self.resources.owner_of(fd) {
                        Some(owner) => format!(
                            "{dir} of fd {fd}, {} ({}): {name}",
                            owner.describe(),
                            owner.dump_state()
                        ),
                        None => format!("{dir} of fd {fd}: {name}"),
                    }
                }
                None => format!("reader/writer callback {name} (removed since)"),
            },
            Step::Task(Some(m)) => format!(
                "step of task {} spawned at {} ({})",
                m.name(),
                m.location,
                m.future
            ),
            Step::Task(None) => "step of a task".to_owned(),
            Step::Threadsafe => "threadsafe callback (call_soon_threadsafe)".to_owned(),
            Step::Main => "the main future (run_until_complete)".to_owned(),
        }
    }

    /// Reports a step that ran for `dt`, at least `slow_callback_duration` (asyncio's
    /// "Executing <Handle …> took 0.123 seconds", a warning).
    #[cold]
    #[inline(never)]
    pub(super) fn report_slow(&self, step: Step, dt: Duration) {
        let what = self.describe_step(step);
        warn_or_stderr!("Executing {what} took {:.3} seconds", dt.as_secs_f64());
    }

    /// Runs `item` timed (debug mode, or slow-callback reports on): what it is is taken
    /// before it runs (it may be gone after) — a copy, and a refcount for a task — and
    /// described only if it ran for `slow_callback_duration` or more.
    #[inline(never)]
    pub(super) fn run_item_timed(
        &self,
        item: Ready,
        main: &mut Option<&mut dyn FnMut()>,
        in_main: &Cell<bool>,
    ) {
        let what = Step::of(self, &item);
        self.timed_step.set(Some(what.clone()));
        let t0 = Instant::now();
        self.run_item(item, main, in_main);
        let dt = t0.elapsed();
        self.timed_step.set(None);
        if dt >= self.slow_callback.get() {
            self.report_slow(what, dt);
        }
    }

    /// Adds what was running when a callback panicked, if the loop knows (timed callbacks
    /// only), to the context of the panic.
    #[cold]
    pub(super) fn with_step(&self, ctx: ExceptionContext, step: Option<Step>) -> ExceptionContext {
        match step {
            None => ctx,
            Some(Step::Task(Some(m))) => ctx.with_task(m.info(crate::task::TaskState::Running)),
            Some(step) => ctx.with_callback(self.describe_step(step)),
        }
    }
}

fn interest(k: u8) -> &'static str {
    match (k & READ != 0, k & WRITE != 0) {
        (true, true) => "rw",
        (true, false) => "r-",
        (false, true) => "-w",
        (false, false) => "--",
    }
}

fn in_secs(when: Instant, now: Instant) -> String {
    if when >= now {
        format!("in {:.3} s", (when - now).as_secs_f64())
    } else {
        format!("{:.3} s late", (now - when).as_secs_f64())
    }
}

impl EventLoop {
    /// The loop's state as text, for a human: its readers and writers by fd (with the
    /// transport or server owning each), pending timers (how many, the next deadlines),
    /// tasks by id, name, state and spawn location (`python -m asyncio ps`), and the
    /// transports and servers still open with their file descriptors and addresses.
    /// `format!("{lp}")` is the same text.
    ///
    /// Cheap enough to call from a signal handler callback or a debug endpoint of a running
    /// program; it borrows nothing while user code runs (no user code runs). A transport is
    /// listed with its state, the bytes in its write buffer (`get_write_buffer_size`), its
    /// write-buffer limits, whether writing is paused and its protocol's type.
    ///
    /// ```
    /// tulip::run(async {
    ///     let t = tulip::task::Builder::new().name("idle").spawn(std::future::pending::<()>());
    ///     tulip::yield_now().await;
    ///     let text = tulip::get_running_loop().dump();
    ///     assert!(text.contains("idle"), "{text}");
    ///     drop(t.cancel());
    /// });
    /// ```
    pub fn dump(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_dump(&mut s);
        s
    }

    /// Reports callbacks (and task steps) that run longer than
    /// [`slow_callback_duration`](EventLoop::slow_callback_duration) also when debug mode is
    /// off, which debug mode does anyway: a warning through `log` naming what was slow — the
    /// closure's type name, a reader's fd and transport, a task's name and spawn location.
    /// Off by default: it reads the clock twice per callback (tens of nanoseconds), the only
    /// cost; nothing else of debug mode comes with it.
    ///
    /// ```
    /// let lp = tulip::EventLoop::new()?;
    /// lp.set_slow_callback_reports(true);
    /// lp.set_slow_callback_duration(std::time::Duration::from_millis(50));
    /// assert!(lp.slow_callback_reports());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_slow_callback_reports(&self, on: bool) {
        self.inner.watch_slow.set(on);
        self.inner.timed.set(on || self.inner.debug.get());
    }

    /// Whether slow callbacks are reported outside of debug mode
    /// ([`set_slow_callback_reports`](EventLoop::set_slow_callback_reports)).
    pub fn slow_callback_reports(&self) -> bool {
        self.inner.watch_slow.get()
    }

    fn write_dump(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let inner = &*self.inner;
        let state = if inner.closed.get() {
            "closed"
        } else if inner.running.get() {
            "running"
        } else {
            "not running"
        };
        writeln!(
            f,
            "event loop {}: {state}, debug {}, {} callbacks ready",
            inner.id,
            if inner.debug.get() { "on" } else { "off" },
            inner.ready.len()
        )?;

        let regs = inner.selector.registrations();
        writeln!(f, "readers and writers: {} fds", regs.len())?;
        for r in &regs {
            write!(
                f,
                "  fd {}: reader {}, writer {}, kernel {}",
                r.fd,
                r.reader.unwrap_or("-"),
                r.writer.unwrap_or("-"),
                interest(r.kernel)
            )?;
            match inner.resources.owner_of(r.fd) {
                Some(owner) => writeln!(f, " [{}]", owner.describe())?,
                None => writeln!(f)?,
            }
        }

        let (n, next) = match inner.timers.try_borrow() {
            Ok(t) => t.pending(TIMERS_LISTED),
            Err(_) => (0, Vec::new()),
        };
        writeln!(f, "timers: {n} pending")?;
        let now = self.time();
        for (when, name) in next {
            writeln!(f, "  {}: {name}", in_secs(when, now))?;
        }

        let tasks = inner.task_infos();
        writeln!(f, "tasks: {}", tasks.len())?;
        if !tasks.is_empty() {
            let w = tasks
                .iter()
                .map(|t| t.name().len())
                .max()
                .unwrap_or(4)
                .max(4);
            writeln!(
                f,
                "  {:>4}  {:<w$}  {:<7}  spawned at / future",
                "id", "name", "state"
            )?;
            for t in &tasks {
                writeln!(
                    f,
                    "  {:>4}  {:<w$}  {:<7}  {} / {}",
                    t.id(),
                    t.name(),
                    t.state().to_string(),
                    t.location(),
                    t.future_type()
                )?;
            }
        }

        let open = inner.resources.live();
        writeln!(f, "transports and servers: {}", open.len())?;
        for r in &open {
            let state = r.dump_state();
            if state.is_empty() {
                writeln!(f, "  {}", r.describe())?;
            } else {
                writeln!(f, "  {}: {state}", r.describe())?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for EventLoop {
    /// [`EventLoop::dump`]'s text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_dump(f)
    }
}
