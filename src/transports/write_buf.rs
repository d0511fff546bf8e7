//! The write buffer: what a write left, flushed with one vectored write (`sendmsg`,
//! `writev`) of many buffers.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

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

    /// Moves every byte of `other` (nothing of it sent yet) to the end of this buffer.
    pub(crate) fn append(&mut self, other: &mut WriteBuf) {
        debug_assert_eq!(other.head, 0);
        self.len += std::mem::take(&mut other.len);
        self.chunks.append(&mut other.chunks);
        other.head = 0;
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.head = 0;
        self.len = 0;
    }

    /// Hands the buffered chunks (at most [`MAX_IOV`] of them) to `write` — one vectored
    /// write of the transport's raw I/O — and drops what it took. Returns the bytes written.
    pub(crate) fn flush(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
        let mut n = 0;
        for (i, c) in self.chunks.iter().enumerate().take(MAX_IOV) {
            iov[n] = IoSlice::new(if i == 0 { &c[self.head..] } else { &c[..] });
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let sent = write(&iov[..n])?;
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
