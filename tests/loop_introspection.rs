//! Introspection in release builds (issue 15 §2): slow callbacks and task steps reported with
//! what they were, `EventLoop::dump()`, "Future exception was never retrieved", the context
//! the exception handler receives, and `get_exception_handler`.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tulip::task::Builder;
use tulip::{EventLoop, ExceptionContext, Protocol};

// ---- a logger that keeps what each test thread logged -----------------------------------

struct Capture(Mutex<Vec<(ThreadId, log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        if let Ok(mut v) = self.0.lock() {
            v.push((std::thread::current().id(), record.level(), line));
        }
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(c).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Warn);
        c
    })
}

/// What this thread logged since the last call, at `level`.
fn take_logs(level: log::Level) -> Vec<String> {
    let me = std::thread::current().id();
    let mut v = capture().0.lock().unwrap();
    let (mine, rest): (Vec<_>, Vec<_>) = v.drain(..).partition(|(t, _, _)| *t == me);
    *v = rest;
    mine.into_iter()
        .filter(|(_, l, _)| *l == level)
        .map(|(_, _, m)| m)
        .collect()
}

/// An exception handler that keeps every context's text (and task name, transport, protocol).
type Seen = Rc<RefCell<Vec<Ctx>>>;

#[derive(Debug, Clone)]
struct Ctx {
    text: String,
    message: String,
    task: Option<String>,
    transport: Option<String>,
    protocol: Option<String>,
    callback: Option<String>,
}

fn collect(lp: &EventLoop) -> Seen {
    let seen: Seen = Rc::default();
    let s = seen.clone();
    lp.set_exception_handler(move |_, ctx: &ExceptionContext| {
        s.borrow_mut().push(Ctx {
            text: ctx.to_string(),
            message: ctx.message().to_owned(),
            task: ctx.task().map(|t| t.name().to_owned()),
            transport: ctx.transport().map(str::to_owned),
            protocol: ctx.protocol().map(str::to_owned),
            callback: ctx.callback().map(str::to_owned),
        })
    });
    seen
}

// ---- slow callbacks ------------------------------------------------------------------------

fn stop_loop_cb(lp: &EventLoop) {
    lp.stop();
}

// CPython: test_base_events.py BaseEventLoopWithSelectorTests.test_log_slow_callbacks
#[test]
fn log_slow_callbacks() {
    let _w = support::watchdog("log_slow_callbacks", 20);
    capture();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    lp.set_slow_callback_duration(Duration::ZERO);
    take_logs(log::Level::Warn);

    // A slow callback: named by its closure, which names the function it was written in.
    let l = lp.clone();
    lp.call_soon(move || stop_loop_cb(&l));
    lp.run_forever();
    let logs = take_logs(log::Level::Warn);
    let msg = logs.last().expect("a slow-callback warning");
    assert!(msg.starts_with("Executing callback "), "{msg}");
    assert!(msg.contains("log_slow_callbacks::{{closure}}"), "{msg}");
    assert!(msg.ends_with(" seconds"), "{msg}");

    // A slow task: named by the task's name and spawn location.
    let l = lp.clone();
    let b = Builder::new().name("stop_loop_coro");
    let line = line!() + 1;
    let t = b.spawn_on(&lp, async move { l.stop() });
    lp.run_forever();
    let logs = take_logs(log::Level::Warn);
    let msg = logs
        .iter()
        .find(|m| m.contains("step of task"))
        .unwrap_or_else(|| panic!("no slow-step warning in {logs:?}"));
    let at = format!("step of task stop_loop_coro spawned at {}:{line}:", file!());
    assert!(msg.starts_with(&format!("Executing {at}")), "{msg}");
    assert!(t.is_finished());
    lp.close();
}

