//! Ctrl-C in `tulip::run`, with real signals: the first `SIGINT` cancels the main future and
//! the process dies of it, a second one kills at once, and when `run` leaves `SIGINT` alone.
//!
//! As in `unix_signals.rs`, every test runs alone in a new process of this test binary; these
//! need the main thread too, so that child forks once more: the forked process's only thread
//! is its main thread (Linux).
#![cfg(target_os = "linux")]

mod signal_support;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use signal_support::{counter, disposition, in_child, kill_self};

/// Forks; the forked process (whose only thread is its main thread) runs `body` and exits 0,
/// or 101 if it panics. Returns how it ended and what it wrote to `out`.
fn forked(body: impl FnOnce(&mut std::fs::File)) -> (ExitStatus, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: this process runs one test (`in_child`); the forked child uses only its own
    // thread and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: fds[1] is ours; fds[0] belongs to the parent side.
        let mut out = unsafe {
            libc::close(fds[0]);
            std::fs::File::from_raw_fd(fds[1])
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut out)));
        // SAFETY: leaving the forked process without running the harness's exit code.
        unsafe { libc::_exit(if r.is_ok() { 0 } else { 101 }) };
    }
    // SAFETY: fds[0] is ours; fds[1] is the child's.
    let mut input = unsafe {
        libc::close(fds[1]);
        std::fs::File::from_raw_fd(fds[0])
    };
    let mut text = String::new();
    input.read_to_string(&mut text).unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    (ExitStatus::from_raw(status), text)
}

/// Writes `what` to `out` when dropped.
struct Note(std::fs::File, &'static str);

impl Drop for Note {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = self.0.write_all(self.1.as_bytes());
    }
}

fn note(out: &std::fs::File, what: &'static str) -> Note {
    Note(out.try_clone().unwrap(), what)
}

// CPython: test_runners.py RunnerTests.test_interrupt_wait
/// Ctrl-C while the main future waits: it is dropped (its `Drop` runs), so is a spawned
/// task, and the process dies of SIGINT (status 130 in a shell).
#[test]
fn run_ctrl_c_cancels_the_main_future() {
    in_child("run_ctrl_c_cancels_the_main_future", || {
        let (status, text) = forked(|out| {
            tulip::run(async {
                let _main = note(out, "main dropped;");
                let task_note = note(out, "task dropped;");
                let fut = tulip::get_running_loop().create_future::<()>();
                tulip::spawn(async move {
                    let _n = task_note;
                    std::future::pending::<()>().await
                })
                .detach();
                tulip::yield_now().await;
                kill_self(libc::SIGINT);
                fut.await.ok();
                unreachable!("the main future is cancelled at its await");
            });
            unreachable!("run does not return after Ctrl-C");
        });
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status}: {text:?}");
        assert_eq!(text, "main dropped;task dropped;");
    });
}

// CPython: test_runners.py RunnerTests.test_interrupt_call_soon
/// Ctrl-C while the main future is busy yielding: cancelled at its next await.
#[test]
fn run_ctrl_c_busy_main_future() {
    in_child("run_ctrl_c_busy_main_future", || {
        let (status, text) = forked(|out| {
            tulip::run(async {
                let _main = note(out, "dropped");
                kill_self(libc::SIGINT);
                loop {
                    tulip::yield_now().await;
                }
            });
        });
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status}: {text:?}");
        assert_eq!(text, "dropped");
    });
}

/// A second Ctrl-C while the cleanup runs kills the process at once, even while the loop's
/// thread is stuck.
#[test]
fn run_second_ctrl_c_interrupts_at_once() {
    in_child("run_second_ctrl_c_interrupts_at_once", || {
        struct SlowCleanup(Note);
        impl Drop for SlowCleanup {
            fn drop(&mut self) {
                use std::io::Write;
                let _ = self.0.0.write_all(b"cleanup started;");
                kill_self(libc::SIGINT);
                thread::sleep(Duration::from_secs(20));
            }
        }
        let t0 = Instant::now();
        let (status, text) = forked(|out| {
            tulip::run(async {
                let _slow = SlowCleanup(note(out, "cleanup finished;"));
                kill_self(libc::SIGINT);
                std::future::pending::<()>().await
            });
        });
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status}: {text:?}");
        assert_eq!(text, "cleanup started;");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    });
}

