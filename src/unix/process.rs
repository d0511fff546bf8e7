//! The async `Process` (asyncio's `asyncio.subprocess`): `create_subprocess_exec`,
//! `create_subprocess_shell`, the options they take, and how a child is spawned.
//!
//! Spawning is `std::process::Command` (its `posix_spawn` fast path unless a new session or
//! passed fds need a `pre_exec` hook). Every pipe is created `O_CLOEXEC`; the child gets
//! only its stdin/stdout/stderr and the fds passed with [`SubprocessOptions::pass_fd`].

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::task::{Context, Poll};

use super::child::{self, ChildWatch};
use crate::event_loop::{EventLoop, get_running_loop};
use crate::streams::{DEFAULT_LIMIT, StreamReader, StreamWriter, pipe_pair};
use crate::sys;
use crate::transports::{ExtraInfo, Transport, TransportFd};

/// Where a child's stdin, stdout or stderr goes (asyncio's `PIPE`, `DEVNULL`, `STDOUT`, a
/// file descriptor, or `None` for inherit).
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Redirect {
    /// The parent's own (asyncio's `None`), the default.
    #[default]
    Inherit,
    /// A new pipe: the [`Process`] gets its other end as a stream (asyncio's `PIPE`).
    Pipe,
    /// `/dev/null` (asyncio's `DEVNULL`).
    DevNull,
    /// This file descriptor (closed in the parent once the child is spawned).
    Fd(OwnedFd),
    /// For stderr only: wherever stdout goes (asyncio's `STDOUT`).
    Stdout,
}

/// Options of [`create_subprocess_exec`] and [`create_subprocess_shell`] (asyncio's keyword
/// arguments, and those of `subprocess.Popen` that apply).
///
/// ```
/// use tulip::unix::{Redirect, SubprocessOptions};
/// let options = SubprocessOptions::new()
///     .stdout(Redirect::Pipe)
///     .stderr(Redirect::Stdout)
///     .cwd("/")
///     .env("LC_ALL", "C")
///     .kill_on_drop(true);
/// # drop(options);
/// ```
#[derive(Debug)]
pub struct SubprocessOptions {
    pub(crate) stdin: Redirect,
    pub(crate) stdout: Redirect,
    pub(crate) stderr: Redirect,
    cwd: Option<PathBuf>,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
    process_group: Option<i32>,
    new_session: bool,
    pass_fds: Vec<OwnedFd>,
    pub(crate) kill_on_drop: bool,
    pub(crate) limit: usize,
}

