//! Section `process`: child processes — spawn + wait of `/bin/true` (processes per second,
//! one at a time and 16 at a time) and `communicate` through `cat` (MB/s: the bytes sent in
//! and read back, counted once), tulip's `Process` against `tokio::process` on a
//! current-thread runtime and `async-process` (as `smol::process`, on `smol::block_on`: one
//! thread drives the reactor and the futures), in one run, interleaved, median of the
//! repetitions. Not part of `--quick` unless named (`--quick process`: a short run).
//!
//! ```text
//! cargo bench --bench net -- process
//! ```

use std::io;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TRUE: &str = "/bin/true";

/// What one measurement does.
#[derive(Clone, Copy)]
enum Work {
    /// `n` spawn + wait, `at_once` children in flight.
    Spawn { n: usize, at_once: usize },
    /// `bytes` through `cat` with communicate.
    Cat { bytes: usize },
}

fn tulip_run(w: Work) -> io::Result<Duration> {
    use tulip::create_subprocess_exec;
    use tulip::unix::{Redirect, SubprocessOptions};
    tulip::run(async move {
        let input = input_for(w);
        let t = Instant::now();
        match w {
            Work::Spawn { n, at_once } => {
                let mut done = 0;
                while done < n {
                    let k = at_once.min(n - done);
                    let mut ps = Vec::with_capacity(k);
                    for _ in 0..k {
                        ps.push(
                            create_subprocess_exec(TRUE, [""; 0], SubprocessOptions::new()).await?,
                        );
                    }
                    for p in &ps {
                        assert_eq!(p.wait().await, 0);
                    }
                    done += k;
                }
            }
            Work::Cat { bytes } => {
                let mut p = create_subprocess_exec(
                    "cat",
                    [""; 0],
                    SubprocessOptions::new()
                        .stdin(Redirect::Pipe)
                        .stdout(Redirect::Pipe),
                )
                .await?;
                let (out, _) = p.communicate(Some(&input)).await?;
                assert_eq!(out.map(|o| o.len()), Some(bytes));
            }
        }
        Ok(t.elapsed())
    })
}

fn tokio_run(w: Work) -> io::Result<Duration> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let input = input_for(w);
        let t = Instant::now();
        match w {
            Work::Spawn { n, at_once } => {
                let mut done = 0;
                while done < n {
                    let k = at_once.min(n - done);
                    let mut cs = Vec::with_capacity(k);
                    for _ in 0..k {
                        cs.push(tokio::process::Command::new(TRUE).spawn()?);
                    }
                    for c in &mut cs {
                        assert!(c.wait().await?.success());
                    }
                    done += k;
                }
            }
            Work::Cat { bytes } => {
                let mut c = tokio::process::Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let mut stdin = c.stdin.take().expect("stdin");
                let mut stdout = c.stdout.take().expect("stdout");
                let writer = tokio::spawn(async move {
                    stdin.write_all(&input).await?;
                    drop(stdin);
                    io::Result::Ok(())
                });
                let mut out = Vec::with_capacity(bytes);
                stdout.read_to_end(&mut out).await?;
                writer.await.map_err(io::Error::other)??;
                assert_eq!(out.len(), bytes);
                assert!(c.wait().await?.success());
            }
        }
        Ok(t.elapsed())
    })
}

fn smol_run(w: Work) -> io::Result<Duration> {
    use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use smol::process::{Command, Stdio};
    smol::block_on(async move {
        let input = input_for(w);
        let t = Instant::now();
        match w {
            Work::Spawn { n, at_once } => {
                let mut done = 0;
                while done < n {
                    let k = at_once.min(n - done);
                    let mut cs = Vec::with_capacity(k);
                    for _ in 0..k {
                        cs.push(Command::new(TRUE).spawn()?);
                    }
                    for c in &mut cs {
                        assert!(c.status().await?.success());
                    }
                    done += k;
                }
            }
            Work::Cat { bytes } => {
                let mut c = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let mut stdin = c.stdin.take().expect("stdin");
                let mut stdout = c.stdout.take().expect("stdout");
                let writer = async move {
                    stdin.write_all(&input).await?;
                    stdin.close().await?;
                    drop(stdin);
                    io::Result::Ok(())
                };
                // Not `read_to_end`: futures-lite's zeroes all the spare capacity again at
                // every `Pending` (quadratic with a preallocated vector, ~40 MB/s here).
                // Zeroed room, each byte once (`AsyncRead` takes initialised memory; tulip's
                // `communicate` and tokio's `read_to_end` read into spare capacity).
                let reader = async move {
                    let (mut out, mut filled) = (Vec::with_capacity(bytes), 0);
                    loop {
                        if filled == out.len() {
                            out.resize(filled + (256 << 10), 0);
                        }
                        let n = stdout.read(&mut out[filled..]).await?;
                        if n == 0 {
                            out.truncate(filled);
                            return io::Result::Ok(out);
                        }
                        filled += n;
                    }
                };
                let (w, out) = smol::future::zip(writer, reader).await;
                w?;
                assert_eq!(out?.len(), bytes);
                assert!(c.status().await?.success());
            }
        }
        Ok(t.elapsed())
    })
}

