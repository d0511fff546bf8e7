//! `sendfile`: a file sent to a socket or a transport straight from the page cache
//! (asyncio's `loop.sock_sendfile` and `loop.sendfile`, the seed's `_sock_sendfile_native`).
//!
//! The zero-copy path is `sendfile(2)` (`sys/sendfile.rs`) in a loop on writability: try at
//! once, and on `WouldBlock` wait until the socket is writable — for a bare socket through the
//! same registration as `sock_sendall` (`sock.rs`'s `Waiter`), for a transport through the
//! transport's own writer (`transports/sendfile.rs`). The file is read at `offset + sent`
//! each time, never through its position; the position is set to `offset + sent` at the end
//! (also when the future is dropped part-way), as asyncio's `file.seek` does.
//!
//! Where `sendfile(2)` cannot be used — a file that is not a regular file, a TLS or pipe
//! transport, a system without the call, a file system that refuses it — the copy fallback
//! reads the file in chunks and sends them with ordinary writes, when `fallback` is true;
//! otherwise the error is [`SendfileNotAvailable`] (`ErrorKind::Unsupported`). A regular
//! file is read with `pread` on the loop's thread (from the page cache that takes
//! microseconds); anything else (a pipe, a terminal) on the blocking pool, since a read
//! of it may wait.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::{SockRef, Type};

use crate::error::SendfileNotAvailable;
use crate::selector::Direction;
use crate::sock::{Waiter, addr_of};
use crate::sys::{self, SEND_FLAGS, is_would_block};
use crate::transports::Transport;
use crate::transports::sendfile::ZeroCopy;

/// Bytes sent with `sendfile(2)` in one poll before the task yields to the loop (a fast
/// reader would otherwise keep the socket writable for ever).
const NATIVE_BUDGET: u64 = 16 << 20;
/// Chunks the copy fallback reads per poll before it yields.
const COPY_BUDGET: usize = 16;
/// The copy fallback's chunk to a socket or a socket transport (asyncio's
/// `SENDFILE_FALLBACK_READBUFFER_SIZE`).
const COPY_CHUNK: usize = 256 * 1024;
/// The copy fallback's chunk through a transport's `write` (asyncio's 16 KiB): under the
/// default high-water mark, so one chunk alone never pauses the protocol.
const WRITE_CHUNK: usize = 16 * 1024;

// ---- the job: what to send, what was sent ------------------------------------------------

/// One sendfile's file, range and progress; dropped, it sets the file's position.
struct Job<'a> {
    file: &'a File,
    offset: u64,
    count: Option<u64>,
    sent: u64,
    finished: bool,
    /// Copy even where `sendfile(2)` would do ([`Sendfile::force_copy`]).
    copy: bool,
}

impl<'a> Job<'a> {
    fn new(file: &'a File, offset: u64, count: Option<u64>) -> Job<'a> {
        Job {
            file,
            offset,
            count,
            sent: 0,
            finished: false,
            copy: false,
        }
    }

    /// The checks of the first poll: a positive count; whether the file is a regular one.
    fn check(&self) -> io::Result<bool> {
        if self.count == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "sendfile count must be a positive integer (None sends to the end of the file)",
            ));
        }
        Ok(self.file.metadata()?.is_file())
    }

    /// How much to send next, at most `cap`; 0 once `count` bytes were sent.
    fn want(&self, cap: usize) -> usize {
        match self.count {
            None => cap,
            Some(c) => usize::try_from(c - self.sent).map_or(cap, |left| left.min(cap)),
        }
    }

    /// `sendfile(2)` until the socket is full (`WouldBlock`), the range is sent (`Done`),
    /// or the budget is spent (`Yield`). `Unavailable` if the very first call says this file
    /// or socket cannot be sent from.
    fn send_native(&mut self, sock: RawFd) -> io::Result<Step> {
        let start = self.sent;
        loop {
            let want = self.want(sys::SENDFILE_MAX_CHUNK);
            if want == 0 {
                return Ok(Step::Done);
            }
            match sys::sendfile(sock, self.file.as_raw_fd(), self.offset + self.sent, want) {
                Ok(0) => return Ok(Step::Done), // the end of the file
                Ok(n) => {
                    self.sent += n as u64;
                    if self.sent - start >= NATIVE_BUDGET {
                        return Ok(Step::Yield);
                    }
                }
                Err(e) if self.sent == 0 && sys::is_sendfile_unsupported(&e) => {
                    return Ok(Step::Unavailable);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets the file's position after what was sent (once; not if nothing was).
    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) || self.sent == 0 {
            return;
        }
        // A file that cannot seek (a pipe) has no position to set.
        let mut f = self.file;
        f.seek(SeekFrom::Start(self.offset + self.sent)).ok();
    }
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How a run of `sendfile(2)` calls ended.
enum Step {
    Done,
    Yield,
    Unavailable,
}

fn not_available(reason: &'static str) -> io::Error {
    SendfileNotAvailable::new(reason).into()
}

fn lost() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "Connection lost")
}

