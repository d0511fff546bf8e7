//! asyncio's `Queue` from the ecosystem, on tulip: `async-channel`'s `bounded(maxsize)` /
//! `unbounded()`, with `close()` as 3.13's `Queue.shutdown()`. CPython's
//! `Lib/test/test_asyncio/test_queues.py` (`QueueBasicTests`, `QueueGetTests`,
//! `QueuePutTests`, `QueueShutdownTests`) is translated where it applies; each test names its
//! source. Wakes from std threads included. (`join` / `task_done`, `LifoQueue` and
//! `PriorityQueue` have no async-channel equivalent and are not translated.)

mod support;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use async_channel::{Receiver, RecvError, SendError, TryRecvError, TrySendError};
use futures_lite::StreamExt;

async fn run_briefly(n: usize) {
    for _ in 0..n {
        tulip::yield_now().await;
    }
}

/// asyncio's `Queue.shutdown(immediate=True)`: close, then discard what is queued.
fn shutdown_immediate<T>(rx: &Receiver<T>) {
    rx.close();
    while rx.try_recv().is_ok() {}
}

// ---- QueueBasicTests ----------------------------------------------------------------------

// CPython: test_queues.py QueueBasicTests.test_empty
#[tulip::test]
async fn test_empty() {
    let _w = support::watchdog("test_empty", 10);
    let (tx, rx) = async_channel::unbounded();
    assert!(rx.is_empty());
    tx.send(1).await.unwrap();
    assert!(!rx.is_empty());
    assert_eq!(rx.recv().await, Ok(1));
    assert!(rx.is_empty());
}

// CPython: test_queues.py QueueBasicTests.test_full
#[tulip::test]
async fn test_full() {
    let _w = support::watchdog("test_full", 10);
    let (tx, _rx) = async_channel::unbounded();
    assert!(!tx.is_full());
    tx.send(1).await.unwrap();
    assert!(!tx.is_full(), "maxsize=0: never full");
    let (tx, _rx) = async_channel::bounded(1);
    tx.send(1).await.unwrap();
    assert!(tx.is_full());
}

// CPython: test_queues.py QueueBasicTests.test_order
#[tulip::test]
async fn test_order() {
    let _w = support::watchdog("test_order", 10);
    let (tx, rx) = async_channel::unbounded();
    for i in [1, 3, 2] {
        tx.send(i).await.unwrap();
    }
    let mut items = Vec::new();
    for _ in 0..3 {
        items.push(rx.recv().await.unwrap());
    }
    assert_eq!(items, [1, 3, 2]);
}

// CPython: test_queues.py QueueBasicTests.test_maxsize
#[tulip::test]
async fn test_maxsize() {
    let _w = support::watchdog("test_maxsize", 10);
    let (tx, rx) = async_channel::bounded(2);
    assert_eq!(tx.capacity(), Some(2));
    let have_been_put = Rc::new(RefCell::new(Vec::new()));
    let t = tulip::spawn({
        let have_been_put = have_been_put.clone();
        async move {
            for i in 0..3 {
                tx.send(i).await.unwrap();
                have_been_put.borrow_mut().push(i);
            }
            true
        }
    });
    run_briefly(2).await;
    assert_eq!(
        *have_been_put.borrow(),
        [0, 1],
        "the putter is blocked after two"
    );
    assert_eq!(rx.recv().await, Ok(0));
    run_briefly(1).await;
    assert_eq!(*have_been_put.borrow(), [0, 1, 2]);
    assert_eq!(rx.recv().await, Ok(1));
    assert_eq!(rx.recv().await, Ok(2));
    assert!(t.is_finished());
    assert!(t.await);
}

// ---- QueueGetTests ------------------------------------------------------------------------

// CPython: test_queues.py QueueGetTests.test_blocking_get
#[tulip::test]
async fn test_blocking_get() {
    let _w = support::watchdog("test_blocking_get", 10);
    let (tx, rx) = async_channel::unbounded();
    tx.try_send(1).unwrap();
    assert_eq!(rx.recv().await, Ok(1));
}

