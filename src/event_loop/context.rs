//! The thread's running loop: what `get_running_loop()` answers and where local wakes go.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr;
use std::rc::{Rc, Weak};

use crate::task_info::TaskRunnable as Runnable;

use super::remote::{Remote, RemoteItem};
use super::{EventLoop, Inner, ready::Ready};

thread_local! {
    /// The loop running on this thread, or null.
    ///
    /// # Invariant
    /// Non-null only while an [`Enter`] guard lives; the guard is created by
    /// `run_forever`/`run_until_complete`, which hold an `Rc<Inner>` to the same loop for at
    /// least as long, so the pointee is alive whenever the pointer is non-null.
    static CURRENT: Cell<*const Inner> = const { Cell::new(ptr::null()) };

    /// Every loop created on this thread (running or not), by id: lets
    /// `call_soon_threadsafe` on a loop's own thread use the ready queue, as asyncio does.
    static LOOPS: RefCell<Vec<(u64, Weak<Inner>)>> = const { RefCell::new(Vec::new()) };
}

/// Records a new loop of this thread.
pub(crate) fn register_loop(id: u64, inner: Weak<Inner>) {
    LOOPS.with(|l| l.borrow_mut().push((id, inner)));
}

/// Forgets a loop of this thread (it is being dropped).
pub(crate) fn unregister_loop(id: u64) {
    // At thread exit the registry may be gone already.
    let _ = LOOPS.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            l.retain(|(i, _)| *i != id);
        }
    });
}

/// The loop with `id`, if it was created on this thread and is alive.
pub(crate) fn local_loop(id: u64) -> Option<Rc<Inner>> {
    LOOPS
        .try_with(|l| {
            let l = l.try_borrow().ok()?;
            l.iter().find(|(i, _)| *i == id)?.1.upgrade()
        })
        .ok()
        .flatten()
}

/// Marks a loop as this thread's running loop until dropped.
pub(crate) struct Enter {
    _not_send: PhantomData<*const ()>,
}

impl Enter {
    /// # Panics
    /// If this loop, or another, is already running on this thread.
    pub(crate) fn new(inner: &Rc<Inner>) -> Enter {
        CURRENT.with(|c| {
            let p = c.get();
            if p == Rc::as_ptr(inner) {
                panic!("this event loop is already running");
            }
            if !p.is_null() {
                panic!("cannot run the event loop while another loop is running");
            }
            c.set(Rc::as_ptr(inner));
        });
        Enter {
            _not_send: PhantomData,
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(ptr::null()));
    }
}

/// Runs `f` with the running loop, if any.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Inner) -> R) -> Option<R> {
    CURRENT.with(|c| {
        let p = c.get();
        if p.is_null() {
            None
        } else {
            // SAFETY: non-null means an `Enter` guard lives and the loop is alive (see the
            // invariant on `CURRENT`).
            Some(f(unsafe { &*p }))
        }
    })
}

/// The running loop as a new strong handle.
pub(crate) fn current_rc() -> Option<Rc<Inner>> {
    CURRENT.with(|c| {
        let p = c.get();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` came from `Rc::as_ptr` of a live `Rc<Inner>` (see the invariant on
        // `CURRENT`); taking one more strong count and rebuilding an `Rc` from it is the
        // documented use of `increment_strong_count` + `from_raw`.
        unsafe {
            Rc::increment_strong_count(p);
            Some(Rc::from_raw(p))
        }
    })
}

/// A task's schedule function: straight onto the ready queue when woken on the loop's own
/// thread while it runs, else through the inbox (which wakes the selector).
// Always inlined, and the thread-local read kept to a bare `Cell::get`: with the queue push
// inside `CURRENT.with`'s closure, LLVM sometimes outlined `LocalKey::with` (depending on how
// unrelated code is split into codegen units), +15 instructions per task wake-up.
#[inline(always)]
pub(crate) fn schedule(remote: &Remote, runnable: Runnable) {
    let p = CURRENT.with(Cell::get);
    if !p.is_null() {
        // SAFETY: see the invariant on `CURRENT`.
        let inner = unsafe { &*p };
        if inner.id == remote.loop_id {
            inner.ready.push(Ready::Runnable(runnable));
            return;
        }
    }
    if let Err(RemoteItem::Runnable(r)) = remote.push(RemoteItem::Runnable(runnable)) {
        // The loop is closed and we may be on another thread, where a local task must
        // not be dropped: leak it rather than drop it there.
        std::mem::forget(r);
    }
}

/// The loop running on this thread (asyncio's `get_running_loop()`).
///
/// # Panics
/// If no loop is running on this thread (asyncio raises `RuntimeError`); see
/// [`try_get_running_loop`] for the non-panicking form.
///
/// ```
/// tulip::run(async {
///     let lp = tulip::get_running_loop();
///     assert!(lp.is_running());
/// });
/// ```
pub fn get_running_loop() -> EventLoop {
    try_get_running_loop().expect("no running event loop")
}

/// The loop running on this thread, or `None`.
pub fn try_get_running_loop() -> Option<EventLoop> {
    current_rc().map(EventLoop::from_inner)
}
