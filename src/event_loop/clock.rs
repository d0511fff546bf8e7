//! The loop's clock: the wall clock (`Instant::now()`), or virtual time for tests.
//!
//! Virtual time (asyncio has none built in; Twisted's `task.Clock`, tokio's paused clock)
//! starts at the moment the loop was made and moves only in jumps, each one to the deadline
//! of the loop's next timer. `run_once` decides when to jump (see
//! [`EventLoop::with_virtual_time`](crate::EventLoop::with_virtual_time)); this file keeps
//! the reading cheap: on the real clock, one `Cell` check before `Instant::now()`.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use super::{EventLoop, Inner};

/// What `EventLoop::time()` reads.
pub(crate) struct Clock {
    /// `None`: the wall clock. `Some(t)`: virtual time, now `t`.
    virtual_now: Cell<Option<Instant>>,
    /// Virtual time: since when (wall clock) the loop has been waiting for I/O with its
    /// next timer at `.0` and the clock reading `.1` — over several real waits, when I/O
    /// cuts them short.
    waiting: Cell<Option<(Instant, Instant, Instant)>>,
}

impl Clock {
    /// The wall clock.
    pub(crate) const fn real() -> Clock {
        Clock {
            virtual_now: Cell::new(None),
            waiting: Cell::new(None),
        }
    }

    /// When (wall clock) the loop began waiting for I/O ahead of its next timer, at `when`,
    /// with the clock reading what it reads now: now, if this is the first such wait.
    fn waiting_since(&self, when: Instant) -> Instant {
        let now = self.now();
        match self.waiting.get() {
            Some((w, v, since)) if w == when && v == now => since,
            _ => {
                let since = Instant::now();
                self.waiting.set(Some((when, now, since)));
                since
            }
        }
    }

    /// Switches to virtual time, starting at the wall clock's now.
    pub(crate) fn make_virtual(&self) {
        if self.virtual_now.get().is_none() {
            self.virtual_now.set(Some(Instant::now()));
        }
    }

    /// Whether this is virtual time.
    #[inline]
    pub(crate) fn is_virtual(&self) -> bool {
        self.virtual_now.get().is_some()
    }

    /// Now, on this clock.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self.virtual_now.get() {
            None => Instant::now(),
            Some(t) => t,
        }
    }

    /// Moves virtual time forward to `when` (never back); nothing on the wall clock.
    pub(crate) fn advance_to(&self, when: Instant) {
        if let Some(t) = self.virtual_now.get() {
            if when > t {
                self.virtual_now.set(Some(when));
            }
        }
    }

    /// Moves virtual time forward by `d` (saturating far in the future).
    pub(crate) fn advance_by(&self, d: Duration) {
        if let Some(t) = self.virtual_now.get() {
            self.virtual_now.set(Some(super::add_saturating(t, d)));
        }
    }
}

impl EventLoop {
    /// A new loop on **virtual time** (Twisted's `task.Clock`, tokio's paused clock), for
    /// tests: its clock ([`time`](EventLoop::time)) starts at the wall clock's now and then
    /// moves only in jumps, each one to the deadline of the loop's next timer. A test of a
    /// 30 s timeout runs in microseconds, and the same way every time.
    /// `#[tulip::test(virtual_time)]` runs a test on such a loop.
    ///
    /// # When the clock jumps
    /// When nothing is ready to run and the loop would wait:
    /// - for **timers alone** — no reader or writer registered (no transport reading, no
    ///   server listening, no `sock_*` operation waiting, no child process watched), no job
    ///   out on the default executor (`run_in_executor`, `to_thread`, host-name resolution)
    ///   — the clock jumps to the next timer at once, and the timer runs;
    /// - for **I/O too** — the loop waits for real, for as long as the next timer is away on
    ///   the virtual clock. If I/O (or a callback from another thread) arrives first, the clock
    ///   has not moved; if the wait ends with nothing, the clock jumps to the timer. So real
    ///   sockets work: a timer never fires ahead of I/O that is on its way, the clock reads
    ///   timer deadlines only, and a `timeout` around a read that never completes still
    ///   expires — after the real time it names, since the loop cannot know that no data will
    ///   come (counted from the first wait for that timer, also while other I/O keeps
    ///   arriving). (tokio's paused clock jumps as soon as a zero-timeout poll finds no I/O, which
    ///   can make a timeout fire before a reply that was already on its way; tulip waits.)
    ///
    /// A thread that will call [`call_soon_threadsafe`](crate::LoopHandle::call_soon_threadsafe)
    /// or wake a task is invisible to the loop: with only timers pending, time may jump before
    /// it does. Use [`run_in_executor`](crate::run_in_executor) for such work (the loop counts
    /// its jobs), or keep a socket open to it.
    ///
    /// Callbacks, tasks and system calls take no virtual time; the clock never goes back.
    /// [`sleep`](crate::sleep), [`timeout`](crate::timeout), [`interval`](crate::interval),
    /// [`call_later`](EventLoop::call_later) and hyper's timer (`tulip::hyper::TulipTimer`)
    /// all read this clock while the loop runs; a deadline computed while no loop runs on the
    /// thread (a `sleep` made before `run_until_complete`) is taken from the wall clock.
    ///
    /// # Errors
    /// As [`new`](EventLoop::new).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lp = tulip::EventLoop::with_virtual_time()?;
    /// let wall = std::time::Instant::now();
    /// let t0 = lp.time();
    /// let r = lp.run_until_complete(async {
    ///     // A future that never completes, under a 30 s timeout: expires at once.
    ///     tulip::timeout(Duration::from_secs(30), std::future::pending::<()>()).await
    /// });
    /// assert!(r.is_err());
    /// assert_eq!(lp.time() - t0, Duration::from_secs(30));
    /// assert!(wall.elapsed() < Duration::from_secs(5));
    /// lp.close();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with_virtual_time() -> io::Result<EventLoop> {
        let lp = EventLoop::new()?;
        lp.inner.clock.make_virtual();
        Ok(lp)
    }

    /// Whether this loop runs on virtual time ([`with_virtual_time`](EventLoop::with_virtual_time)).
    pub fn is_virtual_time(&self) -> bool {
        self.inner.clock.is_virtual()
    }

    /// Moves virtual time forward by `d` at once (Twisted's `Clock.advance`, tokio's
    /// `time::advance`): the timers that come due run in the loop's next iteration, in
    /// deadline order.
    ///
    /// # Panics
    /// If the loop is not on virtual time.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    ///
    /// let lp = tulip::EventLoop::with_virtual_time()?;
    /// let fired = Rc::new(Cell::new(false));
    /// let f = fired.clone();
    /// lp.call_later(Duration::from_secs(60), move || f.set(true));
    /// lp.advance(Duration::from_secs(59));
    /// lp.run_until_complete(tulip::yield_now());
    /// assert!(!fired.get());
    /// lp.advance(Duration::from_secs(1));
    /// lp.run_until_complete(tulip::yield_now());
    /// assert!(fired.get());
    /// lp.close();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn advance(&self, d: Duration) {
        assert!(
            self.inner.clock.is_virtual(),
            "EventLoop::advance: the loop is not on virtual time (EventLoop::with_virtual_time)"
        );
        self.inner.clock.advance_by(d);
    }
}

