//! The selector: epoll, level-triggered, plus the registry of readers and writers per fd.
//!
//! This is the one place where tulip talks to epoll, so the `unsafe` for it lives here.
//! We call epoll directly rather than through `polling`: `polling` 3 re-arms its notifier
//! (`read` + `epoll_ctl`) and, for any timeout, a timerfd (`timerfd_settime` + `epoll_ctl`)
//! on every wait — two to four system calls per loop iteration that a loop which waits
//! once per message cannot afford.
//!
//! # Invariant
//! The kernel's interest for an fd (`Entry::kernel`) is what we last told epoll. It is
//! brought in line with the wanted interest (a reader and/or a writer present) in
//! [`Selector::sync`], once per loop iteration, for the fds marked dirty. Public
//! `add_reader`/`remove_reader`/… apply their change at once ([`Selector::apply_now`]);
//! the `sock_*` futures defer theirs to the end of the iteration, so that an operation that
//! finishes and the next one on the same socket, in the same task step, cost no
//! `epoll_ctl` at all.
//!
//! # The reused-fd hazard
//! Between two operations the user may close the socket and open another that gets the same
//! fd number; epoll forgets a closed fd by itself, so our record that the number is armed
//! would then be wrong and the new socket's waiter would never be woken. So a waiter that
//! re-arms a lingering interest without a system call makes the fd a *suspect*: an event
//! for it clears the suspicion (the kernel evidently watches it). A suspect still without an
//! event after [`VERIFY_ITERATIONS`] iterations of a busy loop, or when the loop has been
//! blocked with it for at least [`VERIFY_AFTER`] (the watchdog thread of
//! `event_loop/watchdog.rs` wakes the loop then; its tick backs off to `MAX_TICK` there,
//! so it may take up to twice that), is re-armed with a real `EPOLL_CTL_MOD` (which turns
//! into an `ADD` if the kernel had forgotten it). No clock is read and no timed wait is
//! needed for this. A busy connection pays no system call for it (the loop only keeps the
//! watchdog ticking); one idle for longer than that delay pays one wake-up and one
//! `epoll_ctl` per message; a reused fd costs a short delay, never a hang.
//!
//! # Drained stream sockets
//! A `recv` on a stream socket that returns less than was asked for has emptied the receive
//! queue. The selector notes it ([`Selector::note_read_drained`]) while epoll watches the fd
//! for reading, and forgets it at the next event for the fd or when the interest is
//! dropped; meanwhile the next `sock_recv`/`sock_recv_into` waits for readiness at once
//! rather than first making a `recv` that can only fail with `EAGAIN` (tokio clears its
//! readiness on a short read in the same way). A wrong note costs no more than one loop
//! iteration: the interest is level-triggered, so data that is there is reported at once.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

/// The epoll key of the thread-safe notifier (the self-pipe).
pub(crate) const NOTIFY_KEY: u64 = u64::MAX;

/// Interest bits.
pub(crate) const READ: u8 = 1;
pub(crate) const WRITE: u8 = 2;

const EVENTS_CAPACITY: usize = 1024;

/// How long a loop may stay blocked with unconfirmed suspects before the watchdog has them
/// verified, at the least (see the module docs).
pub(crate) const VERIFY_AFTER: Duration = Duration::from_millis(2);

/// How many iterations of a loop that never times out a suspect may last before it is
/// re-armed with a system call.
pub(crate) const VERIFY_ITERATIONS: u64 = 256;

/// A reader or writer callback registered with `add_reader`/`add_writer`. It runs every
/// time the fd is ready (level-triggered) until removed; `active` turns false on removal so
/// that an already-queued run is skipped, as asyncio cancels the handle.
pub(crate) struct IoCallback<F: ?Sized = dyn Fn()> {
    pub(crate) active: Cell<bool>,
    pub(crate) f: F,
}

