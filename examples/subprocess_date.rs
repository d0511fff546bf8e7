//! The asyncio documentation's subprocess example: get the current date by running a
//! one-liner (`date`) under a `SubprocessProtocol`, collect what it prints, wait for it to
//! exit, and print it.
//!
//! ```text
//! cargo run --example subprocess_date
//! ```
//!
//! Prints `Current date: …` and exits 0 (1 if `date` failed).

use std::io;

use tulip::unix::{Redirect, SubprocessOptions};
use tulip::{LoopFuture, SubprocessProtocol, SubprocessTransport};

/// Collects stdout; completes `exit_future` once everything is over.
struct DateProtocol {
    exit_future: LoopFuture<()>,
    output: Vec<u8>,
}

impl SubprocessProtocol for DateProtocol {
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        let _ = transport; // nothing to write to it: `date` reads no input
    }

    fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
        self.output.extend_from_slice(data);
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        // Every pipe is closed and the process exited.
        self.exit_future.set_result(());
    }
}

async fn get_date() -> io::Result<(String, i32)> {
    let exit_future = tulip::get_running_loop().create_future();
    let (transport, protocol) = tulip::subprocess_exec(
        || DateProtocol {
            exit_future: exit_future.clone(),
            output: Vec::new(),
        },
        "date",
        [""; 0],
        SubprocessOptions::new().stdout(Redirect::Pipe),
    )
    .await?;
    exit_future.await?;
    transport.close();
    let output = protocol.with(|p| std::mem::take(&mut p.output));
    let code = transport.get_returncode().unwrap_or(-1);
    Ok((String::from_utf8_lossy(&output).trim_end().to_owned(), code))
}

fn main() -> io::Result<()> {
    let (date, code) = tulip::run(get_date())?;
    println!("Current date: {date}");
    if code != 0 {
        std::process::exit(1);
    }
    Ok(())
}
