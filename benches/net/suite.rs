//! Workloads, measurement points and the results table.

use std::io;
use std::net::SocketAddr;

use crate::load::{self, Limit, LoadResult};
use crate::servers::{self, Running, Server};
use crate::sys::{self, median, percentile};

/// What a workload's operation is, for the rate column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    /// A request/response round trip: requests per second.
    Request,
    /// An echoed chunk of this many bytes: MB/s.
    Chunk(usize),
}

/// Drives one server at `addr`.
pub type Drive = Box<dyn Fn(SocketAddr, Limit) -> io::Result<LoadResult>>;

/// One workload: the servers it runs against and the load that drives them.
pub struct Workload {
    /// Short id, for the command line (`pp1k-c1`, `http`, …).
    pub id: String,
    /// What the table shows.
    pub label: String,
    pub servers: Vec<&'static Server>,
    /// The floor's and tokio's counterparts among `servers`, for the ratio columns.
    pub floor: &'static str,
    pub tokio: &'static str,
    pub unit: Unit,
    pub drive: Drive,
}

/// Looks servers up by id; every id must exist.
pub fn servers(ids: &[&str]) -> Vec<&'static Server> {
    ids.iter()
        .map(|id| servers::find(id).unwrap_or_else(|| panic!("no server {id}")))
        .collect()
}

/// The echo workloads: ping-pong of 64 B, 1 KiB and 16 KiB over 1 and 50 connections, and bulk.
pub fn echo_workloads() -> Vec<Workload> {
    let ids = crate::echo::SERVERS
        .iter()
        .map(|s| s.id)
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    for (size, tag, size_label) in [
        (64, "64", "64 B"),
        (1024, "1k", "1 KiB"),
        (16384, "16k", "16 KiB"),
    ] {
        for conns in [1usize, 50] {
            out.push(Workload {
                id: format!("pp{tag}-c{conns}"),
                label: format!(
                    "{size_label} ping-pong, {conns} conn{}",
                    if conns > 1 { "s" } else { "" }
                ),
                servers: servers(&ids),
                floor: "floor",
                tokio: "tokio",
                unit: Unit::Request,
                drive: Box::new(move |addr, limit| load::ping_pong(addr, size, conns, limit, true)),
            });
        }
    }
    out.push(Workload {
        id: "bulk".into(),
        label: "bulk echo, 16 KiB chunks, 1 conn".into(),
        servers: servers(&ids),
        floor: "floor",
        tokio: "tokio",
        unit: Unit::Chunk(load::CHUNK),
        drive: Box::new(load::bulk),
    });
    out
}

/// One measurement point.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Operations per second.
    pub rate: f64,
    pub p99_us: f64,
    /// Server CPU per operation, ns.
    pub cpu_ns: f64,
    /// Server CPU ÷ window, %: near 100 % when the load saturates the server.
    pub busy_pct: f64,
    /// Run-queue wait of the server's threads, % of the window.
    pub wait_pct: f64,
}

/// Runs `server` in a fresh thread (pinned to the server CPU) and drives it once.
pub fn measure(server: &'static Server, w: &Workload, limit: Limit) -> io::Result<Sample> {
    let srv = Running::start(server, Some(sys::SERVER_CPU))?;
    let r = (w.drive)(srv.addr, limit);
    srv.stop()?;
    Ok(sample(r?))
}

pub fn sample(mut r: LoadResult) -> Sample {
    let n = r.ops.max(1) as f64;
    let secs = r.elapsed.as_secs_f64();
    Sample {
        rate: n / secs,
        p99_us: percentile(&mut r.latencies, 0.99) / 1e3,
        cpu_ns: r.server_cpu.as_nanos() as f64 / n,
        busy_pct: 100.0 * r.server_cpu.as_secs_f64() / secs,
        wait_pct: 100.0 * r.server_wait.as_secs_f64() / secs,
    }
}

/// Median of the per-repetition ratios `f(row) / f(reference)`, or `—` for the reference
/// itself or when it did not run.
pub fn paired(row: &[Sample], reference: Option<&[Sample]>, f: fn(&Sample) -> f64) -> String {
    match reference {
        Some(p) if !std::ptr::eq(p, row) => {
            let mut r: Vec<f64> = row.iter().zip(p).map(|(a, b)| f(a) / f(b)).collect();
            format!("{:.2}", median(&mut r))
        }
        _ => "—".into(),
    }
}

pub fn med(s: &[Sample], f: fn(&Sample) -> f64) -> f64 {
    median(&mut s.iter().map(f).collect::<Vec<_>>())
}

pub const TABLE_HEAD: &str = "| workload | server | rate | p99 µs | server CPU ns/op | server busy | \
    CPU ÷ floor | CPU ÷ tokio | rate ÷ floor | rate ÷ tokio | run-queue wait |\n\
    |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// The table rows of one workload; returns the largest run-queue wait (%) of a server that
/// should have had its CPU to itself.
pub fn print_rows(w: &Workload, servers: &[&'static Server], samples: &[Vec<Sample>]) -> f64 {
    let find = |id: &str| {
        servers
            .iter()
            .position(|s| s.id == id)
            .map(|i| samples[i].as_slice())
    };
    let (floor, tokio) = (find(w.floor), find(w.tokio));
    let mut disturbed = 0.0f64;
    for (i, server) in servers.iter().enumerate() {
        let s = &samples[i];
        let rate = match w.unit {
            Unit::Request => format!("{:.0} req/s", med(s, |s| s.rate)),
            Unit::Chunk(n) => format!("{:.0} MB/s", med(s, |s| s.rate) * n as f64 / 1e6),
        };
        let p99 = med(s, |s| s.p99_us);
        let p99 = if p99.is_nan() {
            "—".to_string()
        } else {
            format!("{p99:.0}")
        };
        println!(
            "| {} | {} | {rate} | {p99} | {:.0} | {:.0} % | {} | {} | {} | {} | {:.1} % |",
            w.label,
            server.name,
            med(s, |s| s.cpu_ns),
            med(s, |s| s.busy_pct),
            paired(s, floor, |s| s.cpu_ns),
            paired(s, tokio, |s| s.cpu_ns),
            paired(s, floor, |s| s.rate),
            paired(s, tokio, |s| s.rate),
            med(s, |s| s.wait_pct),
        );
        // smol and tokio's multi-thread runtime wait for their own helper threads on the
        // shared CPU: not a sign of another process.
        if !matches!(server.id, "smol" | "tokio-mt") {
            disturbed = s.iter().map(|s| s.wait_pct).fold(disturbed, f64::max);
        }
    }
    disturbed
}

/// Runs every server of `w` `reps` times, interleaved with the order rotating, and prints its
/// rows. Returns the largest run-queue wait seen (see `print_rows`).
pub fn run_workload(
    w: &Workload,
    reps: usize,
    limit: Limit,
    only: Option<&[String]>,
) -> io::Result<f64> {
    let servers: Vec<&'static Server> = w
        .servers
        .iter()
        .copied()
        .filter(|s| only.is_none_or(|o| o.iter().any(|id| id == s.id)))
        .collect();
    if servers.is_empty() {
        return Ok(0.0);
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
    for rep in 0..reps {
        for k in 0..servers.len() {
            let i = (k + rep) % servers.len();
            let s = measure(servers[i], w, limit).map_err(|e| {
                io::Error::new(e.kind(), format!("{} on {}: {e}", servers[i].id, w.id))
            })?;
            samples[i].push(s);
        }
    }
    Ok(print_rows(w, &servers, &samples))
}
