//! `Handle` and `TimerHandle`: a scheduled callback that can be cancelled until it runs.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

/// The callback was cancelled.
pub(crate) const CANCELLED: u8 = 1;
/// The callback ran (or, for a waker, fired).
pub(crate) const DONE: u8 = 2;
/// The callback sits in the timer heap.
pub(crate) const IN_HEAP: u8 = 4;

/// A scheduled one-shot callback, type-erased. Implementations keep all their state in
/// `Cell`s, so running one never holds a borrow across user code.
pub(crate) trait Callback {
    /// Runs the callback unless it was cancelled; a second call does nothing.
    fn run(&self);
    /// The state bits (`CANCELLED`, `DONE`, `IN_HEAP`).
    fn state(&self) -> &Cell<u8>;
    /// Drops whatever the callback holds (called on cancel).
    fn clear(&self);
    /// What the callback is, for slow-callback reports and `EventLoop::dump`: the closure's
    /// type name (`std::any::type_name`), which stays known after the closure ran.
    fn type_name(&self) -> &'static str;
}

/// Cancels `cb`; returns whether it was still pending (neither run nor cancelled before).
pub(crate) fn cancel(cb: &dyn Callback) -> bool {
    let s = cb.state().get();
    if s & (CANCELLED | DONE) != 0 {
        return false;
    }
    cb.state().set(s | CANCELLED);
    cb.clear();
    true
}

/// A closure scheduled once: the common `Callback`.
pub(crate) struct FnCallback<F> {
    state: Cell<u8>,
    f: Cell<Option<F>>,
}

impl<F: FnOnce() + 'static> FnCallback<F> {
    pub(crate) fn new_rc(f: F) -> Rc<dyn Callback> {
        Rc::new(FnCallback {
            state: Cell::new(0),
            f: Cell::new(Some(f)),
        })
    }
}

impl<F: FnOnce()> Callback for FnCallback<F> {
    fn run(&self) {
        let s = self.state.get();
        if s & (CANCELLED | DONE) != 0 {
            return;
        }
        self.state.set(s | DONE);
        if let Some(f) = self.f.take() {
            f();
        }
    }
    fn state(&self) -> &Cell<u8> {
        &self.state
    }
    fn clear(&self) {
        drop(self.f.take());
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// A timer that wakes a task instead of calling a closure (what `sleep` schedules).
pub(crate) struct WakerCallback {
    state: Cell<u8>,
    waker: RefCell<Option<Waker>>,
}

impl WakerCallback {
    pub(crate) fn new(waker: Waker) -> Rc<WakerCallback> {
        Rc::new(WakerCallback {
            state: Cell::new(0),
            waker: RefCell::new(Some(waker)),
        })
    }

    /// Whether the timer fired.
    pub(crate) fn fired(&self) -> bool {
        self.state.get() & DONE != 0
    }

    /// Replaces the waker to wake when the timer fires.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }
}

impl Callback for WakerCallback {
    fn run(&self) {
        let s = self.state.get();
        if s & (CANCELLED | DONE) != 0 {
            return;
        }
        self.state.set(s | DONE);
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
    fn state(&self) -> &Cell<u8> {
        &self.state
    }
    fn clear(&self) {
        let waker = self.waker.borrow_mut().take();
        drop(waker);
    }
    fn type_name(&self) -> &'static str {
        "a timer that wakes a task (sleep, timeout)"
    }
}

/// A callback scheduled with [`EventLoop::call_soon`](crate::EventLoop::call_soon)
/// (asyncio's `Handle`).
///
/// Cancelling it before it runs means it never runs; cancelling it afterwards does nothing.
/// Dropping a `Handle` does not cancel the callback.
///
/// ```
/// let lp = tulip::EventLoop::new()?;
/// let h = lp.call_soon(|| panic!("never runs"));
/// h.cancel();
/// assert!(h.cancelled());
/// lp.run_until_complete(tulip::yield_now());
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) cb: Rc<dyn Callback>,
}

impl Handle {
    /// Cancels the callback if it has not run yet; harmless afterwards.
    pub fn cancel(&self) {
        cancel(&*self.cb);
    }

    /// Whether [`cancel`](Handle::cancel) was called before the callback ran.
    pub fn cancelled(&self) -> bool {
        self.cb.state().get() & CANCELLED != 0
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("callback", &self.cb.type_name())
            .field("cancelled", &self.cancelled())
            .field("done", &(self.cb.state().get() & DONE != 0))
            .finish()
    }
}

/// A callback scheduled with [`EventLoop::call_later`](crate::EventLoop::call_later) or
/// [`EventLoop::call_at`](crate::EventLoop::call_at) (asyncio's `TimerHandle`).
///
/// Cancelled timers are removed from the loop's heap lazily, and the heap is compacted when
/// more than half of it is cancelled, as asyncio does.
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) cb: Rc<dyn Callback>,
    pub(crate) when: Instant,
    pub(crate) cancelled_in_heap: Rc<Cell<usize>>,
}

impl TimerHandle {
    /// Cancels the callback if it has not run yet; harmless afterwards.
    pub fn cancel(&self) {
        let in_heap = self.cb.state().get() & IN_HEAP != 0;
        if cancel(&*self.cb) && in_heap {
            self.cancelled_in_heap.set(self.cancelled_in_heap.get() + 1);
        }
    }

    /// Whether [`cancel`](TimerHandle::cancel) was called before the callback ran.
    pub fn cancelled(&self) -> bool {
        self.cb.state().get() & CANCELLED != 0
    }

    /// The time at which the callback is scheduled to run.
    pub fn when(&self) -> Instant {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("callback", &self.cb.type_name())
            .field("when", &self.when)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}
