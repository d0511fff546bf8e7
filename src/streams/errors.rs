//! The stream errors of asyncio: `IncompleteRead` and `LimitOverrun`, carried inside
//! `io::Error`s so that `?` works.

use std::fmt;
use std::io;

/// EOF came before the expected bytes (asyncio's `IncompleteReadError`). Carried in an
/// `io::Error` of kind `UnexpectedEof`; get it back with [`IncompleteRead::from_io`].
///
/// ```
/// let e: std::io::Error = tulip::IncompleteRead::new(b"ab".to_vec(), Some(4)).into();
/// assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
/// assert_eq!(tulip::IncompleteRead::from_io(&e).unwrap().partial, b"ab");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteRead {
    /// The bytes read before EOF.
    pub partial: Vec<u8>,
    /// How many were expected (`None`: up to a separator).
    pub expected: Option<usize>,
}

impl IncompleteRead {
    /// An `IncompleteRead` with what was read and what was expected.
    pub fn new(partial: Vec<u8>, expected: Option<usize>) -> IncompleteRead {
        IncompleteRead { partial, expected }
    }

    /// The `IncompleteRead` inside `err`, if that is what it carries.
    pub fn from_io(err: &io::Error) -> Option<&IncompleteRead> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for IncompleteRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(n) => write!(
                f,
                "{} bytes read on a total of {n} expected bytes",
                self.partial.len()
            ),
            None => write!(
                f,
                "{} bytes read on a total of undefined expected bytes",
                self.partial.len()
            ),
        }
    }
}

impl std::error::Error for IncompleteRead {}

impl From<IncompleteRead> for io::Error {
    fn from(e: IncompleteRead) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, e)
    }
}

/// The stream limit was reached before the separator (asyncio's `LimitOverrunError`).
/// Carried in an `io::Error` of kind `InvalidData`; get it back with
/// [`LimitOverrun::from_io`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverrun {
    /// What happened.
    pub message: &'static str,
    /// How many bytes are to be consumed (asyncio's `consumed`).
    pub consumed: usize,
}

impl LimitOverrun {
    /// The `LimitOverrun` inside `err`, if that is what it carries.
    pub fn from_io(err: &io::Error) -> Option<&LimitOverrun> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for LimitOverrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (consumed: {})", self.message, self.consumed)
    }
}

impl std::error::Error for LimitOverrun {}

impl From<LimitOverrun> for io::Error {
    fn from(e: LimitOverrun) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}
