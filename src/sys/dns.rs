//! `getaddrinfo(3)` and `getnameinfo(3)`: blocking calls, run on the thread pool by
//! `dns.rs`. Their errors (`EAI_*`) are returned as [`GaiError`] with an `io::ErrorKind`
//! already chosen.

use std::ffi::{CStr, CString, c_char, c_int};
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr;

pub(crate) const AI_PASSIVE: c_int = libc::AI_PASSIVE;
pub(crate) const AI_CANONNAME: c_int = libc::AI_CANONNAME;
pub(crate) const AI_NUMERICHOST: c_int = libc::AI_NUMERICHOST;
pub(crate) const AI_NUMERICSERV: c_int = libc::AI_NUMERICSERV;
pub(crate) const AI_ADDRCONFIG: c_int = libc::AI_ADDRCONFIG;
pub(crate) const AI_V4MAPPED: c_int = libc::AI_V4MAPPED;
pub(crate) const NI_NUMERICHOST: c_int = libc::NI_NUMERICHOST;
pub(crate) const NI_NUMERICSERV: c_int = libc::NI_NUMERICSERV;
pub(crate) const NI_NAMEREQD: c_int = libc::NI_NAMEREQD;
pub(crate) const NI_NOFQDN: c_int = libc::NI_NOFQDN;
pub(crate) const NI_DGRAM: c_int = libc::NI_DGRAM;

/// A failed lookup: the resolver's message and the kind tulip gives it.
#[derive(Debug)]
pub(crate) struct GaiError {
    pub(crate) kind: io::ErrorKind,
    /// `EAI_AGAIN`: the resolver could not answer now; trying later may work.
    pub(crate) temporary: bool,
    pub(crate) message: String,
}

impl GaiError {
    fn from_code(code: c_int) -> GaiError {
        if code == libc::EAI_SYSTEM {
            let e = io::Error::last_os_error();
            return GaiError {
                kind: e.kind(),
                temporary: false,
                message: e.to_string(),
            };
        }
        // SAFETY: `gai_strerror` returns a pointer to a static, NUL-terminated string for
        // any code (an "unknown error" text for codes it does not know).
        let message = unsafe { CStr::from_ptr(libc::gai_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        GaiError {
            kind: kind_of(code),
            temporary: code == libc::EAI_AGAIN,
            message,
        }
    }

    fn invalid(message: &str) -> GaiError {
        GaiError {
            kind: io::ErrorKind::InvalidInput,
            temporary: false,
            message: message.to_owned(),
        }
    }
}

/// The kind of an `EAI_*` code: `NotFound` for a name that has no address, `TimedOut` for a
/// temporary failure (`EAI_AGAIN`: the name server did not answer), `InvalidInput` for
/// arguments the resolver refuses, `OutOfMemory`, and `Other` for the rest.
fn kind_of(code: c_int) -> io::ErrorKind {
    match code {
        libc::EAI_NONAME | libc::EAI_FAIL => io::ErrorKind::NotFound,
        #[cfg(any(target_os = "linux", target_vendor = "apple", target_os = "netbsd"))]
        libc::EAI_NODATA => io::ErrorKind::NotFound,
        libc::EAI_AGAIN => io::ErrorKind::TimedOut,
        libc::EAI_SERVICE | libc::EAI_FAMILY | libc::EAI_SOCKTYPE | libc::EAI_BADFLAGS => {
            io::ErrorKind::InvalidInput
        }
        libc::EAI_MEMORY => io::ErrorKind::OutOfMemory,
        _ => io::ErrorKind::Other,
    }
}

/// One `addrinfo` entry, with the address as a `SocketAddr` (IPv4 and IPv6 only).
#[derive(Debug)]
pub(crate) struct RawAddrInfo {
    pub(crate) family: c_int,
    pub(crate) socktype: c_int,
    pub(crate) protocol: c_int,
    pub(crate) canonname: Option<String>,
    pub(crate) addr: SocketAddr,
}

/// The hints of `getaddrinfo(3)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hints {
    pub(crate) family: c_int,
    pub(crate) socktype: c_int,
    pub(crate) protocol: c_int,
    pub(crate) flags: c_int,
}

/// Frees the list `getaddrinfo` returned.
///
/// # Invariant
/// `0` is null or a list that `getaddrinfo` returned and nobody freed.
struct AddrInfoList(*mut libc::addrinfo);

impl Drop for AddrInfoList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: see the invariant: freed exactly once, here.
            unsafe { libc::freeaddrinfo(self.0) };
        }
    }
}

