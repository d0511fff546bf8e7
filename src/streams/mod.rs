//! Streams (asyncio's `streams.py`): `StreamReader` and `StreamWriter` over a transport and
//! a stream protocol, `Stream` (both halves in one futures-io object), `open_connection` and
//! `start_server`, and the ways to move a connection between callback protocols and async
//! code.

mod buf;
mod errors;
mod protocol;
mod reader;
mod state;
mod stream;
mod writer;

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::path::Path;
use std::rc::Rc;

pub use errors::{IncompleteRead, LimitOverrun};
pub use reader::StreamReader;
pub use stream::Stream;
pub use writer::StreamWriter;

use crate::event_loop::ExceptionContext;
use crate::net::{ConnectOptions, create_connection, unix_connect};
use crate::server::{Server, ServerOptions, create_server, unix_server};
use crate::transports::Transport;
use protocol::{OnConnect, StreamProto};
use state::StreamState;

/// asyncio's default stream buffer limit: 64 KiB.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// Closes the transport when the last reader/writer handle of a connection is dropped, as
/// asyncio's `StreamWriter.__del__` does: a dropped stream does not leak its connection.
#[derive(Debug)]
pub(crate) struct StreamGuard(std::cell::RefCell<Transport>);

impl StreamGuard {
    /// After `start_tls`: closing means closing the TLS transport.
    #[cfg(feature = "tls")]
    pub(crate) fn set(&self, t: Transport) {
        *self.0.borrow_mut() = t;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let t = self.0.borrow();
        if !t.is_closing() {
            t.close();
        }
    }
}

/// The stream pair over a connection's transport and stream state.
pub(crate) fn pair(t: Transport, state: Rc<StreamState>) -> (StreamReader, StreamWriter) {
    let guard = Rc::new(StreamGuard(std::cell::RefCell::new(t.clone())));
    (
        StreamReader::new(state.clone(), t.clone(), guard.clone()),
        StreamWriter::new(state, t, guard),
    )
}

/// A fresh stream state and the protocol that feeds it.
fn stream_protocol(limit: usize) -> (Rc<StreamState>, StreamProto) {
    let state = Rc::new(StreamState::new(limit));
    (state.clone(), StreamProto::new(state, None))
}

/// A fresh stream state and its protocol as a transport holds it, for transports started
/// outside this module (the pipe transports); [`pair`] makes the streams once it runs.
#[cfg(unix)]
pub(crate) fn stream_protocol_obj(limit: usize) -> (Rc<StreamState>, crate::transports::ProtoRc) {
    use crate::transports::StreamProtocol;
    let (state, proto) = stream_protocol(limit);
    (state, StreamProtocol::into_obj(proto))
}

/// Opens a TCP connection and returns its stream pair (asyncio's `open_connection`).
/// `options` are [`create_connection`]'s, plus the stream buffer
/// [`limit`](ConnectOptions::limit).
///
/// ```no_run
/// # tulip::run(async {
/// let (mut reader, writer) = tulip::open_connection("127.0.0.1", 8888, Default::default()).await?;
/// writer.write(b"hello\n");
/// writer.drain().await?;
/// let line = reader.readline().await?;
/// # std::io::Result::Ok(()) });
/// ```
///
/// # Errors
/// As [`create_connection`].
///
/// # Cancel safety
/// As [`create_connection`]: dropping it before it completes leaves nothing behind (a name
/// lookup still running is discarded, connection attempts are closed, a transport already
/// started — waiting for a TLS handshake — is aborted), and a new call starts over.
pub async fn open_connection(
    host: &str,
    port: u16,
    mut options: ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    let (state, proto) = stream_protocol(options.take_limit()?);
    let (t, _) = create_connection(|| proto, host, port, options).await?;
    Ok(pair(t, state))
}

