//! TLS echo servers compared: tulip's `Protocol` over `create_server(…, ServerOptions::tls)`
//! against tokio's current-thread runtime with tokio-rustls (`TlsAcceptor`, `read` into a reused
//! buffer + `write_all`), and a minimal level-triggered epoll loop written with `libc` that
//! drives `rustls::ServerConnection` by hand (the floor: rustls and the system calls, no runtime).
//!
//! All three use the same rustls 0.23 (one crate in the build: tulip's `tls::rustls` is the one
//! tokio-rustls takes) with the `ring` provider restricted to one cipher suite,
//! `TLS13_AES_128_GCM_SHA256`, TLS 1.3 only; each server gets a fresh `ServerConfig` built the
//! same way (no session cache shared between servers), with an rcgen self-signed ECDSA P-256
//! certificate for `localhost` (a fixed key, so that `--serve` and `--client` processes agree).
//! The load generator checks the negotiated suite.
//!
//! Workloads:
//! - `c1`, `c50`: 1 KiB ping-pong over 1 and over 50 connections (each connection sends 1 KiB of
//!   plaintext, reads its 1 KiB echo, and sends again);
//! - `bulk`: one connection; the client writes 16 KiB chunks continuously (at most 256 KiB of
//!   plaintext in flight) and reads the echo; throughput is echoed plaintext in MB/s.
//!
//! As `/work/shared/BENCHMARKING.md` asks:
//! - each server runs in its own OS thread pinned to CPU 0, a fresh server per measurement;
//! - the load generator is the main thread, pinned to CPU 1: plain std sockets, non-blocking,
//!   busy-polling `epoll_wait(…, 0)`, and a `rustls::ClientConnection` per connection driven by
//!   hand (one `recv` into a 256 KiB buffer, `read_tls` from it, `write_tls` with `writev`);
//!   the handshakes are done before the measured window;
//! - servers are interleaved, the order rotating from one repetition to the next;
//! - per point: a short warm-up, then a measured window of 1 s (0.3 s with `--quick`), 7
//!   repetitions (3 with `--quick`); the table shows medians, and ratios are medians of the
//!   per-repetition paired ratios (each run divided by the peer's run of the same repetition).
//!
//! The client encrypts and decrypts as much as the server does, so it can be the bottleneck: the
//! floor row shows what this load generator reaches with the cheapest server, and the "server
//! busy" column (server CPU ÷ window) shows whether the server was saturated. Server CPU per
//! request (or per 16 KiB chunk) is the CPU time of every thread but the load generator's over
//! the window; it is the figure that decides on these machines.
//!
//! ```text
//! cargo bench --bench tls_echo                   # full run (about 70 s)
//! cargo bench --bench tls_echo -- --quick        # quick run (about 10 s)
//! cargo bench --bench tls_echo -- --reps=3 --secs=0.5 --only=tulip,tokio-rustls c1 bulk
//! # one server as a process (e.g. under callgrind), and a client driving N round trips (or, with
//! # --bulk, N echoed 16 KiB chunks):
//! cargo bench --bench tls_echo -- --serve tulip 127.0.0.1:0  # prints `listening on IP:PORT`
//! cargo bench --bench tls_echo -- --client 127.0.0.1:PORT 12000 --conns=1
//! cargo bench --bench tls_echo -- --client 127.0.0.1:PORT 6000 --bulk
//! ```
//!
//! Server ids (for `--only=` and `--serve`): `floor`, `tulip`, `tokio-rustls`. Workload ids:
//! `c1`, `c50`, `bulk`. Without `--bench` (that is, under `cargo test`) and without settings, it
//! does a smoke run (one 50 ms window per point).
//!
//! User-space instructions per round trip (the stable figure): run `--serve ID 127.0.0.1:0`
//! under `valgrind --tool=callgrind` pinned to CPU 0, drive it with `--client` on CPU 1 for 2,000
//! and then (fresh server) 12,000 round trips, stop it with SIGTERM (callgrind still writes its
//! file), and take `(Ir_long − Ir_short) / 10,000`; the handshakes cancel out.
//!
//! The last column, the run-queue wait of the server's threads, shows whether another process
//! shared the server's CPU; a warning is printed when it did.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tulip::tls::rustls;
use tulip::{Protocol, Transport};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// The ping-pong request and response size (plaintext).
const MSG: usize = 1024;
/// The bulk workload's write size (plaintext; one TLS record).
const CHUNK: usize = 16 * 1024;
/// The most plaintext the bulk client has in flight (sent, echo not yet read).
const WINDOW: usize = 256 * 1024;
/// The servers' plaintext buffer.
const BUF: usize = 64 * 1024;
/// The socket read buffer of the floor server and of the load generator (tulip's is as big).
const RAW_BUF: usize = 256 * 1024;
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

