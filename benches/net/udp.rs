//! UDP echo: tulip's `DatagramProtocol` endpoint against tokio's `UdpSocket` and two floors
//! written with `libc` — one `recvfrom` + `sendto` per readiness event, and one `recvmmsg` +
//! one `sendmmsg` per readiness event (up to 16 datagrams) — under ping-pong from 1 and 50
//! peers (each its own connected UDP socket; a datagram lost on loopback is sent again
//! after 200 ms and counted).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use tulip::socket2::SockAddr;
use tulip::{DatagramProtocol, DatagramTransport};

use crate::load::{Limit, LoadResult, Window};
use crate::servers::{Ready, Server};
use crate::suite::{Unit, Workload, servers};
use crate::sys::{self, Epoll, StopFd};

/// Datagrams one `recvmmsg` of the batched floor takes at most (tulip's batch too).
const BATCH: usize = 16;
/// A receive slot: the largest UDP payload fits.
const SLOT: usize = 64 * 1024;
/// When the load sends a datagram again.
const RESEND: Duration = Duration::from_millis(200);

pub static SERVERS: &[Server] = &[
    Server {
        id: "udp-floor",
        name: "floor: epoll + `recvfrom`/`sendto` (libc)",
        serve: serve_floor,
    },
    Server {
        id: "udp-floor-mmsg",
        name: "floor: epoll + `recvmmsg`/`sendmmsg` (libc)",
        serve: serve_floor_mmsg,
    },
    Server {
        id: "udp-tulip",
        name: "tulip `DatagramProtocol`",
        serve: serve_tulip,
    },
    Server {
        id: "udp-tokio",
        name: "tokio current-thread `UdpSocket`, `recv_from` + `send_to`",
        serve: serve_tokio,
    },
];

/// UDP ping-pong of 64 B and 1 KiB from 1 and 50 peers.
pub fn workloads() -> Vec<Workload> {
    let ids: Vec<&str> = SERVERS.iter().map(|s| s.id).collect();
    let mut out = Vec::new();
    for (size, tag, size_label) in [(64, "64", "64 B"), (1024, "1k", "1 KiB")] {
        for peers in [1usize, 50] {
            out.push(Workload {
                id: format!("udp{tag}-c{peers}"),
                label: format!(
                    "UDP {size_label} ping-pong, {peers} peer{}",
                    if peers > 1 { "s" } else { "" }
                ),
                servers: servers(&ids),
                floor: "udp-floor",
                tokio: "udp-tokio",
                unit: Unit::Request,
                drive: Box::new(move |addr, limit| ping_pong(addr, size, peers, limit)),
            });
        }
    }
    out
}

// ---- the load ------------------------------------------------------------------------------