// CPython: test_queues.py QueueGetTests.test_blocking_get_wait — a `call_later` callback puts
// the item the waiting task gets.
#[tulip::test]
async fn test_blocking_get_wait() {
    let _w = support::watchdog("test_blocking_get_wait", 10);
    let (tx, rx) = async_channel::unbounded();
    let finished = Rc::new(Cell::new(false));
    let get = tulip::spawn({
        let finished = finished.clone();
        async move {
            let res = rx.recv().await;
            finished.set(true);
            res
        }
    });
    run_briefly(1).await;
    assert!(!finished.get());
    tulip::get_running_loop().call_later(Duration::from_millis(10), move || {
        tx.try_send(1).unwrap();
    });
    assert_eq!(get.await, Ok(1));
    assert!(finished.get());
}

// CPython: test_queues.py QueueGetTests.test_nonblocking_get
#[tulip::test]
async fn test_nonblocking_get() {
    let _w = support::watchdog("test_nonblocking_get", 10);
    let (tx, rx) = async_channel::unbounded();
    tx.try_send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
}

// CPython: test_queues.py QueueGetTests.test_nonblocking_get_exception — QueueEmpty.
#[tulip::test]
async fn test_nonblocking_get_exception() {
    let _w = support::watchdog("test_nonblocking_get_exception", 10);
    let (_tx, rx) = async_channel::unbounded::<i32>();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

// CPython: test_queues.py QueueGetTests.test_get_cancelled_race
#[tulip::test]
async fn test_get_cancelled_race() {
    let _w = support::watchdog("test_get_cancelled_race", 10);
    let (tx, rx) = async_channel::unbounded();
    let get = || {
        let rx = rx.clone();
        tulip::spawn(async move { rx.recv().await })
    };
    let (t1, t2) = (get(), get());
    run_briefly(1).await;
    assert!(t1.cancel().await.is_none());
    tx.send("a").await.unwrap();
    run_briefly(1).await;
    assert_eq!(t2.await, Ok("a"));
}

// CPython: test_queues.py QueueGetTests.test_get_with_waiting_putters
#[tulip::test]
async fn test_get_with_waiting_putters() {
    let _w = support::watchdog("test_get_with_waiting_putters", 10);
    let (tx, rx) = async_channel::bounded(1);
    for item in ["a", "b"] {
        let tx = tx.clone();
        tulip::spawn(async move { tx.send(item).await.unwrap() }).detach();
    }
    assert_eq!(rx.recv().await, Ok("a"));
    assert_eq!(rx.recv().await, Ok("b"));
}

// CPython: test_queues.py QueueGetTests.test_why_are_getters_waiting
#[tulip::test]
async fn test_why_are_getters_waiting() {
    let _w = support::watchdog("test_why_are_getters_waiting", 10);
    let (tx, rx) = async_channel::bounded(1);
    let n = 5;
    let producer = tulip::spawn(async move {
        for i in 0..n {
            tx.send(i).await.unwrap();
        }
    });
    let consumer = tulip::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..n {
            got.push(rx.recv().await.unwrap());
        }
        got
    });
    producer.await;
    assert_eq!(consumer.await, [0, 1, 2, 3, 4]);
}

// CPython: test_queues.py QueueGetTests.test_cancelled_getters_not_being_held_in_self_getters
// — a timed-out get leaves no waiter behind to swallow the next item.
#[tulip::test]
async fn test_cancelled_getters_not_being_held() {
    let _w = support::watchdog("test_cancelled_getters_not_being_held", 10);
    let (tx, rx) = async_channel::bounded(5);
    assert!(
        tulip::timeout(Duration::from_millis(10), rx.recv())
            .await
            .is_err()
    );
    tx.try_send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
}

// ---- QueuePutTests ------------------------------------------------------------------------

// CPython: test_queues.py QueuePutTests.test_blocking_put — no maxsize: never blocks.
#[tulip::test]
async fn test_blocking_put() {
    let _w = support::watchdog("test_blocking_put", 10);
    let (tx, rx) = async_channel::unbounded();
    tx.send(1).await.unwrap();
    assert_eq!(rx.recv().await, Ok(1));
}

