//! TCP echo servers compared: tulip's `Protocol`, `BufferedProtocol`, streams and `sock_*` echo
//! against tokio's current-thread runtime, smol (`Async<TcpStream>` on a `LocalExecutor`), and a
//! minimal level-triggered epoll loop written with `libc` (the floor).
//!
//! Workloads: 1 KiB ping-pong over 1 connection and over 50 connections (each connection sends
//! 1 KiB, reads the 1 KiB echo, and sends again). As `/work/shared/BENCHMARKING.md` asks:
//! - each server runs in its own OS thread pinned to CPU 0, a fresh server per measurement;
//! - the load generator is the main thread, pinned to CPU 1, with plain std sockets and a
//!   busy-polling `epoll_wait(…, 0)` loop, so it never sleeps and is not the bottleneck;
//! - servers are interleaved, the order rotating from one repetition to the next;
//! - per point: a short warm-up, then a measured window of 1 s (0.3 s with `--quick`), 7
//!   repetitions (3 with `--quick`); the table shows medians, and ratios are medians of the
//!   per-repetition paired ratios (each run divided by the peer's run of the same repetition).
//!
//! Server CPU per request is the CPU time of every thread but the load generator's over the
//! window (process CPU clock minus the main thread's CPU clock), so helper threads (smol's
//! `async-io` thread) count too; it is the figure that decides on these machines.
//!
//! ```text
//! cargo bench --bench echo                       # full run (about 95 s)
//! cargo bench --bench echo -- --quick            # quick run (about 12 s)
//! cargo bench --bench echo -- --reps=3 --secs=0.5 --only=tulip,tokio c1
//! # one server as a process (e.g. under callgrind), and a client driving N round trips:
//! cargo bench --bench echo -- --serve tulip 127.0.0.1:0      # prints `listening on IP:PORT`
//! cargo bench --bench echo -- --client 127.0.0.1:PORT 12000 --conns=1
//! ```
//!
//! Server ids (for `--only=` and `--serve`): `floor`, `tulip`, `tulip-buffered`, `streams`,
//! `tulip-sock`, `tokio`, `smol`. Workload ids: `c1`, `c50`. Without `--bench` (that is, under
//! `cargo test`) and without settings, it does a smoke run (one 50 ms window per point).
//!
//! User-space instructions per round trip (the stable figure): run `--serve ID 127.0.0.1:0`
//! under `valgrind --tool=callgrind` pinned to CPU 0, drive it with `--client` on CPU 1 for 2,000
//! and then (fresh server) 12,000 round trips, stop it with SIGTERM (callgrind still writes its
//! file), and take `(Ir_long − Ir_short) / 10,000`.
//!
//! The last column, the run-queue wait of the server's threads, shows whether another process
//! shared the server's CPU; a warning is printed when it did.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smol::Async;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tulip::{BufferedProtocol, Protocol, Transport};

/// The request and response size.
const MSG: usize = 1024;
/// The servers' receive buffer.
const BUF: usize = 64 * 1024;
/// The server's CPU and the load generator's.
const SERVER_CPU: usize = 0;
const LOAD_CPU: usize = 1;

// ---- small system helpers ----------------------------------------------------------------------

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero `cpu_set_t` is a valid empty set; CPU_SET writes inside it (cpu is
    // checked against the set's size), and sched_setaffinity(0, …) reads it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cpu out of range",
            ));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clock ids used here always exist on Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of every thread of the process but the calling one.
fn others_cpu() -> Duration {
    // Read the thread's clock first: the process clock then includes at least as much of it.
    let me = clock(libc::CLOCK_THREAD_CPUTIME_ID);
    clock(libc::CLOCK_PROCESS_CPUTIME_ID).saturating_sub(me)
}

/// Time the other threads of the process spent runnable but waiting for a CPU (the second field
/// of `/proc/self/task/TID/schedstat`): non-zero when something else ran on the server's CPU.
fn others_runq_wait() -> Duration {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() }.to_string();
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if t.file_name().to_str() == Some(me.as_str()) {
            continue;
        }
        if let Ok(st) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += st
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

