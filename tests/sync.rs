//! asyncio's locks from the ecosystem, on tulip: `async_lock::Mutex` (asyncio's `Lock`),
//! `RwLock` and `Semaphore`. tulip writes no locks of its own; these tests show the crate's
//! primitives work on tulip's loop — wakes from tasks, from callbacks and from other threads,
//! cancellation (a dropped acquire) — and pin down where they differ from asyncio.
//! CPython's `Lib/test/test_asyncio/test_locks.py` (`LockTests`, `SemaphoreTests`) is translated
//! where it applies; each test names its source. Events and barriers are in `sync_events.rs`,
//! queues in `sync_queues.rs`.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use async_lock::{Mutex, RwLock, RwLockUpgradableReadGuard, Semaphore};

/// asyncio's `await asyncio.sleep(0)`, `n` times: lets the loop run `n` iterations.
async fn run_briefly(n: usize) {
    for _ in 0..n {
        tulip::yield_now().await;
    }
}

/// asyncio's `Lock.locked()`.
fn locked<T>(m: &Mutex<T>) -> bool {
    m.try_lock().is_none()
}

/// A shared, ordered record of what the tasks did.
type Log = Rc<RefCell<Vec<i32>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn seen(l: &Log) -> Vec<i32> {
    l.borrow().clone()
}

// ---- Mutex (asyncio.Lock) ----------------------------------------------------------------

// CPython: test_locks.py LockTests.test_repr — `Debug` says whether the lock is held.
#[tulip::test]
async fn test_lock_repr() {
    let _w = support::watchdog("test_lock_repr", 10);
    let m = Mutex::new(7);
    assert_eq!(format!("{m:?}"), "Mutex { data: 7 }");
    let g = m.lock().await;
    assert_eq!(format!("{m:?}"), "Mutex { data: <locked> }");
    drop(g);
}

// CPython: test_locks.py LockTests.test_context_manager — the guard is `async with lock`.
#[tulip::test]
async fn test_lock_context_manager() {
    let _w = support::watchdog("test_lock_context_manager", 10);
    let m = Mutex::new(());
    assert!(!locked(&m));
    {
        let _g = m.lock().await;
        assert!(locked(&m));
    }
    assert!(!locked(&m));
}

// CPython: test_locks.py LockTests.test_release_no_waiters
#[tulip::test]
async fn test_lock_release_no_waiters() {
    let _w = support::watchdog("test_lock_release_no_waiters", 10);
    let m = Mutex::new(0);
    let mut g = m.lock().await;
    *g += 1;
    assert!(locked(&m));
    drop(g);
    assert!(!locked(&m));
    assert_eq!(*m.lock().await, 1);
}

// CPython: test_locks.py LockTests.test_acquire — differs at the end: waiters that are queued
// get the lock in the order they came, but t3, started before t2 (already woken) runs, takes
// the released lock first (see `mutex_lets_a_newcomer_barge`); asyncio gives 1 2 3.
#[tulip::test]
async fn test_lock_acquire() {
    let _w = support::watchdog("test_lock_acquire", 10);
    let m = Arc::new(Mutex::new(()));
    let result = log();
    let holder = m.lock_arc().await;

    let waiter = |n: i32| {
        let (m, result) = (m.clone(), result.clone());
        tulip::spawn(async move {
            let g = m.lock_arc().await;
            result.borrow_mut().push(n);
            g
        })
    };
    let t1 = waiter(1);
    let t2 = waiter(2);
    run_briefly(1).await;
    assert_eq!(seen(&result), [] as [i32; 0]);

    drop(holder);
    run_briefly(1).await;
    assert_eq!(seen(&result), [1]);
    run_briefly(1).await;
    assert_eq!(seen(&result), [1]);

    let t3 = waiter(3);
    drop(t1.await); // t1's release: t2 is woken, but t3 runs first and barges in
    run_briefly(1).await;
    assert_eq!(seen(&result), [1, 3]);

    drop(t3.await);
    run_briefly(1).await;
    assert_eq!(seen(&result), [1, 3, 2]);
    drop(t2.await);
    assert!(!locked(&m));
}

