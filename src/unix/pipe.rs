//! Pipe transports (asyncio's `connect_read_pipe` / `connect_write_pipe`, the seed's
//! `_UnixReadPipeTransport` and `_UnixWritePipeTransport`) and their stream forms.
//!
//! A pipe transport is the stream transport over one end of a pipe (see
//! `transports/pipe.rs`). It takes anything that owns a descriptor — `ChildStdout`,
//! `ChildStdin`, a `File` opened on a FIFO or a tty, `std::io::PipeReader`/`PipeWriter`, a
//! `UnixStream` — and accepts what the seed accepts: pipes, FIFOs, sockets and character
//! devices (ttys, ptys). A regular file is refused: it is always "ready", so a selector cannot
//! wait on it.
//!
//! The descriptor is put in non-blocking mode — on its open file description, which a
//! `dup` or another process may share — and back in blocking mode when the transport closes
//! it, if it was blocking before.
//!
//! # `SIGPIPE`
//! A `write(2)` to a pipe whose reader is gone raises `SIGPIPE`, whose default action kills
//! the process. Rust programs ignore it from the start (as Python does), so the write fails
//! with `EPIPE` and the transport's protocol gets `connection_lost(BrokenPipe)`. A program
//! that restores the default (`-Zon-broken-pipe=kill`), or a C host that never ignored it,
//! would be killed instead: tulip does not change the process-wide disposition behind the
//! program's back, but logs a warning (once, through `log`) when a write pipe starts in such a
//! process. A socket given as a write pipe is written with `send(MSG_NOSIGNAL)` (Apple:
//! `SO_NOSIGPIPE`), which never raises it. Blocking the signal around each write would cost
//! three system calls per write.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::event_loop::EventLoop;
use crate::streams::{DEFAULT_LIMIT, StreamReader, StreamWriter, pair, stream_protocol_obj};
use crate::transports::pipe::{End, PipeIo, start_io};
use crate::transports::{ExtraInfo, ProtoRc, ProtocolRef, StreamProtocol, Transport};

/// A read pipe's transport (asyncio's `ReadTransport` of `connect_read_pipe`): reading can be
/// paused and resumed; there is nothing to write.
///
/// At the writer's EOF the protocol hears `eof_received`, then `connection_lost(None)` —
/// whatever `eof_received` returns, as asyncio's read pipe does (a pipe has no write side to
/// keep open). A read error fails it: `connection_lost(Some(err))` (a pty's master gets `EIO`
/// once the slave closed).
///
/// It is a cheap clonable handle. The protocol's `connection_made` gets the same transport
/// as a plain [`Transport`]; its `write` panics on a read pipe.
#[derive(Clone)]
pub struct ReadPipeTransport {
    t: Transport,
}

/// A write pipe's transport (asyncio's `WriteTransport` of `connect_write_pipe`): `write`
/// with asyncio's water marks and `pause_writing` / `resume_writing`, `close` once the buffer
/// drained, `abort`.
///
/// [`write_eof`](WritePipeTransport::write_eof) is [`close`](WritePipeTransport::close): a
/// pipe's EOF is its closing. When the reader closes, the protocol gets `connection_lost`:
/// `None` if nothing was buffered, `Some(BrokenPipe)` if data was still to be sent (the
/// seed's rule) — at once for a pipe, FIFO or socket, which the transport watches for it even
/// when it has nothing to write (as the seed does); at the next write for a
/// character device, and where the selector does not report a pipe's reader closing
/// (FreeBSD's kqueue, for one).
///
/// It is a cheap clonable handle; the protocol's `connection_made` gets the same transport as
/// a plain [`Transport`].
#[derive(Clone)]
pub struct WritePipeTransport {
    t: Transport,
}