// CPython: test_queues.py QueuePutTests.test_blocking_put_wait — a `call_later` callback
// takes an item, which lets the blocked putter go on.
#[tulip::test]
async fn test_blocking_put_wait() {
    let _w = support::watchdog("test_blocking_put_wait", 10);
    let (tx, rx) = async_channel::bounded(1);
    let finished = Rc::new(Cell::new(false));
    let put = tulip::spawn({
        let finished = finished.clone();
        async move {
            tx.send(1).await.unwrap();
            tx.send(2).await.unwrap();
            finished.set(true);
        }
    });
    run_briefly(1).await;
    assert!(!finished.get());
    let rx2 = rx.clone();
    tulip::get_running_loop().call_later(Duration::from_millis(10), move || {
        assert_eq!(rx2.try_recv(), Ok(1));
    });
    put.await;
    assert!(finished.get());
    assert_eq!(rx.try_recv(), Ok(2));
}

// CPython: test_queues.py QueuePutTests.test_nonblocking_put
#[tulip::test]
async fn test_nonblocking_put() {
    let _w = support::watchdog("test_nonblocking_put", 10);
    let (tx, rx) = async_channel::unbounded();
    tx.try_send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
}

// CPython: test_queues.py QueuePutTests.test_nonblocking_put_exception — QueueFull, and the
// item comes back.
#[tulip::test]
async fn test_nonblocking_put_exception() {
    let _w = support::watchdog("test_nonblocking_put_exception", 10);
    let (tx, _rx) = async_channel::bounded(1);
    tx.try_send(1).unwrap();
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
}

// CPython: test_queues.py QueuePutTests.test_get_cancel_drop_one_pending_reader — a reader
// cancelled after it was woken loses nothing: the item is taken only when a get completes.
#[tulip::test]
async fn test_get_cancel_drop_one_pending_reader() {
    let _w = support::watchdog("test_get_cancel_drop_one_pending_reader", 10);
    let (tx, rx) = async_channel::unbounded();
    let reader = tulip::spawn({
        let rx = rx.clone();
        async move { rx.recv().await }
    });
    run_briefly(1).await;
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    let result = match reader.cancel().await {
        Some(got) => got, // it had finished
        None => rx.recv().await,
    };
    assert_eq!(result, Ok(1), "if we get 2, 1 was dropped");
}

// CPython: test_queues.py QueuePutTests.test_get_cancel_drop_many_pending_readers
#[tulip::test]
async fn test_get_cancel_drop_many_pending_readers() {
    let _w = support::watchdog("test_get_cancel_drop_many_pending_readers", 10);
    let (tx, rx) = async_channel::unbounded();
    let read = || {
        let rx = rx.clone();
        tulip::spawn(async move { rx.recv().await.unwrap() })
    };
    let (r1, r2, r3) = (read(), read(), read());
    run_briefly(1).await;
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert!(r1.cancel().await.is_none());
    let got: HashSet<i32> = [r2.await, r3.await].into();
    assert_eq!(got, [1, 2].into(), "r1's wake-up went to another reader");
}

// CPython: test_queues.py QueuePutTests.test_put_cancel_drop — a cancelled put drops its item
// (it was never in the queue); put again.
#[tulip::test]
async fn test_put_cancel_drop() {
    let _w = support::watchdog("test_put_cancel_drop", 10);
    let (tx, rx) = async_channel::bounded(1);
    tx.try_send(1).unwrap();
    let writer = tulip::spawn({
        let tx = tx.clone();
        async move { tx.send(2).await }
    });
    run_briefly(1).await;
    assert_eq!(rx.try_recv(), Ok(1));
    if writer.cancel().await.is_none() {
        tx.send(2).await.unwrap(); // try again
    }
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.len(), 0);
}

// CPython: test_queues.py QueuePutTests.test_put_cancelled
#[tulip::test]
async fn test_put_cancelled() {
    let _w = support::watchdog("test_put_cancelled", 10);
    let (tx, rx) = async_channel::unbounded();
    let t = tulip::spawn(async move {
        tx.send(1).await.unwrap();
        true
    });
    assert_eq!(rx.recv().await, Ok(1));
    assert!(t.is_finished());
    assert!(t.await);
}