/// Pins to `cpu`; says so (once per process) if that fails.
fn pin_warn(who: &str, cpu: usize) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = pin_to(cpu) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            println!("note: could not pin the {who} to CPU {cpu} ({e}); figures will be noisier");
        }
    }
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

    /// `EPOLL_CTL_ADD` or `EPOLL_CTL_MOD` of `fd` for `events`; events carry `token`.
    fn ctl(&self, op: libc::c_int, fd: RawFd, events: libc::c_int, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for reading; events carry `token`.
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, token)
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

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

// ---- TLS configuration -------------------------------------------------------------------------

/// The one cipher suite every side offers.
fn suite() -> rustls::SupportedCipherSuite {
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
}

/// ring's provider restricted to [`suite`].
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![suite()];
    Arc::new(p)
}

/// The certificate's key: a fixed P-256 key made for this benchmark only (a `--serve` process
/// and a `--client` process must agree on it; it protects nothing).
const BENCH_ONLY_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgn1l7YXTbnwsP1fvr
IsQ8yAXDx6/eBnejB9YnUZmrwIehRANCAATik0PrK+yXa9CcB+xeQ8Md8zayA/SJ
Tic80AUSp+vOTaePEr5Quvz1i29N4hQ9V1OIXxSHKGlMBDQF7A8/XDIG
-----END PRIVATE KEY-----
";

/// The self-signed certificate for `localhost` (rcgen) and its key, made once per process.
fn cert() -> &'static (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>) {
    static CERT: OnceLock<(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>)> = OnceLock::new();
    CERT.get_or_init(|| {
        let key = rcgen::KeyPair::from_pem(BENCH_ONLY_KEY).expect("a valid P-256 key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .and_then(|p| p.self_signed(&key))
            .expect("rcgen makes a self-signed certificate");
        (
            cert.der().clone(),
            PrivatePkcs8KeyDer::from(key.serialize_der()),
        )
    })
}

/// A fresh server config (its own session cache): TLS 1.3, [`suite`] only.
fn server_config() -> Arc<rustls::ServerConfig> {
    let (cert, key) = cert();
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))
        .expect("the key suits the certificate");
    Arc::new(cfg)
}

/// The load generator's config: trusts the certificate, TLS 1.3, [`suite`] only.
fn client_config() -> Arc<rustls::ClientConfig> {
    static CFG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert().0.clone()).expect("a valid certificate");
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(cfg)
    })
    .clone()
}

/// Writes what `tls` has to send to `sock`; `Ok(false)` when the socket would block first.
fn flush_tls<D>(tls: &mut rustls::ConnectionCommon<D>, mut sock: &TcpStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// [`flush_tls`], spinning on `WouldBlock` (the ping-pong client: never happens with 1 KiB).
fn flush_tls_spin<D>(tls: &mut rustls::ConnectionCommon<D>, sock: &TcpStream) -> io::Result<()> {
    while !flush_tls(tls, sock)? {}
    Ok(())
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

// ---- servers -----------------------------------------------------------------------------------

/// The servers under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Floor,
    Tulip,
    Tokio,
}

const KINDS: [Kind; 3] = [Kind::Floor, Kind::Tulip, Kind::Tokio];

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Tulip => "tulip",
            Kind::Tokio => "tokio-rustls",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Floor => "floor: epoll loop + `rustls::ServerConnection` (libc)",
            Kind::Tulip => "tulip `Protocol`, `ServerOptions::tls`",
            Kind::Tokio => "tokio current-thread + tokio-rustls, `read` + `write_all`",
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
        Kind::Tulip => serve_tulip(addr, ready),
        Kind::Tokio => serve_tokio(addr, ready),
    }
}

