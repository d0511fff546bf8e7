//! The subprocess transport (asyncio's `base_subprocess.py` and `_UnixSubprocessTransport`):
//! a child watch plus one pipe transport per piped stdio stream, driving a
//! [`SubprocessProtocol`].
//!
//! Each pipe transport runs a small protocol that forwards to the user's protocol with the
//! pipe's fd number (asyncio's `ReadSubprocessPipeProto` / `WriteSubprocessPipeProto`).
//! `connection_lost` comes only once every pipe was lost and the process exited
//! (`_try_finish`). The user's protocol sits in a cell of its own; it is called with no other
//! borrow held, and a panic in it is reported and closes the transport (which kills the
//! child).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::rc::{Rc, Weak};

use super::child::ChildWatch;
use super::process::{SubprocessOptions, returncode, shell_command, spawn};
use crate::event_loop::{EventLoop, get_running_loop};
use crate::protocols::{Protocol, SubprocessProtocol};
use crate::transports::proto::{ProtoCell, ProtoObj, ReadFn, ReadOutcome, report_panic};
use crate::transports::socket::SocketIo;
use crate::transports::{ProtoRc, ProtocolRef, StreamProtocol, Transport, pipe};

/// One call into the user's protocol.
enum Call<'a> {
    Made(&'a SubprocessTransport),
    Data(i32, &'a [u8]),
    PipeLost(i32, Option<io::Error>),
    Exited,
    Lost,
    PauseWriting,
    ResumeWriting,
}

/// Delivers `call` to the protocol of type `P` behind `any`.
fn dispatch<P: SubprocessProtocol>(any: &mut dyn Any, call: Call<'_>) {
    let Some(p) = any.downcast_mut::<P>() else {
        return;
    };
    match call {
        Call::Made(t) => p.connection_made(t),
        Call::Data(fd, d) => p.pipe_data_received(fd, d),
        Call::PipeLost(fd, e) => p.pipe_connection_lost(fd, e),
        Call::Exited => p.process_exited(),
        Call::Lost => p.connection_lost(None),
        Call::PauseWriting => p.pause_writing(),
        Call::ResumeWriting => p.resume_writing(),
    }
}

/// The user's protocol in a protocol cell, so that [`ProtocolRef`] reaches it as it reaches
/// a stream protocol. No transport calls its stream methods: they do nothing.
struct Held<P>(P);

impl<P: SubprocessProtocol> ProtoObj for Held<P> {
    fn connection_made(&mut self, _t: &Transport) {}
    fn read(&mut self, _read: &mut ReadFn<'_>, _shared: &mut [u8]) -> ReadOutcome {
        ReadOutcome::WouldBlock
    }
    fn read_socket(&mut self, _io: &SocketIo, _shared: &mut [u8]) -> ReadOutcome {
        ReadOutcome::WouldBlock
    }
    fn feed(&mut self, _data: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn eof_received(&mut self) -> bool {
        false
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {}
    fn pause_writing(&mut self) {}
    fn resume_writing(&mut self) {}
    fn as_any(&mut self) -> &mut dyn Any {
        &mut self.0
    }
}

/// The transport's state.
struct Inner {
    lp: EventLoop,
    watch: Rc<ChildWatch>,
    protocol: RefCell<Option<ProtoRc>>,
    dispatch: fn(&mut dyn Any, Call<'_>),
    /// The pipe transports of fds 0, 1, 2 (those that are pipes).
    pipes: RefCell<[Option<Transport>; 3]>,
    /// Which pipes are still connected.
    open: [Cell<bool>; 3],
    exited: Cell<bool>,
    /// `connection_lost` was scheduled.
    finished: Cell<bool>,
    /// `close()` was called.
    closed: Cell<bool>,
}

/// A child process and its pipes, as a [`SubprocessProtocol`] sees them (asyncio's
/// `SubprocessTransport`). A cheap clonable handle.
///
/// The child is watched by the loop whatever happens to the handles: it is reaped when it
/// exits. Dropping every handle does not kill it; [`close`](SubprocessTransport::close) does.
///
/// When the child exits, its stdin pipe is closed (after what is buffered, if the pipe
/// still takes it), so that `connection_lost` follows once stdout and stderr reach EOF.
#[derive(Clone)]
pub struct SubprocessTransport {
    inner: Rc<Inner>,
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubprocessTransport")
            .field("pid", &self.get_pid())
            .field("returncode", &self.get_returncode())
            .field("closing", &self.is_closing())
            .finish()
    }
}

/// The protocol of one pipe transport: forwards to the subprocess protocol with its fd.
struct PipeProto {
    fd: i32,
    owner: Weak<Inner>,
}

impl Protocol for PipeProto {
    fn data_received(&mut self, data: &[u8]) {
        if let Some(o) = self.owner.upgrade() {
            o.call(Call::Data(self.fd, data));
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(o) = self.owner.upgrade() {
            o.pipe_lost(self.fd, exc);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(o) = self.owner.upgrade() {
            o.call(Call::PauseWriting);
        }
    }

    fn resume_writing(&mut self) {
        if let Some(o) = self.owner.upgrade() {
            o.call(Call::ResumeWriting);
        }
    }
}

impl Inner {
    /// Calls the user's protocol (none after `connection_lost`). A panic is reported, and
    /// closes the transport.
    fn call(self: &Rc<Self>, call: Call<'_>) {
        let Some(p) = self.protocol.borrow().clone() else {
            return;
        };
        let r = match p.cell.try_borrow_mut() {
            Ok(mut g) => catch_unwind(AssertUnwindSafe(|| (self.dispatch)(g.as_any(), call))),
            // Busy in one of its own callbacks: cannot happen (every call comes from the
            // loop), but never a borrow panic.
            Err(_) => return,
        };
        if let Err(payload) = r {
            report_panic(&self.lp, payload);
            SubprocessTransport {
                inner: self.clone(),
            }
            .close();
        }
    }

    fn pipe_lost(self: &Rc<Self>, fd: i32, exc: Option<io::Error>) {
        let Some(open) = usize::try_from(fd).ok().and_then(|i| self.open.get(i)) else {
            return;
        };
        if !open.replace(false) {
            return;
        }
        self.call(Call::PipeLost(fd, exc));
        self.try_finish();
    }

    fn process_exited(self: &Rc<Self>) {
        self.exited.set(true);
        self.call(Call::Exited);
        // Nobody reads the stdin pipe any more: close it (what is buffered is still tried),
        // or `connection_lost` would wait for ever — the pipe transport does not watch a
        // write end for the reader's hang-up (asyncio's `_UnixWritePipeTransport` does).
        let stdin = self.pipes.borrow()[0].clone();
        if let Some(t) = stdin.filter(|_| self.open[0].get()) {
            t.close();
        }
        self.try_finish();
    }

    /// `connection_lost`, once every pipe is lost and the process exited.
    fn try_finish(self: &Rc<Self>) {
        if self.finished.get() || !self.exited.get() || self.open.iter().any(Cell::get) {
            return;
        }
        self.finished.set(true);
        let me = self.clone();
        self.lp.call_soon(move || {
            me.call(Call::Lost);
            // Let go of the protocol (its `Drop` runs with no borrow held) and the pipes.
            let p = me.protocol.borrow_mut().take();
            drop(p);
            let pipes = std::mem::take(&mut *me.pipes.borrow_mut());
            drop(pipes);
        });
    }
}

impl SubprocessTransport {
    /// The child's process id (asyncio's `get_pid`).
    pub fn get_pid(&self) -> u32 {
        self.inner.watch.pid()
    }

    /// The exit code, or minus the signal number that killed the child; `None` while it
    /// runs (asyncio's `get_returncode`).
    pub fn get_returncode(&self) -> Option<i32> {
        self.inner.watch.status().map(returncode)
    }

    /// The pipe transport of `fd` (0: stdin, 1: stdout, 2: stderr), if that stream is a pipe
    /// and the transport is not finished (asyncio's `get_pipe_transport`).
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Transport> {
        let i = usize::try_from(fd).ok()?;
        self.inner.pipes.borrow().get(i)?.clone()
    }

    /// Sends `signal` (a signal number, e.g. [`SIGHUP`](crate::unix::SIGHUP)); nothing if the
    /// child has exited.
    ///
    /// # Errors
    /// `EINVAL` for a bad signal number, `EPERM`.
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        self.inner.watch.send_signal(signal)
    }

    /// Sends `SIGTERM`.
    ///
    /// # Errors
    /// As [`send_signal`](SubprocessTransport::send_signal).
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(crate::sys::SIGTERM)
    }

    /// Sends `SIGKILL`.
    ///
    /// # Errors
    /// As [`send_signal`](SubprocessTransport::send_signal).
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(crate::sys::SIGKILL)
    }

    /// Closes the pipes and kills the child if it still runs (as asyncio does); the
    /// protocol hears `pipe_connection_lost` for each pipe, `process_exited`, then
    /// `connection_lost`.
    pub fn close(&self) {
        if self.inner.closed.replace(true) {
            return;
        }
        let pipes = self.inner.pipes.borrow().clone();
        for t in pipes.iter().flatten() {
            t.close();
        }
        if self.inner.watch.status().is_none() {
            let _ = self.inner.watch.send_signal(crate::sys::SIGKILL);
        }
    }

    /// Whether [`close`](SubprocessTransport::close) was called.
    pub fn is_closing(&self) -> bool {
        self.inner.closed.get()
    }
}

/// Runs `program` with `args` under a [`SubprocessProtocol`] made by `protocol_factory`
/// (asyncio's `loop.subprocess_exec`). Resolves once the protocol's `connection_made` ran.
///
/// Options as [`create_subprocess_exec`](crate::create_subprocess_exec) (`limit` and
/// `kill_on_drop` do not apply here).
///
/// # Errors
/// As [`create_subprocess_exec`](crate::create_subprocess_exec).
///
/// # Panics
/// Outside a running loop.
///
/// # Cancel safety
/// Dropped before it resolves, the transport is closed (the child killed, and reaped).
pub async fn subprocess_exec<P, F, I, S>(
    protocol_factory: F,
    program: impl AsRef<OsStr>,
    args: I,
    options: SubprocessOptions,
) -> io::Result<(SubprocessTransport, ProtocolRef<P>)>
where
    P: SubprocessProtocol,
    F: FnOnce() -> P,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref();
    let mut cmd = Command::new(program);
    cmd.args(args);
    start(protocol_factory, cmd, program, options).await
}

/// Runs `cmd` with the shell (`/bin/sh -c cmd`) under a [`SubprocessProtocol`] (asyncio's
/// `loop.subprocess_shell`).
///
/// # Errors
/// As [`subprocess_exec`].
///
/// # Panics
/// Outside a running loop.
///
/// # Cancel safety
/// As [`subprocess_exec`].
pub async fn subprocess_shell<P, F>(
    protocol_factory: F,
    cmd: impl AsRef<OsStr>,
    options: SubprocessOptions,
) -> io::Result<(SubprocessTransport, ProtocolRef<P>)>
where
    P: SubprocessProtocol,
    F: FnOnce() -> P,
{
    start(
        protocol_factory,
        shell_command(cmd.as_ref()),
        OsStr::new("/bin/sh"),
        options,
    )
    .await
}

/// Closes the transport unless disarmed: a `subprocess_exec` dropped before it resolved.
struct CloseOnDrop(Option<SubprocessTransport>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.close();
        }
    }
}

