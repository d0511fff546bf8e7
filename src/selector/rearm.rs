//! Keeping a finished `sock_*` operation's interest armed for the next one, safely; and the
//! read-drained hint.
//!
//! Done literally, every `sock_*` operation that has to wait would cost a system call to
//! add its interest and another to remove it. Instead a finished operation's interest is
//! dropped only at the end of the iteration (`Selector::sync`), so the next operation on the
//! same socket finds it still armed and re-arms it for free.
//!
//! # The reused-fd hazard
//! Between two operations the user may close the socket and open another that gets the same
//! fd number; the kernel forgets a closed fd by itself, so our record that the number is
//! armed would then be wrong and the new socket's waiter would never be woken. So a waiter
//! that re-arms a lingering interest without a system call makes the fd a *suspect*: an
//! event for it clears the suspicion (the kernel evidently watches it). A suspect still
//! without an event after [`VERIFY_ITERATIONS`] iterations of a busy loop, or when the loop
//! has been blocked with it for at least [`VERIFY_AFTER`] (the watchdog thread of
//! `watchdog.rs` wakes the loop then; its tick backs off to `MAX_TICK` there, so it may take
//! up to twice that), is re-armed with a real modify (which the backend turns into an add if
//! the kernel had forgotten the fd). No clock is read and no timed wait is needed for this.
//! A busy connection pays no system call for it (the loop only keeps the watchdog ticking);
//! one idle for longer than that delay pays one wake-up and one system call per message; a
//! reused fd costs a short delay, never a hang.
//!
//! The loop sees none of this: [`Selector::select`] calls [`Selector::before_wait`] and
//! [`Selector::after_wait`] around its wait.
//!
//! # Drained stream sockets
//! A `recv` on a stream socket that returns less than was asked for has emptied the receive
//! queue. The selector notes it ([`Selector::note_read_drained`]) while the kernel watches
//! the fd for reading, and forgets it at the next event for the fd or when the interest is
//! dropped; meanwhile the next `sock_recv`/`sock_recv_into` waits for readiness at once
//! rather than first making a `recv` that can only fail with `EAGAIN` (tokio clears its
//! readiness on a short read in the same way). A wrong note costs no more than one loop
//! iteration: the interest is level-triggered, so data that is there is reported at once.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use super::watchdog::Watched;
use super::{Notifier, READ, Selector};

/// How long a loop may stay blocked with unconfirmed suspects before the watchdog has them
/// verified, at the least (see the module docs).
pub(super) const VERIFY_AFTER: Duration = Duration::from_millis(2);

/// How many iterations of a loop that never times out a suspect may last before it is
/// re-armed with a system call.
const VERIFY_ITERATIONS: u64 = 256;

/// What the `sock_*` futures learnt about the socket behind one fd.
#[derive(Debug, Default)]
pub(super) struct FdState {
    /// Address of the socket object last used through this fd by a `sock_*` operation (0:
    /// none): what `stream` and `read_drained` are about. It is no blocking-mode cache —
    /// every operation asks the kernel (`sock.rs`), as a new socket may reuse both the fd
    /// number and the address — only the key of a hint that costs an iteration when wrong.
    verified: usize,
    /// Whether that socket is a stream socket, once asked (`None`: not asked yet).
    stream: Option<bool>,
    /// A `recv` on that stream socket came back short, so its receive queue was empty, and
    /// no event for the fd has come since (module docs).
    read_drained: bool,
    /// Re-armed without a system call and not yet confirmed by an event (module docs).
    suspect: bool,
    /// The iteration in which the current suspicion began.
    suspect_since: u64,
    /// Whether the fd is in `Rearm::suspects`.
    listed: bool,
}

impl FdState {
    /// An event came for the fd: the kernel watches it, and the queue may have data.
    #[inline]
    pub(super) fn event(&mut self) {
        self.suspect = false;
        self.read_drained = false;
    }

    /// The kernel's interest became `k`.
    #[inline]
    pub(super) fn kernel_changed(&mut self, k: u8) {
        if k & READ == 0 {
            // No event would ever clear the hint.
            self.read_drained = false;
        }
    }

    /// Forgets what was learnt about the socket behind the fd (its number may be reused).
    pub(super) fn forget_socket(&mut self) {
        self.verified = 0;
        self.stream = None;
        self.read_drained = false;
    }
}

/// The suspects of one selector, and its side of the watchdog.
#[derive(Debug)]
pub(super) struct Rearm {
    /// Suspect fds (see the module docs).
    suspects: RefCell<Vec<RawFd>>,
    /// Counts the waits, to age suspects.
    iteration: Cell<u64>,
    watched: Arc<Watched>,
}

impl Rearm {
    pub(super) fn new(notifier: Notifier) -> Rearm {
        Rearm {
            suspects: RefCell::new(Vec::new()),
            iteration: Cell::new(0),
            watched: Arc::new(Watched::new(notifier)),
        }
    }

