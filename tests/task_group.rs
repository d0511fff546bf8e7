//! `TaskGroup`: CPython's test_taskgroups.py, translated where it applies, and the
//! Rust-specific cases (panics, `Drop` as cancellation, spawning into a finished group).
//!
//! CPython's times are scaled down (0.1 s → 10 ms); sleeps that are always cancelled keep
//! their length. asyncio's `except CancelledError:` clean-up is a `Drop` guard here
//! ([`OnCancel`]), since cancelling a Rust future drops it.

mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use tulip::task::{GroupTask, SpawnError, TaskFailure};
use tulip::{TaskGroup, TaskGroupError};

/// The test's exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Exc {
    ZeroDivision,
    Value,
    Spawn,
}

impl fmt::Display for Exc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Exc {}

impl From<SpawnError> for Exc {
    fn from(_: SpawnError) -> Exc {
        Exc::Spawn
    }
}

type BoxError = Box<dyn std::error::Error>;

/// CPython's `get_error_types`: the set of errors in the group (panics are not expected).
fn error_types(err: &TaskGroupError<Exc>) -> BTreeSet<Exc> {
    err.errors()
        .iter()
        .map(|f| *f.as_error().expect("an error, not a panic"))
        .collect()
}

/// Adds `add` to `n` when dropped while armed: asyncio's `except CancelledError: n += add`.
struct OnCancel {
    n: Rc<Cell<u32>>,
    add: u32,
    armed: bool,
}

