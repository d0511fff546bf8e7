//! Two `Process` objects chained like the shell's `sort | uniq -c`: `sort`'s stdout is
//! `uniq`'s stdin (one pipe between the two children), this program's stdin is fed to
//! `sort` with `communicate`, and `uniq`'s output is collected with `communicate` and
//! printed.
//!
//! ```text
//! printf 'b\na\nb\n' | cargo run --example process_pipeline
//! ```
//!
//! prints `      1 a` and `      2 b` (as `uniq -c` formats them) and exits 0.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use tulip::{Redirect, SubprocessOptions, create_subprocess_exec};

#[tulip::main]
async fn main() -> io::Result<()> {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;

    // The pipe between the two children (std's pipes are close-on-exec: each child gets
    // only its own end, on its stdin or stdout).
    let (between_r, between_w) = io::pipe()?;
    let mut sort = create_subprocess_exec(
        "sort",
        [""; 0],
        SubprocessOptions::new()
            .env("LC_ALL", "C")
            .stdin(Redirect::Pipe)
            .stdout(Redirect::Fd(OwnedFd::from(between_w))),
    )
    .await?;
    let mut uniq = create_subprocess_exec(
        "uniq",
        ["-c"],
        SubprocessOptions::new()
            .stdin(Redirect::Fd(OwnedFd::from(between_r)))
            .stdout(Redirect::Pipe),
    )
    .await?;

    // Both at once: `sort` may not take all its input before `uniq` reads.
    let feeder = tulip::spawn(async move {
        sort.communicate(Some(&input)).await?;
        io::Result::Ok(sort.returncode())
    });
    let (out, _) = uniq.communicate(None).await?;
    let sort_code = feeder.await?;

    io::stdout().write_all(&out.unwrap_or_default())?;
    match (sort_code, uniq.returncode()) {
        (Some(0), Some(0)) => Ok(()),
        codes => Err(io::Error::other(format!(
            "sort, uniq exited with {codes:?}"
        ))),
    }
}
