//! Signal handlers on the loop: `add_signal_handler` / `remove_signal_handler`, the
//! [`Signal`] stream, and the Ctrl-C handling of [`run`](crate::run).
//!
//! # How a signal reaches a callback
//! A loop that handles signal `S` has one action registered for `S` through
//! `signal-hook-registry`, which multiplexes the process's one handler per signal between
//! every library that uses it. The action runs inside the signal handler and does only
//! async-signal-safe things: it sets `S`'s bit in the loop's pending set, marks the loop's
//! inbox pending and wakes the loop's selector through its notifier (one eventfd write, or a
//! kqueue trigger). The loop, in its next iteration, takes the pending set and schedules
//! the callback for each signal that arrived as an ordinary callback (`call_soon`), and wakes
//! the [`Signal`] streams. Signals that arrive again before the loop looked are coalesced
//! into one callback, as asyncio's wakeup fd may.
//!
//! Any loop on any thread may handle signals, and several loops may handle the same one:
//! each has its own action, so every one of them runs its callback.
//!
//! # Restoring the disposition
//! When the last of tulip's handlers for a signal goes (removed, or its loop closed), tulip
//! restores the disposition the signal had before tulip's first handler for it — so after
//! `remove_signal_handler(SIGTERM)`, a `SIGTERM` kills the process again. signal-hook-registry
//! never uninstalls its handler, so tulip records the old `sigaction` at its first
//! registration and puts it back itself, under these rules:
//! - if signal-hook-registry's handler was already installed when tulip first registered the
//!   signal (another library registered it through signal-hook-registry before), tulip never
//!   touches the disposition: that library's actions stay, and signal-hook-registry chains to
//!   the original handler as it always does;
//! - if someone replaced the handler with `sigaction` after tulip's registration, tulip leaves
//!   their handler in place;
//! - when tulip registers the signal again after a restore, it puts signal-hook-registry's
//!   handler back (signal-hook-registry installs it only once per process).
//!
//! The one case tulip cannot see: a library that registers the same signal through
//! signal-hook-registry *after* tulip did and still wants it when tulip's last handler goes
//! (signal-hook-registry has no way to ask who else is registered). Its actions stop running
//! when tulip restores the old disposition, and start again when tulip registers the signal
//! again. Keep a tulip handler for that signal for as long as such a library needs it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::sys::{SIGINT, c_int};
use signal_hook_registry::SigId;

use crate::event_loop::{EventLoop, FnCallback, Inner, Ready, Remote};
use crate::sys::signal as sys;

// ---- the process side: who uses which signal, and what to restore ---------------------------

/// tulip's use of one signal in the whole process.
struct ProcessSignal {
    sig: c_int,
    /// How many loops hold an action for it.
    users: usize,
    /// What was there before tulip's first registration, if tulip may put it back (`None`:
    /// signal-hook-registry's handler was there already; never restore).
    before: Option<sys::Disposition>,
    /// signal-hook-registry's handler as installed, to put back after a restore.
    installed: sys::Disposition,
    /// Whether `before` is the disposition now (tulip restored it).
    restored: bool,
}

static PROCESS: Mutex<Vec<ProcessSignal>> = Mutex::new(Vec::new());

/// Registers `action` for `sig` for one loop; installs the handler if tulip had none.
fn acquire(sig: c_int, action: impl Fn() + Send + Sync + 'static) -> io::Result<SigId> {
    let mut process = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = process.iter_mut().find(|p| p.sig == sig) {
        let id = sys::register(sig, action)?;
        if p.users == 0 && p.restored {
            // signal-hook-registry installs its handler once per process: put it back.
            if let Err(e) = sys::set_disposition(sig, &p.installed) {
                sys::unregister(id);
                return Err(e);
            }
            p.restored = false;
        }
        p.users += 1;
        return Ok(id);
    }
    let before = sys::disposition(sig)?;
    let id = sys::register(sig, action)?;
    let installed = sys::disposition(sig)?;
    let ours = installed.handler() != before.handler();
    process.push(ProcessSignal {
        sig,
        users: 1,
        before: ours.then_some(before),
        installed,
        restored: false,
    });
    Ok(id)
}

