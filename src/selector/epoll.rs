//! The Linux backend: epoll, level-triggered, called directly, and an eventfd notifier.
//!
//! This is the one place where tulip talks to epoll, so the `unsafe` for it lives here.
//! We call epoll directly rather than through `polling`: `polling` 3 re-arms its notifier
//! (`read` + `epoll_ctl`) and, for any timeout, a timerfd (`timerfd_settime` + `epoll_ctl`)
//! on every wait — two to four system calls per loop iteration that a loop which waits
//! once per message cannot afford. Here a wait is one `epoll_wait`, and an event costs no
//! more than reading it out of the buffer.
//!
//! The notifier is an eventfd registered edge-triggered: every write to it is one event, and
//! it never has to be read (one system call less per remote wake); a flag lets a burst of
//! wakes write it once until the loop has seen the event.
//!
//! # Invariant
//! `Epoll::epfd` is an epoll instance this type owns; `NotifyFd::fd` an eventfd it owns,
//! registered in that instance under [`NOTIFY_KEY`] for as long as both are open.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{EVENTS_CAPACITY, READ, WRITE};
use crate::sys::retry;

/// The epoll key of the notifier.
const NOTIFY_KEY: u64 = u64::MAX;

/// The epoll instance and the buffer of the last wait's events.
pub(crate) struct Epoll {
    epfd: OwnedFd,
    events: RefCell<Vec<libc::epoll_event>>,
    notifier: Notifier,
}

impl fmt::Debug for Epoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Epoll")
            .field("epfd", &self.epfd.as_raw_fd())
            .finish_non_exhaustive()
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

impl Epoll {
    /// A new epoll instance with its notifier registered.
    pub(super) fn new() -> io::Result<(Epoll, Notifier)> {
        // SAFETY: plain system call; the result is checked.
        let fd = retry(|| unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain system call; the result is checked.
        let efd = retry(|| unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        let notifier = Notifier(Arc::new(NotifyFd {
            // SAFETY: `efd` was just returned by eventfd and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(efd) },
            notified: AtomicBool::new(false),
        }));
        let ep = Epoll {
            epfd,
            events: RefCell::new(Vec::with_capacity(EVENTS_CAPACITY)),
            notifier: notifier.clone(),
        };
        ep.ctl_flags(
            libc::EPOLL_CTL_ADD,
            efd,
            libc::EPOLLIN as u32 | libc::EPOLLET as u32,
            NOTIFY_KEY,
        )?;
        Ok((ep, notifier))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: u8) -> io::Result<()> {
        self.ctl_flags(op, fd, epoll_flags(interest), fd as u64)
    }

    fn ctl_flags(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: key };
        // SAFETY: `epfd` is our epoll fd; `ev` is a valid epoll_event that the kernel only
        // reads. An fd that is not open makes the call fail with EBADF, which we report.
        retry(|| unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Runs `first`, and `second` if `first` fails with `EEXIST` or `ENOENT` (the kernel
    /// watches the fd already, or forgot it when it was closed).
    fn ctl_either(
        &self,
        first: libc::c_int,
        second: libc::c_int,
        fd: RawFd,
        interest: u8,
    ) -> io::Result<()> {
        match self.ctl(first, fd, interest) {
            Err(e)
                if e.raw_os_error() == Some(libc::EEXIST)
                    || e.raw_os_error() == Some(libc::ENOENT) =>
            {
                self.ctl(second, fd, interest)
            }
            r => r,
        }
    }

    /// Starts watching `fd` for `interest` (a modify if epoll watches it already).
    pub(super) fn add(&self, fd: RawFd, interest: u8) -> io::Result<()> {
        self.ctl_either(libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD, fd, interest)
    }

    /// Watches `fd` for `interest` instead (an add if epoll forgot it: closed and reused).
    pub(super) fn modify(&self, fd: RawFd, interest: u8) -> io::Result<()> {
        self.ctl_either(libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD, fd, interest)
    }

    /// Stops watching `fd`. It may already be closed (epoll forgets closed fds by itself),
    /// so a failure is ignored.
    pub(super) fn delete(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0);
    }

    /// Waits for events (`None`: forever). Returns how many are in the buffer.
    #[inline]
    pub(super) fn wait(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let ms: libc::c_int = match timeout {
            None => -1,
            Some(d) if d.is_zero() => 0,
            Some(d) => {
                // Round up so a timer is never woken for early, capped to what int holds.
                let ms = d.as_nanos().div_ceil(1_000_000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
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

    /// Event `i` of the last wait: the fd and whether it is readable and writable, or `None`
    /// for the notifier.
    #[inline]
    pub(super) fn event(&self, i: usize) -> Option<(RawFd, bool, bool)> {
        let ev = self.events.borrow()[i];
        let (flags, key) = (ev.events, ev.u64);
        if key == NOTIFY_KEY {
            return None;
        }
        // As selectors.EpollSelector: anything but EPOLLIN also means "writable", anything
        // but EPOLLOUT also means "readable" (errors and hang-ups wake both).
        let readable = flags & !(libc::EPOLLOUT as u32) != 0;
        let writable = flags & !(libc::EPOLLIN as u32) != 0;
        Some((key as RawFd, readable, writable))
    }

    /// The loop saw the notifier's event. The eventfd is edge-triggered, so it is not read:
    /// clearing the flag lets the next remote wake write it again. Its counter grows by one
    /// per wake and would take centuries to saturate.
    #[inline]
    pub(super) fn notifier_fired(&self) {
        self.notifier.0.notified.store(false, Ordering::Release);
    }
}

struct NotifyFd {
    fd: OwnedFd,
    /// Set once the eventfd was written and the loop has not seen the event yet, so a
    /// burst writes it once.
    notified: AtomicBool,
}

/// Wakes the loop's wait from any thread: a write to the eventfd.
#[derive(Clone)]
pub(crate) struct Notifier(Arc<NotifyFd>);

impl Notifier {
    /// Wakes the loop's wait (at most one write until the loop has seen it).
    pub(crate) fn notify(&self) {
        if !self.0.notified.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd. It can only fail with
            // EAGAIN when the counter is saturated, and then the loop is awake anyway.
            unsafe {
                libc::write(
                    self.0.fd.as_raw_fd(),
                    (&raw const one).cast::<libc::c_void>(),
                    8,
                )
            };
        }
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("eventfd", &self.0.fd.as_raw_fd())
            .finish()
    }
}