/// Starts a pipe transport for `protocol` on `fd`, returning once `connection_made` has run.
async fn start(fd: OwnedFd, end: End, what: &str, protocol: ProtoRc) -> io::Result<Transport> {
    let lp = crate::get_running_loop();
    let io = PipeIo::open(fd, end, what)?;
    started(&lp, io, protocol).await
}

async fn started(lp: &EventLoop, io: PipeIo, protocol: ProtoRc) -> io::Result<Transport> {
    let waiter = lp.create_future::<()>();
    let t = start_io(lp, io, protocol, Some(waiter.clone())).handle();
    // Dropped before `connection_made`: abort, which closes the descriptor.
    let mut guard = AbortOnDrop(Some(t));
    waiter.await?;
    Ok(guard.0.take().expect("set above"))
}

struct AbortOnDrop(Option<Transport>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// Runs the protocol from `protocol_factory` on the read end `pipe` (asyncio's
/// `loop.connect_read_pipe`). Returns the transport and a handle to the protocol once
/// `connection_made` has run.
///
/// ```no_run
/// use std::os::fd::AsFd;
///
/// struct Lines;
/// impl tulip::Protocol for Lines {
///     fn data_received(&mut self, data: &[u8]) {
///         eprintln!("{} bytes", data.len());
///     }
/// }
///
/// # tulip::run(async {
/// let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
/// let (transport, _lines) = tulip::unix::connect_read_pipe(|| Lines, stdin).await?;
/// # transport.close();
/// # std::io::Result::Ok(()) });
/// ```
///
/// # Errors
/// `InvalidInput` if `pipe` is not a pipe, FIFO, socket or character device (a regular file,
/// a directory); what `fstat` or `fcntl` report. On an error `pipe` is closed and the
/// factory is not called.
///
/// # Cancel safety
/// Not resumable: `pipe` is moved in, and dropping the future before `connection_made` has
/// run aborts the transport, which closes it.
///
/// # Panics
/// Outside of a running loop.
pub async fn connect_read_pipe<P, F>(
    protocol_factory: F,
    pipe: impl Into<OwnedFd>,
) -> io::Result<(ReadPipeTransport, ProtocolRef<P::Protocol>)>
where
    F: FnOnce() -> P,
    P: StreamProtocol,
{
    let lp = crate::get_running_loop();
    let io = PipeIo::open(pipe.into(), End::Read, "connect_read_pipe")?;
    let obj = protocol_factory().into_obj();
    let t = started(&lp, io, obj.clone()).await?;
    Ok((ReadPipeTransport { t }, ProtocolRef::new(obj)))
}

/// Runs the protocol from `protocol_factory` on the write end `pipe` (asyncio's
/// `loop.connect_write_pipe`). Returns the transport and a handle to the protocol once
/// `connection_made` has run.
///
/// ```no_run
/// use std::os::fd::AsFd;
///
/// struct Quiet;
/// impl tulip::Protocol for Quiet {}
///
/// # tulip::run(async {
/// let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
/// let (transport, _) = tulip::unix::connect_write_pipe(|| Quiet, stdout).await?;
/// transport.write(b"hello\n");
/// transport.close(); // after the buffer drained; `connection_lost(None)` follows
/// # std::io::Result::Ok(()) });
/// ```
///
/// # Errors
/// As [`connect_read_pipe`].
///
/// # Cancel safety
/// As [`connect_read_pipe`].
///
/// # Panics
/// Outside of a running loop.
pub async fn connect_write_pipe<P, F>(
    protocol_factory: F,
    pipe: impl Into<OwnedFd>,
) -> io::Result<(WritePipeTransport, ProtocolRef<P::Protocol>)>
where
    F: FnOnce() -> P,
    P: StreamProtocol,
{
    let lp = crate::get_running_loop();
    let io = PipeIo::open(pipe.into(), End::Write, "connect_write_pipe")?;
    let obj = protocol_factory().into_obj();
    let t = started(&lp, io, obj.clone()).await?;
    Ok((WritePipeTransport { t }, ProtocolRef::new(obj)))
}

/// A [`StreamReader`] over the read end `pipe` (asyncio's `connect_read_pipe(lambda:
/// StreamReaderProtocol(reader), pipe)`), with asyncio's 64 KiB limit. Dropping the reader
/// closes the pipe.
///
/// # Errors
/// As [`connect_read_pipe`].
///
/// # Cancel safety
/// As [`connect_read_pipe`].
///
/// # Panics
/// Outside of a running loop.
pub async fn open_read_pipe(pipe: impl Into<OwnedFd>) -> io::Result<StreamReader> {
    let (state, obj) = stream_protocol_obj(DEFAULT_LIMIT);
    let t = start(pipe.into(), End::Read, "open_read_pipe", obj).await?;
    let (reader, _) = pair(t, state);
    Ok(reader)
}

/// A [`StreamWriter`] over the write end `pipe`: `write`, then `drain` for flow control;
/// `close` (or `write_eof`) closes the pipe once the buffer drained, and so does dropping the
/// writer.
///
/// # Errors
/// As [`connect_write_pipe`].
///
/// # Cancel safety
/// As [`connect_read_pipe`].
///
/// # Panics
/// Outside of a running loop.
pub async fn open_write_pipe(pipe: impl Into<OwnedFd>) -> io::Result<StreamWriter> {
    let (state, obj) = stream_protocol_obj(DEFAULT_LIMIT);
    let t = start(pipe.into(), End::Write, "open_write_pipe", obj).await?;
    let (_, writer) = pair(t, state);
    Ok(writer)
}

/// The process's standard input as a [`StreamReader`]: [`open_read_pipe`] on a `dup` of fd 0,
/// so closing the reader leaves fd 0 open.
///
/// ```no_run
/// # tulip::run(async {
/// let mut stdin = tulip::unix::stdin().await?;
/// let mut stdout = tulip::unix::stdout().await?;
/// futures_util::io::copy(&mut stdin, &mut stdout).await?;
/// # std::io::Result::Ok(()) });
/// ```
///
/// While the reader is open, stdin is in non-blocking mode (its open file description is the
/// one the shell shares), restored when it closes.
///
/// # Errors
/// As [`open_read_pipe`]: stdin redirected from a regular file is `InvalidInput`.
///
/// # Cancel safety
/// Cancel-safe: dropping the future closes the `dup`.
///
/// # Panics
/// Outside of a running loop.
pub async fn stdin() -> io::Result<StreamReader> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    open_read_pipe(fd).await
}

