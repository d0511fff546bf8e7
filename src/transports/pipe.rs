//! Pipes under the stream transport: the raw I/O of asyncio's `_UnixReadPipeTransport` and
//! `_UnixWritePipeTransport` — `read(2)`, `write(2)`, `writev(2)` (`recv` on a pipe is
//! `ENOTSOCK`; a socket given as a pipe is written with `send`, which never raises
//! `SIGPIPE`). The public API is in `unix/pipe.rs`.
//!
//! A pipe end is a one-way stream ([`RawIo::one_way`]): the read end closes at EOF whatever
//! `eof_received` answers, and `write_eof` on the write end closes it. The write end of a
//! pipe, FIFO or socket is also watched for reading, as the seed does: it becomes "readable"
//! only when the reader closed (`EPOLLERR`, `EV_EOF`), which closes the transport even when
//! it has nothing to write (`connection_lost(None)` then, as the seed; `BrokenPipe` with data
//! still buffered). A character device is not (a tty's write
//! end is readable whenever someone types).
//!
//! # Invariant
//! `fd` is the descriptor owned by `owned` while `owned` is `Some`; it is closed only by
//! [`RawIo::close`], after deregistration.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Once;

use super::ExtraInfo;
use super::proto::{ProtoObj, ProtoRc, ReadOutcome};
use super::stream::{RawIo, StreamTransport};
use super::trsock::{FdSlot, TransportFd};
use crate::event_loop::EventLoop;
use crate::sys::{self, PipeKind};

/// Which end of a pipe a transport drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Read from; `connect_read_pipe`.
    Read,
    /// Written to; `connect_write_pipe`.
    Write,
}

/// One end of a pipe (or FIFO, socket, character device), non-blocking.
pub(crate) struct PipeIo {
    fd: RawFd,
    owned: Rc<FdSlot<OwnedFd>>,
    end: End,
    kind: PipeKind,
    /// `O_NONBLOCK` was set by [`PipeIo::open`]: cleared again before the descriptor is
    /// closed, since its open file description may be shared (a `dup` of stdin, a shell's
    /// terminal) and the others expect blocking I/O.
    restore_blocking: bool,
}

impl PipeIo {
    /// Checks `fd` as the seed does (pipes, FIFOs, sockets and character devices only) and
    /// puts it in non-blocking mode. On an error `fd` is closed.
    pub(crate) fn open(fd: OwnedFd, end: End, what: &str) -> io::Result<PipeIo> {
        let kind = sys::pipe_kind(&fd)
            .map_err(|e| io::Error::new(e.kind(), format!("{what}: fstat: {e}")))?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{what}: not a pipe (pipes, FIFOs, sockets and character devices \
                         only; a regular file is always readable: read it directly)"
                    ),
                )
            })?;
        let was_nonblocking = sys::set_nonblocking(&fd, true)
            .map_err(|e| io::Error::new(e.kind(), format!("{what}: O_NONBLOCK: {e}")))?;
        if end == End::Write {
            if kind == PipeKind::Socket {
                let sock = socket2::SockRef::from(&fd);
                sys::prepare_socket(&sock)?;
            } else {
                warn_if_sigpipe_kills();
            }
        }
        Ok(PipeIo {
            fd: fd.as_raw_fd(),
            owned: FdSlot::new(fd),
            end,
            kind,
            restore_blocking: !was_nonblocking,
        })
    }
}

/// Once per process: a write pipe in a process where `SIGPIPE` kills is logged, since its
/// reader closing would kill the process rather than fail the transport with `BrokenPipe`.
/// tulip does not change the disposition: a program that chose it (`-Zon-broken-pipe=kill`)
/// keeps it.
fn warn_if_sigpipe_kills() {
    static CHECK: Once = Once::new();
    CHECK.call_once(|| {
        if sys::sigpipe_kills() {
            log::warn!(
                "SIGPIPE has its default action: a write pipe whose reader closes will kill \
                 the process; ignore SIGPIPE to get BrokenPipe errors instead"
            );
        }
    });
}

/// Runs `protocol` on a non-blocking pipe end: `reads` for the read end, else the write end.
/// The caller made `fd` non-blocking; a descriptor whose kind cannot be told is taken as a
/// pipe.
#[allow(dead_code)] // the in-crate test; the subprocess transports will build on it
pub(crate) fn start(
    lp: &EventLoop,
    fd: OwnedFd,
    reads: bool,
    protocol: ProtoRc,
) -> Rc<StreamTransport<PipeIo>> {
    let kind = sys::pipe_kind(&fd).ok().flatten().unwrap_or(PipeKind::Fifo);
    let io = PipeIo {
        fd: fd.as_raw_fd(),
        owned: FdSlot::new(fd),
        end: if reads { End::Read } else { End::Write },
        kind,
        restore_blocking: false,
    };
    start_io(lp, io, protocol, None)
}

/// Runs `protocol` on `io`; `waiter` completes after `connection_made`.
pub(crate) fn start_io(
    lp: &EventLoop,
    io: PipeIo,
    protocol: ProtoRc,
    waiter: Option<crate::LoopFuture<()>>,
) -> Rc<StreamTransport<PipeIo>> {
    StreamTransport::start(lp, io, protocol, waiter)
}

