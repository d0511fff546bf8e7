//! The protocol level: `subprocess_exec` / `subprocess_shell`, `SubprocessProtocol`'s call
//! order, and `SubprocessTransport`'s methods. Translated from CPython's
//! `Lib/test/test_asyncio/test_events.py` (`SubprocessTestsMixin`) and `test_subprocess.py`.
#![cfg(unix)]

mod support;

use std::io;

use tulip::unix::{Redirect, SubprocessOptions};
use tulip::{
    LoopFuture, ProtocolRef, SubprocessProtocol, SubprocessTransport, subprocess_exec,
    subprocess_shell,
};

/// Records every call, and completes `done` at `connection_lost`.
struct Recorder {
    events: Vec<String>,
    out: Vec<u8>,
    err: Vec<u8>,
    transport: Option<SubprocessTransport>,
    exited: LoopFuture<()>,
    done: LoopFuture<()>,
}

impl Recorder {
    fn new() -> Recorder {
        let lp = tulip::get_running_loop();
        Recorder {
            events: Vec::new(),
            out: Vec::new(),
            err: Vec::new(),
            transport: None,
            exited: lp.create_future(),
            done: lp.create_future(),
        }
    }
}

impl SubprocessProtocol for Recorder {
    fn connection_made(&mut self, t: &SubprocessTransport) {
        self.events.push("connection_made".into());
        self.transport = Some(t.clone());
    }
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let last = format!("pipe_data_received {fd}");
        if self.events.last() != Some(&last) {
            self.events.push(last);
        }
        match fd {
            1 => self.out.extend_from_slice(data),
            _ => self.err.extend_from_slice(data),
        }
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        assert!(exc.is_none(), "{exc:?}");
        self.events.push(format!("pipe_connection_lost {fd}"));
    }
    fn process_exited(&mut self) {
        self.events.push("process_exited".into());
        self.exited.set_result(());
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        assert!(exc.is_none(), "{exc:?}");
        self.events.push("connection_lost".into());
        self.done.set_result(());
    }
}

fn piped() -> SubprocessOptions {
    SubprocessOptions::new()
        .stdin(Redirect::Pipe)
        .stdout(Redirect::Pipe)
        .stderr(Redirect::Pipe)
}

