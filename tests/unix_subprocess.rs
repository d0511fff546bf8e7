//! The async `Process`: pipes, devnull, communicate, signals and exit codes, spawn errors,
//! options (cwd, env, sessions, passed fds), large data both ways, cancellation, and
//! children that outlive their `Process`.
//!
//! Most tests translate CPython's `Lib/test/test_asyncio/test_subprocess.py`
//! (`SubprocessMixin`), with `sh`, `cat` and `true` in place of `python -c`.
#![cfg(unix)]

mod support;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use tulip::unix::{Redirect, SubprocessOptions};
use tulip::{create_subprocess_exec, create_subprocess_shell};

fn piped() -> SubprocessOptions {
    SubprocessOptions::new()
        .stdin(Redirect::Pipe)
        .stdout(Redirect::Pipe)
        .stderr(Redirect::Pipe)
}

const NO_ARGS: [&str; 0] = [];

// CPython: test_subprocess.py SubprocessMixin.test_stdin_stdout
#[tulip::test]
async fn stdin_stdout() -> io::Result<()> {
    let _w = support::watchdog("stdin_stdout", 20);
    let mut p = create_subprocess_exec("cat", NO_ARGS, piped()).await?;
    let stdin = p.stdin.take().expect("stdin pipe");
    stdin.write(b"Python The Winner");
    stdin.drain().await?;
    stdin.close();
    let out = p
        .stdout
        .as_mut()
        .expect("stdout pipe")
        .read_to_eof()
        .await?;
    assert_eq!(out, b"Python The Winner");
    assert_eq!(p.wait().await, 0);
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_communicate
#[tulip::test]
async fn communicate() -> io::Result<()> {
    let _w = support::watchdog("communicate", 20);
    let mut p = create_subprocess_exec("cat", NO_ARGS, piped()).await?;
    let (out, err) = p.communicate(Some(b"Python The Winner")).await?;
    assert_eq!(out.as_deref(), Some(&b"Python The Winner"[..]));
    assert_eq!(err.as_deref(), Some(&b""[..]));
    assert_eq!(p.returncode(), Some(0));
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_communicate_none_input
#[tulip::test]
async fn communicate_none_input() -> io::Result<()> {
    let _w = support::watchdog("communicate_none_input", 20);
    let mut p = create_subprocess_exec("cat", NO_ARGS, piped()).await?;
    let (out, _) = p.communicate(None).await?;
    assert_eq!(out.as_deref(), Some(&b""[..]));
    assert_eq!(p.returncode(), Some(0));
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_shell
#[tulip::test]
async fn shell_exit_code() -> io::Result<()> {
    let _w = support::watchdog("shell_exit_code", 20);
    let p = create_subprocess_shell("exit 7", SubprocessOptions::new()).await?;
    assert_eq!(p.wait().await, 7);
    assert_eq!(p.returncode(), Some(7));
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_exitcode
#[tulip::test]
async fn exit_codes() -> io::Result<()> {
    let _w = support::watchdog("exit_codes", 20);
    for code in [0, 1, 2, 127, 255] {
        let p = create_subprocess_exec("sh", ["-c", &format!("exit {code}")], Default::default())
            .await?;
        assert_eq!(p.wait().await, code);
    }
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_kill
#[tulip::test]
async fn kill() -> io::Result<()> {
    let _w = support::watchdog("kill", 20);
    let p = create_subprocess_exec("sleep", ["60"], SubprocessOptions::new()).await?;
    assert_eq!(p.returncode(), None);
    p.kill()?;
    assert_eq!(p.wait().await, -libc::SIGKILL);
    // After the exit, signals are no-ops (Popen.send_signal).
    p.kill()?;
    p.terminate()?;
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_terminate
#[tulip::test]
async fn terminate() -> io::Result<()> {
    let _w = support::watchdog("terminate", 20);
    let p = create_subprocess_exec("sleep", ["60"], SubprocessOptions::new()).await?;
    p.terminate()?;
    assert_eq!(p.wait().await, -libc::SIGTERM);
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_send_signal
#[tulip::test]
async fn send_signal() -> io::Result<()> {
    let _w = support::watchdog("send_signal", 20);
    // The shell says when its trap is set, then waits; SIGHUP makes it exit 3.
    let mut p = create_subprocess_exec(
        "sh",
        [
            "-c",
            "trap 'exit 3' HUP; echo ready; while :; do sleep 0.05; done",
        ],
        SubprocessOptions::new().stdout(Redirect::Pipe),
    )
    .await?;
    let line = p.stdout.as_mut().expect("stdout").readline().await?;
    assert_eq!(line, b"ready\n");
    p.send_signal(libc::SIGHUP)?;
    assert_eq!(p.wait().await, 3);
    Ok(())
}

/// A child killed by a signal it did not catch reports minus the signal number.
#[tulip::test]
async fn signal_death_is_negative() -> io::Result<()> {
    let _w = support::watchdog("signal_death_is_negative", 20);
    let p = create_subprocess_exec("sh", ["-c", "kill -USR1 $$"], SubprocessOptions::new()).await?;
    assert_eq!(p.wait().await, -libc::SIGUSR1);
    let st = p.status().expect("reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(libc::SIGUSR1)
    );
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_communicate_ignore_broken_pipe
#[tulip::test]
async fn communicate_ignores_broken_pipe() -> io::Result<()> {
    let _w = support::watchdog("communicate_ignores_broken_pipe", 20);
    // The child reads nothing and exits: 4 MiB of input hit a closed pipe.
    let mut p = create_subprocess_exec("true", NO_ARGS, piped()).await?;
    let input = vec![b'x'; 4 << 20];
    let (out, err) = p.communicate(Some(&input)).await?;
    assert_eq!(
        (out.as_deref(), err.as_deref()),
        (Some(&b""[..]), Some(&b""[..]))
    );
    assert_eq!(p.returncode(), Some(0));
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_stdin_broken_pipe
#[tulip::test]
async fn stdin_broken_pipe() -> io::Result<()> {
    let _w = support::watchdog("stdin_broken_pipe", 20);
    let mut p = create_subprocess_exec("true", NO_ARGS, piped()).await?;
    p.wait().await;
    let stdin = p.stdin.take().expect("stdin");
    let mut failed = None;
    for _ in 0..100 {
        stdin.write(&[b'x'; 65536]);
        if let Err(e) = stdin.drain().await {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("writing to a gone child fails");
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{e:?}"
    );
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_devnull_input
#[tulip::test]
async fn devnull_input() -> io::Result<()> {
    let _w = support::watchdog("devnull_input", 20);
    let mut p = create_subprocess_exec(
        "cat",
        NO_ARGS,
        SubprocessOptions::new()
            .stdin(Redirect::DevNull)
            .stdout(Redirect::Pipe),
    )
    .await?;
    assert!(p.stdin.is_none());
    let (out, err) = p.communicate(None).await?;
    assert_eq!((out.as_deref(), err), (Some(&b""[..]), None));
    assert_eq!(p.returncode(), Some(0));
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_devnull_output
#[tulip::test]
async fn devnull_output() -> io::Result<()> {
    let _w = support::watchdog("devnull_output", 20);
    let mut p = create_subprocess_exec(
        "cat",
        NO_ARGS,
        SubprocessOptions::new()
            .stdin(Redirect::Pipe)
            .stdout(Redirect::DevNull),
    )
    .await?;
    assert!(p.stdout.is_none());
    let (out, err) = p.communicate(Some(b"abc")).await?;
    assert_eq!((out, err), (None, None));
    assert_eq!(p.returncode(), Some(0));
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_devnull_error
#[tulip::test]
async fn devnull_error() -> io::Result<()> {
    let _w = support::watchdog("devnull_error", 20);
    let mut p = create_subprocess_exec(
        "sh",
        ["-c", "echo out; echo err >&2"],
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .stderr(Redirect::DevNull),
    )
    .await?;
    let (out, err) = p.communicate(None).await?;
    assert_eq!((out.as_deref(), err), (Some(&b"out\n"[..]), None));
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_stderr
#[tulip::test]
async fn stderr_pipe() -> io::Result<()> {
    let _w = support::watchdog("stderr_pipe", 20);
    let mut p =
        create_subprocess_exec("sh", ["-c", "echo out; echo err >&2; exit 1"], piped()).await?;
    let (out, err) = p.communicate(None).await?;
    assert_eq!(out.as_deref(), Some(&b"out\n"[..]));
    assert_eq!(err.as_deref(), Some(&b"err\n"[..]));
    assert_eq!(p.returncode(), Some(1));
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_stderr_redirect_to_stdout
#[tulip::test]
async fn stderr_redirect_to_stdout() -> io::Result<()> {
    let _w = support::watchdog("stderr_redirect_to_stdout", 20);
    let mut p = create_subprocess_exec(
        "sh",
        ["-c", "echo out; echo err >&2"],
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .stderr(Redirect::Stdout),
    )
    .await?;
    assert!(p.stderr.is_none());
    let (out, err) = p.communicate(None).await?;
    assert_eq!(out.as_deref(), Some(&b"out\nerr\n"[..]));
    assert_eq!(err, None);
    Ok(())
}

/// stdin and stdout as fds the caller owns (a file and a pipe).
// CPython: test_subprocess.py SubprocessMixin.test_stdin_stdout_file (its shape)
#[tulip::test]
async fn owned_fds_as_stdio() -> io::Result<()> {
    let _w = support::watchdog("owned_fds_as_stdio", 20);
    let (r, w) = std::io::pipe()?;
    let input = {
        let (ir, mut iw) = std::io::pipe()?;
        std::io::Write::write_all(&mut iw, b"from a pipe\n")?;
        ir
    };
    let p = create_subprocess_exec(
        "cat",
        NO_ARGS,
        SubprocessOptions::new()
            .stdin(Redirect::Fd(OwnedFd::from(input)))
            .stdout(Redirect::Fd(OwnedFd::from(w))),
    )
    .await?;
    assert!(p.stdin.is_none() && p.stdout.is_none());
    assert_eq!(p.wait().await, 0);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut { r }, &mut got)?;
    assert_eq!(got, "from a pipe\n");
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_read_stdout_after_process_exit
#[tulip::test]
async fn read_stdout_after_exit() -> io::Result<()> {
    let _w = support::watchdog("read_stdout_after_exit", 20);
    let mut p = create_subprocess_shell(
        "printf 'line one\\nline two\\n'",
        SubprocessOptions::new().stdout(Redirect::Pipe),
    )
    .await?;
    assert_eq!(p.wait().await, 0);
    let out = p.stdout.as_mut().expect("stdout");
    assert_eq!(out.readline().await?, b"line one\n");
    assert_eq!(out.readline().await?, b"line two\n");
    assert_eq!(out.readline().await?, b"");
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_create_subprocess_env_exec
#[tulip::test]
async fn env_and_env_clear() -> io::Result<()> {
    let _w = support::watchdog("env_and_env_clear", 20);
    let mut p = create_subprocess_exec(
        "/bin/sh",
        ["-c", "echo \"$FOO:$HOME\""],
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .env_clear()
            .env("FOO", "bar"),
    )
    .await?;
    let (out, _) = p.communicate(None).await?;
    assert_eq!(out.as_deref(), Some(&b"bar:\n"[..]));
    let mut p = create_subprocess_shell(
        "echo \"${HOME:+set}${TULIP_X:+set}\"",
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .env("TULIP_X", "1")
            .env_remove("TULIP_X")
            .env_remove("HOME"),
    )
    .await?;
    let (out, _) = p.communicate(None).await?;
    assert_eq!(out.as_deref(), Some(&b"\n"[..]));
    Ok(())
}

/// `cwd`: the child runs there; a missing directory is an error naming the program.
#[tulip::test]
async fn cwd() -> io::Result<()> {
    let _w = support::watchdog("cwd", 20);
    let mut p = create_subprocess_exec(
        "pwd",
        NO_ARGS,
        SubprocessOptions::new().stdout(Redirect::Pipe).cwd("/"),
    )
    .await?;
    let (out, _) = p.communicate(None).await?;
    assert_eq!(out.as_deref(), Some(&b"/\n"[..]));
    let e = create_subprocess_exec(
        "pwd",
        NO_ARGS,
        SubprocessOptions::new().cwd("/nonexistent/tulip-test"),
    )
    .await
    .expect_err("a missing cwd");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("\"pwd\""), "{e}");
    assert!(e.to_string().contains("/nonexistent/tulip-test"), "{e}");
    Ok(())
}

// CPython: test_events.py SubprocessTestsMixin.test_subprocess_exec_invalid_args (ENOENT)
#[tulip::test]
async fn spawn_errors_name_the_program() -> io::Result<()> {
    let _w = support::watchdog("spawn_errors_name_the_program", 20);
    let e = create_subprocess_exec("/nonexistent/tulip-no-such-program", NO_ARGS, piped())
        .await
        .expect_err("ENOENT");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("tulip-no-such-program"), "{e}");
    // A directory is not executable: EACCES.
    let e = create_subprocess_exec("/", NO_ARGS, SubprocessOptions::new())
        .await
        .expect_err("EACCES");
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("\"/\""), "{e}");
    // stdin cannot go "to stdout".
    let e = create_subprocess_exec(
        "true",
        NO_ARGS,
        SubprocessOptions::new().stdin(Redirect::Stdout),
    )
    .await
    .expect_err("InvalidInput");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_start_new_session
#[tulip::test]
async fn start_new_session_and_process_group() -> io::Result<()> {
    let _w = support::watchdog("start_new_session_and_process_group", 20);
    // In a new session the child is the session and group leader: sid == pgid == pid.
    let mut p = create_subprocess_exec(
        "sh",
        ["-c", "ps -o sid= -o pgid= -p $$"],
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .start_new_session(true),
    )
    .await?;
    let pid = p.pid().to_string();
    let (out, _) = p.communicate(None).await?;
    let out = String::from_utf8_lossy(out.as_deref().unwrap_or_default()).to_string();
    let ids: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ids, [pid.as_str(), pid.as_str()], "{out}");
    // process_group(0): a new group, same session as ours.
    let mut p = create_subprocess_exec(
        "sh",
        ["-c", "ps -o pgid= -p $$"],
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .process_group(0),
    )
    .await?;
    let pid = p.pid().to_string();
    let (out, _) = p.communicate(None).await?;
    let out = String::from_utf8_lossy(out.as_deref().unwrap_or_default()).to_string();
    assert_eq!(out.trim(), pid);
    Ok(())
}

/// `pass_fd`: the child gets that fd under the same number, and no other of ours.
// CPython: test_subprocess.py SubprocessMixin.test_stdin_not_inheritable (the other half)
#[tulip::test]
async fn pass_fds_and_nothing_else() -> io::Result<()> {
    let _w = support::watchdog("pass_fds_and_nothing_else", 20);
    let (r, w) = std::io::pipe()?;
    let (keep_r, _keep_w) = std::io::pipe()?; // not passed: the child must not have it
    let fd = w.as_raw_fd();
    let kept = keep_r.as_raw_fd();
    let script =
        format!("echo passed > /dev/fd/{fd}; if [ -e /dev/fd/{kept} ]; then echo leaked; fi");
    let mut p = create_subprocess_exec(
        "sh",
        ["-c", &script],
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .pass_fd(OwnedFd::from(w)),
    )
    .await?;
    let (out, _) = p.communicate(None).await?;
    assert_eq!(
        out.as_deref(),
        Some(&b""[..]),
        "an fd not passed was inherited"
    );
    let mut got = String::new();
    std::io::Read::read_to_string(&mut { r }, &mut got)?;
    assert_eq!(got, "passed\n");
    drop(keep_r);
    Ok(())
}

/// 32 MiB in and out of `cat` through `communicate`: no deadlock, every byte in order.
#[tulip::test]
async fn communicate_32_mib_through_cat() -> io::Result<()> {
    let _w = support::watchdog("communicate_32_mib_through_cat", 60);
    let input: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut p = create_subprocess_exec("cat", NO_ARGS, piped()).await?;
    let (out, err) = p.communicate(Some(&input)).await?;
    let out = out.expect("stdout");
    assert_eq!(out.len(), input.len());
    assert!(out == input, "the bytes came back in order");
    assert_eq!(err.as_deref(), Some(&b""[..]));
    assert_eq!(p.returncode(), Some(0));
    Ok(())
}

/// Bytes written to stdin before `communicate`, still in the transport's buffer (the child
/// stops reading once its stdout is full), go first: `communicate` writes its input only
/// after them.
#[tulip::test]
async fn communicate_after_a_buffered_write_keeps_the_order() -> io::Result<()> {
    let _w = support::watchdog("communicate_after_a_buffered_write_keeps_the_order", 30);
    let first: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let second = vec![b'z'; 1 << 20];
    let mut p = create_subprocess_exec("cat", NO_ARGS, piped()).await?;
    let stdin = p.stdin.as_ref().expect("stdin pipe");
    stdin.write(&first);
    assert!(
        stdin.transport().get_write_buffer_size() > 0,
        "a pipe holds less than 1 MiB: some of it waits in the buffer"
    );
    // Blocking the loop, so the buffer is not flushed meanwhile: `cat` empties the pipe
    // (into its stdout, until that is full), and there is room in it when `communicate` starts.
    std::thread::sleep(Duration::from_millis(100));
    let (out, _) = p.communicate(Some(&second)).await?;
    let out = out.expect("stdout");
    assert_eq!(out.len(), first.len() + second.len());
    assert!(
        out[..first.len()] == first[..],
        "the buffered bytes came first"
    );
    assert!(out[first.len()..] == second[..], "then the input");
    Ok(())
}

/// A child writing much to stdout and stderr at once while we write to it: no deadlock.
// CPython: test_subprocess.py SubprocessMixin.test_communicate (large output variant)
#[tulip::test]
async fn communicate_large_both_streams() -> io::Result<()> {
    let _w = support::watchdog("communicate_large_both_streams", 30);
    let mut p =
        create_subprocess_exec("sh", ["-c", "head -c 1000000 /dev/zero >&2; cat"], piped()).await?;
    let input = vec![b'y'; 1 << 20];
    let (out, err) = p.communicate(Some(&input)).await?;
    assert_eq!(out.map(|o| o.len()), Some(1 << 20));
    assert_eq!(err.map(|e| e.len()), Some(1_000_000));
    Ok(())
}

// CPython: test_subprocess.py SubprocessMixin.test_cancel_process_wait
#[tulip::test]
async fn cancel_wait() -> io::Result<()> {
    let _w = support::watchdog("cancel_wait", 20);
    let p = create_subprocess_exec("sleep", ["60"], SubprocessOptions::new()).await?;
    let r = tulip::timeout(Duration::from_millis(50), p.wait()).await;
    assert!(r.is_err(), "wait timed out");
    // The cancelled wait left nothing broken: kill, and a new wait sees the exit.
    p.kill()?;
    assert_eq!(p.wait().await, -libc::SIGKILL);
    Ok(())
}

/// A cancelled `communicate` (as asyncio's, it loses what it had read) leaves the process
/// and its readers usable.
// CPython: test_subprocess.py SubprocessMixin.test_cancel_post_init (communicate's side)
#[tulip::test]
async fn cancel_communicate() -> io::Result<()> {
    let _w = support::watchdog("cancel_communicate", 20);
    let mut p =
        create_subprocess_exec("sh", ["-c", "echo first; sleep 0.3; echo second"], piped()).await?;
    // Cancelled after "first" arrived, before "second".
    let r = tulip::timeout(Duration::from_millis(150), p.communicate(None)).await;
    assert!(r.is_err(), "communicate timed out");
    let rest = p.stdout.as_mut().expect("stdout").read_to_eof().await?;
    // "first" went to the cancelled call (unless the machine was so slow that it came
    // after the cancel); "second" is here.
    assert!(
        rest == b"second\n" || rest == b"first\nsecond\n",
        "{rest:?}"
    );
    assert_eq!(p.wait().await, 0);
    Ok(())
}

/// A `Process` dropped while its child runs: the child is still reaped when it exits
/// (without `kill_on_drop`), or killed and reaped (with it).
#[tulip::test]
async fn dropped_process_is_reaped() -> io::Result<()> {
    let _w = support::watchdog("dropped_process_is_reaped", 20);
    let p = create_subprocess_exec("sleep", ["0.1"], SubprocessOptions::new()).await?;
    let pid1 = p.pid();
    drop(p);
    let p = create_subprocess_exec("sleep", ["60"], SubprocessOptions::new().kill_on_drop(true))
        .await?;
    let pid2 = p.pid();
    drop(p);
    for _ in 0..200 {
        if !exists(pid1) && !exists(pid2) {
            return Ok(());
        }
        tulip::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "not reaped: {pid1} exists {}, {pid2} exists {}",
        exists(pid1),
        exists(pid2)
    );
}

/// Whether a process (a zombie included) with this pid exists.
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        || (!std::path::Path::new("/proc/self").exists() && {
            // SAFETY: `kill(pid, 0)` only checks that the process exists.
            unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
        })
}

/// A child whose grandchild keeps its stdout open: `wait` finishes when the child exits.
#[tulip::test]
async fn grandchild_holding_pipes_does_not_hang_wait() -> io::Result<()> {
    let _w = support::watchdog("grandchild_holding_pipes_does_not_hang_wait", 20);
    let p = create_subprocess_shell(
        "sleep 30 & echo $!",
        SubprocessOptions::new()
            .stdout(Redirect::Pipe)
            .stderr(Redirect::Pipe),
    )
    .await?;
    let mut p = p;
    let line = p.stdout.as_mut().expect("stdout").readline().await?;
    let grandchild: i32 = String::from_utf8_lossy(&line)
        .trim()
        .parse()
        .expect("a pid");
    let code = tulip::timeout(Duration::from_secs(5), p.wait())
        .await
        .expect("wait does not wait for the grandchild");
    assert_eq!(code, 0);
    // SAFETY: `kill` of the grandchild, a process we made; it is reaped by init.
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    Ok(())
}

/// Two loops on two threads spawning at once: each hears its own children's exits.
#[test]
fn two_loops_on_two_threads() {
    let _w = support::watchdog("two_loops_on_two_threads", 30);
    let threads: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                tulip::run(async move {
                    for i in 0..20 {
                        let code = (t * 50 + i) % 256;
                        let p = create_subprocess_exec(
                            "sh",
                            ["-c", &format!("exit {code}")],
                            SubprocessOptions::new(),
                        )
                        .await?;
                        assert_eq!(p.wait().await, code);
                    }
                    io::Result::Ok(())
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread").expect("spawns");
    }
}

/// A loop closed with a child still running hands it off: it is reaped when it exits.
#[test]
fn loop_closed_with_a_child_running() {
    let _w = support::watchdog("loop_closed_with_a_child_running", 20);
    let pid = tulip::run(async {
        let p = create_subprocess_exec("sleep", ["0.2"], SubprocessOptions::new()).await?;
        let pid = p.pid();
        std::mem::forget(p); // not even its Drop runs
        io::Result::Ok(pid)
    })
    .expect("spawn");
    for _ in 0..300 {
        if !exists(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("child {pid} was not reaped after its loop closed");
}