impl OnCancel {
    fn new(n: &Rc<Cell<u32>>, add: u32) -> OnCancel {
        OnCancel {
            n: n.clone(),
            add,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for OnCancel {
    fn drop(&mut self) {
        if self.armed {
            self.n.set(self.n.get() + self.add);
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn sleep_then<T>(d: Duration, v: T) -> Result<T, Exc> {
    tulip::sleep(d).await;
    Ok(v)
}

async fn sleep_then_fail(d: Duration, e: Exc) -> Result<(), Exc> {
    tulip::sleep(d).await;
    Err(e)
}

/// Sleeps `d`; adds `add` to `n` if cancelled meanwhile.
async fn sleep_counting_cancel(d: Duration, n: Rc<Cell<u32>>, add: u32) -> Result<(), Exc> {
    let guard = OnCancel::new(&n, add);
    tulip::sleep(d).await;
    guard.disarm();
    Ok(())
}

/// Lets the loop run a few iterations: cancelled children are dropped on the next one.
async fn settle() {
    for _ in 0..3 {
        tulip::yield_now().await;
    }
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_01
#[test]
fn taskgroup_01() {
    let _w = support::watchdog("taskgroup_01", 20);
    tulip::run(async {
        let (t1, t2) = TaskGroup::run(|g| async move {
            let t1 = g.spawn(sleep_then(ms(10), 42))?;
            let t2 = g.spawn(sleep_then(ms(20), 11))?;
            Ok::<_, Exc>((t1, t2))
        })
        .await
        .unwrap();
        assert!(t1.is_finished() && t2.is_finished());
        assert_eq!(t1.await, Some(42));
        assert_eq!(t2.await, Some(11));
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_02
#[test]
fn taskgroup_02() {
    let _w = support::watchdog("taskgroup_02", 20);
    tulip::run(async {
        let (t1, t2) = TaskGroup::run(|g| async move {
            let t1 = g.spawn(sleep_then(ms(10), 42))?;
            tulip::sleep(ms(15)).await;
            let t2 = g.spawn(sleep_then(ms(20), 11))?;
            Ok::<_, Exc>((t1, t2))
        })
        .await
        .unwrap();
        assert_eq!(t1.await, Some(42));
        assert_eq!(t2.await, Some(11));
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_03
#[test]
fn taskgroup_03_a_child_cancelled_on_its_own_is_not_a_failure() {
    let _w = support::watchdog("taskgroup_03", 20);
    tulip::run(async {
        let (t1, t2) = TaskGroup::run(|g| async move {
            let t1 = g.spawn(sleep_then(Duration::from_secs(10), 42))?;
            tulip::sleep(ms(15)).await;
            // Cancel t1 explicitly: everything goes on as expected.
            t1.cancel();
            let t2 = g.spawn(sleep_then(ms(20), 11))?;
            Ok::<_, Exc>((t1, t2))
        })
        .await
        .unwrap();
        assert_eq!(t1.await, None, "cancelled");
        assert_eq!(t2.await, Some(11));
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_04
#[test]
fn taskgroup_04_a_failing_child_cancels_the_others() {
    let _w = support::watchdog("taskgroup_04", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let t2_cancel = Rc::new(Cell::new(0));
        let t2: Rc<RefCell<Option<GroupTask<()>>>> = Rc::default();
        let runner = {
            let (num, t2_cancel, t2) = (num.clone(), t2_cancel.clone(), t2.clone());
            async move {
                let n = num.clone();
                TaskGroup::run(|g| async move {
                    g.spawn(sleep_then_fail(ms(10), Exc::ZeroDivision))?;
                    let c = t2_cancel.clone();
                    *t2.borrow_mut() = Some(g.spawn(async move {
                        sleep_counting_cancel(Duration::from_secs(1), c, 1).await?;
                        n.set(n.get() + 1);
                        Ok(())
                    })?);
                    Ok::<_, Exc>(())
                })
                .await?;
                num.set(num.get() + 10);
                Ok::<_, TaskGroupError<Exc>>(())
            }
        };
        let err = tulip::spawn(runner).await.unwrap_err();
        assert_eq!(error_types(&err), BTreeSet::from([Exc::ZeroDivision]));
        assert_eq!(num.get(), 0);
        assert_eq!(t2_cancel.get(), 1);
        let t2 = t2.borrow_mut().take().unwrap();
        assert!(t2.is_finished());
        assert_eq!(t2.await, None, "cancelled");
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_cancel_children_on_child_error
#[test]
fn cancel_children_on_child_error() {
    let _w = support::watchdog("cancel_children_on_child_error", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let t2_cancel = Rc::new(Cell::new(0));
        let runner_cancel = Rc::new(Cell::new(0));
        let r = {
            let (num, t2_cancel, runner_cancel) =
                (num.clone(), t2_cancel.clone(), runner_cancel.clone());
            TaskGroup::run(|g| async move {
                for _ in 0..3 {
                    g.spawn(sleep_then_fail(ms(10), Exc::ZeroDivision))?;
                }
                let n = num.clone();
                g.spawn(async move {
                    sleep_counting_cancel(Duration::from_secs(5), t2_cancel, 1).await?;
                    n.set(n.get() + 1);
                    Ok(())
                })?;
                sleep_counting_cancel(Duration::from_secs(10), runner_cancel, 1).await?;
                num.set(num.get() + 10);
                Ok::<_, Exc>(())
            })
        };
        let err = r.await.unwrap_err();
        // The three failing children may all fail before the cancellation, or not.
        assert_eq!(error_types(&err), BTreeSet::from([Exc::ZeroDivision]));
        assert_eq!(num.get(), 0);
        assert_eq!(t2_cancel.get(), 1);
        assert_eq!(runner_cancel.get(), 1, "the body was cancelled");
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_cancellation
#[test]
fn cancellation_of_the_awaiting_task_cancels_the_children() {
    let _w = support::watchdog("cancellation", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = tulip::spawn(TaskGroup::run(|g| async move {
            for _ in 0..5 {
                g.spawn(sleep_counting_cancel(Duration::from_secs(5), n.clone(), 1))?;
            }
            Ok::<_, Exc>(())
        }));
        tulip::sleep(ms(10)).await;
        assert!(!r.is_finished());
        assert!(r.cancel().await.is_none(), "cancelled, not finished");
        // Rust has no async drop: the children's futures go on the loop's next iteration.
        settle().await;
        assert_eq!(num.get(), 5);
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_07
#[test]
fn taskgroup_07_cancellation_cancels_the_body_too() {
    let _w = support::watchdog("taskgroup_07", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = tulip::spawn(TaskGroup::run(|g| async move {
            for _ in 0..5 {
                g.spawn(sleep_counting_cancel(Duration::from_secs(5), n.clone(), 1))?;
            }
            sleep_counting_cancel(Duration::from_secs(10), n, 10).await
        }));
        tulip::sleep(ms(10)).await;
        assert!(!r.is_finished());
        assert!(r.cancel().await.is_none());
        settle().await;
        assert_eq!(num.get(), 15);
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_cancellation_in_body
#[test]
fn cancellation_in_body() {
    let _w = support::watchdog("cancellation_in_body", 20);
    tulip::run(async {
        let r = tulip::spawn(TaskGroup::run(|g| async move {
            for _ in 0..5 {
                g.spawn(sleep_then_fail(ms(500), Exc::ZeroDivision))?;
            }
            tulip::sleep(Duration::from_secs(10)).await;
            Ok::<_, Exc>(())
        }));
        tulip::sleep(ms(10)).await;
        assert!(!r.is_finished());
        // Cancelled before any child failed: a cancellation, not an error.
        assert!(r.cancel().await.is_none());
    });
}

/// test_taskgroup_09 and _10: the body fails after spawning two children.
fn body_fails(sleep_first: bool) {
    tulip::run(async {
        let handles: Rc<RefCell<Vec<GroupTask<u32>>>> = Rc::default();
        let h = handles.clone();
        let r = TaskGroup::run(|g| async move {
            h.borrow_mut()
                .push(g.spawn(sleep_then(Duration::from_secs(1), 42))?);
            h.borrow_mut()
                .push(g.spawn(sleep_then(Duration::from_secs(2), 11))?);
            if sleep_first {
                tulip::sleep(ms(10)).await;
            }
            Err::<(), _>(Exc::ZeroDivision)
        })
        .await;
        let err = r.unwrap_err();
        assert_eq!(error_types(&err), BTreeSet::from([Exc::ZeroDivision]));
        for t in handles.take() {
            assert!(t.is_finished());
            assert_eq!(t.await, None, "cancelled");
        }
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_09
#[test]
fn taskgroup_09_the_body_fails() {
    let _w = support::watchdog("taskgroup_09", 20);
    body_fails(true);
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_10
#[test]
fn taskgroup_10_the_body_fails_at_once() {
    let _w = support::watchdog("taskgroup_10", 20);
    body_fails(false);
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_11
#[test]
fn taskgroup_11_cancelling_nested_groups() {
    let _w = support::watchdog("taskgroup_11", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = tulip::spawn(TaskGroup::run(|_g1| async move {
            TaskGroup::run(|g2| async move {
                for _ in 0..5 {
                    g2.spawn(sleep_counting_cancel(Duration::from_secs(1), n.clone(), 1))?;
                }
                tulip::sleep(Duration::from_secs(10)).await;
                Ok::<_, Exc>(())
            })
            .await
            .map_err(|_| Exc::ZeroDivision)
        }));
        tulip::sleep(ms(10)).await;
        assert!(!r.is_finished());
        assert!(r.cancel().await.is_none());
        settle().await;
        assert_eq!(num.get(), 5, "the inner group's children were cancelled");
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_12
#[test]
fn taskgroup_12_cancelling_nested_groups_with_outer_children() {
    let _w = support::watchdog("taskgroup_12", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = tulip::spawn(TaskGroup::run(|g1| async move {
            g1.spawn(sleep_counting_cancel(
                Duration::from_secs(10),
                n.clone(),
                10,
            ))?;
            TaskGroup::run(|g2| async move {
                for _ in 0..5 {
                    g2.spawn(sleep_counting_cancel(Duration::from_secs(1), n.clone(), 1))?;
                }
                tulip::sleep(Duration::from_secs(10)).await;
                Ok::<_, Exc>(())
            })
            .await
            .map_err(|_| Exc::ZeroDivision)
        }));
        tulip::sleep(ms(10)).await;
        assert!(!r.is_finished());
        assert!(r.cancel().await.is_none());
        settle().await;
        assert_eq!(num.get(), 15);
    });
}

async fn crash_after(d: Duration) -> Result<(), BoxError> {
    tulip::sleep(d).await;
    Err(Box::new(Exc::Value))
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_13
#[test]
fn taskgroup_13_outer_child_fails_while_inner_group_runs() {
    let _w = support::watchdog("taskgroup_13", 20);
    tulip::run(async {
        let err = TaskGroup::run(|g1| async move {
            g1.spawn(crash_after(ms(10)))?;
            TaskGroup::run(|g2| async move {
                g2.spawn(crash_after(Duration::from_secs(10)))?;
                Ok::<_, BoxError>(())
            })
            .await?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.errors().len(), 1);
        let e = err.errors()[0].as_error().unwrap();
        assert_eq!(e.downcast_ref::<Exc>(), Some(&Exc::Value));
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_14
#[test]
fn taskgroup_14_inner_group_error_nests_in_the_outer() {
    let _w = support::watchdog("taskgroup_14", 20);
    tulip::run(async {
        let err = TaskGroup::run(|g1| async move {
            g1.spawn(crash_after(Duration::from_secs(10)))?;
            TaskGroup::run(|g2| async move {
                g2.spawn(crash_after(ms(10)))?;
                Ok::<_, BoxError>(())
            })
            .await?;
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.errors().len(), 1);
        let inner = err.errors()[0].as_error().unwrap();
        let inner = inner
            .downcast_ref::<TaskGroupError<BoxError>>()
            .expect("the inner group's error");
        assert_eq!(inner.errors().len(), 1);
        let e = inner.errors()[0].as_error().unwrap();
        assert_eq!(e.downcast_ref::<Exc>(), Some(&Exc::Value));
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_16
#[test]
fn taskgroup_16_cancelling_a_task_that_awaits_a_group_task() {
    let _w = support::watchdog("taskgroup_16", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let nested_runner = TaskGroup::run(|g1| async move {
            g1.spawn(sleep_then_fail(ms(30), Exc::ZeroDivision))?;
            sleep_counting_cancel(Duration::from_secs(10), n, 1).await
        });
        let r = tulip::spawn(async move { tulip::spawn(nested_runner).await });
        tulip::sleep(ms(10)).await;
        assert!(!r.is_finished());
        assert!(r.cancel().await.is_none());
        // Cancelling `r` detaches the inner task (tulip's `Task` detaches on drop, as
        // asyncio's does), so the nested group goes on and ends with its child's error.
        while num.get() == 0 {
            tulip::sleep(ms(5)).await; // the watchdog bounds this
        }
        assert_eq!(
            num.get(),
            1,
            "the nested body was cancelled by its child's failure"
        );
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_17
#[test]
fn taskgroup_17_cancelling_a_group_without_children() {
    let _w = support::watchdog("taskgroup_17", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = tulip::spawn(TaskGroup::run(|_g| async move {
            sleep_counting_cancel(Duration::from_secs(10), n, 10).await
        }));
        tulip::sleep(ms(10)).await;
        assert!(!r.is_finished());
        assert!(r.cancel().await.is_none());
        assert_eq!(num.get(), 10);
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_22
#[test]
fn taskgroup_22_cancelling_a_group_with_sleeping_children() {
    let _w = support::watchdog("taskgroup_22", 20);
    tulip::run(async {
        let r = tulip::spawn(TaskGroup::run(|g| async move {
            g.spawn(sleep_then(Duration::from_secs(1), 42))?;
            g.spawn(sleep_then(Duration::from_secs(2), 11))?;
            Ok::<_, Exc>(())
        }));
        tulip::sleep(ms(5)).await;
        assert!(r.cancel().await.is_none());
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_23
#[test]
fn taskgroup_23_finished_children_leave_the_group() {
    let _w = support::watchdog("taskgroup_23", 20);
    tulip::run(async {
        TaskGroup::run(|g| async move {
            for count in 0..10 {
                tulip::sleep(ms(10)).await;
                g.spawn(sleep_then(ms(30), ()))?;
                if count == 5 {
                    assert!(g.len() < 5, "{} children", g.len());
                }
            }
            tulip::sleep(ms(135)).await;
            assert_eq!(g.len(), 0);
            assert!(g.is_empty());
            Ok::<_, Exc>(())
        })
        .await
        .unwrap();
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_24
#[test]
fn taskgroup_24_children_spawn_after_the_body_returned() {
    let _w = support::watchdog("taskgroup_24", 20);
    tulip::run(async {
        let done = Rc::new(Cell::new(0));
        let d = done.clone();
        TaskGroup::run(|g| async move {
            let g2 = g.clone();
            g.spawn(async move {
                tulip::sleep(ms(10)).await;
                for delay in [10, 20] {
                    let d = d.clone();
                    g2.spawn(async move {
                        tulip::sleep(ms(delay)).await;
                        d.set(d.get() + 1);
                        Ok(())
                    })?;
                }
                Ok::<_, Exc>(())
            })?;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(done.get(), 2, "the group waited for the grandchildren");
    });
}

// CPython: test_taskgroups.py TestTaskGroup.test_taskgroup_25
#[test]
fn taskgroup_25_hydras_and_hercules() {
    let _w = support::watchdog("taskgroup_25", 20);

    // Not an `async fn`: a recursive `async fn` cannot name its own future type.
    #[allow(clippy::manual_async_fn)]
    fn hydra(g: TaskGroup<Exc>, n: Rc<Cell<u32>>) -> impl Future<Output = Result<(), Exc>> {
        async move {
            n.set(n.get() + 1);
            tulip::sleep(ms(10)).await;
            g.spawn(hydra(g.clone(), n.clone()))?;
            g.spawn(hydra(g.clone(), n.clone()))?;
            Ok(())
        }
    }

    tulip::run(async {
        let nhydras = Rc::new(Cell::new(0));
        let n = nhydras.clone();
        let err = TaskGroup::run(|g| async move {
            g.spawn(hydra(g.clone(), n.clone()))?;
            g.spawn(async move {
                while n.get() < 10 {
                    tulip::sleep(ms(15)).await;
                }
                Err::<(), _>(Exc::ZeroDivision)
            })?;
            Ok::<_, Exc>(())
        })
        .await
        .unwrap_err();
        assert_eq!(error_types(&err), BTreeSet::from([Exc::ZeroDivision]));
        assert!(nhydras.get() >= 10);
    });
}

// Not in CPython: a panic in a child is one of the group's failures, as such.
#[test]
fn a_panicking_child_fails_the_group_with_its_panic() {
    let _w = support::watchdog("panicking_child", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let err = TaskGroup::run(|g| async move {
            g.spawn(async {
                tulip::sleep(ms(5)).await;
                panic!("child panicked");
                #[allow(unreachable_code)]
                Ok(())
            })?;
            g.spawn(sleep_counting_cancel(Duration::from_secs(10), n, 1))?;
            g.spawn(sleep_then_fail(ms(10), Exc::Value))?; // cancelled before it fails
            Ok::<_, Exc>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.errors().len(), 1);
        let f = &err.errors()[0];
        assert!(f.is_panic());
        assert_eq!(f.panic_message(), Some("child panicked"));
        assert!(matches!(f, TaskFailure::Panic(_)));
        assert_eq!(num.get(), 1);
        assert!(
            err.to_string().contains("panicked: child panicked"),
            "{err}"
        );
    });
}

// Not in CPython: a panicking body is the group's failure too.
#[test]
fn a_panicking_body_fails_the_group_with_its_panic() {
    let _w = support::watchdog("panicking_body", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let err = TaskGroup::run(|g| async move {
            g.spawn(sleep_counting_cancel(Duration::from_secs(10), n, 1))?;
            tulip::yield_now().await;
            if num.get() == 0 {
                panic!("body panicked");
            }
            Ok::<(), Exc>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.errors().len(), 1);
        assert_eq!(err.errors()[0].panic_message(), Some("body panicked"));
    });
}

// Not in CPython's file (asyncio raises RuntimeError from `create_task`): spawning into a
// group that is finished, or shutting down after a failure, is an error.
#[test]
fn spawning_into_a_finished_or_failing_group_is_an_error() {
    let _w = support::watchdog("spawn_into_finished", 20);
    tulip::run(async {
        let leaked: Rc<RefCell<Option<TaskGroup<Exc>>>> = Rc::default();
        let l = leaked.clone();
        TaskGroup::run(|g| async move {
            *l.borrow_mut() = Some(g.clone());
            Ok::<_, Exc>(())
        })
        .await
        .unwrap();
        let g = leaked.take().unwrap();
        let e = g.spawn(async { Ok(()) }).unwrap_err();
        assert!(e.is_finished());
        assert_eq!(e.to_string(), "the TaskGroup is finished");
        let io: std::io::Error = e.into();
        assert_eq!(io.kind(), std::io::ErrorKind::Other);

        // A child's clean-up runs while the group shuts down: it cannot spawn.
        struct SpawnOnDrop(TaskGroup<Exc>, Rc<Cell<Option<SpawnError>>>);
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                self.1.set(self.0.spawn(async { Ok(()) }).err());
            }
        }
        let refused = Rc::new(Cell::new(None));
        let r = refused.clone();
        let err = TaskGroup::run(|g| async move {
            let guard = SpawnOnDrop(g.clone(), r);
            g.spawn(async move {
                let _guard = guard;
                tulip::sleep(Duration::from_secs(10)).await;
                Ok(())
            })?;
            g.spawn(sleep_then_fail(ms(5), Exc::Value))?;
            Ok::<_, Exc>(())
        })
        .await
        .unwrap_err();
        assert_eq!(error_types(&err), BTreeSet::from([Exc::Value]));
        let e = refused.get().expect("spawn was refused");
        assert!(!e.is_finished());
        assert_eq!(e.to_string(), "the TaskGroup is shutting down");
    });
}

// Not in CPython: dropping the awaiting future (a timeout here) cancels the children, and
// the body may borrow from its caller.
#[test]
fn dropping_the_group_future_cancels_the_children() {
    let _w = support::watchdog("drop_group_future", 20);
    tulip::run(async {
        let num = Rc::new(Cell::new(0));
        let local = String::from("borrowed");
        let r = tulip::timeout(
            ms(10),
            TaskGroup::run(|g| {
                let n = num.clone();
                let local = &local;
                async move {
                    for _ in 0..3 {
                        g.spawn(sleep_counting_cancel(Duration::from_secs(10), n.clone(), 1))?;
                    }
                    assert_eq!(local, "borrowed");
                    Ok::<_, Exc>(())
                }
            }),
        )
        .await;
        assert!(r.is_err(), "timed out");
        settle().await;
        assert_eq!(num.get(), 3);
    });
}