/// Unregisters one loop's action for `sig`; restores the old disposition with the last.
fn release(sig: c_int, id: SigId) {
    sys::unregister(id);
    let mut process = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = process.iter_mut().find(|p| p.sig == sig) else {
        return;
    };
    p.users = p.users.saturating_sub(1);
    if p.users > 0 {
        return;
    }
    let Some(before) = p.before else { return };
    // Only if signal-hook-registry's handler is still the one installed.
    if sys::disposition(sig).is_ok_and(|now| now.handler() == p.installed.handler())
        && sys::set_disposition(sig, &before).is_ok()
    {
        p.restored = true;
    }
}

// ---- the loop side ----------------------------------------------------------------------------

/// Ctrl-C handling of `run` is off on this loop.
const INTERRUPT_OFF: u8 = 0;
/// `run`'s SIGINT handler is installed and no SIGINT came yet.
const INTERRUPT_ARMED: u8 = 1;
/// One SIGINT came: the next one interrupts at once, in the signal handler.
const INTERRUPT_FIRED: u8 = 2;

/// What the signal handler sees of a loop (shared with the actions, so `Send + Sync`).
struct Shared {
    /// One bit per signal number that arrived and the loop has not dispatched yet.
    pending: [AtomicU64; 2],
    remote: Arc<Remote>,
    /// `run`'s Ctrl-C state (`INTERRUPT_*`).
    interrupt: AtomicU8,
}

impl Shared {
    /// Inside the signal handler: note `sig` and wake the loop. Async-signal-safe.
    fn raise(&self, sig: c_int) {
        let (word, bit) = bit_of(sig);
        self.pending[word].fetch_or(bit, Ordering::SeqCst);
        if sig == SIGINT {
            match self.interrupt.load(Ordering::SeqCst) {
                INTERRUPT_ARMED => self.interrupt.store(INTERRUPT_FIRED, Ordering::SeqCst),
                INTERRUPT_FIRED => sys::interrupt_now(SIGINT),
                _ => {}
            }
        }
        self.remote.signal_arrived();
    }
}

fn bit_of(sig: c_int) -> (usize, u64) {
    let n = sig as usize;
    (n / 64, 1u64 << (n % 64))
}

/// One signal a loop handles.
struct Slot {
    sig: c_int,
    id: SigId,
    /// The `add_signal_handler` callback, if any.
    callback: Option<Rc<dyn Fn()>>,
    /// The live [`Signal`] streams of this loop for `sig`.
    streams: Vec<Weak<StreamState>>,
}

impl Slot {
    fn unused(&self) -> bool {
        self.callback.is_none() && self.streams.iter().all(|s| s.strong_count() == 0)
    }
}

/// A loop's signal handlers (a field of the loop). Borrowed only to look up or change a slot,
/// never while a callback, a waker or a user's `Drop` runs.
pub(crate) struct LoopSignals {
    shared: Arc<Shared>,
    slots: RefCell<Vec<Slot>>,
    closed: Cell<bool>,
    /// Whether the SIGINT callback is `run`'s Ctrl-C handler (which a SIGINT stream replaces).
    run_interrupt: Cell<bool>,
}

impl LoopSignals {
    pub(crate) fn new(remote: Arc<Remote>) -> LoopSignals {
        LoopSignals {
            shared: Arc::new(Shared {
                pending: [AtomicU64::new(0), AtomicU64::new(0)],
                remote,
                interrupt: AtomicU8::new(INTERRUPT_OFF),
            }),
            slots: RefCell::new(Vec::new()),
            closed: Cell::new(false),
            run_interrupt: Cell::new(false),
        }
    }

    /// Makes sure this loop has an action for `sig`, then runs `f` on its slot.
    fn with_slot<R>(&self, sig: c_int, f: impl FnOnce(&mut Slot) -> R) -> io::Result<R> {
        if self.closed.get() {
            return Err(crate::event_loop::closed_error());
        }
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.iter_mut().find(|s| s.sig == sig) {
            return Ok(f(slot));
        }
        let shared = self.shared.clone();
        let id = acquire(sig, move || shared.raise(sig))?;
        slots.push(Slot {
            sig,
            id,
            callback: None,
            streams: Vec::new(),
        });
        let slot = slots.last_mut().expect("just pushed");
        Ok(f(slot))
    }

