//! Tasks, LoopFuture, sleep/timeout/yield_now and tulip::run.

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tulip::EventLoop;

#[test]
fn spawn_and_await_output() {
    let _w = support::watchdog("spawn_and_await_output", 20);
    let v = tulip::run(async {
        let a = tulip::spawn(async { 20 });
        let b = tulip::get_running_loop().spawn(async {
            tulip::sleep(Duration::from_millis(2)).await;
            22
        });
        a.await + b.await
    });
    assert_eq!(v, 42);
}

#[test]
fn tasks_need_not_be_send() {
    let _w = support::watchdog("tasks_need_not_be_send", 20);
    tulip::run(async {
        let shared = Rc::new(Cell::new(0));
        let mut ts = Vec::new();
        for i in 1..=10 {
            let s = shared.clone();
            ts.push(tulip::spawn(async move {
                tulip::yield_now().await;
                s.set(s.get() + i);
            }));
        }
        for t in ts {
            t.await;
        }
        assert_eq!(shared.get(), 55);
    });
}

#[test]
fn a_panic_in_a_task_reaches_its_awaiter() {
    let _w = support::watchdog("task_panic_reaches_awaiter", 20);
    tulip::run(async {
        let t = tulip::spawn(async {
            tulip::yield_now().await;
            panic!("task failed");
        });
        let outer = tulip::spawn(async move {
            tulip::yield_now().await;
            t.await
        });
        // The awaiting task panics in turn; awaiting it from here resumes the same panic.
        let caught = std::panic::AssertUnwindSafe(outer);
        let r = futures_lite::FutureExt::catch_unwind(caught).await;
        let payload = r.expect_err("the panic must propagate");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task failed"));
    });
}

#[test]
fn an_unretrieved_task_panic_goes_to_the_exception_handler() {
    let _w = support::watchdog("unretrieved_task_panic", 20);
    let lp = EventLoop::new().unwrap();
    let seen: Rc<RefCell<Vec<String>>> = Rc::default();
    let s = seen.clone();
    lp.set_exception_handler(move |_, ctx| s.borrow_mut().push(ctx.to_string()));
    lp.run_until_complete(async {
        tulip::spawn(async { panic!("detached boom") }).detach();
        let dropped_later = tulip::spawn(async { panic!("dropped boom") });
        tulip::sleep(Duration::from_millis(5)).await;
        assert!(dropped_later.is_finished());
        drop(dropped_later);
        // A task that finished fine and is dropped reports nothing.
        let ok = tulip::spawn(async { 1 });
        tulip::yield_now().await;
        drop(ok);
    });
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("never retrieved") && seen[0].contains("detached boom"));
    assert!(seen[1].contains("dropped boom"));
}

#[test]
fn dropping_a_task_detaches_it_and_cancel_drops_its_future() {
    let _w = support::watchdog("detach_and_cancel", 20);
    tulip::run(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        drop(tulip::spawn(async move {
            tulip::sleep(Duration::from_millis(2)).await;
            r.set(true);
        }));
        struct SetOnDrop(Rc<Cell<bool>>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = Rc::new(Cell::new(false));
        let guard = SetOnDrop(dropped.clone());
        let reached_end = Rc::new(Cell::new(false));
        let re = reached_end.clone();
        let t = tulip::spawn(async move {
            let _g = guard;
            tulip::sleep(Duration::from_secs(30)).await;
            re.set(true);
        });
        tulip::yield_now().await;
        assert_eq!(t.cancel().await, None);
        assert!(dropped.get());
        assert!(!reached_end.get());
        // Cancelling a finished task gives its output.
        let done = tulip::spawn(async { 5 });
        tulip::yield_now().await;
        tulip::yield_now().await;
        assert_eq!(done.cancel().await, Some(5));
        tulip::sleep(Duration::from_millis(10)).await;
        assert!(ran.get(), "detached task went on running");
    });
}

#[test]
fn run_cancels_leftover_tasks_and_closes_the_loop() {
    let _w = support::watchdog("run_cancels_leftovers", 20);
    let dropped = Rc::new(Cell::new(0));
    struct Count(Rc<Cell<u32>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let d = dropped.clone();
    let lp_seen: Rc<RefCell<Option<EventLoop>>> = Rc::default();
    let ls = lp_seen.clone();
    tulip::run(async move {
        *ls.borrow_mut() = Some(tulip::get_running_loop());
        for _ in 0..3 {
            let c = Count(d.clone());
            tulip::spawn(async move {
                let _c = c;
                // Waits on a future nobody completes: a reference cycle without close.
                let never = tulip::get_running_loop().create_future::<()>();
                let _ = never.clone().await;
            })
            .detach();
        }
        tulip::yield_now().await;
    });
    assert_eq!(dropped.get(), 3);
    assert!(lp_seen.borrow().as_ref().unwrap().is_closed());
}

#[test]
fn yield_now_lets_other_tasks_run() {
    let _w = support::watchdog("yield_now", 20);
    tulip::run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let t = tulip::spawn(async move {
            for i in 0..3 {
                l.borrow_mut().push(("b", i));
                tulip::yield_now().await;
            }
        });
        for i in 0..3 {
            log.borrow_mut().push(("a", i));
            tulip::yield_now().await;
        }
        t.await;
        let kinds: Vec<_> = log.borrow().iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["a", "b", "a", "b", "a", "b"]);
    });
}