/// A level-triggered epoll instance.
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain system call; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// Watches `fd` for reading; events carry `token`.
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (0: poll, -1: forever); returns the number of events filled.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: `events` is valid for writes of `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len().min(i32::MAX as usize) as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }
}

fn no_events<const N: usize>() -> [libc::epoll_event; N] {
    [libc::epoll_event { events: 0, u64: 0 }; N]
}

// ---- servers -----------------------------------------------------------------------------------

/// The servers under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Floor,
    Tulip,
    TulipBuffered,
    TulipStreams,
    TulipSock,
    Tokio,
    Smol,
}

const KINDS: [Kind; 7] = [
    Kind::Floor,
    Kind::Tulip,
    Kind::TulipBuffered,
    Kind::TulipStreams,
    Kind::TulipSock,
    Kind::Tokio,
    Kind::Smol,
];

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Tulip => "tulip",
            Kind::TulipBuffered => "tulip-buffered",
            Kind::TulipStreams => "streams",
            Kind::TulipSock => "tulip-sock",
            Kind::Tokio => "tokio",
            Kind::Smol => "smol",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Floor => "floor: epoll loop (libc)",
            Kind::Tulip => "tulip `Protocol`",
            Kind::TulipBuffered => "tulip `BufferedProtocol`",
            Kind::TulipStreams => "tulip streams, `read` + `write` + `drain`",
            Kind::TulipSock => "tulip `sock_recv_into` + `sock_sendall`",
            Kind::Tokio => "tokio current-thread, `read` + `write_all`",
            Kind::Smol => "smol `Async<TcpStream>`, `LocalExecutor`",
        }
    }

    fn from_id(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.id() == s)
    }
}

/// Stops a running server from another thread.
type Stop = Box<dyn FnOnce() + Send>;
/// Called by a server once it listens: its address and how to stop it.
type Ready = Box<dyn FnOnce(SocketAddr, Stop)>;

/// Runs server `kind` on `addr` in the calling thread until stopped.
fn serve(kind: Kind, addr: SocketAddr, ready: Ready) -> io::Result<()> {
    match kind {
        Kind::Floor => serve_floor(addr, ready),
        Kind::Tulip => serve_tulip(addr, ready, || EchoProto { transport: None }),
        Kind::TulipBuffered => serve_tulip(addr, ready, || EchoBuffered {
            transport: None,
            buf: vec![0; BUF],
        }),
        Kind::TulipStreams => serve_tulip_streams(addr, ready),
        Kind::TulipSock => serve_tulip_sock(addr, ready),
        Kind::Tokio => serve_tokio(addr, ready),
        Kind::Smol => serve_smol(addr, ready),
    }
}

/// The floor: one level-triggered epoll loop, `recv` then `send` on the same buffer.
fn serve_floor(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let ep = Epoll::new()?;
    // SAFETY: plain system call; a non-negative result is a new descriptor we own.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `efd` is a fresh descriptor owned by nobody else.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    const LISTENER: u64 = u64::MAX;
    const STOP: u64 = u64::MAX - 1;
    ep.add(listener.as_raw_fd(), LISTENER)?;
    ep.add(efd.as_raw_fd(), STOP)?;
    let stop_fd = efd.try_clone()?;
    ready(
        listener.local_addr()?,
        Box::new(move || {
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from a valid buffer to our eventfd.
            unsafe { libc::write(stop_fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        }),
    );
    let mut conns: Vec<Option<TcpStream>> = Vec::new();
    let mut buf = vec![0u8; BUF];
    let mut events = no_events::<64>();
    loop {
        let n = ep.wait(&mut events, -1)?;
        for ev in &events[..n] {
            match ev.u64 {
                STOP => return Ok(()),
                LISTENER => loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true)?;
                            s.set_nodelay(true)?;
                            let fd = s.as_raw_fd() as usize;
                            ep.add(fd as RawFd, fd as u64)?;
                            if conns.len() <= fd {
                                conns.resize_with(fd + 1, || None);
                            }
                            conns[fd] = Some(s);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                },
                fd => {
                    let fd = fd as usize;
                    let Some(s) = conns[fd].as_mut() else {
                        continue;
                    };
                    let close = match s.read(&mut buf) {
                        Ok(0) => true,
                        Ok(k) => write_all_spin(s, &buf[..k]).is_err(),
                        Err(e) => !matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ),
                    };
                    if close {
                        // Closing the last descriptor removes it from the epoll set.
                        conns[fd] = None;
                    }
                }
            }
        }
    }
}

/// `write_all` on a non-blocking socket, spinning on `WouldBlock` (never happens with 1 KiB
/// ping-pong on loopback).
fn write_all_spin(mut s: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => data = &data[k..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// tulip `Protocol` echo, as `examples/tcp_echo_server.rs`.
struct EchoProto {
    transport: Option<Transport>,
}

impl Protocol for EchoProto {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }
}

/// tulip `BufferedProtocol` echo: receives into its own reused 64 KiB buffer.
struct EchoBuffered {
    transport: Option<Transport>,
    buf: Vec<u8>,
}

impl BufferedProtocol for EchoBuffered {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        if let Some(t) = &self.transport {
            t.write(&self.buf[..nbytes]);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }
}

fn serve_tulip<K, P, F>(addr: SocketAddr, ready: Ready, factory: F) -> io::Result<()>
where
    F: FnMut() -> P + 'static,
    P: tulip::StreamProtocol<K>,
{
    let lp = tulip::EventLoop::new()?;
    let server = lp.run_until_complete(tulip::create_server(
        factory,
        &addr.ip().to_string(),
        addr.port(),
        tulip::ServerOptions::new().backlog(1024),
    ))?;
    run_tulip_server(lp, server, ready)
}

/// tulip streams echo (`start_server`): `futures_io::AsyncRead::read` into a reused 64 KiB
/// buffer, the analogue of tokio's `read`, then `write` + `drain`, asyncio's way to write,
/// the analogue of `write_all` (`write` sends at once or buffers; `drain` waits only while the
/// transport's buffer is over its high-water mark).
fn serve_tulip_streams(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    async fn echo(mut reader: tulip::StreamReader, writer: tulip::StreamWriter) {
        let mut buf = vec![0u8; BUF];
        loop {
            // Fully qualified: smol's `AsyncReadExt` also covers `futures_io::AsyncRead`.
            let n = match futures_util::io::AsyncReadExt::read(&mut reader, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            writer.write(&buf[..n]);
            if writer.drain().await.is_err() {
                return;
            }
        }
    }
    let lp = tulip::EventLoop::new()?;
    let server = lp.run_until_complete(tulip::start_server_with(
        echo,
        &addr.ip().to_string(),
        addr.port(),
        tulip::ServerOptions::new().backlog(1024),
        tulip::DEFAULT_LIMIT,
    ))?;
    run_tulip_server(lp, server, ready)
}

/// Runs a tulip server until stopped, then closes it and its connections.
fn run_tulip_server(lp: tulip::EventLoop, server: tulip::Server, ready: Ready) -> io::Result<()> {
    let handle = lp.handle();
    let local = server
        .local_addr()
        .ok_or_else(|| io::Error::other("no TCP listener"))?;
    ready(
        local,
        Box::new(move || {
            let _ = handle.stop();
        }),
    );
    lp.run_forever();
    server.close();
    server.abort_clients();
    lp.run_until_complete(server.wait_closed());
    lp.close();
    Ok(())
}

fn serve_tulip_sock(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    async fn echo(conn: TcpStream) {
        let mut buf = vec![0u8; BUF];
        loop {
            let n = match tulip::sock_recv_into(&conn, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if tulip::sock_sendall(&conn, &buf[..n]).await.is_err() {
                return;
            }
        }
    }
    let lp = tulip::EventLoop::new()?;
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let handle = lp.handle();
    ready(
        listener.local_addr()?,
        Box::new(move || {
            let _ = handle.stop();
        }),
    );
    lp.spawn(async move {
        while let Ok((conn, _)) = tulip::sock_accept(&listener).await {
            conn.set_nodelay(true).ok();
            tulip::spawn(echo(conn)).detach();
        }
    })
    .detach();
    lp.run_forever();
    lp.close();
    Ok(())
}

fn serve_tokio(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let r = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        ready(
            listener.local_addr()?,
            Box::new(move || {
                let _ = tx.send(());
            }),
        );
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                s.set_nodelay(true).ok();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; BUF];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let _ = rx.await;
        io::Result::Ok(())
    });
    drop(rt);
    r
}

fn serve_smol(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let ex = smol::LocalExecutor::new();
    let (tx, rx) = smol::channel::bounded::<()>(1);
    smol::block_on(ex.run(async {
        let listener = Async::<TcpListener>::bind(addr)?;
        ready(
            listener.get_ref().local_addr()?,
            Box::new(move || {
                let _ = tx.try_send(());
            }),
        );
        // The accept loop runs in `run`'s own future, so no task borrows the executor.
        let accept = async {
            while let Ok((mut s, _)) = listener.accept().await {
                s.get_ref().set_nodelay(true).ok();
                ex.spawn(async move {
                    let mut buf = vec![0u8; BUF];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                })
                .detach();
            }
        };
        smol::future::or(accept, async {
            let _ = rx.recv().await;
        })
        .await;
        io::Result::Ok(())
    }))
}

/// A server running in its own thread.
struct Running {
    addr: SocketAddr,
    stop: Stop,
    thread: JoinHandle<io::Result<()>>,
}

impl Running {
    fn start(kind: Kind, cpu: Option<usize>) -> io::Result<Running> {
        let (tx, rx) = mpsc::channel::<(SocketAddr, Stop)>();
        let thread = std::thread::Builder::new()
            .name(format!("server-{}", kind.id()))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_warn("server thread", cpu);
                }
                let any: SocketAddr = ([127, 0, 0, 1], 0).into();
                serve(
                    kind,
                    any,
                    Box::new(move |addr, stop| {
                        let _ = tx.send((addr, stop));
                    }),
                )
            })?;
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((addr, stop)) => Ok(Running { addr, stop, thread }),
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => io::Error::other(format!("{} server did not start", kind.id())),
            }),
        }
    }

    fn stop(self) -> io::Result<()> {
        (self.stop)();
        self.thread
            .join()
            .map_err(|_| io::Error::other("server thread panicked"))?
    }
}

/// Pins to `cpu`; says so (once per process) if that fails.
fn pin_warn(who: &str, cpu: usize) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = pin_to(cpu) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            println!("note: could not pin the {who} to CPU {cpu} ({e}); figures will be noisier");
        }
    }
}

// ---- load generator ----------------------------------------------------------------------------

/// When a load run ends.
#[derive(Clone, Copy)]
enum Limit {
    /// After a warm-up, a measured window of this length.
    Time { warmup: Duration, window: Duration },
    /// After this many round trips in all (no warm-up; the whole run is measured).
    Requests(u64),
}

/// What one load run measured over its window.
struct LoadResult {
    requests: u64,
    elapsed: Duration,
    /// CPU of all threads but the load generator's over the window.
    server_cpu: Duration,
    /// How long those threads waited for a CPU over the window.
    server_wait: Duration,
    /// Round-trip latencies of the window, nanoseconds.
    latencies: Vec<u32>,
}

/// Ping-pongs `MSG` bytes over `conns` connections to `addr`, busy-polling epoll.
fn drive(addr: SocketAddr, conns: usize, limit: Limit) -> io::Result<LoadResult> {
    let ep = Epoll::new()?;
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        ep.add(s.as_raw_fd(), i as u64)?;
        streams.push(s);
    }
    let msg = [0xA5u8; MSG];
    let mut rbuf = [0u8; MSG];
    let mut got = vec![0usize; conns];
    let mut events = no_events::<64>();
    let (max_requests, mut measuring) = match limit {
        Limit::Time { .. } => (u64::MAX, false),
        Limit::Requests(n) => (n, true),
    };
    let mut latencies = Vec::with_capacity(if measuring { 0 } else { 1 << 20 });
    let start = Instant::now();
    let (mut win_t0, mut win_cpu0, mut win_done0) = (start, others_cpu(), 0u64);
    let mut win_wait0 = others_runq_wait();
    let (mut issued, mut done) = (0u64, 0u64);
    let mut sent_at = vec![start; conns];
    for (i, s) in streams.iter().enumerate() {
        if issued < max_requests {
            write_all_spin(s, &msg)?;
            sent_at[i] = Instant::now();
            issued += 1;
        }
    }
    let mut last_progress = start;
    loop {
        let now = Instant::now();
        match limit {
            Limit::Time { warmup, window } => {
                if !measuring && now >= start + warmup {
                    measuring = true;
                    win_wait0 = others_runq_wait();
                    win_cpu0 = others_cpu();
                    win_t0 = Instant::now();
                    win_done0 = done;
                } else if measuring && now >= win_t0 + window {
                    break;
                }
            }
            Limit::Requests(n) => {
                if done >= n {
                    break;
                }
            }
        }
        let n = ep.wait(&mut events, 0)?;
        if n == 0 {
            if now.duration_since(last_progress) > Duration::from_secs(10) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no response for 10 s",
                ));
            }
            continue;
        }
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let mut s = &streams[i];
            while got[i] < MSG {
                match s.read(&mut rbuf[..MSG - got[i]]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed a connection",
                        ));
                    }
                    Ok(k) => got[i] += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if got[i] == MSG {
                got[i] = 0;
                done += 1;
                let t = Instant::now();
                last_progress = t;
                if measuring && matches!(limit, Limit::Time { .. }) {
                    let ns = t.duration_since(sent_at[i]).as_nanos();
                    latencies.push(ns.min(u32::MAX as u128) as u32);
                }
                if issued < max_requests {
                    write_all_spin(s, &msg)?;
                    sent_at[i] = Instant::now();
                    issued += 1;
                }
            }
        }
    }
    let elapsed = win_t0.elapsed();
    let server_cpu = others_cpu().saturating_sub(win_cpu0);
    let server_wait = others_runq_wait().saturating_sub(win_wait0);
    Ok(LoadResult {
        requests: done - win_done0,
        elapsed,
        server_cpu,
        server_wait,
        latencies,
    })
}

// ---- driver ------------------------------------------------------------------------------------

/// One measurement point.
#[derive(Clone, Copy)]
struct Sample {
    rps: f64,
    p99_us: f64,
    cpu_ns: f64,
    /// Run-queue wait of the server's threads, % of the window.
    wait_pct: f64,
}

fn measure(kind: Kind, conns: usize, limit: Limit) -> io::Result<Sample> {
    let srv = Running::start(kind, Some(SERVER_CPU))?;
    let r = drive(srv.addr, conns, limit);
    srv.stop()?;
    let mut r = r?;
    let n = r.requests.max(1) as f64;
    Ok(Sample {
        rps: n / r.elapsed.as_secs_f64(),
        p99_us: percentile(&mut r.latencies, 0.99) / 1e3,
        cpu_ns: r.server_cpu.as_nanos() as f64 / n,
        wait_pct: 100.0 * r.server_wait.as_secs_f64() / r.elapsed.as_secs_f64(),
    })
}

fn percentile(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    *v.select_nth_unstable(k).1 as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("machine: nproc = {nproc}, CPU = {cpu}")
}

struct Args {
    /// `--bench`, which `cargo bench` passes; `cargo test` does not.
    bench: bool,
    quick: bool,
    reps: Option<usize>,
    secs: Option<f64>,
    only: Option<Vec<Kind>>,
    workloads: Vec<String>,
    conns: Option<usize>,
    serve: Option<(Kind, SocketAddr)>,
    client: Option<(SocketAddr, u64)>,
}

fn usage(msg: &str) -> ! {
    eprintln!("echo bench: {msg}");
    eprintln!(
        "usage: echo [--quick] [--reps=N] [--secs=F] [--only=ID,…] [c1|c50]…\n       \
         echo --serve ID ADDR\n       echo --client ADDR N [--conns=C]\n\
         server ids: floor tulip tulip-buffered streams tulip-sock tokio smol"
    );
    std::process::exit(2)
}

fn parse_addr(s: Option<String>) -> SocketAddr {
    s.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage("expected an address IP:PORT"))
}

fn parse_args() -> Args {
    let mut args = Args {
        bench: false,
        quick: false,
        reps: None,
        secs: None,
        only: None,
        workloads: Vec::new(),
        conns: None,
        serve: None,
        client: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--bench" {
            args.bench = true;
        } else if a == "--quick" {
            args.quick = true;
        } else if let Some(v) = a.strip_prefix("--reps=") {
            args.reps = Some(v.parse().unwrap_or_else(|_| usage("bad --reps")));
        } else if let Some(v) = a.strip_prefix("--secs=") {
            args.secs = Some(v.parse().unwrap_or_else(|_| usage("bad --secs")));
        } else if let Some(v) = a.strip_prefix("--conns=") {
            args.conns = Some(v.parse().unwrap_or_else(|_| usage("bad --conns")));
        } else if let Some(v) = a.strip_prefix("--only=") {
            let kinds = v
                .split(',')
                .map(|s| Kind::from_id(s).unwrap_or_else(|| usage(&format!("unknown id {s}"))))
                .collect();
            args.only = Some(kinds);
        } else if a == "--serve" {
            let id = it.next().unwrap_or_default();
            let kind = Kind::from_id(&id).unwrap_or_else(|| usage(&format!("unknown id {id}")));
            args.serve = Some((kind, parse_addr(it.next())));
        } else if a == "--client" {
            let addr = parse_addr(it.next());
            let n = it
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage("expected a round-trip count"));
            args.client = Some((addr, n));
        } else if !a.starts_with('-') {
            args.workloads.push(a);
        }
    }
    args
}

/// `--serve`: one server in this thread until the process is killed.
fn serve_forever(kind: Kind, addr: SocketAddr) -> io::Result<()> {
    serve(
        kind,
        addr,
        Box::new(|local, stop| {
            println!("listening on {local}");
            io::stdout().flush().ok();
            // Never stopped: the process is killed.
            std::mem::forget(stop);
        }),
    )
}

/// `--client`: `n` round trips over `conns` connections, then a one-line report.
fn client(addr: SocketAddr, n: u64, conns: usize) -> io::Result<()> {
    let r = drive(addr, conns, Limit::Requests(n))?;
    println!(
        "{} round trips over {conns} connection(s) in {:.3} s ({:.0} req/s)",
        r.requests,
        r.elapsed.as_secs_f64(),
        r.requests as f64 / r.elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> io::Result<()> {
    let args = parse_args();
    if let Some((kind, addr)) = args.serve {
        return serve_forever(kind, addr);
    }
    if let Some((addr, n)) = args.client {
        return client(addr, n, args.conns.unwrap_or(1).max(1));
    }

    // Run by `cargo test` (no `--bench`, no settings): a smoke run that only checks every
    // server works.
    let smoke = !args.bench && !args.quick && args.reps.is_none() && args.secs.is_none();
    let quick = args.quick || smoke;
    let reps = args
        .reps
        .unwrap_or(if smoke {
            1
        } else if quick {
            3
        } else {
            7
        })
        .max(1);
    let default_secs = if smoke {
        0.05
    } else if quick {
        0.3
    } else {
        1.0
    };
    let window = Duration::from_secs_f64(args.secs.unwrap_or(default_secs));
    let warmup = if quick {
        Duration::from_millis(30)
    } else {
        Duration::from_millis(100)
    };
    let limit = Limit::Time { warmup, window };
    let kinds: Vec<Kind> = KINDS
        .into_iter()
        .filter(|k| args.only.as_ref().is_none_or(|o| o.contains(k)))
        .collect();
    let workloads: Vec<(&str, usize)> = [("c1", 1), ("c50", 50)]
        .into_iter()
        .filter(|(id, _)| args.workloads.is_empty() || args.workloads.iter().any(|w| w == id))
        .collect();

    println!("{}", machine());
    pin_warn("load generator", LOAD_CPU);
    println!(
        "mode: {}, {reps} interleaved repetitions × {:.2} s window (after {} ms warm-up) per \
         server and workload; server on CPU {SERVER_CPU}, busy-polling load generator on CPU \
         {LOAD_CPU}\n",
        if smoke {
            "smoke (no `--bench`: run by `cargo test`; use `cargo bench` for figures)"
        } else if quick {
            "quick"
        } else {
            "full"
        },
        window.as_secs_f64(),
        warmup.as_millis()
    );
    println!(
        "| workload | server | req/s | p99 µs | server CPU ns/req | CPU ÷ floor | CPU ÷ tokio | \
         CPU ÷ smol | req/s ÷ tokio | req/s ÷ smol | run-queue wait |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut disturbed = 0.0f64;
    for &(wl, conns) in &workloads {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        for rep in 0..reps {
            for k in 0..kinds.len() {
                let i = (k + rep) % kinds.len();
                let s = measure(kinds[i], conns, limit).unwrap_or_else(|e| {
                    eprintln!("{} on {wl}: {e}", kinds[i].id());
                    std::process::exit(1)
                });
                samples[i].push(s);
            }
        }
        let peer = |k: Kind| kinds.iter().position(|&x| x == k).map(|i| &samples[i]);
        // Median of the per-repetition ratios `f(row) / f(peer)`.
        let ratio = |row: &[Sample], peer: Option<&Vec<Sample>>, f: fn(&Sample) -> f64| match peer {
            Some(p) if !std::ptr::eq(p.as_slice(), row) => {
                let mut r: Vec<f64> = row.iter().zip(p).map(|(a, b)| f(a) / f(b)).collect();
                format!("{:.2}", median(&mut r))
            }
            _ => "—".into(),
        };
        let (floor, tokio, smol) = (peer(Kind::Floor), peer(Kind::Tokio), peer(Kind::Smol));
        let label = format!(
            "1 KiB ping-pong, {conns} conn{}",
            if conns > 1 { "s" } else { "" }
        );
        for (i, kind) in kinds.iter().enumerate() {
            let s = &samples[i];
            let med = |f: fn(&Sample) -> f64| median(&mut s.iter().map(f).collect::<Vec<_>>());
            println!(
                "| {label} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} % |",
                kind.name(),
                med(|s| s.rps),
                med(|s| s.p99_us),
                med(|s| s.cpu_ns),
                ratio(s, floor, |s| s.cpu_ns),
                ratio(s, tokio, |s| s.cpu_ns),
                ratio(s, smol, |s| s.cpu_ns),
                ratio(s, tokio, |s| s.rps),
                ratio(s, smol, |s| s.rps),
                med(|s| s.wait_pct),
            );
            // smol waits for its own `async-io` thread too: not a sign of another process.
            if *kind != Kind::Smol {
                disturbed = s.iter().map(|s| s.wait_pct).fold(disturbed, f64::max);
            }
        }
    }
    println!();
    // A quiet machine shows about 0.5 % (the wake-up latency), at most 2–3 % in one run.
    if disturbed > 5.0 {
        println!(
            "warning: in some runs the server waited for its CPU up to {disturbed:.1} % of the \
             window: another process ran on CPU {SERVER_CPU}; the figures of those runs, CPU per request \
             included, are unreliable: rerun on a quiet machine."
        );
    }
    println!(
        "req/s, p99 (round trip seen by the client) and server CPU ns/req (CPU time of every \
         thread but the load generator's over the window, divided by round trips) are medians; \
         ÷ columns are medians of per-repetition paired ratios (CPU: below 1.0 means the row's \
         server is cheaper; req/s: above 1.0 means it is faster). Run-queue wait: median share of \
         the window the server's threads were runnable but not running: their wake-up latency \
         (about 0.5 % on a quiet machine), plus another process on their CPU, or, for smol, its \
         own `async-io` helper thread sharing the CPU."
    );
    Ok(())
}
