//! Shared by the signal tests: each test runs alone in a new process of its test binary
//! (signal dispositions belong to the whole process), real signals, and a few waits.
#![allow(dead_code, unreachable_pub)]

use std::cell::Cell;
use std::io;
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::EventLoop;

#[path = "../support/mod.rs"]
mod support;

/// Names the test a child process of this binary runs.
const CHILD_ENV: &str = "TULIP_SIGNAL_TEST_CHILD";

/// Whether this process is the child that runs `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var_os(CHILD_ENV).is_some_and(|v| v == name)
}

/// Runs test `name` alone in a new process of this test binary and returns how it ended.
pub fn spawn_child(name: &str) -> (ExitStatus, String) {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .expect("cannot run the test binary again");
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// Runs `body` in a child process (see the module docs); the test passes if the child does.
pub fn in_child(name: &'static str, body: impl FnOnce()) {
    if is_child(name) {
        let _watchdog = support::watchdog(name, 30);
        default_dispositions();
        body();
        return;
    }
    let (status, text) = spawn_child(name);
    assert!(
        status.success(),
        "child `{name}` failed ({status}):\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "child `{name}` ran no test:\n{text}"
    );
}

/// Sets the signals the tests use back to their default action: the tests start from the
/// defaults whatever the parent left ignored (`nohup` ignores SIGHUP, a shell's background
/// job SIGINT and SIGQUIT, and ignored dispositions survive `exec`).
fn default_dispositions() {
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: SIG_DFL for a catchable signal; this process runs one test, before any
        // loop or thread of the test exists.
        let r = unsafe { libc::signal(sig, libc::SIG_DFL) };
        assert_ne!(
            r,
            libc::SIG_ERR,
            "signal({sig}): {}",
            io::Error::last_os_error()
        );
    }
}

/// Sends `sig` to this process.
pub fn kill_self(sig: libc::c_int) {
    // SAFETY: kill with our own pid and a valid signal number.
    let r = unsafe { libc::kill(libc::getpid(), sig) };
    assert_eq!(r, 0, "kill: {}", io::Error::last_os_error());
}

/// The handler address of `sig`'s disposition (`SIG_DFL`, `SIG_IGN` or a function).
pub fn disposition(sig: libc::c_int) -> libc::sighandler_t {
    // SAFETY: a query (null new action) into a zeroed sigaction.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Runs `lp` until `done()` or 10 s (then panics).
pub fn run_until(lp: &EventLoop, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        lp.run_until_complete(tulip::sleep(Duration::from_millis(1)));
    }
}

pub fn counter() -> (Rc<Cell<usize>>, impl Fn() + 'static) {
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    (n, move || m.set(m.get() + 1))
}
