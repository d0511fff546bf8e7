//! `getaddrinfo` and `getnameinfo` as async functions (asyncio's `loop.getaddrinfo` /
//! `loop.getnameinfo`): the blocking resolver calls of `sys/dns.rs`, run on the default
//! executor, and the name resolution that `create_connection` and `create_server` use.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, Type};

use crate::error::ResolveError;
use crate::executor::{RunInExecutor, run_in_executor};
use crate::sys::dns as sys;

/// The hints of [`getaddrinfo`]: which addresses the caller wants (asyncio's `family`,
/// `type`, `proto` and `flags` arguments). The default asks for everything.
///
/// ```
/// use tulip::socket2::{Domain, Type};
/// let hints = tulip::dns::AddrInfoHints::new()
///     .family(Domain::IPV4)
///     .socktype(Type::STREAM)
///     .numeric_host(true);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrInfoHints {
    raw: sys::Hints,
}

impl AddrInfoHints {
    /// No hints: any family, any socket type, any protocol, no flags.
    pub fn new() -> AddrInfoHints {
        AddrInfoHints::default()
    }

    /// Only addresses of this family (`AF_INET`, `AF_INET6`; asyncio's `family=`).
    pub fn family(mut self, family: Domain) -> AddrInfoHints {
        self.raw.family = family.into();
        self
    }

    /// Only this socket type (`SOCK_STREAM`, `SOCK_DGRAM`; asyncio's `type=`).
    pub fn socktype(mut self, socktype: Type) -> AddrInfoHints {
        self.raw.socktype = socktype.into();
        self
    }

    /// Only this protocol (`IPPROTO_TCP`, `IPPROTO_UDP`; asyncio's `proto=`).
    pub fn protocol(mut self, protocol: Protocol) -> AddrInfoHints {
        self.raw.protocol = protocol.into();
        self
    }

    fn flag(mut self, flag: i32, on: bool) -> AddrInfoHints {
        if on {
            self.raw.flags |= flag;
        } else {
            self.raw.flags &= !flag;
        }
        self
    }

    /// `AI_PASSIVE`: with no host, the wildcard address (to bind a server to) instead of
    /// the loopback one.
    pub fn passive(self, on: bool) -> AddrInfoHints {
        self.flag(sys::AI_PASSIVE, on)
    }

    /// `AI_NUMERICHOST`: the host must be an IP literal; a name fails at once (`NotFound`)
    /// without asking any name server.
    pub fn numeric_host(self, on: bool) -> AddrInfoHints {
        self.flag(sys::AI_NUMERICHOST, on)
    }

    /// `AI_CANONNAME`: the first result carries the host's canonical name.
    pub fn canonname(self, on: bool) -> AddrInfoHints {
        self.flag(sys::AI_CANONNAME, on)
    }

    /// `AI_ADDRCONFIG`: only families this host has an address of (other than loopback).
    pub fn addrconfig(self, on: bool) -> AddrInfoHints {
        self.flag(sys::AI_ADDRCONFIG, on)
    }

    /// `AI_V4MAPPED`: with `family(Domain::IPV6)` and no IPv6 address, IPv4-mapped ones.
    pub fn v4mapped(self, on: bool) -> AddrInfoHints {
        self.flag(sys::AI_V4MAPPED, on)
    }
}

/// One result of [`getaddrinfo`]: asyncio's `(family, type, proto, canonname, sockaddr)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// The address family (`Domain::IPV4` or `Domain::IPV6`).
    pub family: Domain,
    /// The socket type to use with it (`Type::STREAM`, `Type::DGRAM`, …).
    pub socktype: Type,
    /// The protocol to use with it (`IPPROTO_TCP`, …; `0` for "the default").
    pub protocol: Protocol,
    /// The canonical name of the host, on the first result when
    /// [`canonname`](AddrInfoHints::canonname) was asked for (asyncio gives `''` otherwise).
    pub canonname: Option<String>,
    /// The socket address.
    pub addr: SocketAddr,
}