/// Two Ctrl-C while the loop's thread is stuck (the first never reached the loop): the second
/// kills the process at once, from the signal handler.
#[test]
fn run_second_ctrl_c_while_the_loop_is_stuck() {
    in_child("run_second_ctrl_c_while_the_loop_is_stuck", || {
        let t0 = Instant::now();
        let (status, text) = forked(|out| {
            tulip::run(async {
                let _main = note(out, "dropped");
                kill_self(libc::SIGINT);
                kill_self(libc::SIGINT);
                thread::sleep(Duration::from_secs(20)); // blocks the loop
            });
        });
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status}: {text:?}");
        assert_eq!(text, "", "killed before any cleanup");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    });
}

/// `RunOptions::handle_sigint(false)` leaves SIGINT alone; so does a `run` on another thread
/// than the main one, and a `run` in a program that set SIGINT's disposition itself.
// CPython: test_runners.py RunnerTests.test_signal_install_not_supported_ok (the thread case)
#[test]
fn run_leaves_sigint_alone_when_asked_or_not_main() {
    in_child("run_leaves_sigint_alone_when_asked_or_not_main", || {
        let (status, text) = forked(|out| {
            use std::io::Write;
            let installed = tulip::run(async {
                // `run`'s handler is not the program's: nothing to remove, and it stays.
                let removed = tulip::get_running_loop()
                    .remove_signal_handler(libc::SIGINT)
                    .unwrap();
                !removed && disposition(libc::SIGINT) != libc::SIG_DFL
            });
            let off = tulip::run_with(
                async { disposition(libc::SIGINT) },
                tulip::task::RunOptions::new().handle_sigint(false),
            );
            let on_thread = thread::spawn(|| tulip::run(async { disposition(libc::SIGINT) }))
                .join()
                .unwrap();
            // SAFETY: SIG_IGN, no handler function.
            unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
            let ignored = tulip::run(async { disposition(libc::SIGINT) });
            write!(
                out,
                "{installed} {} {} {}",
                off == libc::SIG_DFL,
                on_thread == libc::SIG_DFL,
                ignored == libc::SIG_IGN
            )
            .unwrap();
            // After run, SIGINT's default is back.
        });
        assert!(status.success(), "{status}: {text:?}");
        assert_eq!(text, "true true true true");
    });
}

/// `#[tulip::main(handle_sigint = false)]` runs its body with SIGINT left alone (the
/// expansion is `run_with(…, RunOptions::new().handle_sigint(false))`), where plain
/// `#[tulip::main]` installs `run`'s Ctrl-C handling. The attribute works on any function
/// name, so both are called here, on the forked process's main thread.
#[test]
fn main_attribute_handle_sigint_false_leaves_sigint_alone() {
    #[tulip::main(handle_sigint = false)]
    async fn main_without_ctrl_c() -> libc::sighandler_t {
        disposition(libc::SIGINT)
    }
    #[tulip::main]
    async fn main_with_ctrl_c() -> libc::sighandler_t {
        disposition(libc::SIGINT)
    }
    in_child(
        "main_attribute_handle_sigint_false_leaves_sigint_alone",
        || {
            let (status, text) = forked(|out| {
                use std::io::Write;
                let off = main_without_ctrl_c();
                let on = main_with_ctrl_c();
                write!(out, "{} {}", off == libc::SIG_DFL, on != libc::SIG_DFL).unwrap();
            });
            assert!(status.success(), "{status}: {text:?}");
            assert_eq!(text, "true true");
        },
    );
}

/// A SIGINT stream or handler the main future installs replaces `run`'s: Ctrl-C then only
/// reaches them (two in a row do not kill), and `run` returns normally; afterwards SIGINT's
/// default disposition is back.
#[test]
fn run_own_sigint_handler_replaces_runs() {
    in_child("run_own_sigint_handler_replaces_runs", || {
        let (status, text) = forked(|out| {
            use std::io::Write;
            let (streamed, handled) = tulip::run(async {
                let mut sigint = tulip::signal(libc::SIGINT).unwrap();
                let mut streamed = 0;
                for _ in 0..2 {
                    kill_self(libc::SIGINT);
                    sigint.next().await;
                    streamed += 1;
                }
                drop(sigint);
                let (caught, count) = counter();
                tulip::get_running_loop()
                    .add_signal_handler(libc::SIGINT, count)
                    .unwrap();
                for _ in 0..2 {
                    let before = caught.get();
                    kill_self(libc::SIGINT);
                    while caught.get() == before {
                        tulip::sleep(Duration::from_millis(1)).await;
                    }
                }
                (streamed, caught.get())
            });
            write!(
                out,
                "{streamed} {handled} {}",
                disposition(libc::SIGINT) == libc::SIG_DFL
            )
            .unwrap();
        });
        assert!(status.success(), "{status}: {text:?}");
        assert_eq!(text, "2 2 true");
    });
}
