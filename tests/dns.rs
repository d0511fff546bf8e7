//! `getaddrinfo` / `getnameinfo`: numeric names, `localhost` and names that do not exist
//! (no network is assumed: nothing here asks a name server for a name that exists).

mod support;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tulip::ResolveError;
use tulip::dns::{AddrInfoHints, NameInfoFlags};
use tulip::socket2::{Domain, Protocol, Type};

fn resolve_error(e: &io::Error) -> &ResolveError {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<ResolveError>())
        .expect("a ResolveError inside")
}

// tulip's own: the result has asyncio's shape (family, type, proto, canonname, sockaddr) —
// for an IPv4 literal and a stream socket.
#[test]
fn getaddrinfo_ipv4_literal() {
    let _w = support::watchdog("getaddrinfo_ipv4_literal", 20);
    let infos = tulip::run(async {
        tulip::getaddrinfo("127.0.0.1", 80, AddrInfoHints::new().socktype(Type::STREAM)).await
    })
    .unwrap();
    assert_eq!(infos.len(), 1, "{infos:?}");
    let ai = &infos[0];
    assert_eq!(ai.family, Domain::IPV4);
    assert_eq!(ai.socktype, Type::STREAM);
    assert_eq!(ai.protocol, Protocol::TCP);
    assert_eq!(ai.canonname, None);
    assert_eq!(ai.addr, SocketAddr::from(([127, 0, 0, 1], 80)));
}

// tulip's own: with no hints every socket type comes back (as Python's getaddrinfo gives
// one tuple per type), each with the address and port.
#[test]
fn getaddrinfo_without_hints_gives_every_type() {
    let _w = support::watchdog("getaddrinfo_without_hints_gives_every_type", 20);
    let infos =
        tulip::run(async { tulip::getaddrinfo("127.0.0.1", 53, AddrInfoHints::new()).await })
            .unwrap();
    assert!(
        infos.iter().any(|a| a.socktype == Type::STREAM),
        "{infos:?}"
    );
    assert!(infos.iter().any(|a| a.socktype == Type::DGRAM), "{infos:?}");
    assert!(
        infos
            .iter()
            .all(|a| a.addr == SocketAddr::from(([127, 0, 0, 1], 53)))
    );
}

// tulip's own: an IPv6 literal.
#[test]
fn getaddrinfo_ipv6_literal() {
    let _w = support::watchdog("getaddrinfo_ipv6_literal", 20);
    let infos = tulip::run(async {
        tulip::getaddrinfo("::1", 443, AddrInfoHints::new().socktype(Type::STREAM)).await
    })
    .unwrap();
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert_eq!(infos[0].family, Domain::IPV6);
    assert_eq!(
        infos[0].addr,
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 443)
    );
}

// tulip's own: "localhost" resolves (through /etc/hosts, no network) to loopback addresses;
// canonname is given when asked for; family hints filter.
#[test]
fn getaddrinfo_localhost() {
    let _w = support::watchdog("getaddrinfo_localhost", 20);
    tulip::run(async {
        let hints = AddrInfoHints::new().socktype(Type::STREAM).canonname(true);
        let infos = tulip::getaddrinfo("localhost", 8080, hints).await.unwrap();
        assert!(!infos.is_empty());
        for ai in &infos {
            assert!(ai.addr.ip().is_loopback(), "{ai:?}");
            assert_eq!(ai.addr.port(), 8080);
        }
        assert!(infos[0].canonname.is_some(), "{infos:?}");

        let v4 = AddrInfoHints::new()
            .family(Domain::IPV4)
            .socktype(Type::STREAM);
        let infos = tulip::getaddrinfo("localhost", 1, v4).await.unwrap();
        assert!(infos.iter().all(|a| a.family == Domain::IPV4), "{infos:?}");
        assert!(infos.contains(&tulip::dns::AddrInfo {
            family: Domain::IPV4,
            socktype: Type::STREAM,
            protocol: Protocol::TCP,
            canonname: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        }));
    });
}

// tulip's own: no host is the loopback address, or with `passive` the wildcard one.
#[test]
fn getaddrinfo_no_host() {
    let _w = support::watchdog("getaddrinfo_no_host", 20);
    tulip::run(async {
        let v4 = AddrInfoHints::new()
            .family(Domain::IPV4)
            .socktype(Type::STREAM);
        let infos = tulip::getaddrinfo("", 9, v4.passive(true)).await.unwrap();
        assert_eq!(infos[0].addr, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9)));
        let infos = tulip::getaddrinfo("", 9, v4).await.unwrap();
        assert_eq!(infos[0].addr, SocketAddr::from((Ipv4Addr::LOCALHOST, 9)));
    });
}

// tulip's own: a name that does not exist (RFC 6761's `.invalid`) is NotFound, with a
// ResolveError naming the host; it is not a temporary failure.
#[test]
fn getaddrinfo_nonexistent_name() {
    let _w = support::watchdog("getaddrinfo_nonexistent_name", 30);
    let host = "no-such-host.invalid";
    let err =
        tulip::run(async { tulip::getaddrinfo(host, 80, AddrInfoHints::new()).await }).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(host), "{err}");
    let re = resolve_error(&err);
    assert_eq!(re.host(), host);
    assert_eq!(re.port(), 80);
    assert!(!re.is_temporary());
    assert!(!re.reason().is_empty());
}

