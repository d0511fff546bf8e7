//! hyper 1.x on tulip (cargo feature **`hyper`**): the glue `hyper::rt` asks a runtime for.
//!
//! - [`Stream`] implements `hyper::rt::Read` and `hyper::rt::Write`, so a connection from
//!   [`start_server`](crate::start_server) or [`open_connection`](crate::open_connection)
//!   (joined with [`StreamReader::unsplit`](crate::StreamReader::unsplit)) goes straight to
//!   `hyper::server::conn::http1::Builder::serve_connection` or
//!   `hyper::client::conn::http1::handshake`. Reads copy once, from the stream's buffer into
//!   hyper's; writes go to the transport, which sends at once when nothing is buffered.
//! - [`TulipExecutor`] implements `hyper::rt::Executor` on [`spawn`](crate::spawn): detached
//!   tasks on the running loop (what HTTP/2 and `hyper-util` ask for; HTTP/1 needs none).
//! - [`TulipTimer`] implements `hyper::rt::Timer` on the loop's timer heap, for hyper's
//!   timeouts (`header_read_timeout`, keep-alive timeouts).
//!
//! hyper's `Sleep` trait requires `Send + Sync`, and [`time::Sleep`](crate::time::Sleep) is
//! neither (it holds the loop's `Rc` timer). [`TulipSleep`] is `Send + Sync` for real: it
//! holds a deadline and a key into a thread-local table of the thread's sleeps, which one
//! loop timer per loop serves (see [`TulipSleep`]). No `unsafe`.
//!
//! The timer is optional: without `.timer(TulipTimer)` hyper runs with its timeouts off.
//!
//! Enable it with `tulip = { …, features = ["hyper"] }` and hyper's own `http1` / `server` /
//! `client` features.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//!
//! async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from("Hello, World!"))))
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! tulip::run(async {
//!     let server = tulip::start_server(
//!         |r: tulip::StreamReader, w: tulip::StreamWriter| async move {
//!             let conn = hyper::server::conn::http1::Builder::new()
//!                 .timer(tulip::hyper::TulipTimer)
//!                 .serve_connection(r.unsplit(w), hyper::service::service_fn(hello));
//!             if let Err(e) = conn.await {
//!                 eprintln!("connection: {e}");
//!             }
//!         },
//!         "127.0.0.1",
//!         0,
//!         Default::default(),
//!     )
//!     .await?;
//!     let port = server.local_addr().expect("a TCP server").port();
//!
//!     let (r, w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(r.unsplit(w))
//!         .await
//!         .map_err(std::io::Error::other)?;
//!     tulip::spawn(conn).detach();
//!     let req = Request::get("/")
//!         .header("host", "localhost")
//!         .body(Empty::<Bytes>::new())
//!         .map_err(std::io::Error::other)?;
//!     let resp = sender.send_request(req).await.map_err(std::io::Error::other)?;
//!     assert_eq!(resp.status(), 200);
//!     let body = resp.into_body().collect().await.map_err(std::io::Error::other)?;
//!     assert_eq!(body.to_bytes(), "Hello, World!");
//!     Ok(())
//! })
//! # }
//! ```

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use ::hyper::rt::{Executor, ReadBufCursor, Sleep, Timer};
use futures_io::{AsyncBufRead, AsyncWrite};

use slab::Slab;

use crate::event_loop::{TimerHandle, with_current};
use crate::streams::Stream;

impl ::hyper::rt::Read for Stream {
    /// Copies what the stream's buffer holds (waiting for data when it is empty) into hyper's
    /// buffer: one copy, no intermediate buffer. Nothing copied means EOF.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let reader = Pin::new(self.reader());
        let data = ready!(reader.poll_fill_buf(cx))?;
        let n = data.len().min(buf.remaining());
        buf.put_slice(&data[..n]);
        Pin::new(self.reader()).consume(n);
        Poll::Ready(Ok(()))
    }
}

impl ::hyper::rt::Write for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.writer()).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.writer()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.writer()).poll_close(cx)
    }
}

/// `hyper::rt::Executor` on [`spawn`](crate::spawn): each future becomes a detached task on
/// the loop running on this thread.
///
/// # Panics
/// `execute` panics when no loop is running on the calling thread (as `spawn` does).
#[derive(Debug, Clone, Copy, Default)]
pub struct TulipExecutor;

impl<F> Executor<F> for TulipExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        crate::spawn(fut).detach();
    }
}

/// `hyper::rt::Timer` on the running loop's timers; its sleeps are [`TulipSleep`]s, and
/// its [`now`](Timer::now) is the loop's clock ([`EventLoop::time`](crate::EventLoop::time),
/// so hyper's timeouts follow virtual time too).
///
/// ```
/// let mut builder = hyper::server::conn::http1::Builder::new();
/// builder
///     .timer(tulip::hyper::TulipTimer)
///     .header_read_timeout(std::time::Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TulipTimer;

