//! tulip's network benchmark suite: every server against every workload in one run, against
//! tokio, smol and the floor (a minimal level-triggered epoll loop written with `libc`).
//!
//! ```text
//! cargo bench --bench net                         # the full suite (about 4 minutes)
//! cargo bench --bench net -- --quick              # a smoke run (about 25 s); asserts nothing
//! cargo bench --bench net -- pp1k-c1 http --only=floor,tulip,tokio --reps=3 --secs=0.5
//! cargo bench --bench net -- udp64-c1 udp1k-c50           # UDP ping-pong (benches/net/udp.rs)
//! cargo bench --bench net -- pipes        # 1 GiB through examples/pipe_cat vs cat (benches/net/pipes.rs)
//! cargo bench --bench net -- udp-flood                   # UDP receive flood (udp_flood.rs)
//! cargo bench --bench net -- --serve tulip 127.0.0.1:0   # one server; prints `listening on …`
//! cargo bench --bench net -- --client 127.0.0.1:PORT 12000 --conns=1 --size=1024
//! cargo bench --bench net -- --client 127.0.0.1:PORT 6000 --tls --bulk  # TLS; 16 KiB chunks
//! ```
//!
//! How to run it and how to read it: `benches/README.md`. In short, per workload a fresh
//! server per point runs in a thread pinned to CPU 0 while the load generator (the main
//! thread) busy-polls on CPU 1; servers are interleaved with the order rotating between
//! repetitions; the table shows medians, and ratios are medians of per-repetition paired
//! ratios. Server CPU per operation (all threads but the load generator's) is the figure
//! that decides on these machines; `server busy` near 100 % shows the load saturates the
//! server. Sections after the table: loop per core, memory per idle connection, and user-space
//! instructions per round trip (callgrind).

// The modules' `pub` items are their interface to each other inside this one binary.
#![allow(unreachable_pub)]

mod echo;
mod http;
mod hyper_http;
mod ir;
mod load;
mod mem;
mod per_core;
mod pipes;
mod process;
mod sendfile;
mod servers;
mod suite;
mod sys;
mod tls;
mod udp;
mod udp_flood;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use load::Limit;

/// The command line.
struct Args {
    /// `--bench`, which `cargo bench` passes; `cargo test` does not.
    bench: bool,
    quick: bool,
    reps: Option<usize>,
    secs: Option<f64>,
    only: Option<Vec<String>>,
    /// Workload and section ids to run (all when empty).
    select: Vec<String>,
    conns: usize,
    size: usize,
    idle: Option<usize>,
    /// `--client` over TLS (the `tls-*` servers), and bulk (16 KiB chunks) instead of ping-pong.
    tls: bool,
    bulk: bool,
    serve: Option<(&'static servers::Server, SocketAddr)>,
    client: Option<(SocketAddr, u64)>,
}

fn usage(msg: &str) -> ! {
    eprintln!("net bench: {msg}");
    eprintln!(
        "usage: net [--quick] [--reps=N] [--secs=F] [--only=ID,…] [--idle=N] [WORKLOAD|SECTION]…\n       \
         net --serve ID ADDR\n       net --client ADDR N [--tls] [--conns=C] [--size=BYTES | --bulk]\n\
         workloads: pp64-c1 pp64-c50 pp1k-c1 pp1k-c50 pp16k-c1 pp16k-c50 bulk http http-wrk \
         hyper hyper-wrk (--features hyper) \
         tls-c1 tls-c50 tls-bulk udp64-c1 udp64-c50 udp1k-c1 udp1k-c50; sections: per-core mem ir udp-ir udp-flood process pipes sendfile\nserver ids: {}",
        servers::all().map(|s| s.id).collect::<Vec<_>>().join(" ")
    );
    std::process::exit(2)
}

fn parse_addr(s: Option<String>) -> SocketAddr {
    s.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage("expected an address IP:PORT"))
}

fn parse<T: std::str::FromStr>(v: &str, what: &str) -> T {
    v.parse().unwrap_or_else(|_| usage(&format!("bad {what}")))
}