// tulip's own: `numeric_host` refuses a name without a lookup (NotFound, naming it); a host
// with a NUL byte is InvalidInput.
#[test]
fn getaddrinfo_refusals() {
    let _w = support::watchdog("getaddrinfo_refusals", 20);
    tulip::run(async {
        let err = tulip::getaddrinfo("localhost", 80, AddrInfoHints::new().numeric_host(true))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert_eq!(resolve_error(&err).host(), "localhost");

        let err = tulip::getaddrinfo("local\0host", 80, AddrInfoHints::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    });
}

// tulip's own, after base_events.py: getaddrinfo runs in the default executor, so after
// shutdown_default_executor it is refused too (asyncio raises RuntimeError).
#[test]
fn getaddrinfo_after_shutdown_default_executor() {
    let _w = support::watchdog("getaddrinfo_after_shutdown_default_executor", 20);
    tulip::run(async {
        let lp = tulip::get_running_loop();
        lp.shutdown_default_executor(Some(Duration::from_secs(5)))
            .await
            .unwrap();
        let err = tulip::getaddrinfo("localhost", 80, AddrInfoHints::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("shutdown"), "{err}");
    });
}

// tulip's own: getnameinfo of 127.0.0.1 with NI_NUMERICHOST gives the literal back; with
// NI_NUMERICSERV the port as digits.
#[test]
fn getnameinfo_numeric() {
    let _w = support::watchdog("getnameinfo_numeric", 20);
    tulip::run(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], 80));
        let (host, serv) = tulip::getnameinfo(addr, NameInfoFlags::new().numeric_host(true))
            .await
            .unwrap();
        assert_eq!(host, "127.0.0.1");
        assert!(serv == "http" || serv == "80", "{serv}");

        let flags = NameInfoFlags::new().numeric_host(true).numeric_serv(true);
        let (host, serv) = tulip::getnameinfo(addr, flags).await.unwrap();
        assert_eq!((host.as_str(), serv.as_str()), ("127.0.0.1", "80"));

        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8443);
        let (host, serv) = tulip::getnameinfo(v6, flags).await.unwrap();
        assert_eq!((host.as_str(), serv.as_str()), ("::1", "8443"));
    });
}

// tulip's own: an address with no name, when a name is required, is NotFound naming the
// address (TEST-NET-1, 192.0.2.0/24, is reserved: nothing names it; with no network the
// lookup may instead fail for now, which must then say so).
#[test]
fn getnameinfo_name_required() {
    let _w = support::watchdog("getnameinfo_name_required", 30);
    let addr = SocketAddr::from(([192, 0, 2, 1], 80));
    let err = tulip::run(async {
        tulip::getnameinfo(addr, NameInfoFlags::new().name_required(true)).await
    })
    .unwrap_err();
    let re = resolve_error(&err);
    assert_eq!(re.host(), "192.0.2.1");
    assert!(err.to_string().contains("192.0.2.1"), "{err}");
    if re.is_temporary() {
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    } else {
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }
}

// tulip's own: create_connection still resolves names (through dns.rs) and still reports a
// failed one as before.
#[test]
fn create_connection_resolves_localhost() {
    struct Nothing;
    impl tulip::Protocol for Nothing {}
    let _w = support::watchdog("create_connection_resolves_localhost", 20);
    let (listener, addr) = support::listener();
    tulip::run(async move {
        let (t, _) =
            tulip::create_connection(|| Nothing, "localhost", addr.port(), Default::default())
                .await
                .unwrap();
        assert_eq!(t.peername().and_then(|a| a.as_socket()), Some(addr));
        t.close();
        drop(listener);
        let err = tulip::create_connection(|| Nothing, "nope.invalid", 1, Default::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(resolve_error(&err).host(), "nope.invalid");
    });
}

// tulip's own: the other hints — protocol, IPv4-mapped IPv6 results — and hints the resolver
// refuses (a stream socket over UDP: InvalidInput, not NotFound).
#[test]
fn getaddrinfo_hints() {
    let _w = support::watchdog("getaddrinfo_hints", 20);
    tulip::run(async {
        let udp = AddrInfoHints::new()
            .socktype(Type::DGRAM)
            .protocol(Protocol::UDP);
        let infos = tulip::getaddrinfo("127.0.0.1", 53, udp).await.unwrap();
        assert_eq!(infos.len(), 1, "{infos:?}");
        assert_eq!(
            (infos[0].socktype, infos[0].protocol),
            (Type::DGRAM, Protocol::UDP)
        );

        let mapped = AddrInfoHints::new()
            .family(Domain::IPV6)
            .socktype(Type::STREAM)
            .v4mapped(true);
        let infos = tulip::getaddrinfo("127.0.0.1", 80, mapped).await.unwrap();
        let want: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        assert_eq!(infos[0].addr, want, "{infos:?}");
        assert_eq!(infos[0].family, Domain::IPV6);

        let bad = AddrInfoHints::new()
            .socktype(Type::STREAM)
            .protocol(Protocol::UDP);
        let err = tulip::getaddrinfo("127.0.0.1", 80, bad).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert_eq!(resolve_error(&err).host(), "127.0.0.1");
    });
}
