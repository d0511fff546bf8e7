//! Pipes under the stream transport: the raw I/O of asyncio's `_UnixReadPipeTransport` and
//! `_UnixWritePipeTransport` — `read(2)`, `write(2)`, `writev(2)` (`recv` on a pipe is
//! `ENOTSOCK`). Crate-private until the pipe API of a later issue; it is here to keep
//! [`RawIo`] honest about what a second stream kind needs.
//!
//! # Invariant
//! `fd` is the descriptor owned by `owned` while `owned` is `Some`; it is closed only by
//! [`RawIo::close`], after deregistration.
#![allow(dead_code)] // until the pipe transports of the next issues use it

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use super::ExtraInfo;
use super::proto::ProtoRc;
use super::stream::{RawIo, StreamTransport};
use super::trsock::{FdSlot, TransportFd};
use crate::event_loop::EventLoop;
use crate::sys;

/// One end of a pipe (or FIFO, or character device), non-blocking.
pub(crate) struct PipeIo {
    fd: RawFd,
    owned: Rc<FdSlot<OwnedFd>>,
    /// The read end: watched for reading. A write end is not (it is never readable).
    reads: bool,
}

/// Runs `protocol` on a non-blocking pipe end: `reads` for the read end, else the write end.
pub(crate) fn start(
    lp: &EventLoop,
    fd: OwnedFd,
    reads: bool,
    protocol: ProtoRc,
) -> Rc<StreamTransport<PipeIo>> {
    let io = PipeIo {
        fd: fd.as_raw_fd(),
        owned: FdSlot::new(fd),
        reads,
    };
    StreamTransport::start(lp, io, protocol, None)
}

impl RawIo for PipeIo {
    const KIND: &'static str = "pipe";

    fn fd(&self) -> RawFd {
        self.fd
    }

    fn readable(&self) -> bool {
        self.reads
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::read(self.fd, buf)
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        sys::write(self.fd, buf)
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::writev(self.fd, bufs)
    }

    fn can_write_eof(&self) -> bool {
        false
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
            assert!(wt.get_extra_info("pipe").is_some() && !wt.can_write_eof());
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
