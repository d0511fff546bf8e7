//! The thread-safe side of a loop: the inbox, the notifier (self-pipe) and `LoopHandle`.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_task::Runnable;

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
    /// Set once the eventfd was written and not yet drained, so a burst writes it once.
    notified: AtomicBool,
    closed: AtomicBool,
    eventfd: OwnedFd,
    /// The suspect watchdog's view of this loop.
    pub(crate) watched: super::watchdog::Watched,
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
    pub(crate) fn new(loop_id: u64) -> io::Result<Remote> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Remote {
            loop_id,
            inbox: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            // SAFETY: `fd` was just returned by eventfd and nothing else owns it.
            eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
            watched: Default::default(),
        })
    }

    pub(crate) fn notifier_fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Wakes the loop's selector (at most one write until the loop drains it).
    pub(crate) fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd. It can only fail with
            // EAGAIN when the counter is saturated, and then the loop is awake anyway.
            unsafe {
                libc::write(
                    self.eventfd.as_raw_fd(),
                    (&raw const one).cast::<libc::c_void>(),
                    8,
                )
            };
        }
    }

    /// Called by the loop when the notifier fired. The eventfd is edge-triggered, so it is
    /// not read: clearing the flag lets the next remote wake write it again. Its counter
    /// grows by one per wake and would take centuries to saturate.
    pub(crate) fn drain_notifier(&self) {
        self.notified.store(false, Ordering::Release);
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
        self.notify();
        Ok(())
    }

    /// Whether the inbox may hold something.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes everything in the inbox.
    pub(crate) fn take(&self, into: &mut Vec<RemoteItem>) {
        self.pending.store(false, Ordering::Release);
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
    /// Schedules `f` to run on the loop's thread, in a later iteration, and wakes the loop
    /// (asyncio's `call_soon_threadsafe`). Callbacks from one thread run in the order they
    /// were sent.
    ///
    /// # Errors
    /// Fails with an error of kind `Other` if the loop is closed; `f` is then dropped.
    pub fn call_soon_threadsafe<F>(&self, f: F) -> io::Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
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
