//! Work off the loop thread: `to_thread` / `run_in_executor` / `shutdown_default_executor`,
//! `oneshot` completers and `run_coroutine_threadsafe`. CPython's
//! `Lib/test/test_asyncio/test_threads.py` (`ToThreadTests`), the executor tests of
//! `test_events.py` / `test_base_events.py` and `test_tasks.py`'s
//! `RunCoroutineThreadsafeTests`, translated where they apply (each test names its source),
//! and tulip's own cases.

mod support;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tulip::{ConcurrentFuture, EventLoop, is_cancelled};

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

// ---- to_thread ------------------------------------------------------------------------

// CPython: test_threads.py ToThreadTests.test_to_thread
#[test]
fn test_to_thread() {
    let _w = support::watchdog("test_to_thread", 20);
    let result = tulip::run(async { tulip::to_thread(|| [40, 2].iter().sum::<i32>()).await });
    assert_eq!(result.unwrap(), 42);
}

// CPython: test_threads.py ToThreadTests.test_to_thread_exception — a panic in the function
// resumes in the awaiting task, with its message.
#[test]
fn test_to_thread_exception() {
    let _w = support::watchdog("test_to_thread_exception", 20);
    let r = catch_unwind(AssertUnwindSafe(|| {
        tulip::run(async {
            let _: io::Result<()> = tulip::to_thread(|| panic!("test")).await;
        })
    }));
    let p = r.expect_err("the panic reaches the awaiter");
    assert_eq!(panic_message(&*p), "test");
}

// tulip's own: the Rust form of an exception, an `Err`, is the function's result as it is.
#[test]
fn to_thread_error_is_the_result() {
    let _w = support::watchdog("to_thread_error_is_the_result", 20);
    let r = tulip::run(async {
        tulip::to_thread(|| -> io::Result<()> { Err(io::Error::other("test")) }).await
    });
    let inner = r.expect("the job ran").unwrap_err();
    assert_eq!(inner.to_string(), "test");
}