impl Default for SubprocessOptions {
    fn default() -> SubprocessOptions {
        SubprocessOptions {
            stdin: Redirect::Inherit,
            stdout: Redirect::Inherit,
            stderr: Redirect::Inherit,
            cwd: None,
            env_clear: false,
            env: Vec::new(),
            process_group: None,
            new_session: false,
            pass_fds: Vec::new(),
            kill_on_drop: false,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl SubprocessOptions {
    /// The defaults: stdio inherited, the parent's environment and directory.
    pub fn new() -> SubprocessOptions {
        SubprocessOptions::default()
    }

    /// Where the child's stdin comes from ([`Redirect::Stdout`] is refused at spawn).
    pub fn stdin(mut self, r: Redirect) -> SubprocessOptions {
        self.stdin = r;
        self
    }

    /// Where the child's stdout goes.
    pub fn stdout(mut self, r: Redirect) -> SubprocessOptions {
        self.stdout = r;
        self
    }

    /// Where the child's stderr goes ([`Redirect::Stdout`]: with stdout).
    pub fn stderr(mut self, r: Redirect) -> SubprocessOptions {
        self.stderr = r;
        self
    }

    /// The child's working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> SubprocessOptions {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> SubprocessOptions {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> SubprocessOptions {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Self::env) sets).
    pub fn env_clear(mut self) -> SubprocessOptions {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Puts the child in process group `pgid` (`0`: a new group led by the child; Python's
    /// `process_group`).
    pub fn process_group(mut self, pgid: i32) -> SubprocessOptions {
        self.process_group = Some(pgid);
        self
    }

    /// Starts the child in a new session (`setsid`; Python's `start_new_session`).
    pub fn start_new_session(mut self, on: bool) -> SubprocessOptions {
        self.new_session = on;
        self
    }

    /// Passes `fd` to the child under the same number (Python's `pass_fds`); the parent's
    /// copy is closed once the child is spawned.
    pub fn pass_fd(mut self, fd: OwnedFd) -> SubprocessOptions {
        self.pass_fds.push(fd);
        self
    }

    /// Sends `SIGKILL` to the child if the [`Process`] is dropped while it runs (tokio's
    /// `kill_on_drop`). Either way a dropped child is reaped when it exits. A `Process`
    /// dropped after its loop closed kills nothing: the child was handed to a reaper thread
    /// then, and its number may no longer be ours to signal.
    pub fn kill_on_drop(mut self, on: bool) -> SubprocessOptions {
        self.kill_on_drop = on;
        self
    }

    /// The buffer limit of the stdout and stderr readers (asyncio's `limit`, 64 KiB).
    pub fn limit(mut self, limit: usize) -> SubprocessOptions {
        self.limit = limit;
        self
    }
}

/// A spawned child: its watch and the parent's ends of its pipes (non-blocking).
pub(crate) struct Spawned {
    pub(crate) watch: Rc<ChildWatch>,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
}

/// The child's side of one stdio stream, and the parent's end of the pipe if it is one.
///
/// `copy`: also return a copy of the child's side (for stderr redirected to stdout).
fn child_side(
    r: Redirect,
    input: bool,
    copy: bool,
) -> io::Result<(Stdio, Option<OwnedFd>, Option<OwnedFd>)> {
    let dup = |fd: &OwnedFd| copy.then(|| fd.try_clone()).transpose();
    Ok(match r {
        Redirect::Inherit => (Stdio::inherit(), None, None),
        Redirect::DevNull => (Stdio::null(), None, None),
        Redirect::Fd(fd) => {
            let copy = dup(&fd)?;
            (Stdio::from(fd), None, copy)
        }
        Redirect::Pipe => {
            let (r, w) = sys::pipe()?;
            let (theirs, ours) = if input { (r, w) } else { (w, r) };
            let copy = dup(&theirs)?;
            (Stdio::from(theirs), Some(ours), copy)
        }
        Redirect::Stdout => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only stderr can be redirected to stdout",
            ));
        }
    })
}

/// Spawns `cmd` (its program named `program` in errors) with `options` and starts watching
/// it on `lp`.
pub(crate) fn spawn(
    lp: &EventLoop,
    mut cmd: Command,
    program: &OsStr,
    options: SubprocessOptions,
) -> io::Result<Spawned> {
    let SubprocessOptions {
        stdin,
        stdout,
        stderr,
        cwd,
        env_clear,
        env,
        process_group,
        new_session,
        pass_fds,
        ..
    } = options;
    let (stdin_c, stdin_p, _) = child_side(stdin, true, false)?;
    let stdout_inherit = matches!(stdout, Redirect::Inherit);
    let stdout_null = matches!(stdout, Redirect::DevNull);
    let merge = matches!(stderr, Redirect::Stdout);
    let (stdout_c, stdout_p, stdout_copy) = child_side(stdout, false, merge)?;
    let (stderr_c, stderr_p) = match stderr {
        Redirect::Stdout => {
            let c = match stdout_copy {
                Some(fd) => Stdio::from(fd),
                None if stdout_null => Stdio::null(),
                None if stdout_inherit => Stdio::from(io::stdout().as_fd().try_clone_to_owned()?),
                None => Stdio::inherit(),
            };
            (c, None)
        }
        other => {
            let (c, p, _) = child_side(other, false, false)?;
            (c, p)
        }
    };
    cmd.stdin(stdin_c).stdout(stdout_c).stderr(stderr_c);
    if let Some(dir) = &cwd {
        cmd.current_dir(dir);
    }
    if env_clear {
        cmd.env_clear();
    }
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(pgid) = process_group {
        cmd.process_group(pgid);
    }
    if new_session || !pass_fds.is_empty() {
        let fds = pass_fds.iter().map(|f| f.as_raw_fd()).collect();
        sys::set_pre_exec(&mut cmd, new_session, fds);
    }
    let spawned = cmd.spawn();
    // The child's ends (held by `cmd`) and the passed fds close in the parent now, so
    // that a reader sees EOF when the child (and its children) close theirs.
    drop(cmd);
    drop(pass_fds);
    let child = spawned.map_err(|e| spawn_error(e, program, cwd.as_ref()))?;
    // Watched first: whatever fails next, the child is reaped.
    let watch = child::watch(lp, child)?;
    for fd in [&stdin_p, &stdout_p, &stderr_p].into_iter().flatten() {
        sys::set_nonblocking(fd, true)?;
    }
    Ok(Spawned {
        watch,
        stdin: stdin_p,
        stdout: stdout_p,
        stderr: stderr_p,
    })
}

/// A spawn failure, naming the program (and the directory if one was asked for); the kind
/// (`NotFound`, `PermissionDenied`, …) is the system's.
fn spawn_error(e: io::Error, program: &OsStr, cwd: Option<&PathBuf>) -> io::Error {
    let msg = match cwd {
        Some(dir) => format!("cannot run {program:?} in {dir:?}: {e}"),
        None => format!("cannot run {program:?}: {e}"),
    };
    io::Error::new(e.kind(), msg)
}

/// asyncio's `returncode`: the exit code, or minus the signal number that killed the child.
pub(crate) fn returncode(st: ExitStatus) -> i32 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => -s,
        (None, None) => 255,
    }
}

