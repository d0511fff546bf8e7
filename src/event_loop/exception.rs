//! What the exception handler receives, and the default handler.

use std::any::Any;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::EventLoop;
use crate::task_info::TaskInfo;

/// What went wrong, handed to the loop's exception handler (asyncio's context dict).
///
/// ```
/// let ctx = tulip::ExceptionContext::new("something failed")
///     .with_error(std::io::Error::other("boom"));
/// assert_eq!(ctx.message(), "something failed");
/// assert_eq!(ctx.to_string(), "something failed: boom");
/// ```
pub struct ExceptionContext {
    message: String,
    error: Option<io::Error>,
    panic: Option<Box<dyn Any + Send>>,
    task: Option<TaskInfo>,
    transport: Option<String>,
    protocol: Option<&'static str>,
    callback: Option<String>,
}

impl ExceptionContext {
    /// A context with just a message.
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            error: None,
            panic: None,
            task: None,
            transport: None,
            protocol: None,
            callback: None,
        }
    }

    /// Adds the task involved (asyncio's `context['task']`).
    pub fn with_task(mut self, task: TaskInfo) -> ExceptionContext {
        self.task = Some(task);
        self
    }

    /// Adds the transport involved, as words: its kind, fd and addresses (asyncio's
    /// `context['transport']`).
    pub fn with_transport(mut self, transport: impl Into<String>) -> ExceptionContext {
        self.transport = Some(transport.into());
        self
    }

    /// Adds the protocol involved: its type name (asyncio's `context['protocol']`).
    pub fn with_protocol(mut self, protocol: &'static str) -> ExceptionContext {
        self.protocol = Some(protocol);
        self
    }

    /// Adds the callback that failed, as words: its type name, and for a reader or writer
    /// its fd (asyncio's `context['handle']`). The loop adds it in debug mode.
    pub fn with_callback(mut self, callback: impl Into<String>) -> ExceptionContext {
        self.callback = Some(callback.into());
        self
    }

    /// The task involved, if any (asyncio's `context['task']`): the task whose panic was
    /// never retrieved, say.
    pub fn task(&self) -> Option<&TaskInfo> {
        self.task.as_ref()
    }

    /// The transport involved, if any (asyncio's `context['transport']`).
    pub fn transport(&self) -> Option<&str> {
        self.transport.as_deref()
    }

    /// The protocol's type name, if a protocol was involved (asyncio's
    /// `context['protocol']`).
    pub fn protocol(&self) -> Option<&str> {
        self.protocol
    }

    /// The callback that failed, if known (asyncio's `context['handle']`).
    pub fn callback(&self) -> Option<&str> {
        self.callback.as_deref()
    }

    /// Adds the error that caused it.
    pub fn with_error(mut self, error: io::Error) -> ExceptionContext {
        self.error = Some(error);
        self
    }

    /// Adds the payload of a caught panic.
    pub fn with_panic(mut self, payload: Box<dyn Any + Send>) -> ExceptionContext {
        self.panic = Some(payload);
        self
    }

    /// The message (asyncio's `context['message']`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error, if one caused it (asyncio's `context['exception']`).
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// The payload of the panic, if a callback or task panicked.
    pub fn panic_payload(&self) -> Option<&(dyn Any + Send)> {
        self.panic.as_deref()
    }

    /// The panic's message, when it was a string (what `panic!("...")` produces).
    pub fn panic_message(&self) -> Option<&str> {
        let p = self.panic.as_deref()?;
        p.downcast_ref::<&str>()
            .copied()
            .or_else(|| p.downcast_ref::<String>().map(String::as_str))
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        if self.panic.is_some() {
            match self.panic_message() {
                Some(m) => write!(f, ": panicked: {m}")?,
                None => f.write_str(": panicked")?,
            }
        }
        if let Some(t) = &self.task {
            write!(f, "; task: {t}")?;
        }
        if let Some(c) = &self.callback {
            write!(f, "; callback: {c}")?;
        }
        if let Some(t) = &self.transport {
            write!(f, "; transport: {t}")?;
        }
        if let Some(p) = &self.protocol {
            write!(f, "; protocol: {p}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExceptionContext")
            .field("message", &self.message)
            .field("error", &self.error)
            .field("panic", &self.panic_message())
            .field("task", &self.task)
            .field("transport", &self.transport)
            .field("protocol", &self.protocol)
            .field("callback", &self.callback)
            .finish()
    }
}