#[test]
fn slow_timer_callback_and_slow_task_step_are_reported_once_each() {
    let _w = support::watchdog(
        "slow_timer_callback_and_slow_task_step_are_reported_once_each",
        20,
    );
    capture();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    lp.set_slow_callback_duration(Duration::from_millis(30));
    take_logs(log::Level::Warn);
    lp.call_later(Duration::from_millis(1), || {
        std::thread::sleep(Duration::from_millis(40))
    });
    lp.call_soon(|| {}); // fast: not reported
    lp.run_until_complete(tulip::sleep(Duration::from_millis(5)));
    let logs = take_logs(log::Level::Warn);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].contains("slow_timer_callback_and_slow_task_step"),
        "{logs:?}"
    );

    let t = lp.spawn(async {
        std::thread::sleep(Duration::from_millis(40));
    });
    let name = t.get_name();
    lp.run_until_complete(t);
    let logs = take_logs(log::Level::Warn);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].contains(&format!("step of task {name} spawned at {}", file!())),
        "{logs:?}"
    );
    lp.close();
}

#[test]
fn slow_callback_reports_work_without_debug_mode_and_are_off_by_default() {
    let _w = support::watchdog(
        "slow_callback_reports_work_without_debug_mode_and_are_off_by_default",
        20,
    );
    capture();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(false);
    lp.set_slow_callback_duration(Duration::from_millis(10));
    take_logs(log::Level::Warn);
    lp.call_soon(|| std::thread::sleep(Duration::from_millis(15)));
    lp.run_until_complete(tulip::yield_now());
    assert!(take_logs(log::Level::Warn).is_empty(), "off by default");

    assert!(!lp.slow_callback_reports());
    lp.set_slow_callback_reports(true);
    assert!(lp.slow_callback_reports());
    assert!(!lp.get_debug());
    lp.call_soon(|| std::thread::sleep(Duration::from_millis(15)));
    lp.run_until_complete(tulip::yield_now());
    let logs = take_logs(log::Level::Warn);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].contains("slow_callback_reports_work_without_debug_mode"),
        "{logs:?}"
    );
    lp.close();
}

#[test]
fn a_slow_reader_is_reported_with_its_fd() {
    let _w = support::watchdog("a_slow_reader_is_reported_with_its_fd", 20);
    capture();
    let lp = EventLoop::new().unwrap();
    lp.set_slow_callback_reports(true);
    lp.set_slow_callback_duration(Duration::from_millis(10));
    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
    let reader = Rc::new(b);
    let r = reader.clone();
    let l = lp.clone();
    lp.add_reader(fd, move || {
        let mut buf = [0u8; 16];
        let _ = (&*r).read(&mut buf);
        std::thread::sleep(Duration::from_millis(15));
        l.stop();
    })
    .unwrap();
    take_logs(log::Level::Warn);
    a.write_all(b"x").unwrap();
    lp.run_forever();
    let logs = take_logs(log::Level::Warn);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].starts_with(&format!("Executing reader of fd {fd}: ")),
        "{logs:?}"
    );
    assert!(
        logs[0].contains("a_slow_reader_is_reported_with_its_fd"),
        "{logs:?}"
    );
    lp.remove_reader(fd).unwrap();
    lp.close();
}

struct Sleepy(Rc<RefCell<bool>>);

impl Protocol for Sleepy {
    fn data_received(&mut self, _data: &[u8]) {
        std::thread::sleep(Duration::from_millis(15));
        *self.0.borrow_mut() = true;
    }
}