/// The command that runs `cmd` with the shell (`/bin/sh -c cmd`).
pub(crate) fn shell_command(cmd: &OsStr) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(cmd);
    c
}

/// A running (or finished) child process with its pipes as streams (asyncio's
/// `asyncio.subprocess.Process`).
///
/// The exit is watched by the loop whatever happens to this object: a `Process` dropped
/// while the child runs leaves no zombie (the child is reaped when it exits), and with
/// [`SubprocessOptions::kill_on_drop`] it is killed first.
///
/// Unlike asyncio's, [`wait`](Process::wait) finishes when the child exits, even if a
/// grandchild still holds its pipes open.
pub struct Process {
    watch: Rc<ChildWatch>,
    /// The child's stdin, if it is a pipe ([`Redirect::Pipe`]).
    pub stdin: Option<StreamWriter>,
    /// The child's stdout, if it is a pipe.
    pub stdout: Option<StreamReader>,
    /// The child's stderr, if it is a pipe.
    pub stderr: Option<StreamReader>,
    kill_on_drop: bool,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid())
            .field("returncode", &self.returncode())
            .finish_non_exhaustive()
    }
}

/// Runs `program` with `args` (asyncio's `create_subprocess_exec`), on the running loop.
///
/// ```
/// use tulip::unix::{Redirect, SubprocessOptions};
/// # tulip::run(async {
/// let mut p = tulip::create_subprocess_exec(
///     "echo",
///     ["hello"],
///     SubprocessOptions::new().stdout(Redirect::Pipe),
/// )
/// .await?;
/// let (out, _) = p.communicate(None).await?;
/// assert_eq!(out.as_deref(), Some(&b"hello\n"[..]));
/// assert_eq!(p.returncode(), Some(0));
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
///
/// # Errors
/// A spawn failure (`NotFound` for a missing program or directory, `PermissionDenied`, …)
/// with a message naming the program; `InvalidInput` for stdin or stdout redirected to
/// stdout; `EMFILE` when out of descriptors.
///
/// # Panics
/// Outside a running loop.
///
/// # Cancel safety
/// The child is spawned when this is first polled, and the call completes then.
pub async fn create_subprocess_exec<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    options: SubprocessOptions,
) -> io::Result<Process>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref();
    let mut cmd = Command::new(program);
    cmd.args(args);
    Process::spawn(cmd, program, options)
}

