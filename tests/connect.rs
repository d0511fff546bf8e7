//! `create_connection`: errors, names, `local_addr`, and Happy Eyeballs. The Happy Eyeballs
//! tests need a name with an IPv6 and an IPv4 address: they run in a child process with a
//! private `/etc/hosts` (a user + mount namespace from `unshare -r -m`), and are skipped, with
//! a message, where `unshare` is not available.

mod proto_support;
mod support;

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

use proto_support::*;
use socket2::{Domain, Socket, Type};
use tulip::net::ConnectOptions;

#[tulip::test]
async fn a_closed_port_is_connection_refused_and_the_error_names_the_address() {
    let _w = support::watchdog("connect_refused", 10);
    let port = closed_port();
    let err = tulip::create_connection(
        || Rec::new(&Probe::new()),
        "127.0.0.1",
        port,
        Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tulip::test]
async fn connecting_to_localhost_works() {
    let _w = support::watchdog("connect_localhost", 10);
    let (l, addr) = support::listener();
    let p = Probe::new();
    let t0 = Instant::now();
    let (t, pref) = tulip::create_connection(
        || Rec::new(&p),
        "localhost",
        addr.port(),
        Default::default(),
    )
    .await
    .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(t.peername().and_then(|a| a.as_socket()), Some(addr));
    assert_eq!(pref.with(|r: &mut Rec| r.probe.events()), [Event::CM]);
    let (peer, _) = l.accept().unwrap();
    assert_eq!(
        Some(peer.peer_addr().unwrap()),
        t.sockname().and_then(|a| a.as_socket())
    );
    drop(peer);
    assert_eq!(p.wait_lost(5.0).await, None);
}

// CPython: test_events.py EventLoopTestsMixin.test_create_connection_local_addr
#[tulip::test]
async fn local_addr_binds_the_socket_first() {
    let _w = support::watchdog("connect_local_addr", 10);
    let (_l, addr) = support::listener();
    // Take a free port for the local end.
    let local = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = Probe::new();
    let (t, _) = tulip::create_connection(
        || Rec::new(&p),
        "127.0.0.1",
        addr.port(),
        ConnectOptions::new().local_addr(local),
    )
    .await
    .unwrap();
    assert_eq!(t.sockname().and_then(|a| a.as_socket()), Some(local));
    t.abort();
    assert_eq!(p.wait_lost(5.0).await, None);
}

// ---- Happy Eyeballs, in a child with a private /etc/hosts -----------------------------------

const HE_CHILD: &str = "child_happy_eyeballs";

/// `localhost` is `::1` then `127.0.0.1` in the child. Nothing listens on `::1` but a
/// listener whose accept queue is full, so connects there hang; the tests check the second
/// address wins after the delay, and at once when the first is refused.
#[test]
fn happy_eyeballs_with_a_hanging_first_address() {
    let _w = support::watchdog("happy_eyeballs", 40);
    let ok = Command::new("unshare")
        .args(["-r", "-m", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: `unshare -r -m` is not available; Happy Eyeballs not tested");
        return;
    }
    let hosts = std::env::temp_dir().join(format!("tulip-hosts-{}", std::process::id()));
    std::fs::write(&hosts, "::1 localhost\n127.0.0.1 localhost\n").unwrap();
    let out = run_child(
        HE_CHILD,
        &[
            "unshare",
            "-r",
            "-m",
            "sh",
            "-c",
            "mount --bind \"$TULIP_TEST_HOSTS\" /etc/hosts && exec \"$0\" \"$@\"",
        ],
        &[("TULIP_TEST_HOSTS", hosts.to_str().unwrap())],
        35,
    );
    std::fs::remove_file(&hosts).ok();
    assert_child_passed(HE_CHILD, &out);
}

/// A listener on `[::1]:port` with backlog 0 and a full accept queue: SYNs to it are dropped,
/// so a connect hangs. Returns the listener and the sockets that fill it.
fn hanging_v6_listener(port: u16) -> io::Result<(Socket, Vec<Socket>)> {
    let l = Socket::new(Domain::IPV6, Type::STREAM, None)?;
    l.set_only_v6(true)?;
    l.bind(&SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)).into())?;
    l.listen(0)?;
    let addr = l.local_addr()?;
    let mut fill = Vec::new();
    for _ in 0..3 {
        let s = Socket::new(Domain::IPV6, Type::STREAM, None)?;
        s.set_nonblocking(true)?;
        let _ = s.connect(&addr);
        fill.push(s);
    }
    std::thread::sleep(Duration::from_millis(50));
    Ok((l, fill))
}