#[test]
fn sleep_and_timeout() {
    let _w = support::watchdog("sleep_and_timeout", 20);
    tulip::run(async {
        let t0 = Instant::now();
        tulip::sleep(Duration::from_millis(15)).await;
        assert!(t0.elapsed() >= Duration::from_millis(15));
        tulip::sleep(Duration::ZERO).await;

        let dropped = Rc::new(Cell::new(false));
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let f = Flag(dropped.clone());
        let t0 = Instant::now();
        let r = tulip::timeout(Duration::from_millis(10), async move {
            let _f = f;
            tulip::sleep(Duration::from_secs(30)).await;
        })
        .await;
        assert!(r.is_err());
        assert!(dropped.get(), "the inner future is cancelled on expiry");
        assert!(t0.elapsed() < Duration::from_secs(5));
        let e: std::io::Error = r.unwrap_err().into();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);

        let ok = tulip::timeout(Duration::from_secs(5), async {
            tulip::sleep(Duration::from_millis(1)).await;
            7
        })
        .await;
        assert_eq!(ok, Ok(7));
    });
}

#[test]
fn loop_future_completed_by_callbacks() {
    let _w = support::watchdog("loop_future", 20);
    tulip::run(async {
        let lp = tulip::get_running_loop();
        let fut = lp.create_future::<String>();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        fut.add_done_callback(move |f| {
            assert!(f.done());
            o.borrow_mut().push(f.result().unwrap().unwrap());
        });
        let f = fut.clone();
        lp.call_later(Duration::from_millis(3), move || f.set_result("hi".into()));
        assert!(!fut.done());
        assert_eq!(fut.clone().await.unwrap(), "hi");
        tulip::yield_now().await;
        assert_eq!(*order.borrow(), vec!["hi".to_string()]);
        // A second awaiter of a non-Clone value gets an error, not a panic.
        assert!(fut.clone().await.is_err());

        let failing = lp.create_future::<u8>();
        let f = failing.clone();
        lp.call_soon(move || f.set_exception(std::io::Error::other("nope")));
        assert_eq!(failing.await.unwrap_err().to_string(), "nope");

        let cancelled = lp.create_future::<u8>();
        let c = cancelled.clone();
        lp.call_soon(move || assert!(c.cancel()));
        let e = cancelled.clone().await.unwrap_err();
        assert!(tulip::is_cancelled(&e));
        assert!(cancelled.cancelled());
        assert!(!cancelled.cancel());
    });
}

#[test]
#[should_panic(expected = "already done")]
fn setting_a_result_twice_panics() {
    let lp = EventLoop::new().unwrap();
    let f = lp.create_future::<u8>();
    f.set_result(1);
    f.set_result(2);
}

/// A waker handed to another thread, which wakes it there: the task is woken through the
/// inbox.
#[test]
fn wakers_work_from_other_threads() {
    let _w = support::watchdog("cross_thread_wakers", 20);
    struct Shared {
        done: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }
    struct WaitDone(Arc<Shared>);
    impl Future for WaitDone {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.0.done.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }
    tulip::run(async {
        for _ in 0..100 {
            let shared = Arc::new(Shared {
                done: AtomicBool::new(false),
                waker: Mutex::new(None),
            });
            let s = shared.clone();
            let t = tulip::spawn(WaitDone(shared.clone()));
            let th = std::thread::spawn(move || {
                loop {
                    if let Some(w) = s.waker.lock().unwrap().take() {
                        s.done.store(true, Ordering::Release);
                        w.wake();
                        return;
                    }
                    std::thread::yield_now();
                }
            });
            t.await;
            th.join().unwrap();
        }
        // The main future's own waker, from another thread.
        let shared = Arc::new(Shared {
            done: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let s = shared.clone();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            s.done.store(true, Ordering::Release);
            if let Some(w) = s.waker.lock().unwrap().take() {
                w.wake();
            }
        });
        WaitDone(shared).await;
        th.join().unwrap();
    });
}

#[test]
fn many_tasks() {
    let _w = support::watchdog("many_tasks", 30);
    let n = tulip::run(async {
        let ts: Vec<_> = (0..10_000u64)
            .map(|i| {
                tulip::spawn(async move {
                    tulip::yield_now().await;
                    i
                })
            })
            .collect();
        let mut sum = 0;
        for t in ts {
            sum += t.await;
        }
        sum
    });
    assert_eq!(n, (0..10_000).sum::<u64>());
}

#[tulip::test]
async fn tulip_test_macro_runs_on_a_loop() {
    assert!(tulip::get_running_loop().is_running());
}

#[test]
fn dropping_a_loop_without_close_drops_its_tasks() {
    let _w = support::watchdog("drop_without_close", 20);
    struct Count(Rc<Cell<u32>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let dropped = Rc::new(Cell::new(0));
    {
        let lp = EventLoop::new().unwrap();
        for _ in 0..100 {
            let c = Count(dropped.clone());
            lp.spawn(async move {
                let _c = c;
                tulip::sleep(Duration::from_secs(3600)).await;
            })
            .detach();
        }
        lp.run_until_complete(tulip::yield_now());
        assert_eq!(dropped.get(), 0);
    }
    assert_eq!(dropped.get(), 100);
}
