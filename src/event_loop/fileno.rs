//! What `add_reader` / `add_writer` accept as a file descriptor: asyncio takes "an fd or an
//! object with a `fileno()`", and so does tulip — a raw fd, or a reference to anything that
//! has one — but never an owned socket or file by value, which the call would drop (close)
//! as it returns, leaving the loop watching a closed, soon reused descriptor.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// A file descriptor to watch, lent for the call: a [`RawFd`], a [`BorrowedFd`], or a
/// reference to anything that has a descriptor (`&TcpStream`, `&File`, `&OwnedFd`, …).
/// The loop does not own it: remove the reader or writer before closing it.
///
/// An owned socket or file passed by value does not compile, since the call would close it
/// on return:
///
/// ```compile_fail
/// let lp = tulip::EventLoop::new()?;
/// let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// lp.add_reader(sock, || ())?; // by value: refused
/// # std::io::Result::Ok(())
/// ```
///
/// ```
/// let lp = tulip::EventLoop::new()?;
/// let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// lp.add_reader(&sock, || ())?; // lent
/// assert!(lp.remove_reader(&sock)?);
/// lp.close();
/// # std::io::Result::Ok(())
/// ```
pub trait Fileno {
    /// The descriptor's number (asyncio's `fileno()`).
    fn fileno(&self) -> RawFd;
}

impl Fileno for RawFd {
    fn fileno(&self) -> RawFd {
        *self
    }
}

impl Fileno for BorrowedFd<'_> {
    fn fileno(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl<T: AsFd + ?Sized> Fileno for &T {
    fn fileno(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
