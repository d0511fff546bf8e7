//! `LoopFuture`: asyncio's `loop.create_future()`, the bridge from callbacks to async code.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::Cancelled;
use crate::event_loop::{EventLoop, ExceptionContext};

enum State<T> {
    Pending,
    Done(io::Result<T>),
    Taken,
    Cancelled,
}

type DoneCallback<T> = Box<dyn FnOnce(&LoopFuture<T>)>;

struct Shared<T> {
    lp: EventLoop,
    state: RefCell<State<T>>,
    wakers: RefCell<Vec<Waker>>,
    callbacks: RefCell<Vec<DoneCallback<T>>>,
    /// The error was seen: awaited, or read with `result`/`exception` (asyncio's
    /// `__log_traceback` cleared).
    retrieved: Cell<bool>,
}

impl<T> Drop for Shared<T> {
    /// asyncio's `Future.__del__`: an error nobody retrieved goes to the exception handler.
    fn drop(&mut self) {
        if self.retrieved.get() {
            return;
        }
        let state = std::mem::replace(self.state.get_mut(), State::Taken);
        if let State::Done(Err(e)) = state {
            let ctx = ExceptionContext::new("Future exception was never retrieved").with_error(e);
            self.lp.call_exception_handler(&ctx);
        }
    }
}

/// A future that callbacks complete and async code awaits (asyncio's `Future`, made by
/// [`EventLoop::create_future`]).
///
/// `LoopFuture` is a cheap handle: clone it, give one clone to the callback that will call
/// [`set_result`](LoopFuture::set_result), and await another. Awaiting yields
/// `io::Result<T>`: the result, the error given to
/// [`set_exception`](LoopFuture::set_exception), or a [`Cancelled`] error. The value is
/// moved out to the first awaiter that sees it; a second awaiter gets an error. Done
/// callbacks are scheduled before awaiters are woken, so they run first and can still read
/// a cloneable result with [`result`](LoopFuture::result).
///
/// A future that failed and is dropped without its error having been seen — awaited, or read
/// with [`result`](LoopFuture::result) or [`exception`](LoopFuture::exception) — reports the
/// error to the loop's exception handler, "Future exception was never retrieved", as
/// asyncio's `Future.__del__` does, so that an error set by a callback never vanishes.
///
/// # Cancel safety
/// Cancel-safe: dropping an awaiting `LoopFuture` (one clone) neither cancels the shared
/// future nor takes its result, which stays for the next awaiter. The result is moved out
/// only by the poll that returns it.
///
/// ```
/// use std::time::Duration;
/// tulip::run(async {
///     let lp = tulip::get_running_loop();
///     let fut = lp.create_future::<u32>();
///     let f = fut.clone();
///     lp.call_later(Duration::from_millis(5), move || f.set_result(7));
///     assert_eq!(fut.await.unwrap(), 7);
/// });
/// ```
pub struct LoopFuture<T> {
    shared: Rc<Shared<T>>,
}

impl<T> Clone for LoopFuture<T> {
    fn clone(&self) -> Self {
        LoopFuture {
            shared: self.shared.clone(),
        }
    }
}

