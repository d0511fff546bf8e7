//! TLS echo over rustls: tulip's `Protocol` over `create_server(…, ServerOptions::tls)` against
//! tokio's current-thread runtime with tokio-rustls (`TlsAcceptor`, `read` into a reused buffer
//! and `write_all`), and a minimal level-triggered epoll loop written with `libc` that drives
//! `rustls::ServerConnection` by hand (the floor: rustls and the system calls, no runtime).
//!
//! All three use the same rustls 0.23 (one crate in the build: tulip's `tls::rustls` is the one
//! tokio-rustls takes) with the `ring` provider restricted to one cipher suite,
//! `TLS13_AES_128_GCM_SHA256`, TLS 1.3 only; each server gets a fresh `ServerConfig` built the
//! same way (no session cache shared between servers), with an rcgen self-signed ECDSA P-256
//! certificate for `localhost` (a fixed key, so that a `--serve` process and a `--client --tls`
//! process agree). The load generator checks the negotiated suite on every connection.
//!
//! Workloads:
//! - `tls-c1`, `tls-c50`: 1 KiB ping-pong over 1 and over 50 connections (each connection sends
//!   1 KiB of plaintext, reads its 1 KiB echo, and sends again);
//! - `tls-bulk`: one connection; the client writes 16 KiB chunks continuously (at most 256 KiB
//!   of plaintext in flight) and reads the echo; an operation is one 16 KiB chunk echoed, the
//!   rate is echoed plaintext in MB/s.
//!
//! The load generator is the suite's (main thread, CPU 1, busy-polling `epoll_wait(…, 0)`, the
//! measured window of `load::Window`), with a `rustls::ClientConnection` per connection driven by
//! hand: one `recv` into a 256 KiB buffer, `read_tls` from it, `write_tls` with `writev`. The
//! handshakes are done before the measured window (and before the warm-up).
//!
//! The client encrypts and decrypts as much as the server does, so it can be the bottleneck: the
//! floor row shows what this load generator reaches with the cheapest server, and the "server
//! busy" column (server CPU ÷ window) shows whether the server was saturated. Server CPU per
//! request (or per 16 KiB chunk) is the figure that decides on these machines.
//!
//! ```text
//! cargo bench --bench net -- tls-c1 tls-c50 tls-bulk
//! cargo bench --bench net -- --quick tls-c1 --only=tls-tulip,tls-tokio
//! # one server as a process (e.g. under callgrind), and a TLS client driving N round trips (or,
//! # with --bulk, N echoed 16 KiB chunks):
//! cargo bench --bench net -- --serve tls-tulip 127.0.0.1:0   # prints `listening on IP:PORT`
//! cargo bench --bench net -- --client 127.0.0.1:PORT 12000 --tls --conns=1
//! cargo bench --bench net -- --client 127.0.0.1:PORT 6000 --tls --bulk
//! ```
//!
//! User-space instructions per round trip (the stable figure): run `--serve tls-… 127.0.0.1:0`
//! under `valgrind --tool=callgrind` pinned to CPU 0, drive it with `--client … --tls` on CPU 1
//! for 2,000 and then (fresh server) 12,000 round trips, stop it with SIGTERM (callgrind still
//! writes its file), and take `(Ir_long − Ir_short) / 10,000`; the handshakes cancel out. (The
//! suite's `ir` section and memory workload drive plain TCP and do not include these servers.)

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tulip::tls::rustls;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::echo::{EchoProto, run_tulip_server};
use crate::load::{CHUNK, Limit, LoadResult, Window};
use crate::servers::{Ready, Server};
use crate::suite::{self, Unit, Workload};
use crate::sys::{self, Epoll, StopFd};

/// The ping-pong request and response size (plaintext).
const MSG: usize = 1024;
/// The most plaintext the bulk client has in flight (sent, echo not yet read); its writes are
/// `load::CHUNK`s, 16 KiB: one TLS record each.
const IN_FLIGHT: usize = 256 * 1024;
/// The servers' plaintext buffer.
const BUF: usize = 64 * 1024;
/// The socket read buffer of the floor server and of the load generator (tulip's is as big).
const RAW_BUF: usize = 256 * 1024;

pub static SERVERS: &[Server] = &[
    Server {
        id: "tls-floor",
        name: "floor: rustls + epoll (libc)",
        serve: serve_floor,
    },
    Server {
        id: "tls-tulip",
        name: "tulip `Protocol`, `ServerOptions::tls`",
        serve: serve_tulip,
    },
    Server {
        id: "tls-tokio",
        name: "tokio current-thread + tokio-rustls",
        serve: serve_tokio,
    },
];