/// Each of `peers` connected UDP sockets sends `size` bytes, waits for the echo, sends again
/// (busy-polling). A datagram with no echo after [`RESEND`] is sent again.
pub fn ping_pong(
    addr: SocketAddr,
    size: usize,
    peers: usize,
    limit: Limit,
) -> io::Result<LoadResult> {
    let ep = Epoll::new()?;
    let mut socks = Vec::with_capacity(peers);
    for i in 0..peers {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.connect(addr)?;
        s.set_nonblocking(true)?;
        ep.add(s.as_raw_fd(), i as u64)?;
        socks.push(s);
    }
    let msg = vec![0x5Au8; size];
    let mut rbuf = vec![0u8; SLOT];
    let mut events = sys::no_events::<64>();
    let mut w = Window::new(limit);
    let max = w.max_ops();
    let (mut issued, mut done, mut resent) = (0u64, 0u64, 0u64);
    let mut sent_at: Vec<Option<Instant>> = vec![None; peers];
    for (i, s) in socks.iter().enumerate() {
        if issued < max {
            s.send(&msg)?;
            sent_at[i] = Some(Instant::now());
            issued += 1;
        }
    }
    let mut turns = 0u32;
    loop {
        if w.tick(done)? {
            break;
        }
        let n = ep.wait(&mut events, 0)?;
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            loop {
                match socks[i].recv(&mut rbuf) {
                    Ok(k) if k == size => {
                        done += 1;
                        w.progress(sent_at[i].take());
                        if issued < max {
                            socks[i].send(&msg)?;
                            sent_at[i] = Some(Instant::now());
                            issued += 1;
                        }
                    }
                    Ok(k) => {
                        return Err(io::Error::other(format!("echo of {k} B for {size} B")));
                    }
                    Err(e) if sys::would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        turns = turns.wrapping_add(1);
        if turns % 4096 == 0 {
            let now = Instant::now();
            for (i, t) in sent_at.iter_mut().enumerate() {
                if t.is_some_and(|t| now.duration_since(t) > RESEND) {
                    socks[i].send(&msg)?;
                    *t = Some(now);
                    resent += 1;
                }
            }
        }
    }
    if resent > 0 {
        eprintln!("udp ping-pong: {resent} datagram(s) lost on loopback and sent again");
    }
    Ok(w.finish(done))
}

// ---- the servers ---------------------------------------------------------------------------

/// A bound, non-blocking UDP socket.
fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Runs `on_readable` for every readiness event of `sock` until stopped.
fn floor_loop(
    sock: &UdpSocket,
    ready: Ready,
    mut on_readable: impl FnMut(RawFd),
) -> io::Result<()> {
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

/// One `recvfrom` and its `sendto` per readiness event (level-triggered: more datagrams
/// bring the loop back), as asyncio's `_read_ready` does.
fn serve_floor(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let sock = bind(addr)?;
    let mut buf = vec![0u8; SLOT];
    floor_loop(&sock, ready, |fd| {
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
        if n >= 0 {
            // SAFETY: `buf[..n]` and the sender's address of `len` bytes are valid for reads.
            unsafe {
                libc::sendto(
                    fd,
                    buf.as_ptr().cast(),
                    n as usize,
                    libc::MSG_DONTWAIT,
                    std::ptr::from_ref(&name).cast(),
                    len,
                )
            };
        }
    })
}

/// One `recvmmsg` of up to [`BATCH`] datagrams and one `sendmmsg` of their echoes per
/// readiness event.
fn serve_floor_mmsg(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let sock = bind(addr)?;
    let mut buf = vec![0u8; SLOT * BATCH];
    // SAFETY: all-zero is valid for these C structs (null pointers are set before use).
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    floor_loop(&sock, ready, |fd| {
        for i in 0..BATCH {
            iovs[i].iov_base = buf[i * SLOT..].as_mut_ptr().cast();
            iovs[i].iov_len = SLOT;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = std::ptr::from_mut(&mut names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: the headers point at `BATCH` disjoint slots of `buf` and at `names`.
        let n =
            unsafe { libc::recvmmsg(fd, hdrs.as_mut_ptr(), BATCH as u32, 0, std::ptr::null_mut()) };
        if n <= 0 {
            return;
        }
        for i in 0..n as usize {
            // The echo: the received length, to the sender (msg_namelen was set by the kernel).
            iovs[i].iov_len = hdrs[i].msg_len as usize;
        }
        // SAFETY: the same headers, now describing the received datagrams and their senders.
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
    })
}

/// The asyncio docs' UDP echo server.
struct Echo(Option<DatagramTransport>);

impl DatagramProtocol for Echo {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.0 = Some(t.clone());
    }
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        if let Some(t) = &self.0 {
            t.sendto(data, Some(addr)).ok();
        }
    }
}

fn serve_tulip(addr: SocketAddr, ready: Ready) -> io::Result<()> {
    let lp = tulip::EventLoop::new()?;
    let opts = tulip::net::DatagramOptions::new().local_addr(&addr.ip().to_string(), addr.port());
    let (t, _) = lp.run_until_complete(tulip::create_datagram_endpoint(|| Echo(None), opts))?;
    run_endpoint(lp, t, ready)
}

/// Runs a tulip datagram endpoint's loop until the bench stops it, then closes both (the
/// ping-pong and flood servers share it).
pub fn run_endpoint(lp: tulip::EventLoop, t: DatagramTransport, ready: Ready) -> io::Result<()> {
    let local = t
        .sockname()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| io::Error::other("no UDP address"))?;
    let handle = lp.handle();
    ready(
        local,
        Box::new(move || {
            let _ = handle.stop();
        }),
    );
    lp.run_forever();
    t.abort();
    lp.run_until_complete(tulip::sleep(Duration::ZERO));
    lp.close();
    Ok(())
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
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                sock.send_to(&buf[..n], from).await.ok();
            }
        });
        let _ = rx.await;
        io::Result::Ok(())
    });
    drop(rt);
    r
}
