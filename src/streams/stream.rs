//! `Stream`: a connection's reader and writer in one object, for the futures-io ecosystem
//! (codecs, hyper adapters, `copy_buf`…), which wants one `AsyncRead + AsyncWrite` value.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{StreamReader, StreamWriter};
use crate::transports::Transport;

/// A stream connection as one object: a [`StreamReader`] and a [`StreamWriter`] together,
/// implementing `futures_io::AsyncRead`, `AsyncBufRead` and `AsyncWrite` — what
/// `asynchronous-codec`'s `Framed`, a hyper I/O adapter or any `AsyncRead + AsyncWrite`
/// consumer takes. Make one with [`StreamReader::unsplit`] or `Stream::from((reader,
/// writer))`; [`into_split`](Stream::into_split) gives the halves back.
///
/// Reads behave as the reader's futures-io methods, writes as the writer's (see the crate
/// docs' "futures-io interop"); asyncio's methods are on the halves
/// ([`reader`](Stream::reader), [`writer`](Stream::writer)).
///
/// ```
/// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
///
/// # fn main() -> std::io::Result<()> {
/// tulip::run(async {
///     let server = tulip::start_server(
///         |r: tulip::StreamReader, w: tulip::StreamWriter| async move {
///             let (mut r, mut w) = r.unsplit(w).into_split();
///             futures_util::io::copy(&mut r, &mut w).await.map(drop)
///         },
///         "127.0.0.1",
///         0,
///         Default::default(),
///     )
///     .await?;
///     let port = server.local_addr().expect("a TCP server").port();
///     let (r, w) = tulip::open_connection("127.0.0.1", port, Default::default()).await?;
///     let mut stream = r.unsplit(w);
///     stream.write_all(b"ping").await?;
///     let mut buf = [0u8; 4];
///     stream.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     AsyncWriteExt::close(&mut stream).await
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct Stream {
    reader: StreamReader,
    writer: StreamWriter,
}

impl Stream {
    /// The reading half.
    pub fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    /// The writing half.
    pub fn writer(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }

    /// The transport under the stream.
    pub fn transport(&self) -> &Transport {
        self.writer.transport()
    }

    /// The two halves again.
    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

impl StreamReader {
    /// Joins this reader and `writer` — usually the two halves of one connection — into
    /// one [`Stream`].
    pub fn unsplit(self, writer: StreamWriter) -> Stream {
        Stream {
            reader: self,
            writer,
        }
    }
}

impl From<(StreamReader, StreamWriter)> for Stream {
    fn from((reader, writer): (StreamReader, StreamWriter)) -> Stream {
        reader.unsplit(writer)
    }
}

impl futures_io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl futures_io::AsyncBufRead for Stream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().reader).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().reader).consume(amt);
    }
}

impl futures_io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_close(cx)
    }
}
