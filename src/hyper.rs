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
//! neither (it holds the loop's `Rc` timer). [`TulipSleep`] is `Send + Sync` for real: what
//! it shares with its timer callback is an `Arc` (a "fired" flag and the waker); the `!Send`
//! [`TimerHandle`] stays on the loop's thread, in a thread-local table
//! under a unique key, so dropping the sleep there cancels the timer at once. Dropped on
//! another thread (hyper never does: a connection's future stays on the loop that runs it),
//! the key is not found, and the timer fires later and does nothing. No `unsafe`.
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
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use ::hyper::rt::{Executor, ReadBufCursor, Sleep, Timer};
use futures_io::{AsyncBufRead, AsyncWrite};

use crate::event_loop::{TimerHandle, try_get_running_loop};
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

/// `hyper::rt::Timer` on the running loop's timers; its sleeps are [`TulipSleep`]s.
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
}

/// What a [`TulipSleep`] shares with its timer callback.
#[derive(Debug, Default)]
struct Shared {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Shared {
    fn waker(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        // A panic while the lock was held cannot leave an `Option<Waker>` half-written.
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

thread_local! {
    /// The loop-side handles of this thread's registered [`TulipSleep`]s, by key.
    static TIMERS: RefCell<HashMap<u64, TimerHandle>> = RefCell::new(HashMap::new());
}

/// Keys are never reused, so a key cannot name another sleep's timer.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// The `Send + Sync` sleep of [`TulipTimer`] (see the [module docs](self) for how it stays
/// sound): it registers a timer on the running loop when first polled.
///
/// # Panics
/// When polled, before its deadline, outside of a running loop.
///
/// # Cancel safety
/// Cancel-safe: dropping it on the loop's thread cancels its timer.
#[must_use = "futures do nothing unless awaited"]
pub struct TulipSleep {
    deadline: Instant,
    shared: Arc<Shared>,
    /// The key of the registered timer in `TIMERS`.
    key: Option<u64>,
}

impl TulipSleep {
    fn new(deadline: Instant) -> TulipSleep {
        TulipSleep {
            deadline,
            shared: Arc::default(),
            key: None,
        }
    }

    /// When the sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn register(&mut self, waker: &Waker) {
        let lp = try_get_running_loop()
            .expect("tulip::hyper::TulipSleep polled outside of a running event loop");
        *self.shared.waker() = Some(waker.clone());
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let shared = self.shared.clone();
        let handle = lp.call_at(self.deadline, move || {
            // The handle leaves the table before anything else runs; it drops here, after
            // the borrow ended.
            let _handle = TIMERS.with(|t| t.borrow_mut().remove(&key));
            shared.fired.store(true, Ordering::Release);
            let waker = shared.waker().take();
            if let Some(w) = waker {
                w.wake();
            }
        });
        TIMERS.with(|t| t.borrow_mut().insert(key, handle));
        self.key = Some(key);
    }
}

impl Future for TulipSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shared.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if this.key.is_none() {
            if this.deadline <= crate::event_loop::now() {
                return Poll::Ready(());
            }
            this.register(cx.waker());
            return Poll::Pending;
        }
        {
            let mut w = this.shared.waker();
            match &mut *w {
                Some(old) if old.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        // The callback sets `fired` before it takes the waker: checked again after storing
        // ours, a wake-up cannot be missed, whichever thread this is.
        if this.shared.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Sleep for TulipSleep {}

impl Drop for TulipSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            // `try_with`: the thread may be exiting. Not found: the timer fired, or this is
            // another thread; either way there is nothing to cancel here.
            let handle = TIMERS
                .try_with(|t| t.borrow_mut().remove(&key))
                .ok()
                .flatten();
            if let Some(h) = handle {
                h.cancel();
            }
        }
    }
}

impl fmt::Debug for TulipSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TulipSleep")
            .field("deadline", &self.deadline)
            .field("fired", &self.shared.fired.load(Ordering::Relaxed))
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