impl EventLoop {
    /// The handler set with [`set_exception_handler`](EventLoop::set_exception_handler), or
    /// `None` for the default one (asyncio's `get_exception_handler`). A handler can hand
    /// what it does not deal with to [`default_exception_handler`](EventLoop::default_exception_handler).
    ///
    /// ```
    /// let lp = tulip::EventLoop::new()?;
    /// assert!(lp.get_exception_handler().is_none());
    /// lp.set_exception_handler(|lp, ctx| lp.default_exception_handler(ctx));
    /// assert!(lp.get_exception_handler().is_some());
    /// # std::io::Result::Ok(())
    /// ```
    #[allow(clippy::type_complexity)] // the type `set_exception_handler` takes, boxed
    pub fn get_exception_handler(&self) -> Option<Rc<dyn Fn(&EventLoop, &ExceptionContext)>> {
        self.inner.handler.borrow().clone()
    }
}

/// The default handler: log it at `error` level (on stderr if no logger is installed).
pub(crate) fn default_handler(ctx: &ExceptionContext) {
    emit(log::Level::Error, format_args!("{ctx}"));
}

/// Whether the last-resort line on stderr is on (see [`set_last_resort`]).
static LAST_RESORT: AtomicBool = AtomicBool::new(true);

/// Turns tulip's last-resort output on or off (Python's `logging.lastResort = None`).
///
/// tulip logs through the [`log`](https://docs.rs/log) facade. A program that installs no
/// logger — the default — would never see an error reported by the loop: a panicking
/// callback, a detached task's panic, a failed `start_server` handler, a failed TLS
/// handshake, writes after the connection was lost. So while no logger is installed
/// (`log::max_level()` is `Off`, as it is until a logger sets it), warnings and errors are
/// written to stderr instead, one line each, prefixed `tulip:` — what Python's `logging`
/// does with its last-resort handler. Installing a logger takes over; calling
/// `set_last_resort(false)` silences the stderr line (a process-wide setting, as
/// `logging.lastResort` is: a setter rather than an environment variable, so that a program
/// or a test decides in code, and no variable has to be parsed on a hot path).
///
/// ```
/// tulip::set_last_resort(false); // nothing on stderr, even with no logger installed
/// # tulip::set_last_resort(true);
/// ```
pub fn set_last_resort(enabled: bool) {
    LAST_RESORT.store(enabled, Ordering::Relaxed);
}

/// Logs `args` at `level` through `log`, or, with no logger installed, writes warnings and
/// errors to stderr (see [`set_last_resort`]).
#[cold]
#[inline(never)]
pub(crate) fn emit(level: log::Level, args: fmt::Arguments<'_>) {
    if log::max_level() != log::LevelFilter::Off {
        log::log!(level, "{args}");
    } else if level <= log::Level::Warn && LAST_RESORT.load(Ordering::Relaxed) {
        let what = if level == log::Level::Error {
            "error"
        } else {
            "warning"
        };
        eprintln!("tulip: {what}: {args}");
    }
}

/// `log::warn!`, with the last resort of [`emit`] when no logger is installed.
macro_rules! warn_or_stderr {
    ($($t:tt)*) => {
        $crate::event_loop::emit(log::Level::Warn, format_args!($($t)*))
    };
}

/// `log::error!`, with the last resort of [`emit`] when no logger is installed.
macro_rules! error_or_stderr {
    ($($t:tt)*) => {
        $crate::event_loop::emit(log::Level::Error, format_args!($($t)*))
    };
}

pub(crate) use {error_or_stderr, warn_or_stderr};