    /// Sets (or with `None` removes) the callback for `sig`; returns the one it replaces.
    /// `interrupt` marks `run`'s Ctrl-C handler.
    fn set_callback(
        &self,
        sig: c_int,
        cb: Option<Rc<dyn Fn()>>,
        interrupt: bool,
    ) -> io::Result<Option<Rc<dyn Fn()>>> {
        let old = match cb {
            Some(cb) => self.with_slot(sig, |slot| slot.callback.replace(cb))?,
            None => {
                let mut slots = self.slots.borrow_mut();
                match slots.iter_mut().find(|s| s.sig == sig) {
                    Some(slot) => slot.callback.take(),
                    None => None,
                }
            }
        };
        if sig == SIGINT {
            self.run_interrupt.set(interrupt);
            let state = if interrupt {
                INTERRUPT_ARMED
            } else {
                INTERRUPT_OFF
            };
            self.shared.interrupt.store(state, Ordering::SeqCst);
        }
        self.release_unused(sig);
        Ok(old)
    }

    /// Drops this loop's action for `sig` if nothing here uses it any more.
    fn release_unused(&self, sig: c_int) {
        let slot = {
            let mut slots = self.slots.borrow_mut();
            match slots.iter().position(|s| s.sig == sig && s.unused()) {
                Some(i) => slots.swap_remove(i),
                None => return,
            }
        };
        release(slot.sig, slot.id);
        // An arrival not dispatched yet is not for a later handler of the same signal.
        let (word, bit) = bit_of(sig);
        self.shared.pending[word].fetch_and(!bit, Ordering::SeqCst);
    }

    /// Called by the loop (from `drain_inbox`) when a signal arrived: schedules the callbacks
    /// and wakes the streams of the signals that are pending.
    pub(crate) fn dispatch(&self, inner: &Inner) {
        for (w, word) in self.shared.pending.iter().enumerate() {
            let mut bits = word.swap(0, Ordering::SeqCst);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                self.fire(inner, (w * 64) as c_int + b as c_int);
            }
        }
    }

    fn fire(&self, inner: &Inner, sig: c_int) {
        let (cb, streams) = {
            let slots = self.slots.borrow();
            match slots.iter().find(|s| s.sig == sig) {
                // A signal that was removed in between (asyncio: "some race condition").
                None => return,
                Some(slot) => (slot.callback.clone(), slot.streams.clone()),
            }
        };
        if let Some(cb) = cb {
            inner
                .ready
                .push(Ready::Callback(FnCallback::new_rc(move || cb())));
        }
        for s in streams {
            if let Some(s) = s.upgrade() {
                s.fired.set(true);
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// Adds a stream for `sig` (a SIGINT stream replaces `run`'s Ctrl-C handler).
    fn add_stream(&self, sig: c_int, state: &Rc<StreamState>) -> io::Result<()> {
        let replaces_run = sig == SIGINT && self.run_interrupt.replace(false);
        let old = self.with_slot(sig, |slot| {
            slot.streams.retain(|s| s.strong_count() > 0);
            slot.streams.push(Rc::downgrade(state));
            if replaces_run {
                slot.callback.take()
            } else {
                None
            }
        })?;
        if replaces_run {
            self.shared.interrupt.store(INTERRUPT_OFF, Ordering::SeqCst);
        }
        drop(old);
        Ok(())
    }

    /// The loop closes: every handler is removed (dispositions restored as the last one of
    /// each signal goes), callbacks dropped, streams ended.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.shared.interrupt.store(INTERRUPT_OFF, Ordering::SeqCst);
        let slots = std::mem::take(&mut *self.slots.borrow_mut());
        for slot in &slots {
            release(slot.sig, slot.id);
        }
        for slot in slots {
            for s in &slot.streams {
                if let Some(s) = s.upgrade() {
                    s.ended.set(true);
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                }
            }
            // The callbacks (user closures) are dropped here, with no borrow held.
            drop(slot);
        }
    }
}

impl fmt::Debug for LoopSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sigs: Vec<c_int> = self.slots.borrow().iter().map(|s| s.sig).collect();
        f.debug_struct("LoopSignals")
            .field("signals", &sigs)
            .finish_non_exhaustive()
    }
}