/// A real wait that ends in a jump to `when` if nothing arrives by `until` (wall clock).
pub(crate) struct Jump {
    when: Instant,
    until: Instant,
}

impl Inner {
    /// Virtual time: how long to wait in this iteration, given the next timer's deadline
    /// `when` and the wait `d` until it (zero when callbacks are ready). Jumps at once when
    /// only timers are pending; returns a [`Jump`] when the loop must wait for real for I/O
    /// first.
    #[cold]
    pub(crate) fn virtual_wait(&self, when: Instant, d: Duration) -> (Duration, Option<Jump>) {
        if d.is_zero() || self.remote.has_pending() {
            return (Duration::ZERO, None);
        }
        if self.selector.is_idle() && !self.waits_on_other_threads() {
            self.clock.advance_to(when);
            return (Duration::ZERO, None);
        }
        // The real time this timer has been waited for counts, also across waits that I/O
        // cut short: I/O that keeps coming (or an fd that stays ready) must not hold the
        // timer off for ever, when on the wall clock it would have fired.
        let left = d.saturating_sub(self.clock.waiting_since(when).elapsed());
        if left.is_zero() {
            self.clock.advance_to(when);
            return (Duration::ZERO, None);
        }
        let until = Instant::now().checked_add(left);
        match until {
            Some(until) => (left, Some(Jump { when, until })),
            None => (left, None), // a wait too long to express: no jump after it
        }
    }

    /// Whether work on other threads will post to this loop: a job on the default executor,
    /// a child that a watcher thread waits for (where there is no pidfd).
    fn waits_on_other_threads(&self) -> bool {
        if self.executor.outstanding() != 0 {
            return true;
        }
        #[cfg(unix)]
        if crate::unix::child::thread_watched(self.id) {
            return true;
        }
        false
    }

    /// After the real wait of a [`Jump`]: jump if it brought nothing (`n` events, nothing
    /// made ready, nothing from other threads) and lasted its time (a wait cut short by a
    /// signal, `EINTR`, with nothing to show is waited again, not jumped over).
    #[cold]
    pub(crate) fn virtual_wait_done(&self, jump: Jump, n: usize) {
        if n == 0
            && self.ready.is_empty()
            && !self.remote.has_pending()
            && Instant::now() >= jump.until
        {
            self.clock.advance_to(jump.when);
        }
    }
}

/// Now on the running loop's clock, or the wall clock when no loop runs on this thread.
///
/// What every reader of the time inside the crate uses (sleeps, timeouts, intervals,
/// hyper's timer), so that under virtual time they all see the loop's time.
#[inline]
pub(crate) fn now() -> Instant {
    super::with_current(|inner| inner.clock.now()).unwrap_or_else(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_moves_only_forward_and_only_when_told() {
        let c = Clock::real();
        assert!(!c.is_virtual());
        c.advance_to(Instant::now() + Duration::from_secs(5));
        assert!(
            c.now() < Instant::now() + Duration::from_secs(1),
            "real clock moved"
        );
        c.make_virtual();
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.now(), t0);
        c.advance_to(t0 + Duration::from_secs(30));
        assert_eq!(c.now(), t0 + Duration::from_secs(30));
        c.advance_to(t0);
        assert_eq!(c.now(), t0 + Duration::from_secs(30));
        c.advance_by(Duration::from_millis(1));
        assert_eq!(c.now(), t0 + Duration::from_millis(30_001));
        c.advance_by(Duration::MAX);
        assert!(c.now() > t0);
    }
}
