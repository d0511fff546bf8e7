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
                let input = vec![b'x'; bytes];
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
                let input = vec![b'x'; bytes];
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
                let input = vec![b'x'; bytes];
                let writer = async move {
                    stdin.write_all(&input).await?;
                    stdin.close().await?;
                    drop(stdin);
                    io::Result::Ok(())
                };
                let mut out = Vec::with_capacity(bytes);
                let reader = stdout.read_to_end(&mut out);
                let (w, r) = smol::future::zip(writer, reader).await;
                w?;
                r?;
                assert_eq!(out.len(), bytes);
                assert!(c.status().await?.success());
            }
        }
        Ok(t.elapsed())
    })
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
    println!("process: {reps} interleaved repetition(s), median");
    println!(
        "{:<36} {:>14} {:>14} {:>14} {:>8} {:>8}",
        "workload", "tulip", "tokio", "async-process", "÷ tokio", "÷ a-p"
    );
    for (name, w, unit, amount) in rows {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        let (mut rb, mut rc) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let x = amount / tulip_run(w)?.as_secs_f64();
            let y = amount / tokio_run(w)?.as_secs_f64();
            let z = amount / smol_run(w)?.as_secs_f64();
            rb.push(x / y);
            rc.push(x / z);
            a.push(x);
            b.push(y);
            c.push(z);
        }
        // The ratios are the medians of the paired ratios (same repetition), not the
        // ratios of the medians.
        println!(
            "{name:<36} {:>9.0} {unit:<4} {:>9.0} {unit:<4} {:>9.0} {unit:<4} {:>8.2} {:>8.2}",
            median(a),
            median(b),
            median(c),
            median(rb),
            median(rc)
        );
    }
    println!();
    Ok(())
}