// CPython: test_threads.py ToThreadTests.test_to_thread_once
#[test]
fn test_to_thread_once() {
    let _w = support::watchdog("test_to_thread_once", 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    tulip::run(async move {
        tulip::to_thread(move || c.fetch_add(1, Ordering::SeqCst))
            .await
            .unwrap();
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// CPython: test_threads.py ToThreadTests.test_to_thread_concurrent
#[test]
fn test_to_thread_concurrent() {
    let _w = support::watchdog("test_to_thread_concurrent", 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    tulip::run(async move {
        let futs: Vec<_> = (0..10)
            .map(|_| {
                let c = c.clone();
                tulip::to_thread(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for f in futs {
            f.await.unwrap();
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 10);
}

// CPython: test_threads.py ToThreadTests.test_to_thread_args_kwargs — arguments are what the
// closure captures. (test_to_thread_contextvars does not apply: Rust has no contextvars.)
#[test]
fn test_to_thread_args_kwargs() {
    let _w = support::watchdog("test_to_thread_args_kwargs", 20);
    let (arg, something) = (String::from("test"), true);
    let got = tulip::run(async move { tulip::to_thread(move || (arg, something)).await });
    assert_eq!(got.unwrap(), (String::from("test"), true));
}

// ---- run_in_executor / shutdown_default_executor ---------------------------------------

// CPython: test_events.py EventLoopTestsMixin.test_run_in_executor — the result, from
// another thread, and the loop method needs no running loop to submit.
#[test]
fn test_run_in_executor() {
    let _w = support::watchdog("test_run_in_executor", 20);
    let lp = EventLoop::new().unwrap();
    let f = lp.run_in_executor(|| ("yo", thread::current().id()));
    let (res, id) = lp.run_until_complete(f).unwrap();
    assert_eq!(res, "yo");
    assert_ne!(id, thread::current().id());
    lp.close();
}

/// A value that counts its drops.
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// CPython: test_events.py EventLoopTestsMixin.test_run_in_executor_cancel — a job whose
// future is dropped while it runs finishes on its thread; shutdown_default_executor waits for
// it, nothing of it is left on the loop, and the loop closes with nothing called later.
#[test]
fn test_run_in_executor_cancel() {
    let _w = support::watchdog("test_run_in_executor_cancel", 20);
    let lp = EventLoop::new().unwrap();
    let started = Arc::new(Barrier::new(2));
    let (release, wait_release) = mpsc::channel::<()>();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (s, d) = (started.clone(), dropped.clone());
    let job = lp.run_in_executor(move || {
        s.wait();
        wait_release.recv().unwrap();
        Counted(d)
    });
    started.wait(); // the job runs
    assert_eq!(lp.executor_jobs(), 1);
    drop(job); // cancel: detaches it
    assert_eq!(lp.executor_jobs(), 1, "a running job cannot be interrupted");
    release.send(()).unwrap();
    lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_secs(10))))
        .unwrap();
    assert_eq!(lp.executor_jobs(), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "its result was dropped");
    lp.close();
    thread::sleep(Duration::from_millis(20));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

// tulip's own, after base_events.py's run_in_executor (`_check_default_executor`: asyncio
// raises RuntimeError "Executor shutdown has been called"): after shutdown, jobs are refused
// and the function is dropped without running; other loops are not affected.
#[test]
fn default_executor_call_after_shutdown() {
    let _w = support::watchdog("default_executor_call_after_shutdown", 20);
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    tulip::run(async move {
        let lp = tulip::get_running_loop();
        lp.shutdown_default_executor(None).await.unwrap();
        let c2 = c.clone();
        let err = tulip::run_in_executor(move || c2.fetch_add(1, Ordering::SeqCst))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(err.to_string().contains("shutdown"), "{err}");
        let err = tulip::to_thread(|| ()).await.unwrap_err();
        assert!(err.to_string().contains("shutdown"), "{err}");
        // A second shutdown is a no-op.
        lp.shutdown_default_executor(Some(Duration::ZERO))
            .await
            .unwrap();
    });
    assert_eq!(called.load(Ordering::SeqCst), 0);
    // Another loop still has its executor.
    assert_eq!(
        tulip::run(async { tulip::to_thread(|| 7).await }).unwrap(),
        7
    );
}

// CPython: test_base_events.py BaseEventLoopTests.test_shutdown_default_executor_timeout — a
// job that does not finish in time: the wait ends with TimedOut (asyncio warns "The executor
// did not finishing joining its threads within ..."), and the job is left to finish.
#[test]
fn test_shutdown_default_executor_timeout() {
    let _w = support::watchdog("test_shutdown_default_executor_timeout", 20);
    let (release, wait_release) = mpsc::channel::<()>();
    let lp = EventLoop::new().unwrap();
    let job = lp.run_in_executor(move || wait_release.recv().unwrap());
    let t0 = Instant::now();
    let err = lp
        .run_until_complete(lp.shutdown_default_executor(Some(Duration::from_millis(30))))
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("1 job"), "{err}");
    // The job is still there, and its result still arrives.
    release.send(()).unwrap();
    lp.run_until_complete(job).unwrap();
    lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::from_secs(10))))
        .unwrap();
    lp.close();
}

// tulip's own: shutdown with nothing submitted completes at once; on a closed loop,
// run_in_executor is refused ("event loop is closed").
#[test]
fn shutdown_without_jobs_and_closed_loop() {
    let _w = support::watchdog("shutdown_without_jobs_and_closed_loop", 20);
    let lp = EventLoop::new().unwrap();
    lp.run_until_complete(lp.shutdown_default_executor(Some(Duration::ZERO)))
        .unwrap();
    lp.close();
    let lp = EventLoop::new().unwrap();
    lp.close();
    let f = lp.run_in_executor(|| 1);
    let err = futures_lite::future::block_on(f).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
}

// tulip's own: a burst of 1,000 jobs returns every result, to the right awaiter, while the
// loop stays responsive.
#[test]
fn burst_of_1000_jobs() {
    let _w = support::watchdog("burst_of_1000_jobs", 60);
    tulip::run(async {
        let jobs: Vec<_> = (0..1000u64)
            .map(|i| tulip::run_in_executor(move || i * 3))
            .collect();
        let ticks = tulip::spawn(async {
            for _ in 0..5 {
                tulip::sleep(Duration::from_millis(1)).await;
            }
        });
        let mut sum = 0;
        for (i, j) in jobs.into_iter().enumerate() {
            let v = j.await.unwrap();
            assert_eq!(v, i as u64 * 3);
            sum += v;
        }
        assert_eq!(sum, 3 * 999 * 1000 / 2);
        ticks.await;
        let lp = tulip::get_running_loop();
        lp.shutdown_default_executor(Some(Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(lp.executor_jobs(), 0);
    });
}

// tulip's own: a task awaiting a job is cancelled (dropped) while the job runs: the task is
// gone, the job finishes on its thread, nothing is left registered on the loop.
#[test]
fn cancel_task_awaiting_job() {
    let _w = support::watchdog("cancel_task_awaiting_job", 20);
    let (release, wait_release) = mpsc::channel::<()>();
    let started = Arc::new(Barrier::new(2));
    let s = started.clone();
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    tulip::run(async move {
        let lp = tulip::get_running_loop();
        let task = tulip::spawn(async move {
            tulip::to_thread(move || {
                s.wait();
                wait_release.recv().unwrap();
                f.fetch_add(1, Ordering::SeqCst);
            })
            .await
        });
        tulip::to_thread(move || started.wait()).await.unwrap();
        assert_eq!(task.cancel().await.map(|r| r.is_ok()), None);
        assert_eq!(lp.executor_jobs(), 1);
        release.send(()).unwrap();
        lp.shutdown_default_executor(Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(lp.executor_jobs(), 0);
    });
    assert_eq!(finished.load(Ordering::SeqCst), 1);
}

// ---- oneshot ----------------------------------------------------------------------------

// tulip's own: a thread completes a future that a loop task awaits; the loop, blocked
// waiting for I/O with no timer, wakes at once.
#[test]
fn oneshot_completed_from_another_thread() {
    let _w = support::watchdog("oneshot_completed_from_another_thread", 20);
    tulip::run(async {
        let (completer, fut) = tulip::oneshot::<String>();
        let (sent_tx, sent_rx) = mpsc::channel();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            sent_tx.send(Instant::now()).unwrap();
            completer.set_result("from a thread".to_owned()).unwrap();
        });
        assert_eq!(fut.await.unwrap(), "from a thread");
        let woke = Instant::now();
        let sent = sent_rx.recv().unwrap();
        assert!(
            woke - sent < Duration::from_millis(500),
            "{:?}",
            woke - sent
        );
        t.join().unwrap();
    });
}

// tulip's own: set_exception, a dropped completer, cancel seen by the completer.
#[test]
fn oneshot_errors_and_cancel() {
    let _w = support::watchdog("oneshot_errors_and_cancel", 20);
    tulip::run(async {
        let (c, fut) = tulip::oneshot::<u32>();
        thread::spawn(move || c.set_exception(io::Error::other("boom")).unwrap());
        assert_eq!(fut.await.unwrap_err().to_string(), "boom");

        let (c, fut) = tulip::oneshot::<u32>();
        thread::spawn(move || drop(c));
        assert_eq!(fut.await.unwrap_err().kind(), io::ErrorKind::BrokenPipe);

        let (c, fut) = tulip::oneshot::<u32>();
        assert!(!c.is_cancelled());
        assert!(fut.cancel());
        assert!(!fut.cancel(), "already done");
        assert!(fut.cancelled());
        assert!(c.is_cancelled());
        assert_eq!(c.set_result(5), Err(5), "the value comes back");
        assert!(is_cancelled(&fut.await.unwrap_err()));

        let (c, fut) = tulip::oneshot::<u32>();
        drop(fut);
        assert!(c.is_cancelled(), "nobody waits");
        assert_eq!(c.set_result(6), Err(6));
    });
}

// tulip's own: `wait_timeout` leaves the future pending; it can still be awaited or waited
// for, between plain threads too.
#[test]
fn oneshot_wait_timeout() {
    let _w = support::watchdog("oneshot_wait_timeout", 20);
    let (c, mut fut) = tulip::oneshot::<u32>();
    let err = fut.wait_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(!fut.done());
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        c.set_result(9).unwrap();
    });
    assert_eq!(fut.wait().unwrap(), 9);
}

// ---- run_coroutine_threadsafe -----------------------------------------------------------

/// A loop running on its own thread until the returned stopper is dropped.
struct LoopThread {
    handle: tulip::LoopHandle,
    thread: Option<thread::JoinHandle<()>>,
}

impl LoopThread {
    fn start() -> LoopThread {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let lp = EventLoop::new().unwrap();
            tx.send(lp.handle()).unwrap();
            lp.run_forever();
            lp.close();
        });
        LoopThread {
            handle: rx.recv().unwrap(),
            thread: Some(thread),
        }
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        let _ = self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `add` of RunCoroutineThreadsafeTests: waits 50 ms and returns a + b, or fails.
async fn add(a: i32, b: i32, fail: bool) -> io::Result<i32> {
    tulip::sleep(Duration::from_millis(50)).await;
    if fail {
        return Err(io::Error::other("Fail!"));
    }
    Ok(a + b)
}

// CPython: test_tasks.py RunCoroutineThreadsafeTests.test_run_coroutine_threadsafe — a
// coroutine submitted from a thread of the loop's executor, its result waited for there.
#[test]
fn test_run_coroutine_threadsafe() {
    let _w = support::watchdog("test_run_coroutine_threadsafe", 20);
    let lp = EventLoop::new().unwrap();
    let handle = lp.handle();
    let target = lp.run_in_executor(move || {
        tulip::run_coroutine_threadsafe(|| add(1, 2, false), &handle)?.wait()
    });
    assert_eq!(lp.run_until_complete(target).unwrap().unwrap().unwrap(), 3);
    lp.close();
}

// CPython: test_tasks.py RunCoroutineThreadsafeTests.test_run_coroutine_threadsafe_with_exception
// — both Rust forms: an `Err` output, and a panic, which resumes in the waiting thread.
#[test]
fn test_run_coroutine_threadsafe_with_exception() {
    let _w = support::watchdog("test_run_coroutine_threadsafe_with_exception", 20);
    let lt = LoopThread::start();
    let r = tulip::run_coroutine_threadsafe(|| add(1, 2, true), &lt.handle)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(r.unwrap_err().to_string(), "Fail!");

    let fut = tulip::run_coroutine_threadsafe(
        || async {
            tulip::sleep(Duration::from_millis(5)).await;
            panic!("Fail!");
        },
        &lt.handle,
    )
    .unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| fut.wait())).unwrap_err();
    assert_eq!(panic_message(&*p), "Fail!");
}

// CPython: test_tasks.py RunCoroutineThreadsafeTests.test_run_coroutine_threadsafe_with_timeout
// — `result(timeout=0)` times out; cancelling then drops the task on the loop, so no task is
// left pending.
#[test]
fn test_run_coroutine_threadsafe_with_timeout() {
    let _w = support::watchdog("test_run_coroutine_threadsafe_with_timeout", 20);
    let lt = LoopThread::start();
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = Counted(dropped.clone());
    let mut fut = tulip::run_coroutine_threadsafe(
        move || async move {
            let _guard = guard;
            add(1, 2, false).await
        },
        &lt.handle,
    )
    .unwrap();
    let err = fut.wait_timeout(Duration::ZERO).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(fut.cancel());
    // The task's future is dropped on the loop at its await point.
    let t0 = Instant::now();
    while dropped.load(Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the task was not dropped"
        );
        thread::sleep(Duration::from_millis(1));
    }
    assert!(is_cancelled(&fut.wait().unwrap_err()));
}

