//! One event loop per core: the scaling recipe of asyncio and uvloop (one process per core,
//! each with its own `SO_REUSEPORT` listening socket) and of glommio and monoio
//! (thread-per-core), as threads of one process.
//!
//! Each loop is an ordinary single-threaded [`EventLoop`] on its own thread, pinned to one
//! CPU; nothing is shared between them unless the caller shares it. To spread connections
//! over the loops, each one listens on the same address with
//! [`ServerOptions::reuse_port`](crate::ServerOptions::reuse_port): the kernel hashes each
//! new connection to one of the listening sockets.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use crate::event_loop::{EventLoop, LoopHandle};
use crate::sys::{allowed_cpus, pin_to};

/// Runs `main` on `threads` event loops, one thread each, each pinned to its own CPU, and
/// returns their outputs in loop order once every one has finished.
///
/// `threads == 0` means one loop per CPU this process may run on. `main` is called once per
/// loop, on that loop's thread, with the loop's [`LoopContext`]; the future it returns runs
/// with [`EventLoop::run_until_complete`]. This is [`PerCore::new(threads).run(main)`](PerCore::run);
/// use [`PerCore::spawn`] to keep control of the loops (to stop them, say).
///
/// # Errors
/// If a thread or a loop cannot be created. What `main` returns (a `Result` too, often) is
/// passed through untouched in the vector.
///
/// # Panics
/// If one loop's `main` panics, the others are asked to stop (see [`LoopContext::stopped`])
/// and the panic resumes here once all have finished.
///
/// # Example
/// An echo server on two loops, each with its own listening socket on port 8888:
/// ```no_run
/// use tulip::{Protocol, net::ServerOptions, Transport};
///
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.0 { t.write(data); }
///     }
/// }
///
/// tulip::run_per_core(2, |ctx| async move {
///     let opts = ServerOptions::new().reuse_port(true).backlog(1024);
///     let server = tulip::create_server(|| Echo(None), "127.0.0.1", 8888, opts).await?;
///     println!("loop {} on CPU {:?} is serving", ctx.index(), ctx.cpu());
///     server.serve_forever().await
/// })?;
/// # std::io::Result::Ok(())
/// ```
pub fn run_per_core<F, Fut>(threads: usize, main: F) -> io::Result<Vec<Fut::Output>>
where
    F: Fn(LoopContext) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    PerCore::new(threads).run(main)
}

/// A builder for a group of loops, one per thread: [`run_per_core`] with settings.
///
/// ```
/// let group = tulip::PerCore::new(2).pin(false).spawn(|ctx| async move {
///     ctx.stopped().await;
///     ctx.index()
/// })?;
/// assert_eq!(group.len(), 2);
/// group.stop();
/// assert_eq!(group.join()?, vec![0, 1]);
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct PerCore {
    threads: usize,
    pin: bool,
    name: String,
}

impl PerCore {
    /// `threads` loops (0: one per CPU this process may run on), pinned, threads named
    /// `tulip-loop-N`.
    pub fn new(threads: usize) -> PerCore {
        PerCore {
            threads,
            pin: true,
            name: "tulip-loop".into(),
        }
    }

    /// Whether loop `i` is pinned to the `i`-th CPU this process may run on (modulo their
    /// number). On by default; a failure to pin is logged and the loop runs unpinned
    /// ([`LoopContext::cpu`] is then `None`).
    pub fn pin(mut self, on: bool) -> PerCore {
        self.pin = on;
        self
    }

    /// The threads' name prefix (the loop index is appended).
    pub fn name(mut self, prefix: impl Into<String>) -> PerCore {
        self.name = prefix.into();
        self
    }

    /// Starts the loops and returns once every one is created (not once `main` runs).
    ///
    /// # Errors
    /// If a thread or a loop cannot be created; the loops already started are stopped and
    /// joined first.
    pub fn spawn<F, Fut>(self, main: F) -> io::Result<LoopGroup<Fut::Output>>
    where
        F: Fn(LoopContext) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let cpus = allowed_cpus();
        let threads = match self.threads {
            0 => cpus.len().max(1),
            n => n,
        };
        let main = Arc::new(main);
        let stops: Arc<Vec<Arc<StopSignal>>> =
            Arc::new((0..threads).map(|_| Arc::default()).collect());
        let mut group = LoopGroup {
            handles: Vec::with_capacity(threads),
            threads: Vec::with_capacity(threads),
            stops: stops.clone(),
        };
        for index in 0..threads {
            let cpu = (self.pin && !cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let (tx, rx) = mpsc::channel::<io::Result<LoopHandle>>();
            let main = main.clone();
            let stops = stops.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", self.name))
                .spawn(move || loop_thread(index, threads, cpu, stops, &*main, tx));
            let created = match spawned {
                Ok(thread) => {
                    group.threads.push(thread);
                    rx.recv()
                        .unwrap_or_else(|_| Err(io::Error::other("a loop thread died")))
                }
                Err(e) => Err(e),
            };
            match created {
                Ok(handle) => group.handles.push(handle),
                Err(e) => {
                    group.stop();
                    // The failed thread returns at once; the others see their stop signal
                    // (their `main` may ignore it: join in the background then).
                    drop(group);
                    return Err(e);
                }
            }
        }
        Ok(group)
    }

