//! Errors never vanish: with no `log` logger installed (the default), the loop's warnings
//! and errors reach stderr on one line each (Python's `logging.lastResort`), and
//! `tulip::set_last_resort(false)` silences them.
//!
//! Each case runs in a child process — this test binary itself, with no logger, running
//! only the `child` test with `LAST_RESORT_CASE` set — and the parent reads its stderr.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use tulip::{Transport, net::ServerOptions};

const CASE: &str = "LAST_RESORT_CASE";

/// Runs `case` in a child process; returns its stderr.
fn run_child(case: &str) -> String {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .env_remove("TULIP_DEBUG")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {case} failed: {stderr}");
    stderr
}

/// The `tulip:` lines of `stderr`.
fn tulip_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("tulip: "))
        .collect()
}

fn assert_one_line(stderr: &str, needle: &str) -> String {
    let lines: Vec<&str> = tulip_lines(stderr)
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one `tulip:` line with {needle:?} in:\n{stderr}"
    );
    lines[0].to_owned()
}

#[test]
fn a_failing_start_server_handler_is_on_stderr() {
    let e = run_child("handler");
    let l = assert_one_line(&e, "client_connected_cb failed");
    assert!(l.starts_with("tulip: error: "), "{l}");
    assert!(l.contains("boom in the handler"), "{l}");
}

#[test]
fn a_detached_tasks_panic_is_on_stderr() {
    let e = run_child("task");
    let l = assert_one_line(&e, "Task exception was never retrieved");
    assert!(l.contains("boom in the task"), "{l}");
}

#[test]
fn writes_after_close_are_on_stderr() {
    let e = run_child("writes");
    let l = assert_one_line(&e, "writes after the connection was lost are dropped");
    assert!(l.starts_with("tulip: warning: "), "{l}");
}

#[cfg(feature = "tls")]
#[test]
fn a_failed_server_side_tls_handshake_is_on_stderr() {
    let e = run_child("tls");
    let l = assert_one_line(&e, "TLS connection with 127.0.0.1:");
    assert!(l.starts_with("tulip: warning: "), "{l}");
}

#[test]
fn set_last_resort_false_silences_it() {
    let e = run_child("silenced");
    assert!(
        tulip_lines(&e).is_empty(),
        "nothing from tulip on stderr:\n{e}"
    );
}

#[test]
fn debug_mode_names_a_transport_left_open_at_loop_close() {
    let e = run_child("unclosed");
    let lines: Vec<&str> = tulip_lines(&e)
        .into_iter()
        .filter(|l| l.contains("unclosed socket transport"))
        .collect();
    // The client's and the server's end of the connection.
    assert_eq!(lines.len(), 2, "{e}");
    for l in lines {
        assert!(l.starts_with("tulip: warning: "), "{l}");
        assert!(l.contains("closed with its event loop"), "{l}");
        // Both addresses, as asyncio's ResourceWarning shows the transport.
        assert_eq!(l.matches("127.0.0.1:").count(), 2, "{l}");
    }
    let s = assert_one_line(&e, "unclosed server listening on 127.0.0.1:");
    assert!(s.contains("closed with its event loop"), "{s}");
}

#[test]
fn debug_mode_warns_of_an_unclosed_loop_dropped() {
    let e = run_child("unclosed_loop");
    let l = assert_one_line(&e, "unclosed event loop");
    assert!(l.starts_with("tulip: warning: "), "{l}");
}

/// The child side: does nothing unless run by one of the tests above.
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    assert_eq!(
        log::max_level(),
        log::LevelFilter::Off,
        "no logger installed"
    );
    let _w = support::watchdog("child", 30);
    match case.as_str() {
        "handler" => tulip::run(failing_handler()),
        "task" => tulip::run(panicking_task()),
        "silenced" => {
            tulip::set_last_resort(false);
            tulip::run(panicking_task());
        }
        "writes" => tulip::run(writes_after_close()),
        #[cfg(feature = "tls")]
        "tls" => tulip::run(failed_tls_handshake()),
        "unclosed" => {
            let lp = tulip::EventLoop::new().expect("loop");
            lp.set_debug(true);
            lp.run_until_complete(leave_open());
            lp.close();
        }
        "unclosed_loop" => {
            let lp = tulip::EventLoop::new().expect("loop");
            lp.set_debug(true);
            let clone = lp.clone();
            lp.spawn(async move {
                let _lp = clone;
                std::future::pending::<()>().await
            })
            .detach();
            drop(lp);
        }
        other => panic!("unknown case {other}"),
    }
}

async fn failing_handler() {
    let server = tulip::start_server(
        |_r, _w| async { Err::<(), _>(io::Error::other("boom in the handler")) },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .expect("server");
    let addr = server.local_addr().expect("addr");
    // A loopback connect completes in the kernel's backlog: no loop needed.
    let _c = TcpStream::connect(addr).expect("connect");
    tulip::sleep(Duration::from_millis(100)).await;
}

async fn panicking_task() {
    tulip::spawn(async { panic!("boom in the task") }).detach();
    tulip::sleep(Duration::from_millis(20)).await;
}

struct Quiet;
impl tulip::Protocol for Quiet {}

async fn writes_after_close() {
    let (a, _b) = support::tcp_pair();
    let (t, _p) = tulip::connect_accepted_socket(|| Quiet, a, Default::default())
        .await
        .expect("transport");
    let t: Transport = t;
    t.abort();
    tulip::yield_now().await;
    for _ in 0..10 {
        t.write(b"into the void");
    }
}

#[cfg(feature = "tls")]
async fn failed_tls_handshake() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = ck.cert.der().clone();
    let key = tulip::tls::rustls::pki_types::PrivateKeyDer::Pkcs8(
        tulip::tls::rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
    );
    let cfg = tulip::tls::server_config(vec![cert], key).expect("config");
    let server = tulip::create_server(
        || Quiet,
        "127.0.0.1",
        0,
        ServerOptions::new().tls(tulip::tls::TlsOptions::server(cfg)),
    )
    .await
    .expect("server");
    let addr = server.local_addr().expect("addr");
    // Not TLS at all: the server's handshake fails.
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok();
    });
    tulip::sleep(Duration::from_millis(300)).await;
}

async fn leave_open() {
    let server = tulip::create_server(|| Quiet, "127.0.0.1", 0, ServerOptions::new())
        .await
        .expect("server");
    let port = server.local_addr().expect("addr").port();
    let (t, _p) = tulip::create_connection(|| Quiet, "127.0.0.1", port, Default::default())
        .await
        .expect("connect");
    tulip::sleep(Duration::from_millis(20)).await;
    // Neither the connection (kept alive by its reader callback) nor the server is closed:
    // the loop's close must do it. (A leaked handle keeps the server from closing on drop;
    // this process ends right after.)
    drop(t);
    std::mem::forget(server);
}
