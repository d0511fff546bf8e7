//! A transport's socket, lent out safely (asyncio's `trsock.TransportSocket`): what
//! `get_extra_info("socket")` (and a pipe's `"pipe"`) answers.
//!
//! The transport keeps its fd in an [`FdSlot`]; a [`TransportFd`] is a second handle to the
//! slot, not to the fd: once the transport closes the fd, the handle finds the slot empty.
//! While a [`TransportFd::with`] closure runs, the fd stays open even if the closure closes
//! the transport (the close is finished when the closure returns), so the borrowed fd never
//! outlives its descriptor.

use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;

use socket2::{SockAddr, SockRef};

/// Where a transport keeps its fd-owning object (`Socket`, `OwnedFd`).
///
/// # Invariant
/// The object is dropped (its fd closed) by [`close`](FdSlot::close), or — when a
/// [`TransportFd::with`] closure held it at that moment — as soon as that closure returns;
/// never while the object is lent out.
pub(crate) struct FdSlot<T> {
    val: RefCell<Option<T>>,
    /// `close` found the object lent out: drop it when the lender is done.
    close_pending: Cell<bool>,
}

impl<T> FdSlot<T> {
    /// A slot holding `val`.
    pub(crate) fn new(val: T) -> Rc<FdSlot<T>> {
        Rc::new(FdSlot {
            val: RefCell::new(Some(val)),
            close_pending: Cell::new(false),
        })
    }

    /// The object, `None` once closed. Never hold this across user code.
    #[inline]
    pub(crate) fn borrow(&self) -> Ref<'_, Option<T>> {
        self.val.borrow()
    }

    /// Drops the object (closing its fd), or, if it is lent out, marks it to be dropped when
    /// it is returned.
    pub(crate) fn close(&self) {
        match self.val.try_borrow_mut() {
            Ok(mut v) => {
                let t = v.take();
                drop(v);
                drop(t);
            }
            Err(_) => self.close_pending.set(true),
        }
    }

    /// After a lender returned the object: finishes a close that came meanwhile.
    fn finish_close(&self) {
        if self.close_pending.get() {
            if let Ok(mut v) = self.val.try_borrow_mut() {
                self.close_pending.set(false);
                let t = v.take();
                drop(v);
                drop(t);
            }
        }
    }
}

/// A slot seen through its fd, whatever it holds.
trait FdSource {
    /// Runs `f` on the fd; `false` if the slot is empty (closed).
    fn lend(&self, f: &mut dyn FnMut(BorrowedFd<'_>)) -> bool;
}

impl<T: AsFd> FdSource for FdSlot<T> {
    fn lend(&self, f: &mut dyn FnMut(BorrowedFd<'_>)) -> bool {
        let lent = {
            let g = self.val.borrow();
            match g.as_ref() {
                Some(v) => {
                    f(v.as_fd());
                    true
                }
                None => false,
            }
        };
        self.finish_close();
        lent
    }
}

/// A transport's socket (or pipe), as `get_extra_info("socket")` hands it out: asyncio's
/// `TransportSocket`, made safe. It gives access to the socket — its addresses, its options
/// through `socket2` — but not ownership: the transport still owns the fd, and once the
/// transport has closed it every method answers `None` (or `NotConnected`).
///
/// ```
/// # tulip::run(async {
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// struct Quiet;
/// impl tulip::Protocol for Quiet {}
/// let (t, _) = tulip::connect_accepted_socket(|| Quiet, a, Default::default()).await?;
/// let Some(tulip::transports::ExtraInfo::Socket(sock)) = t.get_extra_info("socket") else {
///     unreachable!("a socket transport has a socket")
/// };
/// assert_eq!(sock.with(|s| s.r#type().ok()), Some(Some(socket2::Type::STREAM)));
/// assert_eq!(sock.peer_addr()?.as_pathname(), None); // an unnamed socketpair
/// t.close();
/// # drop(b);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct TransportFd {
    slot: Rc<dyn FdSource>,
}

impl TransportFd {
    pub(crate) fn new<T: AsFd + 'static>(slot: &Rc<FdSlot<T>>) -> TransportFd {
        TransportFd { slot: slot.clone() }
    }

    /// Runs `f` on the fd, borrowed; `None` if the transport has closed it. The fd stays
    /// open while `f` runs, even if `f` closes the transport.
    pub fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        let mut f = Some(f);
        let mut out = None;
        self.slot.lend(&mut |fd| {
            if let Some(f) = f.take() {
                out = Some(f(fd));
            }
        });
        out
    }

    /// Runs `f` on the socket, borrowed as a `socket2::SockRef` (socket options, addresses,
    /// `SO_ERROR`…); `None` if the transport has closed it. Do not read from or write to
    /// it, or close it: the transport owns it.
    pub fn with<R>(&self, f: impl FnOnce(SockRef<'_>) -> R) -> Option<R> {
        self.with_fd(|fd| f(SockRef::from(&fd)))
    }

    /// The socket's local address (`getsockname`).
    ///
    /// # Errors
    /// `NotConnected` once the transport has closed the socket; what `getsockname` reports.
    pub fn local_addr(&self) -> io::Result<SockAddr> {
        self.with(|s| s.local_addr())
            .unwrap_or_else(|| Err(closed()))
    }

    /// The socket's peer address (`getpeername`).
    ///
    /// # Errors
    /// `NotConnected` once the transport has closed the socket; what `getpeername` reports
    /// (an unconnected datagram socket has no peer).
    pub fn peer_addr(&self) -> io::Result<SockAddr> {
        self.with(|s| s.peer_addr())
            .unwrap_or_else(|| Err(closed()))
    }

    /// The descriptor's number, while it is open (asyncio's `fileno()`). Only a number:
    /// using it as an fd is `unsafe` and needs the transport to stay open meanwhile.
    pub fn as_raw_fd(&self) -> Option<RawFd> {
        self.with_fd(|fd| fd.as_raw_fd())
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the transport's socket is closed",
    )
}

impl fmt::Debug for TransportFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportFd")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_close_while_lent_waits_for_the_lender() {
        let (a, _b) = UnixStream::pair().expect("socketpair");
        let slot = FdSlot::new(OwnedFd::from(a));
        let view = TransportFd::new(&slot);
        let kind = view.with(|s| {
            slot.close();
            // Closed while lent: the descriptor stays open until the closure returns.
            s.r#type().ok()
        });
        assert_eq!(kind, Some(Some(socket2::Type::STREAM)));
        assert!(slot.borrow().is_none(), "closed once returned");
        assert!(view.as_raw_fd().is_none());
        assert_eq!(
            view.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }
}
