//! Two `Process` objects chained like the shell's `sort | uniq -c`: what `sort` writes to
//! its stdout stream is copied to `uniq`'s stdin stream, this program's stdin is fed to
//! `sort` with `communicate`, and `uniq`'s output is collected with `communicate` and
//! printed. (A file descriptor can join them directly too: `Redirect::Fd` with the ends of
//! one pipe.)
//!
//! ```text
//! printf 'b\na\nb\n' | cargo run --example process_pipeline
//! ```
//!
//! prints `      1 a` and `      2 b` (as `uniq -c` formats them) and exits 0.

use std::io::{self, Read, Write};

use tulip::create_subprocess_exec;
use tulip::unix::{Redirect, SubprocessOptions};

#[tulip::main]
async fn main() -> io::Result<()> {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input)?;

    let mut sort = create_subprocess_exec(
        "sort",
        [""; 0],
        SubprocessOptions::new()
            .env("LC_ALL", "C")
            .stdin(Redirect::Pipe)
            .stdout(Redirect::Pipe),
    )
    .await?;
    let mut uniq = create_subprocess_exec(
        "uniq",
        ["-c"],
        SubprocessOptions::new()
            .stdin(Redirect::Pipe)
            .stdout(Redirect::Pipe),
    )
    .await?;

    // sort's stdout → uniq's stdin.
    let (mut sorted, to_uniq) = (sort.stdout.take(), uniq.stdin.take());
    let copier = tulip::spawn(async move {
        let (Some(from), Some(to)) = (sorted.as_mut(), to_uniq) else {
            return io::Result::Ok(());
        };
        loop {
            let chunk = from.read(64 * 1024).await?;
            if chunk.is_empty() {
                break;
            }
            to.write(&chunk);
            to.drain().await?;
        }
        to.close(); // uniq sees EOF
        Ok(())
    });
    // All at once: `sort` may not take all its input before its output is read.
    let feeder = tulip::spawn(async move {
        sort.communicate(Some(&input)).await?;
        io::Result::Ok(sort.returncode())
    });
    let (out, _) = uniq.communicate(None).await?;
    let sort_code = feeder.await?;
    copier.await?;

    io::stdout().write_all(&out.unwrap_or_default())?;
    match (sort_code, uniq.returncode()) {
        (Some(0), Some(0)) => Ok(()),
        codes => Err(io::Error::other(format!(
            "sort, uniq exited with {codes:?}"
        ))),
    }
}