impl<T: 'static> LoopFuture<T> {
    pub(crate) fn new(lp: EventLoop) -> LoopFuture<T> {
        LoopFuture {
            shared: Rc::new(Shared {
                lp,
                state: RefCell::new(State::Pending),
                wakers: RefCell::new(Vec::new()),
                callbacks: RefCell::new(Vec::new()),
                retrieved: Cell::new(false),
            }),
        }
    }

    fn complete(&self, new: State<T>) {
        {
            let mut st = self.shared.state.borrow_mut();
            assert!(
                matches!(*st, State::Pending),
                "invalid state: the future is already done"
            );
            *st = new;
        }
        // Done callbacks are scheduled before the awaiters are woken, so they run first and
        // still see the result (the awaiter moves it out).
        let callbacks = std::mem::take(&mut *self.shared.callbacks.borrow_mut());
        if !callbacks.is_empty() && !self.shared.lp.is_closed() {
            for cb in callbacks {
                let me = self.clone();
                self.shared.lp.call_soon(move || cb(&me));
            }
        }
        let wakers = std::mem::take(&mut *self.shared.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Completes the future with `value` and schedules its done callbacks.
    ///
    /// # Panics
    /// If the future is already done or cancelled (asyncio's `InvalidStateError`); check
    /// [`done`](LoopFuture::done) first where that can happen.
    pub fn set_result(&self, value: T) {
        self.complete(State::Done(Ok(value)));
    }

    /// Completes the future with an error (asyncio's `set_exception`).
    ///
    /// # Panics
    /// If the future is already done or cancelled.
    pub fn set_exception(&self, err: io::Error) {
        self.complete(State::Done(Err(err)));
    }

    /// Cancels the future; returns `false` if it was already done or cancelled. Either way
    /// an error it holds counts as retrieved (asyncio's `cancel` clears `__log_traceback`).
    pub fn cancel(&self) -> bool {
        // As asyncio: asking to cancel means the caller is done with the future, so an
        // error it already had is not reported either.
        self.shared.retrieved.set(true);
        if self.done() {
            return false;
        }
        self.complete(State::Cancelled);
        true
    }

    /// Whether the future has a result, an error, or was cancelled.
    pub fn done(&self) -> bool {
        !matches!(*self.shared.state.borrow(), State::Pending)
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(*self.shared.state.borrow(), State::Cancelled)
    }

    /// The outcome without consuming it, for results that can be cloned (asyncio's
    /// `result()`); `None` while pending (which does not count as retrieving an error set
    /// later). An error is returned as a new `io::Error` with the
    /// same kind and message.
    pub fn result(&self) -> Option<io::Result<T>>
    where
        T: Clone,
    {
        let state = self.shared.state.borrow();
        // Asked while pending, nothing is retrieved (asyncio's `InvalidStateError`): an
        // error set later is still reported if nobody reads it.
        if !matches!(*state, State::Pending) {
            self.shared.retrieved.set(true);
        }
        match &*state {
            State::Pending => None,
            State::Done(Ok(v)) => Some(Ok(v.clone())),
            State::Done(Err(e)) => Some(Err(io::Error::new(e.kind(), e.to_string()))),
            State::Taken => Some(Err(taken_error())),
            State::Cancelled => Some(Err(Cancelled.into())),
        }
    }

    /// The error the future failed with, as a new `io::Error` of the same kind and message
    /// (asyncio's `exception()`); `None` while pending, after a result, or after
    /// cancellation. Reading it counts as retrieving it: the future's drop does not report it
    /// then.
    pub fn exception(&self) -> Option<io::Error> {
        match &*self.shared.state.borrow() {
            State::Done(Err(e)) => {
                self.shared.retrieved.set(true);
                Some(io::Error::new(e.kind(), e.to_string()))
            }
            _ => None,
        }
    }

    /// Adds a callback run (with `call_soon`) once the future is done; if it is done
    /// already, the callback is scheduled now (asyncio's `add_done_callback`).
    pub fn add_done_callback(&self, f: impl FnOnce(&LoopFuture<T>) + 'static) {
        if self.done() {
            let me = self.clone();
            self.shared.lp.call_soon(move || f(&me));
        } else {
            self.shared.callbacks.borrow_mut().push(Box::new(f));
        }
    }

    /// The loop the future belongs to (asyncio's `get_loop()`).
    pub fn get_loop(&self) -> &EventLoop {
        &self.shared.lp
    }
}

fn taken_error() -> io::Error {
    io::Error::other("the future's result was already taken by another awaiter")
}

impl<T> Future for LoopFuture<T> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let mut st = self.shared.state.borrow_mut();
        match &*st {
            State::Pending => {
                drop(st);
                let mut wakers = self.shared.wakers.borrow_mut();
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Cancelled => Poll::Ready(Err(Cancelled.into())),
            State::Taken => Poll::Ready(Err(taken_error())),
            State::Done(_) => match std::mem::replace(&mut *st, State::Taken) {
                State::Done(r) => {
                    self.shared.retrieved.set(true);
                    Poll::Ready(r)
                }
                _ => unreachable!("matched Done above"),
            },
        }
    }
}

impl<T> fmt::Debug for LoopFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.shared.state.borrow() {
            State::Pending => "pending",
            State::Done(Ok(_)) => "finished",
            State::Done(Err(_)) => "failed",
            State::Taken => "finished (taken)",
            State::Cancelled => "cancelled",
        };
        f.debug_struct("LoopFuture").field("state", &state).finish()
    }
}
