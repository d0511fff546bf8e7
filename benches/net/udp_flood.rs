//! Section `udp-flood`: a UDP receive flood. A sender on the load CPU sends 64 B datagrams as
//! fast as it can (`sendmmsg` of [`SEND_BATCH`] at a time, one connected socket) to a server
//! pinned on the server CPU, which only counts what it receives; over the measured window the
//! table shows datagrams handled per server CPU-second and the share of the sent datagrams
//! the server never handled (dropped by the kernel when its receive queue was full).
//!
//! A second table repeats the flood with a sender using UDP GSO (`UDP_SEGMENT`: one
//! `sendmsg` carries [`SEND_BATCH`] datagrams), against tulip with and without
//! `DatagramOptions::gro` (with GRO the kernel queues each burst as one buffer, which the
//! endpoint splits again).
//!
//! Servers: tulip's `DatagramProtocol` (`recvmmsg` per readiness event), tokio's
//! current-thread `UdpSocket` (a `recv_from` loop), and two libc floors on a level-triggered
//! epoll: `recvfrom` until `EAGAIN`, and `recvmmsg` of [`BATCH`] until a batch comes back
//! short (the fewest system calls per datagram).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tulip::socket2::SockAddr;
use tulip::{DatagramProtocol, DatagramTransport};

use crate::load::Limit;
use crate::servers::{Ready, Running, Server};
use crate::sys::{self, Epoll, StopFd, median};

/// Datagrams one `recvmmsg` of the batched floor takes at most (tulip's batch too).
const BATCH: usize = 16;
/// A receive slot: the largest UDP payload fits (as in every server of `udp.rs`).
const SLOT: usize = 64 * 1024;
/// The datagram size.
const SIZE: usize = 64;
/// Datagrams per `sendmmsg` of the sender.
const SEND_BATCH: usize = 64;

/// Datagrams handled by the running flood server (one at a time; only its thread writes).
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// Counts `n` more handled datagrams (a plain load and store: there is one writer).
#[inline]
fn handled(n: u64) {
    HANDLED.store(HANDLED.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

pub static SERVERS: &[Server] = &[
    Server {
        id: "flood-floor",
        name: "floor: epoll + `recvfrom` until `EAGAIN` (libc)",
        serve: serve_floor,
    },
    Server {
        id: "flood-floor-mmsg",
        name: "floor: epoll + `recvmmsg` until a short batch (libc)",
        serve: serve_floor_mmsg,
    },
    Server {
        id: "flood-tulip",
        name: "tulip `DatagramProtocol`",
        serve: serve_tulip,
    },
    Server {
        id: "flood-tulip-gro",
        name: "tulip `DatagramProtocol`, `DatagramOptions::gro(true)`",
        serve: serve_tulip_gro,
    },
    Server {
        id: "flood-tokio",
        name: "tokio current-thread `UdpSocket`, `recv_from` loop",
        serve: serve_tokio,
    },
];

// ---- the sender ----------------------------------------------------------------------------

/// What one flood measured.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Sent and handled per second over the window.
    sent_rate: f64,
    handled_rate: f64,
    /// Datagrams handled per server CPU-second over the window.
    per_cpu_sec: f64,
    busy_pct: f64,
    /// Sent but never handled, % of all sent in the run (warm-up included).
    loss_pct: f64,
    wait_pct: f64,
}

/// Floods `addr` for the warm-up and the window; then waits until the server has handled
/// what it will.
fn flood(addr: SocketAddr, gso: bool, warmup: Duration, window: Duration) -> io::Result<Sample> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(addr)?;
    sock.set_nonblocking(true)?;
    let msg = [0x5Au8; SIZE];
    // SAFETY: all-zero is valid for these C structs (null pointers, zero lengths).
    let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()) {
        *iov = libc::iovec {
            iov_base: msg.as_ptr() as *mut libc::c_void,
            iov_len: SIZE,
        };
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    let fd = sock.as_raw_fd();
    let h_start = HANDLED.load(Ordering::Relaxed);
    let mut sent = 0u64;
    // GSO: one buffer of SEND_BATCH datagrams, one `sendmsg` with a `UDP_SEGMENT` message.
    let burst = [0x5Au8; SIZE * SEND_BATCH];
    let mut burst_iov = libc::iovec {
        iov_base: burst.as_ptr() as *mut libc::c_void,
        iov_len: burst.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: all-zero is a valid msghdr.
    let mut gso_msg: libc::msghdr = unsafe { std::mem::zeroed() };
    gso_msg.msg_iov = &mut burst_iov;
    gso_msg.msg_iovlen = 1;
    gso_msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    gso_msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
    // SAFETY: the 32-byte control buffer holds one message of CMSG_SPACE(2) bytes, which
    // CMSG_FIRSTHDR / CMSG_DATA point into.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&gso_msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        libc::CMSG_DATA(c)
            .cast::<u16>()
            .write_unaligned(SIZE as u16);
    }
    let mut send = || {
        if gso {
            // SAFETY: `gso_msg` points at `burst_iov`, `burst` and `control`, which outlive
            // the call.
            let n = unsafe { libc::sendmsg(fd, &gso_msg, 0) };
            return if n > 0 { (n as usize / SIZE) as u64 } else { 0 };
        }
        // SAFETY: every header points at `msg` (SIZE bytes), which outlives the call; the
        // socket is connected, so no names.
        let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), SEND_BATCH as u32, 0) };
        n.max(0) as u64
    };
    let start = Instant::now();
    while start.elapsed() < warmup {
        sent += send();
    }
    let (cpu0, wait0, h0, s0, t0) = (
        sys::others_cpu(),
        sys::others_runq_wait(),
        HANDLED.load(Ordering::Relaxed),
        sent,
        Instant::now(),
    );
    while t0.elapsed() < window {
        sent += send();
    }
    let (cpu1, wait1, h1, s1, t1) = (
        sys::others_cpu(),
        sys::others_runq_wait(),
        HANDLED.load(Ordering::Relaxed),
        sent,
        t0.elapsed(),
    );
    // What is still queued is handled now: wait until the count stops moving.
    let mut last = HANDLED.load(Ordering::Relaxed);
    let mut still = Instant::now();
    let give_up = Instant::now() + Duration::from_secs(2);
    while still.elapsed() < Duration::from_millis(20) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(1));
        let h = HANDLED.load(Ordering::Relaxed);
        if h != last {
            (last, still) = (h, Instant::now());
        }
    }
    let total = last - h_start;
    let (secs, cpu) = (t1.as_secs_f64(), (cpu1 - cpu0).as_secs_f64());
    Ok(Sample {
        sent_rate: (s1 - s0) as f64 / secs,
        handled_rate: (h1 - h0) as f64 / secs,
        per_cpu_sec: (h1 - h0) as f64 / cpu.max(1e-9),
        busy_pct: 100.0 * cpu / secs,
        loss_pct: 100.0 * sent.saturating_sub(total) as f64 / sent.max(1) as f64,
        wait_pct: 100.0 * (wait1.saturating_sub(wait0)).as_secs_f64() / secs,
    })
}