#[test]
fn a_slow_protocol_method_is_reported_with_its_transport_and_protocol() {
    let _w = support::watchdog(
        "a_slow_protocol_method_is_reported_with_its_transport_and_protocol",
        20,
    );
    capture();
    let lp = EventLoop::new().unwrap();
    lp.set_slow_callback_reports(true);
    lp.set_slow_callback_duration(Duration::from_millis(10));
    let got = Rc::new(RefCell::new(false));
    let g = got.clone();
    take_logs(log::Level::Warn);
    lp.run_until_complete(async move {
        let server = tulip::create_server(
            move || Sleepy(g.clone()),
            "127.0.0.1",
            0,
            Default::default(),
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (t, _) = tulip::create_connection(|| Quiet, "127.0.0.1", port, Default::default())
            .await
            .unwrap();
        t.write(b"zzz");
        let until = Instant::now() + Duration::from_secs(5);
        while !*got.borrow() {
            assert!(Instant::now() < until, "not received");
            tulip::sleep(Duration::from_millis(1)).await;
        }
        t.close();
        server.close();
    });
    let logs = take_logs(log::Level::Warn);
    let slow: Vec<&String> = logs.iter().filter(|m| m.contains("Sleepy")).collect();
    assert_eq!(slow.len(), 1, "{logs:?}");
    assert!(slow[0].starts_with("Executing reader of fd "), "{slow:?}");
    assert!(slow[0].contains("socket transport"), "{slow:?}");
    assert!(
        slow[0].contains("protocol tulip::transports::proto::Plain<loop_introspection::Sleepy>"),
        "{slow:?}"
    );
    lp.close();
}

// ---- the exception handler -----------------------------------------------------------------

fn zero_error(lp: &EventLoop) {
    lp.stop();
    panic!("division by zero");
}

// CPython: test_base_events.py BaseEventLoopTests.test_set_exc_handler_custom
#[test]
fn set_exc_handler_custom() {
    let _w = support::watchdog("set_exc_handler_custom", 20);
    capture();
    let lp = EventLoop::new().unwrap();
    let run_loop = |lp: &EventLoop| {
        let l = lp.clone();
        lp.call_soon(move || zero_error(&l));
        lp.run_forever();
    };
    lp.set_debug(true);
    assert!(lp.get_exception_handler().is_none());
    let seen = collect(&lp);
    let h = lp.get_exception_handler().expect("the handler just set");
    run_loop(&lp);
    assert_eq!(seen.borrow().len(), 1);
    let ctx = seen.borrow()[0].clone();
    assert_eq!(ctx.message, "Exception in callback");
    assert!(
        ctx.callback
            .as_deref()
            .unwrap_or("")
            .contains("set_exc_handler_custom"),
        "{ctx:?}"
    );
    assert!(ctx.text.contains("panicked: division by zero"), "{ctx:?}");

    // What get_exception_handler returned is the handler: calling it records too.
    h(&lp, &ExceptionContext::new("by hand"));
    assert_eq!(seen.borrow().len(), 2);

    lp.reset_exception_handler();
    assert!(lp.get_exception_handler().is_none());
    take_logs(log::Level::Error);
    run_loop(&lp);
    let logs = take_logs(log::Level::Error);
    assert!(
        logs.iter().any(|m| m.starts_with("Exception in callback")),
        "{logs:?}"
    );
    assert_eq!(seen.borrow().len(), 2);
    lp.close();
}

// CPython: test_base_events.py BaseEventLoopTests.test_set_exc_handler_broken
#[test]
fn set_exc_handler_broken() {
    let _w = support::watchdog("set_exc_handler_broken", 20);
    capture();
    let lp = EventLoop::new().unwrap();
    lp.set_exception_handler(|_, _| panic!("spam"));
    take_logs(log::Level::Error);
    let l = lp.clone();
    lp.call_soon(move || zero_error(&l));
    lp.run_forever();
    let logs = take_logs(log::Level::Error);
    assert!(
        logs.iter()
            .any(|m| m.starts_with("Unhandled error in exception handler")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|m| m.starts_with("Exception in callback")),
        "{logs:?}"
    );
    lp.close();
}

// CPython: test_base_events.py BaseEventLoopTests.test_default_exc_handler_callback (the
// callback is named in debug mode; outside it the message has no name, see the docs)
#[test]
fn default_exc_handler_callback() {
    let _w = support::watchdog("default_exc_handler_callback", 20);
    capture();
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    take_logs(log::Level::Error);
    // call_soon (asyncio's Handle)
    let l = lp.clone();
    lp.call_soon(move || zero_error(&l));
    lp.run_forever();
    // call_later (asyncio's TimerHandle)
    let l = lp.clone();
    lp.call_later(Duration::from_millis(10), move || zero_error(&l));
    lp.run_forever();
    let logs = take_logs(log::Level::Error);
    assert_eq!(logs.len(), 2, "{logs:?}");
    for m in &logs {
        assert!(m.starts_with("Exception in callback"), "{m}");
        assert!(
            m.contains("default_exc_handler_callback::{{closure}}"),
            "{m}"
        );
    }
    lp.close();
}

// CPython: test_base_events.py BaseEventLoopTests.test_default_exc_handler_coro
#[test]
fn default_exc_handler_coro() {
    let _w = support::watchdog("default_exc_handler_coro", 20);
    let lp = EventLoop::new().unwrap();
    let seen = collect(&lp);
    let line = line!() + 1;
    let t = lp.spawn(async {
        tulip::sleep(Duration::from_millis(10)).await;
        panic!("division by zero");
    });
    let name = t.get_name();
    t.detach();
    lp.run_until_complete(tulip::sleep(Duration::from_millis(30)));
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].message, "Task exception was never retrieved");
    assert_eq!(seen[0].task.as_deref(), Some(name.as_str()));
    let at = format!("task: {name} (finished) spawned at {}:{line}:", file!());
    assert!(seen[0].text.contains(&at), "{:?}", seen[0]);
    drop(seen);
    lp.close();
}