// CPython: test_tasks.py RunCoroutineThreadsafeTests.test_run_coroutine_threadsafe_task_cancelled
// — the task is cancelled (from the waiting side; Rust has no self-cancel): CancelledError.
#[test]
fn test_run_coroutine_threadsafe_task_cancelled() {
    let _w = support::watchdog("test_run_coroutine_threadsafe_task_cancelled", 20);
    let lt = LoopThread::start();
    let fut = tulip::run_coroutine_threadsafe(
        || async {
            tulip::sleep(Duration::from_secs(3600)).await;
            1
        },
        &lt.handle,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(10)); // the task waits in its sleep
    assert!(fut.cancel());
    assert!(is_cancelled(&fut.wait().unwrap_err()));
}

// tulip's own: a closed loop refuses at once; a loop that closes before the task finishes
// gives a clear error; waiting on the loop's own thread is refused (it would deadlock).
#[test]
fn run_coroutine_threadsafe_closed_loop() {
    let _w = support::watchdog("run_coroutine_threadsafe_closed_loop", 20);
    let lp = EventLoop::new().unwrap();
    let handle = lp.handle();
    // Submitted, then the loop closes without having run it.
    let mut pending = tulip::run_coroutine_threadsafe(|| async { 1 }, &handle).unwrap();
    // The loop is not running, and can run only on this thread: waiting here never ends.
    let err = pending.wait_timeout(Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Deadlock);
    lp.close();
    let err = pending.wait().unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    let err = tulip::run_coroutine_threadsafe(|| async { 1 }, &handle).unwrap_err();
    assert_eq!(err.to_string(), "event loop is closed");

    // Running when it closes.
    let lt = LoopThread::start();
    let fut =
        tulip::run_coroutine_threadsafe(|| tulip::sleep(Duration::from_secs(3600)), &lt.handle)
            .unwrap();
    drop(lt);
    let err = fut.wait().unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");

    // wait() on the loop's own thread.
    tulip::run(async {
        let handle = tulip::get_running_loop().handle();
        let fut = tulip::run_coroutine_threadsafe(|| async { 2 }, &handle).unwrap();
        let err = fut.wait().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Deadlock);
        // Awaiting is the way.
        let fut = tulip::run_coroutine_threadsafe(|| async { 2 }, &handle).unwrap();
        assert_eq!(fut.await.unwrap(), 2);
    });
}

