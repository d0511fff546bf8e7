//! # tulip — asyncio's event loop, rebuilt in Rust
//!
//! tulip is a callback-driven selector loop with an executor on top of it, so that
//! callback code (`call_soon`, `call_later`, `add_reader`) and `async fn` code (tasks that
//! await `sock_recv`, `sock_sendall`, …) share one thread with no locks. The names and the
//! semantics are asyncio's; where Rust forces a difference, the item's documentation says so.
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//!
//! #[tulip::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     listener.set_nonblocking(true)?;
//!     let addr = listener.local_addr()?;
//!     let server = tulip::spawn(async move {
//!         let (conn, _) = tulip::sock_accept(&listener).await?;
//!         let data = tulip::sock_recv(&conn, 1024).await?;
//!         tulip::sock_sendall(&conn, &data).await
//!     });
//!     let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
//!     client.set_nonblocking(true)?;
//!     tulip::sock_connect(&client, addr).await?;
//!     tulip::sock_sendall(&client, b"hello").await?;
//!     assert_eq!(tulip::sock_recv(&client, 1024).await?, b"hello");
//!     server.await
//! }
//! ```
//!
//! ## One iteration of the loop
//! Each iteration of [`EventLoop`] does what asyncio's `BaseEventLoop._run_once` does:
//! 1. apply pending changes of the kernel's interest (at most one system call per file
//!    descriptor whose reader/writer set changed, none for a steady connection);
//! 2. wait for I/O with timeout 0 if any callback is ready, else until the nearest timer;
//! 3. turn I/O events into ready callbacks (and wake tasks waiting on sockets), take what other
//!    threads sent through the thread-safe inbox, move due timers to the ready queue;
//! 4. run the callbacks that were ready when the iteration began — and only those, so a
//!    callback that schedules another cannot starve I/O.
//!
//! A task is a callback too: a woken task's step is put on the ready queue, like asyncio's
//! `Task.__step`.
//!
//! ## When a loop ends, and where errors go
//! Closing a loop — which [`run`], `#[tulip::main]` and `#[tulip::test]` do when they return —
//! releases everything still registered on it: tasks are cancelled, and transports and
//! servers still open are closed (sockets closed, protocols dropped; a warning naming each in
//! debug mode). Dropping an unclosed loop's owning handle closes it the same way (see
//! [`EventLoop`]'s "Closing"), and dropping the last [`Server`] handle closes the server, so
//! nothing leaks a file descriptor.
//!
//! Errors the loop cannot return to anyone — a panicking callback, a detached task's panic,
//! a failed `start_server` handler, a failed TLS handshake, writes after the connection was
//! lost — go to the loop's exception handler or to the `log` facade; with no logger
//! installed, they are written to stderr, one line each, so they never vanish (Python's
//! `logging.lastResort`; [`set_last_resort`] turns it off).
//!
//! ## Where things are
//! asyncio's functions are at the crate root, under asyncio's names ([`run`], [`spawn`],
//! [`sleep`], [`sock_recv`], [`create_connection`], [`open_connection`], [`start_server`], …),
//! and so are the types nearly every program names ([`EventLoop`], [`Task`], [`Protocol`],
//! [`BufferedProtocol`], [`Buffered`], [`Transport`], [`ProtocolRef`], [`Server`],
//! [`StreamReader`], [`StreamWriter`], [`Stream`]) and the errors, as asyncio's exceptions
//! ([`Cancelled`], [`TimeoutError`], [`IncompleteRead`], …). The futures those functions
//! return, their options and the helper types are in the module of their area, as in tokio:
//! - [`time`]: [`Sleep`](time::Sleep), [`Timeout`](time::Timeout);
//! - [`task`]: [`YieldNow`](task::YieldNow), [`CancelTask`](task::CancelTask);
//! - [`task`], for [`TaskGroup`]: [`GroupTask`](task::GroupTask),
//!   [`RunTaskGroup`](task::RunTaskGroup), [`TaskFailure`](task::TaskFailure),
//!   [`SpawnError`](task::SpawnError); [`time`], for [`interval`]: [`Interval`](time::Interval);
//! - [`task`], for names and introspection ([`current_task`], [`all_tasks`]):
//!   [`Builder`](task::Builder), [`TaskInfo`](task::TaskInfo), [`TaskState`](task::TaskState);
//! - [`sock`]: [`SockRecv`](sock::SockRecv) … [`SockSendTo`](sock::SockSendTo), and the
//!   [`Accept`](sock::Accept) and [`RecvFrom`](sock::RecvFrom) traits;
//! - [`net`]: [`ConnectOptions`](net::ConnectOptions), [`ServerOptions`](net::ServerOptions),
//!   [`DatagramOptions`](net::DatagramOptions), [`HAPPY_EYEBALLS_DELAY`](net::HAPPY_EYEBALLS_DELAY);
//! - [`streams`]: [`DEFAULT_LIMIT`](streams::DEFAULT_LIMIT), [`HandlerResult`](streams::HandlerResult);
//! - [`transports`]: [`ExtraInfo`](transports::ExtraInfo), [`TransportFd`](transports::TransportFd),
//!   [`StreamProtocol`](transports::StreamProtocol);
//! - `tls`: `TlsOptions`, `TlsConfig`, `TlsError` (feature `tls`);
//! - [`dns`]: [`AddrInfoHints`](dns::AddrInfoHints), [`AddrInfo`](dns::AddrInfo),
//!   [`NameInfoFlags`](dns::NameInfoFlags), the [`GetAddrInfo`](dns::GetAddrInfo) and
//!   [`GetNameInfo`](dns::GetNameInfo) futures;
//! - [`executor`]: the [`RunInExecutor`](executor::RunInExecutor) and
//!   [`ShutdownDefaultExecutor`](executor::ShutdownDefaultExecutor) futures;
//! - [`sendfile`](mod@sendfile): the [`Sendfile`](sendfile::Sendfile) and
//!   [`SockSendfile`](sendfile::SockSendfile) futures;
//! - [`testing`]: [`MemorySocket`](testing::MemorySocket) (connections in memory that drive
//!   real protocols and streams without sockets) and [`settle`](testing::settle);
//! - `hyper`: `TulipExecutor`, `TulipTimer`, `TulipSleep`, and `hyper::rt::Read`/`Write` for
//!   [`Stream`] (feature `hyper`: hyper 1.x on tulip).
//!
//! Every entry point that connects or serves takes one options value, last —
//! `open_connection(host, port, options)`, `start_server(cb, host, port, options)` — with
//! `Default::default()` for asyncio's defaults. An option the entry point cannot honour (Happy
//! Eyeballs on a Unix socket, a stream `limit` for a callback protocol) is refused with
//! `InvalidInput` naming it, as asyncio raises `TypeError` for a keyword it does not take.
//! A [`BufferedProtocol`] is passed wrapped, `Buffered(p)`; a [`Protocol`] as it is.
//!
//! ## asyncio ↔ tulip
//! | asyncio | tulip |
//! |---|---|
//! | `asyncio.run(main())` | [`run`] or `#[tulip::main]` |
//! | `asyncio.get_running_loop()` | [`get_running_loop`] |
//! | `loop.call_soon` / `call_later` / `call_at` | [`EventLoop::call_soon`], [`EventLoop::call_later`], [`EventLoop::call_at`] |
//! | `loop.call_soon_threadsafe` | [`LoopHandle::call_soon_threadsafe`] |
//! | `loop.create_future()` | [`EventLoop::create_future`] → [`LoopFuture`] |
//! | `asyncio.create_task` / `loop.create_task` | [`spawn`] / [`EventLoop::spawn`] → [`Task`] |
//! | `asyncio.sleep`, `asyncio.wait_for` / `asyncio.timeout` | [`sleep`], [`timeout`] |
//! | `asyncio.sleep(0)` | [`yield_now`] |
//! | `asyncio.TaskGroup`, `tg.create_task` | [`TaskGroup::run`], [`TaskGroup::spawn`] → [`GroupTask`](task::GroupTask) |
//! | `ExceptionGroup` (of a `TaskGroup`) | [`TaskGroupError`] of [`TaskFailure`](task::TaskFailure)s |
//! | a self-re-arming `call_later` | [`interval`] → [`Interval`](time::Interval), a `futures_core::Stream` |
//! | `asyncio.gather` / `wait(FIRST_COMPLETED)` / `as_completed` / `shield` | `futures_util`'s `join_all` / `try_join_all`, `select`, `FuturesUnordered`; a spawned [`Task`] (README, "Tasks") |
//! | `loop.sock_recv` … `loop.sock_sendto` | [`sock_recv`] … [`sock_sendto`] |
//! | `asyncio.Protocol`, `asyncio.BufferedProtocol` | [`Protocol`], [`BufferedProtocol`] (passed as [`Buffered(p)`](Buffered)) |
//! | `asyncio.open_connection` / `start_server` (`limit=`, `**kwds`) | [`open_connection`] / [`start_server`] with [`ConnectOptions`](net::ConnectOptions) / [`ServerOptions`](net::ServerOptions) (`.limit(n)`) |
//! | `asyncio.Transport` | [`Transport`] |
//! | `loop.create_connection` | [`create_connection`] (Happy Eyeballs on by default) |
//! | `loop.create_server` → `Server` | [`create_server`] → [`Server`] |
//! | `loop.create_unix_connection` / `create_unix_server` | [`create_unix_connection`], [`create_unix_server`] |
//! | `loop.connect_accepted_socket` | [`connect_accepted_socket`] |
//! | `loop.create_datagram_endpoint` | [`create_datagram_endpoint`] with [`DatagramOptions`](net::DatagramOptions) → [`DatagramTransport`] |
//! | `asyncio.DatagramProtocol` | [`DatagramProtocol`] |
//! | `loop.sock_recvfrom_into` | [`sock_recvfrom_into`] |
//! | `loop.run_in_executor(None, f)` / `asyncio.to_thread(f)` | [`run_in_executor`], [`EventLoop::run_in_executor`], [`to_thread`] |
//! | `loop.shutdown_default_executor(timeout)` | [`EventLoop::shutdown_default_executor`] |
//! | `loop.getaddrinfo` / `loop.getnameinfo` | [`getaddrinfo`] with [`AddrInfoHints`](dns::AddrInfoHints) → [`AddrInfo`](dns::AddrInfo), [`getnameinfo`] with [`NameInfoFlags`](dns::NameInfoFlags) |
//! | `asyncio.run_coroutine_threadsafe(coro, loop)` | [`run_coroutine_threadsafe`] → [`ConcurrentFuture`] |
//! | `loop.call_soon_threadsafe(fut.set_result, v)` | [`oneshot`] → [`Completer`], [`ConcurrentFuture`] |
//! | `loop.sendfile` / `loop.sock_sendfile` | [`sendfile`](fn@sendfile) / [`sock_sendfile`] ([`SendfileNotAvailable`]) |
//! | `loop.connect_read_pipe` / `connect_write_pipe` | [`unix::connect_read_pipe`] → [`unix::ReadPipeTransport`], [`unix::connect_write_pipe`] → [`unix::WritePipeTransport`] |
//! | a `StreamReader` / `StreamWriter` over a pipe, `sys.stdin` / `sys.stdout` | [`unix::open_read_pipe`], [`unix::open_write_pipe`], [`unix::stdin`], [`unix::stdout`] |
//! | `loop.add_signal_handler` / `remove_signal_handler` | [`EventLoop::add_signal_handler`], [`EventLoop::remove_signal_handler`]; as a stream: [`signal`] |
//! | `asyncio.run`'s Ctrl-C handling, `asyncio.Runner` | [`run`] (on by default), [`run_with`] and [`RunOptions`](task::RunOptions) |
//! | (none; Twisted's `task.Clock`, tokio's paused clock) | [`EventLoop::with_virtual_time`], `#[tulip::test(virtual_time)]` |
//! | `asyncio.create_subprocess_exec` / `create_subprocess_shell` | [`create_subprocess_exec`] / [`create_subprocess_shell`] with [`SubprocessOptions`](unix::SubprocessOptions) → [`Process`] |
//! | `loop.subprocess_exec` / `subprocess_shell` | [`subprocess_exec`] / [`subprocess_shell`] → [`SubprocessTransport`] |
//! | `asyncio.SubprocessProtocol` | [`SubprocessProtocol`] |
//!
//! ## Protocols and transports
//! A [`Protocol`] is the callback side of a connection and a [`Transport`] the handle it
//! writes through, as in asyncio. The transport owns the protocol; what `create_connection`
//! returns besides the transport is a [`ProtocolRef`], through which async code can look at
//! the protocol's state. Reads go into one 256 KiB buffer per loop and reach
//! `data_received` as a borrowed slice; `write` sends at once when nothing is buffered.
//!
//! ## futures-io interop
//! [`StreamReader`] implements `futures_io::AsyncRead` and `AsyncBufRead`, and [`StreamWriter`]
//! implements `futures_io::AsyncWrite`, so the stream pair works with the futures ecosystem
//! (`futures_util::io::copy`, `asynchronous-codec`'s `FramedRead`/`FramedWrite`). What wants one
//! object that is both `AsyncRead` and `AsyncWrite` (`asynchronous-codec`'s `Framed`, a
//! hyper connection: the `hyper` feature, `tulip::hyper`) takes a [`Stream`]: [`StreamReader::unsplit`] or
//! `Stream::from((reader, writer))`, and [`Stream::into_split`] back. `poll_write` waits while the transport is paused for writing;
//! `poll_flush` is `drain`; `poll_close` closes and waits until the connection is closed; flushing
//! or closing a writer already closed cleanly is `Ok`, and a connection lost with an error reports
//! it.
//!
//! Three of asyncio's method names shadow the extension traits' methods: `StreamWriter::write`
//! (which returns nothing: "`()` is not a future") and `StreamWriter::close`, and
//! `StreamReader::read(n)`. Call those through the trait — `AsyncWriteExt::write(&mut w, buf)`,
//! `AsyncWriteExt::close(&mut w)`, `AsyncReadExt::read(&mut r, &mut buf)`; the others
//! (`write_all`, `flush`, `read_exact`, `read_to_end`, `read_line`, …) work as method calls.
//!
//! ```
//! use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
//!
//! fn main() -> std::io::Result<()> {
//!     tulip::run(async {
//!         // An echo server written with futures-io's `copy`.
//!         let server = tulip::start_server(
//!             |mut reader: tulip::StreamReader, mut writer: tulip::StreamWriter| async move {
//!                 futures_util::io::copy(&mut reader, &mut writer).await?;
//!                 AsyncWriteExt::close(&mut writer).await
//!             },
//!             "127.0.0.1",
//!             0,
//!             Default::default(),
//!         )
//!         .await?;
//!         let port = server.local_addr().expect("a TCP server").port();
//!
//!         let (mut reader, mut writer) =
//!             tulip::open_connection("127.0.0.1", port, Default::default()).await?;
//!         // No tulip method is named `write_all`, `flush` or `read_line`: method calls work.
//!         writer.write_all(b"hello\nworld\n").await?;
//!         writer.flush().await?;
//!         writer.write_eof();
//!         let mut line = String::new();
//!         reader.read_line(&mut line).await?;
//!         assert_eq!(line, "hello\n");
//!         // `read`, `write` and `close` are tulip's own (asyncio's) methods: name the trait.
//!         let mut buf = [0u8; 64];
//!         let n = AsyncReadExt::read(&mut reader, &mut buf).await?;
//!         assert_eq!(&buf[..n], b"world\n");
//!         assert_eq!(AsyncReadExt::read(&mut reader, &mut buf).await?, 0); // EOF
//!         AsyncWriteExt::close(&mut writer).await // Ok: flush after close is not an error
//!     })
//! }
//! ```
//!
//! ## Platforms and selector backends
//! tulip runs on Unix. The selector, which waits for I/O readiness, has two backends, chosen
//! at compile time:
//! - on **Linux**, hand-written level-triggered **epoll** by default: one `epoll_wait` per
//!   iteration and nothing else, where the `polling` crate would re-arm its notifier and a
//!   timer on every wait;
//! - everywhere else (**macOS**, the **BSDs**), the **`polling`** crate (kqueue), also
//!   level-triggered. The cargo feature **`poller`** selects it on Linux too (epoll through
//!   `polling`), which is how CI runs the whole test suite on both backends.
//!
//! What only Linux has: CPU pinning in [`PerCore`] (elsewhere the loops run unpinned),
//! `accept4` (elsewhere `accept` + `fcntl` do the same job), `recvmmsg` / `sendmmsg` for
//! datagram endpoints (elsewhere loops of `recvfrom` / `sendto`), and the eventfd notifier of
//! the epoll backend. Apple systems have no `MSG_NOSIGNAL`: sockets get `SO_NOSIGPIPE` there.
//!
//! ## One loop per core
//! A loop is single-threaded. To use every core, run one loop per thread, each with its own
//! `SO_REUSEPORT` listening socket on the same address — asyncio's and uvloop's recipe (one
//! process per core) and glommio's and monoio's thread-per-core model: [`run_per_core`], or
//! [`PerCore`] for settings and a [`LoopGroup`] that can be stopped. `examples/echo_per_core.rs`
//! is a complete server.