/// The process's standard output as a [`StreamWriter`]: [`open_write_pipe`] on a `dup` of
/// fd 1, so closing the writer leaves fd 1 open.
///
/// While the writer is open, stdout is in non-blocking mode (restored when it closes), so a
/// `println!` of the same process meanwhile may fail with `WouldBlock` when the pipe is full:
/// write through the writer.
///
/// # Errors
/// As [`open_write_pipe`]: stdout redirected to a regular file is `InvalidInput`.
///
/// # Cancel safety
/// Cancel-safe: dropping the future closes the `dup`.
///
/// # Panics
/// Outside of a running loop.
pub async fn stdout() -> io::Result<StreamWriter> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
    open_write_pipe(fd).await
}

impl ReadPipeTransport {
    /// Stops calling `data_received` until [`resume_reading`](Self::resume_reading).
    pub fn pause_reading(&self) {
        self.t.pause_reading();
    }

    /// Resumes reading after [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&self) {
        self.t.resume_reading();
    }

    /// Whether the transport is receiving data (not paused, not closing).
    pub fn is_reading(&self) -> bool {
        self.t.is_reading()
    }

    /// Closes the pipe; the protocol's `connection_lost(None)` follows (later, from the
    /// loop).
    pub fn close(&self) {
        self.t.close();
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.t.is_closing()
    }

    /// `"pipe"`: the descriptor, as [`ExtraInfo::Pipe`](crate::transports::ExtraInfo::Pipe) (still owned by the transport), until
    /// the transport is closed.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.t.get_extra_info(name)
    }

    /// The current protocol, if it is a `P` (asyncio's `get_protocol`).
    pub fn get_protocol<P: 'static>(&self) -> Option<ProtocolRef<P>> {
        self.t.get_protocol()
    }

    /// The transport as the protocol sees it (for [`Transport::into_streams`], say).
    pub fn transport(&self) -> &Transport {
        &self.t
    }
}

