//! Signal handlers on the loop, with real signals (`kill(getpid(), …)`, `raise`, `setitimer`).
//!
//! Signal dispositions belong to the whole process, so every test runs alone in a new process
//! of this test binary (`signal_support::in_child`): the test process itself never installs a
//! handler, and the tests cannot disturb each other or the harness. Ctrl-C in `tulip::run` is
//! in `unix_signals_run.rs`.

mod signal_support;

use std::cell::Cell;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use signal_support::{counter, disposition, in_child, is_child, kill_self, run_until, spawn_child};
use tulip::EventLoop;

// CPython: test_events.py EventLoopTestsMixin.test_add_signal_handler
// CPython: test_unix_events.py SelectorEventLoopSignalTests.test_check_signal (the number checks)
// CPython: test_unix_events.py SelectorEventLoopSignalTests.test_remove_signal_handler_2 (the
// old disposition comes back)
#[test]
fn add_signal_handler() {
    in_child("add_signal_handler", || {
        let lp = EventLoop::new().unwrap();
        let (caught, handler) = counter();
        // Check error behaviour first.
        for bad in [-1, 0, 1000] {
            let e = lp.add_signal_handler(bad, || {}).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
            assert!(e.to_string().contains("invalid signal number"), "{e}");
            let e = lp.remove_signal_handler(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        let e = lp.add_signal_handler(libc::SIGKILL, || {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("SIGKILL cannot be caught"), "{e}");
        let e = lp.add_signal_handler(libc::SIGSTOP, || {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Removing SIGKILL doesn't raise, since there cannot be a handler.
        assert!(!lp.remove_signal_handler(libc::SIGKILL).unwrap());
        // Now set a handler and handle it.
        lp.add_signal_handler(libc::SIGINT, handler).unwrap();
        assert_ne!(disposition(libc::SIGINT), libc::SIG_DFL);
        kill_self(libc::SIGINT);
        run_until(&lp, "the SIGINT callback", || caught.get() > 0);
        assert_eq!(caught.get(), 1);
        // Removing it should restore the default handler.
        assert!(lp.remove_signal_handler(libc::SIGINT).unwrap());
        assert_eq!(disposition(libc::SIGINT), libc::SIG_DFL);
        // Removing again returns False.
        assert!(!lp.remove_signal_handler(libc::SIGINT).unwrap());
        lp.close();
    });
}

// CPython: test_events.py EventLoopTestsMixin.test_signal_handling_while_selecting
#[test]
fn signal_handling_while_selecting() {
    in_child("signal_handling_while_selecting", || {
        let lp = EventLoop::new().unwrap();
        let (caught, count) = counter();
        let l = lp.clone();
        lp.add_signal_handler(libc::SIGALRM, move || {
            count();
            l.stop();
        })
        .unwrap();
        // Send SIGALRM once, 10 ms from now.
        // SAFETY: a valid itimerval; no old value wanted.
        unsafe {
            let t = libc::itimerval {
                it_interval: libc::timeval {
                    tv_sec: 0,
                    tv_usec: 0,
                },
                it_value: libc::timeval {
                    tv_sec: 0,
                    tv_usec: 10_000,
                },
            };
            assert_eq!(
                libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()),
                0
            );
        }
        let l = lp.clone();
        let _safety = lp.call_later(Duration::from_secs(60), move || l.stop());
        lp.run_forever();
        assert_eq!(caught.get(), 1);
        lp.close();
    });
}

// CPython: test_events.py EventLoopTestsMixin.test_signal_handling_args (a closure carries
// the arguments)
#[test]
fn signal_handling_args() {
    in_child("signal_handling_args", || {
        let lp = EventLoop::new().unwrap();
        let seen = Rc::new(Cell::new(None));
        let s = seen.clone();
        let some_arg = 42;
        lp.add_signal_handler(libc::SIGUSR1, move || s.set(Some(some_arg)))
            .unwrap();
        kill_self(libc::SIGUSR1);
        run_until(&lp, "the callback", || seen.get().is_some());
        assert_eq!(seen.get(), Some(42));
        lp.close();
    });
}

/// A signal sent while the loop blocks in `epoll_wait` (no timer, nothing ready) wakes it
/// quickly, and the callback runs on the loop's thread.
#[test]
fn signal_wakes_a_blocked_loop() {
    in_child("signal_wakes_a_blocked_loop", || {
        let lp = EventLoop::new().unwrap();
        let loop_thread = thread::current().id();
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        let l = lp.clone();
        lp.add_signal_handler(libc::SIGUSR1, move || {
            assert_eq!(thread::current().id(), loop_thread);
            g.set(Some(Instant::now()));
            l.stop();
        })
        .unwrap();
        let sender = thread::spawn(|| {
            // Long enough for the loop to be blocked in its wait.
            thread::sleep(Duration::from_millis(100));
            let sent = Instant::now();
            kill_self(libc::SIGUSR1);
            sent
        });
        lp.run_forever(); // no timer: only the signal can end this
        let sent = sender.join().unwrap();
        let latency = got.get().expect("the callback ran").duration_since(sent);
        assert!(latency < Duration::from_secs(1), "woke after {latency:?}");
        lp.close();
    });
}

/// A new handler for the same signal replaces the old one.
#[test]
fn new_handler_replaces_old() {
    in_child("new_handler_replaces_old", || {
        let lp = EventLoop::new().unwrap();
        let (first, f) = counter();
        let (second, s) = counter();
        lp.add_signal_handler(libc::SIGUSR2, f).unwrap();
        lp.add_signal_handler(libc::SIGUSR2, s).unwrap();
        kill_self(libc::SIGUSR2);
        run_until(&lp, "the second callback", || second.get() > 0);
        lp.run_until_complete(tulip::sleep(Duration::from_millis(10)));
        assert_eq!((first.get(), second.get()), (0, 1));
        assert!(lp.remove_signal_handler(libc::SIGUSR2).unwrap());
        assert!(!lp.remove_signal_handler(libc::SIGUSR2).unwrap());
        lp.close();
    });
}

/// A signal that arrived but whose handler was removed before the loop looked: nothing runs,
/// nothing breaks.
// CPython: test_unix_events.py SelectorEventLoopSignalTests.test_handle_signal_no_handler
#[test]
fn signal_removed_before_dispatch() {
    in_child("signal_removed_before_dispatch", || {
        let lp = EventLoop::new().unwrap();
        let (caught, count) = counter();
        lp.add_signal_handler(libc::SIGUSR1, count).unwrap();
        // SAFETY: raise is delivered to this thread before it returns; SIGUSR1 has a handler.
        unsafe { libc::raise(libc::SIGUSR1) };
        assert!(lp.remove_signal_handler(libc::SIGUSR1).unwrap());
        // A new handler for it does not get the old arrival either, when another signal makes
        // the loop dispatch.
        let (later, count_later) = counter();
        lp.add_signal_handler(libc::SIGUSR1, count_later).unwrap();
        let (other, count_other) = counter();
        lp.add_signal_handler(libc::SIGUSR2, count_other).unwrap();
        // SAFETY: as above, SIGUSR2 has a handler.
        unsafe { libc::raise(libc::SIGUSR2) };
        run_until(&lp, "the SIGUSR2 callback", || other.get() > 0);
        lp.run_until_complete(tulip::sleep(Duration::from_millis(10)));
        assert_eq!((caught.get(), later.get()), (0, 0));
        lp.close();
    });
}

/// `SA_RESTART`: a blocking `read` on the thread the signal interrupts is restarted, not
/// failed with `EINTR` (asyncio: `signal.siginterrupt(sig, False)`).
#[test]
fn interrupted_system_calls_restart() {
    in_child("interrupted_system_calls_restart", || {
        let lp = EventLoop::new().unwrap();
        let (caught, count) = counter();
        lp.add_signal_handler(libc::SIGUSR1, count).unwrap();
        // SAFETY: a query into a zeroed sigaction.
        let flags = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old),
                0
            );
            old.sa_flags
        };
        assert_ne!(flags & libc::SA_RESTART, 0, "SA_RESTART is not set");
        let mut fds = [0; 2];
        // SAFETY: pipe fills two fds.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = thread::spawn(move || {
            // SAFETY: pthread_self cannot fail.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut b = [0u8; 1];
            // SAFETY: reads one byte into `b` from our pipe (blocking).
            let r = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
            (r, io::Error::last_os_error().raw_os_error())
        });
        let tid = rx.recv().unwrap();
        thread::sleep(Duration::from_millis(50)); // (if not blocked yet, nothing is interrupted)
        // SAFETY: the reader thread is alive (it waits for our byte).
        assert_eq!(unsafe { libc::pthread_kill(tid, libc::SIGUSR1) }, 0);
        run_until(&lp, "the callback", || caught.get() > 0);
        // SAFETY: writes one byte from a valid buffer to our pipe.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        let (r, errno) = reader.join().unwrap();
        assert_eq!(r, 1, "read failed: errno {errno:?}");
        // SAFETY: closing our own fds.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        lp.close();
    });
}

