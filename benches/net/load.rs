//! The load generator: plain std sockets, non-blocking, one epoll, in the calling thread
//! (pinned to the load CPU by the caller). By default it busy-polls (`epoll_wait(…, 0)`), so
//! that it never sleeps: waking a sleeping vCPU costs tens of µs here and would hide every
//! server difference.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::sys::{self, Epoll};

/// When a load run ends.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// After a warm-up, a measured window of this length.
    Time { warmup: Duration, window: Duration },
    /// After this many operations in all (no warm-up; the whole run is measured).
    Ops(u64),
}

/// What one load run measured over its window.
#[derive(Debug)]
pub struct LoadResult {
    /// Operations (round trips, responses, echoed chunks) completed in the window.
    pub ops: u64,
    pub elapsed: Duration,
    /// CPU of all threads but the load generator's over the window.
    pub server_cpu: Duration,
    /// How long those threads waited for a CPU over the window.
    pub server_wait: Duration,
    /// Operation latencies of the window, nanoseconds (empty where it means nothing).
    pub latencies: Vec<u32>,
}

/// The bookkeeping of a measured window, shared by every load.
pub struct Window {
    limit: Limit,
    start: Instant,
    measuring: bool,
    t0: Instant,
    cpu0: Duration,
    wait0: Duration,
    done0: u64,
    last_progress: Instant,
    latencies: Vec<u32>,
}

impl Window {
    pub fn new(limit: Limit) -> Window {
        let now = Instant::now();
        let measuring = matches!(limit, Limit::Ops(_));
        Window {
            limit,
            start: now,
            measuring,
            t0: now,
            cpu0: sys::others_cpu(),
            wait0: sys::others_runq_wait(),
            done0: 0,
            last_progress: now,
            latencies: Vec::with_capacity(if measuring { 0 } else { 1 << 20 }),
        }
    }

    /// The most operations to start (for `Limit::Ops`).
    pub fn max_ops(&self) -> u64 {
        match self.limit {
            Limit::Ops(n) => n,
            Limit::Time { .. } => u64::MAX,
        }
    }

    /// Called once per turn of the load loop with the operations done so far: starts the
    /// measured window after the warm-up; `Ok(true)` once the run is over; an error when
    /// nothing progressed for 10 s.
    pub fn tick(&mut self, done: u64) -> io::Result<bool> {
        let now = Instant::now();
        match self.limit {
            Limit::Time { warmup, window } => {
                if !self.measuring && now >= self.start + warmup {
                    self.measuring = true;
                    self.wait0 = sys::others_runq_wait();
                    self.cpu0 = sys::others_cpu();
                    self.t0 = Instant::now();
                    self.done0 = done;
                } else if self.measuring && now >= self.t0 + window {
                    return Ok(true);
                }
            }
            Limit::Ops(n) => {
                if done >= n {
                    return Ok(true);
                }
            }
        }
        if now.duration_since(self.last_progress) > Duration::from_secs(10) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no progress for 10 s",
            ));
        }
        Ok(false)
    }

    /// One operation completed; `started` is when it was issued, if its latency counts.
    pub fn progress(&mut self, started: Option<Instant>) {
        let t = Instant::now();
        self.last_progress = t;
        if let (true, Limit::Time { .. }, Some(s)) = (self.measuring, self.limit, started) {
            let ns = t.duration_since(s).as_nanos();
            self.latencies.push(ns.min(u32::MAX as u128) as u32);
        }
    }

    pub fn finish(self, done: u64) -> LoadResult {
        LoadResult {
            ops: done - self.done0,
            elapsed: self.t0.elapsed(),
            server_cpu: sys::others_cpu().saturating_sub(self.cpu0),
            server_wait: sys::others_runq_wait().saturating_sub(self.wait0),
            latencies: self.latencies,
        }
    }
}

/// Opens `conns` non-blocking, no-delay connections to `addr`, registered with `ep` (tokens
/// are their indices).
pub fn connect_all(ep: &Epoll, addr: SocketAddr, conns: usize) -> io::Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        ep.add(s.as_raw_fd(), i as u64)?;
        streams.push(s);
    }
    Ok(streams)
}

