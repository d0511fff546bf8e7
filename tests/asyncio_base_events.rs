//! CPython's `Lib/test/test_asyncio/test_base_events.py`, translated where tulip has the
//! feature: closing, resolution failures; and tulip's own cases for `Duration::MAX` (Rust's
//! "no deadline", which asyncio spells `math.inf`). Each test names the CPython test it
//! comes from, or says it is tulip's own.

mod support;

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use tulip::{EventLoop, ResolveError};

struct Nothing;
impl tulip::Protocol for Nothing {}

/// `BaseEventLoopTests.test_close`: close may be called more than once; a closed loop
/// refuses to run (asyncio raises `RuntimeError`, tulip panics, as documented).
#[test]
fn test_close() {
    let lp = EventLoop::new().unwrap();
    assert!(!lp.is_closed());
    lp.close();
    assert!(lp.is_closed());
    lp.close();
    lp.close();
    assert!(catch_unwind(AssertUnwindSafe(|| lp.run_forever())).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| lp.run_until_complete(async {}))).is_err());
}

fn assert_resolve_error(e: &io::Error, host: &str) {
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains(host),
        "the message names the host: {e}"
    );
    let re = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<ResolveError>())
        .expect("a ResolveError inside");
    assert_eq!(re.host(), host);
}

/// `test_create_connection_no_getaddrinfo` (asyncio mocks `getaddrinfo` to return nothing
/// and expects `OSError`): a name that does not resolve is a matchable `NotFound` with a
/// [`ResolveError`] naming the host, not `Uncategorized`.
#[test]
fn test_create_connection_no_getaddrinfo() {
    let _w = support::watchdog("test_create_connection_no_getaddrinfo", 60);
    tulip::run(async {
        // `.invalid` never resolves (RFC 2606).
        let host = "tulip-test.invalid";
        let e = tulip::create_connection(|| Nothing, host, 80, Default::default())
            .await
            .unwrap_err();
        assert_resolve_error(&e, host);
        let e = tulip::create_server(|| Nothing, host, 0, Default::default())
            .await
            .unwrap_err();
        assert_resolve_error(&e, host);
    });
}

/// tulip: `call_later(Duration::MAX, …)` does not panic; the timer never fires and can be
/// cancelled.
#[test]
fn call_later_with_duration_max_does_not_panic() {
    let lp = EventLoop::new().unwrap();
    let h = lp.call_later(Duration::MAX, || panic!("never"));
    lp.run_until_complete(tulip::sleep(Duration::from_millis(5)));
    h.cancel();
    lp.close();
}

/// tulip: `sleep(Duration::MAX)` sleeps for ever (here: until its timeout), and
/// `timeout(Duration::MAX, fut)` is `fut`.
#[test]
fn sleep_and_timeout_with_duration_max_do_not_panic() {
    let _w = support::watchdog("sleep_and_timeout_with_duration_max_do_not_panic", 10);
    tulip::run(async {
        let r = tulip::timeout(Duration::from_millis(10), tulip::sleep(Duration::MAX)).await;
        assert!(r.is_err(), "still sleeping");
        let r = tulip::timeout(Duration::MAX, async { 7 }).await;
        assert_eq!(r, Ok(7));
        let r = tulip::timeout(Duration::MAX, tulip::sleep(Duration::from_millis(1))).await;
        assert!(r.is_ok());
    });
}

/// tulip: `Server::shutdown(Duration::MAX)` (no deadline) does not panic.
#[test]
fn server_shutdown_with_duration_max_does_not_panic() {
    let _w = support::watchdog("server_shutdown_with_duration_max_does_not_panic", 10);
    tulip::run(async {
        let srv = tulip::create_server(|| Nothing, "127.0.0.1", 0, Default::default())
            .await
            .unwrap();
        srv.shutdown(Duration::MAX).await;
        assert!(!srv.is_serving());
    });
}
