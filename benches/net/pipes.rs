//! Pipes: 1 GiB (quick: 64 MiB) through `examples/pipe_cat` — tulip's read and write pipe
//! transports with flow control — against `cat`, the floor of a pipe copy (`read` +
//! `write`, 128 KiB at a time, blocking).
//!
//! The copier under test runs as a child process pinned to the server CPU, with its stdin
//! and stdout pipes to this process: a feeder thread writes the data (a 1 MiB pattern,
//! repeated) and the main thread reads it back and counts it, both on the load CPU. The
//! figures are the rate (bytes ÷ wall time from spawn to EOF) and the child's CPU time
//! (user + system, from `wait4`), medians over interleaved repetitions, with the paired ratio
//! to `cat`. `examples/pipe_cat.rs` is compiled into this bench (`#[path]`), and the bench
//! runs itself with [`PIPE_CAT_ARG`] as that copier: no second build, same profile.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys;

#[path = "../../examples/pipe_cat.rs"]
mod pipe_cat;

/// The argument that makes the bench binary run `examples/pipe_cat.rs`'s `main` instead.
pub const PIPE_CAT_ARG: &str = "--pipe-cat";

/// Runs `examples/pipe_cat.rs` (the bench was started with [`PIPE_CAT_ARG`]).
pub fn pipe_cat_main() -> io::Result<()> {
    if pipe_cat::main() == std::process::ExitCode::SUCCESS {
        Ok(())
    } else {
        Err(io::Error::other("pipe_cat failed"))
    }
}

/// One copy: wall time and the child's CPU time.
#[derive(Clone, Copy)]
struct Copy {
    wall: Duration,
    cpu: Duration,
}

/// Runs `cmd` as a copier of `total` bytes; checks it copied them all and exited 0.
fn copy_through(cmd: &mut Command, total: u64, pattern: &'static [u8]) -> io::Result<Copy> {
    // SAFETY: between fork and exec the closure only makes one system call
    // (sched_setaffinity), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| sys::pin_to(sys::SERVER_CPU).or(Ok(())));
    }
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let feeder = std::thread::spawn(move || -> io::Result<()> {
        sys::pin_warn("pipe feeder", sys::LOAD_CPU);
        let mut left = total;
        while left > 0 {
            let n = left.min(pattern.len() as u64) as usize;
            stdin.write_all(&pattern[..n])?;
            left -= n as u64;
        }
        Ok(()) // dropping stdin: EOF
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let wall = started.elapsed();
    feeder.join().expect("feeder")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `ru` are valid for writes. std's `Child`
    // is not used to wait afterwards.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if got != total || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(io::Error::other(format!(
            "copier copied {got} of {total} bytes, wait status {status:#x}"
        )));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Copy {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The pipes section: prints its table.
pub fn run(reps: usize, quick: bool) -> io::Result<()> {
    let total: u64 = if quick { 64 << 20 } else { 1 << 30 };
    let pipe_cat = std::env::current_exe()?;
    let pattern: &'static [u8] = Box::leak(
        (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<u8>>()
            .into_boxed_slice(),
    );
    let mut cat = Vec::new();
    let mut tulip = Vec::new();
    for rep in 0..reps {
        // Interleaved, the order rotating between repetitions.
        let run_cat = || copy_through(&mut Command::new("cat"), total, pattern);
        let run_tulip = || copy_through(Command::new(&pipe_cat).arg(PIPE_CAT_ARG), total, pattern);
        if rep % 2 == 0 {
            cat.push(run_cat()?);
            tulip.push(run_tulip()?);
        } else {
            tulip.push(run_tulip()?);
            cat.push(run_cat()?);
        }
    }
    let mb = total as f64 / 1e6;
    let rate = |c: &Copy| mb / c.wall.as_secs_f64();
    let cpu = |c: &Copy| c.cpu.as_secs_f64();
    println!(
        "pipes: {} MiB through the copier (child on CPU {}, feeder and reader on CPU {}), \
         {reps} interleaved repetition(s), medians",
        total >> 20,
        sys::SERVER_CPU,
        sys::LOAD_CPU
    );
    println!(
        "| copier | MB/s | CPU s (user + sys) | CPU ns / KiB | MB/s ÷ cat | CPU ÷ cat |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, runs) in [("`cat`", &cat), ("tulip `pipe_cat`", &tulip)] {
        let rate_ratio = median(
            runs.iter()
                .zip(&cat)
                .map(|(r, c)| rate(r) / rate(c))
                .collect(),
        );
        let cpu_ratio = median(
            runs.iter()
                .zip(&cat)
                .map(|(r, c)| cpu(r) / cpu(c).max(1e-9))
                .collect(),
        );
        let cpu_s = median(runs.iter().map(cpu).collect());
        println!(
            "| {name} | {:.0} | {cpu_s:.3} | {:.0} | {rate_ratio:.2} | {cpu_ratio:.2} |",
            median(runs.iter().map(rate).collect()),
            cpu_s * 1e9 / (total as f64 / 1024.0),
        );
    }
    println!();
    Ok(())
}
