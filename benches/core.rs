//! Core micro-benchmarks: tulip against tokio's current-thread runtime (`enable_all`, tasks on
//! a `LocalSet`) and async-executor's `LocalExecutor` (driven by `futures_lite::future::block_on`),
//! in one process.
//!
//! Rows: spawn + await of an empty task, a local wake ping-pong between two tasks, a wake from
//! another OS thread, 100k timers with half cancelled (callbacks, bare `Sleep` futures and
//! sleeping tasks), and `call_soon` throughput (tulip only).
//!
//! Every runtime runs the same workload with the same hand-written wake primitives, so only the
//! executor differs. Each row runs every runtime 7 times (3 with `--quick`), interleaved
//! (A B C A B C …), after one smaller warm-up run each, and prints the median nanoseconds per
//! operation and the median of the paired ratios tulip / peer (below 1.0: tulip is faster).
//!
//! ```text
//! cargo bench --bench core                        # full run (about 10 s)
//! cargo bench --bench core -- --quick             # CI smoke run (about 1 s)
//! cargo bench --bench core -- --reps=1 --only=tulip pingpong   # e.g. under callgrind
//! ```
//!
//! Row ids for selection: `spawn`, `pingpong`, `xthread`, `call_later`, `sleep`, `sleep_tasks`,
//! `call_soon`; `--only=` takes `tulip`, `tokio` or `async-executor`.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use futures_lite::future::block_on;

// ---- shared primitives -------------------------------------------------------------------------

/// A single-threaded "flag + waker" cell: the same wake primitive for every runtime.
#[derive(Default)]
struct LocalFlag {
    set: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl LocalFlag {
    fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
    }
}

/// The cross-thread primitive: an atomic flag, a mutex-held waker, and the round the waiting
/// task has armed (so the other thread wakes only a task that is really waiting).
#[derive(Default)]
struct SyncFlag {
    set: AtomicBool,
    armed: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl SyncFlag {
    /// Waits for round `round` (1-based): registers the waker, then publishes `armed`.
    fn wait(&self, round: usize) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.set.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            self.armed.store(round, Ordering::Release);
            Poll::Pending
        })
    }

    /// The other thread's side: for each round, spin until the task is armed, then wake it.
    fn drive(&self, n: usize) {
        for round in 1..=n {
            while self.armed.load(Ordering::Acquire) < round {
                std::hint::spin_loop();
            }
            self.set.store(true, Ordering::Release);
            let w = self.waker.lock().unwrap().take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

/// A waker shared by many timers: counts fires and wakes the root once all expected fired.
struct CountWaker {
    fired: AtomicUsize,
    target: usize,
    root: Waker,
}

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.fired.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            self.root.wake_by_ref();
        }
    }
}

/// CPU time of the calling thread (timer rows: excludes the wall time spent waiting for the
/// deadlines, which is the same for everyone).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always supported
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Timer `i` of `n`'s delay: `n` µs (100 ms for 100k timers, longer than it takes any runtime
/// here to schedule them all, so none fires before the cancellations) plus 1..=10 ms spread in a
/// scrambled order.
fn delay(i: usize, n: usize) -> Duration {
    Duration::from_micros(n as u64 + 1_000 + (i as u64 * 7_919) % 9_001)
}

/// Warns if a timer fired before the cancellations (the base delay was too short).
fn check_none_fired(fired: usize) {
    if fired > 0 {
        eprintln!("warning: {fired} timers fired before the cancellations; the row is skewed");
    }
}

/// How many of `n` timers survive when every odd one is cancelled.
fn kept(n: usize) -> usize {
    n - n / 2
}

// ---- runtimes ----------------------------------------------------------------------------------

fn tulip_run<F: Future>(f: impl FnOnce(&tulip::EventLoop) -> F) -> F::Output {
    let lp = tulip::EventLoop::new().expect("tulip loop");
    let out = lp.run_until_complete(f(&lp));
    lp.close();
    out
}

fn tokio_run<F: Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    rt.block_on(local.run_until(fut))
}

// ---- 1. spawn + await --------------------------------------------------------------------------