// ---- Future exception was never retrieved --------------------------------------------------

fn with_future(f: impl FnOnce(&EventLoop)) -> Vec<Ctx> {
    let lp = EventLoop::new().unwrap();
    let seen = collect(&lp);
    f(&lp);
    let out = seen.borrow().clone();
    lp.close();
    out
}

// CPython: test_futures.py BaseFutureTests.test_tb_logger_abandoned
#[test]
fn tb_logger_abandoned() {
    let seen = with_future(|lp| drop(lp.create_future::<u32>()));
    assert!(seen.is_empty(), "{seen:?}");
}

// CPython: test_futures.py BaseFutureTests.test_tb_logger_not_called_after_cancel
#[test]
fn tb_logger_not_called_after_cancel() {
    let seen = with_future(|lp| {
        let fut = lp.create_future::<u32>();
        fut.set_exception(std::io::Error::other("boom"));
        assert!(!fut.cancel());
    });
    assert!(seen.is_empty(), "{seen:?}");
}

// CPython: test_futures.py BaseFutureTests.test_tb_logger_result_unretrieved
#[test]
fn tb_logger_result_unretrieved() {
    let seen = with_future(|lp| lp.create_future::<u32>().set_result(42));
    assert!(seen.is_empty(), "{seen:?}");
}

// CPython: test_futures.py BaseFutureTests.test_tb_logger_result_retrieved
#[test]
fn tb_logger_result_retrieved() {
    let seen = with_future(|lp| {
        let fut = lp.create_future::<u32>();
        fut.set_result(42);
        assert_eq!(fut.result().unwrap().unwrap(), 42);
    });
    assert!(seen.is_empty(), "{seen:?}");
}

// CPython: test_futures.py BaseFutureTests.test_tb_logger_exception_unretrieved
#[test]
fn tb_logger_exception_unretrieved() {
    let seen = with_future(|lp| {
        let fut = lp.create_future::<u32>();
        let clone = fut.clone();
        fut.set_exception(std::io::Error::other("boom"));
        drop(fut);
        drop(clone); // the last handle: now it is reported
    });
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].message, "Future exception was never retrieved");
    assert_eq!(seen[0].text, "Future exception was never retrieved: boom");
}

// CPython: test_futures.py BaseFutureTests.test_tb_logger_exception_retrieved
#[test]
fn tb_logger_exception_retrieved() {
    let seen = with_future(|lp| {
        let fut = lp.create_future::<u32>();
        fut.set_exception(std::io::Error::other("boom"));
        assert_eq!(fut.exception().unwrap().to_string(), "boom");
    });
    assert!(seen.is_empty(), "{seen:?}");
}

// CPython: test_futures.py BaseFutureTests.test_tb_logger_exception_result_retrieved
#[test]
fn tb_logger_exception_result_retrieved() {
    let seen = with_future(|lp| {
        let fut = lp.create_future::<u32>();
        fut.set_exception(std::io::Error::other("boom"));
        assert!(fut.result().unwrap().is_err());
    });
    assert!(seen.is_empty(), "{seen:?}");
}

