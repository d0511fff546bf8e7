//! A byte queue that follows the data: it holds what was received and not read yet in
//! `v[start..]`, allocates only when something is appended, grows like a `Vec` (no zero
//! filling, no reserved room), and gives a large allocation back once it is drained.

/// A buffer drained after holding more than this gives its memory back (the rule of
/// `examples/http_hello`): an idle stream connection holds at most this much.
pub(crate) const MAX_KEPT_CAPACITY: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Buf {
    v: Vec<u8>,
    /// Bytes of `v` already consumed.
    start: usize,
}

impl Buf {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.v.len() - self.start
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.v.len() == self.start
    }

    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        &self.v[self.start..]
    }

    /// The memory held.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.v.capacity()
    }

    /// Appends `data`; consumed bytes are dropped first when the vector would have to grow.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.v.capacity() - self.v.len() < data.len() {
            self.v.drain(..self.start);
            self.start = 0;
        }
        self.v.extend_from_slice(data);
    }

    /// Drops the first `n` bytes of data.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.v.len() {
            self.clear();
        }
    }

    /// Takes the first `n` bytes of data out; the whole vector when that is all of it and
    /// it is not much larger (no copy).
    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        if self.start == 0 && n == self.v.len() && self.v.capacity() <= 2 * n.max(16) {
            return std::mem::take(&mut self.v);
        }
        let out = self.v[self.start..self.start + n].to_vec();
        self.consume(n);
        out
    }

    /// Drops all data; a large allocation is given back.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.v.clear();
        if self.v.capacity() > MAX_KEPT_CAPACITY {
            self.v = Vec::new();
        }
    }

    /// Appends everything of `other` and empties it; when this buffer is empty the two
    /// trade places instead (no copy).
    pub(crate) fn append_from(&mut self, other: &mut Buf) {
        if self.is_empty() {
            std::mem::swap(self, other);
            other.clear();
        } else {
            self.extend(other.data());
            other.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_takes_and_compacts() {
        let mut b = Buf::default();
        assert_eq!(b.capacity(), 0);
        b.extend(b"hello world");
        assert_eq!(b.take(6), b"hello ");
        assert_eq!(b.data(), b"world");
        b.extend(b"!");
        assert_eq!(b.data(), b"world!");
        assert_eq!(b.take(6), b"world!");
        assert!(b.is_empty());
    }

    #[test]
    fn one_byte_never_grows_and_large_shrinks_back() {
        let mut b = Buf::default();
        b.extend(b"x");
        assert!(b.capacity() <= 16, "{}", b.capacity());
        b.extend(&[7u8; 60 * 1024]);
        assert!(b.capacity() >= 60 * 1024);
        b.consume(1);
        let big = b.take(60 * 1024 - 100);
        assert_eq!(big.len(), 60 * 1024 - 100);
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn take_all_hands_over_the_vector() {
        let mut b = Buf::default();
        b.extend(&[1u8; 4000]);
        let v = b.take(4000);
        assert_eq!(v.len(), 4000);
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn append_from_swaps_into_an_empty_buffer() {
        let mut a = Buf::default();
        let mut b = Buf::default();
        b.extend(b"abc");
        a.append_from(&mut b);
        assert_eq!(a.data(), b"abc");
        assert!(b.is_empty());
        b.extend(b"de");
        a.append_from(&mut b);
        assert_eq!(a.data(), b"abcde");
        assert!(b.is_empty());
    }
}
