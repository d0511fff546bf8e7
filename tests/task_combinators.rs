//! asyncio's `gather`, `wait(FIRST_COMPLETED)`, `as_completed` and `shield`, done with
//! futures-util's combinators on tulip (the README's "asyncio → Rust" table).

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::{self, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn after<T>(d: Duration, v: T) -> T {
    tulip::sleep(d).await;
    v
}

// asyncio.gather(*aws): every result, in the order given.
#[test]
fn gather_is_join_all() {
    let _w = support::watchdog("gather_join_all", 20);
    tulip::run(async {
        let t0 = Instant::now();
        let tasks = vec![
            tulip::spawn(after(ms(100), 1)),
            tulip::spawn(after(ms(50), 2)),
            tulip::spawn(after(ms(80), 3)),
        ];
        assert_eq!(future::join_all(tasks).await, vec![1, 2, 3]);
        // Concurrently: about the longest (100 ms), not the sum (230 ms).
        assert!(t0.elapsed() < ms(200), "{:?}", t0.elapsed());
    });
}

// asyncio.gather(*aws) when one raises: the first error; the others are dropped (cancelled),
// where asyncio would let them run on.
#[test]
fn gather_with_errors_is_try_join_all() {
    let _w = support::watchdog("gather_try_join_all", 20);
    tulip::run(async {
        let slow_done = Rc::new(Cell::new(false));
        let s = slow_done.clone();
        let slow = async move {
            tulip::sleep(ms(50)).await;
            s.set(true);
            Ok::<u32, &str>(1)
        };
        let futs: Vec<future::LocalBoxFuture<'_, Result<u32, &str>>> = vec![
            Box::pin(async { Ok(0) }),
            Box::pin(async {
                tulip::sleep(ms(5)).await;
                Err("boom")
            }),
            Box::pin(slow),
        ];
        assert_eq!(future::try_join_all(futs).await, Err("boom"));
        tulip::sleep(ms(60)).await;
        assert!(
            !slow_done.get(),
            "the slow future was dropped with the join"
        );

        let ok = future::try_join_all([after(ms(1), Ok::<_, ()>(1)), after(ms(2), Ok(2))]).await;
        assert_eq!(ok, Ok(vec![1, 2]));
    });
}

// asyncio.wait({a, b}, return_when=FIRST_COMPLETED): the first result, and the rest still
// pending (as a future to await or drop).
#[test]
fn wait_first_completed_is_select() {
    let _w = support::watchdog("wait_select", 20);
    tulip::run(async {
        let a = tulip::spawn(after(ms(30), "slow"));
        let b = tulip::spawn(after(ms(5), "fast"));
        match future::select(a, b).await {
            Either::Right((v, a)) => {
                assert_eq!(v, "fast");
                // The other task is still running: await it (or drop it: it detaches).
                assert_eq!(a.await, "slow");
            }
            Either::Left(_) => panic!("the slow one finished first"),
        }

        // More than two: select_all returns the first, its index and the rest.
        let (v, i, rest) = future::select_all([
            Box::pin(after(ms(20), 0)),
            Box::pin(after(ms(5), 1)),
            Box::pin(after(ms(10), 2)),
        ])
        .await;
        assert_eq!((v, i, rest.len()), (1, 1, 2));
    });
}

// asyncio.as_completed(aws): results in the order they finish.
#[test]
fn as_completed_is_futures_unordered() {
    let _w = support::watchdog("as_completed", 20);
    tulip::run(async {
        let mut pending: FuturesUnordered<_> = [(30, "c"), (10, "a"), (20, "b")]
            .into_iter()
            .map(|(d, v)| tulip::spawn(after(ms(d), v)))
            .collect();
        let mut order = Vec::new();
        while let Some(v) = pending.next().await {
            order.push(v);
        }
        assert_eq!(order, ["a", "b", "c"]);
    });
}

// asyncio.shield(aw): spawn it as a Task and await the handle; cancelling the awaiter (here
// a timeout drops the `.await`) leaves the task running, and its output stays for later.
#[test]
fn shield_is_a_spawned_task() {
    let _w = support::watchdog("shield", 20);
    tulip::run(async {
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let mut task = tulip::spawn(async move {
            tulip::sleep(ms(20)).await;
            d.set(true);
            7
        });
        assert!(
            tulip::timeout(ms(2), &mut task).await.is_err(),
            "the awaiter was cancelled"
        );
        assert!(!done.get());
        assert_eq!(task.await, 7, "the shielded task ran on");
        assert!(done.get());

        // Dropping the handle of a shielded task detaches it: it still completes.
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let task = tulip::spawn(async move {
            tulip::sleep(ms(50)).await;
            d.set(true);
        });
        assert!(tulip::timeout(ms(1), task).await.is_err());
        while !done.get() {
            tulip::sleep(ms(5)).await; // the watchdog bounds this
        }
    });
}