// tulip's own: results across threads — four threads submit 50 coroutines each to one loop
// and get each result back; a ConcurrentFuture is also awaited on another executor.
#[test]
fn results_across_threads() {
    let _w = support::watchdog("results_across_threads", 30);
    let lt = LoopThread::start();
    let loop_thread = {
        let (tx, rx) = mpsc::channel();
        tulip::run_coroutine_threadsafe(
            move || async move { tx.send(thread::current().id()).unwrap() },
            &lt.handle,
        )
        .unwrap()
        .wait()
        .unwrap();
        rx.recv().unwrap()
    };
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let h = lt.handle.clone();
            thread::spawn(move || {
                let futs: Vec<ConcurrentFuture<(u64, thread::ThreadId)>> = (0..50u64)
                    .map(|i| {
                        tulip::run_coroutine_threadsafe(
                            move || async move {
                                tulip::yield_now().await;
                                (w * 1000 + i, thread::current().id())
                            },
                            &h,
                        )
                        .unwrap()
                    })
                    .collect();
                for (i, f) in futs.into_iter().enumerate() {
                    let (v, on) = f.wait().unwrap();
                    assert_eq!(v, w * 1000 + i as u64);
                    assert_eq!(on, loop_thread);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Awaited from another executor.
    let fut = tulip::run_coroutine_threadsafe(|| add(20, 22, false), &lt.handle).unwrap();
    assert_eq!(futures_lite::future::block_on(fut).unwrap().unwrap(), 42);
}

// tulip's own: a detached ConcurrentFuture (dropped) lets its task run on; a panic of such a
// task goes to the loop's exception handler.
#[test]
fn detached_task_panic_is_reported() {
    let _w = support::watchdog("detached_task_panic_is_reported", 20);
    let lp = EventLoop::new().unwrap();
    let reports = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(move |_, ctx| r.borrow_mut().push(ctx.message().to_owned()));
    let handle = lp.handle();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    let fut = tulip::run_coroutine_threadsafe(
        move || async move {
            tulip::sleep(Duration::from_millis(5)).await;
            ran2.fetch_add(1, Ordering::SeqCst);
            panic!("detached");
        },
        &handle,
    )
    .unwrap();
    drop(fut);
    lp.run_until_complete(tulip::sleep(Duration::from_millis(50)));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(reports.borrow().len(), 1, "{:?}", reports.borrow());
    lp.close();
}