impl EventLoop {
    /// Calls `callback` on this loop whenever signal `sig` arrives (asyncio's
    /// `add_signal_handler`); replaces the handler this loop had for `sig`.
    ///
    /// The callback runs as an ordinary callback in the loop's next iteration — never inside
    /// the signal handler, which only wakes the loop — so it may do anything a callback does.
    /// Signals that arrive again before it ran are coalesced into one call. A panic in it goes
    /// to the exception handler. System calls interrupted by the signal are restarted
    /// (`SA_RESTART`, asyncio's `siginterrupt(sig, False)`).
    ///
    /// Unlike asyncio's, it works on any thread's loop, and several loops may handle the same
    /// signal: each runs its own callback. When the last handler of the process for `sig` is
    /// removed ([`remove_signal_handler`](EventLoop::remove_signal_handler), or the loop is
    /// closed), the disposition `sig` had before is restored (details and the rules that keep
    /// other libraries' handlers working are in the crate's README, "Signals").
    ///
    /// # Errors
    /// `InvalidInput` for a signal number the system does not know, for `SIGKILL` and
    /// `SIGSTOP` (they cannot be caught) and for the fault signals `SIGILL`, `SIGFPE` and
    /// `SIGSEGV`; otherwise what `sigaction` reports.
    ///
    /// # Panics
    /// If the loop is closed.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let lp = tulip::EventLoop::new()?;
    /// let caught = Rc::new(Cell::new(0));
    /// let c = caught.clone();
    /// let l = lp.clone();
    /// lp.add_signal_handler(tulip::unix::SIGUSR1, move || {
    ///     c.set(c.get() + 1);
    ///     l.stop();
    /// })?;
    /// let me = std::process::id().to_string();
    /// std::process::Command::new("kill").args(["-USR1", &me]).status()?;
    /// lp.run_forever();
    /// assert_eq!(caught.get(), 1);
    /// assert!(lp.remove_signal_handler(tulip::unix::SIGUSR1)?);
    /// lp.close();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn add_signal_handler(&self, sig: c_int, callback: impl Fn() + 'static) -> io::Result<()> {
        sys::validate(sig)?;
        self.inner.check_closed();
        let old = self
            .inner
            .signals
            .set_callback(sig, Some(Rc::new(callback)), false)?;
        drop(old);
        Ok(())
    }

    /// Removes this loop's handler for `sig`; returns whether there was one (asyncio's
    /// `remove_signal_handler`). With the process's last handler for `sig`, the disposition
    /// it had before is restored (see [`add_signal_handler`](EventLoop::add_signal_handler)).
    ///
    /// # Errors
    /// `InvalidInput` for a signal number the system does not know. `SIGKILL` is a valid
    /// number: removing its (impossible) handler returns `Ok(false)`, as in asyncio. So does
    /// removing `SIGINT` while only [`run`](crate::run)'s Ctrl-C handling has it.
    pub fn remove_signal_handler(&self, sig: c_int) -> io::Result<bool> {
        sys::check_number(sig)?;
        if !sys::catchable(sig) || self.inner.is_closed() {
            return Ok(false);
        }
        if sig == SIGINT && self.inner.signals.run_interrupt.get() {
            // `run`'s Ctrl-C handler is not one the program added (asyncio's is not a loop
            // handler either): there is nothing to remove, and it stays.
            return Ok(false);
        }
        let old = self.inner.signals.set_callback(sig, None, false)?;
        let had = old.is_some();
        drop(old);
        Ok(had)
    }
}

// ---- the stream form --------------------------------------------------------------------------

/// What a [`Signal`] shares with its loop.
struct StreamState {
    fired: Cell<bool>,
    ended: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// A stream of the arrivals of one signal on the running loop, from [`signal`]: yields `()`
/// each time the signal arrived since the last item (arrivals in between are coalesced), and
/// ends (`None`) when its loop closes.
///
/// It is a `futures_core::Stream`, so with `StreamExt` (futures-util, futures-lite):
/// `while let Some(()) = sigterm.next().await`; without, [`recv`](Signal::recv) does the same.
/// The signal is handled while the `Signal` lives; dropping it removes the handler (and, if it
/// was the process's last one for the signal, restores the old disposition).
#[must_use = "the signal is handled only while the Signal lives"]
pub struct Signal {
    sig: c_int,
    state: Rc<StreamState>,
    lp: Weak<Inner>,
}

/// Handles signal `sig` on the running loop as a stream (for `async` code; the callback form
/// is [`EventLoop::add_signal_handler`]). Several streams, on one loop or many, may watch the
/// same signal; each sees every arrival.
///
/// ```no_run
/// #[tulip::main]
/// async fn main() -> std::io::Result<()> {
///     let mut sigterm = tulip::signal(tulip::unix::SIGTERM)?;
///     while let Some(()) = sigterm.recv().await {
///         println!("SIGTERM: reloading");
///     }
///     Ok(())
/// }
/// ```
///
/// # Errors
/// As [`EventLoop::add_signal_handler`].
///
/// # Panics
/// If no loop is running on this thread.
pub fn signal(sig: c_int) -> io::Result<Signal> {
    sys::validate(sig)?;
    let inner = crate::event_loop::current_rc()
        .expect("tulip::signal called outside of a running event loop");
    let state = Rc::new(StreamState {
        fired: Cell::new(false),
        ended: Cell::new(false),
        waker: Cell::new(None),
    });
    inner.signals.add_stream(sig, &state)?;
    Ok(Signal {
        sig,
        state,
        lp: Rc::downgrade(&inner),
    })
}

impl Signal {
    /// The signal number.
    pub fn signum(&self) -> c_int {
        self.sig
    }

