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

/// The error inside an `io::Error` when a host name does not resolve (asyncio raises
/// `socket.gaierror`); its `io::ErrorKind` is `NotFound` (or, as below, `TimedOut`).
///
/// The standard library reports a failed lookup as `ErrorKind::Uncategorized`, which stable
/// Rust cannot match; tulip gives it `NotFound` — the name was not found — and this type,
/// which names the host: `err.kind() == ErrorKind::NotFound`, or
/// `err.get_ref().and_then(|e| e.downcast_ref::<tulip::ResolveError>())` for the details. A
/// temporary failure of the resolver (`EAI_AGAIN`: the name server did not answer) is told
/// apart: its kind is `TimedOut` — worth retrying later — and
/// [`is_temporary`](ResolveError::is_temporary) is true. Other failures of
/// [`getaddrinfo`](crate::getaddrinfo) keep the kind their cause has (`InvalidInput` for
/// arguments the resolver refuses, an OS error's kind for `EAI_SYSTEM`).
///
/// ```
/// # struct Client;
/// # impl tulip::Protocol for Client {}
/// # tulip::run(async {
/// let err = tulip::create_connection(|| Client, "no-such-host.invalid", 80, Default::default())
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// let re = err.get_ref().and_then(|e| e.downcast_ref::<tulip::ResolveError>()).unwrap();
/// assert_eq!(re.host(), "no-such-host.invalid");
/// assert!(err.to_string().contains("no-such-host.invalid"));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    host: String,
    port: u16,
    reason: String,
    kind: io::ErrorKind,
    temporary: bool,
}

impl ResolveError {
    pub(crate) fn new(host: &str, port: u16, reason: impl fmt::Display) -> ResolveError {
        ResolveError {
            host: host.to_owned(),
            port,
            reason: reason.to_string(),
            kind: io::ErrorKind::NotFound,
            temporary: false,
        }
    }

    /// A failure of the given kind; `temporary` for `EAI_AGAIN`.
    pub(crate) fn with_kind(
        host: &str,
        port: u16,
        reason: impl fmt::Display,
        kind: io::ErrorKind,
        temporary: bool,
    ) -> ResolveError {
        ResolveError {
            kind,
            temporary,
            ..ResolveError::new(host, port, reason)
        }
    }

    /// Whether the resolver failed only for now (`EAI_AGAIN`): trying again later may work.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The host name that did not resolve.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port it was looked up with.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the resolver said.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve {:?}: {}", self.host, self.reason)
    }
}

impl std::error::Error for ResolveError {}

impl From<ResolveError> for io::Error {
    fn from(e: ResolveError) -> io::Error {
        io::Error::new(e.kind, e)
    }
}

/// The error inside an `io::Error` when zero-copy `sendfile` cannot be used for this file
/// or this transport (asyncio's `SendfileNotAvailableError`); its `io::ErrorKind` is
/// `Unsupported`.
///
/// [`sock_sendfile`](crate::sock_sendfile) and [`sendfile`](fn@crate::sendfile) return it when
/// called with `fallback: false` on something `sendfile(2)` cannot send: a file that is not
/// a regular file (a pipe, a terminal), a TLS or pipe transport, a system without the call.
/// With `fallback: true` they copy instead.
///
/// ```
/// let err: std::io::Error = tulip::SendfileNotAvailable::new("not a regular file").into();
/// assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
/// let why = tulip::SendfileNotAvailable::from_io(&err).unwrap();
/// assert_eq!(why.reason(), "not a regular file");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendfileNotAvailable {
    reason: &'static str,
}

impl SendfileNotAvailable {
    /// The error, with why zero-copy is not available.
    pub fn new(reason: &'static str) -> SendfileNotAvailable {
        SendfileNotAvailable { reason }
    }

    /// Why zero-copy is not available ("not a regular file", …).
    pub fn reason(&self) -> &str {
        self.reason
    }

    /// The `SendfileNotAvailable` inside `err`, if that is what it carries.
    pub fn from_io(err: &io::Error) -> Option<&SendfileNotAvailable> {
        err.get_ref().and_then(|e| e.downcast_ref())
    }
}

impl fmt::Display for SendfileNotAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sendfile not available: {}", self.reason)
    }
}

impl std::error::Error for SendfileNotAvailable {}

impl From<SendfileNotAvailable> for io::Error {
    fn from(e: SendfileNotAvailable) -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, e)
    }
}
