//! The selector: the registry of readers and writers per fd, over a backend that tells the
//! kernel what to watch.
//!
//! The registry (this file) is portable: at most one reader and one writer per fd, which
//! `add_*` replace and `remove_*` report, and the interest each fd should have. The backend
//! is chosen at compile time, a type alias rather than a trait object, so the hot path has
//! no indirection:
//! - `epoll.rs`, hand-written level-triggered epoll: the default on Linux (its docs say why
//!   not `polling` there);
//! - `poller.rs`, on the `polling` crate (kqueue on macOS and the BSDs, epoll on Linux): the
//!   default everywhere else, and Linux's with the cargo feature `poller`.
//!
//! A backend has `new` (which also makes the thread-safe [`Notifier`]), `add`/`modify`/
//! `delete` of one fd's interest (an `add` of a watched fd and a `modify` of a forgotten one
//! are retried as the other inside the backend), `wait`, and `event(i)` of the last wait.
//!
//! # Invariant
//! The kernel's interest for an fd (`Entry::kernel`) is what we last told the backend. It is
//! brought in line with the wanted interest (a reader and/or a writer present) in
//! [`Selector::sync`], once per loop iteration, for the fds marked dirty. Public
//! `add_reader`/`remove_reader`/… apply their change at once ([`Selector::set_callback`]);
//! the `sock_*` futures defer theirs to the end of the iteration, so that an operation that
//! finishes and the next one on the same socket, in the same task step, cost no system call
//! at all. What makes that safe when an fd number is closed and reused is in `rearm.rs`.

#[cfg(all(target_os = "linux", not(feature = "poller")))]
mod epoll;
#[cfg(any(not(target_os = "linux"), feature = "poller"))]
mod poller;
mod rearm;
mod watchdog;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

#[cfg(all(target_os = "linux", not(feature = "poller")))]
use epoll::Epoll as Backend;
#[cfg(all(target_os = "linux", not(feature = "poller")))]
pub(crate) use epoll::Notifier;
#[cfg(any(not(target_os = "linux"), feature = "poller"))]
pub(crate) use poller::Notifier;
#[cfg(any(not(target_os = "linux"), feature = "poller"))]
use poller::Polling as Backend;

/// Interest bits: a set of directions, as the kernel is told it.
pub(crate) const READ: u8 = 1;
pub(crate) const WRITE: u8 = 2;

/// One direction of an fd: its reader or its writer (asyncio's `EVENT_READ` /
/// `EVENT_WRITE`, one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Readable: `add_reader`, `sock_recv`, the transports' read side.
    Read,
    /// Writable: `add_writer`, `sock_sendall`, the transports' write side.
    Write,
}

impl Direction {
    /// This direction's interest bit.
    #[inline]
    pub(crate) const fn bit(self) -> u8 {
        match self {
            Direction::Read => READ,
            Direction::Write => WRITE,
        }
    }
}

/// How many events one wait can report.
const EVENTS_CAPACITY: usize = 1024;

/// A reader or writer callback registered with `add_reader`/`add_writer`. It runs every
/// time the fd is ready (level-triggered) until removed; `active` turns false on removal so
/// that an already-queued run is skipped, as asyncio cancels the handle.
pub(crate) struct IoCallback<F: ?Sized = dyn IoFn> {
    pub(crate) active: Cell<bool>,
    pub(crate) f: F,
}

impl IoCallback {
    pub(crate) fn run(&self) {
        if self.active.get() {
            self.f.call();
        }
    }
}

/// A reader or writer closure that can say what it is (for slow-callback reports and
/// `EventLoop::dump`): calling it costs what calling a `dyn Fn()` costs, the name is one
/// more entry in the same vtable.
pub(crate) trait IoFn {
    /// Calls the closure.
    fn call(&self);
    /// The closure's type name (`std::any::type_name`): its module path, the generic
    /// parameters of the function that made it (a transport's protocol type, say).
    fn type_name(&self) -> &'static str;
}

