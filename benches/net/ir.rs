//! User-space instructions per 1 KiB echo round trip, server side (callgrind): the figure
//! that does not drift with machine load.
//!
//! Each server runs as a child process under `valgrind --tool=callgrind`, pinned to the server
//! CPU, driven over one connection for N₁ = N/5 and then (a fresh server) N₂ = N + N₁ round
//! trips; `(Ir₂ − Ir₁) / (N₂ − N₁)` cancels start-up and shutdown.

use std::io;

use crate::load::{self, Limit};
use crate::servers::{self, ChildServer};

const IDS: &[&str] = &[
    "floor",
    "tulip",
    "tulip-buffered",
    "streams",
    "tulip-sock",
    "tokio",
    "smol",
];

fn have_valgrind() -> bool {
    std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Total instructions of one callgrind run of server `id` driven for `n` round trips of
/// 1 KiB over TCP.
fn instructions(id: &str, n: u64, out: &std::path::Path) -> io::Result<u64> {
    instructions_with(id, out, |addr| {
        load::ping_pong(addr, 1024, 1, Limit::Ops(n), true).map(drop)
    })
}

/// Total instructions of one callgrind run of server `id` driven by `drive`.
fn instructions_with(
    id: &str,
    out: &std::path::Path,
    drive: impl FnOnce(std::net::SocketAddr) -> io::Result<()>,
) -> io::Result<u64> {
    let wrapper = vec![
        "valgrind".to_string(),
        "--tool=callgrind".into(),
        "--dump-instr=no".into(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    let srv = ChildServer::spawn(&wrapper, id)?;
    drive(srv.addr)?;
    srv.terminate()?;
    let text = std::fs::read_to_string(out)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("no totals in the callgrind output"))
}

pub fn run(n: u64, only: Option<&[String]>) -> io::Result<()> {
    if !have_valgrind() {
        println!("instructions per round trip: skipped (valgrind not found)\n");
        return Ok(());
    }
    let (n1, n2) = (n / 5, n + n / 5);
    println!(
        "user-space instructions per 1 KiB echo round trip, server side (callgrind, 1 connection, \
         ({n2} − {n1} round trips))"
    );
    println!("| server | instructions / round trip | ÷ floor | ÷ tokio |");
    println!("|---|---:|---:|---:|");
    let dir = std::env::temp_dir().join(format!("tulip-net-ir-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    for id in IDS {
        if only.is_some_and(|o| !o.iter().any(|x| x == id)) {
            continue;
        }
        let short = instructions(id, n1, &dir.join(format!("{id}.short")))?;
        let long = instructions(id, n2, &dir.join(format!("{id}.long")))?;
        rows.push((*id, long.saturating_sub(short) as f64 / (n2 - n1) as f64));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let find = |x: &str| rows.iter().find(|r| r.0 == x).map(|r| r.1);
    let (floor, tokio) = (find("floor"), find("tokio"));
    for (id, ir) in &rows {
        let name = servers::find(id).map_or(*id, |s| s.name);
        let ratio = |r: Option<f64>| match r {
            Some(r) if r > 0.0 => format!("{:.2}", ir / r),
            _ => "—".into(),
        };
        println!("| {name} | {ir:.0} | {} | {} |", ratio(floor), ratio(tokio));
    }
    println!();
    Ok(())
}

/// Section `udp-ir`: user-space instructions per 64 B UDP echo round trip (one datagram in,
/// one out), server side, 1 peer — the UDP servers of `udp.rs`, measured as [`run`] does.
pub fn run_udp(n: u64, only: Option<&[String]>) -> io::Result<()> {
    if !have_valgrind() {
        println!("UDP instructions per round trip: skipped (valgrind not found)\n");
        return Ok(());
    }
    let (n1, n2) = (n / 5, n + n / 5);
    println!(
        "user-space instructions per 64 B UDP echo round trip, server side (callgrind, 1 peer, \
         ({n2} − {n1} round trips))"
    );
    println!("| server | instructions / round trip | ÷ recvfrom floor | ÷ tokio |");
    println!("|---|---:|---:|---:|");
    let dir = std::env::temp_dir().join(format!("tulip-net-udp-ir-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    for s in crate::udp::SERVERS {
        let id = s.id;
        if only.is_some_and(|o| !o.iter().any(|x| x == id)) {
            continue;
        }
        let drive =
            |k: u64| move |addr| crate::udp::ping_pong(addr, 64, 1, Limit::Ops(k)).map(drop);
        let short = instructions_with(id, &dir.join(format!("{id}.short")), drive(n1))?;
        let long = instructions_with(id, &dir.join(format!("{id}.long")), drive(n2))?;
        rows.push((
            s.name,
            id,
            long.saturating_sub(short) as f64 / (n2 - n1) as f64,
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let find = |x: &str| rows.iter().find(|r| r.1 == x).map(|r| r.2);
    let (floor, tokio) = (find("udp-floor"), find("udp-tokio"));
    for (name, _, ir) in &rows {
        let ratio = |r: Option<f64>| match r {
            Some(r) if r > 0.0 => format!("{:.2}", ir / r),
            _ => "—".into(),
        };
        println!("| {name} | {ir:.0} | {} | {} |", ratio(floor), ratio(tokio));
    }
    println!();
    Ok(())
}
