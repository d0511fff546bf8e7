//! The portable child watcher (a thread per child in `waitid(WNOWAIT)`, the loop reaping),
//! the one macOS and the BSDs use, run on Linux with `TULIP_CHILD_WATCHER=thread`. Alone in
//! its binary: the variable is set before anything else runs.
#![cfg(unix)]

mod support;

use std::io;
use std::time::Duration;

use tulip::create_subprocess_exec;
use tulip::unix::{Redirect, SubprocessOptions};

#[test]
fn the_thread_watcher() {
    let _w = support::watchdog("the_thread_watcher", 60);
    // SAFETY: the only test of this binary, run before any other thread reads the
    // environment.
    unsafe { std::env::set_var("TULIP_CHILD_WATCHER", "thread") };
    let pid = tulip::run(async {
        // Exit codes, a signal death, communicate.
        for code in [0, 3] {
            let p =
                create_subprocess_exec("sh", ["-c", &format!("exit {code}")], Default::default())
                    .await?;
            assert_eq!(p.wait().await, code);
        }
        let p = create_subprocess_exec("sleep", ["60"], SubprocessOptions::new()).await?;
        p.kill()?;
        assert_eq!(p.wait().await, -libc::SIGKILL);
        let mut p = create_subprocess_exec(
            "cat",
            [""; 0],
            SubprocessOptions::new()
                .stdin(Redirect::Pipe)
                .stdout(Redirect::Pipe),
        )
        .await?;
        let (out, _) = p.communicate(Some(b"threaded")).await?;
        assert_eq!(out.as_deref(), Some(&b"threaded"[..]));
        // Sixteen at once.
        let mut ps = Vec::new();
        for i in 0..16 {
            ps.push(
                create_subprocess_exec("sh", ["-c", &format!("exit {i}")], Default::default())
                    .await?,
            );
        }
        for (i, p) in ps.iter().enumerate() {
            assert_eq!(p.wait().await, i as i32);
        }
        // Dropped unwaited, then left running when the loop closes.
        let p = create_subprocess_exec("true", [""; 0], SubprocessOptions::new()).await?;
        drop(p);
        let p = create_subprocess_exec("sleep", ["0.2"], SubprocessOptions::new()).await?;
        let pid = p.pid();
        drop(p);
        io::Result::Ok(pid)
    })
    .expect("the thread watcher");
    // Virtual time waits for a watcher thread as for an executor job: a timeout around the
    // wait of a child that runs 100 ms does not expire at once (the thread was invisible).
    let virt = tulip::task::RunOptions::new().virtual_time(true);
    let waited = tulip::run_with(
        async {
            let p = create_subprocess_exec("sleep", ["0.1"], SubprocessOptions::new()).await?;
            io::Result::Ok(tulip::timeout(Duration::from_secs(30), p.wait()).await)
        },
        virt,
    )
    .expect("spawn under virtual time");
    assert_eq!(
        waited.ok(),
        Some(0),
        "the timeout expired before the child exited"
    );
    for _ in 0..300 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("child {pid} was not reaped after its loop closed");
}