/// Runs `cmd` with the shell, `/bin/sh -c cmd` (asyncio's `create_subprocess_shell`).
///
/// # Errors
/// As [`create_subprocess_exec`] (a missing command is the shell's exit status 127, not an
/// error).
///
/// # Panics
/// Outside a running loop.
///
/// # Cancel safety
/// As [`create_subprocess_exec`].
pub async fn create_subprocess_shell(
    cmd: impl AsRef<OsStr>,
    options: SubprocessOptions,
) -> io::Result<Process> {
    Process::spawn(shell_command(cmd.as_ref()), OsStr::new("/bin/sh"), options)
}

impl Process {
    fn spawn(cmd: Command, program: &OsStr, options: SubprocessOptions) -> io::Result<Process> {
        let lp = get_running_loop();
        let (limit, kill_on_drop) = (options.limit, options.kill_on_drop);
        let s = spawn(&lp, cmd, program, options)?;
        Ok(Process {
            watch: s.watch,
            stdin: s.stdin.map(|fd| pipe_pair(&lp, fd, false, limit).1),
            stdout: s.stdout.map(|fd| pipe_pair(&lp, fd, true, limit).0),
            stderr: s.stderr.map(|fd| pipe_pair(&lp, fd, true, limit).0),
            kill_on_drop,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.watch.pid()
    }

    /// The exit code once the child has exited and was reaped, or minus the signal number
    /// that killed it (asyncio's `returncode`); `None` while it runs.
    pub fn returncode(&self) -> Option<i32> {
        self.watch.status().map(returncode)
    }

    /// The exit status, once the child was reaped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.watch.status()
    }

    /// Waits for the child to exit; returns its [`returncode`](Process::returncode).
    ///
    /// It does not wait for the pipes: read them first (or use
    /// [`communicate`](Process::communicate)) if the child writes more than a pipe holds,
    /// or it may block writing while you wait.
    pub fn wait(&self) -> Wait<'_> {
        Wait { watch: &self.watch }
    }

    /// Writes `input` to stdin (if given), closes stdin, reads stdout and stderr until EOF —
    /// all three at once, so a child writing much while reading much never deadlocks — then
    /// waits for the exit (asyncio's `communicate`). Returns what stdout and stderr gave,
    /// `None` for those that are not pipes.
    ///
    /// A child that exits without reading all its input is not an error (`BrokenPipe` on
    /// stdin is ignored, as asyncio does).
    ///
    /// # Errors
    /// A read or write error on a pipe.
    ///
    /// # Cancel safety
    /// Not cancel-safe, as asyncio's: dropping it closes stdin (it was taken), and what it
    /// had read from stdout and stderr is lost; what arrives later stays for the readers.
    pub fn communicate<'a>(&'a mut self, input: Option<&'a [u8]>) -> Communicate<'a> {
        Communicate {
            inner: Box::pin(communicate(self, input)),
        }
    }

    /// Sends `signal` (a signal number, e.g. [`SIGHUP`](crate::unix::SIGHUP)) to the child;
    /// nothing if it has exited already (as Python's `Popen.send_signal`).
    ///
    /// # Errors
    /// `EINVAL` for a bad signal number, `EPERM`.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        self.watch.send_signal(signal)
    }

    /// Sends `SIGTERM`.
    ///
    /// # Errors
    /// As [`send_signal`](Process::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.watch.send_signal(sys::SIGTERM)
    }

    /// Sends `SIGKILL`.
    ///
    /// # Errors
    /// As [`send_signal`](Process::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.watch.send_signal(sys::SIGKILL)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.kill_on_drop && self.watch.status().is_none() {
            let _ = self.watch.send_signal(sys::SIGKILL);
        }
    }
}