// CPython: test_queues.py QueuePutTests.test_put_cancelled_race
#[tulip::test]
async fn test_put_cancelled_race() {
    let _w = support::watchdog("test_put_cancelled_race", 10);
    let (tx, rx) = async_channel::bounded(1);
    let put = |item: &'static str| {
        let tx = tx.clone();
        tulip::spawn(async move { tx.send(item).await.unwrap() })
    };
    let (put_a, put_b, put_c) = (put("a"), put("b"), put("X"));
    run_briefly(1).await;
    assert!(put_a.is_finished());
    assert!(!put_b.is_finished());
    assert!(put_c.cancel().await.is_none());
    assert_eq!(rx.try_recv(), Ok("a"));
    run_briefly(1).await;
    assert_eq!(rx.try_recv(), Ok("b"));
    put_b.await;
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "X was never put");
}

// CPython: test_queues.py QueuePutTests.test_put_with_waiting_getters
#[tulip::test]
async fn test_put_with_waiting_getters() {
    let _w = support::watchdog("test_put_with_waiting_getters", 10);
    let (tx, rx) = async_channel::unbounded();
    let t = tulip::spawn(async move { rx.recv().await });
    run_briefly(1).await;
    tx.send("a").await.unwrap();
    assert_eq!(t.await, Ok("a"));
}

// CPython: test_queues.py QueuePutTests.test_why_are_putters_waiting
#[tulip::test]
async fn test_why_are_putters_waiting() {
    let _w = support::watchdog("test_why_are_putters_waiting", 10);
    let (tx, rx) = async_channel::bounded(2);
    let getter = tulip::spawn({
        let rx = rx.clone();
        async move {
            tulip::yield_now().await;
            for _ in 0..rx.len() {
                rx.try_recv().unwrap();
            }
        }
    });
    let putters: Vec<_> = (0..4)
        .map(|i| {
            let tx = tx.clone();
            tulip::spawn(async move { tx.send(i).await.unwrap() })
        })
        .collect();
    getter.await;
    tulip::timeout(Duration::from_secs(5), async {
        for p in putters {
            p.await;
        }
    })
    .await
    .expect("the putters blocked on a full queue went on once it drained");
    assert_eq!(rx.len(), 2);
}

// CPython: test_queues.py QueuePutTests.test_cancelled_puts_not_being_held_in_self_putters
#[tulip::test]
async fn test_cancelled_puts_not_being_held() {
    let _w = support::watchdog("test_cancelled_puts_not_being_held", 10);
    let (tx, rx) = async_channel::bounded(1);
    tx.try_send(1).unwrap();
    let put_task = tulip::spawn({
        let tx = tx.clone();
        async move { tx.send(2).await }
    });
    run_briefly(1).await;
    assert!(put_task.cancel().await.is_none());
    assert_eq!(rx.try_recv(), Ok(1));
    run_briefly(1).await;
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        tx.try_send(3),
        Ok(()),
        "the free slot is not held for the cancelled put"
    );
}

// ---- QueueShutdownTests (close) -----------------------------------------------------------