/// `tls-c1`, `tls-c50` and `tls-bulk`.
pub fn workloads(_quick: bool) -> Vec<Workload> {
    let ids: Vec<&str> = SERVERS.iter().map(|s| s.id).collect();
    let mut out = Vec::new();
    for conns in [1usize, 50] {
        out.push(Workload {
            id: format!("tls-c{conns}"),
            label: format!(
                "TLS 1 KiB ping-pong, {conns} conn{}",
                if conns > 1 { "s" } else { "" }
            ),
            servers: suite::servers(&ids),
            floor: "tls-floor",
            tokio: "tls-tokio",
            unit: Unit::Request,
            drive: Box::new(move |addr, limit| ping_pong(addr, MSG, conns, limit)),
        });
    }
    out.push(Workload {
        id: "tls-bulk".into(),
        label: "TLS bulk echo, 16 KiB chunks, 1 conn".into(),
        servers: suite::servers(&ids),
        floor: "tls-floor",
        tokio: "tls-tokio",
        unit: Unit::Chunk(CHUNK),
        drive: Box::new(bulk),
    });
    out
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
    let stop = StopFd::new()?;
    const LISTENER: u64 = u64::MAX;
    const STOP: u64 = u64::MAX - 1;
    ep.add(listener.as_raw_fd(), LISTENER)?;
    ep.add(stop.raw(), STOP)?;
    ready(listener.local_addr()?, stop.signaller()?);
    let cfg = server_config();
    let mut conns: Vec<Option<FloorConn>> = Vec::new();
    let mut raw = vec![0u8; RAW_BUF];
    let mut plain = vec![0u8; BUF];
    let mut events = sys::no_events::<64>();
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
                        Err(e) if sys::would_block(&e) => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
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
            ep.modify(fd, fd as u64, true, false)?;
        }
        return Ok(());
    }
    let n = match (&c.sock).read(raw) {
        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(n) => n,
        Err(e) if sys::would_block(&e) => return Ok(()),
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
        ep.modify(fd, fd as u64, false, true)?;
    }
    Ok(())
}

/// tulip `Protocol` echo (`echo::EchoProto`); under TLS its transport is the TLS layer's
/// application transport.
fn serve_tulip(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let lp = tulip::EventLoop::new()?;
    let server = lp.run_until_complete(tulip::create_server(
        || EchoProto { transport: None },
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new()
            .backlog(1024)
            .tls(tulip::tls::TlsOptions::server(server_config())),
    ))?;
    run_tulip_server(lp, server, ready)
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

// ---- load generator ----------------------------------------------------------------------------

/// One load-generator connection.
struct Client {
    sock: TcpStream,
    tls: rustls::ClientConnection,
    /// Plaintext of the current response received so far.
    got: usize,
    sent_at: Instant,
}

impl Client {
    /// Connects, does the handshake (blocking), checks the negotiated suite, then turns the
    /// socket non-blocking.
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

/// Opens `conns` connections to `addr` with their handshakes done, registered with `ep`
/// (tokens are their indices), runs `run` over them, then closes them with close_notify.
fn with_clients(
    addr: SocketAddr,
    conns: usize,
    run: impl FnOnce(&Epoll, &mut [Client]) -> io::Result<LoadResult>,
) -> io::Result<LoadResult> {
    let ep = Epoll::new()?;
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let c = Client::connect(addr)?;
        ep.add(c.sock.as_raw_fd(), i as u64)?;
        clients.push(c);
    }
    let r = run(&ep, &mut clients);
    for c in clients {
        c.close();
    }
    r
}

/// TLS ping-pong: each of `conns` connections sends `size` bytes of plaintext, reads the
/// `size`-byte echo, and sends again; busy-polls.
pub fn ping_pong(
    addr: SocketAddr,
    size: usize,
    conns: usize,
    limit: Limit,
) -> io::Result<LoadResult> {
    with_clients(addr, conns.max(1), |ep, clients| {
        let msg = vec![0xA5u8; size];
        let mut raw = vec![0u8; RAW_BUF];
        let mut sink = vec![0u8; BUF];
        let mut events = sys::no_events::<64>();
        let mut w = Window::new(limit);
        let max = w.max_ops();
        let (mut issued, mut done) = (0u64, 0u64);
        for c in clients.iter_mut() {
            if issued < max {
                c.send(&msg)?;
                c.sent_at = Instant::now();
                issued += 1;
            }
        }
        while !w.tick(done)? {
            let n = ep.wait(&mut events, 0)?;
            for ev in &events[..n] {
                let c = &mut clients[ev.u64 as usize];
                while c.got < size {
                    match c.pump(&mut raw, &mut sink) {
                        Ok(k) => c.got += k,
                        Err(e) if sys::would_block(&e) => break,
                        Err(e) => return Err(e),
                    }
                }
                if c.got >= size {
                    c.got -= size;
                    done += 1;
                    w.progress(Some(c.sent_at));
                    if issued < max {
                        c.send(&msg)?;
                        c.sent_at = Instant::now();
                        issued += 1;
                    }
                }
            }
        }
        Ok(w.finish(done))
    })
}

/// TLS bulk: one connection; writes `CHUNK`s of plaintext with at most `IN_FLIGHT` bytes
/// unechoed, reads the echo. An operation is one echoed chunk.
pub fn bulk(addr: SocketAddr, limit: Limit) -> io::Result<LoadResult> {
    with_clients(addr, 1, |ep, clients| {
        let c = &mut clients[0];
        let chunk = vec![0x5Au8; CHUNK];
        let mut raw = vec![0u8; RAW_BUF];
        let mut sink = vec![0u8; BUF];
        let mut events = sys::no_events::<4>();
        let mut w = Window::new(limit);
        let max_bytes = w.max_ops().saturating_mul(CHUNK as u64);
        let (mut sent, mut received) = (0u64, 0u64);
        while !w.tick(received / CHUNK as u64)? {
            // Top up: one record queued in rustls at a time, the rest in the kernel's buffers.
            while !c.tls.wants_write()
                && sent < max_bytes
                && sent - received + CHUNK as u64 <= IN_FLIGHT as u64
            {
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
                continue;
            }
            loop {
                match c.pump(&mut raw, &mut sink) {
                    Ok(k) => {
                        let before = received / CHUNK as u64;
                        received += k as u64;
                        for _ in before..received / CHUNK as u64 {
                            w.progress(None);
                        }
                    }
                    Err(e) if sys::would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(w.finish(received / CHUNK as u64))
    })
}
