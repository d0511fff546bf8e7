//! Loop per core: the tulip `Protocol` echo on 1 and on 2 loops (`tulip::PerCore`, each loop on
//! its own thread pinned to its own CPU with its own `SO_REUSEPORT` socket), against tokio's
//! multi-thread runtime with 2 workers, under 50 connections of 1 KiB ping-pong.
//!
//! This machine has two CPUs, so the load generator shares them with the servers: here it is
//! unpinned and waits in `epoll_wait` instead of busy-polling (a busy-polling load would take a
//! whole CPU from the second loop). The servers' threads are unpinned too (tulip pins its own
//! loops). What this shows is whether a second loop adds throughput when a core is shared,
//! not the scaling on a machine with cores to spare.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;

use tulip::socket2::{Domain, Socket, Type};
use tulip::{PerCore, net::ServerOptions};

use crate::echo::EchoProto;
use crate::load::{self, Limit};
use crate::servers::{Ready, Running, Server};
use crate::suite::{self, Sample, med, paired};
use crate::sys;

pub static SERVERS: &[Server] = &[
    Server {
        id: "per-core-1",
        name: "tulip `Protocol`, 1 loop (`PerCore`)",
        serve: |addr, ready| serve_per_core(addr, ready, 1),
    },
    Server {
        id: "per-core-2",
        name: "tulip `Protocol`, 2 loops (`PerCore`, `SO_REUSEPORT`)",
        serve: |addr, ready| serve_per_core(addr, ready, 2),
    },
];

/// A bound, non-listening `SO_REUSEPORT` socket: resolves port 0 to a port every loop binds.
fn reserve(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn serve_per_core(addr: SocketAddr, ready: Ready, loops: usize) -> io::Result<()> {
    let reserved = reserve(addr)?;
    let addr = reserved.local_addr()?;
    let (tx, rx) = mpsc::channel::<io::Result<()>>();
    let group = PerCore::new(loops).spawn(move |ctx| {
        let tx = tx.clone();
        async move {
            let opts = ServerOptions::new().reuse_port(true).backlog(1024);
            let host = addr.ip().to_string();
            let made = || EchoProto { transport: None };
            let server = match tulip::create_server(made, &host, addr.port(), opts).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(()));
            ctx.stopped().await;
            server.close();
            server.abort_clients();
            server.wait_closed().await;
        }
    })?;
    for _ in 0..loops {
        rx.recv()
            .map_err(|_| io::Error::other("a loop ended before listening"))??;
    }
    drop(reserved);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ready(
        addr,
        Box::new(move || {
            let _ = stop_tx.send(());
        }),
    );
    let _ = stop_rx.recv();
    group.stop();
    group.join().map(drop)
}

pub fn run(reps: usize, limit: Limit, _quick: bool) -> io::Result<()> {
    let servers: Vec<&'static Server> = suite::servers(&["per-core-1", "per-core-2", "tokio-mt"]);
    sys::unpin()?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
    for rep in 0..reps {
        for k in 0..servers.len() {
            let i = (k + rep) % servers.len();
            let srv = Running::start(servers[i], None)?;
            let r = load::ping_pong(srv.addr, 1024, 50, limit, false);
            srv.stop()?;
            samples[i].push(suite::sample(r?));
        }
    }
    sys::pin_warn("load generator", sys::LOAD_CPU);
    println!(
        "loop per core: 1 KiB ping-pong, 50 conns; servers and a non-busy-polling load generator \
         share both CPUs (see benches/README.md)"
    );
    println!(
        "| server | req/s | p99 µs | server CPU ns/req | server busy | req/s ÷ 1 loop | req/s ÷ tokio-mt |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let one = Some(samples[0].as_slice());
    let tokio = Some(samples[2].as_slice());
    for (i, server) in servers.iter().enumerate() {
        let s = &samples[i];
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} % | {} | {} |",
            server.name,
            med(s, |s| s.rate),
            med(s, |s| s.p99_us),
            med(s, |s| s.cpu_ns),
            med(s, |s| s.busy_pct),
            paired(s, one, |s| s.rate),
            paired(s, tokio, |s| s.rate),
        );
    }
    println!();
    Ok(())
}