/// One connection of the floor server.
struct FloorConn {
    sock: TcpStream,
    tls: rustls::ServerConnection,
    /// The socket would not take all the records: wait for `EPOLLOUT`, read nothing meanwhile.
    blocked: bool,
}

/// The floor: one level-triggered epoll loop; per readable event one `recv` into a 256 KiB
/// buffer, `read_tls` + `process_new_packets` over it, the plaintext written back into the same
/// connection, and the records sent with `writev` (`write_tls`).
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
    let cfg = server_config();
    let mut conns: Vec<Option<FloorConn>> = Vec::new();
    let mut raw = vec![0u8; RAW_BUF];
    let mut plain = vec![0u8; BUF];
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
                            let mut tls =
                                rustls::ServerConnection::new(cfg.clone()).map_err(tls_error)?;
                            // All of a `recv`'s records are echoed before one `writev`.
                            tls.set_buffer_limit(None);
                            let fd = s.as_raw_fd() as usize;
                            ep.add(fd as RawFd, fd as u64)?;
                            if conns.len() <= fd {
                                conns.resize_with(fd + 1, || None);
                            }
                            conns[fd] = Some(FloorConn {
                                sock: s,
                                tls,
                                blocked: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                },
                fd => {
                    let Some(c) = conns[fd as usize].as_mut() else {
                        continue;
                    };
                    if floor_event(c, &ep, &mut raw, &mut plain).is_err() {
                        // Closing the last descriptor removes it from the epoll set.
                        conns[fd as usize] = None;
                    }
                }
            }
        }
    }
}

