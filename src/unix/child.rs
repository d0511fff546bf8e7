//! Child watching with no zombie ever (asyncio's child watchers: `PidfdChildWatcher` and
//! `ThreadedChildWatcher`).
//!
//! Each child gets its own watch, and the watch reaps exactly that child — never "any child"
//! (`waitpid(-1)`, the flaw of the seed's `FastChildWatcher`, which steals the children of
//! other code in the process):
//! - **Linux ≥ 5.3**: a `pidfd` (`pidfd_open`) registered for reading in the loop's
//!   selector; when it is readable the child has exited, and the loop reaps it with
//!   `waitpid(pid, WNOHANG)` (`std::process::Child::try_wait`).
//! - **elsewhere** (older kernels, macOS, the BSDs): a small thread per child blocks in
//!   `waitid(P_PID, pid, WEXITED | WNOWAIT)` — it waits for the exit *without reaping* — then
//!   wakes the loop through its thread-safe handle, and the loop reaps. Since only the loop's
//!   thread reaps, a child's number cannot be reused while the loop may still signal it.
//!   On Linux, `TULIP_CHILD_WATCHER=thread` in the environment selects this watcher too.
//!
//! The watch lives as long as the child does, whatever holds it: a child whose `Process` or
//! transport was dropped is still reaped when it exits (the registration or the thread keeps
//! the watch alive).
//!
//! **A loop closed with children still running** hands each of them to a background thread
//! that waits for it (`Child::wait`) and so reaps it; the child is not killed (use
//! `kill_on_drop`, or kill it before closing the loop). Nobody hears its exit status.
//!
//! # Invariant
//! `pidfd`, while `Some`, is registered as a reader in `lp`'s selector; it is removed from the
//! selector before it is closed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, OwnedFd};

use crate::event_loop::{EventLoop, NO_KEY, Resource, warn_or_stderr};
use crate::sys;

/// Stack size of a fallback watcher thread: it only blocks in one system call.
const WATCHER_STACK: usize = 64 * 1024;

thread_local! {
    /// The children of loops on this thread that a watcher thread waits for, by pid. The
    /// thread's wake-up (a `Send` closure) finds its watch here.
    static THREAD_WATCHED: RefCell<HashMap<u32, Rc<ChildWatch>>> = RefCell::new(HashMap::new());
}

/// Whether a watcher thread waits for a child of the loop `loop_id` (on this thread): its
/// exit will come from another thread, which virtual time waits for as for an executor job
/// (`event_loop/clock.rs`).
pub(crate) fn thread_watched(loop_id: u64) -> bool {
    THREAD_WATCHED
        .try_with(|m| {
            m.try_borrow()
                .is_ok_and(|m| m.values().any(|w| w.lp.inner.id == loop_id))
        })
        .unwrap_or(false)
}

/// Whether to watch with a pidfd: yes, unless the environment variable
/// `TULIP_CHILD_WATCHER=thread` (read once) asks for the portable thread watcher — how the
/// tests run the fallback on Linux.
#[cfg(target_os = "linux")]
fn use_pidfd() -> bool {
    static PIDFD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PIDFD.get_or_init(|| std::env::var_os("TULIP_CHILD_WATCHER").is_none_or(|v| v != "thread"))
}

/// What is called once the child has exited and was reaped (the subprocess transport's
/// `process_exited`).
pub(crate) type OnExit = Box<dyn FnOnce(ExitStatus)>;

/// One child process, watched until it is reaped.
pub(crate) struct ChildWatch {
    lp: EventLoop,
    pid: u32,
    /// The child, until it is reaped (or handed off when the loop closes).
    child: RefCell<Option<Child>>,
    status: Cell<Option<ExitStatus>>,
    /// Tasks waiting for the exit.
    waiters: RefCell<Vec<Waker>>,
    on_exit: Cell<Option<OnExit>>,
    #[cfg(target_os = "linux")]
    pidfd: RefCell<Option<OwnedFd>>,
    /// The key in the loop's resources (`NO_KEY` once reaped or handed off).
    res_key: Cell<usize>,
}

impl std::fmt::Debug for ChildWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWatch")
            .field("pid", &self.pid)
            .field("status", &self.status.get())
            .finish()
    }
}

