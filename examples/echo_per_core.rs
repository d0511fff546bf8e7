//! The `tcp_echo_server` protocol on one loop per CPU: each loop runs on its own thread,
//! pinned to its own CPU, with its own `SO_REUSEPORT` listening socket on the same address;
//! the kernel spreads new connections over the sockets (asyncio's and uvloop's scaling recipe,
//! with threads instead of processes).
//!
//! ```sh
//! cargo run --release --example echo_per_core -- 127.0.0.1:8888 2
//! ```
//! `ADDR` defaults to `127.0.0.1:8888` (port 0 picks a free port, the same for every loop),
//! `THREADS` to one per CPU. Once every loop listens, the server prints `listening on
//! IP:PORT` to stdout (and how many loops to stderr). A malformed argument exits with status
//! 2, a failure to listen with status 1.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::mpsc;

use socket2::{Domain, Socket, Type};
use tulip::{PerCore, Protocol, Transport, net::ServerOptions};

/// Echoes every byte back, pausing reading while the client does not read (as
/// `tcp_echo_server`).
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
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

/// Binds (without listening) a `SO_REUSEPORT` socket to `addr`: it resolves port 0 to one
/// free port that every loop can then bind, and keeps that port reserved until they do. A
/// socket that does not listen gets no connections.
fn reserve(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("echo_per_core: {msg}\nusage: echo_per_core [ADDR] [THREADS]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8888".into());
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return usage(&format!("bad address {addr:?}"));
    };
    let threads = match args.next().map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return usage("THREADS must be a number"),
    };
    if args.next().is_some() {
        return usage("too many arguments");
    }
    match serve(addr, threads) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_per_core: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: SocketAddr, threads: usize) -> io::Result<()> {
    let reserved = reserve(addr)?;
    let addr = reserved.local_addr()?;
    let (tx, rx) = mpsc::channel::<io::Result<()>>();
    let group = PerCore::new(threads).spawn(move |ctx| {
        let tx = tx.clone();
        async move {
            let opts = ServerOptions::new().reuse_port(true).backlog(1024);
            let host = addr.ip().to_string();
            let server =
                match tulip::create_server(|| Echo { transport: None }, &host, addr.port(), opts)
                    .await
                {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
            let _ = tx.send(Ok(()));
            if let Err(e) = server.serve_forever().await {
                eprintln!("echo_per_core: loop {}: {e}", ctx.index());
            }
        }
    })?;
    for _ in 0..group.len() {
        rx.recv()
            .map_err(|_| io::Error::other("a loop ended before listening"))??;
    }
    drop(reserved);
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()?;
    eprintln!("echo_per_core: {} loops", group.len());
    group.join()?;
    Ok(())
}