/// Reads into `buf[*got..want]` until it is full or the socket has nothing more; `Ok(true)`
/// once `want` bytes are in. EOF is an error.
pub fn read_some(
    mut s: &TcpStream,
    buf: &mut [u8],
    got: &mut usize,
    want: usize,
) -> io::Result<bool> {
    while *got < want {
        match s.read(&mut buf[*got..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed a connection",
                ));
            }
            Ok(k) => *got += k,
            Err(e) if sys::would_block(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `write_all` on a non-blocking socket, spinning on `WouldBlock`.
pub fn write_all_spin(mut s: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => data = &data[k..],
            Err(e) if sys::would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ping-pong: each of `conns` connections sends `size` bytes, reads the `size`-byte echo, and
/// sends again. `busy_poll` false makes the load wait in `epoll_wait` (1 ms timeout) instead
/// of spinning — for the loop-per-core workload, where the load shares the servers' CPUs.
pub fn ping_pong(
    addr: SocketAddr,
    size: usize,
    conns: usize,
    limit: Limit,
    busy_poll: bool,
) -> io::Result<LoadResult> {
    let ep = Epoll::new()?;
    let streams = connect_all(&ep, addr, conns)?;
    let msg = vec![0xA5u8; size];
    let mut rbuf = vec![0u8; size];
    let mut got = vec![0usize; conns];
    let mut events = sys::no_events::<64>();
    let mut w = Window::new(limit);
    let max = w.max_ops();
    let (mut issued, mut done) = (0u64, 0u64);
    let mut sent_at = vec![Instant::now(); conns];
    for (i, s) in streams.iter().enumerate() {
        if issued < max {
            write_all_spin(s, &msg)?;
            sent_at[i] = Instant::now();
            issued += 1;
        }
    }
    let timeout = if busy_poll { 0 } else { 1 };
    while !w.tick(done)? {
        let n = ep.wait(&mut events, timeout)?;
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let s = &streams[i];
            if read_some(s, &mut rbuf, &mut got[i], size)? {
                got[i] = 0;
                done += 1;
                w.progress(Some(sent_at[i]));
                if issued < max {
                    write_all_spin(s, &msg)?;
                    sent_at[i] = Instant::now();
                    issued += 1;
                }
            }
        }
    }
    Ok(w.finish(done))
}

/// The bulk chunk, and how much may be in flight.
pub const CHUNK: usize = 16 * 1024;
const IN_FLIGHT: usize = 256 * 1024;

/// Bulk: one connection; writes `CHUNK`s continuously with at most 256 KiB unechoed, reads the
/// echo. An operation is one echoed chunk.
pub fn bulk(addr: SocketAddr, limit: Limit) -> io::Result<LoadResult> {
    let ep = Epoll::new()?;
    let streams = connect_all(&ep, addr, 1)?;
    let mut s = &streams[0];
    let fd = s.as_raw_fd();
    let chunk = vec![0x5Au8; CHUNK];
    let mut rbuf = vec![0u8; IN_FLIGHT];
    let mut events = sys::no_events::<4>();
    let mut w = Window::new(limit);
    let max_bytes = w.max_ops().saturating_mul(CHUNK as u64);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut chunk_off = 0usize;
    let mut want_write = false;
    while !w.tick(received / CHUNK as u64)? {
        // Write while the window allows.
        while sent < max_bytes && sent - received < IN_FLIGHT as u64 {
            match s.write(&chunk[chunk_off..]) {
                Ok(k) => {
                    sent += k as u64;
                    chunk_off = (chunk_off + k) % CHUNK;
                }
                Err(e) if sys::would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        let blocked = sent < max_bytes && sent - received < IN_FLIGHT as u64;
        if blocked != want_write {
            ep.modify(fd, 0, true, blocked)?;
            want_write = blocked;
        }
        if ep.wait(&mut events, 0)? == 0 {
            continue;
        }
        loop {
            match s.read(&mut rbuf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                }
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
}