    /// Waits for the next arrival: `Some(())`, or `None` once the loop closed (the stream's
    /// `next`, without an extension trait).
    pub fn recv(&mut self) -> SignalRecv<'_> {
        SignalRecv { signal: self }
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.state.fired.replace(false) {
            return Poll::Ready(Some(()));
        }
        if self.state.ended.get() {
            return Poll::Ready(None);
        }
        let w = match self.state.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.state.waker.set(Some(w));
        Poll::Pending
    }
}

impl futures_core::Stream for Signal {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.poll_recv(cx)
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        if let Some(inner) = self.lp.upgrade() {
            // Our Rc goes with `self`; prune it now so the slot can be released.
            {
                let mut slots = inner.signals.slots.borrow_mut();
                if let Some(slot) = slots.iter_mut().find(|s| s.sig == self.sig) {
                    slot.streams
                        .retain(|s| !std::ptr::eq(s.as_ptr(), Rc::as_ptr(&self.state)));
                }
            }
            inner.signals.release_unused(self.sig);
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("signal", &sys::name(self.sig))
            .finish_non_exhaustive()
    }
}

/// The future of [`Signal::recv`].
///
/// # Cancel safety
/// Cancel-safe: an arrival it did not report stays for the next `recv`.
#[must_use = "futures do nothing unless awaited"]
pub struct SignalRecv<'a> {
    signal: &'a mut Signal,
}

impl Future for SignalRecv<'_> {
    type Output = Option<()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.signal.poll_recv(cx)
    }
}

impl fmt::Debug for SignalRecv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalRecv")
            .field("signal", &self.signal)
            .finish()
    }
}

// ---- Ctrl-C in `run` --------------------------------------------------------------------------

/// `run`'s view of a Ctrl-C: set by the SIGINT callback, which also wakes the main future.
pub(crate) struct Interrupt {
    interrupted: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

/// Installs `run`'s SIGINT handler on `lp` — only on the main thread, and only if SIGINT
/// has its default disposition (the program installed no handler of its own; asyncio's rule).
pub(crate) fn install_interrupt(lp: &EventLoop) -> Option<Rc<Interrupt>> {
    if !sys::is_main_thread() || !sys::disposition(SIGINT).is_ok_and(|d| d.is_default()) {
        return None;
    }
    let state = Rc::new(Interrupt {
        interrupted: Cell::new(false),
        waker: Cell::new(None),
    });
    let s = state.clone();
    let cb: Rc<dyn Fn()> = Rc::new(move || {
        s.interrupted.set(true);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    });
    lp.inner.signals.set_callback(SIGINT, Some(cb), true).ok()?;
    Some(state)
}

/// The main future of `run` with Ctrl-C handling: `None` once interrupted (the inner future
/// is dropped right then, on the loop, so its `Drop`s run as asyncio's cancellation would).
pub(crate) struct Interruptible<F> {
    fut: Option<Pin<Box<F>>>,
    interrupt: Rc<Interrupt>,
}

impl<F: Future> Interruptible<F> {
    pub(crate) fn new(fut: F, interrupt: Rc<Interrupt>) -> Self {
        Interruptible {
            fut: Some(Box::pin(fut)),
            interrupt,
        }
    }
}

impl<F: Future> Future for Interruptible<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.interrupt.interrupted.get() {
            self.fut = None;
            return Poll::Ready(None);
        }
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(None);
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => {
                let w = match self.interrupt.waker.take() {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                self.interrupt.waker.set(Some(w));
                Poll::Pending
            }
        }
    }
}

/// After an interrupted `run` closed its loop: the process dies of SIGINT, as an unhandled
/// Ctrl-C ends it (status 130 in a shell).
pub(crate) fn die_of_sigint() -> ! {
    sys::die_of(SIGINT)
}