    /// [`spawn`](PerCore::spawn), then [`join`](LoopGroup::join).
    ///
    /// # Errors
    /// As `spawn`.
    pub fn run<F, Fut>(self, main: F) -> io::Result<Vec<Fut::Output>>
    where
        F: Fn(LoopContext) -> Fut + Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        self.spawn(main)?.join()
    }
}

/// The body of one loop's thread.
fn loop_thread<T, F, Fut>(
    index: usize,
    threads: usize,
    cpu: Option<usize>,
    stops: Arc<Vec<Arc<StopSignal>>>,
    main: &F,
    created: mpsc::Sender<io::Result<LoopHandle>>,
) -> Option<T>
where
    F: Fn(LoopContext) -> Fut,
    Fut: Future<Output = T>,
{
    let cpu = cpu.and_then(|cpu| match pin_to(cpu) {
        Ok(()) => Some(cpu),
        Err(e) => {
            log::warn!("tulip: loop {index} could not be pinned to CPU {cpu}: {e}");
            None
        }
    });
    let lp = match EventLoop::new() {
        Ok(lp) => lp,
        Err(e) => {
            let _ = created.send(Err(e));
            return None;
        }
    };
    let _ = created.send(Ok(lp.handle()));
    let ctx = LoopContext {
        index,
        threads,
        cpu,
        stop: stops[index].clone(),
    };
    let out = catch_unwind(AssertUnwindSafe(|| lp.run_until_complete(main(ctx))));
    lp.close();
    match out {
        Ok(v) => Some(v),
        Err(panic) => {
            // Let the other loops finish, then the panic reaches `join`.
            for s in stops.iter() {
                s.set();
            }
            resume_unwind(panic)
        }
    }
}

/// What one loop of a [`PerCore`] group knows about itself.
pub struct LoopContext {
    index: usize,
    threads: usize,
    cpu: Option<usize>,
    stop: Arc<StopSignal>,
}

impl LoopContext {
    /// This loop's index, `0..threads`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many loops the group has.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The CPU this loop's thread is pinned to, if it is.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// Completes once the group is asked to stop ([`LoopGroup::stop`]) or another loop of the
    /// group panicked. A loop's `main` that should end on request awaits it, e.g. with
    /// `select`-like code or as its last step after spawning its servers.
    pub fn stopped(&self) -> Stopped {
        Stopped {
            signal: self.stop.clone(),
        }
    }
}

impl fmt::Debug for LoopContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopContext")
            .field("index", &self.index)
            .field("threads", &self.threads)
            .field("cpu", &self.cpu)
            .field("stopping", &self.stop.is_set())
            .finish()
    }
}

/// The future of [`LoopContext::stopped`].
///
/// # Cancel safety
/// Cancel-safe: the stop request is a flag that stays set; a later `stopped()` sees it.
#[must_use = "futures do nothing unless awaited"]
pub struct Stopped {
    signal: Arc<StopSignal>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_set() {
            return Poll::Ready(());
        }
        *lock(&self.signal.waker) = Some(cx.waker().clone());
        // `set` stores the flag before it takes the waker: checking again after storing ours
        // cannot miss it.
        if self.signal.is_set() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl fmt::Debug for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stopped")
            .field("set", &self.signal.is_set())
            .finish()
    }
}

/// A group of running loops, from [`PerCore::spawn`]. Dropped without [`join`](LoopGroup::join),
/// it leaves its loops running on detached threads, as dropping a `JoinHandle` does.
pub struct LoopGroup<T> {
    handles: Vec<LoopHandle>,
    threads: Vec<JoinHandle<Option<T>>>,
    stops: Arc<Vec<Arc<StopSignal>>>,
}

impl<T> LoopGroup<T> {
    /// How many loops the group has.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the group has no loop (never: a group has at least one).
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Each loop's handle, in loop order: to send it callbacks with
    /// [`LoopHandle::call_soon_threadsafe`].
    pub fn handles(&self) -> &[LoopHandle] {
        &self.handles
    }

    /// Asks every loop to stop: completes each loop's [`LoopContext::stopped`]. What a loop
    /// does then is up to its `main`.
    pub fn stop(&self) {
        for s in self.stops.iter() {
            s.set();
        }
    }

    /// Waits for every loop's `main` to finish and returns the outputs in loop order.
    ///
    /// # Errors
    /// If a loop could not be created.
    ///
    /// # Panics
    /// If a loop's `main` panicked: the first such panic resumes here, after every loop
    /// finished.
    pub fn join(self) -> io::Result<Vec<T>> {
        let mut out = Vec::with_capacity(self.threads.len());
        let mut panic: Option<Box<dyn Any + Send>> = None;
        let mut missing = false;
        for thread in self.threads {
            match thread.join() {
                Ok(Some(v)) => out.push(v),
                Ok(None) => missing = true,
                Err(p) => {
                    panic.get_or_insert(p);
                }
            }
        }
        if let Some(p) = panic {
            resume_unwind(p);
        }
        if missing {
            return Err(io::Error::other("a loop of the group could not be created"));
        }
        Ok(out)
    }
}

impl<T> fmt::Debug for LoopGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGroup")
            .field("loops", &self.handles.len())
            .finish()
    }
}

/// A one-shot, thread-safe stop flag with the waker of the task awaiting it.
#[derive(Default)]
struct StopSignal {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl StopSignal {
    fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.set.store(true, Ordering::Release);
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }
}

/// Locks `m`, ignoring poisoning (the data is a waker: always in a usable state).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