/// `remove_signal_handler` returns false when there is no handler, also on a closed loop.
#[test]
fn remove_returns_false_when_none() {
    in_child("remove_returns_false_when_none", || {
        let lp = EventLoop::new().unwrap();
        assert!(!lp.remove_signal_handler(libc::SIGTERM).unwrap());
        assert!(!lp.remove_signal_handler(libc::SIGHUP).unwrap());
        assert_eq!(disposition(libc::SIGTERM), libc::SIG_DFL);
        lp.add_signal_handler(libc::SIGHUP, || {}).unwrap();
        lp.close();
        assert!(!lp.remove_signal_handler(libc::SIGHUP).unwrap());
    });
}

/// A panicking signal callback goes to the exception handler; the loop goes on.
#[test]
fn panicking_callback_is_reported() {
    in_child("panicking_callback_is_reported", || {
        let lp = EventLoop::new().unwrap();
        let reports = Rc::new(Cell::new(0));
        let r = reports.clone();
        lp.set_exception_handler(move |_, _| r.set(r.get() + 1));
        lp.add_signal_handler(libc::SIGUSR1, || panic!("boom in a signal callback"))
            .unwrap();
        kill_self(libc::SIGUSR1);
        run_until(&lp, "the report", || reports.get() > 0);
        // The handler is still installed and the loop still works.
        kill_self(libc::SIGUSR1);
        run_until(&lp, "the second report", || reports.get() > 1);
        lp.close();
    });
}