fn spawn_tulip(n: usize) -> Duration {
    tulip_run(|_| async move {
        let t0 = Instant::now();
        for i in 0..n {
            black_box(tulip::spawn(async move { black_box(i) }).await);
        }
        t0.elapsed()
    })
}

fn spawn_tokio(n: usize) -> Duration {
    tokio_run(async move {
        let t0 = Instant::now();
        for i in 0..n {
            black_box(
                tokio::task::spawn_local(async move { black_box(i) })
                    .await
                    .unwrap(),
            );
        }
        t0.elapsed()
    })
}

fn spawn_aexec(n: usize) -> Duration {
    let ex = LocalExecutor::new();
    block_on(ex.run(async {
        let t0 = Instant::now();
        for i in 0..n {
            black_box(ex.spawn(async move { black_box(i) }).await);
        }
        t0.elapsed()
    }))
}

// ---- 2. local ping-pong ------------------------------------------------------------------------

type Unit = Pin<Box<dyn Future<Output = ()>>>;

/// Two tasks alternating through two `LocalFlag`s, `n` round trips.
fn pingpong_pair(n: usize) -> (Unit, Unit) {
    let a = Rc::new(LocalFlag::default());
    let b = Rc::new(LocalFlag::default());
    let (a2, b2) = (a.clone(), b.clone());
    let ping = async move {
        for _ in 0..n {
            b2.notify();
            a2.wait().await;
        }
    };
    let pong = async move {
        for _ in 0..n {
            b.wait().await;
            a.notify();
        }
    };
    (Box::pin(ping), Box::pin(pong))
}

fn pingpong_tulip(n: usize) -> Duration {
    tulip_run(|_| async move {
        let (ping, pong) = pingpong_pair(n);
        let t0 = Instant::now();
        let (p, q) = (tulip::spawn(ping), tulip::spawn(pong));
        p.await;
        q.await;
        t0.elapsed()
    })
}

fn pingpong_tokio(n: usize) -> Duration {
    tokio_run(async move {
        let (ping, pong) = pingpong_pair(n);
        let t0 = Instant::now();
        let (p, q) = (
            tokio::task::spawn_local(ping),
            tokio::task::spawn_local(pong),
        );
        p.await.unwrap();
        q.await.unwrap();
        t0.elapsed()
    })
}

fn pingpong_aexec(n: usize) -> Duration {
    let ex = LocalExecutor::new();
    block_on(ex.run(async {
        let (ping, pong) = pingpong_pair(n);
        let t0 = Instant::now();
        let (p, q) = (ex.spawn(ping), ex.spawn(pong));
        p.await;
        q.await;
        t0.elapsed()
    }))
}

// ---- 3. wake from another thread ---------------------------------------------------------------

/// The task that waits for `n` wakes from the other thread; returns the wall time they took.
async fn xthread_task(flag: Arc<SyncFlag>, n: usize) -> Duration {
    let t0 = Instant::now();
    for round in 1..=n {
        flag.wait(round).await;
    }
    t0.elapsed()
}

fn xthread_driver(n: usize) -> (Arc<SyncFlag>, std::thread::JoinHandle<()>) {
    let flag = Arc::new(SyncFlag::default());
    let f = flag.clone();
    let h = std::thread::spawn(move || f.drive(n));
    (flag, h)
}

fn xthread_tulip(n: usize) -> Duration {
    let (flag, h) = xthread_driver(n);
    let d = tulip_run(|lp| lp.spawn(xthread_task(flag, n)));
    h.join().unwrap();
    d
}

fn xthread_tokio(n: usize) -> Duration {
    let (flag, h) = xthread_driver(n);
    let d = tokio_run(async move {
        tokio::task::spawn_local(xthread_task(flag, n))
            .await
            .unwrap()
    });
    h.join().unwrap();
    d
}

fn xthread_aexec(n: usize) -> Duration {
    let (flag, h) = xthread_driver(n);
    let ex = LocalExecutor::new();
    let d = block_on(ex.run(ex.spawn(xthread_task(flag, n))));
    h.join().unwrap();
    d
}