/// The bytes a `Cat` run sends, made before its clock starts (the caller's data).
fn input_for(w: Work) -> Vec<u8> {
    match w {
        Work::Cat { bytes } => vec![b'x'; bytes],
        Work::Spawn { .. } => Vec::new(),
    }
}

/// This process's CPU time so far: user + system, all its threads.
fn cpu_time() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` writes into the `rusage` it is given and keeps no pointer to it.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One run of `f`: its wall time and the CPU time this process spent (µs).
fn timed(f: fn(Work) -> io::Result<Duration>, w: Work) -> io::Result<(f64, f64)> {
    let c = cpu_time();
    let wall = f(w)?;
    Ok((wall.as_secs_f64(), (cpu_time() - c).as_secs_f64() * 1e6))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs the section.
pub fn run(reps: usize, quick: bool) -> io::Result<()> {
    let n = if quick { 50 } else { 1000 };
    let bytes = if quick { 4 << 20 } else { 64 << 20 };
    let rows: [(&str, Work, &str, f64); 3] = [
        (
            "spawn+wait /bin/true, 1 at a time",
            Work::Spawn { n, at_once: 1 },
            "proc/s",
            n as f64,
        ),
        (
            "spawn+wait /bin/true, 16 at a time",
            Work::Spawn { n, at_once: 16 },
            "proc/s",
            n as f64,
        ),
        (
            "communicate through cat",
            Work::Cat { bytes },
            "MB/s",
            bytes as f64 / 1e6,
        ),
    ];
    println!(
        "process: {reps} interleaved repetition(s) (communicate: {}), medians; ratios are medians of the paired ratios",
        3 * reps
    );
    println!(
        "{:<36} {:>14} {:>14} {:>14} {:>8} {:>8}",
        "workload", "tulip", "tokio", "async-process", "÷ tokio", "÷ a-p"
    );
    for (name, w, unit, amount) in rows {
        let cat = matches!(w, Work::Cat { .. });
        // Rates, CPU µs per MB, and their paired ratios (tulip ÷ tokio, tulip ÷ a-p).
        let (mut rate, mut cpu) = ([(); 3].map(|_| Vec::new()), [(); 3].map(|_| Vec::new()));
        let (mut rate_r, mut cpu_r) = ([(); 2].map(|_| Vec::new()), [(); 2].map(|_| Vec::new()));
        // A transfer is short and noisy (it shares the cores with `cat`): three times the
        // repetitions.
        for _ in 0..reps * if cat { 3 } else { 1 } {
            let runs: [fn(Work) -> io::Result<Duration>; 3] = [tulip_run, tokio_run, smol_run];
            let mut x = [(0.0, 0.0); 3];
            for (i, f) in runs.into_iter().enumerate() {
                let (wall, us) = timed(f, w)?;
                x[i] = (amount / wall, us / amount);
                rate[i].push(x[i].0);
                cpu[i].push(x[i].1);
            }
            for i in 0..2 {
                rate_r[i].push(x[0].0 / x[i + 1].0);
                cpu_r[i].push(x[0].1 / x[i + 1].1);
            }
        }
        let [a, b, c] = rate.map(median);
        let [rb, rc] = rate_r.map(median);
        println!(
            "{name:<36} {a:>9.0} {unit:<4} {b:>9.0} {unit:<4} {c:>9.0} {unit:<4} {rb:>8.2} {rc:>8.2}"
        );
        if cat {
            // Wall time under load mostly shows the contention; the CPU this process spent
            // per MB is the steadier measure (lower is better).
            let [a, b, c] = cpu.map(median);
            let [rb, rc] = cpu_r.map(median);
            let unit = "µs/MB";
            println!(
                "{:<36} {a:>8.0} {unit} {b:>8.0} {unit} {c:>8.0} {unit} {rb:>8.2} {rc:>8.2}",
                "  its CPU (this process, all threads)"
            );
        }
    }
    println!();
    Ok(())
}
