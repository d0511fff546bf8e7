//! The thread-safe side of a loop: the inbox, the selector's notifier (the self-pipe) and
//! `LoopHandle`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::task_info::TaskRunnable as Runnable;

use crate::selector::Notifier;

/// Something another thread hands to the loop.
pub(crate) enum RemoteItem {
    Callback(Box<dyn FnOnce() + Send>),
    Runnable(Runnable),
    /// The main future of `run_until_complete` was woken.
    Main,
}

/// Shared between the loop and every `LoopHandle`, task waker and main-future waker.
pub(crate) struct Remote {
    pub(crate) loop_id: u64,
    inbox: Mutex<Vec<RemoteItem>>,
    /// Set when the inbox is not empty: the loop checks it once per iteration, lock-free.
    pending: AtomicBool,
    closed: AtomicBool,
    /// Set by tulip's signal action (in a signal handler) when a signal this loop handles
    /// arrived; the loop dispatches it when it drains the inbox (`unix/signal.rs`).
    signaled: AtomicBool,
    /// Wakes the loop's selector (the backend's self-pipe).
    notifier: Notifier,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("loop_id", &self.loop_id)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Remote {
    pub(crate) fn new(loop_id: u64, notifier: Notifier) -> Remote {
        Remote {
            loop_id,
            inbox: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            signaled: AtomicBool::new(false),
            notifier,
        }
    }

    /// Queues `item` for the loop and wakes it. Returns the item if the loop is closed.
    pub(crate) fn push(&self, item: RemoteItem) -> Result<(), RemoteItem> {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(Ordering::Acquire) {
                return Err(item);
            }
            inbox.push(item);
        }
        self.pending.store(true, Ordering::Release);
        self.notifier.notify();
        Ok(())
    }

    /// Whether the inbox may hold something.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// A signal this loop handles arrived: marks the inbox pending and wakes the loop.
    /// Async-signal-safe (atomics and the notifier's one write); no lock, no allocation.
    pub(crate) fn signal_arrived(&self) {
        self.signaled.store(true, Ordering::SeqCst);
        self.pending.store(true, Ordering::SeqCst);
        self.notifier.notify();
    }

    /// Whether a signal arrived since the last call (called after [`take`](Remote::take),
    /// whose `SeqCst` store of `pending` orders it against [`signal_arrived`]).
    pub(crate) fn take_signaled(&self) -> bool {
        self.signaled.swap(false, Ordering::SeqCst)
    }

    /// Takes everything in the inbox.
    pub(crate) fn take(&self, into: &mut Vec<RemoteItem>) {
        // SeqCst, not Release: a signal handler's `signal_arrived` must either be seen by the
        // `take_signaled` that follows or leave `pending` set for the next iteration.
        self.pending.store(false, Ordering::SeqCst);
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *inbox, into);
    }

    /// Refuses further items; returns what is still queued.
    pub(crate) fn close(&self) -> Vec<RemoteItem> {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        self.closed.store(true, Ordering::Release);
        std::mem::take(&mut *inbox)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The `Send + Sync` side of an [`EventLoop`](crate::EventLoop): the way for other threads
/// to get work onto the loop's thread.
///
/// ```
/// let lp = tulip::EventLoop::new()?;
/// let handle = lp.handle();
/// std::thread::spawn(move || {
///     handle.call_soon_threadsafe(|| tulip::get_running_loop().stop()).unwrap();
/// });
/// lp.run_forever();
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) remote: Arc<Remote>,
}

impl LoopHandle {
    /// Schedules `f` to run on the loop's thread and wakes the loop (asyncio's
    /// `call_soon_threadsafe`).
    ///
    /// Called on the loop's own thread (running or not), it is `call_soon`: `f` joins the
    /// same ready queue, in FIFO order with `call_soon` callbacks. From another thread, `f`
    /// runs in the loop's next iteration, after the callbacks sent before it (in order of
    /// arrival).
    ///
    /// # Errors
    /// Fails with an error of kind `Other` if the loop is closed; `f` is then dropped.
    pub fn call_soon_threadsafe<F>(&self, f: F) -> io::Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        if let Some(inner) = super::context::local_loop(self.remote.loop_id) {
            if inner.is_closed() {
                return Err(crate::event_loop::closed_error());
            }
            inner.ready.push(super::Ready::Remote(Box::new(f)));
            return Ok(());
        }
        self.remote
            .push(RemoteItem::Callback(Box::new(f)))
            .map_err(|_| crate::event_loop::closed_error())
    }

    /// Asks the loop to stop, from any thread (`call_soon_threadsafe(loop.stop)`).
    ///
    /// # Errors
    /// Fails if the loop is closed.
    pub fn stop(&self) -> io::Result<()> {
        self.call_soon_threadsafe(|| {
            if let Some(lp) = crate::event_loop::try_get_running_loop() {
                lp.stop();
            }
        })
    }

    /// Whether the loop was closed.
    pub fn is_closed(&self) -> bool {
        self.remote.is_closed()
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("loop_id", &self.remote.loop_id)
            .finish()
    }
}
