//! Memory per idle connection: the growth of a server process's anonymous resident memory
//! (`RssAnon`: heap, stacks, private pages — user space only, not the kernel's socket buffers)
//! when it holds N idle connections, ÷ N.
//!
//! Each server runs as a child process (`--serve`), so the figure is the server's alone. The
//! baseline is taken after one connection did one 64-byte round trip (so one-off allocations,
//! such as a loop's read buffer, are in it); then N connections each do one 64-byte round trip
//! and stay open, idle; after 300 ms the memory is read again.
//!
//! A second table follows line echo servers (tulip streams' `readline`, as
//! `examples/stream_echo_server.rs`, and tokio's `BufReader::read_until`) through the states
//! of a stream connection: idle after a 64-byte line, holding 1 and then 2 bytes of an
//! unfinished line, and idle again after that line grew to 60 KiB and was echoed — what a
//! connection costs while a slow client trickles a line in, and whether a buffer grown by a
//! large message is given back.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use crate::load::{read_some, write_all_spin};
use crate::servers::{self, ChildServer, Ready, Server};
use crate::sys;

/// Servers only this workload uses: tokio's README echo, whose 1 KiB buffer lives in the task
/// (the smallest idiomatic tokio echo, so the tightest figure to compare with).
pub static SERVERS: &[Server] = &[
    Server {
        id: "tokio-1k",
        name: "tokio current-thread, README echo (1 KiB buffer in the task)",
        serve: serve_tokio_readme,
    },
    Server {
        id: "streams-lines",
        name: "tulip streams line echo (`readline` + `write` + `drain`)",
        serve: serve_streams_lines,
    },
    Server {
        id: "tokio-lines",
        name: "tokio current-thread line echo (`BufReader::read_until` + `write_all`)",
        serve: serve_tokio_lines,
    },
];

/// `examples/stream_echo_server.rs` without its over-the-limit handling.
fn serve_streams_lines(addr: std::net::SocketAddr, ready: Ready) -> io::Result<()> {
    async fn echo(mut reader: tulip::StreamReader, writer: tulip::StreamWriter) {
        while let Ok(line) = reader.readline().await {
            if line.is_empty() {
                break;
            }
            writer.write(&line);
            if writer.drain().await.is_err() {
                return;
            }
        }
        writer.close();
    }
    let lp = tulip::EventLoop::new()?;
    let server = lp.run_until_complete(tulip::start_server(
        echo,
        &addr.ip().to_string(),
        addr.port(),
        tulip::net::ServerOptions::new().backlog(1024),
    ))?;
    crate::echo::run_tulip_server(lp, server, ready)
}

/// The tokio line echo: `BufReader` (8 KiB) over the stream, one line `Vec` per connection.
fn serve_tokio_lines(addr: std::net::SocketAddr, ready: Ready) -> io::Result<()> {
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
            while let Ok((s, _)) = listener.accept().await {
                s.set_nodelay(true).ok();
                tokio::spawn(async move {
                    let (r, mut w) = s.into_split();
                    let mut r = tokio::io::BufReader::new(r);
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        match r.read_until(b'\n', &mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if w.write_all(&line).await.is_err() {
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

/// One connection, one 64-byte round trip (a 64-byte line: the last byte is `\n`).
fn open(addr: std::net::SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let mut msg = [7u8; 64];
    msg[63] = b'\n';
    round_trip(&s, &msg)?;
    Ok(s)
}

/// Sends `msg` and reads its echo.
fn round_trip(s: &TcpStream, msg: &[u8]) -> io::Result<()> {
    let mut buf = vec![0u8; msg.len()];
    write_all_spin(s, msg)?;
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !read_some(s, &mut buf, &mut got, msg.len())? {
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no echo in 10 s"));
        }
        std::thread::yield_now();
    }
    Ok(())
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

/// The line servers of the second table, and how many connections it uses at most (each
/// echoes a 60 KiB line).
const LINE_IDS: &[&str] = &["streams-lines", "tokio-lines"];
const LINE_CONNS: usize = 2000;
const BIG_LINE: usize = 60 * 1024;

/// RssAnon before, then with `n` connections idle, holding 1 and 2 bytes of a line, and idle
/// after a 60 KiB line.
fn measure_lines(id: &str, n: usize) -> io::Result<[u64; 5]> {
    let settle = || std::thread::sleep(Duration::from_millis(300));
    let srv = ChildServer::spawn(&[], id)?;
    let pid = srv.child.id();
    let first = open(srv.addr)?;
    std::thread::sleep(Duration::from_millis(100));
    let mut out = [sys::rss_anon(pid)?; 5];
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(open(srv.addr)?);
    }
    settle();
    out[1] = sys::rss_anon(pid)?;
    for (i, b) in [b"x", b"y"].into_iter().enumerate() {
        for s in &conns {
            write_all_spin(s, b)?;
        }
        settle();
        out[2 + i] = sys::rss_anon(pid)?;
    }
    // The line's 2 bytes are there: the rest and the `\n`, then the echo of all of it.
    let mut rest = vec![b'z'; BIG_LINE - 2];
    rest[BIG_LINE - 3] = b'\n';
    let mut echo = vec![0u8; BIG_LINE];
    for s in &conns {
        write_all_spin(s, &rest)?;
        let mut got = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !read_some(s, &mut echo, &mut got, BIG_LINE)? {
            if std::time::Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no echo in 10 s"));
            }
            std::thread::yield_now();
        }
    }
    settle();
    out[4] = sys::rss_anon(pid)?;
    for s in conns {
        reset(s);
    }
    reset(first);
    srv.terminate()?;
    Ok(out)
}

fn run_lines(n: usize, only: Option<&[String]>) -> io::Result<()> {
    let n = n.min(LINE_CONNS);
    println!("memory per stream connection by state: {n} connections of a line echo server");
    println!("| server | idle | 1 byte of a line | 2 bytes of a line | idle after a 60 KiB line |");
    println!("|---|---:|---:|---:|---:|");
    for id in LINE_IDS {
        if only.is_some_and(|o| !o.iter().any(|x| x == id)) {
            continue;
        }
        let m = measure_lines(id, n)?;
        let per = |i: usize| {
            let b = m[i].saturating_sub(m[0]) as f64 / n as f64;
            format!("{:.1} KiB", b / 1024.0)
        };
        let name = servers::find(id).map_or(*id, |s| s.name);
        println!(
            "| {name} | {} | {} | {} | {} |",
            per(1),
            per(2),
            per(3),
            per(4)
        );
    }
    println!(
        "\nper connection = (RssAnon in that state − RssAnon before) ÷ {n}; asyncio's \
         `start_server` line echo, measured once by hand for issue 10: 5.6 / 5.6 / 5.6 / 66 KiB.\n"
    );
    Ok(())
}

pub fn run(n: usize, only: Option<&[String]>) -> io::Result<()> {
    run_idle(n, only)?;
    run_lines(n, only)
}

fn run_idle(n: usize, only: Option<&[String]>) -> io::Result<()> {
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