async fn finished(p: &ProtocolRef<Recorder>) {
    let done = p.with(|r| r.done.clone());
    done.await.expect("connection_lost");
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_interactive
#[tulip::test]
async fn interactive_cat() -> io::Result<()> {
    let _w = support::watchdog("interactive_cat", 20);
    let (t, p) = subprocess_exec(Recorder::new, "cat", [""; 0], piped()).await?;
    assert_eq!(p.with(|r| r.events.clone()), ["connection_made"]);
    let stdin = t.get_pipe_transport(0).expect("stdin");
    assert!(t.get_pipe_transport(3).is_none());
    stdin.write(b"Python ");
    for _ in 0..200 {
        if p.with(|r| r.out.len()) == 7 {
            break;
        }
        tulip::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(p.with(|r| r.out.clone()), b"Python ");
    stdin.write(b"The Winner");
    // CPython: test_events.py SubprocessTestsMixin.test_subprocess_close_client_stream
    stdin.close();
    finished(&p).await;
    assert_eq!(p.with(|r| r.out.clone()), b"Python The Winner");
    assert_eq!(t.get_returncode(), Some(0));
    Ok(())
}

/// Every call, in asyncio's order: connection_made first; per fd data before its
/// pipe_connection_lost; connection_lost last, after process_exited and every pipe.
// CPython: test_subprocess.py SubprocessMixin.test_subprocess_consistent_callbacks
#[tulip::test]
async fn consistent_callbacks() -> io::Result<()> {
    let _w = support::watchdog("consistent_callbacks", 20);
    let (t, p) = subprocess_shell(
        Recorder::new,
        "printf stdout; printf stderr >&2",
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .stderr(Redirect::Pipe),
    )
    .await?;
    finished(&p).await;
    let ev = p.with(|r| r.events.clone());
    assert_eq!(ev.first().map(String::as_str), Some("connection_made"));
    assert_eq!(ev.last().map(String::as_str), Some("connection_lost"));
    let at = |s: &str| {
        ev.iter()
            .position(|e| e == s)
            .unwrap_or_else(|| panic!("{s}: {ev:?}"))
    };
    for fd in [1, 2] {
        assert!(
            at(&format!("pipe_data_received {fd}")) < at(&format!("pipe_connection_lost {fd}"))
        );
    }
    assert!(at("process_exited") < at("connection_lost"));
    assert_eq!(ev.len(), 7, "{ev:?}");
    assert_eq!(
        p.with(|r| (r.out.clone(), r.err.clone())),
        (b"stdout".to_vec(), b"stderr".to_vec())
    );
    assert_eq!(t.get_returncode(), Some(0));
    // The pipes are let go of once it is over.
    assert!(t.get_pipe_transport(1).is_none());
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_exitcode
#[tulip::test]
async fn exitcode() -> io::Result<()> {
    let _w = support::watchdog("exitcode", 20);
    let (t, p) = subprocess_shell(Recorder::new, "exit 7", SubprocessOptions::new()).await?;
    finished(&p).await;
    assert_eq!(t.get_returncode(), Some(7));
    assert_eq!(
        p.with(|r| r.events.clone()),
        ["connection_made", "process_exited", "connection_lost"]
    );
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_close_after_finish
#[tulip::test]
async fn close_after_finish() -> io::Result<()> {
    let _w = support::watchdog("close_after_finish", 20);
    let (t, p) = subprocess_exec(Recorder::new, "true", [""; 0], piped()).await?;
    finished(&p).await;
    assert!(!t.is_closing());
    t.close();
    assert!(t.is_closing());
    assert_eq!(t.get_returncode(), Some(0));
    assert!(t.get_pipe_transport(0).is_none());
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_kill
#[tulip::test]
async fn kill() -> io::Result<()> {
    let _w = support::watchdog("kill", 20);
    let (t, p) = subprocess_exec(Recorder::new, "sleep", ["60"], SubprocessOptions::new()).await?;
    t.kill()?;
    finished(&p).await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_terminate
#[tulip::test]
async fn terminate() -> io::Result<()> {
    let _w = support::watchdog("terminate", 20);
    let (t, p) = subprocess_exec(Recorder::new, "sleep", ["60"], SubprocessOptions::new()).await?;
    t.terminate()?;
    finished(&p).await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGTERM));
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_send_signal
#[tulip::test]
async fn send_signal() -> io::Result<()> {
    let _w = support::watchdog("send_signal", 20);
    let (t, p) = subprocess_exec(Recorder::new, "sleep", ["60"], SubprocessOptions::new()).await?;
    t.send_signal(libc::SIGHUP)?;
    finished(&p).await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGHUP));
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_close_kill_running
#[tulip::test]
async fn close_kills_running() -> io::Result<()> {
    let _w = support::watchdog("close_kills_running", 20);
    let (t, p) = subprocess_exec(Recorder::new, "sleep", ["60"], piped()).await?;
    t.close();
    finished(&p).await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    let ev = p.with(|r| r.events.clone());
    for fd in 0..3 {
        assert!(ev.contains(&format!("pipe_connection_lost {fd}")), "{ev:?}");
    }
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_close_dont_kill_finished
#[tulip::test]
async fn close_dont_kill_finished() -> io::Result<()> {
    let _w = support::watchdog("close_dont_kill_finished", 20);
    let (t, p) = subprocess_exec(Recorder::new, "true", [""; 0], SubprocessOptions::new()).await?;
    let exited = p.with(|r| r.exited.clone());
    exited.await.expect("exited");
    t.close();
    finished(&p).await;
    assert_eq!(t.get_returncode(), Some(0));
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_stderr_redirect_to_stdout
#[tulip::test]
async fn stderr_redirect_to_stdout() -> io::Result<()> {
    let _w = support::watchdog("stderr_redirect_to_stdout", 20);
    let (t, p) = subprocess_shell(
        Recorder::new,
        "echo out; echo err >&2",
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .stderr(Redirect::Stdout),
    )
    .await?;
    assert!(t.get_pipe_transport(2).is_none());
    finished(&p).await;
    assert_eq!(p.with(|r| r.out.clone()), b"out\nerr\n");
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_exec_invalid_args (ENOENT)
#[tulip::test]
async fn spawn_error() -> io::Result<()> {
    let _w = support::watchdog("spawn_error", 20);
    let e = subprocess_exec(Recorder::new, "/nonexistent/tulip-x", [""; 0], piped())
        .await
        .expect_err("ENOENT");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("tulip-x"), "{e}");
    Ok(())
}

/// A panic in the protocol is reported, and closes the transport: the child is killed.
#[tulip::test]
async fn a_panicking_protocol_closes_the_transport() -> io::Result<()> {
    let _w = support::watchdog("a_panicking_protocol_closes_the_transport", 20);
    struct Panics;
    impl SubprocessProtocol for Panics {
        fn pipe_data_received(&mut self, _fd: i32, _data: &[u8]) {
            panic!("boom");
        }
    }
    let lp = tulip::get_running_loop();
    let seen = std::rc::Rc::new(std::cell::Cell::new(false));
    let s2 = seen.clone();
    lp.set_exception_handler(move |_, ctx| {
        if ctx.panic_message() == Some("boom") {
            s2.set(true);
        }
    });
    let (t, _p) = subprocess_shell(
        || Panics,
        "echo hi; sleep 60",
        SubprocessOptions::new().stdout(Redirect::Pipe),
    )
    .await?;
    for _ in 0..400 {
        if t.get_returncode().is_some() {
            break;
        }
        tulip::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(seen.get(), "the panic was reported");
    assert!(t.is_closing());
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    Ok(())
}