/// One event on a floor connection; an error closes it.
fn floor_event(c: &mut FloorConn, ep: &Epoll, raw: &mut [u8], plain: &mut [u8]) -> io::Result<()> {
    let fd = c.sock.as_raw_fd();
    if c.blocked {
        if flush_tls(&mut c.tls, &c.sock)? {
            c.blocked = false;
            ep.ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN, fd as u64)?;
        }
        return Ok(());
    }
    let n = match (&c.sock).read(raw) {
        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(n) => n,
        Err(e) if would_block(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut rd = &raw[..n];
    while !rd.is_empty() {
        c.tls.read_tls(&mut rd)?;
        let state = match c.tls.process_new_packets() {
            Ok(s) => s,
            Err(e) => {
                let _ = flush_tls(&mut c.tls, &c.sock);
                return Err(tls_error(e));
            }
        };
        let peer_closed = state.peer_has_closed();
        loop {
            match c.tls.reader().read(plain) {
                Ok(0) => break,
                Ok(k) => c.tls.writer().write_all(&plain[..k])?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if peer_closed {
            c.tls.send_close_notify();
            let _ = flush_tls(&mut c.tls, &c.sock);
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    if !flush_tls(&mut c.tls, &c.sock)? {
        c.blocked = true;
        ep.ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLOUT, fd as u64)?;
    }
    Ok(())
}

/// tulip `Protocol` echo, as `examples/tcp_echo_server.rs`; under TLS the transport is the TLS
/// layer's application transport.
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

fn serve_tulip(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let lp = tulip::EventLoop::new()?;
    let server = lp.run_until_complete(tulip::create_server(
        || EchoProto { transport: None },
        &addr.ip().to_string(),
        addr.port(),
        tulip::ServerOptions::new()
            .backlog(1024)
            .tls(tulip::TlsOptions::server(server_config())),
    ))?;
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

/// tokio-rustls echo: `read` into a reused 64 KiB buffer, `write_all`, and `flush` (tokio-rustls
/// may keep records it could not send; without it the bulk echo can stall — a no-op otherwise).
fn serve_tokio(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Same crate: tulip's re-exported `rustls::ServerConfig` is what tokio-rustls takes.
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config());
    let r = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        ready(
            listener.local_addr()?,
            Box::new(move || {
                let _ = tx.send(());
            }),
        );
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                s.set_nodelay(true).ok();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(s).await else {
                        return;
                    };
                    let mut buf = vec![0u8; BUF];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() || s.flush().await.is_err() {
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

// ---- load generator ----------------------------------------------------------------------------

/// When a load run ends.
#[derive(Clone, Copy)]
enum Limit {
    /// After a warm-up, a measured window of this length.
    Time { warmup: Duration, window: Duration },
    /// After this many round trips (bulk: echoed chunks) in all; the whole run is measured.
    Requests(u64),
}

/// The workloads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// 1 KiB ping-pong over this many connections.
    PingPong(usize),
    /// 16 KiB chunks streamed over one connection.
    Bulk,
}

impl Workload {
    fn label(self) -> String {
        match self {
            Workload::PingPong(1) => "1 KiB ping-pong, 1 conn".into(),
            Workload::PingPong(n) => format!("1 KiB ping-pong, {n} conns"),
            Workload::Bulk => "16 KiB bulk, 1 conn".into(),
        }
    }
}

/// What one load run measured over its window.
struct LoadResult {
    /// Round trips, or echoed chunks.
    requests: u64,
    /// Echoed plaintext bytes.
    bytes: u64,
    elapsed: Duration,
    /// CPU of all threads but the load generator's over the window.
    server_cpu: Duration,
    /// How long those threads waited for a CPU over the window.
    server_wait: Duration,
    /// Round-trip latencies of the window, nanoseconds (ping-pong only).
    latencies: Vec<u32>,
}

/// One load-generator connection.
struct Client {
    sock: TcpStream,
    tls: rustls::ClientConnection,
    /// Plaintext of the current response received so far.
    got: usize,
    sent_at: Instant,
}

impl Client {
    /// Connects, does the handshake (blocking), then turns the socket non-blocking.
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        let mut sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").expect("a valid name");
        let mut tls = rustls::ClientConnection::new(client_config(), name).map_err(tls_error)?;
        while tls.is_handshaking() {
            tls.complete_io(&mut sock)?;
        }
        flush_tls_spin(&mut tls, &sock)?;
        let got = tls.negotiated_cipher_suite().map(|s| s.suite());
        if got != Some(suite().suite()) {
            return Err(io::Error::other(format!(
                "negotiated {got:?}, not {:?}",
                suite().suite()
            )));
        }
        sock.set_nonblocking(true)?;
        Ok(Client {
            sock,
            tls,
            got: 0,
            sent_at: Instant::now(),
        })
    }

    /// One `recv` into `raw`, decrypted; returns the plaintext bytes it held (the plaintext
    /// itself is dropped into `sink`). `WouldBlock` when the socket had nothing.
    fn pump(&mut self, raw: &mut [u8], sink: &mut [u8]) -> io::Result<usize> {
        let n = match (&self.sock).read(raw)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed a connection",
                ));
            }
            n => n,
        };
        let mut rd = &raw[..n];
        let mut plain = 0;
        while !rd.is_empty() {
            self.tls.read_tls(&mut rd)?;
            self.tls.process_new_packets().map_err(tls_error)?;
            loop {
                match self.tls.reader().read(sink) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server sent close_notify",
                        ));
                    }
                    Ok(k) => plain += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(plain)
    }

    /// Queues `data` and sends it (spinning on `WouldBlock`).
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.tls.writer().write_all(data)?;
        flush_tls_spin(&mut self.tls, &self.sock)
    }

    /// Says goodbye properly (close_notify), so servers see a clean end.
    fn close(mut self) {
        self.tls.send_close_notify();
        let _ = flush_tls(&mut self.tls, &self.sock);
    }
}

/// The measured window's bookkeeping.
struct Window {
    limit: Limit,
    start: Instant,
    measuring: bool,
    t0: Instant,
    cpu0: Duration,
    wait0: Duration,
    done0: u64,
    bytes0: u64,
}

impl Window {
    fn new(limit: Limit) -> Window {
        let start = Instant::now();
        Window {
            limit,
            start,
            measuring: matches!(limit, Limit::Requests(_)),
            t0: start,
            cpu0: others_cpu(),
            wait0: others_runq_wait(),
            done0: 0,
            bytes0: 0,
        }
    }

    fn max_requests(&self) -> u64 {
        match self.limit {
            Limit::Time { .. } => u64::MAX,
            Limit::Requests(n) => n,
        }
    }