/// What a write end's read readiness means: the reader closed.
fn reader_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the pipe's reader closed")
}

impl RawIo for PipeIo {
    const KIND: &'static str = "pipe";

    fn fd(&self) -> RawFd {
        self.fd
    }

    fn readable(&self) -> bool {
        // The write end is watched for its reader closing, except a character device's.
        self.end == End::Read || self.kind != PipeKind::CharDevice
    }

    fn one_way(&self) -> bool {
        true
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.end {
            End::Read => sys::read(self.fd, buf),
            // Never data on a write end (a stream reader put on it waits for ever).
            End::Write => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        match self.end {
            End::Read => sys::read_uninit(self.fd, buf),
            End::Write => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn read_into(&self, p: &mut dyn ProtoObj, shared: &mut [u8]) -> ReadOutcome {
        match self.end {
            End::Read => p.read(&mut |buf| self.read(buf), shared),
            // Nothing is read (the protocol is not asked for a buffer): the reader is gone.
            End::Write => ReadOutcome::Error(reader_closed()),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        assert!(
            self.end == End::Write,
            "Transport::write() on a read pipe's transport"
        );
        match self.kind {
            PipeKind::Socket => sys::send(self.fd, buf),
            _ => sys::write(self.fd, buf),
        }
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.kind {
            PipeKind::Socket => sys::sendmsg(self.fd, bufs),
            _ => sys::writev(self.fd, bufs),
        }
    }

    fn can_write_eof(&self) -> bool {
        // asyncio's write pipe: `write_eof` closes it (see `one_way`).
        self.end == End::Write
    }

    fn shutdown_write(&self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a pipe has no half-close",
        ))
    }

    fn extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "pipe" => self
                .owned
                .borrow()
                .as_ref()
                .map(|_| ExtraInfo::Pipe(TransportFd::new(&self.owned))),
            _ => None,
        }
    }

    fn close(&self) {
        if self.restore_blocking {
            if let Some(f) = self.owned.borrow().as_ref() {
                sys::set_nonblocking(f, false).ok();
            }
        }
        self.owned.close();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::{self, Read, Write};
    use std::os::fd::AsFd;
    use std::rc::Rc;
    use std::time::Duration;

    use crate::transports::StreamProtocol;
    use crate::{EventLoop, Protocol};

    #[derive(Default)]
    struct Got {
        data: Vec<u8>,
        eof: bool,
        lost: u32,
    }

    struct Reader(Rc<RefCell<Got>>);

    impl Protocol for Reader {
        fn data_received(&mut self, d: &[u8]) {
            self.0.borrow_mut().data.extend_from_slice(d);
        }
        fn eof_received(&mut self) -> bool {
            self.0.borrow_mut().eof = true;
            false
        }
        fn connection_lost(&mut self, exc: Option<io::Error>) {
            assert!(exc.is_none(), "{exc:?}");
            self.0.borrow_mut().lost += 1;
        }
    }

    struct Silent;
    impl Protocol for Silent {}

    fn nonblocking(fd: impl AsFd, on: bool) {
        socket2::SockRef::from(&fd.as_fd())
            .set_nonblocking(on)
            .expect("O_NONBLOCK");
    }

    /// Two real pipes through the stream transport, with a thread copying between them:
    /// the write transport sends 300 kB (more than a pipe holds: some is buffered and
    /// flushed with `writev`), closes once drained; the read transport receives it all,
    /// then EOF, then `connection_lost` once.
    #[test]
    fn a_pipe_is_a_stream_transport() {
        let lp = EventLoop::new().expect("loop");
        let (in_r, mut in_w) = io::pipe().expect("pipe");
        let (mut out_r, out_w) = io::pipe().expect("pipe");
        nonblocking(&in_r, true);
        nonblocking(&out_w, true);
        let copier = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = out_r.read(&mut buf).expect("read");
                if n == 0 {
                    return; // dropping `in_w`: EOF for the read transport
                }
                in_w.write_all(&buf[..n]).expect("write");
            }
        });
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let got = Rc::new(RefCell::new(Got::default()));
        let (g2, p2) = (got.clone(), payload.clone());
        lp.run_until_complete(async move {
            let lp = crate::get_running_loop();
            let _rt = super::start(&lp, in_r.into(), true, Reader(g2.clone()).into_obj());
            let silent = Silent.into_obj();
            let wt = super::start(&lp, out_w.into(), false, silent).handle();
            wt.write(&p2);
            assert!(
                wt.get_write_buffer_size() > 0,
                "a pipe holds less than 300 kB"
            );
            // asyncio's write pipe: `write_eof` is supported (it closes the pipe).
            assert!(wt.get_extra_info("pipe").is_some() && wt.can_write_eof());
            wt.close();
            for _ in 0..2500 {
                if g2.borrow().lost > 0 {
                    break;
                }
                crate::sleep(Duration::from_millis(2)).await;
            }
            assert!(
                wt.inner.get_protocol().is_none(),
                "the write side was torn down"
            );
        });
        copier.join().expect("copier");
        let g = got.borrow();
        assert_eq!(g.data.len(), payload.len());
        assert!(g.data == payload, "the bytes arrived in order");
        assert!(g.eof);
        assert_eq!(g.lost, 1);
    }
}
