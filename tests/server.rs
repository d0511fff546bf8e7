//! `create_server` / `create_unix_server` and the `Server` object: serving, closing,
//! `wait_closed`, `serve_forever`, `shutdown`, `close_clients`/`abort_clients`, a thousand
//! connections, and recovery from running out of file descriptors (in a child process).

mod proto_support;
mod support;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use proto_support::*;
use tulip::{Server, Transport, net::ServerOptions};

const MIB: usize = 1024 * 1024;

type Probes = Rc<RefCell<Vec<Probe>>>;

/// A server on 127.0.0.1 whose protocols are `make(probe)`, each probe recorded in order.
async fn recording_server(
    opts: ServerOptions,
    make: impl Fn(&Probe) -> Rec + 'static,
) -> (Server, Probes, std::net::SocketAddr) {
    let probes: Probes = Rc::default();
    let ps = probes.clone();
    let server = tulip::create_server(
        move || {
            let p = Probe::new();
            ps.borrow_mut().push(p.clone());
            make(&p)
        },
        "127.0.0.1",
        0,
        opts,
    )
    .await
    .expect("create_server");
    let addr = server.local_addr().expect("local_addr");
    assert_ne!(addr.port(), 0);
    (server, probes, addr)
}

/// Waits until `n` connections had `connection_made`.
async fn wait_accepted(probes: &Probes, n: usize, secs: f64) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let made = probes
            .borrow()
            .iter()
            .filter(|p| p.count(|e| *e == Event::CM) == 1)
            .count();
        if made >= n {
            return;
        }
        assert!(
            Instant::now() < until,
            "only {made} of {n} accepted in {secs} s"
        );
        tulip::sleep(Duration::from_millis(1)).await;
    }
}

fn nonblocking_client(addr: std::net::SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect");
    c.set_nonblocking(true).unwrap();
    c
}

fn temp_sock_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tulip-{}-{name}.sock", std::process::id()))
}

// ---- serving -------------------------------------------------------------------------------

#[tulip::test]
async fn echo_server_and_the_call_order_of_accepted_connections() {
    let _w = support::watchdog("echo_server", 10);
    let (server, probes, addr) = recording_server(Default::default(), |p| Rec::new(p).echo()).await;
    assert!(server.is_serving());
    assert_eq!(server.sockets().len(), 1);
    let mut c = nonblocking_client(addr);
    c.write_all(b"hello").unwrap();
    assert_eq!(read_n(&c, 5, 5.0).await, b"hello");
    assert_eq!(server.connection_count(), 1);
    c.shutdown(Shutdown::Write).unwrap();
    let (rest, err) = read_to_end(&c, 5.0).await;
    assert_eq!((rest.len(), err), (0, None));
    let p = probes.borrow()[0].clone();
    assert_eq!(p.wait_lost(5.0).await, None);
    let ev = p.events();
    assert_stream_order(&ev);
    assert_eq!(ev[ev.len() - 2], Event::ER);
    assert_eq!(server.connection_count(), 0);
    server.close();
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
}