// ---- 4. timers ---------------------------------------------------------------------------------

/// tulip: `n` `call_later` callbacks, every odd one cancelled, until the rest ran.
fn timers_call_later_tulip(n: usize) -> Duration {
    tulip_run(|lp| {
        let lp = lp.clone();
        async move {
            let fired = Rc::new(Cell::new(0usize));
            let done = Rc::new(LocalFlag::default());
            let target = kept(n);
            let t0 = thread_cpu();
            let handles: Vec<tulip::TimerHandle> = (0..n)
                .map(|i| {
                    let (fired, done) = (fired.clone(), done.clone());
                    lp.call_later(delay(i, n), move || {
                        let v = fired.get() + 1;
                        fired.set(v);
                        if v == target {
                            done.notify();
                        }
                    })
                })
                .collect();
            for h in handles.iter().skip(1).step_by(2) {
                h.cancel();
            }
            drop(handles);
            done.wait().await;
            thread_cpu() - t0
        }
    })
}

/// `n` boxed sleep futures polled once with a counting waker, every odd one dropped, until
/// the rest fired. `mk` makes a sleep future for a delay.
async fn bare_sleeps<S: Future<Output = ()>>(n: usize, mk: impl Fn(Duration) -> S) -> Duration {
    let t0 = thread_cpu();
    let target = kept(n);
    let mut sleeps: Vec<Option<Pin<Box<S>>>> = Vec::with_capacity(n);
    let mut counter: Option<Arc<CountWaker>> = None;
    poll_fn(|cx| {
        let cw = Arc::new(CountWaker {
            fired: AtomicUsize::new(0),
            target,
            root: cx.waker().clone(),
        });
        let w = Waker::from(cw.clone());
        let mut tcx = Context::from_waker(&w);
        for i in 0..n {
            let mut s = Box::pin(mk(delay(i, n)));
            if s.as_mut().poll(&mut tcx).is_ready() {
                // Only if the thread was descheduled for over a millisecond: count it.
                if i % 2 == 0 {
                    w.wake_by_ref();
                }
                sleeps.push(None);
            } else {
                sleeps.push(Some(s));
            }
        }
        counter = Some(cw);
        Poll::Ready(())
    })
    .await;
    for s in sleeps.iter_mut().skip(1).step_by(2) {
        drop(s.take());
    }
    let cw = counter.expect("polled");
    poll_fn(|_| {
        if cw.fired.load(Ordering::Acquire) >= target {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    drop(sleeps);
    thread_cpu() - t0
}

fn timers_sleep_tulip(n: usize) -> Duration {
    tulip_run(|_| bare_sleeps(n, tulip::sleep))
}

fn timers_sleep_tokio(n: usize) -> Duration {
    tokio_run(bare_sleeps(n, tokio::time::sleep))
}

/// The counters shared by the sleeping tasks of one run.
#[derive(Default)]
struct SleeperState {
    started: Rc<Cell<usize>>,
    fired: Rc<Cell<usize>>,
    all_started: Rc<LocalFlag>,
    done: Rc<LocalFlag>,
}

impl SleeperState {
    /// One sleeping task: counts itself started, sleeps, counts itself fired.
    fn task<S: Future<Output = ()>>(
        &self,
        n: usize,
        sleep: S,
    ) -> impl Future<Output = ()> + use<S> {
        let (started, fired) = (self.started.clone(), self.fired.clone());
        let (all_started, done) = (self.all_started.clone(), self.done.clone());
        async move {
            let s = started.get() + 1;
            started.set(s);
            if s == n {
                all_started.notify();
            }
            sleep.await;
            let f = fired.get() + 1;
            fired.set(f);
            if f == kept(n) {
                done.notify();
            }
        }
    }
}

/// tulip: `n` tasks each awaiting a `sleep`, every odd task cancelled once all sleep.
fn sleep_tasks_tulip(n: usize) -> Duration {
    tulip_run(|_| async move {
        let st = SleeperState::default();
        let t0 = thread_cpu();
        let tasks: Vec<tulip::Task<()>> = (0..n)
            .map(|i| tulip::spawn(st.task(n, tulip::sleep(delay(i, n)))))
            .collect();
        st.all_started.wait().await;
        check_none_fired(st.fired.get());
        for (i, t) in tasks.into_iter().enumerate() {
            if i % 2 == 1 {
                drop(t.cancel());
            } else {
                t.detach();
            }
        }
        st.done.wait().await;
        thread_cpu() - t0
    })
}

/// tokio: `n` local tasks each awaiting a `sleep`, every odd task aborted once all sleep.
fn sleep_tasks_tokio(n: usize) -> Duration {
    tokio_run(async move {
        let st = SleeperState::default();
        let t0 = thread_cpu();
        let tasks: Vec<tokio::task::JoinHandle<()>> = (0..n)
            .map(|i| tokio::task::spawn_local(st.task(n, tokio::time::sleep(delay(i, n)))))
            .collect();
        st.all_started.wait().await;
        check_none_fired(st.fired.get());
        for (i, t) in tasks.into_iter().enumerate() {
            if i % 2 == 1 {
                t.abort();
            }
        }
        st.done.wait().await;
        thread_cpu() - t0
    })
}

// ---- 5. call_soon ------------------------------------------------------------------------------

/// tulip: `n` `call_soon` callbacks that bump a counter, then `stop`, run by `run_forever`.
fn call_soon_tulip(n: usize) -> Duration {
    let lp = tulip::EventLoop::new().expect("tulip loop");
    let count = Rc::new(Cell::new(0u64));
    let t0 = Instant::now();
    for _ in 0..n {
        let c = count.clone();
        lp.call_soon(move || c.set(c.get() + 1));
    }
    let l = lp.clone();
    lp.call_soon(move || l.stop());
    lp.run_forever();
    let d = t0.elapsed();
    assert_eq!(black_box(count.get()), n as u64);
    lp.close();
    d
}

// ---- driver ------------------------------------------------------------------------------------

type Bench = fn(usize) -> Duration;

struct Row {
    /// Short name, for selecting rows on the command line.
    id: &'static str,
    name: &'static str,
    /// Operations per run (what "ns/op" divides by).
    n: usize,
    /// Per-op nanoseconds for tulip, tokio, async-executor (or why a cell is empty).
    tulip: Bench,
    tokio: Option<Bench>,
    aexec: Option<Bench>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn per_op(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("machine: nproc = {nproc}, CPU = {cpu}")
}

fn fmt_ns(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "n/a".into(),
    }
}

/// Command line: `--quick`, `--reps=N`, `--only=tulip|tokio|async-executor`, and row ids
/// (`spawn`, `pingpong`, `xthread`, `call_later`, `sleep`, `sleep_tasks`, `call_soon`) to run
/// only those rows. Anything else (such as cargo's `--bench`) is ignored.
struct Args {
    quick: bool,
    reps: Option<usize>,
    only: Option<String>,
    rows: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        quick: false,
        reps: None,
        only: None,
        rows: Vec::new(),
    };
    for a in std::env::args().skip(1) {
        if a == "--quick" {
            args.quick = true;
        } else if let Some(v) = a.strip_prefix("--reps=") {
            args.reps = v.parse().ok();
        } else if let Some(v) = a.strip_prefix("--only=") {
            args.only = Some(v.to_string());
        } else if !a.starts_with('-') {
            args.rows.push(a);
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let quick = args.quick;
    let (reps, scale) = if quick { (3, 10) } else { (7, 1) };
    let reps = args.reps.unwrap_or(reps).max(1);
    let timers = 100_000 / scale;
    let rows = [
        Row {
            id: "spawn",
            name: "spawn + await empty task",
            n: 200_000 / scale,
            tulip: spawn_tulip,
            tokio: Some(spawn_tokio),
            aexec: Some(spawn_aexec),
        },
        Row {
            id: "pingpong",
            name: "local wake ping-pong (per round trip)",
            n: 200_000 / scale,
            tulip: pingpong_tulip,
            tokio: Some(pingpong_tokio),
            aexec: Some(pingpong_aexec),
        },
        Row {
            id: "xthread",
            name: "wake from another thread (per round trip)",
            n: 20_000 / scale,
            tulip: xthread_tulip,
            tokio: Some(xthread_tokio),
            aexec: Some(xthread_aexec),
        },
        Row {
            id: "call_later",
            name: "timers, half cancelled: tulip call_later / tokio Sleep futures ¹",
            n: timers,
            tulip: timers_call_later_tulip,
            tokio: Some(timers_sleep_tokio),
            aexec: None,
        },
        Row {
            id: "sleep",
            name: "timers, half cancelled: Sleep futures ¹",
            n: timers,
            tulip: timers_sleep_tulip,
            tokio: Some(timers_sleep_tokio),
            aexec: None,
        },
        Row {
            id: "sleep_tasks",
            name: "sleeping tasks, half cancelled ¹",
            n: timers,
            tulip: sleep_tasks_tulip,
            tokio: Some(sleep_tasks_tokio),
            aexec: None,
        },
        Row {
            id: "call_soon",
            name: "call_soon callback (tulip only)",
            n: 1_000_000 / scale,
            tulip: call_soon_tulip,
            tokio: None,
            aexec: None,
        },
    ];

    println!("{}", machine());
    println!(
        "mode: {}, {reps} interleaved repetitions per runtime; ns/op = median; ratio = median of \
         paired per-repetition ratios (below 1.0: tulip faster)\n",
        if quick { "quick" } else { "full" }
    );
    println!(
        "| benchmark | N | tulip ns/op | tokio ns/op | async-executor ns/op | tulip/tokio | tulip/async-executor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let wanted = |rt: &str| args.only.as_deref().is_none_or(|o| o == rt);
    for row in rows
        .iter()
        .filter(|r| args.rows.is_empty() || args.rows.iter().any(|a| a == r.id))
    {
        let benches = [
            Some(row.tulip).filter(|_| wanted("tulip")),
            row.tokio.filter(|_| wanted("tokio")),
            row.aexec.filter(|_| wanted("async-executor")),
        ];
        // One warm-up run each, at a tenth of the size.
        for b in benches.iter().flatten() {
            black_box(b((row.n / 10).max(1)));
        }
        let mut samples: [Vec<f64>; 3] = Default::default();
        // The order rotates from one repetition to the next, so that no runtime always runs
        // first (right after another runtime's teardown) or last.
        for rep in 0..reps {
            for k in 0..benches.len() {
                let i = (k + rep) % benches.len();
                if let Some(b) = benches[i] {
                    samples[i].push(per_op(b(row.n), row.n));
                }
            }
        }
        let med: Vec<Option<f64>> = samples
            .iter()
            .map(|s| (!s.is_empty()).then(|| median(&mut s.clone())))
            .collect();
        // Paired ratios: each tulip run over the peer run of the same repetition; the median.
        let ratio = |peer: &[f64]| -> String {
            if samples[0].is_empty() || peer.is_empty() {
                return "n/a".into();
            }
            let mut r: Vec<f64> = samples[0].iter().zip(peer).map(|(t, p)| t / p).collect();
            format!("{:.2}", median(&mut r))
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.n,
            fmt_ns(med[0]),
            fmt_ns(med[1]),
            fmt_ns(med[2]),
            ratio(&samples[1]),
            ratio(&samples[2]),
        );
    }
    println!();
    println!(
        "¹ timer rows: CPU time of the loop thread per timer scheduled (half of them cancelled), \
         delays of N µs + 1–10 ms (scrambled), so every cancellation hits a pending timer; the \
         wall-clock wait for the deadlines is excluded. \
         async-executor: n/a (async-io's Timer is not in the dependency tree). Both timer rows \
         use the same tokio workload (boxed `tokio::time::sleep` futures polled once, odd ones \
         dropped); tokio has no `call_later`."
    );
    println!(
        "Other rows: wall time. Cross-thread row: a second OS thread spins until the task has \
         registered its waker, then wakes it; the loop thread sleeps in its poller in between."
    );
}