async fn communicate(
    p: &mut Process,
    input: Option<&[u8]>,
) -> io::Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
    let stdin = p.stdin.take();
    let Process {
        stdout,
        stderr,
        watch,
        ..
    } = p;
    let feed = async move {
        match stdin {
            Some(w) => feed(w, input.unwrap_or_default()).await,
            None => Ok(()),
        }
    };
    // The readers are polled before the writer: emptying the child's stdout first lets it
    // go on writing while we fill its stdin, so one wake-up of the child moves one chunk
    // each way (writing first woke it twice per chunk here: once for the input, once more
    // for the room in its stdout; tokio's order, measured with `perf stat`).
    let (out, err, fed) = join3(read_all(stdout.as_mut()), read_all(stderr.as_mut()), feed).await;
    fed?;
    let (out, err) = (out?, err?);
    Wait { watch }.await;
    Ok((out, err))
}

/// Writes `input` to the child's stdin, then closes it. Straight from `input` while the
/// transport lets us write around it (its sendfile hook: nothing else writes meanwhile), as
/// much as the pipe takes at a time; else in chunks through the transport.
async fn feed(w: StreamWriter, input: &[u8]) -> io::Result<()> {
    let r = match DirectWrite::begin(w.transport()) {
        Some(d) => d.write_all(input).await,
        None => feed_buffered(&w, input).await,
    };
    w.close();
    match r {
        Err(e) if is_gone(&e) => Ok(()),
        r => r,
    }
}

/// [`feed`] through the transport's write buffer, one chunk at a time.
async fn feed_buffered(w: &StreamWriter, input: &[u8]) -> io::Result<()> {
    // Water marks at 0: `drain` waits until the buffer is empty, so each chunk is tried
    // straight on the pipe first and the buffer never holds a copy of all of `input`.
    let _ = w.transport().set_write_buffer_limits(Some(0), Some(0));
    for chunk in input.chunks(FEED_CHUNK) {
        w.write(chunk);
        w.drain().await?;
    }
    Ok(())
}

/// Writes on a pipe transport's descriptor directly, from the caller's slice (no copy into
/// the write buffer), while the transport's sendfile hook holds its own writes back; the hook
/// also waits for the pipe to be writable. Dropping it (done, or `communicate` cancelled)
/// ends the hold, so a `close` waiting for it goes on.
struct DirectWrite {
    t: Transport,
    fd: TransportFd,
}

impl DirectWrite {
    /// `None` where the transport has no hook or it cannot begin (closing, busy).
    fn begin(t: &Transport) -> Option<DirectWrite> {
        let Some(ExtraInfo::Pipe(fd)) = t.get_extra_info("pipe") else {
            return None;
        };
        t.inner.zero_copy()?.begin().ok()?;
        Some(DirectWrite { t: t.clone(), fd })
    }

