//! What a loop must let go of when it closes: its open transports and servers (asyncio's
//! `_transports` registry, and what Python's garbage collector does for the rest).
//!
//! A transport holds its reader callback, which holds the transport; its protocol usually
//! holds the transport too. Those reference cycles keep an unclosed transport — and its
//! socket — alive for ever unless something breaks them. The loop does, at close: every
//! resource still registered here is closed with [`Resource::close_with_loop`] (socket
//! closed, protocol dropped, no protocol callback), after a debug-mode warning naming it.
//!
//! The registry also answers which transport owns an fd, so that `add_reader` & co. can
//! refuse to take over a transport's fd (asyncio's `_ensure_fd_no_transport`).

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};

use slab::Slab;

/// A transport or server that the loop closes if it is still open when the loop closes.
pub(crate) trait Resource {
    /// How the debug warning and error messages name it (kind and addresses).
    fn describe(&self) -> String;
    /// Its state for `EventLoop::dump`, after [`describe`](Resource::describe): what the
    /// loop can learn without asking more of it (empty by default).
    fn dump_state(&self) -> String {
        String::new()
    }
    /// Closes it for good because its loop closes: the OS side is released and the protocol
    /// dropped; no protocol callback runs. Called with no loop borrow held.
    fn close_with_loop(&self);
}

/// A key in [`Resources`], or none.
pub(crate) const NO_KEY: usize = usize::MAX;

/// The registry (see the module docs). Borrowed only to insert, remove or look up, never
/// while a resource is closed.
#[derive(Default)]
pub(crate) struct Resources {
    slab: RefCell<Slab<Weak<dyn Resource>>>,
    /// Indexed by fd: the key of the resource that owns the fd, plus one (0: none).
    by_fd: RefCell<Vec<usize>>,
}

impl Resources {
    /// Registers `r`; returns its key.
    pub(crate) fn insert(&self, r: Weak<dyn Resource>) -> usize {
        self.slab.borrow_mut().insert(r)
    }

    /// Forgets the resource with `key` (and the fds it claimed through [`claim_fd`]).
    ///
    /// [`claim_fd`]: Resources::claim_fd
    pub(crate) fn remove(&self, key: usize, fds: &[RawFd]) {
        if key == NO_KEY {
            return;
        }
        let old = {
            let mut slab = self.slab.borrow_mut();
            slab.try_remove(key)
        };
        drop(old);
        let mut by_fd = self.by_fd.borrow_mut();
        for &fd in fds {
            if let Some(slot) = usize::try_from(fd).ok().and_then(|i| by_fd.get_mut(i)) {
                if *slot == key + 1 {
                    *slot = 0;
                }
            }
        }
    }

    /// Records that the resource with `key` owns `fd`.
    pub(crate) fn claim_fd(&self, fd: RawFd, key: usize) {
        let Ok(idx) = usize::try_from(fd) else { return };
        if key == NO_KEY {
            return;
        }
        let mut by_fd = self.by_fd.borrow_mut();
        if by_fd.len() <= idx {
            by_fd.resize(idx + 1, 0);
        }
        by_fd[idx] = key + 1;
    }

    /// The live resource that owns `fd`, if any.
    pub(crate) fn owner_of(&self, fd: RawFd) -> Option<Rc<dyn Resource>> {
        let idx = usize::try_from(fd).ok()?;
        let key = self.by_fd.borrow().get(idx).copied()?.checked_sub(1)?;
        self.slab.borrow().get(key)?.upgrade()
    }

    /// Every registered resource that is still alive, in registration order
    /// (`EventLoop::dump`); the registry keeps them.
    pub(crate) fn live(&self) -> Vec<Rc<dyn Resource>> {
        self.slab
            .borrow()
            .iter()
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    }

    /// Takes every registered resource that is still alive, leaving the registry empty: their
    /// keys are stale from now on, and [`Resource::close_with_loop`] forgets them.
    pub(crate) fn take_all(&self) -> Vec<Rc<dyn Resource>> {
        let slab = std::mem::take(&mut *self.slab.borrow_mut());
        self.by_fd.borrow_mut().clear();
        slab.into_iter().filter_map(|(_, w)| w.upgrade()).collect()
    }
}
