//! `cat` through tulip's pipe transports: copies stdin to stdout with flow control.
//!
//! stdin is a read pipe transport and stdout a write pipe transport. Every chunk read from
//! stdin is written to stdout; when stdout's buffer goes over its high-water mark its protocol
//! hears `pause_writing` and pauses reading stdin, and `resume_writing` resumes it — so the
//! program never holds more than about one read (256 KiB) plus the water mark in memory,
//! however fast stdin is and however slow stdout. At stdin's EOF stdout is closed once drained,
//! and the program exits.
//!
//! ```sh
//! head -c 67108864 /dev/urandom | cargo run --release --example pipe_cat | sha256sum
//! ```
//!
//! stdin and stdout must be pipes, FIFOs, sockets or ttys (a regular file is refused, as
//! asyncio's `connect_read_pipe` refuses it). Exit status: 0 after copying everything, 1 when
//! stdout's reader went away (`BrokenPipe`) or another I/O error happened.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::rc::Rc;

use tulip::unix::WritePipeTransport;
use tulip::{LoopFuture, Protocol, Transport};

/// stdin's protocol: writes what it reads to stdout, closes stdout at EOF.
struct Input {
    stdout: WritePipeTransport,
    /// Where stdout's protocol finds stdin's transport, to pause and resume it.
    slot: Rc<RefCell<Option<Transport>>>,
}

impl Protocol for Input {
    fn connection_made(&mut self, transport: &Transport) {
        // Before the first read: stdout's protocol can pause reading from the start.
        *self.slot.borrow_mut() = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.stdout.write(data);
    }

    fn eof_received(&mut self) -> bool {
        self.stdout.close(); // once the buffer drained
        false
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(e) = exc {
            eprintln!("pipe_cat: stdin: {e}");
            self.stdout.abort();
        }
    }
}

/// stdout's protocol: flow control onto stdin, and the end of the program.
struct Output {
    /// stdin's transport, once it exists (it is made after stdout's).
    stdin: Rc<RefCell<Option<Transport>>>,
    done: LoopFuture<io::Result<()>>,
}

impl Output {
    fn stdin(&self) -> Option<Transport> {
        self.stdin.borrow().clone()
    }
}

impl Protocol for Output {
    fn pause_writing(&mut self) {
        if let Some(t) = self.stdin() {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = self.stdin() {
            t.resume_reading();
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        // A clean close while stdin is still open: stdout's reader went away with nothing
        // buffered (asyncio reports that as no error); for `cat` it is a broken pipe all the same.
        let early = self.stdin().is_some_and(|t| !t.is_closing());
        if let Some(t) = self.stdin() {
            t.close();
        }
        let exc = exc.or_else(|| {
            early.then(|| io::Error::new(io::ErrorKind::BrokenPipe, "stdout: the reader closed"))
        });
        self.done.set_result(exc.map_or(Ok(()), Err));
    }
}

async fn cat() -> io::Result<()> {
    let lp = tulip::get_running_loop();
    let done = lp.create_future();
    let slot = Rc::new(RefCell::new(None));
    // Duplicates: the transports close them, and fds 0 and 1 stay open.
    let out = io::stdout().as_fd().try_clone_to_owned()?;
    let (stdout, _) = tulip::unix::connect_write_pipe(
        || Output {
            stdin: slot.clone(),
            done: done.clone(),
        },
        out,
    )
    .await?;
    let input = io::stdin().as_fd().try_clone_to_owned()?;
    let (_stdin, _) = tulip::unix::connect_read_pipe(|| Input { stdout, slot }, input).await?;
    done.await?
}

// `pub(crate)`: `cargo bench --bench net -- pipes` compiles this file into the bench and runs
// this function as its copier, so the benchmark measures exactly this program.
#[tulip::main]
pub(crate) async fn main() -> ExitCode {
    match cat().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipe_cat: {e}");
            ExitCode::FAILURE
        }
    }
}
