//! Stream sockets (TCP, Unix) under the stream transport: asyncio's
//! `_SelectorSocketTransport` is [`StreamTransport`] over [`SocketIo`].
//!
//! # Invariant
//! `fd` is the descriptor of `sock` while `sock` is `Some`; `sock` is dropped (closing the
//! fd) only by [`RawIo::close`], after deregistration (or, if a `TransportFd` lends it out
//! at that moment, when the lender returns it; see `trsock.rs`).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use socket2::{SockAddr, Socket};

use super::ExtraInfo;
use super::proto::{ProtoObj, ProtoRc, ReadOutcome};
use super::stream::{RawIo, StreamTransport};
use super::trsock::{FdSlot, TransportFd};
use crate::event_loop::EventLoop;
use crate::sys;

/// The socket transport.
pub(crate) type SocketTransport = StreamTransport<SocketIo>;

/// A connected, non-blocking stream socket.
pub(crate) struct SocketIo {
    fd: RawFd,
    sock: Rc<FdSlot<Socket>>,
    /// Cached: still answered after the socket is closed.
    peername: RefCell<Option<SockAddr>>,
}

/// Runs `protocol` on a connected, non-blocking socket (see [`StreamTransport::start`]).
pub(crate) fn start(
    lp: &EventLoop,
    sock: Socket,
    protocol: ProtoRc,
    peername: Option<SockAddr>,
    waiter: Option<crate::LoopFuture<()>>,
) -> Rc<SocketTransport> {
    // Where `MSG_NOSIGNAL` does not exist, the socket itself must not raise SIGPIPE.
    sys::prepare_socket(&sock).ok();
    let io = SocketIo {
        fd: sock.as_raw_fd(),
        sock: FdSlot::new(sock),
        peername: RefCell::new(peername),
    };
    StreamTransport::start(lp, io, protocol, waiter)
}

impl RawIo for SocketIo {
    const KIND: &'static str = "socket";

    #[inline]
    fn fd(&self) -> RawFd {
        self.fd
    }

    #[inline]
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(self.fd, buf)
    }

    #[inline]
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.fd, buf)
    }

    #[inline]
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::sendmsg(self.fd, bufs)
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.shutdown(std::net::Shutdown::Write),
            None => Ok(()),
        }
    }

    fn extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let sock = self.sock.borrow();
        match name {
            "peername" => {
                let mut cached = self.peername.borrow_mut();
                if cached.is_none() {
                    *cached = sock.as_ref()?.peer_addr().ok();
                }
                cached.clone().map(ExtraInfo::Address)
            }
            "sockname" => sock.as_ref()?.local_addr().ok().map(ExtraInfo::Address),
            "socket" => sock
                .as_ref()
                .map(|_| ExtraInfo::Socket(TransportFd::new(&self.sock))),
            _ => None,
        }
    }

    fn close(&self) {
        self.sock.close();
    }

    fn sendfile_fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    #[inline]
    fn read_into(&self, p: &mut dyn ProtoObj, shared: &mut [u8]) -> ReadOutcome {
        p.read_socket(self, shared)
    }
}