/// 10,000 signals in a burst, from another thread while the loop runs and from the loop's
/// own thread: no crash, no deadlock, at least one callback, and a later signal still
/// arrives.
#[test]
fn burst_of_signals() {
    in_child("burst_of_signals", || {
        let lp = EventLoop::new().unwrap();
        let (caught, count) = counter();
        lp.add_signal_handler(libc::SIGUSR1, count).unwrap();
        let sender = thread::spawn(|| {
            for _ in 0..5_000 {
                kill_self(libc::SIGUSR1);
            }
        });
        while !sender.is_finished() {
            lp.run_until_complete(tulip::sleep(Duration::from_micros(100)));
        }
        sender.join().unwrap();
        for _ in 0..5_000 {
            kill_self(libc::SIGUSR1);
        }
        run_until(&lp, "a callback", || caught.get() > 0);
        lp.run_until_complete(tulip::sleep(Duration::from_millis(20)));
        let before = caught.get();
        assert!((1..=10_000).contains(&before), "{before} callbacks");
        kill_self(libc::SIGUSR1);
        run_until(&lp, "the signal after the burst", || caught.get() > before);
        lp.close();
    });
}

/// Two loops on two threads handling the same signal both run their callbacks.
#[test]
fn two_loops_on_two_threads() {
    in_child("two_loops_on_two_threads", || {
        let ready = Arc::new(Barrier::new(3));
        let hits = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let ready = ready.clone();
                let hits = hits.clone();
                thread::spawn(move || {
                    let lp = EventLoop::new().unwrap();
                    let l = lp.clone();
                    lp.add_signal_handler(libc::SIGUSR2, move || {
                        hits.fetch_add(1, Ordering::SeqCst);
                        l.stop();
                    })
                    .unwrap();
                    ready.wait();
                    lp.run_forever();
                    lp.close();
                })
            })
            .collect();
        ready.wait();
        kill_self(libc::SIGUSR2);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // Both loops closed: the default disposition is back.
        assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
    });
}

/// The disposition is restored only when the last handler of the process goes.
#[test]
fn restored_after_the_last_handler() {
    in_child("restored_after_the_last_handler", || {
        let a = EventLoop::new().unwrap();
        let b = EventLoop::new().unwrap();
        a.add_signal_handler(libc::SIGHUP, || {}).unwrap();
        b.add_signal_handler(libc::SIGHUP, || {}).unwrap();
        assert!(a.remove_signal_handler(libc::SIGHUP).unwrap());
        assert_ne!(disposition(libc::SIGHUP), libc::SIG_DFL);
        b.close();
        assert_eq!(disposition(libc::SIGHUP), libc::SIG_DFL);
        // A handler installed again after a restore works.
        let (caught, count) = counter();
        a.add_signal_handler(libc::SIGHUP, count).unwrap();
        kill_self(libc::SIGHUP);
        run_until(&a, "SIGHUP after a restore", || caught.get() > 0);
        a.close();
        assert_eq!(disposition(libc::SIGHUP), libc::SIG_DFL);
    });
}