impl<F: Fn()> IoFn for F {
    #[inline(always)]
    fn call(&self) {
        self()
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// Who waits on one direction of an fd.
#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Callback(Rc<IoCallback>),
    /// A task waits; `None` once the waker was consumed by an event and the task has not
    /// polled again yet (the interest stays armed).
    Waker(Option<Waker>),
}

impl Slot {
    fn wanted(&self) -> bool {
        !matches!(self, Slot::Empty)
    }
}

#[derive(Default)]
struct Entry {
    reader: Slot,
    writer: Slot,
    /// Interest last given to the backend (0: not registered).
    kernel: u8,
    /// Whether the fd is in `Selector::dirty`.
    dirty: bool,
    /// A backend failure to hand to the waiting future.
    error: Option<io::Error>,
    /// What the `sock_*` futures learnt about the socket behind the fd (`rearm.rs`).
    rearm: rearm::FdState,
}

impl Entry {
    /// Records a backend failure for the waiting futures and takes their wakers, so that
    /// they wake, try again and see the error.
    fn fail(&mut self, armed: &Cell<usize>, err: io::Error, to_wake: &mut Vec<Waker>) {
        self.set_kernel(armed, 0);
        self.error = Some(err);
        for slot in [&mut self.reader, &mut self.writer] {
            if let Slot::Waker(w) = slot {
                to_wake.extend(w.take());
            }
        }
    }

    fn slot_mut(&mut self, dir: Direction) -> &mut Slot {
        match dir {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }

    /// Records the interest given to the backend, keeping the count of armed fds.
    fn set_kernel(&mut self, armed: &Cell<usize>, k: u8) {
        match (self.kernel != 0, k != 0) {
            (false, true) => armed.set(armed.get() + 1),
            (true, false) => armed.set(armed.get() - 1),
            _ => {}
        }
        self.kernel = k;
        self.rearm.kernel_changed(k);
    }

    fn wanted(&self) -> u8 {
        (if self.reader.wanted() { READ } else { 0 })
            | (if self.writer.wanted() { WRITE } else { 0 })
    }
}

/// One fd's registrations, as [`Selector::registrations`] lists them.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) fd: RawFd,
    pub(crate) reader: Option<&'static str>,
    pub(crate) writer: Option<&'static str>,
    /// The interest the kernel has (`READ` | `WRITE`).
    pub(crate) kernel: u8,
}

/// What an event asks the loop to do for one direction.
pub(crate) enum Fire {
    Wake(Waker),
    Call(Rc<IoCallback>),
}

/// The backend and the fd registry.
pub(crate) struct Selector {
    backend: Backend,
    entries: RefCell<Vec<Entry>>,
    dirty: RefCell<Vec<RawFd>>,
    /// How many fds (the notifier aside) the backend watches.
    armed: Cell<usize>,
    /// The suspects and the watchdog hand-shake (`rearm.rs`).
    rearm: rearm::Rearm,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("backend", &self.backend)
            .field("armed", &self.armed.get())
            .finish_non_exhaustive()
    }
}

impl Selector {
    /// A selector and the notifier that wakes its wait from other threads.
    pub(crate) fn new() -> io::Result<(Selector, Notifier)> {
        let (backend, notifier) = Backend::new()?;
        let selector = Selector {
            backend,
            entries: RefCell::new(Vec::new()),
            dirty: RefCell::new(Vec::new()),
            armed: Cell::new(0),
            rearm: rearm::Rearm::new(notifier.clone()),
        };
        Ok((selector, notifier))
    }

    /// Tells the backend to watch `fd` for `new` instead of `old`.
    fn change(&self, fd: RawFd, old: u8, new: u8) -> io::Result<()> {
        if new == 0 {
            // The fd may already be closed (the kernel forgets closed fds by itself): the
            // backend ignores the failure.
            self.backend.delete(fd);
            Ok(())
        } else if old == 0 {
            self.backend.add(fd, new)
        } else {
            self.backend.modify(fd, new)
        }
    }

