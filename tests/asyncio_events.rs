//! CPython's `Lib/test/test_asyncio/test_events.py` (`EventLoopTestsMixin`), translated
//! where tulip has the feature: `call_soon_threadsafe` ordering and the refusal of a
//! transport's fd by `add_reader` & co. Each test names the CPython test it comes from.

mod support;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tulip::EventLoop;

type Log = Arc<Mutex<Vec<&'static str>>>;

/// A callback that records `what` and stops the loop once two were recorded.
fn recorder(lp: &EventLoop, log: &Log, what: &'static str) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    let h = lp.handle();
    move || {
        let mut l = log.lock().unwrap();
        l.push(what);
        if l.len() >= 2 {
            h.stop().unwrap();
        }
    }
}

/// `test_call_soon_threadsafe` (the lock variant): a callback sent from another thread
/// before a `call_soon` on the loop's thread runs first.
#[test]
fn test_call_soon_threadsafe() {
    let _w = support::watchdog("test_call_soon_threadsafe", 10);
    let lp = EventLoop::new().unwrap();
    let log: Log = Arc::default();
    let hello = recorder(&lp, &log, "hello");
    let h = lp.handle();
    std::thread::spawn(move || h.call_soon_threadsafe(hello).unwrap())
        .join()
        .unwrap();
    lp.call_soon(recorder(&lp, &log, "world"));
    lp.run_forever();
    assert_eq!(*log.lock().unwrap(), ["hello", "world"]);
    lp.close();
}

/// `test_call_soon_threadsafe` (the `call_later` variant): the thread's callback runs
/// first, the timer after its delay.
#[test]
fn test_call_soon_threadsafe_call_later() {
    let _w = support::watchdog("test_call_soon_threadsafe_call_later", 10);
    let lp = EventLoop::new().unwrap();
    let log: Log = Arc::default();
    let world = recorder(&lp, &log, "world");
    lp.call_later(Duration::from_millis(100), world);
    let hello = recorder(&lp, &log, "hello");
    let h = lp.handle();
    let t0 = Instant::now();
    let t = std::thread::spawn(move || h.call_soon_threadsafe(hello).unwrap());
    lp.run_forever();
    t.join().unwrap();
    assert_eq!(*log.lock().unwrap(), ["hello", "world"]);
    assert!(t0.elapsed() >= Duration::from_millis(90));
    lp.close();
}

/// `test_call_soon_threadsafe_same_thread`: on the loop's own thread it is `call_soon`, in
/// FIFO order with it.
#[test]
fn test_call_soon_threadsafe_same_thread() {
    let lp = EventLoop::new().unwrap();
    let log: Log = Arc::default();
    lp.handle()
        .call_soon_threadsafe(recorder(&lp, &log, "hello"))
        .unwrap();
    lp.call_soon(recorder(&lp, &log, "world"));
    lp.run_forever();
    assert_eq!(*log.lock().unwrap(), ["hello", "world"]);
    lp.close();
}

/// tulip: the same FIFO order while the loop runs, `call_soon` and `call_soon_threadsafe`
/// interleaved.
#[test]
fn call_soon_threadsafe_same_thread_keeps_fifo_order_while_running() {
    let lp = EventLoop::new().unwrap();
    let log: Arc<Mutex<Vec<u32>>> = Arc::default();
    let h = lp.handle();
    let l = log.clone();
    let lp2 = lp.clone();
    lp.run_until_complete(async move {
        for i in 0..10u32 {
            let l = l.clone();
            let f = move || l.lock().unwrap().push(i);
            if i % 2 == 0 {
                lp2.call_soon(f);
            } else {
                h.call_soon_threadsafe(f).unwrap();
            }
        }
        tulip::yield_now().await;
    });
    assert_eq!(*log.lock().unwrap(), (0..10).collect::<Vec<_>>());
    lp.close();
}