// CPython: test_locks.py LockTests.test_acquire_cancel — a cancelled (dropped) acquire leaves
// nothing behind: the next acquire gets the lock.
#[tulip::test]
async fn test_lock_acquire_cancel() {
    let _w = support::watchdog("test_lock_acquire_cancel", 10);
    let m = Arc::new(Mutex::new(()));
    let g = m.lock_arc().await;
    let task = tulip::spawn({
        let m = m.clone();
        async move {
            let _g = m.lock_arc().await;
            unreachable!("the cancelled acquire must not get the lock");
        }
    });
    run_briefly(1).await;
    assert!(task.cancel().await.is_none());
    drop(g);
    assert!(!locked(&m));
    // And the timed-out form (asyncio.wait_for(lock.acquire(), t)).
    let g = m.lock().await;
    assert!(
        tulip::timeout(Duration::from_millis(5), m.lock())
            .await
            .is_err()
    );
    drop(g);
    let _g = tulip::timeout(Duration::from_secs(5), m.lock())
        .await
        .unwrap();
}

// CPython: test_locks.py LockTests.test_cancel_race — B is cancelled while A releases: the
// notification B would have used passes on to C.
#[tulip::test]
async fn test_lock_cancel_race() {
    let _w = support::watchdog("test_lock_cancel_race", 10);
    let m = Arc::new(Mutex::new(()));
    let ran = log();
    let lockit = |name: i32, blocker: Option<tulip::ConcurrentFuture<()>>| {
        let (m, ran) = (m.clone(), ran.clone());
        tulip::spawn(async move {
            let _g = m.lock_arc().await;
            ran.borrow_mut().push(name);
            if let Some(b) = blocker {
                b.await.unwrap();
            }
        })
    };
    let (fa, blocker) = tulip::oneshot();
    let ta = lockit(1, Some(blocker));
    run_briefly(1).await;
    assert!(locked(&m));
    let tb = lockit(2, None);
    run_briefly(1).await;
    let tc = lockit(3, None);
    run_briefly(1).await;

    // The race: A is released and B cancelled in the same loop step.
    fa.set_result(()).unwrap();
    drop(tb.cancel());
    run_briefly(2).await;
    assert!(ta.is_finished());
    tc.await;
    assert_eq!(seen(&ran), [1, 3], "B never held the lock");
    assert!(!locked(&m));
}

// CPython: test_locks.py LockTests.test_cancel_release_race — cancel one waiter and release
// in one callback: exactly one other waiter gets the lock.
#[tulip::test]
async fn test_lock_cancel_release_race() {
    let _w = support::watchdog("test_lock_cancel_release_race", 10);
    let m = Arc::new(Mutex::new(()));
    let lock_count = Rc::new(Cell::new(0));
    let call_count = Rc::new(Cell::new(0));
    let lockit = || {
        let (m, lc, cc) = (m.clone(), lock_count.clone(), call_count.clone());
        tulip::spawn(async move {
            cc.set(cc.get() + 1);
            let g = m.lock_arc().await;
            lc.set(lc.get() + 1);
            g
        })
    };
    let g = m.lock_arc().await;
    let t1 = lockit();
    let t2 = lockit();
    let t3 = lockit();
    run_briefly(1).await;

    tulip::get_running_loop().call_soon(move || {
        drop(t1.cancel());
        drop(g);
    });
    run_briefly(3).await;
    assert_eq!(lock_count.get(), 1, "only one waiter took the lock");
    assert_eq!(call_count.get(), 3);
    assert!(t2.is_finished());
    assert!(!t3.is_finished());
    drop(t2.await);
    drop(t3.await); // the last waiter is woken by t2's release
    assert_eq!(lock_count.get(), 2);
}

// CPython: test_locks.py LockTests.test_finished_waiter_cancelled — a woken waiter that is
// cancelled before it runs does not strand the next one.
#[tulip::test]
async fn test_lock_finished_waiter_cancelled() {
    let _w = support::watchdog("test_lock_finished_waiter_cancelled", 10);
    let m = Arc::new(Mutex::new(()));
    let g = m.lock_arc().await;
    let acquire = || {
        let m = m.clone();
        tulip::spawn(async move { m.lock_arc().await })
    };
    let tb = acquire();
    run_briefly(1).await;
    let tc = acquire();
    drop(tb.cancel());
    drop(g);
    run_briefly(1).await;
    assert!(locked(&m));
    drop(tc.await);
    assert!(!locked(&m));
}