/// `result()` asked while the future is pending retrieves nothing: the error set later is
/// still reported (asyncio's `result()` raises `InvalidStateError` and leaves
/// `__log_traceback` alone).
#[test]
fn result_while_pending_does_not_count_as_retrieving() {
    let seen = with_future(|lp| {
        let fut = lp.create_future::<u32>();
        assert!(fut.result().is_none());
        assert!(fut.exception().is_none());
        fut.set_exception(std::io::Error::other("boom"));
    });
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].message, "Future exception was never retrieved");
}

/// A failed future whose last handle is a done callback still queued when the loop closes
/// is reported while the loop drops its queue: the handler may look at the loop then.
#[test]
fn an_unretrieved_error_dropped_at_close_reaches_a_reentrant_handler() {
    let _w = support::watchdog("unretrieved_error_at_close", 20);
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(move |lp, ctx| {
        let text = lp.dump();
        s.borrow_mut()
            .push(format!("{ctx} | {}", text.lines().next().unwrap_or("")));
    });
    let fut = lp.create_future::<u32>();
    fut.set_exception(std::io::Error::other("boom"));
    // Scheduled, never run: the queue holds the only handle.
    fut.add_done_callback(|_| {});
    drop(fut);
    lp.close();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("Future exception was never retrieved: boom"),
        "{seen:?}"
    );
}

#[test]
fn an_awaited_error_is_retrieved() {
    let _w = support::watchdog("an_awaited_error_is_retrieved", 20);
    let seen = with_future(|lp| {
        let fut = lp.create_future::<u32>();
        let f = fut.clone();
        lp.call_soon(move || f.set_exception(std::io::Error::other("boom")));
        assert!(lp.run_until_complete(fut).is_err());
    });
    assert!(seen.is_empty(), "{seen:?}");
}

// ---- a protocol's panic names the transport and the protocol --------------------------------

struct Exploding;

impl Protocol for Exploding {
    fn data_received(&mut self, _data: &[u8]) {
        panic!("exploding protocol");
    }
}

#[derive(Default)]
struct Quiet;
impl Protocol for Quiet {}

#[test]
fn a_protocol_panic_names_transport_and_protocol() {
    let _w = support::watchdog("a_protocol_panic_names_transport_and_protocol", 20);
    let lp = EventLoop::new().unwrap();
    let seen = collect(&lp);
    lp.run_until_complete(async {
        let server = tulip::create_server(|| Exploding, "127.0.0.1", 0, Default::default())
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let (t, _) = tulip::create_connection(|| Quiet, "127.0.0.1", port, Default::default())
            .await
            .unwrap();
        t.write(b"boom");
        let until = Instant::now() + Duration::from_secs(5);
        while seen.borrow().is_empty() {
            assert!(Instant::now() < until, "no report");
            tulip::sleep(Duration::from_millis(1)).await;
        }
        t.close();
        server.close();
    });
    let seen = seen.borrow().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .message
            .starts_with("Exception in a protocol callback"),
        "{seen:?}"
    );
    let transport = seen[0].transport.as_deref().unwrap_or("");
    assert!(transport.contains("127.0.0.1:"), "{seen:?}");
    let protocol = seen[0].protocol.as_deref().unwrap_or("");
    assert!(protocol.contains("Exploding"), "{seen:?}");
    lp.close();
}

// ---- EventLoop::dump -----------------------------------------------------------------------

