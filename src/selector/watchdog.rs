//! The suspect watchdog: one thread per process that wakes a loop which has been blocked
//! in its wait for [`VERIFY_AFTER`] while it had unconfirmed suspects (see `rearm.rs`), so
//! that the loop can re-arm them with a real system call.
//!
//! The loop could bound its own wait instead, but a finite `epoll_wait` timeout arms a
//! kernel timer, which in a VM costs an exit per wait — measured at ~7 µs of CPU per wait
//! on these machines, more than the rest of an echo round trip. Here a blocked loop costs
//! two atomic stores; the watchdog thread ticks only while some loop is watched.
//!
//! The tick starts at [`VERIFY_AFTER`] and doubles, up to [`MAX_TICK`], for as long as no
//! watched loop is found stuck. A loop that serves one busy connection with `sock_*`
//! futures blocks with a fresh suspect on every message (each operation re-arms the fd for
//! free), so the watchdog runs for as long as the connection does, and a 2 ms timer there
//! is costly beyond its own CPU: on these VMs (250 Hz, tickless idle) a timer due within
//! the next scheduler tick keeps the idle tick running, so the loop's CPU halts at once
//! when the loop blocks, and every wake-up of the loop then takes the slow IPI path
//! (~19 µs instead of ~12 µs). Measured on the 1 KiB ping-pong over 1 connection: 0.80×
//! tokio's requests/s with a steady 2 ms tick, 1.00× without a watchdog or with a 20 ms tick.
//! So a stuck loop is found after between `VERIFY_AFTER` and twice `MAX_TICK` of blocking:
//! a reused fd still costs a short delay, never a hang.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::Notifier;
use super::rearm::VERIFY_AFTER;

struct Watchdog {
    loops: Mutex<Vec<Weak<Watched>>>,
    wake: Condvar,
}

static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();

/// The watchdog sleeps on its condvar (no loop was blocked with suspects for a while); a loop
/// about to block with suspects wakes it.
static PARKED: AtomicBool = AtomicBool::new(false);

/// The longest tick (see the module docs).
const MAX_TICK: Duration = Duration::from_millis(32);

/// How long no loop may be seen blocked with suspects before the watchdog parks.
const IDLE_PARK: Duration = Duration::from_secs(1);

/// A loop's side of the watchdog, shared with the watchdog thread.
#[derive(Debug)]
pub(super) struct Watched {
    /// Wakes the loop.
    notifier: Notifier,
    /// The loop was closed: the watchdog forgets it.
    closed: AtomicBool,
    registered: AtomicBool,
    /// `epoch << 1 | 1` while blocked with suspects, `epoch << 1` otherwise.
    state: AtomicU64,
    /// What the watchdog saw at its last tick.
    seen: AtomicU64,
    /// The watchdog asks the loop to verify its suspects.
    verify: AtomicBool,
}

impl Watched {
    pub(super) fn new(notifier: Notifier) -> Watched {
        Watched {
            notifier,
            closed: AtomicBool::new(false),
            registered: AtomicBool::new(false),
            state: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            verify: AtomicBool::new(false),
        }
    }

    /// The loop is about to block with suspects.
    #[inline]
    pub(super) fn blocking(self: &Arc<Self>) {
        if !self.registered.load(Ordering::Relaxed) {
            register(self);
        }
        let epoch = (self.state.load(Ordering::Relaxed) >> 1) + 1;
        self.state.store(epoch << 1 | 1, Ordering::SeqCst);
        // Either we see the watchdog parked and wake it, or it sees us blocked before it
        // parks (both sides use SeqCst).
        if PARKED.load(Ordering::SeqCst) {
            unpark();
        }
    }

    /// The loop woke up.
    #[inline]
    pub(super) fn woke(&self) {
        let v = self.state.load(Ordering::Relaxed);
        self.state.store(v & !1, Ordering::Release);
    }

    /// Whether the watchdog asked for a verification (and clears the request).
    #[inline]
    pub(super) fn take_verify(&self) -> bool {
        self.verify.load(Ordering::Relaxed) && self.verify.swap(false, Ordering::AcqRel)
    }

    /// The loop closed.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn is_blocked(&self) -> bool {
        self.state.load(Ordering::SeqCst) & 1 == 1
    }

    /// One watchdog tick: blocked with the same epoch as at the last tick means blocked for
    /// at least one tick — ask for a verification and wake the loop.
    fn tick(&self) -> bool {
        let v = self.state.load(Ordering::Acquire);
        let before = self.seen.swap(v, Ordering::AcqRel);
        v & 1 == 1 && before == v
    }
}

fn register(watched: &Arc<Watched>) {
    let wd = WATCHDOG.get_or_init(|| {
        std::thread::Builder::new()
            .name("tulip-watchdog".into())
            .spawn(run)
            .expect("cannot start the tulip watchdog thread");
        Watchdog {
            loops: Mutex::new(Vec::new()),
            wake: Condvar::new(),
        }
    });
    watched.registered.store(true, Ordering::Relaxed);
    let mut loops = wd.loops.lock().unwrap_or_else(|e| e.into_inner());
    loops.push(Arc::downgrade(watched));
    wd.wake.notify_one();
}

fn unpark() {
    if let Some(wd) = WATCHDOG.get() {
        let _g = wd.loops.lock().unwrap_or_else(|e| e.into_inner());
        PARKED.store(false, Ordering::SeqCst);
        wd.wake.notify_one();
    }
}

fn run() {
    crate::sys::like_main_thread();
    let wd = loop {
        if let Some(wd) = WATCHDOG.get() {
            break wd;
        }
        std::thread::yield_now();
    };
    let mut loops = wd.loops.lock().unwrap_or_else(|e| e.into_inner());
    let mut tick = VERIFY_AFTER;
    let mut idle = Duration::ZERO;
    loop {
        while loops.is_empty() || PARKED.load(Ordering::SeqCst) {
            loops = wd.wake.wait(loops).unwrap_or_else(|e| e.into_inner());
            tick = VERIFY_AFTER;
        }
        drop(loops);
        std::thread::sleep(tick);
        loops = wd.loops.lock().unwrap_or_else(|e| e.into_inner());
        let mut any_blocked = false;
        let mut stuck = false;
        loops.retain(|w| match w.upgrade() {
            Some(w) if !w.closed.load(Ordering::Acquire) => {
                any_blocked |= w.is_blocked();
                if w.tick() {
                    stuck = true;
                    w.verify.store(true, Ordering::Release);
                    w.notifier.notify();
                }
                true
            }
            _ => false,
        });
        idle = if any_blocked {
            Duration::ZERO
        } else {
            idle + tick
        };
        tick = if stuck {
            VERIFY_AFTER
        } else {
            (tick * 2).min(MAX_TICK)
        };
        if idle >= IDLE_PARK {
            idle = Duration::ZERO;
            PARKED.store(true, Ordering::SeqCst);
            if loops
                .iter()
                .filter_map(Weak::upgrade)
                .any(|w| w.is_blocked())
            {
                PARKED.store(false, Ordering::SeqCst);
            }
        }
    }
}