/// Starts watching `child`, a child just spawned (its stdio already taken out).
///
/// # Errors
/// If no watcher could be started (no pidfd and no thread): the child is then killed and
/// reaped before this returns, so nothing is left behind.
pub(crate) fn watch(lp: &EventLoop, child: Child) -> io::Result<Rc<ChildWatch>> {
    let pid = child.id();
    let w = Rc::new(ChildWatch {
        lp: lp.clone(),
        pid,
        child: RefCell::new(Some(child)),
        status: Cell::new(None),
        waiters: RefCell::new(Vec::new()),
        on_exit: Cell::new(None),
        #[cfg(target_os = "linux")]
        pidfd: RefCell::new(None),
        res_key: Cell::new(NO_KEY),
    });
    let res: Weak<dyn Resource> = Rc::downgrade(&w) as Weak<dyn Resource>;
    w.res_key.set(lp.inner.resources.insert(res));
    #[cfg(target_os = "linux")]
    if let Some(fd) = use_pidfd().then(|| sys::pidfd_open(pid).ok()).flatten() {
        let w2 = w.clone();
        if lp.add_reader(fd.as_raw_fd(), move || w2.poll()).is_ok() {
            *w.pidfd.borrow_mut() = Some(fd);
            return Ok(w);
        }
    }
    THREAD_WATCHED.with(|m| m.borrow_mut().insert(pid, w.clone()));
    let handle = lp.handle();
    let spawned = std::thread::Builder::new()
        .name(format!("tulip-child-{pid}"))
        .stack_size(WATCHER_STACK)
        .spawn(move || {
            // An error (ECHILD) means the loop reaped it already (handed off at close).
            let _ = sys::wait_exited(pid);
            // A closed loop handed the child off to a reaper thread: nothing to do.
            let _ = handle.call_soon_threadsafe(move || {
                let w = THREAD_WATCHED.with(|m| m.borrow_mut().remove(&pid));
                if let Some(w) = w {
                    w.poll();
                }
            });
        });
    if let Err(e) = spawned {
        let w2 = THREAD_WATCHED.with(|m| m.borrow_mut().remove(&pid));
        drop(w2);
        w.forget_resource();
        if let Some(mut c) = w.child.borrow_mut().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        return Err(io::Error::new(
            e.kind(),
            format!("cannot watch child process {pid}: {e}"),
        ));
    }
    Ok(w)
}

impl ChildWatch {
    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, once the child was reaped.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status.get()
    }

    /// Calls `f` once the child has exited (at once, with the loop's `call_soon`, if it has).
    pub(crate) fn set_on_exit(&self, f: OnExit) {
        match self.status.get() {
            Some(st) => {
                self.lp.call_soon(move || f(st));
            }
            None => self.on_exit.set(Some(f)),
        }
    }

    /// Ready with the exit status once the child was reaped.
    pub(crate) fn poll_exit(&self, cx: &mut Context<'_>) -> Poll<ExitStatus> {
        if let Some(st) = self.status.get() {
            return Poll::Ready(st);
        }
        let mut ws = self.waiters.borrow_mut();
        if !ws.iter().any(|w| w.will_wake(cx.waker())) {
            ws.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Sends `signal` to the child unless it was reaped already (then nothing happens, as
    /// with Python's `Popen.send_signal`). Only the loop's thread reaps, so the number still
    /// names this child.
    pub(crate) fn send_signal(&self, signal: i32) -> io::Result<()> {
        if self.status.get().is_some() || self.child.borrow().is_none() {
            return Ok(());
        }
        sys::kill(self.pid, signal)
    }

    /// The child may have exited: reap it if it has.
    fn poll(&self) {
        if self.status.get().is_some() {
            return;
        }
        let r = {
            let mut c = self.child.borrow_mut();
            match c.as_mut() {
                Some(child) => child.try_wait(),
                None => return,
            }
        };
        match r {
            Ok(None) => {} // not yet: a spurious wake-up
            Ok(Some(st)) => self.exited(st),
            Err(e) => {
                // Someone else reaped it (a `waitpid(-1)` elsewhere in the process):
                // asyncio's answer, exit status 255.
                warn_or_stderr!("child process {} was reaped by someone else: {e}", self.pid);
                self.exited(ExitStatus::from_raw(255 << 8));
            }
        }
    }

    /// The child was reaped: record the status, let go of the watcher, tell who waits.
    fn exited(&self, st: ExitStatus) {
        self.status.set(Some(st));
        let child = self.child.borrow_mut().take();
        drop(child);
        self.stop_watching();
        self.forget_resource();
        let ws = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in ws {
            w.wake();
        }
        if let Some(f) = self.on_exit.take() {
            f(st);
        }
    }

    /// Removes the pidfd from the selector, then closes it.
    fn stop_watching(&self) {
        #[cfg(target_os = "linux")]
        {
            let fd = self.pidfd.borrow_mut().take();
            if let Some(fd) = fd {
                let _ = self.lp.remove_reader(fd.as_raw_fd());
                drop(fd);
            }
        }
    }

    fn forget_resource(&self) {
        let key = self.res_key.replace(NO_KEY);
        self.lp.inner.resources.remove(key, &[]);
    }
}

/// A child still running when its loop closes is handed off to a thread that reaps it.
impl Resource for ChildWatch {
    fn describe(&self) -> String {
        format!("child process {}", self.pid)
    }

    fn close_with_loop(&self) {
        // The loop took us out of its registry: the key is stale.
        self.res_key.set(NO_KEY);
        self.stop_watching();
        let w = THREAD_WATCHED.with(|m| m.borrow_mut().remove(&self.pid));
        drop(w);
        let child = self.child.borrow_mut().take();
        let on_exit = self.on_exit.take();
        drop(on_exit);
        if let Some(mut child) = child {
            let pid = self.pid;
            let spawned = std::thread::Builder::new()
                .name(format!("tulip-reap-{pid}"))
                .stack_size(WATCHER_STACK)
                .spawn(move || {
                    let _ = child.wait();
                });
            if let Err(e) = spawned {
                warn_or_stderr!("child process {pid} may be left a zombie: {e}");
            }
        }
        let ws = std::mem::take(&mut *self.waiters.borrow_mut());
        drop(ws);
    }
}
