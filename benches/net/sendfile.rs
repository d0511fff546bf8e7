//! sendfile: serve a file (256 MiB, in the page cache) to every connection, 1 and 8
//! connections at once, and compare what the server pays per MB: tulip's zero-copy
//! `tulip::sendfile`, tulip's copy fallback (`force_copy`: `pread` + transport writes), and
//! tokio as its users serve a file (`tokio::io::copy` from a `tokio::fs::File`).
//!
//! The server (every thread it starts, tokio's blocking pool included) runs pinned to the
//! server CPU; the client, on the load CPU, busy-polls its sockets with epoll and reads into a
//! 1 MiB buffer. Server CPU per MB is the CPU time of every thread but the client's over the
//! transfer, divided by the megabytes received. `--quick` sends 4 MiB and checks the bytes
//! instead of timing anything.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::sys::{self, median as med};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sendfile,
    Copy,
    Tokio,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sendfile => "tulip `sendfile` (zero-copy)",
            Kind::Copy => "tulip `sendfile(…).force_copy(true)`",
            Kind::Tokio => "tokio `io::copy` from `fs::File`",
        }
    }
}

const KINDS: [Kind; 3] = [Kind::Sendfile, Kind::Copy, Kind::Tokio];

/// The file, removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

fn make_file(size: usize) -> io::Result<TempFile> {
    let path = std::env::temp_dir().join(format!("tulip-bench-sendfile-{}", std::process::id()));
    let t = TempFile(path);
    let mut f = File::create(&t.0)?;
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n;
    }
    f.sync_data()?;
    // Read it once: every server then serves it from the page cache.
    let mut r = File::open(&t.0)?;
    let mut buf = vec![0u8; 1 << 20];
    while r.read(&mut buf)? > 0 {}
    Ok(t)
}

/// One measurement: wall time of the transfer and server CPU over it.
struct Sample {
    secs: f64,
    cpu: Duration,
}

/// Runs the section: a table of MB/s and server CPU per MB.
pub fn run(reps: usize, quick: bool) -> io::Result<()> {
    let size: usize = if quick { 4 << 20 } else { 256 << 20 };
    let file = make_file(size)?;
    println!(
        "sendfile: a {} MiB file from the page cache to every connection; server on CPU {}, \
         busy-polling client on CPU {}",
        size >> 20,
        sys::SERVER_CPU,
        sys::LOAD_CPU
    );
    println!(
        "| server | conns | MB/s | server CPU per MB | CPU ÷ tokio |\n|---|---:|---:|---:|---:|"
    );
    for conns in [1usize, 8] {
        let mut samples: Vec<Vec<Sample>> = KINDS.iter().map(|_| Vec::new()).collect();
        for rep in 0..reps {
            // Rotate the order between repetitions.
            for i in 0..KINDS.len() {
                let k = (i + rep) % KINDS.len();
                samples[k].push(serve_once(KINDS[k], &file.0, conns, size, quick)?);
            }
        }
        let mb = (size * conns) as f64 / 1e6;
        let cpu_per_mb = |s: &[Sample]| {
            let mut v: Vec<f64> = s.iter().map(|x| x.cpu.as_secs_f64() * 1e6 / mb).collect();
            med(&mut v)
        };
        let tokio_cpu = cpu_per_mb(&samples[2]);
        for (k, s) in KINDS.iter().zip(&samples) {
            let mut rate: Vec<f64> = s.iter().map(|x| mb / x.secs).collect();
            let cpu = cpu_per_mb(s);
            println!(
                "| {} | {conns} | {:.0} | {cpu:.0} µs | {:.2} |",
                k.name(),
                med(&mut rate),
                cpu / tokio_cpu
            );
        }
    }
    if quick {
        println!("(quick: a smoke run that checks the bytes; the figures mean nothing)");
    }
    println!();
    Ok(())
}

