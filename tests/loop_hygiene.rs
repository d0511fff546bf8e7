//! Nothing leaks when a loop ends: `tulip::run` returning, `close()`, and dropping an
//! unclosed loop release the transports, servers and tasks still registered on it, with
//! their file descriptors (counted in `/proc/self/fd`).
//!
//! Every test holds one lock (the fd-counting ones count while no other test of this binary
//! can open or close a descriptor).

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use tulip::{EventLoop, Server, Transport, net::ServerOptions};

static FD_LOCK: Mutex<()> = Mutex::new(());

fn fd_lock() -> std::sync::MutexGuard<'static, ()> {
    FD_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many file descriptors the process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// A protocol that keeps its transport (the cycle: transport → protocol → transport) and
/// whose `Drop` uses the transport, as user code may.
struct Keeper {
    t: Option<Transport>,
    dropped: Rc<Cell<u32>>,
    lost: Rc<Cell<u32>>,
}

impl tulip::Protocol for Keeper {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }
    fn connection_lost(&mut self, _: Option<io::Error>) {
        self.lost.set(self.lost.get() + 1);
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
        // No tulip cell may be borrowed while a protocol's `Drop` runs: these would panic.
        if let Some(t) = &self.t {
            t.write(b"bye");
            let _ = t.is_closing();
            let _ = t.get_write_buffer_size();
            let _ = t.peername();
            t.close();
        }
    }
}

#[derive(Default, Clone)]
struct Counts {
    dropped: Rc<Cell<u32>>,
    lost: Rc<Cell<u32>>,
}

impl Counts {
    fn keeper(&self) -> Keeper {
        Keeper {
            t: None,
            dropped: self.dropped.clone(),
            lost: self.lost.clone(),
        }
    }
}

/// Starts a server (whose factory holds a handle to the server itself: another cycle) and
/// a connection to it, and leaves both open. Returns once the server has accepted.
async fn leave_open(counts: &Counts) -> Server {
    let c = counts.clone();
    let me: Rc<RefCell<Option<Server>>> = Rc::default();
    let me2 = me.clone();
    let server = tulip::create_server(
        move || {
            let _keep = &me2;
            c.keeper()
        },
        "127.0.0.1",
        0,
        ServerOptions::new(),
    )
    .await
    .expect("server");
    *me.borrow_mut() = Some(server.clone());
    let port = server.local_addr().expect("addr").port();
    let c = counts.clone();
    let (_t, _p) =
        tulip::create_connection(move || c.keeper(), "127.0.0.1", port, Default::default())
            .await
            .expect("connect");
    for _ in 0..200 {
        if server.connection_count() == 1 {
            break;
        }
        tulip::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(server.connection_count(), 1);
    server
}

#[test]
fn run_leaving_a_server_and_a_connection_open_leaks_no_fd() {
    let _w = support::watchdog(
        "run_leaving_a_server_and_a_connection_open_leaks_no_fd",
        120,
    );
    let _l = fd_lock();
    let counts = Counts::default();
    // Warm-up: whatever is created once per process (the blocking pool, the watchdog).
    tulip::run(async {
        let _s = leave_open(&counts).await;
    });
    let before = open_fds();
    for _ in 0..1000 {
        tulip::run(async {
            // The server's factory holds a handle to it, so dropping this one leaves it
            // open: only the loop's close can let go of it.
            drop(leave_open(&counts).await);
        });
    }
    let after = open_fds();
    assert!(
        after <= before,
        "1,000 runs leaked {} file descriptors ({before} → {after})",
        after.saturating_sub(before)
    );
    // Both ends of every connection: the protocol was dropped, without connection_lost.
    assert_eq!(counts.dropped.get(), 2 * 1001);
    assert_eq!(counts.lost.get(), 0);
}

#[test]
fn dropping_an_unclosed_loop_while_a_task_holds_a_clone_leaks_no_fd() {
    let _w = support::watchdog(
        "dropping_an_unclosed_loop_while_a_task_holds_a_clone_leaks_no_fd",
        60,
    );
    let _l = fd_lock();
    let counts = Counts::default();
    let before = open_fds();
    for i in 0..100 {
        let lp = EventLoop::new().expect("loop");
        let clone = lp.clone();
        lp.spawn(async move {
            let _lp = clone;
            std::future::pending::<()>().await
        })
        .detach();
        if i % 2 == 0 {
            // Half of them with a server and a connection open too.
            drop(lp.run_until_complete(leave_open(&counts)));
        } else {
            lp.run_until_complete(tulip::yield_now());
        }
        drop(lp);
    }
    let after = open_fds();
    assert!(
        after <= before,
        "100 dropped loops leaked {} file descriptors ({before} → {after})",
        after.saturating_sub(before)
    );
    assert_eq!(counts.dropped.get(), 2 * 50);
}

#[test]
fn a_clone_outliving_the_owner_finds_the_loop_closed() {
    let _l = fd_lock();
    let lp = EventLoop::new().expect("loop");
    let clone = lp.clone();
    drop(clone.clone());
    assert!(!lp.is_closed(), "dropping a clone closes nothing");
    drop(lp);
    assert!(clone.is_closed());
    assert!(clone.handle().call_soon_threadsafe(|| ()).is_err());
}

#[test]
fn dropping_the_owner_while_the_loop_runs_closes_it_after_the_run() {
    let _l = fd_lock();
    let lp = EventLoop::new().expect("loop");
    let clone = lp.clone();
    let owner = RefCell::new(Some(lp));
    clone.run_until_complete(async {
        drop(owner.borrow_mut().take());
        tulip::yield_now().await;
    });
    assert!(clone.is_closed());
}

#[test]
fn a_server_dropped_without_close_closes_its_listening_socket() {
    let _l = fd_lock();
    let before = open_fds();
    tulip::run(async {
        let server = tulip::create_server(
            Counts::default().keeper_factory(),
            "127.0.0.1",
            0,
            ServerOptions::new(),
        )
        .await
        .expect("server");
        let addr = server.local_addr().expect("addr");
        drop(server);
        let e = TcpStream::connect(addr).expect_err("nobody listens");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    });
    assert!(open_fds() <= before);
}

#[test]
fn a_server_clone_keeps_it_open() {
    let _l = fd_lock();
    tulip::run(async {
        let server = tulip::create_server(
            Counts::default().keeper_factory(),
            "127.0.0.1",
            0,
            ServerOptions::new(),
        )
        .await
        .expect("server");
        let addr = server.local_addr().expect("addr");
        let other = server.clone();
        drop(server);
        assert!(other.is_serving());
        drop(TcpStream::connect(addr).expect("still listening"));
        other.close();
    });
}

#[test]
fn loop_close_closes_open_transports_and_drops_their_protocols() {
    let _l = fd_lock();
    let counts = Counts::default();
    let lp = EventLoop::new().expect("loop");
    let server = lp.run_until_complete(leave_open(&counts));
    let addr = server.local_addr().expect("addr");
    drop(server); // its factory still holds a handle: it stays open
    assert_eq!(counts.dropped.get(), 0);
    lp.close();
    assert_eq!(counts.dropped.get(), 2, "both protocols dropped by close");
    assert_eq!(
        counts.lost.get(),
        0,
        "no connection_lost at loop close (asyncio)"
    );
    let e = TcpStream::connect(addr).expect_err("the listener is closed");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
}

impl Counts {
    fn keeper_factory(self) -> impl FnMut() -> Keeper + 'static {
        move || self.keeper()
    }
}