    /// Starts the window after the warm-up; true when the run is over.
    fn tick(&mut self, done: u64, bytes: u64) -> bool {
        match self.limit {
            Limit::Time { warmup, window } => {
                let now = Instant::now();
                if !self.measuring && now >= self.start + warmup {
                    self.measuring = true;
                    self.wait0 = others_runq_wait();
                    self.cpu0 = others_cpu();
                    self.t0 = Instant::now();
                    self.done0 = done;
                    self.bytes0 = bytes;
                    false
                } else {
                    self.measuring && now >= self.t0 + window
                }
            }
            Limit::Requests(n) => done >= n,
        }
    }

    /// Whether to record latencies now.
    fn sampling(&self) -> bool {
        self.measuring && matches!(self.limit, Limit::Time { .. })
    }

    fn finish(self, done: u64, bytes: u64, latencies: Vec<u32>) -> LoadResult {
        let elapsed = self.t0.elapsed();
        let server_cpu = others_cpu().saturating_sub(self.cpu0);
        let server_wait = others_runq_wait().saturating_sub(self.wait0);
        LoadResult {
            requests: done - self.done0,
            bytes: bytes - self.bytes0,
            elapsed,
            server_cpu,
            server_wait,
            latencies,
        }
    }
}

fn stalled(last_progress: Instant) -> io::Result<()> {
    if last_progress.elapsed() > Duration::from_secs(10) {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no response for 10 s",
        ));
    }
    Ok(())
}

/// Runs `workload` against `addr`, busy-polling epoll.
fn drive(addr: SocketAddr, workload: Workload, limit: Limit) -> io::Result<LoadResult> {
    let conns = match workload {
        Workload::PingPong(n) => n.max(1),
        Workload::Bulk => 1,
    };
    let ep = Epoll::new()?;
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let c = Client::connect(addr)?;
        ep.add(c.sock.as_raw_fd(), i as u64)?;
        clients.push(c);
    }
    let r = match workload {
        Workload::PingPong(_) => ping_pong(&ep, &mut clients, limit),
        Workload::Bulk => bulk(&ep, &mut clients[0], limit),
    };
    for c in clients {
        c.close();
    }
    r
}

