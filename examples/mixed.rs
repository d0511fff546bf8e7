//! One server, two styles: a callback [`Protocol`] that hands slow requests to tasks, and
//! that can hand the whole connection over to an `async fn` as a stream pair.
//!
//! ```text
//! cargo run --release --example mixed [ADDR]
//! ```
//!
//! `ADDR` (`IP:PORT`) defaults to `127.0.0.1:8888`; port 0 picks a free port. Once it
//! listens, the server prints the one line `listening on IP:PORT`. A malformed `ADDR` exits
//! with status 2.
//!
//! # The protocol
//! Lines end with `\n` (a `\r` before it is ignored). The client speaks first:
//!
//! ```text
//! C: HELLO <name> JOBS         S: WELCOME <name> (JOBS)
//! C: WORK <ms> <tag>           S: DONE <tag> <ms>ms         after <ms> ms of "work" (≤ 10 s)
//! C: WORK 300 slow             S: DONE slow 300ms
//! C: WORK 10 fast              S: DONE fast 10ms            answers come in request order
//! C: anything else             S: ERROR bad request
//!
//! C: HELLO <name> STREAM       S: WELCOME <name> (STREAM)
//! C: some text                 S: SOME TEXT                 every line, in upper case
//!
//! C: any other greeting        S: ERROR expected HELLO <name> JOBS|STREAM   and EOF
//! ```
//!
//! # What it shows
//! - **Async work from a callback protocol.** In `JOBS` mode, [`Mixed::data_received`]
//!   spawns one task per `WORK` line; the tasks sleep concurrently. It then calls
//!   [`Transport::pause_reading_until`] with a future that awaits the tasks *in request order*
//!   and writes their answers: the "async `data_received`". While that future runs the
//!   transport does not read, so requests that arrive meanwhile (pipelined) wait in the
//!   kernel and are answered after the ones before them — `WORK 300 slow` then `WORK 10 fast`
//!   gets `DONE slow` first, although `fast` finished long before. (One read may bring
//!   several requests: they make one batch, answered in order too.)
//! - **The hand-over.** In `STREAM` mode, the protocol calls [`Transport::into_streams`] with
//!   the bytes it has received and not consumed — whatever followed the greeting, in the same
//!   read or earlier ones — and an `async fn` continues the connection with
//!   [`StreamReader::readline`] and [`StreamWriter::write`]. Not a byte is lost: a client may
//!   send `HELLO bob STREAM\nfirst\nsec` in one write and `ond\n` later, and gets `FIRST` and
//!   `SECOND` back.
//!
//! A line over 1 KiB in the callback part, or over [`tulip::streams::DEFAULT_LIMIT`] in the stream
//! part, ends the connection.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tulip::{Protocol, StreamReader, StreamWriter, Task, Transport};

/// Where the server listens when no address is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8888";
/// The longest line the callback protocol buffers.
const MAX_LINE: usize = 1024;
/// The longest a `WORK` request may take.
const MAX_WORK_MS: u64 = 10_000;
/// How long a refused connection may keep sending before it is closed.
const LINGER: Duration = Duration::from_secs(5);

/// Where a connection is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for `HELLO <name> JOBS|STREAM`.
    Greeting,
    /// Answering `WORK` requests with tasks.
    Jobs,
    /// An error was sent: whatever else arrives is discarded.
    Refused,
}

/// The callback side of a connection, until (in `STREAM` mode) it hands the connection
/// over to [`shout`].
struct Mixed {
    /// How to talk back; set by `connection_made`.
    transport: Option<Transport>,
    /// Received and not consumed: at most one incomplete line between two reads.
    buf: Vec<u8>,
    mode: Mode,
}

