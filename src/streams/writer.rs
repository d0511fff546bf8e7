//! `StreamWriter`: asyncio's writer methods, plus `futures_io::AsyncWrite`.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::StreamGuard;
use super::state::StreamState;
use crate::transports::{ExtraInfo, Transport};

/// The writing half of a stream connection (asyncio's `StreamWriter`).
///
/// `write` never blocks and never fails: it hands the bytes to the transport, which sends
/// them at once or buffers them. [`drain`](StreamWriter::drain) is where back-pressure and
/// errors show: it waits while the transport's buffer is over its high-water mark and
/// returns the connection's error if it was lost.
///
/// When the last handle of a connection — reader, writer or a clone — is dropped, the
/// transport is closed, as asyncio's `StreamWriter.__del__` does.
#[derive(Clone)]
pub struct StreamWriter {
    state: Rc<StreamState>,
    transport: Transport,
    _guard: Rc<StreamGuard>,
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("transport", &self.transport)
            .finish()
    }
}

fn lost_error(s: &StreamState) -> io::Error {
    s.error()
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::ConnectionReset, "Connection lost"))
}

impl StreamWriter {
    pub(crate) fn new(
        state: Rc<StreamState>,
        transport: Transport,
        guard: Rc<StreamGuard>,
    ) -> StreamWriter {
        StreamWriter {
            state,
            transport,
            _guard: guard,
        }
    }

    /// Writes `data` (see [`Transport::write`]); follow with [`drain`](StreamWriter::drain).
    #[inline]
    pub fn write(&self, data: &[u8]) {
        self.transport.write(data);
    }

    /// Writes each buffer of `list`.
    pub fn writelines<'a>(&self, list: impl IntoIterator<Item = &'a [u8]>) {
        self.transport.writelines(list);
    }

    /// Closes the write side once the buffer has drained.
    pub fn write_eof(&self) {
        self.transport.write_eof();
    }

    /// Whether [`write_eof`](StreamWriter::write_eof) is supported.
    pub fn can_write_eof(&self) -> bool {
        self.transport.can_write_eof()
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = &*self.state;
        if s.lost.get() {
            return Poll::Ready(Err(lost_error(s)));
        }
        if !s.write_paused.get() {
            return Poll::Ready(Ok(()));
        }
        s.add_drain_waker(cx.waker());
        Poll::Pending
    }

    /// Waits until the write buffer is below its high-water mark (asyncio's `drain`): at
    /// once when it is, else until the transport resumes writing.
    ///
    /// # Errors
    /// The connection's error if it was lost (`ConnectionReset` "Connection lost" if it was
    /// lost without one).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only waits; the written bytes stay in the transport's buffer and are
    /// sent either way.
    pub async fn drain(&self) -> io::Result<()> {
        if self.transport.is_closing() {
            // Let a scheduled `connection_lost` run first, so that a write loop against a
            // dead peer sees the error instead of spinning (asyncio's `sleep(0)` here).
            crate::yield_now().await;
        }
        poll_fn(|cx| self.poll_drain(cx)).await
    }

    /// Closes the transport (buffered data is sent first).
    pub fn close(&self) {
        self.transport.close();
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = &*self.state;
        if s.lost.get() {
            return Poll::Ready(match s.error() {
                Some(e) => Err(e),
                None => Ok(()),
            });
        }
        s.add_closed_waker(cx.waker());
        Poll::Pending
    }

    /// Waits until the connection is closed (asyncio's `wait_closed`).
    ///
    /// # Errors
    /// The error the connection was lost with, if any.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only watches; the connection is left as it is.
    pub async fn wait_closed(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// asyncio's `get_extra_info` (see [`Transport::get_extra_info`]).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.transport.get_extra_info(name)
    }

    /// The transport under the stream.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Upgrades the connection to TLS (asyncio's `StreamWriter.start_tls`, STARTTLS-style):
    /// waits for the write buffer to drain, runs the handshake, and from then on `reader`
    /// and this writer speak through TLS. Bytes the reader had received but not read are
    /// taken as the start of the peer's handshake (a peer that did not wait).
    ///
    /// # Errors
    /// The handshake's failure, or the connection's error.
    ///
    /// # Cancel safety
    /// Not cancel-safe once the handshake has begun. Dropped while it waits for the write
    /// buffer to drain, nothing has changed: the connection stays plain and usable. Dropped
    /// during the handshake, the connection is closed (never left half-upgraded), and the
    /// bytes the reader had buffered, handed to the handshake, are lost with it.
    #[cfg(feature = "tls")]
    pub async fn start_tls(
        &mut self,
        reader: &mut super::StreamReader,
        options: crate::tls::TlsOptions,
    ) -> io::Result<()> {
        self.drain().await?;
        let early = reader.take_buffered();
        let t = crate::tls::start_tls(&self.transport, options, &early).await?;
        reader.switch_transport(t.clone());
        self._guard.set(t.clone());
        self.transport = t;
        Ok(())
    }
}

impl futures_io::AsyncWrite for StreamWriter {
    /// Waits while the transport is paused for writing, then writes everything.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.poll_drain(cx) {
            Poll::Ready(Ok(())) => {
                self.transport.write(buf);
                Poll::Ready(Ok(buf.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `drain`, except that a writer whose connection was closed cleanly (lost without an
    /// error, e.g. after [`close`](StreamWriter::close) or `poll_close`) flushes `Ok`: there
    /// is nothing left to flush, and futures-io's callers (`FramedWrite::close`, hyper's
    /// shutdown) flush again after closing. A connection lost with an error reports it.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = &*self.state;
        if s.lost.get() {
            return Poll::Ready(match s.error() {
                Some(e) => Err(e),
                None => Ok(()),
            });
        }
        self.poll_drain(cx)
    }

    /// `close` + `wait_closed`: `Ok` once the connection is closed, and at once on a writer
    /// already closed; the connection's error if it was lost with one.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.transport.close();
        self.poll_closed(cx)
    }
}