/// Opens a Unix stream connection and returns its stream pair (asyncio's
/// `open_unix_connection`). `options`: as
/// [`create_unix_connection`](crate::create_unix_connection)'s, plus the stream buffer
/// [`limit`](ConnectOptions::limit).
///
/// # Errors
/// As [`create_unix_connection`](crate::create_unix_connection): options a Unix socket
/// cannot honour are refused with `InvalidInput`.
///
/// # Cancel safety
/// As [`open_connection`]: dropping it closes the socket being connected, or aborts the
/// transport already started; nothing is left behind.
pub async fn open_unix_connection(
    path: impl AsRef<Path>,
    mut options: ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    let (state, proto) = stream_protocol(options.take_limit()?);
    let (t, _) = unix_connect(|| proto, path.as_ref(), options, "open_unix_connection").await?;
    Ok(pair(t, state))
}

/// What a `start_server` callback may return: `()`, or a `Result` whose error is reported
/// to the loop's exception handler.
pub trait HandlerResult: 'static {
    /// Reports an error, if this is one.
    fn report(self);
}

impl HandlerResult for () {
    fn report(self) {}
}

impl<E: Display + 'static> HandlerResult for Result<(), E> {
    fn report(self) {
        if let Err(e) = self {
            if let Some(lp) = crate::try_get_running_loop() {
                let mut ctx = ExceptionContext::new(format!("client_connected_cb failed: {e}"));
                // It runs in the handler's task: the context names it (asyncio's 'task').
                if let Some(task) = crate::current_task() {
                    ctx = ctx.with_task(task);
                }
                lp.call_exception_handler(&ctx);
            }
        }
    }
}

fn on_connect<F, Fut>(cb: Rc<F>) -> OnConnect
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: HandlerResult,
{
    // The user's function runs in the task, not here inside the transport's call of the
    // stream protocol; the task starts after `connection_made`, as asyncio's does.
    Box::new(move |r, w| {
        crate::spawn(async move { cb(r, w).await.report() }).detach();
    })
}

/// The per-connection stream protocol of a `start_server`.
fn serving_protocol<F, Fut>(cb: F, limit: usize) -> impl FnMut() -> StreamProto + 'static
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: HandlerResult,
{
    let cb = Rc::new(cb);
    move || {
        StreamProto::new(
            Rc::new(StreamState::new(limit)),
            Some(on_connect(cb.clone())),
        )
    }
}

/// Serves TCP connections with an async function (asyncio's `start_server`):
/// `client_connected_cb(reader, writer)` runs as a task per connection. `options` are
/// [`create_server`]'s, plus the stream buffer [`limit`](ServerOptions::limit).
///
/// ```no_run
/// # tulip::run(async {
/// let server = tulip::start_server(
///     |mut reader: tulip::StreamReader, writer: tulip::StreamWriter| async move {
///         while let Ok(line) = reader.readline().await {
///             if line.is_empty() {
///                 break;
///             }
///             writer.write(&line);
///             writer.drain().await?;
///         }
///         std::io::Result::Ok(())
///     },
///     "127.0.0.1",
///     8888,
///     Default::default(),
/// )
/// .await?;
/// server.serve_forever().await
/// # });
/// ```
///
/// # Errors
/// As [`create_server`].
///
/// # Cancel safety
/// Cancel-safe, as [`create_server`]: it waits only for the name lookup (which finishes on
/// the blocking pool and is discarded); nothing is bound and no callback runs until it
/// completes.
pub async fn start_server<F, Fut>(
    client_connected_cb: F,
    host: &str,
    port: u16,
    mut options: ServerOptions,
) -> io::Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: HandlerResult,
{
    let factory = serving_protocol(client_connected_cb, options.take_limit()?);
    create_server(factory, host, port, options).await
}

/// Serves Unix-socket connections with an async function (asyncio's `start_unix_server`).
/// `options`: as [`create_unix_server`](crate::create_unix_server)'s, plus the stream buffer
/// [`limit`](ServerOptions::limit).
///
/// # Errors
/// As [`create_unix_server`](crate::create_unix_server): options a Unix socket cannot honour are refused with
/// `InvalidInput`.
///
/// # Cancel safety
/// Cancel-safe: it completes at its first poll (it waits for nothing), as
/// [`create_unix_server`](crate::create_unix_server).
pub async fn start_unix_server<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
    mut options: ServerOptions,
) -> io::Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: HandlerResult,
{
    let factory = serving_protocol(client_connected_cb, options.take_limit()?);
    unix_server(factory, path.as_ref(), options, "start_unix_server")
}