// tulip's own: where async-lock differs from asyncio. asyncio's `Lock` is strictly FIFO (an
// `acquire()` while a woken waiter has not run yet queues behind it); async-lock's `Mutex` lets
// a newcomer take a just-released lock ("barging"), and falls back to FIFO only for a waiter
// starved for more than 0.5 ms. The woken waiter then waits again.
#[tulip::test]
async fn mutex_lets_a_newcomer_barge() {
    let _w = support::watchdog("mutex_lets_a_newcomer_barge", 10);
    let m = Arc::new(Mutex::new(Vec::new()));
    let g = m.lock_arc().await;
    let waiter = tulip::spawn({
        let m = m.clone();
        async move { m.lock_arc().await.push("waiter") }
    });
    run_briefly(1).await;
    drop(g); // notifies the waiter, which has not run yet
    let mut barger = m.try_lock().expect("a newcomer takes the released lock");
    barger.push("barger");
    drop(barger);
    waiter.await;
    assert_eq!(*m.lock().await, ["barger", "waiter"]);
}

// tulip's own: a std thread releases the lock while a loop task awaits it; the loop wakes.
#[tulip::test]
async fn mutex_released_by_another_thread_wakes_the_loop() {
    let _w = support::watchdog("mutex_released_by_another_thread", 10);
    let m = Arc::new(Mutex::new(0));
    let (locked_tx, locked_rx) = mpsc::channel();
    let th = thread::spawn({
        let m = m.clone();
        move || {
            let mut g = m.lock_blocking();
            locked_tx.send(()).unwrap();
            thread::sleep(Duration::from_millis(20));
            *g = 42;
        }
    });
    locked_rx.recv().unwrap();
    assert!(locked(&m));
    // The loop blocks in its selector until the thread's release wakes it.
    let got = tulip::timeout(Duration::from_secs(5), m.lock()).await;
    assert_eq!(*got.expect("woken by the thread"), 42);
    th.join().unwrap();
}

// ---- RwLock (no asyncio equivalent) ------------------------------------------------------

// tulip's own: readers share, a writer excludes, and a waiting writer is not starved by new
// readers (async-lock's RwLock is write-preferring).
#[tulip::test]
async fn rwlock_readers_share_and_a_writer_waits() {
    let _w = support::watchdog("rwlock_readers_share", 10);
    let l = Arc::new(RwLock::new(0));
    let r1 = l.read_arc().await;
    let r2 = l.read_arc().await;
    assert_eq!(*r1 + *r2, 0);
    let writer = tulip::spawn({
        let l = l.clone();
        async move {
            *l.write_arc().await += 1;
        }
    });
    run_briefly(1).await;
    assert!(!writer.is_finished());
    assert!(
        l.try_read().is_none(),
        "a waiting writer blocks new readers"
    );
    drop(r1);
    run_briefly(1).await;
    assert!(!writer.is_finished(), "one reader is still in");
    drop(r2);
    writer.await;
    assert_eq!(*l.read().await, 1);
}

// tulip's own: an upgradable read coexists with readers and upgrades once they are gone.
#[tulip::test]
async fn rwlock_upgradable_read_upgrades() {
    let _w = support::watchdog("rwlock_upgradable_read_upgrades", 10);
    let l = Arc::new(RwLock::new(String::from("a")));
    let up = l.upgradable_read().await;
    let reader = l.read_arc().await;
    assert!(
        l.try_upgradable_read().is_none(),
        "one upgradable reader at a time"
    );
    let release = tulip::spawn(async move {
        tulip::sleep(Duration::from_millis(5)).await;
        drop(reader);
    });
    let mut w = RwLockUpgradableReadGuard::upgrade(up).await;
    assert!(release.is_finished());
    w.push('b');
    drop(w);
    assert_eq!(*l.read().await, "ab");
}