// CPython: test_queues.py QueueShutdownTests.test_shutdown_empty — a pending get fails; put
// and get fail (async-channel gives the item back with the error).
#[tulip::test]
async fn test_shutdown_empty() {
    let _w = support::watchdog("test_shutdown_empty", 10);
    let (tx, rx) = async_channel::unbounded::<&str>();
    let get_task = tulip::spawn({
        let rx = rx.clone();
        async move { rx.recv().await }
    });
    run_briefly(1).await;
    assert!(
        tx.close(),
        "closed now (asyncio's shutdown(immediate=False))"
    );
    assert_eq!(rx.len(), 0);
    run_briefly(1).await;
    assert!(get_task.is_finished());
    assert_eq!(get_task.await, Err(RecvError));
    assert_eq!(tx.send("data").await, Err(SendError("data")));
    assert_eq!(tx.try_send("data"), Err(TrySendError::Closed("data")));
    assert_eq!(rx.recv().await, Err(RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

// CPython: test_queues.py QueueShutdownTests.test_shutdown_nonempty — a pending put fails,
// what was queued can still be got, then get fails too.
#[tulip::test]
async fn test_shutdown_nonempty() {
    let _w = support::watchdog("test_shutdown_nonempty", 10);
    let (tx, rx) = async_channel::bounded(1);
    tx.try_send("data").unwrap();
    let put_task = tulip::spawn({
        let tx = tx.clone();
        async move { tx.send("data2").await }
    });
    run_briefly(1).await;
    assert!(!put_task.is_finished());
    rx.close(); // either end may close
    assert_eq!(rx.len(), 1);
    run_briefly(1).await;
    assert!(put_task.is_finished());
    assert_eq!(put_task.await, Err(SendError("data2")));
    assert_eq!(rx.recv().await, Ok("data"));
    assert_eq!(tx.send("data").await, Err(SendError("data")));
    assert_eq!(tx.try_send("data"), Err(TrySendError::Closed("data")));
    assert_eq!(rx.recv().await, Err(RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

// CPython: test_queues.py QueueShutdownTests.test_shutdown_immediate — shutdown(immediate=True)
// is close and drain.
#[tulip::test]
async fn test_shutdown_immediate() {
    let _w = support::watchdog("test_shutdown_immediate", 10);
    let (tx, rx) = async_channel::unbounded();
    tx.try_send("data").unwrap();
    let get_task = tulip::spawn({
        let rx = rx.clone();
        async move {
            tulip::yield_now().await;
            rx.recv().await
        }
    });
    shutdown_immediate(&rx);
    assert_eq!(rx.len(), 0);
    assert_eq!(
        get_task.await,
        Err(RecvError),
        "the queued item was discarded"
    );
    assert_eq!(tx.send("data").await, Err(SendError("data")));
    assert_eq!(tx.try_send("data"), Err(TrySendError::Closed("data")));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

// tulip's own: dropping every sender closes the channel too; the receiver is a
// `futures_core::Stream` (async for) that ends after the last item.
#[tulip::test]
async fn last_sender_dropped_ends_the_stream() {
    let _w = support::watchdog("last_sender_dropped_ends_the_stream", 10);
    let (tx, rx) = async_channel::bounded(2);
    let mut rx = std::pin::pin!(rx); // a `Receiver` is `!Unpin` (it holds a listener)
    let producer = tulip::spawn(async move {
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
    });
    let mut got = Vec::new();
    while let Some(i) = rx.next().await {
        got.push(i);
    }
    producer.await;
    assert_eq!(got, [0, 1, 2, 3, 4]);
}

// ---- other threads ------------------------------------------------------------------------

// tulip's own: std threads send (`send_blocking`) while a loop task awaits `recv`; each send
// wakes the loop from its selector.
#[tulip::test]
async fn thread_sends_wake_the_loop() {
    let _w = support::watchdog("thread_sends_wake_the_loop", 10);
    let (tx, rx) = async_channel::bounded(1);
    let th = thread::spawn(move || {
        for i in 0..3 {
            thread::sleep(Duration::from_millis(5));
            tx.send_blocking(i).unwrap();
        }
    });
    let mut got = Vec::new();
    while let Ok(i) = tulip::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
    {
        got.push(i);
    }
    assert_eq!(got, [0, 1, 2]);
    th.join().unwrap();
}

// tulip's own: a loop task blocked on a full channel goes on when a std thread receives.
#[tulip::test]
async fn thread_recv_wakes_a_blocked_put() {
    let _w = support::watchdog("thread_recv_wakes_a_blocked_put", 10);
    let (tx, rx) = async_channel::bounded(1);
    tx.send(0).await.unwrap();
    let th = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        let mut got = Vec::new();
        while let Ok(i) = rx.recv_blocking() {
            got.push(i);
        }
        got
    });
    tulip::timeout(Duration::from_secs(5), tx.send(1))
        .await
        .expect("the thread made room")
        .unwrap();
    drop(tx);
    assert_eq!(th.join().unwrap(), [0, 1]);
}

// tulip's own: a std thread closes the channel (shutdown) while a loop task awaits `recv`.
#[tulip::test]
async fn thread_close_wakes_a_pending_get() {
    let _w = support::watchdog("thread_close_wakes_a_pending_get", 10);
    let (tx, rx) = async_channel::unbounded::<i32>();
    let th = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        tx.close();
    });
    let r = tulip::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(r, Ok(Err(RecvError)));
    th.join().unwrap();
}