impl IoCallback {
    pub(crate) fn run(&self) {
        if self.active.get() {
            (self.f)();
        }
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
    /// Interest last given to epoll (0: not registered).
    kernel: u8,
    /// Whether the fd is in `Selector::dirty`.
    dirty: bool,
    /// An `epoll_ctl` failure to hand to the waiting future.
    error: Option<io::Error>,
    /// Address of the socket object last checked to be non-blocking through this fd (a cache
    /// that saves an `fcntl` per operation).
    verified: usize,
    /// Whether that socket is a stream socket, once asked (`None`: not asked yet).
    stream: Option<bool>,
    /// A `recv` on that stream socket came back short, so its receive queue was empty, and
    /// no event for the fd has come since: the next read may wait for readiness at once
    /// instead of trying `recv` first (module docs).
    read_drained: bool,
    /// Re-armed without a system call and not yet confirmed by an event (module docs).
    suspect: bool,
    /// The iteration in which the current suspicion began.
    suspect_since: u64,
    /// Whether the fd is in `Selector::suspects`.
    listed: bool,
}

impl Entry {
    /// Records an `epoll_ctl` failure for the waiting futures and takes their wakers, so
    /// that they wake, try again and see the error.
    fn fail(&mut self, armed: &Cell<usize>, err: io::Error, to_wake: &mut Vec<Waker>) {
        self.set_kernel(armed, 0);
        self.error = Some(err);
        for slot in [&mut self.reader, &mut self.writer] {
            if let Slot::Waker(w) = slot {
                to_wake.extend(w.take());
            }
        }
    }

    fn slot_mut(&mut self, dir: u8) -> &mut Slot {
        if dir == READ {
            &mut self.reader
        } else {
            &mut self.writer
        }
    }

    /// Records the interest given to epoll, keeping the count of armed fds.
    fn set_kernel(&mut self, armed: &Cell<usize>, k: u8) {
        match (self.kernel != 0, k != 0) {
            (false, true) => armed.set(armed.get() + 1),
            (true, false) => armed.set(armed.get() - 1),
            _ => {}
        }
        self.kernel = k;
        if k & READ == 0 {
            // No event would ever clear the hint.
            self.read_drained = false;
        }
    }

    /// Forgets what was learnt about the socket behind the fd (its number may be reused).
    fn forget_socket(&mut self) {
        self.verified = 0;
        self.stream = None;
        self.read_drained = false;
    }

