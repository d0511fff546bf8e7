//! No zombie, no leaked fd: 1,000 spawns of `true` (with and without pipes, some dropped
//! unwaited) leave no child of ours in state `Z` and no file descriptor open. Alone in its
//! binary, so that no other test's children or fds are counted.
#![cfg(target_os = "linux")]

mod support;

use std::io;
use std::time::Duration;

use tulip::create_subprocess_exec;
use tulip::unix::{Redirect, SubprocessOptions};

/// The fds open in this process.
fn open_fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect();
    v.sort();
    v
}

/// Our children in state `Z`, and all our children (from `/proc/*/stat`).
fn children() -> (usize, usize) {
    let me = std::process::id().to_string();
    let (mut zombies, mut all) = (0, 0);
    for e in std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
    {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next());
        if ppid == Some(me.as_str()) {
            all += 1;
            if state == Some("Z") {
                zombies += 1;
            }
        }
    }
    (zombies, all)
}

#[test]
fn a_thousand_spawns_leave_no_zombie_and_no_fd() {
    let _w = support::watchdog("a_thousand_spawns_leave_no_zombie_and_no_fd", 120);
    // Warm up (the loop's own fds, the first thread-locals), then count.
    let lp = tulip::EventLoop::new().expect("loop");
    lp.run_until_complete(async {
        let p = create_subprocess_exec("true", [""; 0], SubprocessOptions::new()).await?;
        p.wait().await;
        io::Result::Ok(())
    })
    .expect("warm-up");
    let before = open_fds();
    lp.run_until_complete(async {
        for i in 0..1000 {
            let options = match i % 4 {
                0 => SubprocessOptions::new(),
                1 => SubprocessOptions::new()
                    .stdin(Redirect::Pipe)
                    .stdout(Redirect::Pipe)
                    .stderr(Redirect::Pipe),
                2 => SubprocessOptions::new()
                    .stdout(Redirect::Pipe)
                    .stderr(Redirect::Stdout),
                _ => SubprocessOptions::new().stdout(Redirect::DevNull),
            };
            let mut p = create_subprocess_exec("true", [""; 0], options).await?;
            match i % 3 {
                0 => assert_eq!(p.wait().await, 0),
                1 => {
                    p.communicate(None).await?;
                    assert_eq!(p.returncode(), Some(0));
                }
                _ => drop(p), // never waited for: reaped all the same
            }
        }
        // The dropped ones: give them time to exit and be reaped.
        for _ in 0..500 {
            if children().1 == 0 {
                break;
            }
            tulip::sleep(Duration::from_millis(10)).await;
        }
        // Let closed transports finish.
        tulip::sleep(Duration::from_millis(20)).await;
        io::Result::Ok(())
    })
    .expect("spawns");
    assert_eq!(children(), (0, 0), "(zombies, children) of ours");
    let after = open_fds();
    assert_eq!(before, after, "fds leaked");
    lp.close();
}