impl Timer for TulipTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(TulipSleep::new(crate::event_loop::deadline_after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(TulipSleep::new(deadline))
    }

    fn now(&self) -> Instant {
        crate::event_loop::now()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<TulipSleep>() {
            Some(s) => s.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A registered sleep, in this thread's [`SLEEPS`].
#[derive(Debug)]
struct Entry {
    /// Tells this sleep from a later one that got the same slab key.
    id: u64,
    loop_id: u64,
    deadline: Instant,
    waker: Option<Waker>,
}

/// The loop timer that scans the table for one loop.
struct Armed {
    loop_id: u64,
    when: Instant,
    handle: TimerHandle,
}

/// This thread's registered sleeps and, per loop, the one loop timer that serves them.
#[derive(Default)]
struct Table {
    entries: Slab<Entry>,
    armed: Vec<Armed>,
}

thread_local! {
    static SLEEPS: RefCell<Table> = RefCell::new(Table::default());
}

/// Ids are never reused, so an id cannot name another sleep's entry, on any thread.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Table {
    /// Whether `loop_id`'s timer must be (re)armed for a sleep ending at `deadline`.
    fn needs_arming(&self, loop_id: u64, deadline: Instant) -> bool {
        self.armed
            .iter()
            .find(|a| a.loop_id == loop_id)
            .is_none_or(|a| deadline < a.when)
    }
}

/// Arms the running loop's timer for `loop_id`'s sleeps at `when`, replacing an armed one.
fn arm(loop_id: u64, when: Instant) {
    let Some(handle) = with_current(|inner| {
        (inner.id == loop_id).then(|| {
            inner.call_at(
                when,
                crate::event_loop::FnCallback::new_rc(move || fire(loop_id)),
            )
        })
    })
    .flatten() else {
        return;
    };
    let (old, stale) = SLEEPS.with(|t| {
        let mut t = t.borrow_mut();
        // Loops of this thread that were closed since left their timer behind, and the
        // entries of sleeps that were not dropped on this thread (moved to another one, or
        // kept past the loop): nothing will ever fire them.
        let mut dead = Vec::new();
        t.armed.retain(|a| {
            let live = a.loop_id == loop_id || crate::event_loop::local_loop(a.loop_id).is_some();
            if !live {
                dead.push(a.loop_id);
            }
            live
        });
        let mut stale = Vec::new();
        if !dead.is_empty() {
            t.entries.retain(|_, e| {
                let keep = !dead.contains(&e.loop_id);
                if !keep {
                    stale.push(e.waker.take());
                }
                keep
            });
        }
        let old = t.armed.iter().position(|a| a.loop_id == loop_id);
        let old = old.map(|i| t.armed.swap_remove(i));
        t.armed.push(Armed {
            loop_id,
            when,
            handle,
        });
        (old, stale)
    });
    if let Some(old) = old {
        old.handle.cancel();
    }
    // Wakers are user code: dropped with no borrow held.
    drop(stale);
}

/// `loop_id`'s timer: wakes the sleeps that are due, and arms the timer for the next one.
fn fire(loop_id: u64) {
    let now = crate::event_loop::now();
    let (wakers, next) = SLEEPS.with(|t| {
        let mut t = t.borrow_mut();
        t.armed.retain(|a| a.loop_id != loop_id);
        let mut wakers = Vec::new();
        let mut next: Option<Instant> = None;
        // A sleep that is due leaves the table (its `poll` finds no entry and its deadline
        // passed: ready), so that one dropped on another thread leaves nothing behind.
        t.entries.retain(|_, e| {
            if e.loop_id != loop_id {
                return true;
            }
            if e.deadline <= now {
                wakers.extend(e.waker.take());
                return false;
            }
            next = Some(next.map_or(e.deadline, |n| n.min(e.deadline)));
            true
        });
        (wakers, next)
    });
    if let Some(next) = next {
        arm(loop_id, next);
    }
    // Wakers are user code: called with no borrow held.
    for w in wakers {
        w.wake();
    }
}

/// The `Send + Sync` sleep of [`TulipTimer`].
///
/// It holds only its deadline and a key: what a registered sleep shares with the loop (its
/// waker, whether it fired) lives on the loop's thread, in a thread-local table of the
/// thread's sleeps, and **one loop timer per loop** serves the whole table, armed at the
/// earliest deadline. A sleep registers (when first polled) in O(1) and arms that timer only
/// if it ends before the timer; dropping it removes its entry in O(1). That is what hyper
/// asks on every keep-alive request (its header-read timeout is a new 30 s sleep, dropped
/// when the head arrives), so the common case costs no allocation but hyper's `Box`, no
/// lock, no hash and no timer-heap work. When the loop timer fires, it scans the table
/// (O(live sleeps)) for the sleeps that are due and re-arms itself for the next one.
///
/// A sleep that fires leaves the table; its next `poll` finds no entry and a deadline
/// that has passed. Dropped on another thread (hyper never does: a connection's future
/// stays on the loop that runs it), the key is not found there and nothing happens; the
/// entry left on the loop's thread is removed when its deadline comes, or, if its loop
/// closes first, when the thread's next loop arms its timer. Polled on a loop other than
/// the one it registered on (kept from one `run` to the next), it registers again. No
/// `unsafe`.
///
/// # Panics
/// When polled, before its deadline, outside of a running loop.
///
/// # Cancel safety
/// Cancel-safe: dropping it on the loop's thread removes it.
#[must_use = "futures do nothing unless awaited"]
pub struct TulipSleep {
    deadline: Instant,
    /// Slab key and id of the entry in `SLEEPS`, once registered.
    key: Option<(usize, u64)>,
}

impl TulipSleep {
    fn new(deadline: Instant) -> TulipSleep {
        TulipSleep {
            deadline,
            key: None,
        }
    }

    /// When the sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Registers on the running loop, which must be on this thread.
    fn register(&mut self, waker: &Waker) {
        let loop_id = with_current(|inner| inner.id)
            .expect("tulip::hyper::TulipSleep polled outside of a running event loop");
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let deadline = self.deadline;
        // Cloned before the borrow: a waker's clone is not ours to run under it.
        let waker = Some(waker.clone());
        let (slot, arm_now) = SLEEPS.with(|t| {
            let mut t = t.borrow_mut();
            let slot = t.entries.insert(Entry {
                id,
                loop_id,
                deadline,
                waker,
            });
            (slot, t.needs_arming(loop_id, deadline))
        });
        self.key = Some((slot, id));
        if arm_now {
            arm(loop_id, deadline);
        }
    }

    /// Moves the deadline (hyper's `Timer::reset`), keeping the registration.
    fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        let Some((slot, id)) = self.key else { return };
        let arm_on = SLEEPS.with(|t| {
            let mut t = t.borrow_mut();
            let e = t.entries.get_mut(slot).filter(|e| e.id == id)?;
            e.deadline = deadline;
            let loop_id = e.loop_id;
            t.needs_arming(loop_id, deadline).then_some(loop_id)
        });
        if let Some(loop_id) = arm_on {
            arm(loop_id, deadline);
        }
    }
}

/// A registered sleep's state, as `poll` finds it (a sleep that fired has no entry).
enum Registered {
    /// The waker stored is the one polling.
    Waiting,
    /// Polled by another waker.
    NewWaker,
    /// Registered on a loop that is not the running one (closed since: its timer is gone).
    OtherLoop,
}

impl Future for TulipSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some((slot, id)) = this.key {
            let running = with_current(|inner| inner.id);
            let state = SLEEPS.with(|t| {
                let t = t.borrow();
                let e = t.entries.get(slot).filter(|e| e.id == id)?;
                Some(match &e.waker {
                    _ if Some(e.loop_id) != running => Registered::OtherLoop,
                    Some(w) if w.will_wake(cx.waker()) => Registered::Waiting,
                    _ => Registered::NewWaker,
                })
            });
            match state {
                Some(Registered::Waiting) => return Poll::Pending,
                Some(Registered::OtherLoop) => {
                    // Forget it (its waker dropped with no borrow held), and register anew.
                    let old = SLEEPS.with(|t| t.borrow_mut().entries.try_remove(slot));
                    drop(old);
                    this.key = None;
                }
                Some(Registered::NewWaker) => {
                    // Cloned, and the old one dropped, with no borrow held.
                    let new = cx.waker().clone();
                    let old = SLEEPS.with(|t| {
                        let mut t = t.borrow_mut();
                        let e = t.entries.get_mut(slot)?;
                        e.waker.replace(new)
                    });
                    drop(old);
                    return Poll::Pending;
                }
                // Fired (the deadline passed), or registered on another thread: register
                // here, on this thread's loop, if the deadline is still ahead.
                None => this.key = None,
            }
        }
        if this.deadline <= crate::event_loop::now() {
            return Poll::Ready(());
        }
        this.register(cx.waker());
        Poll::Pending
    }
}

impl Sleep for TulipSleep {}

impl Drop for TulipSleep {
    fn drop(&mut self) {
        if let Some((slot, id)) = self.key {
            // `try_with`: the thread may be exiting. Not found: another thread's sleep.
            let entry = SLEEPS
                .try_with(|t| {
                    let mut t = t.try_borrow_mut().ok()?;
                    let here = t.entries.get(slot).is_some_and(|e| e.id == id);
                    here.then(|| t.entries.remove(slot))
                })
                .ok()
                .flatten();
            // The waker drops here, after the borrow ended.
            drop(entry);
        }
    }
}

impl fmt::Debug for TulipSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TulipSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.key.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn sleep_is_send_and_sync() {
        assert_send_sync::<TulipSleep>();
        assert_send_sync::<TulipTimer>();
        assert_send_sync::<TulipExecutor>();
    }
}