    fn wanted(&self) -> u8 {
        (if self.reader.wanted() { READ } else { 0 })
            | (if self.writer.wanted() { WRITE } else { 0 })
    }
}

/// What an event asks the loop to do for one direction.
pub(crate) enum Fire {
    Wake(Waker),
    Call(Rc<IoCallback>),
}

/// The epoll instance and the fd registry.
pub(crate) struct Selector {
    epfd: OwnedFd,
    entries: RefCell<Vec<Entry>>,
    dirty: RefCell<Vec<RawFd>>,
    events: RefCell<Vec<libc::epoll_event>>,
    /// Suspect fds (see the module docs).
    suspects: RefCell<Vec<RawFd>>,
    /// Counts the waits, to age suspects.
    iteration: Cell<u64>,
    /// How many fds (the notifier aside) epoll watches.
    armed: Cell<usize>,
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("epfd", &self.epfd.as_raw_fd())
            .finish_non_exhaustive()
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn epoll_flags(interest: u8) -> u32 {
    let mut flags = 0;
    if interest & READ != 0 {
        flags |= libc::EPOLLIN as u32;
    }
    if interest & WRITE != 0 {
        flags |= libc::EPOLLOUT as u32;
    }
    flags
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        // SAFETY: plain system call; the result is checked.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Selector {
            epfd,
            entries: RefCell::new(Vec::new()),
            dirty: RefCell::new(Vec::new()),
            events: RefCell::new(Vec::with_capacity(EVENTS_CAPACITY)),
            suspects: RefCell::new(Vec::new()),
            iteration: Cell::new(0),
            armed: Cell::new(0),
        })
    }

    /// Registers the notifier eventfd under `NOTIFY_KEY`, edge-triggered: every write to it
    /// is one event, and it never has to be read (one system call less per remote wake).
    pub(crate) fn add_notifier(&self, fd: RawFd) -> io::Result<()> {
        self.ctl_flags(
            libc::EPOLL_CTL_ADD,
            fd,
            libc::EPOLLIN as u32 | libc::EPOLLET as u32,
            NOTIFY_KEY,
        )
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: u8, key: u64) -> io::Result<()> {
        self.ctl_flags(op, fd, epoll_flags(interest), key)
    }

    fn ctl_flags(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: key };
        // SAFETY: `epfd` is our epoll fd; `ev` is a valid epoll_event that the kernel only
        // reads. An fd that is not open makes the call fail with EBADF, which we report.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Tells epoll to watch `fd` for `new` instead of `old`.
    fn change(&self, fd: RawFd, old: u8, new: u8) -> io::Result<()> {
        let key = fd as u64;
        if new == 0 {
            // The fd may already be closed (epoll forgets closed fds by itself): ignore.
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, key);
            return Ok(());
        }
        let (first, second) = if old == 0 {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
        } else {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
        };
        match self.ctl(first, fd, new, key) {
            Err(e)
                if e.raw_os_error() == Some(libc::EEXIST)
                    || e.raw_os_error() == Some(libc::ENOENT) =>
            {
                self.ctl(second, fd, new, key)
            }
            r => r,
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
    /// interest to epoll now. Returns whether a callback or waiter was there before.
    pub(crate) fn set_callback(
        &self,
        fd: RawFd,
        dir: u8,
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
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            self.ctl(libc::EPOLL_CTL_ADD, fd, dir, fd as u64)?;
            self.with_entry(fd, |e| {
                e.set_kernel(&self.armed, dir);
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
        // Adding always asks the kernel (a MOD that fails with ENOENT becomes an ADD), so a
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
                    e.forget_socket();
                }
            });
        }
        drop(old_slot);
        Ok(had)
    }

    // ---- sock_* futures: deferred ------------------------------------------------------

    /// Makes `waker` the waiter of one direction of `fd`. The interest reaches epoll at the
    /// end of this iteration, if it is not armed already. Returns an earlier `epoll_ctl`
    /// failure for this fd, if any.
    pub(crate) fn register_waker(&self, fd: RawFd, dir: u8, waker: &Waker) -> io::Result<()> {
        let old = self.with_entry(fd, |e| {
            if let Some(err) = e.error.take() {
                return Err(err);
            }
            let slot = e.slot_mut(dir);
            let old = match slot {
                Slot::Waker(Some(w)) if w.will_wake(waker) => return Ok(None),
                _ => std::mem::replace(slot, Slot::Waker(Some(waker.clone()))),
            };
            if e.kernel & dir == 0 {
                self.mark_dirty(fd, e);
            } else if matches!(old, Slot::Empty) && !e.suspect {
                // Re-armed for free: the fd may have been closed and reused meanwhile.
                e.suspect = true;
                e.suspect_since = self.iteration.get();
                if !e.listed {
                    e.listed = true;
                    self.suspects.borrow_mut().push(fd);
                }
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
    pub(crate) fn unregister_waker(&self, fd: RawFd, dir: u8) {
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

    /// Whether the socket object at `addr` was already seen to be non-blocking on `fd`.
    pub(crate) fn is_verified(&self, fd: RawFd, addr: usize) -> bool {
        let idx = fd as usize;
        let entries = self.entries.borrow();
        entries.get(idx).is_some_and(|e| e.verified == addr)
    }

    /// Remembers that the socket object at `addr` is non-blocking.
    pub(crate) fn set_verified(&self, fd: RawFd, addr: usize) {
        self.with_entry(fd, |e| {
            e.forget_socket();
            e.verified = addr;
        });
    }

    /// Notes that a `recv` on `fd` came back short (see `Entry::read_drained`), if the
    /// socket is a stream socket (`is_stream` asks, once per socket) and epoll watches the fd
    /// for reading, so that an event will clear the note when data arrives.
    pub(crate) fn note_read_drained(&self, fd: RawFd, is_stream: impl FnOnce() -> bool) {
        let mut entries = self.entries.borrow_mut();
        let Some(e) = entries.get_mut(fd as usize) else {
            return;
        };
        if e.kernel & READ == 0 || e.verified == 0 {
            return;
        }
        if *e.stream.get_or_insert_with(is_stream) {
            e.read_drained = true;
        }
    }

    /// Whether the last `recv` on `fd` found its queue empty and nothing arrived since.
    #[inline]
    pub(crate) fn is_read_drained(&self, fd: RawFd) -> bool {
        let entries = self.entries.borrow();
        entries.get(fd as usize).is_some_and(|e| e.read_drained)
    }

    /// Re-arms, with a real `epoll_ctl`, all suspects (`timed_out`: the watchdog saw the loop
    /// blocked with them) or those that went through [`VERIFY_ITERATIONS`] iterations, and
    /// forgets those an event cleared. Returns whether suspects remain.
    pub(crate) fn check_suspects(&self, timed_out: bool) -> bool {
        let mut suspects = self.suspects.borrow_mut();
        let mut entries = self.entries.borrow_mut();
        let now = self.iteration.get();
        let mut to_wake: Vec<Waker> = Vec::new();
        let mut i = 0;
        while i < suspects.len() {
            let fd = suspects[i];
            let Some(e) = entries.get_mut(fd as usize) else {
                suspects.swap_remove(i);
                continue;
            };
            if e.suspect && e.kernel != 0 {
                if !timed_out && now.wrapping_sub(e.suspect_since) < VERIFY_ITERATIONS {
                    i += 1;
                    continue;
                }
                let want = e.wanted();
                if want != 0 {
                    // MOD, or ADD if the kernel forgot the fd (closed and reused).
                    match self.change(fd, e.kernel, want) {
                        Ok(()) => e.set_kernel(&self.armed, want),
                        Err(err) => e.fail(&self.armed, err, &mut to_wake),
                    }
                }
            }
            e.suspect = false;
            e.listed = false;
            suspects.swap_remove(i);
        }
        let remain = !suspects.is_empty();
        drop(entries);
        drop(suspects);
        for w in to_wake {
            w.wake();
        }
        remain
    }

    /// Whether epoll watches any fd but the notifier: if not, a zero-timeout poll can be
    /// skipped (there is no I/O it could report, and the inbox has its own flag).
    #[inline]
    pub(crate) fn has_armed(&self) -> bool {
        self.armed.get() != 0
    }

    /// Whether there is nothing to poll or apply: no fd armed, none dirty, no suspect.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.armed.get() == 0 && self.dirty.borrow().is_empty() && self.suspects.borrow().is_empty()
    }

    /// Whether some fd is a suspect (see the module docs).
    #[inline]
    pub(crate) fn has_suspects(&self) -> bool {
        !self.suspects.borrow().is_empty()
    }

    /// Brings the kernel's interest in line for every dirty fd: at most one `epoll_ctl`
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
                            e.forget_socket();
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

    /// Waits for events (`None`: forever). Returns how many are in the buffer.
    #[inline]
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let ms: libc::c_int = match timeout {
            None => -1,
            Some(d) if d.is_zero() => 0,
            Some(d) => {
                // Round up so a timer is never woken for early, capped to what int holds.
                let ms = d.as_nanos().div_ceil(1_000_000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
        self.iteration.set(self.iteration.get().wrapping_add(1));
        let mut events = self.events.borrow_mut();
        events.clear();
        let spare: &mut [MaybeUninit<libc::epoll_event>] = events.spare_capacity_mut();
        // SAFETY: the buffer has room for `spare.len()` events, which is what we pass as
        // maxevents; the kernel writes only initialised events into it.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                spare.as_mut_ptr().cast::<libc::epoll_event>(),
                spare.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        let n = n as usize;
        // SAFETY: epoll_wait initialised the first `n` events.
        unsafe { events.set_len(n) };
        Ok(n)
    }

    /// Turns the `n` events of the last wait into work: `fire` gets what each readable or
    /// writable direction asks for; the return value says whether the notifier fired.
    /// No borrow is held while `fire` runs, so it may run user code.
    #[inline]
    pub(crate) fn dispatch(&self, n: usize, mut fire: impl FnMut(Fire)) -> bool {
        let mut notified = false;
        for i in 0..n {
            let ev = self.events.borrow()[i];
            let (flags, key) = (ev.events, ev.u64);
            if key == NOTIFY_KEY {
                notified = true;
                continue;
            }
            let fd = key as RawFd;
            // As selectors.EpollSelector: anything but EPOLLIN also means "writable",
            // anything but EPOLLOUT also means "readable" (errors and hang-ups wake both).
            let readable = flags & !(libc::EPOLLOUT as u32) != 0;
            let writable = flags & !(libc::EPOLLIN as u32) != 0;
            let (r, w) = {
                let mut entries = self.entries.borrow_mut();
                let Some(e) = entries.get_mut(fd as usize) else {
                    continue;
                };
                e.suspect = false;
                e.read_drained = false;
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
        notified
    }

    /// Drops every registration (loop close) and returns what they held, to be dropped
    /// by the caller outside of any borrow.
    pub(crate) fn clear(&self) -> Vec<(RawFd, u8)> {
        let mut entries = std::mem::take(&mut *self.entries.borrow_mut());
        self.dirty.borrow_mut().clear();
        self.suspects.borrow_mut().clear();
        self.armed.set(0);
        let mut out = Vec::new();
        for (fd, e) in entries.iter_mut().enumerate() {
            if e.kernel != 0 {
                self.change(fd as RawFd, e.kernel, 0).ok();
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