fn serve_once(
    kind: Kind,
    path: &Path,
    conns: usize,
    size: usize,
    check: bool,
) -> io::Result<Sample> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let path = path.to_owned();
    let server = thread::spawn(move || {
        sys::pin_warn("sendfile server", sys::SERVER_CPU);
        match kind {
            Kind::Sendfile => serve_tulip(listener, &path, conns, false),
            Kind::Copy => serve_tulip(listener, &path, conns, true),
            Kind::Tokio => serve_tokio(listener, &path, conns),
        }
    });
    let cpu0 = sys::others_cpu();
    let t0 = Instant::now();
    let got = receive(addr, conns, check.then_some(size))?;
    let secs = t0.elapsed().as_secs_f64();
    server
        .join()
        .map_err(|_| io::Error::other("the sendfile server panicked"))??;
    let cpu = sys::others_cpu().saturating_sub(cpu0);
    if got != (size * conns) as u64 {
        return Err(io::Error::other(format!(
            "{kind:?}: received {got} bytes, expected {}",
            size * conns
        )));
    }
    Ok(Sample { secs, cpu })
}

/// The client: `conns` connections read to EOF, busy-polled with epoll. With `check`, the
/// bytes of each are compared with the file's pattern. Returns the bytes received.
fn receive(addr: SocketAddr, conns: usize, check: Option<usize>) -> io::Result<u64> {
    let ep = sys::Epoll::new()?;
    let mut socks: Vec<Option<(TcpStream, u64)>> = Vec::new();
    for i in 0..conns {
        let s = TcpStream::connect(addr)?;
        s.set_nonblocking(true)?;
        ep.add(s.as_raw_fd(), i as u64)?;
        socks.push(Some((s, 0)));
    }
    let pattern: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut buf = vec![0u8; 1 << 20];
    let mut events = sys::no_events::<16>();
    let mut open = conns;
    let mut total = 0u64;
    while open > 0 {
        let n = ep.wait(&mut events, 0)?;
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let Some((s, pos)) = socks[i].as_mut() else {
                continue;
            };
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        socks[i] = None;
                        open -= 1;
                        break;
                    }
                    Ok(k) => {
                        if check.is_some() {
                            for (j, &b) in buf[..k].iter().enumerate() {
                                let at = (*pos as usize + j) % pattern.len();
                                if b != pattern[at] {
                                    return Err(io::Error::other(format!(
                                        "wrong byte at {}",
                                        *pos as usize + j
                                    )));
                                }
                            }
                        }
                        *pos += k as u64;
                        total += k as u64;
                    }
                    Err(e) if sys::would_block(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(total)
}

/// Says when the connection is gone (its last bytes were sent).
struct Sink(tulip::LoopFuture<()>);

impl tulip::Protocol for Sink {
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        if !self.0.done() {
            self.0.set_result(());
        }
    }
}

fn serve_tulip(listener: TcpListener, path: &Path, conns: usize, copy: bool) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    tulip::run(async move {
        let lp = tulip::get_running_loop();
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (s, _) = tulip::sock_accept(&listener).await?;
            let gone = lp.create_future::<()>();
            let g2 = gone.clone();
            let (t, _) =
                tulip::connect_accepted_socket(move || Sink(g2), s, Default::default()).await?;
            let path = path.to_owned();
            tasks.push(tulip::spawn(async move {
                let file = File::open(&path)?;
                tulip::sendfile(&t, &file, 0, None, true)
                    .force_copy(copy)
                    .await?;
                t.close();
                gone.await
            }));
        }
        for t in tasks {
            t.await?;
        }
        Ok(())
    })
}

fn serve_tokio(listener: TcpListener, path: &Path, conns: usize) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        // tokio::fs reads on the blocking pool: its threads run on the server's CPU too.
        .on_thread_start(|| sys::pin_warn("tokio blocking thread", sys::SERVER_CPU))
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::from_std(listener)?;
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (mut s, _) = l.accept().await?;
            let path = path.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut f = tokio::fs::File::open(&path).await?;
                tokio::io::copy(&mut f, &mut s).await?;
                s.shutdown().await
            }));
        }
        for t in tasks {
            t.await.map_err(io::Error::other)??;
        }
        Ok(())
    })
}