    /// Runs `f` on the entry of `fd`, growing the registry if needed.
    ///
    /// # Panics
    /// On a negative fd: callers pass fds of live sockets or check first.
    fn with_entry<R>(&self, fd: RawFd, f: impl FnOnce(&mut Entry) -> R) -> R {
        let idx = usize::try_from(fd).expect("negative file descriptor");
        let mut entries = self.entries.borrow_mut();
        if entries.len() <= idx {
            entries.resize_with(idx + 1, Entry::default);
        }
        f(&mut entries[idx])
    }

    fn mark_dirty(&self, fd: RawFd, e: &mut Entry) {
        if !e.dirty {
            e.dirty = true;
            self.dirty.borrow_mut().push(fd);
        }
    }

    // ---- public add_reader / add_writer: applied at once -------------------------------

    /// Sets (`Some`) or removes (`None`) the callback of one direction and applies the new
    /// interest to the backend now. Returns whether a callback or waiter was there before.
    pub(crate) fn set_callback(
        &self,
        fd: RawFd,
        dir: Direction,
        cb: Option<Rc<IoCallback>>,
    ) -> io::Result<bool> {
        let adding = cb.is_some();
        let cb_new = cb.clone();
        let known = usize::try_from(fd).is_ok_and(|i| i < self.entries.borrow().len());
        if !known {
            if !adding {
                return Ok(false);
            }
            // Ask the kernel before growing the registry, so a bogus fd costs nothing.
            if fd < 0 {
                return Err(crate::sys::bad_fd());
            }
            self.backend.add(fd, dir.bit())?;
            self.with_entry(fd, |e| {
                e.set_kernel(&self.armed, dir.bit());
                let slot = e.slot_mut(dir);
                *slot = cb.map_or(Slot::Empty, |cb| {
                    cb.active.set(true);
                    Slot::Callback(cb)
                });
            });
            return Ok(false);
        }
        let (old_slot, old_kernel, wanted) = self.with_entry(fd, |e| {
            let new = match cb {
                Some(cb) => Slot::Callback(cb),
                None => Slot::Empty,
            };
            let slot = e.slot_mut(dir);
            let old = std::mem::replace(slot, new);
            (old, e.kernel, e.wanted())
        });
        let had = match &old_slot {
            Slot::Empty => false,
            Slot::Callback(cb) => {
                cb.active.set(false);
                true
            }
            Slot::Waker(_) => true,
        };
        if let Some(cb) = &cb_new {
            // After deactivating the old one: it may be this same callback, re-added.
            cb.active.set(true);
        }
        // Adding always asks the kernel (a modify of a forgotten fd becomes an add), so a
        // reused fd number can never be mistaken for an armed one.
        if adding || wanted != old_kernel {
            if let Err(err) = self.change(fd, old_kernel, wanted) {
                self.with_entry(fd, |e| {
                    let slot = e.slot_mut(dir);
                    *slot = Slot::Empty;
                    e.set_kernel(&self.armed, 0);
                });
                return Err(err);
            }
            self.with_entry(fd, |e| {
                e.set_kernel(&self.armed, wanted);
                if wanted == 0 {
                    e.rearm.forget_socket();
                }
            });
        }
        drop(old_slot);
        Ok(had)
    }

    // ---- sock_* futures: deferred ------------------------------------------------------