/// TLS connections left open (a TLS transport over a socket transport, each with its
/// cycles) are released by the loop's close too.
#[cfg(feature = "tls")]
#[test]
fn runs_leaving_tls_connections_open_leak_no_fd() {
    use tulip::tls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tulip::{net::ConnectOptions, tls::TlsOptions};
    let _w = support::watchdog("runs_leaving_tls_connections_open_leak_no_fd", 120);
    let _l = fd_lock();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let scfg = tulip::tls::server_config(vec![cert.clone()], key).unwrap();
    let ccfg = tulip::tls::client_config_with_roots([cert]).unwrap();
    let counts = Counts::default();
    let one_run = || {
        tulip::run(async {
            let c = counts.clone();
            let me: Rc<RefCell<Option<Server>>> = Rc::default();
            let me2 = me.clone();
            let server = tulip::create_server(
                move || {
                    let _keep = &me2;
                    c.keeper()
                },
                "127.0.0.1",
                0,
                ServerOptions::new().tls(TlsOptions::server(scfg.clone())),
            )
            .await
            .expect("server");
            *me.borrow_mut() = Some(server.clone());
            let port = server.local_addr().expect("addr").port();
            let c = counts.clone();
            let (t, _p) = tulip::create_connection(
                move || c.keeper(),
                "127.0.0.1",
                port,
                ConnectOptions::new()
                    .tls(TlsOptions::client(ccfg.clone()).server_hostname("localhost")),
            )
            .await
            .expect("TLS connect");
            t.write(b"hello");
            tulip::sleep(Duration::from_millis(2)).await;
        });
    };
    one_run();
    let before = open_fds();
    for _ in 0..100 {
        one_run();
    }
    let after = open_fds();
    assert!(
        after <= before,
        "100 TLS runs leaked {} file descriptors ({before} → {after})",
        after.saturating_sub(before)
    );
}

/// A datagram endpoint left open is closed with its loop like any transport, and its fd is
/// the endpoint's: `add_reader` on it is refused (asyncio's `_ensure_fd_no_transport`).
#[test]
fn datagram_endpoints_left_open_are_closed_with_their_loop() {
    let _w = support::watchdog("datagram_endpoints_left_open", 60);
    let _g = fd_lock();
    struct Quiet;
    impl tulip::DatagramProtocol for Quiet {}
    let before = open_fds();
    for _ in 0..200 {
        tulip::run(async {
            let opts = tulip::net::DatagramOptions::new().local_addr("127.0.0.1", 0);
            let (t, _) = tulip::create_datagram_endpoint(|| Quiet, opts)
                .await
                .expect("endpoint");
            tulip::yield_now().await;
            let fd = match t.get_extra_info("socket") {
                Some(tulip::transports::ExtraInfo::Socket(s)) => s.as_raw_fd().expect("open"),
                other => panic!("{other:?}"),
            };
            let lp = tulip::get_running_loop();
            let err = lp
                .add_reader(fd, || {})
                .expect_err("the endpoint owns the fd");
            assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
            // Left open on purpose.
        });
    }
    let after = open_fds();
    assert!(
        after <= before + 2,
        "fds before {before}, after 200 loops with an open endpoint each: {after}"
    );
}