// CPython: test_events.py EventLoopTestsMixin.test_create_server_addr_in_use
#[tulip::test]
async fn binding_a_port_in_use_is_addr_in_use_and_names_the_address() {
    let _w = support::watchdog("addr_in_use", 10);
    let (_l, addr) = support::listener();
    let err = tulip::create_server(
        || Rec::new(&Probe::new()),
        "127.0.0.1",
        addr.port(),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tulip::test]
async fn a_panicking_factory_drops_that_connection_and_the_server_goes_on() {
    let _w = support::watchdog("factory_panic", 10);
    let seen = capture_exceptions();
    let calls = Rc::new(Cell::new(0u32));
    let c2 = calls.clone();
    let server = tulip::create_server(
        move || {
            c2.set(c2.get() + 1);
            if c2.get() == 1 {
                panic!("factory boom");
            }
            Rec::new(&Probe::new()).echo()
        },
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let first = nonblocking_client(addr);
    let (got, _) = read_to_end(&first, 5.0).await;
    assert!(got.is_empty(), "the first connection is dropped");
    assert_eq!(seen.borrow().len(), 1);
    assert_eq!(seen.borrow()[0].1.as_deref(), Some("factory boom"));
    let mut second = nonblocking_client(addr);
    second.write_all(b"ok?").unwrap();
    assert_eq!(read_n(&second, 3, 5.0).await, b"ok?");
    assert_eq!(calls.get(), 2);
    server.close();
    server.abort_clients();
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
}

#[tulip::test]
async fn start_serving_false_defers_accepting() {
    let _w = support::watchdog("start_serving_false", 10);
    let (server, probes, addr) = recording_server(ServerOptions::new().start_serving(false), |p| {
        Rec::new(p).echo()
    })
    .await;
    assert!(!server.is_serving());
    // The socket listens (the kernel completes the handshake) but nothing is accepted.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"early").unwrap();
    c.set_nonblocking(true).unwrap();
    tulip::sleep(Duration::from_millis(100)).await;
    assert!(probes.borrow().is_empty(), "accepted before start_serving");
    assert_eq!(server.connection_count(), 0);
    server.start_serving();
    server.start_serving(); // a no-op
    assert!(server.is_serving());
    assert_eq!(read_n(&c, 5, 5.0).await, b"early");
    assert_eq!(probes.borrow().len(), 1);
    server.close();
    assert!(!server.is_serving());
    server.start_serving(); // closed: a no-op
    assert!(!server.is_serving());
    server.abort_clients();
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
    assert_eq!(probes.borrow()[0].count_cl(), 1);
}

#[tulip::test]
async fn serve_forever_ends_after_close_from_another_task() {
    let _w = support::watchdog("serve_forever", 10);
    let (server, _probes, addr) =
        recording_server(ServerOptions::new().start_serving(false), |p| {
            Rec::new(p).echo()
        })
        .await;
    let s2 = server.clone();
    let closer = tulip::spawn(async move {
        tulip::sleep(Duration::from_millis(30)).await;
        let serving = s2.is_serving();
        let mut c = nonblocking_client(addr);
        c.write_all(b"served").unwrap();
        let echoed = read_n(&c, 6, 5.0).await;
        s2.close();
        (serving, echoed)
    });
    tulip::timeout(Duration::from_secs(5), server.serve_forever())
        .await
        .expect("serve_forever must end after close()")
        .unwrap();
    let (serving, echoed) = closer.await;
    assert!(serving, "serve_forever starts serving");
    assert_eq!(echoed, b"served");
    assert!(!server.is_serving());
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(
        err.kind(),
        io::ErrorKind::ConnectionRefused,
        "listener closed"
    );
    server.abort_clients();
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
}

#[tulip::test]
async fn cancelling_serve_forever_closes_the_server() {
    let _w = support::watchdog("serve_forever_cancel", 10);
    let (server, _probes, addr) = recording_server(Default::default(), Rec::new).await;
    let r = tulip::timeout(Duration::from_millis(50), server.serve_forever()).await;
    assert!(r.is_err(), "serve_forever does not end by itself");
    assert!(
        !server.is_serving(),
        "dropping serve_forever closes the server, as asyncio"
    );
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
}

// ---- closing ---------------------------------------------------------------------------------

#[tulip::test]
async fn wait_closed_waits_until_the_connections_are_closed() {
    let _w = support::watchdog("wait_closed", 10);
    let (server, probes, addr) = recording_server(Default::default(), |p| Rec::new(p).echo()).await;
    let mut c1 = nonblocking_client(addr);
    let c2 = nonblocking_client(addr);
    wait_accepted(&probes, 2, 5.0).await;
    assert!(server.is_serving());
    server.close();
    assert!(!server.is_serving());
    assert!(
        tulip::timeout(Duration::from_millis(150), server.wait_closed())
            .await
            .is_err(),
        "wait_closed completed with live connections"
    );
    // The listener is gone; the connections are not.
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    c1.write_all(b"still").unwrap();
    assert_eq!(read_n(&c1, 5, 5.0).await, b"still");
    assert_eq!(server.connection_count(), 2);
    let s2 = server.clone();
    let waiter = tulip::spawn(async move { s2.wait_closed().await });
    tulip::sleep(Duration::from_millis(30)).await;
    assert!(!waiter.is_finished());
    server.close_clients();
    tulip::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("wait_closed completes once the connections are closed");
    assert_eq!(server.connection_count(), 0);
    for p in probes.borrow().iter() {
        assert_eq!(p.lost_kind(), Some(None));
        assert_stream_order(&p.events());
    }
    for c in [&c1, &c2] {
        let (rest, err) = read_to_end(c, 5.0).await;
        assert_eq!((rest.len(), err), (0, None));
    }
    // Done: wait_closed returns at once from now on.
    tulip::timeout(Duration::from_millis(100), server.wait_closed())
        .await
        .unwrap();
}

#[tulip::test]
async fn wait_closed_started_before_close_completes_on_close() {
    let _w = support::watchdog("wait_closed_before_close", 10);
    let (server, _probes, _addr) = recording_server(Default::default(), Rec::new).await;
    let s2 = server.clone();
    let waiter = tulip::spawn(async move { s2.wait_closed().await });
    tulip::sleep(Duration::from_millis(30)).await;
    assert!(
        !waiter.is_finished(),
        "wait_closed before close() must wait"
    );
    server.close();
    tulip::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("no connections: close() completes wait_closed");
}

/// The server side writes 8 MiB to the connection whose client sent "big".
fn big_on_request(p: &Probe) -> Rec {
    Rec::new(p).on_data(|t: &Transport, d: &[u8]| {
        if d == b"big" {
            t.write(&vec![3u8; 8 * MIB]);
        }
    })
}

#[tulip::test]
async fn close_clients_sends_buffered_data_then_ends_each_connection_once() {
    let _w = support::watchdog("close_clients", 20);
    let (server, probes, addr) = recording_server(Default::default(), big_on_request).await;
    let mut big = nonblocking_client(addr);
    wait_accepted(&probes, 1, 5.0).await;
    let idle = [nonblocking_client(addr), nonblocking_client(addr)];
    wait_accepted(&probes, 3, 5.0).await;
    big.write_all(b"big").unwrap();
    let pbig = probes.borrow()[0].clone();
    pbig.wait_bytes(3, 5.0).await;
    assert!(
        pbig.transport().get_write_buffer_size() > 0,
        "data is buffered"
    );
    server.close_clients();
    let reader = checksum_reader(big, 0);
    let ps = probes.borrow().clone();
    for p in &ps {
        assert_eq!(p.wait_lost(10.0).await, None);
    }
    let (_, len) = join_thread(reader, 10.0).await.unwrap();
    assert_eq!(
        len as usize,
        8 * MIB,
        "close_clients lets buffered data go out"
    );
    for c in &idle {
        let (rest, err) = read_to_end(c, 5.0).await;
        assert_eq!((rest.len(), err), (0, None));
    }
    assert_eq!(server.connection_count(), 0);
    // close_clients does not close the server.
    assert!(server.is_serving());
    let again = nonblocking_client(addr);
    wait_accepted(&probes, 4, 5.0).await;
    again.shutdown(Shutdown::Write).unwrap();
    tulip::sleep(Duration::from_millis(20)).await;
    for p in probes.borrow().iter() {
        assert_stream_order(&p.events());
        assert!(p.count_cl() <= 1);
    }
    server.close();
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
}

#[tulip::test]
async fn abort_clients_drops_buffered_data_and_ends_each_connection_once() {
    let _w = support::watchdog("abort_clients", 10);
    let (server, probes, addr) = recording_server(Default::default(), big_on_request).await;
    let mut big = nonblocking_client(addr);
    wait_accepted(&probes, 1, 5.0).await;
    let idle = nonblocking_client(addr);
    wait_accepted(&probes, 2, 5.0).await;
    big.write_all(b"big").unwrap();
    let pbig = probes.borrow()[0].clone();
    pbig.wait_bytes(3, 5.0).await;
    let buffered = pbig.transport().get_write_buffer_size();
    assert!(buffered > 0);
    server.abort_clients();
    let ps = probes.borrow().clone();
    for p in &ps {
        assert_eq!(p.wait_lost(1.0).await, None, "aborted at once");
    }
    let (got, _) = read_to_end(&big, 5.0).await;
    assert!(got.len() <= 8 * MIB - buffered, "aborted data was sent");
    let (rest, _) = read_to_end(&idle, 5.0).await;
    assert!(rest.is_empty());
    tulip::sleep(Duration::from_millis(20)).await;
    for p in probes.borrow().iter() {
        let ev = p.events();
        assert_stream_order(&ev);
    }
    assert_eq!(server.connection_count(), 0);
    server.close();
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
}

#[tulip::test]
async fn shutdown_closes_idle_connections_and_aborts_a_stuck_one_at_the_deadline() {
    let _w = support::watchdog("shutdown_deadline", 10);
    let (server, probes, addr) = recording_server(Default::default(), big_on_request).await;
    let idle = nonblocking_client(addr);
    wait_accepted(&probes, 1, 5.0).await;
    // This client asks for 8 MiB and never reads.
    let mut stuck = nonblocking_client(addr);
    wait_accepted(&probes, 2, 5.0).await;
    stuck.write_all(b"big").unwrap();
    let (pidle, pstuck) = (probes.borrow()[0].clone(), probes.borrow()[1].clone());
    pstuck.wait_bytes(3, 5.0).await;
    assert!(pstuck.transport().get_write_buffer_size() > 0);
    let deadline = Duration::from_millis(500);
    let t0 = Instant::now();
    let s2 = server.clone();
    let sd = tulip::spawn(async move {
        s2.shutdown(deadline).await;
        Instant::now()
    });
    assert_eq!(pidle.wait_lost(0.3).await, None);
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "the idle one closes at once"
    );
    let (rest, err) = read_to_end(&idle, 5.0).await;
    assert_eq!((rest.len(), err), (0, None));
    tulip::sleep_until(t0 + Duration::from_millis(350)).await;
    assert!(!pstuck.is_lost(), "aborted before the deadline");
    assert!(!sd.is_finished());
    assert_eq!(pstuck.wait_lost(2.0).await, None);
    let stuck_at = t0.elapsed();
    assert!(stuck_at >= deadline, "aborted after {stuck_at:?}");
    let ended = tulip::timeout(Duration::from_secs(2), sd).await.unwrap();
    assert!(ended - t0 >= deadline && ended - t0 < Duration::from_secs(2));
    assert!(!server.is_serving());
    assert_eq!(server.connection_count(), 0);
    let (_, _) = read_to_end(&stuck, 5.0).await;
    for p in [&pidle, &pstuck] {
        assert_stream_order(&p.events());
    }
}

// ---- Unix sockets -----------------------------------------------------------------------------

#[tulip::test]
async fn unix_server_and_client_echo_and_the_socket_file_is_removed_on_close() {
    let _w = support::watchdog("unix_server", 10);
    let path = temp_sock_path("echo");
    let probes: Probes = Rc::default();
    let ps = probes.clone();
    let server = tulip::create_unix_server(
        move || {
            let p = Probe::new();
            ps.borrow_mut().push(p.clone());
            Rec::new(&p).echo()
        },
        &path,
        Default::default(),
    )
    .await
    .unwrap();
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert_eq!(server.local_addr(), None, "not an IP address");
    assert_eq!(server.sockets()[0].as_pathname(), Some(path.as_path()));
    let p = Probe::new();
    let (t, _) = tulip::create_unix_connection(|| Rec::new(&p), &path, Default::default())
        .await
        .unwrap();
    t.write(b"over unix");
    p.wait_bytes(9, 5.0).await;
    assert_eq!(p.received(), b"over unix");
    assert_eq!(
        t.peername()
            .and_then(|a| a.as_pathname().map(|p| p.to_owned())),
        Some(path.clone())
    );
    assert!(t.can_write_eof());
    t.write_eof();
    assert_eq!(p.wait_lost(5.0).await, None, "the server closes on our EOF");
    server.close();
    assert!(!path.exists(), "the socket file is removed on close");
    tulip::timeout(Duration::from_secs(5), server.wait_closed())
        .await
        .unwrap();
    assert_stream_order(&p.events());
    assert_stream_order(&probes.borrow()[0].events());
    let err = tulip::create_unix_connection(|| Rec::new(&Probe::new()), &path, Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tulip::test]
async fn unix_server_replaces_a_stale_socket_but_not_a_file() {
    let _w = support::watchdog("unix_stale", 10);
    let path = temp_sock_path("stale");
    let _ = std::fs::remove_file(&path);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "a stale socket file");
    let server = tulip::create_unix_server(|| Rec::new(&Probe::new()), &path, Default::default())
        .await
        .expect("a stale socket is replaced");
    assert!(server.is_serving());
    server.close();
    assert!(!path.exists());
    std::fs::write(&path, b"not a socket").unwrap();
    let err = tulip::create_unix_server(|| Rec::new(&Probe::new()), &path, Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket", "left alone");
    std::fs::remove_file(&path).unwrap();
}

// ---- many connections ------------------------------------------------------------------------

const THOUSAND_CHILD: &str = "child_thousand_connections";

/// The soft RLIMIT_NOFILE, from /proc.
fn nofile_limit() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let f: Vec<&str> = line.split_whitespace().collect();
    let parse = |x: &str| x.parse::<u64>().unwrap_or(u64::MAX);
    (parse(f[3]), parse(f[4]))
}

async fn thousand_connections() {
    let n = 1000;
    let (server, probes, addr) =
        recording_server(ServerOptions::new().backlog(2048), |p| Rec::new(p).echo()).await;
    let port = addr.port();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tulip::spawn(async move {
                let p = Probe::new();
                let (t, _) = tulip::create_connection(
                    || Rec::new(&p),
                    "127.0.0.1",
                    port,
                    Default::default(),
                )
                .await
                .expect("create_connection");
                (t, p)
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(n);
    for t in tasks {
        clients.push(t.await);
    }
    wait_accepted(&probes, n, 10.0).await;
    assert_eq!(server.connection_count(), n, "all open at once");
    for (i, (t, _)) in clients.iter().enumerate() {
        t.write(format!("client {i:04}\n").as_bytes());
    }
    for (i, (_, p)) in clients.iter().enumerate() {
        p.wait_bytes(12, 10.0).await;
        assert_eq!(p.received(), format!("client {i:04}\n").as_bytes());
    }
    for (t, _) in &clients {
        t.close();
    }
    for (_, p) in &clients {
        assert_eq!(p.wait_lost(10.0).await, None);
        assert_stream_order(&p.events());
    }
    server.close();
    tulip::timeout(Duration::from_secs(10), server.wait_closed())
        .await
        .expect("every server-side connection closes on EOF");
    let probes = probes.borrow();
    assert_eq!(probes.len(), n);
    let mut seen: Vec<Vec<u8>> = probes.iter().map(Probe::received).collect();
    seen.sort();
    for (i, d) in seen.iter().enumerate() {
        assert_eq!(d, format!("client {i:04}\n").as_bytes());
    }
    for p in probes.iter() {
        assert_eq!(p.lost_kind(), Some(None));
        assert_stream_order(&p.events());
    }
}

#[test]
fn a_thousand_concurrent_connections() {
    let _w = support::watchdog("thousand", 60);
    let (soft, hard) = nofile_limit();
    if soft >= 2600 {
        tulip::run(thousand_connections());
        return;
    }
    // Too few descriptors here: a child with the soft limit raised to the hard one.
    assert!(
        hard >= 2600,
        "RLIMIT_NOFILE hard limit {hard} is too low for 1000 connections"
    );
    let out = run_child(
        THOUSAND_CHILD,
        &[
            "sh",
            "-c",
            "ulimit -n \"$(ulimit -H -n)\" && exec \"$0\" \"$@\"",
        ],
        &[],
        50,
    );
    assert_child_passed(THOUSAND_CHILD, &out);
}

#[test]
fn child_thousand_connections() {
    if !is_child(THOUSAND_CHILD) {
        return;
    }
    let _w = support::watchdog("child_thousand", 50);
    tulip::run(thousand_connections());
}

// ---- running out of file descriptors -------------------------------------------------------

const EMFILE_CHILD: &str = "child_emfile";

/// A child with RLIMIT_NOFILE 64 serves until accept() hits EMFILE: it must neither spin nor
/// stop serving once descriptors come free.
#[test]
fn out_of_fds_the_server_backs_off_without_spinning_and_recovers() {
    let _w = support::watchdog("emfile", 40);
    let out = run_child(
        EMFILE_CHILD,
        &["sh", "-c", "ulimit -n 64 && exec \"$0\" \"$@\""],
        &[],
        30,
    );
    assert_child_passed(EMFILE_CHILD, &out);
}

fn open_fds() -> usize {
    // The directory stream has a descriptor of its own.
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1
}

/// utime + stime of the process, in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds(stat: &mut File) -> f64 {
    let mut s = String::new();
    stat.rewind().unwrap();
    stat.read_to_string(&mut s).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn child_emfile() {
    if !is_child(EMFILE_CHILD) {
        return;
    }
    let _w = support::watchdog("child_emfile", 25);
    let (limit, _) = nofile_limit();
    assert!(limit <= 64, "the child runs with a low limit, got {limit}");
    tulip::run(async move {
        let server = tulip::create_server(
            || Rec::new(&Probe::new()).echo(),
            "127.0.0.1",
            0,
            ServerOptions::new().backlog(256),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        // Opened now: once the descriptors are gone, nothing can be opened.
        let mut stat = File::open("/proc/self/stat").unwrap();
        let free = limit as usize - open_fds();
        let spare = 6;
        assert!(free > spare + 8, "only {free} descriptors free");
        // Clients take all but `spare` descriptors; each sends its number.
        let mut clients = Vec::new();
        for i in 0..free - spare {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&[i as u8]).unwrap();
            c.set_nonblocking(true).unwrap();
            clients.push(c);
        }
        // The server accepts `spare` of them, then accept() fails with EMFILE.
        tulip::sleep(Duration::from_millis(300)).await;
        let served = server.connection_count();
        assert!((1..=spare + 2).contains(&served), "served {served}");
        println!("{} clients, {served} served before EMFILE", clients.len());
        for (i, c) in clients.iter().enumerate().take(served) {
            assert_eq!(read_n(c, 1, 2.0).await, [i as u8], "echo");
        }
        let mut b = [0u8; 1];
        let e = (&clients[served]).read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "not served yet");

        // Backing off, not spinning on a listener that stays readable.
        let cpu0 = cpu_seconds(&mut stat);
        let t0 = Instant::now();
        tulip::sleep(Duration::from_millis(1000)).await;
        let (cpu, wall) = (cpu_seconds(&mut stat) - cpu0, t0.elapsed().as_secs_f64());
        println!("{cpu:.2} s of CPU in {wall:.2} s while out of descriptors");
        assert!(cpu < 0.3 * wall, "spinning: {cpu} s of CPU in {wall} s");
        assert_eq!(server.connection_count(), served);
        assert!(server.is_serving());

        // Free descriptors: the served clients leave (their server sides close on EOF).
        let pending = clients.split_off(served);
        drop(clients);
        let t1 = Instant::now();
        let until = t1 + Duration::from_millis(1500);
        for (j, c) in pending.iter().enumerate().take(served.min(4)) {
            let left = until
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            assert_eq!(
                read_n(c, 1, left.max(0.001)).await,
                [(served + j) as u8],
                "a waiting client is served again"
            );
        }
        println!("served again after {:?}", t1.elapsed());
        assert!(t1.elapsed() < Duration::from_millis(1500));
        drop(pending);
        server.close();
        server.abort_clients();
        tulip::timeout(Duration::from_secs(5), server.wait_closed())
            .await
            .unwrap();
    });
}