/// Runs the section: a plain sender against every server but the GRO one, then a GSO
/// sender (what GRO is for) against the batched ones; every server `reps` times,
/// interleaved with the order rotating.
pub fn run(reps: usize, limit: Limit, only: Option<&[String]>) -> io::Result<()> {
    let Limit::Time { warmup, window } = limit else {
        return Err(io::Error::other("the flood runs for a time"));
    };
    println!(
        "UDP receive flood: {SIZE} B datagrams from one sender on CPU {}, the server on CPU {}; \
         medians of {reps} run(s) × {:.2} s (after {} ms of warm-up)",
        sys::LOAD_CPU,
        sys::SERVER_CPU,
        window.as_secs_f64(),
        warmup.as_millis()
    );
    let plain = [
        "flood-floor",
        "flood-floor-mmsg",
        "flood-tulip",
        "flood-tokio",
    ];
    let title = format!("plain sender: `sendmmsg` of {SEND_BATCH} datagrams");
    table(&title, &plain, false, reps, warmup, window, only)?;
    let gso = [
        "flood-floor-mmsg",
        "flood-tulip",
        "flood-tulip-gro",
        "flood-tokio",
    ];
    let title = format!(
        "GSO sender: one `sendmsg` of {SEND_BATCH} datagrams (`UDP_SEGMENT`; the kernel splits \
         them for a receiver without GRO)"
    );
    table(&title, &gso, true, reps, warmup, window, only)?;
    println!(
        "÷ columns: medians of the per-repetition ratios of datagrams per server CPU-second \
         (above 1.0 is cheaper); loss: sent but never handled, over the whole run\n"
    );
    Ok(())
}

/// One table: the servers `ids` under one kind of sender.
fn table(
    title: &str,
    ids: &[&str],
    gso: bool,
    reps: usize,
    warmup: Duration,
    window: Duration,
    only: Option<&[String]>,
) -> io::Result<()> {
    let servers: Vec<&'static Server> = SERVERS
        .iter()
        .filter(|s| ids.contains(&s.id))
        .filter(|s| only.is_none_or(|o| o.iter().any(|id| id == s.id)))
        .collect();
    if servers.is_empty() {
        return Ok(());
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
    for rep in 0..reps {
        for k in 0..servers.len() {
            let i = (k + rep) % servers.len();
            let srv = Running::start(servers[i], Some(sys::SERVER_CPU))?;
            let r = flood(srv.addr, gso, warmup, window);
            srv.stop()?;
            samples[i].push(r.map_err(|e| {
                io::Error::new(e.kind(), format!("{} on udp-flood: {e}", servers[i].id))
            })?);
        }
    }
    println!("{title}");
    println!(
        "| server | sent/s | handled/s | server busy | datagrams per server CPU-second | loss | \
         ÷ recvfrom floor | ÷ recvmmsg floor | ÷ tokio | run-queue wait |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let find = |id: &str| {
        servers
            .iter()
            .position(|s| s.id == id)
            .map(|i| samples[i].as_slice())
    };
    let refs = [
        find("flood-floor"),
        find("flood-floor-mmsg"),
        find("flood-tokio"),
    ];
    let med =
        |s: &[Sample], f: fn(&Sample) -> f64| median(&mut s.iter().map(f).collect::<Vec<_>>());
    for (i, server) in servers.iter().enumerate() {
        let s = samples[i].as_slice();
        let ratio = |r: Option<&[Sample]>| match r {
            Some(p) if !std::ptr::eq(p, s) => {
                let mut v: Vec<f64> = s
                    .iter()
                    .zip(p)
                    .map(|(a, b)| a.per_cpu_sec / b.per_cpu_sec)
                    .collect();
                format!("{:.2}", median(&mut v))
            }
            _ => "—".into(),
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} % | {:.0} | {:.1} % | {} | {} | {} | {:.1} % |",
            server.name,
            med(s, |s| s.sent_rate),
            med(s, |s| s.handled_rate),
            med(s, |s| s.busy_pct),
            med(s, |s| s.per_cpu_sec),
            med(s, |s| s.loss_pct),
            ratio(refs[0]),
            ratio(refs[1]),
            ratio(refs[2]),
            med(s, |s| s.wait_pct),
        );
    }
    println!();
    Ok(())
}