    /// Makes `waker` the waiter of one direction of `fd`. The interest reaches the backend at
    /// the end of this iteration, if it is not armed already. Returns an earlier backend
    /// failure for this fd, if any.
    pub(crate) fn register_waker(
        &self,
        fd: RawFd,
        dir: Direction,
        waker: &Waker,
    ) -> io::Result<()> {
        let old = self.with_entry(fd, |e| {
            if let Some(err) = e.error.take() {
                return Err(err);
            }
            let slot = e.slot_mut(dir);
            let old = match slot {
                Slot::Waker(Some(w)) if w.will_wake(waker) => return Ok(None),
                _ => std::mem::replace(slot, Slot::Waker(Some(waker.clone()))),
            };
            if e.kernel & dir.bit() == 0 {
                self.mark_dirty(fd, e);
            } else if matches!(old, Slot::Empty) {
                self.rearm.armed_for_free(fd, &mut e.rearm);
            }
            Ok(Some(old))
        })?;
        if let Some(Slot::Callback(cb)) = &old {
            cb.active.set(false);
        }
        drop(old);
        Ok(())
    }

    /// Removes the waiter of one direction of `fd`. The kernel's interest is dropped at the
    /// end of the iteration unless a new waiter arrives first.
    pub(crate) fn unregister_waker(&self, fd: RawFd, dir: Direction) {
        let old = self.with_entry(fd, |e| {
            let slot = e.slot_mut(dir);
            if !matches!(slot, Slot::Waker(_)) {
                return None;
            }
            let old = std::mem::take(slot);
            self.mark_dirty(fd, e);
            Some(old)
        });
        drop(old);
    }

    // ---- one iteration -----------------------------------------------------------------

    /// How many waits the backend made so far. The events being dispatched came from wait
    /// number `waits()`: a waiter that registered after that wait, while the count was the
    /// same, learns nothing from them (it saw the fd after them).
    #[inline]
    pub(crate) fn waits(&self) -> u64 {
        self.rearm.waits()
    }

    /// Whether the backend watches any fd but the notifier: if not, a zero-timeout poll can
    /// be skipped (there is no I/O it could report, and the inbox has its own flag).
    #[inline]
    pub(crate) fn has_armed(&self) -> bool {
        self.armed.get() != 0
    }