/// What was there before tulip comes back: here `SIG_IGN`.
#[test]
fn restores_what_was_there_before() {
    in_child("restores_what_was_there_before", || {
        // SAFETY: setting SIGUSR2 to ignored (no handler function involved).
        unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
        let lp = EventLoop::new().unwrap();
        let (caught, count) = counter();
        lp.add_signal_handler(libc::SIGUSR2, count).unwrap();
        kill_self(libc::SIGUSR2);
        run_until(&lp, "the callback", || caught.get() > 0);
        lp.close();
        assert_eq!(disposition(libc::SIGUSR2), libc::SIG_IGN);
        kill_self(libc::SIGUSR2); // ignored again: the process lives on
    });
}

/// Another library's handler registered through signal-hook-registry before tulip keeps
/// running after tulip's handler is removed (tulip leaves the disposition alone then).
#[test]
fn other_library_handler_respected() {
    in_child("other_library_handler_respected", || {
        static OTHER: AtomicUsize = AtomicUsize::new(0);
        // SAFETY: the action only increments an atomic (async-signal-safe).
        let id = unsafe {
            signal_hook_registry::register(libc::SIGUSR1, || {
                OTHER.fetch_add(1, Ordering::SeqCst);
            })
        }
        .unwrap();
        let lp = EventLoop::new().unwrap();
        let (caught, count) = counter();
        lp.add_signal_handler(libc::SIGUSR1, count).unwrap();
        kill_self(libc::SIGUSR1);
        run_until(&lp, "tulip's callback", || caught.get() > 0);
        assert_eq!(OTHER.load(Ordering::SeqCst), 1);
        assert!(lp.remove_signal_handler(libc::SIGUSR1).unwrap());
        lp.close();
        // The other library's handler still runs (and the process is not killed).
        // (`kill` may deliver the signal on another thread: wait for it.)
        kill_self(libc::SIGUSR1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while OTHER.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the other handler did not run");
            thread::sleep(Duration::from_millis(1));
        }
        signal_hook_registry::unregister(id);
    });
}

/// After the last handler is removed, a later SIGTERM really kills the process.
#[test]
fn restored_disposition_kills() {
    const NAME: &str = "restored_disposition_kills";
    if is_child(NAME) {
        let lp = EventLoop::new().unwrap();
        let (caught, count) = counter();
        lp.add_signal_handler(libc::SIGTERM, count).unwrap();
        kill_self(libc::SIGTERM);
        run_until(&lp, "the SIGTERM callback", || caught.get() > 0);
        assert!(lp.remove_signal_handler(libc::SIGTERM).unwrap());
        println!("handled one SIGTERM");
        kill_self(libc::SIGTERM);
        thread::sleep(Duration::from_secs(5));
        println!("still alive");
        return;
    }
    let (status, text) = spawn_child(NAME);
    assert!(text.contains("handled one SIGTERM"), "{text}");
    assert!(!text.contains("still alive"), "{text}");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}\n{text}");
}

/// The same when the loop is closed instead: closing removes its handlers.
// CPython: test_unix_events.py SelectorEventLoopSignalTests.test_close
#[test]
fn loop_close_restores_disposition() {
    const NAME: &str = "loop_close_restores_disposition";
    if is_child(NAME) {
        let lp = EventLoop::new().unwrap();
        lp.add_signal_handler(libc::SIGTERM, || {}).unwrap();
        drop(lp); // dropping the owner closes the loop
        println!("closed");
        kill_self(libc::SIGTERM);
        thread::sleep(Duration::from_secs(5));
        println!("still alive");
        return;
    }
    let (status, text) = spawn_child(NAME);
    assert!(
        text.contains("closed") && !text.contains("still alive"),
        "{text}"
    );
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}\n{text}");
}

/// `tulip::signal` as a stream: each arrival is an item; dropping the stream restores the
/// disposition; the stream ends when its loop closes.
#[test]
fn signal_stream() {
    in_child("signal_stream", || {
        let lp = EventLoop::new().unwrap();
        let leftover = lp.run_until_complete(async {
            let mut usr1 = tulip::signal(libc::SIGUSR1).unwrap();
            let mut other = tulip::signal(libc::SIGUSR1).unwrap();
            for _ in 0..3 {
                kill_self(libc::SIGUSR1);
                assert_eq!(usr1.next().await, Some(()));
                assert_eq!(other.recv().await, Some(()));
            }
            drop(usr1);
            drop(other);
            assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
            assert_eq!(
                tulip::signal(libc::SIGKILL).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            tulip::signal(libc::SIGUSR2).unwrap()
        });
        assert_eq!(leftover.signum(), libc::SIGUSR2);
        lp.close();
        assert_eq!(disposition(libc::SIGUSR2), libc::SIG_DFL);
        let lp2 = EventLoop::new().unwrap();
        let mut leftover = leftover;
        assert_eq!(lp2.run_until_complete(leftover.next()), None);
        lp2.close();
    });
}
