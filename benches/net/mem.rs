//! Memory per idle connection: the growth of a server process's anonymous resident memory
//! (`RssAnon`: heap, stacks, private pages — user space only, not the kernel's socket buffers)
//! when it holds N idle connections, ÷ N.
//!
//! Each server runs as a child process (`--serve`), so the figure is the server's alone. The
//! baseline is taken after one connection did one 64-byte round trip (so one-off allocations,
//! such as a loop's read buffer, are in it); then N connections each do one 64-byte round trip
//! and stay open, idle; after 300 ms the memory is read again.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::load::{read_some, write_all_spin};
use crate::servers::{self, ChildServer, Ready, Server};
use crate::sys;

/// Servers only this workload uses: tokio's README echo, whose 1 KiB buffer lives in the task
/// (the smallest idiomatic tokio echo, so the tightest figure to compare with).
pub static SERVERS: &[Server] = &[Server {
    id: "tokio-1k",
    name: "tokio current-thread, README echo (1 KiB buffer in the task)",
    serve: serve_tokio_readme,
}];

fn serve_tokio_readme(addr: std::net::SocketAddr, ready: Ready) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.block_on(async move {
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
                    let mut buf = [0u8; 1024];
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
    })
}

/// The servers measured: the echo servers and the HTTP and TLS tulip servers when they exist.
const IDS: &[&str] = &[
    "floor",
    "tulip",
    "tulip-buffered",
    "streams",
    "tulip-sock",
    "tokio",
    "tokio-mt",
    "tokio-1k",
    "smol",
];

/// One connection, one 64-byte round trip.
fn open(addr: std::net::SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    write_all_spin(&s, &msg)?;
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !read_some(&s, &mut buf, &mut got, 64)? {
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no echo in 10 s"));
        }
        std::thread::yield_now();
    }
    Ok(s)
}

/// Closes with a reset (linger 0), so that tens of thousands of connections leave no
/// `TIME_WAIT` behind to exhaust the ephemeral ports.
fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
}

fn measure(id: &str, n: usize) -> io::Result<(u64, u64)> {
    let srv = ChildServer::spawn(&[], id)?;
    let pid = srv.child.id();
    let first = open(srv.addr)?;
    std::thread::sleep(Duration::from_millis(100));
    let before = sys::rss_anon(pid)?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(open(srv.addr)?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = sys::rss_anon(pid)?;
    for s in conns {
        reset(s);
    }
    reset(first);
    srv.terminate()?;
    Ok((before, after))
}

pub fn run(n: usize, only: Option<&[String]>) -> io::Result<()> {
    let limit = sys::raise_nofile();
    let n = n.min(limit.saturating_sub(100) as usize);
    println!("memory per idle connection: {n} idle connections, server as a child process");
    println!(
        "| server | RssAnon before | RssAnon with {n} idle | bytes per connection | ÷ tokio (1 KiB buffer) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for id in IDS {
        if only.is_some_and(|o| !o.iter().any(|x| x == id)) {
            continue;
        }
        let (before, after) = measure(id, n)?;
        rows.push((
            *id,
            before,
            after,
            after.saturating_sub(before) as f64 / n as f64,
        ));
    }
    let tokio = rows.iter().find(|r| r.0 == "tokio-1k").map(|r| r.3);
    for (id, before, after, per) in &rows {
        let name = servers::find(id).map_or(*id, |s| s.name);
        let ratio = match tokio {
            Some(t) if *id != "tokio-1k" && t > 0.0 => format!("{:.2}", per / t),
            _ => "—".into(),
        };
        println!(
            "| {name} | {:.1} MiB | {:.1} MiB | {per:.0} | {ratio} |",
            *before as f64 / 1048576.0,
            *after as f64 / 1048576.0
        );
    }
    println!(
        "\nbytes per connection = (RssAnon with the idle connections − RssAnon before) ÷ {n}; \
         per-connection buffers of the task-based servers and of the BufferedProtocol are 16 KiB \
         (`echo::CONN_BUF`), the README tokio echo's 1 KiB; tulip's Protocol reads into one buffer per loop.\n"
    );
    Ok(())
}
