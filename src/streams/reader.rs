//! `StreamReader`: asyncio's reader methods, plus `futures_io::AsyncRead`/`AsyncBufRead`.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::StreamGuard;
use super::buf::Buf;
use super::errors::{IncompleteRead, LimitOverrun};
use super::state::{Direct, StreamState};
use crate::transports::Transport;

/// A `poll_read` destination at least this large, with nothing buffered, is received into
/// straight from the socket (no copy through the stream's buffer) — while the last receive
/// brought at least this much too.
pub(crate) const DIRECT_MIN: usize = 4 * 1024;

/// The reading half of a stream connection (asyncio's `StreamReader`).
///
/// Its methods take `&mut self`: one reader, one consumer. Errors follow asyncio: EOF
/// before the expected bytes is an [`IncompleteRead`] (kind `UnexpectedEof`), a line over
/// the limit a [`LimitOverrun`] (kind `InvalidData`).
///
/// When more than 2 × `limit` bytes wait unread, the transport stops reading until the
/// reader catches up: memory stays bounded whatever the peer sends. Buffers follow the data:
/// an idle connection holds almost nothing, and one grown by a large message is given back
/// once it is drained. `futures_io::AsyncRead::poll_read` with a large destination (4 KiB or
/// more) and nothing buffered receives straight into that destination.
///
/// # Bytes before errors
/// When the connection is lost with an error (a reset, a TLS alert), the bytes received
/// before it are still returned first: every read hands out what is buffered, and only a
/// read that finds the buffer empty reports the error (and every later one does too).
/// asyncio raises the stored exception at once and the buffered bytes are lost. tulip
/// differs because those bytes are often the point: a server's last response, or its error
/// message, sent just before it reset the connection; a Rust socket's `read` behaves the
/// same way (data first, the error on the next call). The error is never lost either: it
/// comes as soon as the buffered bytes are read, and `readexactly`/`readuntil` that cannot
/// complete report it while leaving the bytes they waited on in the buffer.
pub struct StreamReader {
    state: Rc<StreamState>,
    transport: Transport,
    /// What the reader took from the shared state and has not handed out yet.
    buf: Buf,
    _guard: Rc<StreamGuard>,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.buf.len())
            .field("limit", &self.state.limit)
            .field("direct", &self.state.direct.get())
            .finish()
    }
}

impl StreamReader {
    pub(crate) fn new(
        state: Rc<StreamState>,
        transport: Transport,
        guard: Rc<StreamGuard>,
    ) -> Self {
        StreamReader {
            state,
            transport,
            buf: Buf::default(),
            _guard: guard,
        }
    }

    /// The buffer limit (asyncio's `limit`).
    pub fn limit(&self) -> usize {
        self.state.limit
    }

    /// Moves what the protocol received into our buffer; whether there was any.
    // Always inlined: left to LLVM, whether it is depends on how unrelated code is split into
    // codegen units, and not inlining it costs ~30 instructions per streams round trip.
    #[inline(always)]
    fn pull(&mut self) -> bool {
        let s = &*self.state;
        {
            let mut sb = s.buf.borrow_mut();
            if sb.is_empty() {
                return false;
            }
            self.buf.append_from(&mut sb);
        }
        s.resume_if_room(self.buf.len(), false);
        true
    }