mod datagram;
pub mod dns;
mod error;
mod event_loop;
pub mod executor;
mod future;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod net;
mod per_core;
mod protocols;
mod selector;
pub mod sendfile;
mod server;
pub mod sock;
pub mod streams;
mod sys;
pub mod task;
pub mod testing;
mod threadsafe;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transports;
#[cfg(unix)]
pub mod unix;

pub use datagram::create_datagram_endpoint;
pub use error::{Cancelled, ResolveError, SendfileNotAvailable, TimeoutError, is_cancelled};
pub use event_loop::{
    EventLoop, ExceptionContext, Fileno, Handle, LoopHandle, TimerHandle, get_running_loop,
    set_last_resort, try_get_running_loop,
};
pub use future::LoopFuture;
pub use net::{connect_accepted_socket, create_connection, create_unix_connection};
pub use per_core::{LoopContext, LoopGroup, PerCore, Stopped, run_per_core};
#[cfg(unix)]
pub use protocols::SubprocessProtocol;
pub use protocols::{BufferedProtocol, DatagramProtocol, Protocol};
pub use sendfile::{sendfile, sock_sendfile};
pub use server::{Server, create_server, create_unix_server};
pub use sock::{
    sock_accept, sock_connect, sock_recv, sock_recv_into, sock_recvfrom, sock_recvfrom_into,
    sock_sendall, sock_sendto,
};
pub use streams::{
    IncompleteRead, LimitOverrun, Stream, StreamReader, StreamWriter, open_connection,
    open_unix_connection, start_server, start_unix_server,
};
pub use task::{Task, run, spawn, yield_now};
pub use time::{sleep, sleep_until, timeout, timeout_at};
#[cfg(feature = "tls")]
pub use tls::start_tls;
pub use transports::datagram::DatagramTransport;
pub use transports::{Buffered, ProtocolRef, Transport};

pub use dns::{getaddrinfo, getnameinfo};
pub use executor::{run_in_executor, to_thread};
pub use threadsafe::{Completer, ConcurrentFuture, oneshot, run_coroutine_threadsafe};

pub use task::run_with;

mod task_info;
pub use task_info::{all_tasks, current_task};

mod task_group;
mod time_interval;
pub use task_group::{TaskGroup, TaskGroupError};
pub use time_interval::interval;
pub use unix::signal;

#[cfg(unix)]
pub use unix::process::{Process, create_subprocess_exec, create_subprocess_shell};
#[cfg(unix)]
pub use unix::subprocess::{SubprocessTransport, subprocess_exec, subprocess_shell};

#[cfg(feature = "macros")]
pub use tulip_macros::{main, test};

// What `#[tulip::test(timeout = "…")]` expands to (not public API).
#[cfg(feature = "macros")]
mod test_timeout;
#[cfg(feature = "macros")]
#[doc(hidden)]
pub mod __private {
    pub use crate::test_timeout::{TestTimeout, with_timeout};
}

#[doc(no_inline)]
pub use socket2;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
