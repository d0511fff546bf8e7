//! asyncio's `Event` (from `event-listener`) and `Barrier` (from `async-lock`) on tulip.
//! `event_listener::Event` is a notification without a flag; asyncio's `Event` is the flag and
//! the notification together — the dozen lines below (the README shows them). CPython's
//! `Lib/test/test_asyncio/test_locks.py` (`EventTests`, `BarrierTests`) is translated where it
//! applies; each test names its source. Wakes from std threads included.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use async_lock::Barrier;

/// asyncio's `Event` on `event_listener::Event`: `set` raises the flag and wakes every waiter,
/// `wait` returns at once when the flag is up, else when the next `set` comes — even if a
/// `clear` followed it before the waiter ran, as in asyncio.
#[derive(Debug, Default)]
struct AsyncioEvent {
    flag: AtomicBool,
    event: event_listener::Event,
}

impl AsyncioEvent {
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    fn clear(&self) {
        self.flag.store(false, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    async fn wait(&self) -> bool {
        if self.is_set() {
            return true;
        }
        let listener = self.event.listen();
        if self.is_set() {
            return true; // set between the check and `listen`
        }
        listener.await;
        true
    }

    /// How many tasks wait (asyncio's `len(ev._waiters)`).
    fn waiters(&self) -> usize {
        self.event.total_listeners()
    }
}

async fn run_briefly(n: usize) {
    for _ in 0..n {
        tulip::yield_now().await;
    }
}

// ---- Event ------------------------------------------------------------------------------

// CPython: test_locks.py EventTests.test_wait — t3, started after t1 and t2 began waiting but
// before `set`, sees the flag first; then the waiters in the order they came.
#[tulip::test]
async fn test_event_wait() {
    let _w = support::watchdog("test_event_wait", 10);
    let ev = Rc::new(AsyncioEvent::default());
    assert!(!ev.is_set());
    let result = Rc::new(RefCell::new(Vec::new()));
    let c = |n: i32| {
        let (ev, result) = (ev.clone(), result.clone());
        tulip::spawn(async move {
            if ev.wait().await {
                result.borrow_mut().push(n);
            }
        })
    };
    let t1 = c(1);
    let t2 = c(2);
    run_briefly(1).await;
    assert!(result.borrow().is_empty());
    let t3 = c(3);
    ev.set();
    run_briefly(1).await;
    assert_eq!(*result.borrow(), [3, 1, 2]);
    assert!(t1.is_finished() && t2.is_finished() && t3.is_finished());
}

// CPython: test_locks.py EventTests.test_wait_on_set
#[tulip::test]
async fn test_event_wait_on_set() {
    let _w = support::watchdog("test_event_wait_on_set", 10);
    let ev = AsyncioEvent::default();
    ev.set();
    assert!(ev.wait().await);
}

// CPython: test_locks.py EventTests.test_wait_cancel — a cancelled wait leaves no waiter.
#[tulip::test]
async fn test_event_wait_cancel() {
    let _w = support::watchdog("test_event_wait_cancel", 10);
    let ev = Rc::new(AsyncioEvent::default());
    let wait = tulip::spawn({
        let ev = ev.clone();
        async move { ev.wait().await }
    });
    run_briefly(1).await;
    assert_eq!(ev.waiters(), 1);
    assert!(wait.cancel().await.is_none());
    assert_eq!(ev.waiters(), 0);
    // And the timed-out form.
    assert!(
        tulip::timeout(Duration::from_millis(5), ev.wait())
            .await
            .is_err()
    );
    assert_eq!(ev.waiters(), 0);
}

// CPython: test_locks.py EventTests.test_clear
#[tulip::test]
async fn test_event_clear() {
    let _w = support::watchdog("test_event_clear", 10);
    let ev = AsyncioEvent::default();
    assert!(!ev.is_set());
    ev.set();
    assert!(ev.is_set());
    ev.clear();
    assert!(!ev.is_set());
}

// CPython: test_locks.py EventTests.test_clear_with_waiters
#[tulip::test]
async fn test_event_clear_with_waiters() {
    let _w = support::watchdog("test_event_clear_with_waiters", 10);
    let ev = Rc::new(AsyncioEvent::default());
    let done = Rc::new(Cell::new(false));
    let t = tulip::spawn({
        let (ev, done) = (ev.clone(), done.clone());
        async move {
            if ev.wait().await {
                done.set(true);
            }
        }
    });
    run_briefly(1).await;
    assert!(!done.get());
    ev.set();
    ev.clear();
    assert!(!ev.is_set());
    ev.set();
    ev.set();
    assert_eq!(ev.waiters(), 1);
    run_briefly(1).await;
    assert!(done.get());
    assert_eq!(ev.waiters(), 0);
    assert!(t.is_finished());
}

// tulip's own, asyncio's documented behaviour: `set` wakes the tasks waiting at that moment
// even if `clear` comes before they run. (The loop of the crate's docs — re-check the flag and
// listen again — would put them back to sleep; `AsyncioEvent::wait` does not loop.)
#[tulip::test]
async fn event_set_then_clear_still_releases_the_waiters() {
    let _w = support::watchdog("event_set_then_clear_still_releases", 10);
    let ev = Rc::new(AsyncioEvent::default());
    let t = tulip::spawn({
        let ev = ev.clone();
        async move { ev.wait().await }
    });
    run_briefly(1).await;
    ev.set();
    ev.clear();
    let woke = tulip::timeout(Duration::from_secs(5), t).await;
    assert_eq!(woke, Ok(true));
    assert!(!ev.is_set());
}

// tulip's own: a std thread sets the event while a loop task awaits it; the loop wakes from
// its selector.
#[tulip::test]
async fn event_set_by_another_thread_wakes_the_loop() {
    let _w = support::watchdog("event_set_by_another_thread", 10);
    let ev = Arc::new(AsyncioEvent::default());
    let th = thread::spawn({
        let ev = ev.clone();
        move || {
            thread::sleep(Duration::from_millis(20));
            ev.set();
        }
    });
    let woke = tulip::timeout(Duration::from_secs(5), ev.wait()).await;
    assert_eq!(woke, Ok(true));
    th.join().unwrap();
}

// tulip's own: the bare `event_listener::Event` — `notify(1)` wakes one listener, in the
// order they listened; a std thread's notification wakes the loop.
#[tulip::test]
async fn event_listener_notify_one_wakes_the_oldest_listener() {
    let _w = support::watchdog("event_listener_notify_one", 10);
    let ev = Arc::new(event_listener::Event::new());
    let woke = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (ev, woke) = (ev.clone(), woke.clone());
            tulip::spawn(async move {
                ev.listen().await;
                woke.borrow_mut().push(i);
            })
        })
        .collect();
    run_briefly(1).await;
    assert_eq!(ev.total_listeners(), 3);
    ev.notify(1);
    run_briefly(2).await;
    assert_eq!(*woke.borrow(), [0]);
    let th = thread::spawn({
        let ev = ev.clone();
        move || {
            thread::sleep(Duration::from_millis(10));
            ev.notify(2);
        }
    });
    tulip::timeout(Duration::from_secs(5), async {
        for t in tasks {
            t.await;
        }
    })
    .await
    .expect("the thread's notification woke the rest");
    assert_eq!(*woke.borrow(), [0, 1, 2]);
    th.join().unwrap();
}