impl Protocol for Mixed {
    fn connection_made(&mut self, transport: &Transport) {
        // Keep a handle: `write`, `pause_reading_until` and `into_streams` go through it.
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        let Some(t) = self.transport.clone() else {
            return;
        };
        if self.mode == Mode::Refused {
            return; // lingering after an error: discard
        }
        // `data` borrows the loop's read buffer: copy it to ours, after the partial line
        // an earlier read may have left.
        self.buf.extend_from_slice(data);

        // The tasks started for the requests of this read, in request order.
        let mut jobs: Vec<Task<Vec<u8>>> = Vec::new();
        // Where the first line not yet consumed starts.
        let mut start = 0;
        while let Some(len) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let line = self.buf[start..start + len].trim_ascii_end(); // without `\r\n`
            let next = start + len + 1; // just past the `\n`
            match self.mode {
                Mode::Greeting => match parse_greeting(line) {
                    Some((name, "JOBS")) => {
                        // Answered at once, from the callback: it is cheap.
                        t.write(format!("WELCOME {name} (JOBS)\n").as_bytes());
                        // The lines after the greeting are requests: go on with the loop.
                        self.mode = Mode::Jobs;
                    }
                    Some((name, "STREAM")) => {
                        t.write(format!("WELCOME {name} (STREAM)\n").as_bytes());
                        // The hand-over. `self.buf[next..]` is everything received after
                        // the greeting; the stream reader reads it first, then what the
                        // socket brings next. From here on the transport feeds the stream
                        // protocol: this `Mixed` is dropped when this call returns.
                        let (reader, writer) = t.into_streams(&self.buf[next..], None);
                        tulip::spawn(async move {
                            if let Err(e) = shout(reader, writer).await {
                                eprintln!("mixed: stream connection: {e}");
                            }
                        })
                        .detach();
                        return;
                    }
                    _ => {
                        self.refuse(&t, b"ERROR expected HELLO <name> JOBS|STREAM\n");
                        return;
                    }
                },
                // A request: start its work now, as a task of its own. It runs while we go
                // on parsing; what it returns is the answer.
                Mode::Jobs => jobs.push(tulip::spawn(work(line.to_vec()))),
                Mode::Refused => unreachable!("refuse() returns from data_received"),
            }
            start = next;
        }
        // Drop the lines consumed; keep the incomplete one, up to a limit.
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            self.refuse(&t, b"ERROR line too long\n");
            return;
        }

        if !jobs.is_empty() {
            // The "async data_received": stop reading, write the answers in request order
            // as the tasks finish, wait until the client has read them (`drain`), and only
            // then read the next requests. Pipelined requests stay in the kernel until
            // then, so they are answered after these ones, and a client that sends
            // without reading cannot make us buffer without bound.
            let answers = t.clone();
            t.pause_reading_until(async move {
                for job in jobs {
                    let answer = job.await; // the slowest first job holds back the others
                    answers.write(&answer);
                }
                let _ = answers.drain().await; // Err: the connection is gone anyway
            })
            .detach(); // the task runs on its own; reading resumes when it is done
        }
    }

    // `eof_received` keeps its default, `false`: at the client's EOF the transport closes.
    // In `JOBS` mode that EOF is read only after the answers are out (reading is paused
    // until then), so a client may send its requests, shut down its sending side and still
    // get every answer.
}

impl Mixed {
    /// Sends `error`, then EOF, and closes once the client closes too (or after
    /// [`LINGER`]). Closing at once could make the kernel reset the connection (if unread
    /// data is left) and lose the error line.
    fn refuse(&mut self, t: &Transport, error: &[u8]) {
        self.mode = Mode::Refused;
        self.buf = Vec::new();
        t.write(error);
        t.write_eof();
        let t = t.clone();
        tulip::get_running_loop().call_later(LINGER, move || t.close());
    }
}

/// `HELLO <name> <mode>` → `(name, mode)`.
fn parse_greeting(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_ascii_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("HELLO"), Some(name), Some(mode), None) => Some((name, mode)),
        _ => None,
    }
}

/// One `WORK <ms> <tag>` request: "works" (sleeps) `ms` milliseconds and returns the
/// answer line.
async fn work(line: Vec<u8>) -> Vec<u8> {
    let request = String::from_utf8_lossy(&line);
    let mut words = request.splitn(3, ' ');
    let (Some("WORK"), Some(ms), Some(tag)) = (words.next(), words.next(), words.next()) else {
        return b"ERROR bad request\n".to_vec();
    };
    let Ok(ms) = ms.parse::<u64>() else {
        return b"ERROR bad request\n".to_vec();
    };
    let ms = ms.min(MAX_WORK_MS);
    tulip::sleep(Duration::from_millis(ms)).await;
    format!("DONE {tag} {ms}ms\n").into_bytes()
}

/// The `STREAM` part of a connection, as an `async fn` on the stream pair: every line comes
/// back in upper case, until EOF.
async fn shout(mut reader: StreamReader, writer: StreamWriter) -> io::Result<()> {
    loop {
        // The first lines come from the bytes the protocol handed over.
        let line = reader.readline().await?;
        if line.is_empty() {
            break; // EOF
        }
        writer.write(&line.to_ascii_uppercase());
        writer.drain().await?;
    }
    writer.close();
    Ok(())
}

#[tulip::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arg = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_string());
    if args.next().is_some() {
        eprintln!("usage: mixed [ADDR]");
        return ExitCode::from(2);
    }
    let addr: SocketAddr = match arg.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mixed: bad address {arg:?}: {e}");
            return ExitCode::from(2);
        }
    };

    // A protocol factory: one `Mixed` per connection, starting with the greeting.
    let factory = || Mixed {
        transport: None,
        buf: Vec::new(),
        mode: Mode::Greeting,
    };
    let server = match tulip::create_server(
        factory,
        &addr.ip().to_string(),
        addr.port(),
        Default::default(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mixed: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = server.local_addr().expect("a TCP listener");
    let announced = (|| {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {local}")?;
        out.flush()
    })();
    if let Err(e) = announced {
        eprintln!("mixed: {e}");
        return ExitCode::FAILURE;
    }
    match server.serve_forever().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mixed: {e}");
            ExitCode::FAILURE
        }
    }
}