#[test]
fn child_happy_eyeballs() {
    if !is_child(HE_CHILD) {
        return;
    }
    let _w = support::watchdog("child_happy_eyeballs", 30);
    let addrs: Vec<SocketAddr> = ("localhost", 1).to_socket_addrs().unwrap().collect();
    assert!(
        addrs.len() >= 2 && addrs[0].is_ipv6() && addrs.iter().any(SocketAddr::is_ipv4),
        "the private hosts file is not in effect: localhost is {addrs:?}"
    );
    tulip::run(async {
        // ::1 refuses, 127.0.0.1 listens: the refusal starts the next attempt at once, long
        // before the (2 s) delay.
        let (l4, a4) = support::listener();
        let p = Probe::new();
        let t0 = Instant::now();
        let (t, _) = tulip::create_connection(
            || Rec::new(&p),
            "localhost",
            a4.port(),
            ConnectOptions::new().happy_eyeballs_delay(Some(Duration::from_secs(2))),
        )
        .await
        .expect("falls back to 127.0.0.1");
        let took = t0.elapsed();
        println!("refused ::1, then 127.0.0.1: {took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert_eq!(t.peername().and_then(|a| a.as_socket()), Some(a4));
        t.abort();
        drop(l4);

        // Both refuse: one error that names each address.
        let port = closed_port();
        let err = tulip::create_connection(
            || Rec::new(&Probe::new()),
            "localhost",
            port,
            Default::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("[::1]:{port}")) && msg.contains(&format!("127.0.0.1:{port}")),
            "{msg}"
        );

        // ::1 hangs. Same port on both families.
        let (hang, _fill, l4, port) = loop {
            let (hang, fill) = hanging_v6_listener(0).unwrap();
            let port = hang.local_addr().unwrap().as_socket().unwrap().port();
            if let Ok(l4) = TcpListener::bind(("127.0.0.1", port)) {
                l4.set_nonblocking(true).unwrap();
                break (hang, fill, l4, port);
            }
        };
        // Check the premise: a connect to it does hang.
        let probe = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        probe.set_nonblocking(true).unwrap();
        let r = tulip::timeout(
            Duration::from_millis(300),
            tulip::sock_connect(&probe, hang.local_addr().unwrap()),
        )
        .await;
        assert!(
            r.is_err(),
            "a connect to the full listener did not hang: {r:?}"
        );
        drop(probe);

        for delay_ms in [100u64, 400] {
            let delay = Duration::from_millis(delay_ms);
            let p = Probe::new();
            let t0 = Instant::now();
            let (t, _) = tulip::create_connection(
                || Rec::new(&p),
                "localhost",
                port,
                ConnectOptions::new().happy_eyeballs_delay(Some(delay)),
            )
            .await
            .expect("127.0.0.1 wins");
            let took = t0.elapsed();
            println!("delay {delay:?}: connected after {took:?}");
            assert!(
                took >= delay,
                "the second attempt started before the delay: {took:?}"
            );
            assert!(took < delay + Duration::from_millis(500), "{took:?}");
            assert_eq!(
                t.peername().and_then(|a| a.as_socket()),
                Some(SocketAddr::from(([127, 0, 0, 1], port)))
            );
            t.abort();
            assert_eq!(p.wait_lost(5.0).await, None);
            let _ = l4.accept();
        }

        // Without Happy Eyeballs the hanging attempt is waited for.
        let r = tulip::timeout(
            Duration::from_millis(600),
            tulip::create_connection(
                || Rec::new(&Probe::new()),
                "localhost",
                port,
                ConnectOptions::new().happy_eyeballs_delay(None),
            ),
        )
        .await;
        assert!(
            r.is_err(),
            "with no delay the first (hanging) address is tried alone"
        );
        drop(hang);
    });
}