// tulip's own: a std thread holding the write lock releases it; the loop's reader wakes.
#[tulip::test]
async fn rwlock_write_released_by_another_thread_wakes_the_loop() {
    let _w = support::watchdog("rwlock_released_by_another_thread", 10);
    let l = Arc::new(RwLock::new(0));
    let (tx, rx) = mpsc::channel();
    let th = thread::spawn({
        let l = l.clone();
        move || {
            let mut w = l.write_blocking();
            tx.send(()).unwrap();
            thread::sleep(Duration::from_millis(20));
            *w = 7;
        }
    });
    rx.recv().unwrap();
    let r = tulip::timeout(Duration::from_secs(5), l.read()).await;
    assert_eq!(*r.expect("woken by the thread"), 7);
    th.join().unwrap();
}

// ---- Semaphore ---------------------------------------------------------------------------

// CPython: test_locks.py SemaphoreTests.test_initial_value_zero
#[tulip::test]
async fn test_semaphore_initial_value_zero() {
    let _w = support::watchdog("test_semaphore_initial_value_zero", 10);
    let sem = Semaphore::new(0);
    assert!(sem.try_acquire().is_none());
    assert_eq!(sem.available_permits(), 0);
}

// CPython: test_locks.py SemaphoreTests.test_release_no_waiters
#[tulip::test]
async fn test_semaphore_release_no_waiters() {
    let _w = support::watchdog("test_semaphore_release_no_waiters", 10);
    let sem = Semaphore::new(1);
    let g = sem.acquire().await;
    assert!(sem.try_acquire().is_none());
    drop(g);
    assert_eq!(sem.available_permits(), 1);
}

// CPython: test_locks.py SemaphoreTests.test_acquire — two permits released at once wake two
// of the three waiters.
#[tulip::test]
async fn test_semaphore_acquire() {
    let _w = support::watchdog("test_semaphore_acquire", 10);
    let sem = Arc::new(Semaphore::new(3));
    let result = log();
    let g1 = sem.acquire_arc().await;
    let g2 = sem.acquire_arc().await;
    assert_eq!(sem.available_permits(), 1);
    let c = |n: i32| {
        let (sem, result) = (sem.clone(), result.clone());
        tulip::spawn(async move {
            let g = sem.acquire_arc().await;
            result.borrow_mut().push(n);
            g
        })
    };
    let t1 = c(1);
    let t2 = c(2);
    let t3 = c(3);
    run_briefly(1).await;
    assert_eq!(seen(&result), [1]);
    assert_eq!(sem.available_permits(), 0);

    let t4 = c(4);
    drop(g1);
    drop(g2);
    run_briefly(2).await;
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(seen(&result).len(), 3);
    assert!(t1.is_finished());
    let race = [t2, t3, t4];
    assert_eq!(race.iter().filter(|t| t.is_finished()).count(), 2);

    drop(t1.await); // cleanup: one more permit for the last one
    for t in race {
        drop(t.await);
    }
    assert_eq!(sem.available_permits(), 3);
}

// CPython: test_locks.py SemaphoreTests.test_acquire_cancel — a dropped acquire does not leak
// the permit.
#[tulip::test]
async fn test_semaphore_acquire_cancel() {
    let _w = support::watchdog("test_semaphore_acquire_cancel", 10);
    let sem = Arc::new(Semaphore::new(1));
    let g = sem.acquire_arc().await;
    let t = tulip::spawn({
        let sem = sem.clone();
        async move { sem.acquire_arc().await }
    });
    run_briefly(1).await;
    assert!(t.cancel().await.is_none());
    drop(g);
    assert_eq!(sem.available_permits(), 1);
    // The timed-out form: a permit released after the timeout is still there.
    let g = sem.acquire().await;
    assert!(
        tulip::timeout(Duration::from_millis(5), sem.acquire())
            .await
            .is_err()
    );
    drop(g);
    assert_eq!(sem.available_permits(), 1);
}