async fn start<P, F>(
    protocol_factory: F,
    cmd: Command,
    program: &OsStr,
    options: SubprocessOptions,
) -> io::Result<(SubprocessTransport, ProtocolRef<P>)>
where
    P: SubprocessProtocol,
    F: FnOnce() -> P,
{
    let lp = get_running_loop();
    let s = spawn(&lp, cmd, program, options)?;
    let obj: ProtoRc = Rc::new(ProtoCell {
        type_id: std::any::TypeId::of::<P>(),
        cell: RefCell::new(Held(protocol_factory())),
    });
    let inner = Rc::new(Inner {
        lp: lp.clone(),
        watch: s.watch,
        protocol: RefCell::new(Some(obj.clone())),
        dispatch: dispatch::<P>,
        pipes: RefCell::new([None, None, None]),
        open: [
            Cell::new(s.stdin.is_some()),
            Cell::new(s.stdout.is_some()),
            Cell::new(s.stderr.is_some()),
        ],
        exited: Cell::new(false),
        finished: Cell::new(false),
        closed: Cell::new(false),
    });
    let t = SubprocessTransport {
        inner: inner.clone(),
    };
    let guard = CloseOnDrop(Some(t.clone()));
    // The pipes start (call_soon) before the protocol's `connection_made` is called, and
    // read only from the next iteration on: no pipe data comes before it.
    let fds = [
        (0, s.stdin, false),
        (1, s.stdout, true),
        (2, s.stderr, true),
    ];
    for (fd, end, reads) in fds {
        let Some(end) = end else { continue };
        let proto = PipeProto {
            fd,
            owner: Rc::downgrade(&inner),
        };
        let obj = <PipeProto as StreamProtocol>::into_obj(proto);
        let pt = pipe::start(&lp, end, reads, obj).handle();
        inner.pipes.borrow_mut()[fd as usize] = Some(pt);
    }
    let made = lp.create_future::<()>();
    let (t2, made2) = (t.clone(), made.clone());
    lp.call_soon(move || {
        let inner = &t2.inner;
        inner.call(Call::Made(&t2));
        // The exit is delivered after `connection_made`, even if it came first.
        let i2 = inner.clone();
        inner
            .watch
            .set_on_exit(Box::new(move |_| i2.process_exited()));
        if !made2.done() {
            made2.set_result(());
        }
    });
    made.await?;
    let mut guard = guard;
    let t = guard.0.take().unwrap_or(t);
    Ok((t, ProtocolRef::new(obj)))
}