#[test]
fn dump_lists_readers_timers_tasks_transports_and_servers() {
    let _w = support::watchdog("dump_lists_readers_timers_tasks_transports_and_servers", 20);
    // Virtual time, so that the clock stands still between `dump()` and `to_string()` (the
    // timers are listed as "in 2.999 s": on the wall clock two calls can differ).
    let lp = EventLoop::with_virtual_time().unwrap();
    let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
    lp.add_reader(fd, || {}).unwrap();
    let far = lp.call_later(Duration::from_secs(30), || {});
    let near = lp.call_later(Duration::from_secs(3), || {});
    let cancelled = lp.call_later(Duration::from_secs(1), || {});
    cancelled.cancel();

    let text = lp.run_until_complete(async {
        let server = tulip::create_server(|| Quiet, "127.0.0.1", 0, Default::default())
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let (t, _) = tulip::create_connection(|| Quiet, "127.0.0.1", port, Default::default())
            .await
            .unwrap();
        let waiter = Builder::new()
            .name("the-waiter")
            .spawn(tulip::sleep(Duration::from_secs(60)));
        tulip::yield_now().await;
        let lp = tulip::get_running_loop();
        let text = lp.dump();
        assert_eq!(text, lp.to_string(), "Display is dump()");
        drop(waiter.cancel());
        t.close();
        server.close();
        (text, port)
    });
    let (text, port) = text;
    assert!(text.starts_with("event loop "), "{text}");
    assert!(text.contains(": running,"), "{text}");
    // The reader, by fd, with the closure that serves it.
    assert!(text.contains(&format!("  fd {fd}: reader ")), "{text}");
    assert!(
        text.contains("dump_lists_readers_timers_tasks_transports_and_servers::{{closure}}"),
        "{text}"
    );
    // The timers: three live (the cancelled one is not counted) — two here, the waiter's sleep.
    assert!(text.contains("timers: 3 pending"), "{text}");
    assert!(
        text.contains("  in 2.") || text.contains("  in 3."),
        "{text}"
    );
    // The task, by name and spawn location.
    assert!(text.contains("the-waiter"), "{text}");
    assert!(text.contains(&format!("{}:", file!())), "{text}");
    // The server and both ends of the connection, with their addresses.
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("transports and servers: 3"), "{text}");
    // A transport's state, write limits and protocol type.
    assert!(
        text.contains("open, 0 bytes buffered, write limits 16384..65536, protocol "),
        "{text}"
    );
    assert!(text.contains("Quiet"), "{text}");
    far.cancel();
    near.cancel();
    lp.remove_reader(fd).unwrap();
    // The accepted end closes once it hears the client's close: let the loop run a little.
    let until = Instant::now() + Duration::from_secs(5);
    while !lp.dump().contains("readers and writers: 0 fds") {
        assert!(Instant::now() < until, "{}", lp.dump());
        lp.run_until_complete(tulip::sleep(Duration::from_millis(1)));
    }
    let idle = lp.dump();
    assert!(idle.contains(": not running,"), "{idle}");
    assert!(idle.contains("readers and writers: 0 fds"), "{idle}");
    assert!(idle.contains("tasks: 0"), "{idle}");
    lp.close();
    assert!(lp.dump().contains(": closed,"));
}

fn noop() {}

// CPython: test_events.py HandleTests.test_handle_repr (a handle names its callback)
#[test]
fn handle_repr_names_the_callback() {
    let lp = EventLoop::new().unwrap();
    let h = lp.call_soon(noop);
    let text = format!("{h:?}");
    assert!(text.contains("loop_introspection::noop"), "{text}");
    h.cancel();
    assert!(format!("{h:?}").contains("cancelled: true"), "{h:?}");
    lp.close();
}

// CPython: test_events.py TimerTests.test_timer_repr
#[test]
fn timer_repr_names_the_callback() {
    let lp = EventLoop::new().unwrap();
    let h = lp.call_later(Duration::from_secs(10), noop);
    let text = format!("{h:?}");
    assert!(text.contains("loop_introspection::noop"), "{text}");
    assert!(text.contains("when"), "{text}");
    h.cancel();
    lp.close();
}

#[test]
fn a_panic_of_the_main_future_in_debug_mode_unwinds_and_leaves_nothing_behind() {
    let _w = support::watchdog(
        "a_panic_of_the_main_future_in_debug_mode_unwinds_and_leaves_nothing_behind",
        20,
    );
    let lp = EventLoop::new().unwrap();
    lp.set_debug(true);
    let seen = collect(&lp);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run_until_complete(async { panic!("main failed") })
    }));
    assert!(r.is_err());
    assert!(seen.borrow().is_empty(), "resumed, not reported");
    // A later callback's panic, with debug mode off, is not blamed on the main future.
    lp.set_debug(false);
    lp.call_soon(|| panic!("later"));
    lp.run_until_complete(tulip::yield_now());
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].callback, None, "{seen:?}");
    drop(seen);
    lp.close();
}