// ---- Barrier ----------------------------------------------------------------------------

const N: usize = 5;

fn spawn_n<F, Fut>(n: usize, f: F) -> Vec<tulip::Task<Fut::Output>>
where
    F: Fn() -> Fut,
    Fut: Future + 'static,
    Fut::Output: 'static,
{
    (0..n).map(|_| tulip::spawn(f())).collect()
}

async fn gather<T>(tasks: Vec<tulip::Task<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await);
    }
    out
}

// CPython: test_locks.py BarrierTests.test_barrier_parties — differs: asyncio refuses 0
// parties (ValueError); async-lock's `Barrier::new(0)` behaves as `new(1)`.
#[tulip::test]
async fn test_barrier_parties() {
    let _w = support::watchdog("test_barrier_parties", 10);
    let b = Barrier::new(0);
    assert!(b.wait().await.is_leader());
    assert!(b.wait().await.is_leader());
}

// CPython: test_locks.py BarrierTests.test_context_manager — asyncio gives each party an index
// 0..N; async-lock says only who is the leader (the last to arrive): one per round.
#[tulip::test]
async fn test_barrier_context_manager() {
    let _w = support::watchdog("test_barrier_context_manager", 10);
    let b = Rc::new(Barrier::new(3));
    let results = gather(spawn_n(3, || {
        let b = b.clone();
        async move { b.wait().await.is_leader() }
    }))
    .await;
    assert_eq!(results, [false, false, true]);
}

// CPython: test_locks.py BarrierTests.test_filling_one_task
#[tulip::test]
async fn test_barrier_filling_one_task() {
    let _w = support::watchdog("test_barrier_filling_one_task", 10);
    let b = Barrier::new(1);
    assert!(b.wait().await.is_leader());
}

// CPython: test_locks.py BarrierTests.test_filling_one_task_twice
#[tulip::test]
async fn test_barrier_filling_one_task_twice() {
    let _w = support::watchdog("test_barrier_filling_one_task_twice", 10);
    let b = Rc::new(Barrier::new(1));
    let t1 = tulip::spawn({
        let b = b.clone();
        async move { b.wait().await.is_leader() }
    });
    run_briefly(1).await;
    assert!(t1.is_finished());
    let t2 = tulip::spawn({
        let b = b.clone();
        async move { b.wait().await.is_leader() }
    });
    run_briefly(1).await;
    assert!(t2.is_finished());
    assert_eq!(t1.await, t2.await);
}