// ---- the copy fallback: reading ----------------------------------------------------------

/// A read of a file that is not a regular file, on the blocking pool.
type BlockingRead = blocking::Task<(File, Vec<u8>, io::Result<usize>)>;

/// The copy fallback's buffer and its reads.
struct Copy {
    buf: Vec<u8>,
    /// Bytes of `buf` read and not yet sent: `buf[pos..len]`.
    len: usize,
    pos: usize,
    chunk: usize,
    /// `Some` for a file that is not a regular file: read on the blocking pool, through a
    /// clone of the file (a `File` on another thread).
    other: Option<Other>,
}

enum Other {
    Idle(File),
    Reading(BlockingRead),
    Gone,
}

impl Copy {
    /// A copy of `job`'s range in chunks of `chunk`.
    fn new(job: &Job<'_>, chunk: usize, regular: bool) -> io::Result<Copy> {
        let other = if regular {
            None
        } else {
            let mut f = job.file.try_clone()?;
            if job.offset != 0 {
                f.seek(SeekFrom::Start(job.offset))?;
            }
            Some(Other::Idle(f))
        };
        Ok(Copy {
            buf: Vec::new(),
            len: 0,
            pos: 0,
            chunk,
            other,
        })
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..self.len]
    }

    /// Reads the next chunk into the (sent) buffer; `Ok(0)` at the end of the range.
    fn poll_fill(&mut self, cx: &mut Context<'_>, job: &Job<'_>) -> Poll<io::Result<usize>> {
        debug_assert_eq!(self.pos, self.len);
        let want = job.want(self.chunk);
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(self.chunk, 0);
        let r = match &mut self.other {
            None => Poll::Ready(job.file.read_at(&mut buf[..want], job.offset + job.sent)),
            Some(other) => {
                let r = poll_read_other(cx, other, &mut buf, want);
                if r.is_pending() {
                    return Poll::Pending;
                }
                r
            }
        };
        self.buf = buf;
        if let Poll::Ready(Ok(n)) = r {
            self.pos = 0;
            self.len = n;
        }
        r
    }
}

/// One read of up to `want` bytes of a non-regular file on the blocking pool: the buffer
/// goes to the pool with the file and comes back in `buf`.
fn poll_read_other(
    cx: &mut Context<'_>,
    other: &mut Other,
    buf: &mut Vec<u8>,
    want: usize,
) -> Poll<io::Result<usize>> {
    loop {
        match std::mem::replace(other, Other::Gone) {
            Other::Idle(mut f) => {
                let mut b = std::mem::take(buf);
                *other = Other::Reading(blocking::unblock(move || {
                    let r = loop {
                        match f.read(&mut b[..want]) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            r => break r,
                        }
                    };
                    (f, b, r)
                }));
            }
            Other::Reading(mut task) => match Pin::new(&mut task).poll(cx) {
                Poll::Pending => {
                    *other = Other::Reading(task);
                    return Poll::Pending;
                }
                Poll::Ready((f, b, r)) => {
                    *other = Other::Idle(f);
                    *buf = b;
                    return Poll::Ready(r);
                }
            },
            Other::Gone => return Poll::Ready(Err(io::Error::other("sendfile read failed"))),
        }
    }
}

// ---- sock_sendfile -----------------------------------------------------------------------

