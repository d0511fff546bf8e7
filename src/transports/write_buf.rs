//! The write buffer: what `send` left, flushed with one `sendmsg` of many iovecs.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

/// Data up to this size is appended to the last chunk instead of starting a new one.
const COALESCE: usize = 64 * 1024;
/// At most this many iovecs per `sendmsg`.
const MAX_IOV: usize = 64;

/// Buffered outgoing bytes.
#[derive(Debug, Default)]
pub(crate) struct WriteBuf {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already sent.
    head: usize,
    len: usize,
}

impl WriteBuf {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if let Some(last) = self.chunks.back_mut() {
            if last.len() + data.len() <= COALESCE {
                last.extend_from_slice(data);
                return;
            }
        }
        self.chunks.push_back(data.to_vec());
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.head = 0;
        self.len = 0;
    }

    /// Sends as much as the socket takes, in one `sendmsg`. Returns the bytes sent.
    pub(crate) fn flush(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iov: [libc::iovec; MAX_IOV] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        let mut n = 0;
        for (i, c) in self.chunks.iter().enumerate().take(MAX_IOV) {
            let s = if i == 0 { &c[self.head..] } else { &c[..] };
            iov[n] = libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            };
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: an all-zero msghdr is valid; we then point it at `n` initialised iovecs
        // that borrow our chunks, which outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = n as _;
        let sent = loop {
            // SAFETY: `msg` describes valid buffers (see above); `fd` is the transport's open
            // socket. MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE.
            let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        };
        self.consume(sent);
        Ok(sent)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.head = 0;
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_and_consumes() {
        let mut b = WriteBuf::default();
        b.push(b"abc");
        b.push(b"def");
        assert_eq!(b.chunks.len(), 1);
        b.consume(2);
        assert_eq!((b.len(), b.head), (4, 2));
        // Appending to a partly sent front chunk keeps its offset valid.
        b.push(b"gh");
        assert_eq!(b.chunks.len(), 1);
        b.consume(4);
        assert_eq!((b.len(), b.head, b.chunks.len()), (2, 6, 1));
        b.push(&vec![0u8; COALESCE]);
        assert_eq!(b.chunks.len(), 2);
        b.consume(2 + COALESCE);
        assert!(b.is_empty());
    }
}
