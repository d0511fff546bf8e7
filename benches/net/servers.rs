//! The registry of servers under test and how one is run: in a thread of this process (for the
//! timed workloads) or as this process (`--serve`, for callgrind and the memory workload).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys;
use crate::{echo, http, hyper_http, mem, per_core, tls, udp, udp_flood};

/// Stops a running server from another thread.
pub type Stop = Box<dyn FnOnce() + Send>;
/// Called by a server once it listens: its address and how to stop it.
pub type Ready = Box<dyn FnOnce(SocketAddr, Stop) + Send>;

/// One server under test.
#[derive(Debug)]
pub struct Server {
    /// Short id, for `--only=` and `--serve`.
    pub id: &'static str,
    /// What the table shows.
    pub name: &'static str,
    /// Runs the server on `addr` in the calling thread until stopped.
    pub serve: fn(SocketAddr, Ready) -> io::Result<()>,
}

impl PartialEq for Server {
    fn eq(&self, other: &Server) -> bool {
        self.id == other.id
    }
}

/// Every server of every workload family.
pub fn all() -> impl Iterator<Item = &'static Server> {
    echo::SERVERS
        .iter()
        .chain(http::SERVERS)
        .chain(hyper_http::SERVERS)
        .chain(tls::SERVERS)
        .chain(per_core::SERVERS)
        .chain(mem::SERVERS)
        .chain(udp::SERVERS)
        .chain(udp_flood::SERVERS)
}

pub fn find(id: &str) -> Option<&'static Server> {
    all().find(|s| s.id == id)
}

/// A server running in its own thread.
pub struct Running {
    pub addr: SocketAddr,
    stop: Stop,
    thread: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Starts `server` on 127.0.0.1 (a free port) in a new thread, pinned to `cpu` if given
    /// (threads the server starts inherit the pinning), or free to run on every CPU.
    pub fn start(server: &'static Server, cpu: Option<usize>) -> io::Result<Running> {
        let (tx, rx) = mpsc::channel::<(SocketAddr, Stop)>();
        let thread = std::thread::Builder::new()
            .name(format!("server-{}", server.id))
            .spawn(move || {
                match cpu {
                    Some(cpu) => sys::pin_warn("server thread", cpu),
                    None => {
                        sys::unpin().ok();
                    }
                }
                let any: SocketAddr = ([127, 0, 0, 1], 0).into();
                (server.serve)(
                    any,
                    Box::new(move |addr, stop| {
                        let _ = tx.send((addr, stop));
                    }),
                )
            })?;
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((addr, stop)) => Ok(Running { addr, stop, thread }),
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => io::Error::other(format!("{} server did not start", server.id)),
            }),
        }
    }

    pub fn stop(self) -> io::Result<()> {
        (self.stop)();
        self.thread
            .join()
            .map_err(|_| io::Error::other("server thread panicked"))?
    }
}

/// `--serve ID ADDR`: one server in this thread, pinned to the server CPU, until the process
/// is killed. Prints `listening on IP:PORT` once it listens.
pub fn serve_forever(server: &'static Server, addr: SocketAddr) -> io::Result<()> {
    sys::pin_warn("server", sys::SERVER_CPU);
    (server.serve)(
        addr,
        Box::new(|local, stop| {
            println!("listening on {local}");
            io::stdout().flush().ok();
            // Never stopped: the process is killed.
            std::mem::forget(stop);
        }),
    )
}

/// A server running as a child process: this benchmark binary with `--serve ID 127.0.0.1:0`,
/// possibly under a wrapper (`valgrind …`).
pub struct ChildServer {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl ChildServer {
    pub fn spawn(wrapper: &[String], id: &str) -> io::Result<ChildServer> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe()?;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let mut child = cmd
            .args(["--serve", id, "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut line = String::new();
        io::BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(ChildServer { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!(
                    "server {id} did not start: {line:?}"
                )))
            }
        }
    }

    /// Asks the server to end with SIGTERM (callgrind writes its profile then) and waits.
    pub fn terminate(mut self) -> io::Result<()> {
        // SAFETY: kill only sends a signal to our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().map(drop)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