    async fn write_all(&self, input: &[u8]) -> io::Result<()> {
        // What was written to stdin before (and still waits in the transport's buffer) goes
        // first.
        poll_fn(|cx| match self.t.inner.zero_copy() {
            Some(hook) => hook.poll_flushed(cx),
            None => Poll::Ready(Err(stdin_closed())),
        })
        .await?;
        let mut off = 0;
        poll_fn(|cx| {
            // Polled with the pipe still full (the readers share our task): wait on.
            if let Some(hook) = self.t.inner.zero_copy() {
                if hook.is_waiting() {
                    hook.wait_writable(cx);
                    return Poll::Pending;
                }
            }
            for _ in 0..WRITE_BUDGET {
                if off == input.len() {
                    return Poll::Ready(Ok(()));
                }
                let Some(hook) = self.t.inner.zero_copy() else {
                    return Poll::Ready(Err(stdin_closed()));
                };
                let rest = &input[off..];
                match self.fd.with_fd(|fd| sys::write(fd.as_raw_fd(), rest)) {
                    // The transport closed the pipe (its reader went away).
                    None => return Poll::Ready(Err(stdin_closed())),
                    Some(Ok(n)) if n == rest.len() => off += n,
                    // A short write: the pipe is full (another write would be `EAGAIN`).
                    // Readiness is level-triggered: if it has room again, we hear at once.
                    Some(Ok(n)) => {
                        off += n;
                        hook.wait_writable(cx);
                        return Poll::Pending;
                    }
                    Some(Err(e)) if sys::is_would_block(&e) => {
                        hook.wait_writable(cx);
                        return Poll::Pending;
                    }
                    Some(Err(e)) => return Poll::Ready(Err(e)),
                }
            }
            // The pipe keeps taking it: let the readers run too.
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }
}

impl Drop for DirectWrite {
    fn drop(&mut self) {
        if let Some(hook) = self.t.inner.zero_copy() {
            hook.end();
        }
    }
}

/// How many direct writes `communicate` makes before it lets other tasks run.
const WRITE_BUDGET: usize = 16;

fn stdin_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the child's stdin was closed")
}

/// Everything `r` gives until EOF (`None` without a reader), read straight into the
/// vector returned: the stream reader receives into it directly once reads are large, with
/// no copy through the loop's shared buffer and the stream's buffer.
async fn read_all(r: Option<&mut StreamReader>) -> io::Result<Option<Vec<u8>>> {
    let Some(r) = r else { return Ok(None) };
    // Read into the vector's spare capacity: nothing is zeroed ahead of the data.
    let mut out = Vec::new();
    loop {
        let room = out.len().clamp(READ_MIN, READ_MAX);
        let n = poll_fn(|cx| r.poll_read_spare(cx, &mut out, room)).await?;
        if n == 0 {
            if out.capacity() - out.len() > READ_MIN {
                out.shrink_to_fit();
            }
            return Ok(Some(out));
        }
    }
}

/// The room `read_all` reads into at first, and the most it reads at a time (the vector
/// grows as it does, doubling its capacity).
const READ_MIN: usize = 16 * 1024;
const READ_MAX: usize = 1024 * 1024;

/// How much of `communicate`'s input is written at a time through the transport (a pipe's
/// capacity on Linux).
const FEED_CHUNK: usize = 64 * 1024;

/// The child is gone: what writing to its stdin gets then.
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// Polls three futures together until all are done.
async fn join3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> (A::Output, B::Output, C::Output) {
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if rc.is_none() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                rc = Some(v);
            }
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(a), Some(b), Some(c)) => Poll::Ready((a, b, c)),
            (x, y, z) => {
                (ra, rb, rc) = (x, y, z);
                Poll::Pending
            }
        }
    })
    .await
}

/// The future of [`Process::wait`]: the child's returncode once it exited.
///
/// # Cancel safety
/// Cancel-safe: it only watches; the child is reaped either way.
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    watch: &'a ChildWatch,
}

impl Future for Wait<'_> {
    type Output = i32;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<i32> {
        self.watch.poll_exit(cx).map(returncode)
    }
}

impl fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("pid", &self.watch.pid())
            .finish()
    }
}

/// What [`Process::communicate`] returns: what stdout and stderr gave (`None` for those
/// that are not pipes).
pub type Communicated = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The future of [`Process::communicate`].
///
/// # Cancel safety
/// See [`Process::communicate`].
#[must_use = "futures do nothing unless polled"]
pub struct Communicate<'a> {
    inner: Pin<Box<dyn Future<Output = io::Result<Communicated>> + 'a>>,
}

impl Future for Communicate<'_> {
    type Output = io::Result<Communicated>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for Communicate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Communicate").finish_non_exhaustive()
    }
}