/// Sends `file` from `offset` to the connected stream socket `sock` — `count` bytes, or to the
/// end of the file for `None` — with `sendfile(2)`, and returns the bytes sent (asyncio's
/// `loop.sock_sendfile`). The file's position is set to `offset` + the bytes sent at the
/// end.
///
/// With `fallback`, a file that `sendfile(2)` cannot send (not a regular file, or refused by
/// the system) is copied instead: read in chunks and sent as [`sock_sendall`](crate::sock_sendall)
/// does; without, that is a [`SendfileNotAvailable`] error.
///
/// ```no_run
/// # tulip::run(async {
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// listener.set_nonblocking(true)?;
/// let (conn, _) = tulip::sock_accept(&listener).await?;
/// let file = std::fs::File::open("index.html")?;
/// let sent = tulip::sock_sendfile(&conn, &file, 0, None, true).await?;
/// # let _ = sent; std::io::Result::Ok(()) });
/// ```
///
/// # Errors
/// `InvalidInput` for a socket in blocking mode, a socket that is not a stream socket, or a
/// `count` of 0; [`SendfileNotAvailable`] (kind `Unsupported`) as above; what `sendfile(2)`
/// or `send` report (`BrokenPipe`, `ConnectionReset`, …); what reading the file reports.
pub fn sock_sendfile<'a, S: AsFd>(
    sock: &'a S,
    file: &'a File,
    offset: u64,
    count: Option<u64>,
    fallback: bool,
) -> SockSendfile<'a, S> {
    SockSendfile {
        sock,
        job: Job::new(file, offset, count),
        fallback,
        mode: SockMode::Start,
        waiter: Waiter::new(Direction::Write),
    }
}

/// The future of [`sock_sendfile`].
///
/// # Cancel safety
/// Not cancel-safe: dropped part-way, an unknown prefix of the range was sent; the file's
/// position is set after it, and no registration is left with the loop.
#[must_use = "futures do nothing unless awaited"]
pub struct SockSendfile<'a, S> {
    sock: &'a S,
    job: Job<'a>,
    fallback: bool,
    mode: SockMode,
    waiter: Waiter,
}

enum SockMode {
    Start,
    Native,
    Copy(Copy),
    Done,
}

impl<S> SockSendfile<'_, S> {
    /// Copies the file (read and `send`) even where `sendfile(2)` could send it, as
    /// [`Sendfile::force_copy`] does.
    pub fn force_copy(mut self, yes: bool) -> Self {
        self.job.copy = yes;
        self
    }

    /// How many bytes were sent so far.
    pub fn sent(&self) -> u64 {
        self.job.sent
    }
}

impl<S: AsFd> SockSendfile<'_, S> {
    fn start(&mut self) -> io::Result<SockMode> {
        let regular = self.job.check()?;
        if SockRef::from(self.sock).r#type()? != Type::STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "sock_sendfile: only stream sockets are supported",
            ));
        }
        if self.job.copy {
            Copy::new(&self.job, COPY_CHUNK, regular).map(SockMode::Copy)
        } else if regular {
            Ok(SockMode::Native)
        } else {
            self.unavailable("not a regular file", false)
        }
    }

    fn unavailable(&self, reason: &'static str, regular: bool) -> io::Result<SockMode> {
        if self.fallback {
            Copy::new(&self.job, COPY_CHUNK, regular).map(SockMode::Copy)
        } else {
            Err(not_available(reason))
        }
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let fd = self.sock.as_fd().as_raw_fd();
        let addr = addr_of(self.sock);
        loop {
            match &mut self.mode {
                SockMode::Start => self.mode = self.start()?,
                SockMode::Native => {
                    let job = &mut self.job;
                    match self.waiter.poll_io(cx, fd, addr, || job.send_native(fd)) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(r) => match r? {
                            Step::Done => return Poll::Ready(Ok(self.job.sent)),
                            Step::Yield => {
                                cx.waker().wake_by_ref();
                                return Poll::Pending;
                            }
                            Step::Unavailable => {
                                self.mode =
                                    self.unavailable("sendfile(2) refused this file", true)?;
                            }
                        },
                    }
                }
                SockMode::Copy(copy) => {
                    for _ in 0..COPY_BUDGET {
                        if copy.pos == copy.len {
                            match copy.poll_fill(cx, &self.job) {
                                Poll::Pending => return Poll::Pending,
                                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(self.job.sent)),
                                Poll::Ready(r) => r?,
                            };
                        }
                        let sock = SockRef::from(self.sock);
                        let job = &mut self.job;
                        let r = self.waiter.poll_io(cx, fd, addr, || {
                            loop {
                                let n = sock.send_with_flags(copy.pending(), SEND_FLAGS)?;
                                copy.pos += n;
                                job.sent += n as u64;
                                if copy.pos == copy.len {
                                    return Ok(());
                                }
                            }
                        });
                        if let Poll::Ready(r) = r {
                            r?;
                        } else {
                            return Poll::Pending;
                        }
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                SockMode::Done => {
                    return Poll::Ready(Err(io::Error::other(
                        "sock_sendfile polled after completion",
                    )));
                }
            }
        }
    }
}