// CPython: test_locks.py SemaphoreTests.test_acquire_cancel_before_awoken — the notification
// of a cancelled waiter passes to the next live one.
#[tulip::test]
async fn test_semaphore_acquire_cancel_before_awoken() {
    let _w = support::watchdog("test_semaphore_acquire_cancel_before_awoken", 10);
    let sem = Arc::new(Semaphore::new(0));
    let acquire = || {
        let sem = sem.clone();
        tulip::spawn(async move { sem.acquire_arc().await })
    };
    let (t1, t2, t3, t4) = (acquire(), acquire(), acquire(), acquire());
    run_briefly(1).await;
    drop(t1.cancel());
    drop(t2.cancel());
    sem.add_permits(1);
    run_briefly(3).await;
    assert!(t3.is_finished());
    assert!(!t4.is_finished());
    assert!(t4.cancel().await.is_none());
    drop(t3.await);
    assert_eq!(sem.available_permits(), 1);
}

// CPython: test_locks.py SemaphoreTests.test_acquire_hang
#[tulip::test]
async fn test_semaphore_acquire_hang() {
    let _w = support::watchdog("test_semaphore_acquire_hang", 10);
    let sem = Arc::new(Semaphore::new(0));
    let acquire = || {
        let sem = sem.clone();
        tulip::spawn(async move { sem.acquire_arc().await })
    };
    let (t1, t2) = (acquire(), acquire());
    run_briefly(1).await;
    drop(t1.cancel());
    sem.add_permits(1);
    run_briefly(3).await;
    assert_eq!(sem.available_permits(), 0);
    assert!(t2.is_finished());
    drop(t2.await);
}

// CPython: test_locks.py SemaphoreTests.test_acquire_no_hang — c1 cancels c2 (a waiter) on its
// way out; the permit is not lost.
#[tulip::test]
async fn test_semaphore_acquire_no_hang() {
    let _w = support::watchdog("test_semaphore_acquire_no_hang", 10);
    let sem = Arc::new(Semaphore::new(1));
    let t2_slot: Rc<RefCell<Option<tulip::Task<()>>>> = Rc::default();
    let t1 = tulip::spawn({
        let (sem, slot) = (sem.clone(), t2_slot.clone());
        async move {
            {
                let _g = sem.acquire().await;
                tulip::yield_now().await;
            }
            let t2 = slot.borrow_mut().take().expect("t2 is stored");
            assert!(
                t2.cancel().await.is_none(),
                "t2 was cancelled, not finished"
            );
        }
    });
    let t2 = tulip::spawn({
        let sem = sem.clone();
        async move {
            let _g = sem.acquire().await;
            tulip::yield_now().await; // cancelled here, at the latest
            unreachable!("t2 is cancelled before it gets past its first await");
        }
    });
    *t2_slot.borrow_mut() = Some(t2);
    t1.await;
    let _g = tulip::timeout(Duration::from_secs(1), sem.acquire())
        .await
        .expect("the permit is back");
}

// CPython: test_locks.py SemaphoreTests.test_acquire_fifo_order_3 — a cancelled waiter is
// skipped; the other two get the two permits.
#[tulip::test]
async fn test_semaphore_acquire_fifo_order_3() {
    let _w = support::watchdog("test_semaphore_acquire_fifo_order_3", 10);
    let sem = Arc::new(Semaphore::new(0));
    let result = log();
    let c = |n: i32| {
        let (sem, result) = (sem.clone(), result.clone());
        tulip::spawn(async move {
            sem.acquire().await.forget();
            result.borrow_mut().push(n);
        })
    };
    let (t1, t2, t3) = (c(1), c(2), c(3));
    run_briefly(1).await;
    assert!(t1.cancel().await.is_none());
    sem.add_permits(1);
    sem.add_permits(1);
    t2.await;
    t3.await;
    assert_eq!(seen(&result), [2, 3]);
}