/// Blocking `getaddrinfo(host, port)`: `host` `None` is a null node (the loopback address,
/// or the wildcard with `AI_PASSIVE`); the port is passed as a numeric service.
pub(crate) fn getaddrinfo(
    host: Option<&str>,
    port: u16,
    hints: Hints,
) -> Result<Vec<RawAddrInfo>, GaiError> {
    let node = match host {
        None => None,
        Some(h) => {
            Some(CString::new(h).map_err(|_| GaiError::invalid("host name contains a NUL byte"))?)
        }
    };
    let service = CString::new(port.to_string()).expect("digits have no NUL byte");
    // SAFETY: `addrinfo` is a plain C struct; all-zero is its documented "no hints" value
    // (null pointers, zero lengths).
    let mut c_hints: libc::addrinfo = unsafe { mem::zeroed() };
    c_hints.ai_family = hints.family;
    c_hints.ai_socktype = hints.socktype;
    c_hints.ai_protocol = hints.protocol;
    c_hints.ai_flags = hints.flags | AI_NUMERICSERV;
    let mut res: *mut libc::addrinfo = ptr::null_mut();
    // SAFETY: `node` is null or a NUL-terminated string, `service` is one, both outlive the
    // call; `c_hints` is a valid `addrinfo` with null pointers; `res` is a valid out pointer.
    let code = unsafe {
        libc::getaddrinfo(
            node.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            service.as_ptr(),
            &c_hints,
            &mut res,
        )
    };
    if code != 0 {
        return Err(GaiError::from_code(code));
    }
    let list = AddrInfoList(res);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list `getaddrinfo` returned, alive until `list` is
        // dropped at the end of this function.
        let ai = unsafe { &*cur };
        // SAFETY: `ai_addr` points to `ai_addrlen` bytes of a socket address (or is null).
        if let Some(addr) = unsafe { to_socket_addr(ai.ai_addr, ai.ai_addrlen) } {
            let canonname = if ai.ai_canonname.is_null() {
                None
            } else {
                // SAFETY: a non-null `ai_canonname` is a NUL-terminated string owned by the
                // list.
                Some(
                    unsafe { CStr::from_ptr(ai.ai_canonname) }
                        .to_string_lossy()
                        .into_owned(),
                )
            };
            out.push(RawAddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                canonname,
                addr,
            });
        }
        cur = ai.ai_next;
    }
    Ok(out)
}

/// The address at `sa` (`len` bytes), if it is an IPv4 or IPv6 one.
///
/// # Safety
/// `sa` is null or points to at least `len` readable bytes of a socket address.
unsafe fn to_socket_addr(sa: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    let len = len as usize;
    // SAFETY: `sa` points to a socket address (the caller's promise), which starts with a
    // `sockaddr` header holding the family (after `sa_len` on the BSDs); `addr_of!` makes no
    // reference, and the read is unaligned, as nothing promises the alignment.
    let family = c_int::from(unsafe { ptr::addr_of!((*sa).sa_family).read_unaligned() });
    match family {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says it is a `sockaddr_in`, and `len` bytes are readable.
            let sin = unsafe { sa.cast::<libc::sockaddr_in>().read_unaligned() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says it is a `sockaddr_in6`, and `len` bytes are readable.
            let sin6 = unsafe { sa.cast::<libc::sockaddr_in6>().read_unaligned() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `NI_MAXHOST` (1025 on glibc, macOS and the BSDs), which the libc crate does not give
/// everywhere with one type.
const MAX_HOST: usize = 1025;
/// `NI_MAXSERV`.
const MAX_SERV: usize = 32;

/// Blocking `getnameinfo(addr, flags)`: the host and the service.
pub(crate) fn getnameinfo(addr: SocketAddr, flags: c_int) -> Result<(String, String), GaiError> {
    let sa = socket2::SockAddr::from(addr);
    let mut host = [0 as c_char; MAX_HOST];
    let mut serv = [0 as c_char; MAX_SERV];
    // SAFETY: `sa` is a valid socket address of `sa.len()` bytes; `host` and `serv` are
    // writable buffers of the lengths given, which `getnameinfo` NUL-terminates on success.
    let code = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast::<libc::sockaddr>(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as _,
            serv.as_mut_ptr(),
            serv.len() as _,
            flags,
        )
    };
    if code != 0 {
        return Err(GaiError::from_code(code));
    }
    // SAFETY: on success both buffers hold NUL-terminated strings (within their lengths).
    let (h, s) = unsafe { (CStr::from_ptr(host.as_ptr()), CStr::from_ptr(serv.as_ptr())) };
    Ok((
        h.to_string_lossy().into_owned(),
        s.to_string_lossy().into_owned(),
    ))
}
