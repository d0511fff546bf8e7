//! What the exception handler receives, and the default handler.

use std::any::Any;
use std::fmt;
use std::io;

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
}

impl ExceptionContext {
    /// A context with just a message.
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            error: None,
            panic: None,
        }
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
        Ok(())
    }
}

impl fmt::Debug for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExceptionContext")
            .field("message", &self.message)
            .field("error", &self.error)
            .field("panic", &self.panic_message())
            .finish()
    }
}

/// The default handler: log it at `error` level.
pub(crate) fn default_handler(ctx: &ExceptionContext) {
    log::error!("{ctx}");
}