/// Resolves `host` and `port` into socket addresses, off the loop's thread (asyncio's
/// `loop.getaddrinfo(host, port, family=, type=, proto=, flags=)`).
///
/// `host` is a name or an IP literal; an empty `host` is "no host" (asyncio's `None`): the
/// loopback addresses, or with [`passive`](AddrInfoHints::passive) the wildcard ones. The
/// port is numeric (no service names). The lookup is `getaddrinfo(3)`, run on the default
/// executor (like [`run_in_executor`], so it counts for
/// [`shutdown_default_executor`](crate::EventLoop::shutdown_default_executor) and is refused
/// after it); it starts when `getaddrinfo` is called. Results that are not IPv4 or IPv6
/// addresses are left out.
///
/// # Errors
/// An `io::Error` holding a [`ResolveError`] that names the host:
/// - kind `NotFound` when the name has no address (`EAI_NONAME`, `EAI_NODATA`, `EAI_FAIL`);
/// - kind `TimedOut` for a temporary failure (`EAI_AGAIN`: no answer from the name server;
///   [`ResolveError::is_temporary`]) — chosen over `Interrupted`, which code retries at once
///   in a loop;
/// - kind `InvalidInput` for hints the resolver refuses or a host with a NUL byte;
/// - the OS error's kind for `EAI_SYSTEM`, `Other` otherwise.
///
/// # Panics
/// If no loop is running on this thread.
///
/// ```
/// # tulip::run(async {
/// use tulip::socket2::Type;
/// let hints = tulip::dns::AddrInfoHints::new().socktype(Type::STREAM);
/// let infos = tulip::getaddrinfo("127.0.0.1", 80, hints).await.unwrap();
/// assert_eq!(infos[0].addr, "127.0.0.1:80".parse().unwrap());
/// # });
/// ```
pub fn getaddrinfo(host: &str, port: u16, hints: AddrInfoHints) -> GetAddrInfo {
    let node = (!host.is_empty()).then(|| host.to_owned());
    lookup(node, port, hints)
}

fn lookup(node: Option<String>, port: u16, hints: AddrInfoHints) -> GetAddrInfo {
    let job = run_in_executor(move || {
        sys::getaddrinfo(node.as_deref(), port, hints.raw)
            .map(|list| {
                list.into_iter()
                    .map(|ai| AddrInfo {
                        family: Domain::from(ai.family),
                        socktype: Type::from(ai.socktype),
                        protocol: Protocol::from(ai.protocol),
                        canonname: ai.canonname,
                        addr: ai.addr,
                    })
                    .collect()
            })
            .map_err(|e| {
                let host = node.as_deref().unwrap_or("");
                ResolveError::with_kind(host, port, e.message, e.kind, e.temporary).into()
            })
    });
    GetAddrInfo { job }
}

/// The future of [`getaddrinfo`].
///
/// # Cancel safety
/// Dropping it abandons the lookup: a lookup not started yet never runs, one under way
/// finishes on its pool thread and its result is dropped (see
/// [`RunInExecutor`]).
#[must_use = "futures do nothing unless awaited"]
pub struct GetAddrInfo {
    job: RunInExecutor<io::Result<Vec<AddrInfo>>>,
}

impl Future for GetAddrInfo {
    type Output = io::Result<Vec<AddrInfo>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.job).poll(cx).map(|r| r.and_then(|r| r))
    }
}

impl fmt::Debug for GetAddrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetAddrInfo")
            .field("job", &self.job)
            .finish()
    }
}

/// The flags of [`getnameinfo`] (`NI_*`). The default looks the host and the service up by
/// name, falling back to the numeric form.
///
/// ```
/// let flags = tulip::dns::NameInfoFlags::new().numeric_host(true).numeric_serv(true);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameInfoFlags {
    raw: i32,
}

impl NameInfoFlags {
    /// No flags.
    pub fn new() -> NameInfoFlags {
        NameInfoFlags::default()
    }

