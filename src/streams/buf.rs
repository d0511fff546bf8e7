//! A receive buffer that is always initialised: data lives in `v[start..end]`, the rest of
//! `v` is room to receive into without zeroing again.

/// Below this much room, the buffer grows (or compacts) before the next receive.
pub(crate) const MIN_ROOM: usize = 16 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Buf {
    v: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        &self.v[self.start..self.end]
    }

    /// Room to receive into: at least `MIN_ROOM` (or `hint`) bytes after the data.
    pub(crate) fn room(&mut self, hint: usize) -> &mut [u8] {
        let want = hint.max(MIN_ROOM);
        if self.v.len() - self.end < want {
            if self.start > 0 {
                self.v.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.v.len() - self.end < want {
                let new = (self.end + want).max(self.v.len() * 2);
                self.v.resize(new, 0);
            }
        }
        &mut self.v[self.end..]
    }

    /// `n` bytes were received into `room()`.
    #[inline]
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Drops the first `n` bytes of data.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Takes the first `n` bytes of data out.
    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.v[self.start..self.start + n].to_vec();
        self.consume(n);
        out
    }

    /// Appends `data`.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        let room = self.room(data.len());
        room[..data.len()].copy_from_slice(data);
        self.filled(data.len());
    }

    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_compacts_and_takes() {
        let mut b = Buf::default();
        b.extend(b"hello world");
        assert_eq!(b.take(6), b"hello ");
        assert_eq!(b.data(), b"world");
        let r = b.room(100_000);
        assert!(r.len() >= 100_000);
        r[..1].copy_from_slice(b"!");
        b.filled(1);
        assert_eq!(b.data(), b"world!");
        b.consume(6);
        assert!(b.is_empty());
    }
}