/// tulip: from another thread, callbacks run in the next iteration, in order of arrival.
#[test]
fn call_soon_threadsafe_from_another_thread_runs_in_arrival_order() {
    let _w = support::watchdog(
        "call_soon_threadsafe_from_another_thread_runs_in_arrival_order",
        10,
    );
    let lp = EventLoop::new().unwrap();
    let log: Arc<Mutex<Vec<u32>>> = Arc::default();
    let h = lp.handle();
    let l = log.clone();
    let t = std::thread::spawn(move || {
        for i in 0..100 {
            let l = l.clone();
            h.call_soon_threadsafe(move || l.lock().unwrap().push(i))
                .unwrap();
        }
        h.stop().unwrap();
    });
    lp.run_forever();
    t.join().unwrap();
    // `stop` may land before the last ones were drained: run what is left.
    lp.run_until_complete(tulip::yield_now());
    assert_eq!(*log.lock().unwrap(), (0..100).collect::<Vec<_>>());
    lp.close();
}

struct Nothing;
impl tulip::Protocol for Nothing {}

/// `test_add_reader_or_writer_transport_fd`: a transport's fd is refused by `add_reader`,
/// `add_writer`, `remove_reader` and `remove_writer`, with an error naming the transport
/// (asyncio raises `RuntimeError: File descriptor … is used by transport …`).
#[test]
fn test_add_reader_or_writer_transport_fd() {
    let _w = support::watchdog("test_add_reader_or_writer_transport_fd", 10);
    tulip::run(async {
        let lp = tulip::get_running_loop();
        let (a, _b) = support::tcp_pair();
        let fd = a.as_raw_fd();
        let (t, _p) = tulip::connect_accepted_socket(|| Nothing, a, Default::default())
            .await
            .unwrap();
        let check = |e: io::Error| {
            assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
            let m = e.to_string();
            assert!(
                m.contains(&format!("file descriptor {fd} is used by")),
                "{m}"
            );
            assert!(m.contains("socket transport"), "{m}");
            assert!(m.contains("127.0.0.1:"), "{m}");
        };
        check(lp.add_reader(fd, || ()).unwrap_err());
        check(lp.add_writer(fd, || ()).unwrap_err());
        check(lp.remove_reader(fd).unwrap_err());
        check(lp.remove_writer(fd).unwrap_err());
        // The transport still works: it was not taken over.
        assert!(t.is_reading());
        t.close();
        tulip::sleep(Duration::from_millis(5)).await;
    });
}

/// tulip: once the transport is closed, its fd number is free for `add_reader` again.
#[test]
fn a_closed_transports_fd_is_accepted_again() {
    tulip::run(async {
        let lp = tulip::get_running_loop();
        let (a, _b) = support::tcp_pair();
        let fd = a.as_raw_fd();
        let (t, _p) = tulip::connect_accepted_socket(|| Nothing, a, Default::default())
            .await
            .unwrap();
        assert!(lp.remove_reader(fd).is_err());
        t.close();
        tulip::sleep(Duration::from_millis(5)).await;
        assert!(
            !lp.remove_reader(fd).unwrap(),
            "not refused, nothing registered"
        );
    });
}

/// tulip: a server's listening socket is refused too, naming the server.
#[test]
fn a_servers_listening_fd_is_refused() {
    tulip::run(async {
        let lp = tulip::get_running_loop();
        let server = tulip::create_server(|| Nothing, "127.0.0.1", 0, Default::default())
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        // Which fd is the listener's? Ask about each open one (`remove_writer` of an fd with
        // nothing registered changes nothing).
        let refused: Vec<String> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|fd| lp.remove_writer(fd).err())
            .map(|e| {
                assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
                e.to_string()
            })
            .collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains(&format!("server listening on 127.0.0.1:{port}")),
            "{refused:?}"
        );
        server.close();
        // Closed: nothing is refused any more.
        assert!(
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .all(|fd| lp.remove_writer(fd).is_ok())
        );
    });
}