    /// Takes what the protocol received into our buffer: `Ready(Ok(true))` if there is
    /// more, `Ready(Ok(false))` at EOF, the connection's error if it was lost with one.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        // Waiting for the buffer: the protocol receives into it.
        self.state.direct.set(Direct::Off);
        if self.pull() {
            return Poll::Ready(Ok(true));
        }
        let s = &*self.state;
        if let Some(e) = s.error() {
            return Poll::Ready(Err(e));
        }
        if s.eof.get() {
            return Poll::Ready(Ok(false));
        }
        // Waiting for more while reading is paused would wait forever (readexactly of more
        // than the limit): resume first, as asyncio's `_wait_for_data` does.
        s.resume_if_room(0, true);
        s.set_read_waker(cx.waker());
        Poll::Pending
    }

    /// `poll_read` with nothing buffered and a large destination of `len` bytes: receives
    /// straight into it with `read` (see [`Direct`]). `None`: the transport cannot; wait for
    /// the buffer instead.
    #[inline]
    fn poll_direct(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
        read: impl FnOnce(&Transport) -> Option<io::Result<usize>>,
    ) -> Option<Poll<io::Result<usize>>> {
        let s = &*self.state;
        if s.eof.get() || s.lost.get() || !s.buf.borrow().is_empty() {
            return None;
        }
        match s.direct.get() {
            Direct::Ready | Direct::Woken => match read(&self.transport) {
                // EOF: the transport told the protocol (`eof_received`).
                Some(Ok(0)) => {
                    s.direct.set(Direct::Off);
                    Some(Poll::Ready(Ok(0)))
                }
                Some(Ok(n)) => {
                    s.last_recv.set(n);
                    s.direct.set(if n == len {
                        Direct::Ready
                    } else {
                        Direct::Drained
                    });
                    Some(Poll::Ready(Ok(n)))
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.direct.set(Direct::Drained);
                    s.set_read_waker(cx.waker());
                    Some(Poll::Pending)
                }
                // The transport is lost with the error; this is a copy of it.
                Some(Err(e)) => {
                    s.direct.set(Direct::Off);
                    Some(Poll::Ready(Err(e)))
                }
                None => None,
            },
            Direct::Waiting | Direct::Drained => {
                s.set_read_waker(cx.waker());
                Some(Poll::Pending)
            }
            Direct::Off => {
                s.direct.set(Direct::Waiting);
                s.set_read_waker(cx.waker());
                Some(Poll::Pending)
            }
        }
    }

    /// Resumes the transport's reading if this reader's consumption brought the buffer
    /// under the limit.
    #[inline]
    fn consumed(&mut self) {
        let s = &*self.state;
        if s.read_paused.get() {
            let total = self.buf.len() + s.buf.borrow().len();
            s.resume_if_room(total, false);
        }
    }

    /// `poll_read` into the spare capacity of `out` (at least `room` bytes of it, reserved
    /// if needed), extending its length by what was read: no zeroing of the room ahead of
    /// the data. `Ready(Ok(0))` at EOF. The direct receive of `poll_read` applies.
    pub(crate) fn poll_read_spare(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
        room: usize,
    ) -> Poll<io::Result<usize>> {
        if room == 0 {
            return Poll::Ready(Ok(0));
        }
        if out.capacity() - out.len() < room {
            out.reserve(room);
        }
        if self.buf.is_empty() {
            if room >= DIRECT_MIN && self.state.last_recv.get() >= DIRECT_MIN {
                let spare = &mut out.spare_capacity_mut()[..room];
                match self.poll_direct(cx, room, |t| t.try_read_uninit(spare)) {
                    Some(Poll::Ready(Ok(n))) => {
                        assert!(n <= room, "a read reported more bytes than it had room for");
                        // SAFETY: the read initialised the first `n` (≤ `room`) bytes of the
                        // spare capacity, as it reported.
                        unsafe { out.set_len(out.len() + n) };
                        return Poll::Ready(Ok(n));
                    }
                    Some(p) => return p,
                    None => {}
                }
            }
            match self.poll_more(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(false)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(true)) => {}
            }
        }
        let n = room.min(self.buf.len());
        out.extend_from_slice(&self.buf.data()[..n]);
        self.buf.consume(n);
        self.consumed();
        Poll::Ready(Ok(n))
    }

    async fn more(&mut self) -> io::Result<bool> {
        poll_fn(|cx| self.poll_more(cx)).await
    }

    /// Reads up to `n` bytes; an empty vector at EOF (asyncio's `read(n)`).
    ///
    /// # Errors
    /// The connection's error if it was lost with one (after the bytes received before it
    /// have been read; see [`StreamReader`]).
    ///
    /// # Cancel safety
    /// Cancel-safe: it waits only while nothing is buffered, and bytes leave the reader only
    /// when it completes; a cancelled call loses nothing.
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.buf.is_empty() && !self.more().await? {
            return Ok(Vec::new());
        }
        let k = n.min(self.buf.len());
        let out = self.buf.take(k);
        self.consumed();
        Ok(out)
    }

    /// Reads until EOF (asyncio's `read(-1)`).
    ///
    /// # Errors
    /// The connection's error if it was lost with one; what was received before it stays
    /// in the reader for the next read.
    ///
    /// # Cancel safety
    /// Cancel-safe: what it has received so far stays in the reader's buffer until EOF, so
    /// after a cancelled call (a `timeout`) the next read returns every byte, in order.
    pub async fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        // Everything stays in the reader's buffer until EOF, so a cancelled call loses
        // nothing. Reading is not paused by what piles up here: `more` resumes it.
        while self.more().await? {}
        let n = self.buf.len();
        let out = self.buf.take(n);
        self.consumed();
        Ok(out)
    }

    /// Reads exactly `n` bytes (asyncio's `readexactly`).
    ///
    /// # Errors
    /// [`IncompleteRead`] with the bytes read (which are consumed) if EOF comes first; the
    /// connection's error if it was lost with one before `n` bytes arrived (they stay in
    /// the reader).
    ///
    /// # Cancel safety
    /// Cancel-safe: the bytes wait in the reader's buffer until all `n` are there; a
    /// cancelled call leaves them for the next read.
    pub async fn readexactly(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.more().await? {
                let partial = self.buf.take(self.buf.len());
                return Err(IncompleteRead::new(partial, Some(n)).into());
            }
        }
        let out = self.buf.take(n);
        self.consumed();
        Ok(out)
    }

    /// Reads up to and including `separator` (asyncio's `readuntil`); the separator may be
    /// several bytes long and arrive split across reads.
    ///
    /// # Errors
    /// - [`IncompleteRead`] (with everything read, which is consumed) at EOF before the
    ///   separator;
    /// - [`LimitOverrun`] when the limit is reached first; the data stays in the buffer.
    ///
    /// # Cancel safety
    /// Cancel-safe: the data waits in the reader's buffer until the separator is found; a
    /// cancelled call leaves it for the next read (which searches it again from its start).
    ///
    /// # Panics
    /// If `separator` is empty.
    pub async fn readuntil(&mut self, separator: &[u8]) -> io::Result<Vec<u8>> {
        assert!(
            !separator.is_empty(),
            "separator should be at least one-byte string"
        );
        let seplen = separator.len();
        let mut offset = 0;
        loop {
            let data = self.buf.data();
            if data.len() - offset >= seplen {
                if let Some(i) = find(&data[offset..], separator) {
                    let isep = offset + i;
                    if isep > self.state.limit {
                        return Err(LimitOverrun {
                            message: "Separator is found, but chunk is longer than limit",
                            consumed: isep,
                        }
                        .into());
                    }
                    let out = self.buf.take(isep + seplen);
                    self.consumed();
                    return Ok(out);
                }
                offset = data.len() + 1 - seplen;
                if offset > self.state.limit {
                    // asyncio has one buffer: judge the limit on everything received so
                    // far, the separator may be in what the protocol received since.
                    if self.pull() {
                        continue;
                    }
                    return Err(LimitOverrun {
                        message: "Separator is not found, and chunk exceed the limit",
                        consumed: offset,
                    }
                    .into());
                }
            }
            if !self.more().await? {
                let partial = self.buf.take(self.buf.len());
                return Err(IncompleteRead::new(partial, None).into());
            }
        }
    }

    /// Reads a line, `\n` included (asyncio's `readline`). At EOF, the partial line (maybe
    /// empty) is returned.
    ///
    /// # Errors
    /// A line over the limit: an `InvalidData` error carrying a [`LimitOverrun`]. As in
    /// asyncio the line (or, if its end has not arrived, the buffer) is dropped, so the
    /// stream stays usable.
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`readuntil`](StreamReader::readuntil): a partial line stays in the
    /// reader's buffer for the next read.
    pub async fn readline(&mut self) -> io::Result<Vec<u8>> {
        match self.readuntil(b"\n").await {
            Ok(l) => Ok(l),
            Err(e) => {
                if let Some(inc) = IncompleteRead::from_io(&e) {
                    return Ok(inc.partial.clone());
                }
                if let Some(lo) = LimitOverrun::from_io(&e) {
                    let consumed = lo.consumed;
                    if self.buf.data().get(consumed) == Some(&b'\n') {
                        self.buf.consume(consumed + 1);
                    } else {
                        self.buf.clear();
                    }
                    self.consumed();
                }
                Err(e)
            }
        }
    }

    /// Whether EOF was reached and everything was read (asyncio's `at_eof`).
    pub fn at_eof(&self) -> bool {
        self.buf.is_empty() && self.state.eof.get() && self.state.buf.borrow().is_empty()
    }

    /// The transport under the stream.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Everything received and not read yet, taken out (for `start_tls`).
    #[cfg(feature = "tls")]
    pub(crate) fn take_buffered(&mut self) -> Vec<u8> {
        self.pull();
        let n = self.buf.len();
        self.buf.take(n)
    }

    #[cfg(feature = "tls")]
    pub(crate) fn switch_transport(&mut self, t: Transport) {
        self.state.set_transport(Some(t.clone()));
        self.state.direct.set(Direct::Off);
        self.transport = t;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return hay.iter().position(|&b| b == needle[0]);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl futures_io::AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.buf.is_empty() {
            if out.len() >= DIRECT_MIN && this.state.last_recv.get() >= DIRECT_MIN {
                let len = out.len();
                if let Some(p) = this.poll_direct(cx, len, |t| t.try_read_into(out)) {
                    return p;
                }
            }
            match this.poll_more(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(false)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(true)) => {}
            }
        }
        let n = out.len().min(this.buf.len());
        out[..n].copy_from_slice(&this.buf.data()[..n]);
        this.buf.consume(n);
        this.consumed();
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.buf.is_empty() {
            match this.poll_more(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(_)) => {}
            }
        }
        Poll::Ready(Ok(this.buf.data()))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.buf.consume(amt);
        this.consumed();
    }
}