    /// Whether there is no suspect.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.suspects.borrow().is_empty()
    }

    /// How many waits so far.
    #[inline]
    pub(super) fn waits(&self) -> u64 {
        self.iteration.get()
    }

    /// One more wait.
    #[inline]
    pub(super) fn count_wait(&self) {
        self.iteration.set(self.iteration.get().wrapping_add(1));
    }

    /// A waiter found the interest of `fd` still armed and took it over without a system
    /// call: the fd may have been closed and reused meanwhile, so it becomes a suspect.
    #[inline]
    pub(super) fn armed_for_free(&self, fd: RawFd, st: &mut FdState) {
        if st.suspect {
            return;
        }
        st.suspect = true;
        st.suspect_since = self.iteration.get();
        if !st.listed {
            st.listed = true;
            self.suspects.borrow_mut().push(fd);
        }
    }

    /// The loop closes: no suspect is left, and the watchdog forgets the loop.
    pub(super) fn clear(&self) {
        self.suspects.borrow_mut().clear();
        self.watched.close();
    }
}

impl Selector {
    /// Whether the socket object at `addr` is the one last seen on `fd`.
    pub(crate) fn is_verified(&self, fd: RawFd, addr: usize) -> bool {
        let idx = fd as usize;
        let entries = self.entries.borrow();
        entries.get(idx).is_some_and(|e| e.rearm.verified == addr)
    }

    /// Remembers that the socket object at `addr` is the one on `fd` now (forgetting what
    /// was learnt about the one before).
    pub(crate) fn set_verified(&self, fd: RawFd, addr: usize) {
        self.with_entry(fd, |e| {
            e.rearm.forget_socket();
            e.rearm.verified = addr;
        });
    }

    /// Notes that a `recv` on `fd` came back short (see the module docs), if the socket is a
    /// stream socket (`is_stream` asks, once per socket) and the kernel watches the fd for
    /// reading, so that an event will clear the note when data arrives.
    pub(crate) fn note_read_drained(&self, fd: RawFd, is_stream: impl FnOnce() -> bool) {
        let mut entries = self.entries.borrow_mut();
        let Some(e) = entries.get_mut(fd as usize) else {
            return;
        };
        if e.kernel & READ == 0 || e.rearm.verified == 0 {
            return;
        }
        if *e.rearm.stream.get_or_insert_with(is_stream) {
            e.rearm.read_drained = true;
        }
    }

    /// Whether the last `recv` on `fd` found its queue empty and nothing arrived since.
    #[inline]
    pub(crate) fn is_read_drained(&self, fd: RawFd) -> bool {
        let entries = self.entries.borrow();
        entries
            .get(fd as usize)
            .is_some_and(|e| e.rearm.read_drained)
    }

    /// Before a wait (`blocks`: with a timeout other than zero): re-arms the suspects that
    /// are due, and tells the watchdog if the loop is about to block with suspects left.
    /// Returns whether it did, so that [`after_wait`](Selector::after_wait) must follow.
    ///
    /// Always inlined: it runs once per loop iteration and almost always finds no suspect
    /// (the rest is out of line in `before_wait_suspects`).
    #[inline(always)]
    pub(super) fn before_wait(&self, blocks: bool) -> bool {
        if self.rearm.is_empty() {
            return false;
        }
        self.before_wait_suspects(blocks)
    }

    #[cold]
    #[inline(never)]
    fn before_wait_suspects(&self, blocks: bool) -> bool {
        let timed_out = self.rearm.watched.take_verify();
        if self.check_suspects(timed_out) && blocks {
            self.rearm.watched.blocking();
            return true;
        }
        false
    }

    /// The wait that [`before_wait`](Selector::before_wait) announced is over.
    #[inline]
    pub(super) fn after_wait(&self) {
        self.rearm.watched.woke();
    }

    /// Re-arms, with a real system call, all suspects (`timed_out`: the watchdog saw the loop
    /// blocked with them) or those that went through [`VERIFY_ITERATIONS`] iterations, and
    /// forgets those an event cleared. Returns whether suspects remain.
    fn check_suspects(&self, timed_out: bool) -> bool {
        let mut suspects = self.rearm.suspects.borrow_mut();
        let mut entries = self.entries.borrow_mut();
        let now = self.rearm.iteration.get();
        let mut to_wake: Vec<Waker> = Vec::new();
        let mut i = 0;
        while i < suspects.len() {
            let fd = suspects[i];
            let Some(e) = entries.get_mut(fd as usize) else {
                suspects.swap_remove(i);
                continue;
            };
            if e.rearm.suspect && e.kernel != 0 {
                if !timed_out && now.wrapping_sub(e.rearm.suspect_since) < VERIFY_ITERATIONS {
                    i += 1;
                    continue;
                }
                let want = e.wanted();
                if want != 0 {
                    // A modify, or an add if the kernel forgot the fd (closed and reused).
                    match self.change(fd, e.kernel, want) {
                        Ok(()) => e.set_kernel(&self.armed, want),
                        Err(err) => e.fail(&self.armed, err, &mut to_wake),
                    }
                }
            }
            e.rearm.suspect = false;
            e.rearm.listed = false;
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
}