// CPython: test_locks.py SemaphoreTests.test_acquire_fifo_order — differs: asyncio (3.12+)
// gives the permit to waiters in FIFO order, so c1 c2 c3 take turns; async-lock's `Semaphore`
// lets the releasing task take the permit straight back (it has no starvation guard, unlike
// its `Mutex`), and a woken waiter that lost the race queues again at the back.
#[tulip::test]
async fn test_semaphore_acquire_fifo_order() {
    let _w = support::watchdog("test_semaphore_acquire_fifo_order", 10);
    let sem = Arc::new(Semaphore::new(1));
    let result = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<_> = ["c1", "c2", "c3"]
        .into_iter()
        .map(|tag| {
            let (sem, result) = (sem.clone(), result.clone());
            tulip::spawn(async move {
                for round in 1..=2 {
                    let g = sem.acquire().await;
                    result.borrow_mut().push(format!("{tag}_{round}"));
                    tulip::sleep(Duration::from_millis(10)).await;
                    drop(g);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    let order = result.borrow().clone();
    assert_eq!(order.len(), 6);
    // asyncio: ["c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"]
    assert_eq!(
        order[..2],
        ["c1_1", "c1_2"],
        "c1 re-acquires ahead of the waiters"
    );
}

// CPython: test_locks.py SemaphoreTests.test_acquire_fifo_order_2 — differs in the same way:
// c2 releases and re-acquires before the woken c3 runs, so the order is 1 2 4 3 (asyncio:
// 1 2 3 4). Every waiter still gets a permit: nothing is lost.
#[tulip::test]
async fn test_semaphore_acquire_fifo_order_2() {
    let _w = support::watchdog("test_semaphore_acquire_fifo_order_2", 10);
    let sem = Arc::new(Semaphore::new(1));
    let result = log();
    let t1 = tulip::spawn({
        let (sem, result) = (sem.clone(), result.clone());
        async move {
            sem.acquire().await.forget();
            result.borrow_mut().push(1);
        }
    });
    let t2 = tulip::spawn({
        let (sem, result) = (sem.clone(), result.clone());
        async move {
            let g = sem.acquire().await;
            result.borrow_mut().push(2);
            drop(g);
            sem.acquire().await.forget();
            result.borrow_mut().push(4);
        }
    });
    let t3 = tulip::spawn({
        let (sem, result) = (sem.clone(), result.clone());
        async move {
            sem.acquire().await.forget();
            result.borrow_mut().push(3);
        }
    });
    run_briefly(1).await;
    sem.add_permits(1); // asyncio's sem.release() with no guard to drop
    sem.add_permits(1);
    t1.await;
    t2.await;
    t3.await;
    assert_eq!(seen(&result), [1, 2, 4, 3]);
    assert_eq!(sem.available_permits(), 0);
}

// tulip's own: two guards dropped in one loop step wake two waiters (the first waiter's
// unused notification is passed on when its acquire completes by the fast path).
#[tulip::test]
async fn semaphore_two_releases_wake_two_waiters() {
    let _w = support::watchdog("semaphore_two_releases_wake_two_waiters", 10);
    let sem = Arc::new(Semaphore::new(2));
    let g1 = sem.try_acquire_arc().unwrap();
    let g2 = sem.try_acquire_arc().unwrap();
    let acquire = || {
        let sem = sem.clone();
        tulip::spawn(async move { sem.acquire().await.forget() })
    };
    let (a, b) = (acquire(), acquire());
    run_briefly(1).await;
    drop(g1);
    drop(g2);
    tulip::timeout(Duration::from_secs(5), async {
        a.await;
        b.await;
    })
    .await
    .expect("both waiters woke");
    assert_eq!(sem.available_permits(), 0);
}

// tulip's own: permits returned by std threads (a guard dropped there, `add_permits`) wake
// loop tasks blocked on the semaphore.
#[tulip::test]
async fn semaphore_released_by_another_thread_wakes_the_loop() {
    let _w = support::watchdog("semaphore_released_by_another_thread", 10);
    let sem = Arc::new(Semaphore::new(1));
    let g = sem.acquire_arc().await;
    let th = thread::spawn({
        let sem = sem.clone();
        move || {
            thread::sleep(Duration::from_millis(10));
            drop(g); // a guard moved to this thread
            thread::sleep(Duration::from_millis(10));
            sem.add_permits(1);
        }
    });
    let first = tulip::timeout(Duration::from_secs(5), sem.acquire_arc()).await;
    let second = tulip::timeout(Duration::from_secs(5), sem.acquire_arc()).await;
    assert!(first.is_ok() && second.is_ok(), "both permits arrived");
    th.join().unwrap();
}