// ---- the servers ---------------------------------------------------------------------------

/// Runs `on_readable` for every readiness event of a UDP socket bound to `addr` until stopped.
fn floor_loop(
    addr: SocketAddr,
    ready: Ready,
    mut on_readable: impl FnMut(RawFd),
) -> io::Result<()> {
    let sock = UdpSocket::bind(addr)?;
    sock.set_nonblocking(true)?;
    let ep = Epoll::new()?;
    let stop = StopFd::new()?;
    const SOCK: u64 = 0;
    const STOP: u64 = 1;
    ep.add(sock.as_raw_fd(), SOCK)?;
    ep.add(stop.raw(), STOP)?;
    ready(sock.local_addr()?, stop.signaller()?);
    let mut events = sys::no_events::<4>();
    loop {
        let n = ep.wait(&mut events, -1)?;
        for ev in &events[..n] {
            match ev.u64 {
                STOP => return Ok(()),
                _ => on_readable(sock.as_raw_fd()),
            }
        }
    }
}

/// `recvfrom` until `EAGAIN` per readiness event.
fn serve_floor(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let mut buf = vec![0u8; SLOT];
    floor_loop(addr, ready, |fd| {
        loop {
            // SAFETY: all-zero is a valid `sockaddr_storage`.
            let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: `buf` and `name` are valid for writes of their lengths for the call.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    std::ptr::from_mut(&mut name).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                return;
            }
            handled(1);
        }
    })
}

/// `recvmmsg` of up to [`BATCH`] datagrams per call, again while a batch comes back full.
fn serve_floor_mmsg(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let mut buf = vec![0u8; SLOT * BATCH];
    // SAFETY: all-zero is valid for these C structs (null pointers are set before use).
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..BATCH {
        iovs[i].iov_base = buf[i * SLOT..].as_mut_ptr().cast();
        iovs[i].iov_len = SLOT;
        hdrs[i].msg_hdr.msg_name = std::ptr::from_mut(&mut names[i]).cast();
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    floor_loop(addr, ready, |fd| {
        loop {
            for h in &mut hdrs {
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            }
            // SAFETY: the headers point at `BATCH` disjoint slots of `buf` and at `names`,
            // which outlive the call.
            let n = unsafe {
                libc::recvmmsg(fd, hdrs.as_mut_ptr(), BATCH as u32, 0, std::ptr::null_mut())
            };
            if n <= 0 {
                return;
            }
            handled(n as u64);
            if (n as usize) < BATCH {
                return;
            }
        }
    })
}

/// Counts every datagram.
struct Count;

impl DatagramProtocol for Count {
    fn connection_made(&mut self, _t: &DatagramTransport) {}
    fn datagram_received(&mut self, _data: &[u8], _addr: &SockAddr) {
        handled(1);
    }
}

fn serve_tulip(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    tulip_server(addr, ready, false)
}

fn serve_tulip_gro(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    tulip_server(addr, ready, true)
}

fn tulip_server(addr: SocketAddr, ready: Ready, gro: bool) -> io::Result<()> {
    let lp = tulip::EventLoop::new()?;
    let opts = tulip::net::DatagramOptions::new()
        .local_addr(&addr.ip().to_string(), addr.port())
        .gro(gro);
    let (t, _) = lp.run_until_complete(tulip::create_datagram_endpoint(|| Count, opts))?;
    crate::udp::run_endpoint(lp, t, ready)
}

fn serve_tokio(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let r = rt.block_on(async move {
        let sock = tokio::net::UdpSocket::bind(addr).await?;
        ready(
            sock.local_addr()?,
            Box::new(move || {
                let _ = tx.send(());
            }),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; SLOT];
            loop {
                if sock.recv_from(&mut buf).await.is_ok() {
                    handled(1);
                }
            }
        });
        let _ = rx.await;
        io::Result::Ok(())
    });
    drop(rt);
    r
}