impl Transport {
    /// Hands this connection over to async code as a stream pair: the transport's protocol
    /// is replaced by the stream protocol, and `received` — bytes the old protocol got and
    /// did not consume — is what the reader reads first. Call it from inside
    /// `data_received` with the rest of the slice, or from anywhere else.
    ///
    /// ```
    /// use tulip::{Protocol, Transport};
    ///
    /// /// Reads a greeting line with callbacks, then continues in an async fn.
    /// struct Greeting(Option<Transport>);
    ///
    /// impl Protocol for Greeting {
    ///     fn connection_made(&mut self, t: &Transport) {
    ///         self.0 = Some(t.clone());
    ///     }
    ///     fn data_received(&mut self, data: &[u8]) {
    ///         if let Some(nl) = data.iter().position(|&b| b == b'\n') {
    ///             let t = self.0.take().unwrap();
    ///             let (mut reader, writer) = t.into_streams(&data[nl + 1..], None);
    ///             tulip::spawn(async move {
    ///                 let line = reader.readline().await?;
    ///                 writer.write(&line);
    ///                 writer.drain().await
    ///             })
    ///             .detach();
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// The streams take over the transport as it is: reading is resumed if the old protocol
    /// had paused it, and a write side over its high-water mark makes the writer's `drain`
    /// wait. `limit` is the stream buffer limit; `None` for [`DEFAULT_LIMIT`] (a zero limit,
    /// which the connecting and serving functions refuse, is taken as 1 here).
    pub fn into_streams(
        &self,
        received: &[u8],
        limit: Option<usize>,
    ) -> (StreamReader, StreamWriter) {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).max(1);
        let (state, proto) = stream_protocol(limit);
        state.buf.borrow_mut().extend(received);
        state.set_transport(Some(self.clone()));
        state.write_paused.set(self.inner.is_writing_paused());
        self.set_protocol(proto);
        self.resume_reading();
        pair(self.clone(), state)
    }

    /// Pauses reading until `fut` completes, running it as a task: the "async
    /// `data_received`" — a protocol hands the slow work for one request to a task and reads
    /// the next request only when it is done, so answers stay in order. Returns the task.
    ///
    /// # Cancel safety
    /// The returned [`Task`](crate::Task) is as every task: dropping it (or only its
    /// `.await`) leaves `fut` running, and reading resumes when it is done. Cancelling it
    /// ([`Task::cancel`](crate::Task::cancel), or the loop closing) drops `fut` where it
    /// waits — what it had done so far stays done, the rest is lost — and resumes reading,
    /// so the connection never stays paused.
    pub fn pause_reading_until<F>(&self, fut: F) -> crate::Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.pause_reading();
        // Resumes reading when `fut` is done, or dropped by a cancel.
        let resume = ResumeOnDrop(self.clone());
        crate::spawn(async move {
            let out = fut.await;
            drop(resume);
            out
        })
    }
}

/// Resumes the transport's reading when dropped (`pause_reading_until`'s task finishing or
/// cancelled); `resume_reading` only registers the socket again, it runs no user code.
struct ResumeOnDrop(Transport);

impl Drop for ResumeOnDrop {
    fn drop(&mut self) {
        self.0.resume_reading();
    }
}

/// A stream pair over one end of a pipe — a subprocess's stdin (`reads == false`: use the
/// writer) or its stdout or stderr (`reads`: use the reader). `fd` must be non-blocking.
#[cfg(unix)]
pub(crate) fn pipe_pair(
    lp: &crate::EventLoop,
    fd: std::os::fd::OwnedFd,
    reads: bool,
    limit: usize,
) -> (StreamReader, StreamWriter) {
    let (state, proto) = stream_protocol(limit);
    let obj = <StreamProto as crate::transports::StreamProtocol>::into_obj(proto);
    let t = crate::transports::pipe::start(lp, fd, reads, obj);
    pair(t.handle(), state)
}