#[test]
fn a_failing_start_server_handler_names_its_task() {
    let _w = support::watchdog("a_failing_start_server_handler_names_its_task", 20);
    let lp = EventLoop::new().unwrap();
    let seen = collect(&lp);
    lp.run_until_complete(async {
        let server = tulip::start_server(
            |_r: tulip::StreamReader, _w: tulip::StreamWriter| async {
                Err::<(), _>(std::io::Error::other("boom"))
            },
            "127.0.0.1",
            0,
            Default::default(),
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (_r, _w) = tulip::open_connection("127.0.0.1", port, Default::default())
            .await
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while seen.borrow().is_empty() {
            assert!(Instant::now() < until, "no report");
            tulip::sleep(Duration::from_millis(1)).await;
        }
        server.close();
    });
    let seen = seen.borrow().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .message
            .starts_with("client_connected_cb failed: boom"),
        "{seen:?}"
    );
    assert!(
        seen[0]
            .task
            .as_deref()
            .is_some_and(|n| n.starts_with("Task-")),
        "{seen:?}"
    );
    lp.close();
}

/// What a transport still has to send is in the dump (a memory connection whose peer stopped
/// reading, so the bytes stay in the write buffer).
#[test]
fn dump_shows_the_bytes_a_transport_has_buffered() {
    let _w = support::watchdog("dump_shows_the_bytes_a_transport_has_buffered", 20);
    let lp = EventLoop::new().unwrap();
    let text = lp.run_until_complete(async {
        let end = tulip::testing::MemorySocket::new();
        end.pause_peer_reading();
        let (t, _) = end.connect(Quiet);
        tulip::testing::settle().await;
        t.write(b"twelve bytes");
        tulip::testing::settle().await;
        assert_eq!(t.get_write_buffer_size(), 12);
        let text = tulip::get_running_loop().dump();
        t.abort();
        text
    });
    assert!(
        text.contains("open, 12 bytes buffered, write limits"),
        "{text}"
    );
    lp.close();
}

/// `dump()` from every kind of callback the loop runs — a reader, a timer, a `call_soon`, a
/// slow-callback-timed step, a task's step and a task's `Drop` while the loop closes —
/// finds no borrow of the loop's held.
#[test]
fn dump_from_inside_every_kind_of_callback() {
    let _w = support::watchdog("dump_from_inside_every_kind_of_callback", 20);
    let lp = EventLoop::new().unwrap();
    lp.set_slow_callback_reports(true);
    let texts = Rc::new(RefCell::new(Vec::<String>::new()));
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    b.write_all(b"x").unwrap();
    {
        let (l, t) = (lp.clone(), texts.clone());
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        lp.add_reader(fd, move || {
            t.borrow_mut().push(l.dump());
            l.remove_reader(fd).unwrap();
        })
        .unwrap();
    }
    {
        let (l, t) = (lp.clone(), texts.clone());
        lp.call_later(Duration::from_millis(1), move || {
            t.borrow_mut().push(l.dump())
        });
    }
    {
        let (l, t) = (lp.clone(), texts.clone());
        lp.call_soon(move || t.borrow_mut().push(l.dump()));
    }
    struct DumpOnDrop(EventLoop, Rc<RefCell<Vec<String>>>);
    impl Drop for DumpOnDrop {
        fn drop(&mut self) {
            self.1.borrow_mut().push(self.0.dump());
        }
    }
    let guard = DumpOnDrop(lp.clone(), texts.clone());
    lp.spawn(async move {
        let _g = guard;
        std::future::pending::<()>().await;
    })
    .detach();
    {
        let (l, t) = (lp.clone(), texts.clone());
        lp.run_until_complete(lp.spawn(async move {
            t.borrow_mut().push(l.dump());
            tulip::sleep(Duration::from_millis(5)).await;
        }));
    }
    assert_eq!(texts.borrow().len(), 4, "{:?}", texts.borrow());
    lp.close();
    let texts = texts.borrow();
    assert_eq!(texts.len(), 5, "the task's Drop at close dumped too");
    assert!(
        texts.iter().all(|t| t.starts_with("event loop")),
        "{texts:?}"
    );
    drop(b);
}