impl<S: AsFd> Future for SockSendfile<'_, S> {
    type Output = io::Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.poll_step(cx);
        if r.is_ready() {
            this.mode = SockMode::Done;
            this.job.finish();
        }
        r
    }
}

impl<S> fmt::Debug for SockSendfile<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockSendfile")
            .field("sent", &self.job.sent)
            .field("waiting", &self.waiter.is_waiting())
            .finish_non_exhaustive()
    }
}

// ---- sendfile on a transport -------------------------------------------------------------

/// Sends `file` from `offset` over `transport` — `count` bytes, or to the end of the file for
/// `None` — and returns the bytes sent (asyncio's `loop.sendfile(transport, file, offset,
/// count, fallback=…)`). The file's position is set to `offset` + the bytes sent at the end.
///
/// On a TCP or Unix socket transport the file goes out with `sendfile(2)`, straight from the
/// page cache: first what the transport has buffered is sent, then the file, then what the
/// protocol wrote meanwhile. Writes made while the file is being sent are **held and sent
/// after it** (asyncio refuses them), counting in the write buffer's size, so
/// `pause_writing` is delivered as usual; `close()` and `write_eof()` also wait for the
/// file. Reading goes on: the protocol keeps receiving `data_received`.
///
/// Where zero-copy is impossible — a TLS transport, a pipe transport, a file that is not a
/// regular file — the file is copied, in chunks, when `fallback` is true, and
/// [`SendfileNotAvailable`] is returned otherwise. On a socket or pipe transport, the copy
/// holds the protocol's writes back just as `sendfile(2)` does; on a TLS transport it goes
/// through [`Transport::write`] and waits whenever the transport pauses writing, so writes
/// made meanwhile land between chunks.
///
/// ```no_run
/// struct Hello;
/// impl tulip::Protocol for Hello {}
/// # tulip::run(async {
/// let (transport, _) = tulip::create_connection(|| Hello, "127.0.0.1", 8080, Default::default()).await?;
/// let file = std::fs::File::open("big.iso")?;
/// let sent = tulip::sendfile(&transport, &file, 0, None, true).await?;
/// transport.close();
/// # let _ = sent; std::io::Result::Ok(()) });
/// ```
///
/// # Errors
/// `NotConnected` if the transport is closing; `ResourceBusy` if another `sendfile` runs on
/// it; `InvalidInput` for a `count` of 0; [`SendfileNotAvailable`] (kind `Unsupported`) as
/// above; `ConnectionReset` if the connection is lost meanwhile; what `sendfile(2)` or
/// reading the file report.
pub fn sendfile<'a>(
    transport: &'a Transport,
    file: &'a File,
    offset: u64,
    count: Option<u64>,
    fallback: bool,
) -> Sendfile<'a> {
    Sendfile {
        transport,
        job: Job::new(file, offset, count),
        fallback,
        begun: false,
        mode: Mode::Start,
    }
}

/// The future of [`sendfile`].
///
/// # Cancel safety
/// Not cancel-safe: dropped part-way, an unknown prefix of the range was sent (the file's
/// position is set after it). The transport stays usable: the writes it held are sent, and
/// no registration is left with the loop.
#[must_use = "futures do nothing unless awaited"]
pub struct Sendfile<'a> {
    transport: &'a Transport,
    job: Job<'a>,
    fallback: bool,
    /// The transport's hook was begun: it must be ended.
    begun: bool,
    mode: Mode,
}

enum Mode {
    Start,
    /// Waiting for the transport's buffer to drain, then `sendfile(2)`.
    Native,
    /// The copy through the transport's hook (writes held).
    CopyHook(Copy),
    /// The copy through `Transport::write` (TLS).
    CopyWrite(Copy),
    Done,
}