    fn flag(mut self, flag: i32, on: bool) -> NameInfoFlags {
        if on {
            self.raw |= flag;
        } else {
            self.raw &= !flag;
        }
        self
    }

    /// `NI_NUMERICHOST`: the host as an IP literal, with no reverse lookup.
    pub fn numeric_host(self, on: bool) -> NameInfoFlags {
        self.flag(sys::NI_NUMERICHOST, on)
    }

    /// `NI_NUMERICSERV`: the service as a port number.
    pub fn numeric_serv(self, on: bool) -> NameInfoFlags {
        self.flag(sys::NI_NUMERICSERV, on)
    }

    /// `NI_NAMEREQD`: fail (`NotFound`) if the host has no name, instead of giving its
    /// numeric form.
    pub fn name_required(self, on: bool) -> NameInfoFlags {
        self.flag(sys::NI_NAMEREQD, on)
    }

    /// `NI_NOFQDN`: only the host part of a local host's name.
    pub fn no_fqdn(self, on: bool) -> NameInfoFlags {
        self.flag(sys::NI_NOFQDN, on)
    }

    /// `NI_DGRAM`: the service is a datagram one (it differs from the stream one for a few
    /// ports).
    pub fn datagram(self, on: bool) -> NameInfoFlags {
        self.flag(sys::NI_DGRAM, on)
    }
}

/// The host and service names of a socket address, off the loop's thread (asyncio's
/// `loop.getnameinfo(sockaddr, flags)`, which returns `(host, port)`): `getnameinfo(3)` on the
/// default executor, started when `getnameinfo` is called.
///
/// # Errors
/// An `io::Error` holding a [`ResolveError`] naming the address, with the kinds of
/// [`getaddrinfo`] (`NotFound` when [`name_required`](NameInfoFlags::name_required) and the
/// address has no name).
///
/// # Panics
/// If no loop is running on this thread.
///
/// ```
/// # tulip::run(async {
/// let flags = tulip::dns::NameInfoFlags::new().numeric_host(true).numeric_serv(true);
/// let (host, port) = tulip::getnameinfo("127.0.0.1:8080".parse().unwrap(), flags)
///     .await
///     .unwrap();
/// assert_eq!((host.as_str(), port.as_str()), ("127.0.0.1", "8080"));
/// # });
/// ```
pub fn getnameinfo(addr: SocketAddr, flags: NameInfoFlags) -> GetNameInfo {
    let job = run_in_executor(move || {
        sys::getnameinfo(addr, flags.raw).map_err(|e| {
            let host = addr.ip().to_string();
            ResolveError::with_kind(&host, addr.port(), e.message, e.kind, e.temporary).into()
        })
    });
    GetNameInfo { job }
}

/// The future of [`getnameinfo`]: `(host, service)`.
///
/// # Cancel safety
/// As [`GetAddrInfo`]'s: dropping it abandons the lookup.
#[must_use = "futures do nothing unless awaited"]
pub struct GetNameInfo {
    job: RunInExecutor<io::Result<(String, String)>>,
}

impl Future for GetNameInfo {
    type Output = io::Result<(String, String)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.job).poll(cx).map(|r| r.and_then(|r| r))
    }
}

impl fmt::Debug for GetNameInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetNameInfo")
            .field("job", &self.job)
            .finish()
    }
}

/// Resolves `host:port` for a stream socket: an IP literal at once (with or without
/// brackets), a name with [`getaddrinfo`] (never on the loop's thread). A failure is an
/// `io::Error` with a [`ResolveError`] naming the host (`NotFound` if it has no address).
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let hints = AddrInfoHints::new().socktype(Type::STREAM);
    let addrs: Vec<SocketAddr> = lookup(Some(host.to_owned()), port, hints)
        .await?
        .into_iter()
        .map(|ai| ai.addr)
        .collect();
    if addrs.is_empty() {
        return Err(ResolveError::new(host, port, "resolved to no address").into());
    }
    Ok(addrs)
}