/// Ping-pongs `MSG` bytes over every client.
fn ping_pong(ep: &Epoll, clients: &mut [Client], limit: Limit) -> io::Result<LoadResult> {
    let msg = [0xA5u8; MSG];
    let mut raw = vec![0u8; RAW_BUF];
    let mut sink = vec![0u8; BUF];
    let mut events = no_events::<64>();
    let mut win = Window::new(limit);
    let max_requests = win.max_requests();
    let mut latencies = Vec::with_capacity(if win.measuring { 0 } else { 1 << 20 });
    let (mut issued, mut done) = (0u64, 0u64);
    for c in clients.iter_mut() {
        if issued < max_requests {
            c.send(&msg)?;
            c.sent_at = Instant::now();
            issued += 1;
        }
    }
    let mut last_progress = Instant::now();
    loop {
        if win.tick(done, done * MSG as u64) {
            break;
        }
        let n = ep.wait(&mut events, 0)?;
        if n == 0 {
            stalled(last_progress)?;
            continue;
        }
        for ev in &events[..n] {
            let c = &mut clients[ev.u64 as usize];
            while c.got < MSG {
                match c.pump(&mut raw, &mut sink) {
                    Ok(k) => c.got += k,
                    Err(e) if would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            }
            if c.got >= MSG {
                c.got -= MSG;
                done += 1;
                let t = Instant::now();
                last_progress = t;
                if win.sampling() {
                    let ns = t.duration_since(c.sent_at).as_nanos();
                    latencies.push(ns.min(u32::MAX as u128) as u32);
                }
                if issued < max_requests {
                    c.send(&msg)?;
                    c.sent_at = Instant::now();
                    issued += 1;
                }
            }
        }
    }
    Ok(win.finish(done, done * MSG as u64, latencies))
}

/// Streams `CHUNK`-byte writes with at most `WINDOW` bytes in flight, reading the echo.
fn bulk(ep: &Epoll, c: &mut Client, limit: Limit) -> io::Result<LoadResult> {
    let chunk = vec![0x5Au8; CHUNK];
    let mut raw = vec![0u8; RAW_BUF];
    let mut sink = vec![0u8; BUF];
    let mut events = no_events::<4>();
    let mut win = Window::new(limit);
    let max_bytes = win.max_requests().saturating_mul(CHUNK as u64);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    loop {
        let done = received / CHUNK as u64;
        if win.tick(done, received) {
            break;
        }
        // Top up: one record queued in rustls at a time, the rest in the kernel's buffers.
        while !c.tls.wants_write() && sent - received + CHUNK as u64 <= WINDOW as u64 {
            if sent >= max_bytes {
                break;
            }
            c.tls.writer().write_all(&chunk)?;
            sent += CHUNK as u64;
            if !flush_tls(&mut c.tls, &c.sock)? {
                break;
            }
        }
        if c.tls.wants_write() {
            flush_tls(&mut c.tls, &c.sock)?;
        }
        if ep.wait(&mut events, 0)? == 0 {
            stalled(last_progress)?;
            continue;
        }
        loop {
            match c.pump(&mut raw, &mut sink) {
                Ok(k) => {
                    received += k as u64;
                    last_progress = Instant::now();
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
    }
    let done = received / CHUNK as u64;
    Ok(win.finish(done, received, Vec::new()))
}

// ---- driver ------------------------------------------------------------------------------------

/// One measurement point.
#[derive(Clone, Copy)]
struct Sample {
    /// Requests (round trips, or 16 KiB chunks) per second.
    rps: f64,
    /// Echoed plaintext, MB/s.
    mbps: f64,
    p99_us: f64,
    /// Server CPU per request (per chunk for bulk).
    cpu_ns: f64,
    /// Server CPU ÷ window, %.
    busy_pct: f64,
    /// Run-queue wait of the server's threads, % of the window.
    wait_pct: f64,
}

fn measure(kind: Kind, workload: Workload, limit: Limit) -> io::Result<Sample> {
    let srv = Running::start(kind, Some(SERVER_CPU))?;
    let r = drive(srv.addr, workload, limit);
    srv.stop()?;
    let mut r = r?;
    let secs = r.elapsed.as_secs_f64();
    // Bulk: per chunk, counted in bytes so a partly echoed chunk counts in part.
    let n = match workload {
        Workload::Bulk => r.bytes as f64 / CHUNK as f64,
        Workload::PingPong(_) => r.requests as f64,
    }
    .max(1.0);
    Ok(Sample {
        rps: n / secs,
        mbps: r.bytes as f64 / secs / 1e6,
        p99_us: percentile(&mut r.latencies, 0.99) / 1e3,
        cpu_ns: r.server_cpu.as_nanos() as f64 / n,
        busy_pct: 100.0 * r.server_cpu.as_secs_f64() / secs,
        wait_pct: 100.0 * r.server_wait.as_secs_f64() / secs,
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
    bulk: bool,
    serve: Option<(Kind, SocketAddr)>,
    client: Option<(SocketAddr, u64)>,
}

fn usage(msg: &str) -> ! {
    eprintln!("tls_echo bench: {msg}");
    eprintln!(
        "usage: tls_echo [--quick] [--reps=N] [--secs=F] [--only=ID,…] [c1|c50|bulk]…\n       \
         tls_echo --serve ID ADDR\n       tls_echo --client ADDR N [--conns=C | --bulk]\n\
         server ids: floor tulip tokio-rustls"
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
        bulk: false,
        serve: None,
        client: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--bench" {
            args.bench = true;
        } else if a == "--quick" {
            args.quick = true;
        } else if a == "--bulk" {
            args.bulk = true;
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

/// `--client`: `n` round trips (or echoed chunks), then a one-line report.
fn client(addr: SocketAddr, n: u64, workload: Workload) -> io::Result<()> {
    let r = drive(addr, workload, Limit::Requests(n))?;
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{}: {} {} in {secs:.3} s ({:.0}/s, {:.1} MB/s of plaintext echoed)",
        workload.label(),
        r.requests,
        if workload == Workload::Bulk {
            "chunks"
        } else {
            "round trips"
        },
        r.requests as f64 / secs,
        r.bytes as f64 / secs / 1e6,
    );
    Ok(())
}

fn main() -> io::Result<()> {
    let args = parse_args();
    if let Some((kind, addr)) = args.serve {
        return serve_forever(kind, addr);
    }
    if let Some((addr, n)) = args.client {
        let workload = if args.bulk {
            Workload::Bulk
        } else {
            Workload::PingPong(args.conns.unwrap_or(1).max(1))
        };
        return client(addr, n, workload);
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
    let workloads: Vec<Workload> = [
        ("c1", Workload::PingPong(1)),
        ("c50", Workload::PingPong(50)),
        ("bulk", Workload::Bulk),
    ]
    .into_iter()
    .filter(|(id, _)| args.workloads.is_empty() || args.workloads.iter().any(|w| w == id))
    .map(|(_, w)| w)
    .collect();

    println!("{}", machine());
    pin_warn("load generator", LOAD_CPU);
    println!(
        "TLS: rustls 0.23 + ring, TLS 1.3, {:?} only (checked on every connection), one \
         rustls crate for all sides; ECDSA P-256 self-signed certificate (rcgen)",
        suite().suite()
    );
    println!(
        "mode: {}, {reps} interleaved repetitions × {:.2} s window (after {} ms warm-up) per \
         server and workload; server on CPU {SERVER_CPU}, busy-polling TLS load generator on CPU \
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
        "| workload | server | req/s (bulk: MB/s) | p99 µs | server CPU ns/req (bulk: per 16 KiB) \
         | server busy | CPU ÷ floor | CPU ÷ tokio-rustls | rate ÷ tokio-rustls | run-queue wait |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut disturbed = 0.0f64;
    for &wl in &workloads {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        for rep in 0..reps {
            for k in 0..kinds.len() {
                let i = (k + rep) % kinds.len();
                let s = measure(kinds[i], wl, limit).unwrap_or_else(|e| {
                    eprintln!("{} on {}: {e}", kinds[i].id(), wl.label());
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
        let (floor, tokio) = (peer(Kind::Floor), peer(Kind::Tokio));
        for (i, kind) in kinds.iter().enumerate() {
            let s = &samples[i];
            let med = |f: fn(&Sample) -> f64| median(&mut s.iter().map(f).collect::<Vec<_>>());
            let (rate, p99) = match wl {
                Workload::Bulk => (format!("{:.0} MB/s", med(|s| s.mbps)), "—".to_string()),
                Workload::PingPong(_) => (
                    format!("{:.0}", med(|s| s.rps)),
                    format!("{:.0}", med(|s| s.p99_us)),
                ),
            };
            println!(
                "| {} | {} | {rate} | {p99} | {:.0} | {:.0} % | {} | {} | {} | {:.1} % |",
                wl.label(),
                kind.name(),
                med(|s| s.cpu_ns),
                med(|s| s.busy_pct),
                ratio(s, floor, |s| s.cpu_ns),
                ratio(s, tokio, |s| s.cpu_ns),
                ratio(s, tokio, |s| s.rps),
                med(|s| s.wait_pct),
            );
            disturbed = s.iter().map(|s| s.wait_pct).fold(disturbed, f64::max);
        }
    }
    println!();
    // A quiet machine shows about 0.5 % (the wake-up latency), at most 2–3 % in one run.
    if disturbed > 5.0 {
        println!(
            "warning: in some runs the server waited for its CPU up to {disturbed:.1} % of the \
             window: another process ran on CPU {SERVER_CPU}; the figures of those runs, CPU per \
             request included, are unreliable: rerun on a quiet machine."
        );
    }
    println!(
        "req/s (bulk: MB/s of plaintext echoed), p99 (round trip seen by the client) and server \
         CPU ns/req (CPU time of every thread but the load generator's over the window, divided \
         by round trips, or by 16 KiB chunks echoed) are medians; server busy is that CPU time ÷ \
         the window (near 100 %: the server is the bottleneck; well below: the load generator or \
         the round-trip latency is); ÷ columns are medians of per-repetition paired ratios (CPU: \
         below 1.0 means the row's server is cheaper; rate: above 1.0 means it is faster). \
         Run-queue wait: median share of the window the server's thread was runnable but not \
         running (about 0.5 % on a quiet machine)."
    );
    Ok(())
}