// CPython: test_locks.py BarrierTests.test_filling_task_by_task
#[tulip::test]
async fn test_barrier_filling_task_by_task() {
    let _w = support::watchdog("test_barrier_filling_task_by_task", 10);
    let b = Rc::new(Barrier::new(3));
    let wait = || {
        let b = b.clone();
        tulip::spawn(async move { b.wait().await.is_leader() })
    };
    let t1 = wait();
    run_briefly(1).await;
    assert!(!t1.is_finished());
    let t2 = wait();
    run_briefly(1).await;
    assert!(!t1.is_finished() && !t2.is_finished());
    let t3 = wait();
    assert_eq!(gather(vec![t1, t2, t3]).await, [false, false, true]);
}

// CPython: test_locks.py BarrierTests.test_filling_tasks_wait_twice
#[tulip::test]
async fn test_barrier_filling_tasks_wait_twice() {
    let _w = support::watchdog("test_barrier_filling_tasks_wait_twice", 10);
    let b = Rc::new(Barrier::new(N));
    let results = Rc::new(RefCell::new(Vec::new()));
    gather(spawn_n(N, || {
        let (b, results) = (b.clone(), results.clone());
        async move {
            b.wait().await;
            results.borrow_mut().push(true);
            b.wait().await;
            results.borrow_mut().push(false);
        }
    }))
    .await;
    let r = results.borrow();
    assert_eq!(r.len(), 2 * N);
    assert!(
        r[..N].iter().all(|&x| x),
        "no party passes round 2 before all passed round 1"
    );
    assert!(r[N..].iter().all(|&x| !x));
}

// CPython: test_locks.py BarrierTests.test_filling_tasks_check_return_value — one leader in
// each round.
#[tulip::test]
async fn test_barrier_filling_tasks_check_return_value() {
    let _w = support::watchdog("test_barrier_filling_tasks_check_return_value", 10);
    let b = Rc::new(Barrier::new(N));
    let res = gather(spawn_n(N, || {
        let b = b.clone();
        async move {
            let first = b.wait().await.is_leader();
            let second = b.wait().await.is_leader();
            (first, second)
        }
    }))
    .await;
    assert_eq!(res.iter().filter(|r| r.0).count(), 1);
    assert_eq!(res.iter().filter(|r| r.1).count(), 1);
}

// CPython: test_locks.py BarrierTests.test_blocking_tasks_while_draining — parties of the next
// round may arrive while the last round's are still being woken.
#[tulip::test]
async fn test_barrier_blocking_tasks_while_draining() {
    let _w = support::watchdog("test_barrier_blocking_tasks_while_draining", 10);
    let rewait = 2;
    let b = Rc::new(Barrier::new(N));
    let nowaiting = Rc::new(Barrier::new(N - rewait));
    let rewait_n = Rc::new(Cell::new(rewait));
    let run = gather(spawn_n(N, || {
        let (b, nowaiting, rewait_n) = (b.clone(), nowaiting.clone(), rewait_n.clone());
        async move {
            b.wait().await;
            if rewait_n.get() > 0 {
                rewait_n.set(rewait_n.get() - 1);
                b.wait().await;
            } else {
                nowaiting.wait().await;
                b.wait().await;
            }
        }
    }));
    tulip::timeout(Duration::from_secs(5), run)
        .await
        .expect("both rounds complete");
}

// CPython: test_locks.py BarrierTests.test_filling_tasks_cancel_one — differs: in asyncio a
// cancelled `wait()` leaves the barrier (n_waiting drops back) and a fourth party is needed;
// async-lock's `Barrier` keeps counting a dropped `wait()`, so the round completes with one
// live party fewer. Do not cancel barrier waits (or rebuild the barrier when one is).
#[tulip::test]
async fn test_barrier_filling_tasks_cancel_one() {
    let _w = support::watchdog("test_barrier_filling_tasks_cancel_one", 10);
    let b = Rc::new(Barrier::new(3));
    let results = Rc::new(Cell::new(0));
    let coro = || {
        let (b, results) = (b.clone(), results.clone());
        tulip::spawn(async move {
            b.wait().await;
            results.set(results.get() + 1);
        })
    };
    let t1 = coro();
    run_briefly(1).await;
    let t2 = coro();
    run_briefly(1).await;
    assert!(t1.cancel().await.is_none());
    let t3 = coro();
    tulip::timeout(Duration::from_secs(5), async {
        t2.await;
        t3.await;
    })
    .await
    .expect("the cancelled party still counted: two live parties passed a 3-party barrier");
    assert_eq!(results.get(), 2);
}

// tulip's own: parties on std threads (`wait_blocking`) and on the loop meet at one barrier.
#[tulip::test]
async fn barrier_with_parties_on_other_threads() {
    let _w = support::watchdog("barrier_with_parties_on_other_threads", 10);
    let b = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let b = b.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(10 * (i + 1)));
                b.wait_blocking().is_leader()
            })
        })
        .collect();
    let here = tulip::timeout(Duration::from_secs(5), b.wait())
        .await
        .expect("the threads' arrivals woke the loop");
    let leaders = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|&l| l)
        .count()
        + usize::from(here.is_leader());
    assert_eq!(leaders, 1, "one leader: the last party to arrive");
}