impl Sendfile<'_> {
    /// Copies the file through the transport (read, then ordinary writes) even where
    /// `sendfile(2)` could send it: nginx's `sendfile off`, for file systems on which
    /// `sendfile(2)` misbehaves, and for measuring what zero-copy saves. The copy keeps the
    /// guarantees of the zero-copy path (writes made meanwhile are held).
    pub fn force_copy(mut self, yes: bool) -> Self {
        self.job.copy = yes;
        self
    }

    /// How many bytes were sent (or, copying, handed to the transport) so far.
    pub fn sent(&self) -> u64 {
        self.job.sent
    }

    fn hook(&self) -> Option<&dyn ZeroCopy> {
        self.transport.inner.zero_copy()
    }

    fn start(&mut self) -> io::Result<Mode> {
        if self.transport.is_closing() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "sendfile on a closing transport",
            ));
        }
        let regular = self.job.check()?;
        let Some(hook) = self.hook() else {
            return self.unavailable("the transport cannot send files zero-copy", regular);
        };
        hook.begin()?;
        let socket = hook.socket_fd().is_some();
        self.begun = true;
        if self.job.copy {
            return Copy::new(&self.job, COPY_CHUNK, regular).map(Mode::CopyHook);
        }
        match (regular, socket) {
            (true, true) => Ok(Mode::Native),
            (false, _) => self.unavailable("not a regular file", false),
            (true, false) => self.unavailable("the transport is not a socket", true),
        }
    }

    fn unavailable(&self, reason: &'static str, regular: bool) -> io::Result<Mode> {
        if !self.fallback && !self.job.copy {
            return Err(not_available(reason));
        }
        if self.begun {
            Copy::new(&self.job, COPY_CHUNK, regular).map(Mode::CopyHook)
        } else {
            Copy::new(&self.job, WRITE_CHUNK, regular).map(Mode::CopyWrite)
        }
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        loop {
            match &mut self.mode {
                Mode::Start => self.mode = self.start()?,
                Mode::Native => {
                    let Some(hook) = self.transport.inner.zero_copy() else {
                        return Poll::Ready(Err(lost()));
                    };
                    if hook.poll_flushed(cx)?.is_pending() {
                        return Poll::Pending;
                    }
                    let Some(fd) = hook.socket_fd() else {
                        return Poll::Ready(Err(lost()));
                    };
                    match self.job.send_native(fd) {
                        Ok(Step::Done) => return Poll::Ready(Ok(self.job.sent)),
                        Ok(Step::Yield) => {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Ok(Step::Unavailable) => {
                            self.mode = self.unavailable("sendfile(2) refused this file", true)?;
                        }
                        Err(e) if is_would_block(&e) => {
                            hook.wait_writable(cx);
                            return Poll::Pending;
                        }
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Mode::CopyHook(copy) => {
                    let Some(hook) = self.transport.inner.zero_copy() else {
                        return Poll::Ready(Err(lost()));
                    };
                    for _ in 0..COPY_BUDGET {
                        // One chunk in the transport's buffer at a time.
                        if hook.poll_flushed(cx)?.is_pending() {
                            return Poll::Pending;
                        }
                        match copy.poll_fill(cx, &self.job) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(self.job.sent)),
                            Poll::Ready(r) => r?,
                        };
                        hook.write_direct(copy.pending());
                        self.job.sent += copy.pending().len() as u64;
                        copy.pos = copy.len;
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Mode::CopyWrite(copy) => {
                    for _ in 0..COPY_BUDGET {
                        if self.transport.inner.poll_drain(cx)?.is_pending() {
                            return Poll::Pending;
                        }
                        if self.transport.is_closing() {
                            return Poll::Ready(Err(lost()));
                        }
                        match copy.poll_fill(cx, &self.job) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(self.job.sent)),
                            Poll::Ready(r) => r?,
                        };
                        self.transport.write(copy.pending());
                        self.job.sent += copy.pending().len() as u64;
                        copy.pos = copy.len;
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Mode::Done => {
                    return Poll::Ready(Err(io::Error::other("sendfile polled after completion")));
                }
            }
        }
    }

    /// Ends the transport's sendfile (held writes go out) and sets the file's position.
    fn finish(&mut self) {
        if std::mem::replace(&mut self.begun, false) {
            if let Some(hook) = self.transport.inner.zero_copy() {
                hook.end();
            }
        }
        self.job.finish();
    }
}

impl Future for Sendfile<'_> {
    type Output = io::Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.poll_step(cx);
        if r.is_ready() {
            this.mode = Mode::Done;
            this.finish();
        }
        r
    }
}

impl Drop for Sendfile<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for Sendfile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sendfile")
            .field("sent", &self.job.sent)
            .field("zero_copy", &matches!(self.mode, Mode::Native))
            .finish_non_exhaustive()
    }
}