impl WritePipeTransport {
    /// Writes `data`: at once if nothing is buffered, else (or what the pipe did not take)
    /// buffered and written when the pipe is writable. Never blocks. After the connection
    /// was lost, writes are dropped (and, after five, logged once).
    ///
    /// # Panics
    /// After [`write_eof`](Self::write_eof), as [`Transport::write`].
    pub fn write(&self, data: &[u8]) {
        self.t.write(data);
    }

    /// Writes each buffer of `list` in order (asyncio's `writelines`).
    pub fn writelines<'a>(&self, list: impl IntoIterator<Item = &'a [u8]>) {
        self.t.writelines(list);
    }

    /// Closes the pipe once the buffer drained — the reader sees EOF — as asyncio's write
    /// pipe does: the same as [`close`](Self::close).
    pub fn write_eof(&self) {
        self.t.write_eof();
    }

    /// True: [`write_eof`](Self::write_eof) is supported (it closes the pipe).
    pub fn can_write_eof(&self) -> bool {
        self.t.can_write_eof()
    }

    /// Closes the pipe once the buffered data is written; the protocol's
    /// `connection_lost(None)` follows.
    pub fn close(&self) {
        self.t.close();
    }

    /// Closes at once, dropping buffered data; `connection_lost(None)` follows.
    pub fn abort(&self) {
        self.t.abort();
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.t.is_closing()
    }

    /// Bytes waiting in the write buffer.
    pub fn get_write_buffer_size(&self) -> usize {
        self.t.get_write_buffer_size()
    }

    /// The write buffer's `(low, high)` water marks (16 KiB and 64 KiB by default).
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.t.get_write_buffer_limits()
    }

    /// Sets the water marks, as [`Transport::set_write_buffer_limits`].
    ///
    /// # Errors
    /// `InvalidInput` if `high < low`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.t.set_write_buffer_limits(high, low)
    }

    /// Waits until the buffer is at or below the low-water mark after a `pause_writing`;
    /// at once when writing is not paused.
    ///
    /// # Errors
    /// `ConnectionReset` if the connection was lost.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only waits.
    pub async fn drain(&self) -> io::Result<()> {
        self.t.drain().await
    }

    /// `"pipe"`: the descriptor, as [`ExtraInfo::Pipe`](crate::transports::ExtraInfo::Pipe) (still owned by the transport), until
    /// the transport is closed.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.t.get_extra_info(name)
    }

    /// The current protocol, if it is a `P` (asyncio's `get_protocol`).
    pub fn get_protocol<P: 'static>(&self) -> Option<ProtocolRef<P>> {
        self.t.get_protocol()
    }

    /// The transport as the protocol sees it.
    pub fn transport(&self) -> &Transport {
        &self.t
    }
}

impl fmt::Debug for ReadPipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPipeTransport")
            .field("closing", &self.is_closing())
            .field("reading", &self.is_reading())
            .finish()
    }
}

impl fmt::Debug for WritePipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WritePipeTransport")
            .field("closing", &self.is_closing())
            .field("write_buffer", &self.get_write_buffer_size())
            .finish()
    }
}

impl From<ReadPipeTransport> for Transport {
    fn from(t: ReadPipeTransport) -> Transport {
        t.t
    }
}

impl From<WritePipeTransport> for Transport {
    fn from(t: WritePipeTransport) -> Transport {
        t.t
    }
}
