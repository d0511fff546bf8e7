//! Errors of the loop's own making: cancellation and timeouts, as `io::Error`s.

use std::fmt;
use std::io;

/// The error inside an `io::Error` when a [`LoopFuture`](crate::LoopFuture) was cancelled
/// (asyncio's `CancelledError`).
///
/// Its `io::ErrorKind` is `Other`; test for it with [`is_cancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the future was cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl From<Cancelled> for io::Error {
    fn from(c: Cancelled) -> io::Error {
        io::Error::other(c)
    }
}

/// Whether `err` reports a cancellation ([`Cancelled`]).
///
/// ```
/// let err: std::io::Error = tulip::Cancelled.into();
/// assert!(tulip::is_cancelled(&err));
/// ```
pub fn is_cancelled(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<Cancelled>())
}

/// The error of [`timeout`](crate::timeout) when the deadline passed first
/// (asyncio's `TimeoutError`).
///
/// It converts into an `io::Error` of kind `TimedOut`, so `?` works in functions that
/// return `io::Result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeoutError(());

impl TimeoutError {
    pub(crate) fn new() -> TimeoutError {
        TimeoutError(())
    }
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for TimeoutError {}

impl From<TimeoutError> for io::Error {
    fn from(e: TimeoutError) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}