    /// Whether there is nothing to poll or apply: no fd armed, none dirty, no suspect.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.armed.get() == 0 && self.dirty.borrow().is_empty() && self.rearm.is_empty()
    }

    /// Brings the kernel's interest in line for every dirty fd: at most one system call
    /// each, none when nothing changed in the end.
    #[inline]
    pub(crate) fn sync(&self) {
        if !self.dirty.borrow().is_empty() {
            self.sync_dirty();
        }
    }

    #[cold]
    fn sync_dirty(&self) {
        let mut dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        let mut to_wake: Vec<Waker> = Vec::new();
        {
            let mut entries = self.entries.borrow_mut();
            for &fd in &dirty {
                let Some(e) = entries.get_mut(fd as usize) else {
                    continue;
                };
                e.dirty = false;
                let want = e.wanted();
                if want == e.kernel {
                    continue;
                }
                match self.change(fd, e.kernel, want) {
                    Ok(()) => {
                        e.set_kernel(&self.armed, want);
                        if want == 0 {
                            e.rearm.forget_socket();
                        }
                    }
                    Err(err) => e.fail(&self.armed, err, &mut to_wake),
                }
            }
        }
        dirty.clear();
        {
            let mut d = self.dirty.borrow_mut();
            if d.is_empty() {
                *d = dirty;
            }
        }
        for w in to_wake {
            w.wake();
        }
    }

    /// Waits for events (`None`: forever; asyncio's `selector.select(timeout)`) and returns
    /// how many the last wait left for [`dispatch`](Selector::dispatch). A zero-timeout wait
    /// with no fd armed is skipped. Suspects (`rearm.rs`) are dealt with around the wait.
    #[inline]
    pub(crate) fn select(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let blocks = timeout != Some(Duration::ZERO);
        let watched = self.before_wait(blocks);
        let r = if !blocks && !self.has_armed() {
            Ok(0)
        } else {
            self.rearm.count_wait();
            self.backend.wait(timeout)
        };
        if watched {
            self.after_wait();
        }
        r
    }

    /// Turns the `n` events of the last wait into work: `fire` gets what each readable or
    /// writable direction asks for. No borrow is held while `fire` runs, so it may run user
    /// code.
    #[inline]
    pub(crate) fn dispatch(&self, n: usize, mut fire: impl FnMut(Fire)) {
        for i in 0..n {
            let Some((fd, readable, writable)) = self.backend.event(i) else {
                self.backend.notifier_fired();
                continue;
            };
            let (r, w) = {
                let mut entries = self.entries.borrow_mut();
                let Some(e) = entries.get_mut(fd as usize) else {
                    continue;
                };
                e.rearm.event();
                let mut stale = false;
                let r = if readable {
                    take_fire(&mut e.reader, &mut stale)
                } else {
                    None
                };
                let w = if writable {
                    take_fire(&mut e.writer, &mut stale)
                } else {
                    None
                };
                if stale && !e.dirty {
                    e.dirty = true;
                    self.dirty.borrow_mut().push(fd);
                }
                (r, w)
            };
            if let Some(f) = r {
                fire(f);
            }
            if let Some(f) = w {
                fire(f);
            }
        }
    }

    /// Drops every registration (loop close) and returns what they held, to be dropped
    /// by the caller outside of any borrow.
    pub(crate) fn clear(&self) -> Vec<(RawFd, u8)> {
        let mut entries = std::mem::take(&mut *self.entries.borrow_mut());
        self.dirty.borrow_mut().clear();
        self.rearm.clear();
        self.armed.set(0);
        let mut out = Vec::new();
        for (fd, e) in entries.iter_mut().enumerate() {
            if e.kernel != 0 {
                self.backend.delete(fd as RawFd);
                out.push((fd as RawFd, e.kernel));
            }
            if let Slot::Callback(cb) = &e.reader {
                cb.active.set(false);
            }
            if let Slot::Callback(cb) = &e.writer {
                cb.active.set(false);
            }
        }
        drop(entries);
        out
    }

    /// Every fd with a reader or a writer (`EventLoop::dump`): the fd, then for each
    /// direction what waits (`None`: nothing; a callback's type name, or "task" for a waiting
    /// `sock_*` future), and the interest the kernel has.
    pub(crate) fn registrations(&self) -> Vec<Registration> {
        let entries = self.entries.borrow();
        let what = |s: &Slot| match s {
            Slot::Empty => None,
            Slot::Callback(cb) => Some(cb.f.type_name()),
            Slot::Waker(_) => Some("a waiting task"),
        };
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.wanted() != 0)
            .map(|(fd, e)| Registration {
                fd: fd as RawFd,
                reader: what(&e.reader),
                writer: what(&e.writer),
                kernel: e.kernel,
            })
            .collect()
    }

    /// The fd and direction whose callback is `cb`, if it is still registered (for the
    /// slow-callback report, which runs after the callback).
    pub(crate) fn find_callback(&self, cb: *const ()) -> Option<(RawFd, Direction)> {
        let entries = self.entries.borrow();
        let is = |s: &Slot| matches!(s, Slot::Callback(c) if std::ptr::addr_eq(Rc::as_ptr(c), cb));
        entries.iter().enumerate().find_map(|(fd, e)| {
            if is(&e.reader) {
                Some((fd as RawFd, Direction::Read))
            } else if is(&e.writer) {
                Some((fd as RawFd, Direction::Write))
            } else {
                None
            }
        })
    }

    /// Whether anything is registered for `fd` (tests and debugging).
    pub(crate) fn interest(&self, fd: RawFd) -> (u8, u8) {
        let entries = self.entries.borrow();
        entries
            .get(fd as usize)
            .map_or((0, 0), |e| (e.wanted(), e.kernel))
    }
}

#[inline]
fn take_fire(slot: &mut Slot, stale: &mut bool) -> Option<Fire> {
    match slot {
        Slot::Empty => {
            *stale = true;
            None
        }
        Slot::Callback(cb) => Some(Fire::Call(cb.clone())),
        Slot::Waker(w) => w.take().map(Fire::Wake),
    }
}
