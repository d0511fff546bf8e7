//! The portable backend, on the `polling` crate: kqueue on macOS and the BSDs, epoll on
//! Linux (with the cargo feature `poller`, so that CI runs the suite on both backends).
//!
//! Interest is level-triggered ([`PollMode::Level`]), as in the epoll backend: an fd keeps
//! being reported while it is ready, until its interest is changed or deleted. The notifier
//! is the poller's own [`Poller::notify`], which is thread-safe and sends one wake per wait
//! however often it is called; `polling` does not report it as an event, so
//! [`Polling::event`] never returns `None`, and the loop finds what other threads sent by
//! looking at its inbox after every wait, as it does anyway.
//!
//! `polling` keeps its own record of the fds on kqueue and answers `AlreadyExists` /
//! `NotFound` where epoll answers `EEXIST` / `ENOENT`: both are retried as the other call,
//! which is what makes a closed and reused fd number (`rearm.rs`) work here too.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

use super::{EVENTS_CAPACITY, READ, WRITE};

/// The poller and the events of the last wait.
pub(crate) struct Polling {
    poller: Arc<Poller>,
    events: RefCell<Events>,
    /// The last wait's events, copied out of `events` so that one can be read by index
    /// without holding a borrow while the loop acts on it.
    ready: RefCell<Vec<(RawFd, bool, bool)>>,
}

impl fmt::Debug for Polling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Polling")
            .field("poller", &self.poller)
            .finish_non_exhaustive()
    }
}

fn event(fd: RawFd, interest: u8) -> Event {
    Event::new(fd as usize, interest & READ != 0, interest & WRITE != 0)
}

/// Whether `e` says that the poller watches the fd already (`add`) or does not (`modify`).
fn is_either(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound
    )
}

impl Polling {
    /// A new poller; its notifier comes with it.
    pub(super) fn new() -> io::Result<(Polling, Notifier)> {
        let poller = Arc::new(Poller::new()?);
        let capacity = NonZeroUsize::new(EVENTS_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        let notifier = Notifier(poller.clone());
        Ok((
            Polling {
                poller,
                events: RefCell::new(Events::with_capacity(capacity)),
                ready: RefCell::new(Vec::with_capacity(EVENTS_CAPACITY)),
            },
            notifier,
        ))
    }

    fn add_only(&self, fd: RawFd, interest: u8) -> io::Result<()> {
        // SAFETY: `polling` requires the fd to be deleted before it is closed. The registry
        // deletes it when its reader and writer are gone, and `add_reader`'s contract asks
        // the user to remove them before closing; a `sock_*` future's interest may linger
        // past a close until the end of the iteration (`rearm.rs`), which epoll and kqueue
        // handle by forgetting the closed fd, as the kernel does for any closed fd.
        unsafe {
            self.poller
                .add_with_mode(fd, event(fd, interest), PollMode::Level)
        }
    }

    fn modify_only(&self, fd: RawFd, interest: u8) -> io::Result<()> {
        // SAFETY: `fd` is not -1 (the registry holds no negative fds). It may have been
        // closed, or closed and reused, meanwhile: `polling` only passes the number to
        // epoll_ctl / kevent, which then fail with ENOENT or EBADF, or act on the new file
        // that has the number, which is what the registry wants (`rearm.rs`).
        let fd_ref = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller
            .modify_with_mode(fd_ref, event(fd, interest), PollMode::Level)
    }

    /// Starts watching `fd` for `interest` (a modify if the poller watches it already).
    pub(super) fn add(&self, fd: RawFd, interest: u8) -> io::Result<()> {
        match self.add_only(fd, interest) {
            Err(e) if is_either(&e) => self.modify_only(fd, interest),
            r => r,
        }
    }

    /// Watches `fd` for `interest` instead (an add if the poller forgot it: closed and
    /// reused).
    pub(super) fn modify(&self, fd: RawFd, interest: u8) -> io::Result<()> {
        match self.modify_only(fd, interest) {
            Err(e) if is_either(&e) => self.add_only(fd, interest),
            r => r,
        }
    }

    /// Stops watching `fd`. It may already be closed, so a failure is ignored.
    pub(super) fn delete(&self, fd: RawFd) {
        // SAFETY: as in `modify_only`: a non-negative number that the poller only passes to
        // the kernel.
        let fd_ref = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = self.poller.delete(fd_ref);
    }

    /// Waits for events (`None`: forever). Returns how many there are.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let mut events = self.events.borrow_mut();
        events.clear();
        match self.poller.wait(&mut events, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut ready = self.ready.borrow_mut();
        ready.clear();
        ready.extend(
            events
                .iter()
                .map(|ev| (ev.key as RawFd, ev.readable, ev.writable)),
        );
        Ok(ready.len())
    }

    /// Event `i` of the last wait: the fd and whether it is readable and writable (`polling`
    /// reports errors and hang-ups in both directions). Never `None`: the notifier is not
    /// reported.
    #[inline]
    pub(super) fn event(&self, i: usize) -> Option<(RawFd, bool, bool)> {
        self.ready.borrow().get(i).copied()
    }

    /// Never called (the notifier is not reported); `polling` resets it in `wait`.
    #[inline]
    pub(super) fn notifier_fired(&self) {}
}

/// Wakes the loop's wait from any thread: the poller's own notification.
#[derive(Clone, Debug)]
pub(crate) struct Notifier(Arc<Poller>);

impl Notifier {
    /// Wakes the loop's wait (`polling` sends at most one wake per wait).
    pub(crate) fn notify(&self) {
        // A failure leaves nothing to do: the loop then wakes at its next event or timer.
        let _ = self.0.notify();
    }
}