fn parse_args() -> Args {
    let mut args = Args {
        bench: false,
        quick: false,
        reps: None,
        secs: None,
        only: None,
        select: Vec::new(),
        conns: 1,
        size: 1024,
        idle: None,
        tls: false,
        bulk: false,
        serve: None,
        client: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            usage("the network benchmark suite (see benches/README.md)");
        } else if a == "--bench" {
            args.bench = true;
        } else if a == "--quick" {
            args.quick = true;
        } else if a == "--tls" {
            args.tls = true;
        } else if a == "--bulk" {
            args.bulk = true;
        } else if let Some(v) = a.strip_prefix("--reps=") {
            args.reps = Some(parse(v, "--reps"));
        } else if let Some(v) = a.strip_prefix("--secs=") {
            args.secs = Some(parse(v, "--secs"));
        } else if let Some(v) = a.strip_prefix("--conns=") {
            args.conns = parse::<usize>(v, "--conns").max(1);
        } else if let Some(v) = a.strip_prefix("--size=") {
            args.size = parse::<usize>(v, "--size").max(1);
        } else if let Some(v) = a.strip_prefix("--idle=") {
            args.idle = Some(parse(v, "--idle"));
        } else if let Some(v) = a.strip_prefix("--only=") {
            for id in v.split(',') {
                if servers::find(id).is_none() {
                    usage(&format!("unknown server id {id}"));
                }
            }
            args.only = Some(v.split(',').map(String::from).collect());
        } else if a == "--serve" {
            let id = it.next().unwrap_or_default();
            let server = servers::find(&id).unwrap_or_else(|| usage(&format!("unknown id {id}")));
            args.serve = Some((server, parse_addr(it.next())));
        } else if a == "--client" {
            let addr = parse_addr(it.next());
            let n = it
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage("expected a round-trip count"));
            args.client = Some((addr, n));
        } else if !a.starts_with('-') {
            args.select.push(a);
        }
    }
    args
}

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some(pipes::PIPE_CAT_ARG) {
        return pipes::pipe_cat_main();
    }
    let args = parse_args();
    if let Some((server, addr)) = args.serve {
        sys::raise_nofile();
        return servers::serve_forever(server, addr);
    }
    if let Some((addr, n)) = args.client {
        sys::pin_warn("load generator", sys::LOAD_CPU);
        let limit = Limit::Ops(n);
        let r = match (args.tls, args.bulk) {
            (false, false) => load::ping_pong(addr, args.size, args.conns, limit, true)?,
            (true, false) => tls::ping_pong(addr, args.size, args.conns, limit)?,
            (false, true) => load::bulk(addr, limit)?,
            (true, true) => tls::bulk(addr, limit)?,
        };
        let secs = r.elapsed.as_secs_f64();
        let tls = if args.tls { " (TLS)" } else { "" };
        if args.bulk {
            println!(
                "{} echoed chunks of {} B over 1 connection{tls} in {secs:.3} s ({:.1} MB/s)",
                r.ops,
                load::CHUNK,
                (r.ops * load::CHUNK as u64) as f64 / secs / 1e6
            );
        } else {
            println!(
                "{} round trips of {} B over {} connection(s){tls} in {secs:.3} s ({:.0} req/s)",
                r.ops,
                args.size,
                args.conns,
                r.ops as f64 / secs
            );
        }
        return Ok(());
    }

    // Run by `cargo test` (no `--bench`, no settings): a smoke run, as `--quick`.
    let quick = args.quick || (!args.bench && args.reps.is_none() && args.secs.is_none());
    let reps = args.reps.unwrap_or(if quick { 1 } else { 5 }).max(1);
    let window = Duration::from_secs_f64(args.secs.unwrap_or(if quick { 0.15 } else { 0.5 }));
    let warmup = Duration::from_millis(if quick { 30 } else { 100 });
    let limit = Limit::Time { warmup, window };
    let selected = |id: &str| args.select.is_empty() || args.select.iter().any(|s| s == id);
    let only = args.only.as_deref();
    let started = Instant::now();

    println!("{}", sys::machine());
    sys::pin_warn("load generator", sys::LOAD_CPU);
    println!(
        "mode: {}, {reps} interleaved repetition(s) × {:.2} s window (after {} ms warm-up) per \
         server and workload; server thread on CPU {}, busy-polling load generator on CPU {}\n",
        if quick { "quick" } else { "full" },
        window.as_secs_f64(),
        warmup.as_millis(),
        sys::SERVER_CPU,
        sys::LOAD_CPU,
    );

    let mut workloads = suite::echo_workloads();
    workloads.extend(http::workloads(quick));
    workloads.extend(hyper_http::workloads());
    workloads.extend(tls::workloads(quick));
    workloads.extend(udp::workloads());
    let workloads: Vec<_> = workloads.into_iter().filter(|w| selected(&w.id)).collect();
    let mut disturbed = 0.0f64;
    if !workloads.is_empty() {
        println!("{}", suite::TABLE_HEAD);
        for w in &workloads {
            disturbed = disturbed.max(suite::run_workload(w, reps, limit, only)?);
            io::stdout().flush().ok();
        }
        println!();
        println!(
            "rate, p99 (round trip seen by the client) and server CPU per operation (CPU time of \
             every thread but the load generator's over the window ÷ operations; an operation is a \
             round trip, an HTTP response or a 16 KiB bulk chunk) are medians; server busy is \
             server CPU ÷ window; ÷ columns are medians of per-repetition paired ratios (CPU: \
             below 1.0 is cheaper; rate: above 1.0 is faster). Run-queue wait: share of the window \
             the server's threads were runnable but not running."
        );
        // A quiet machine shows about 0.5 % (the wake-up latency), at most 2–3 % in one run.
        if disturbed > 5.0 {
            println!(
                "warning: in some runs the server waited for its CPU up to {disturbed:.1} % of \
                 the window: another process ran on CPU {}; rerun on a quiet machine.",
                sys::SERVER_CPU
            );
        }
        println!();
    }
    if selected("per-core") {
        per_core::run(reps, limit, quick)?;
    }
    if selected("sendfile") {
        sendfile::run(reps, quick)?;
    }
    if selected("udp-flood") {
        udp_flood::run(reps, limit, only)?;
    }
    if selected("mem") {
        mem::run(args.idle.unwrap_or(if quick { 1000 } else { 10_000 }), only)?;
    }
    if selected("ir") && (!quick || args.select.iter().any(|s| s == "ir")) {
        ir::run(if quick { 1000 } else { 10_000 }, only)?;
    }
    if selected("udp-ir") && (!quick || args.select.iter().any(|s| s == "udp-ir")) {
        ir::run_udp(if quick { 1000 } else { 10_000 }, only)?;
    }
    if selected("pipes") {
        pipes::run(reps, quick)?;
    }
    if selected("process") && (!quick || args.select.iter().any(|s| s == "process")) {
        process::run(reps, quick)?;
    }
    println!("total time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
