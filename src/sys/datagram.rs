//! Datagram receive and send, batched: on Linux one `recvmmsg(2)` / `sendmmsg(2)` moves up
//! to [`BATCH`] datagrams; elsewhere the same calls loop `recvfrom(2)` / `sendto(2)`.
//!
//! The receive side writes into slots of a caller's buffer (the loop's shared read buffer)
//! and keeps each datagram's length and sender in a [`RecvBatch`] made once per endpoint, so
//! nothing is allocated per datagram.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use socket2::{SockAddr, SockAddrStorage};

use super::io::SEND_FLAGS;
use super::retry;

/// How many datagrams one readiness event or one flush moves at most.
pub(crate) const BATCH: usize = 16;

/// The lengths and senders of the datagrams of one [`RecvBatch::recv`].
pub(crate) struct RecvBatch {
    names: [libc::sockaddr_storage; BATCH],
    namelens: [libc::socklen_t; BATCH],
    lens: [usize; BATCH],
    /// With UDP GRO: the size of the segments datagram `i` coalesces (0: one datagram).
    segs: [usize; BATCH],
    /// With UDP GRO: room for each datagram's control message (`UDP_GRO`, an `int`).
    #[cfg(target_os = "linux")]
    control: [[u64; 4]; BATCH],
    #[cfg(target_os = "linux")]
    hdrs: [libc::mmsghdr; BATCH],
    #[cfg(target_os = "linux")]
    iovs: [libc::iovec; BATCH],
    /// Where this batch was, and the buffer (address, length) and slot size, when the
    /// headers were pointed at them: they are set up again only when one of these changes
    /// (or [`set_gro`](RecvBatch::set_gro) is called).
    #[cfg(target_os = "linux")]
    prepared: (usize, usize, usize, usize),
    /// GRO's control messages are asked for (never off Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    gro: bool,
}

impl RecvBatch {
    /// An empty batch (boxed: it is a few KiB, and the headers point into it).
    pub(crate) fn new() -> Box<RecvBatch> {
        // SAFETY: every field is plain C data (integers, `sockaddr_storage`, the `mmsghdr` /
        // `iovec` whose null pointers are set before use, and a tuple of `usize`): all-zero
        // is valid.
        Box::new(unsafe { std::mem::zeroed() })
    }

    /// The sender of datagram `i` of the last [`recv`](RecvBatch::recv).
    #[inline]
    pub(crate) fn addr(&self, i: usize) -> SockAddr {
        const {
            assert!(size_of::<SockAddrStorage>() == size_of::<libc::sockaddr_storage>());
        }
        let mut storage = MaybeUninit::<SockAddrStorage>::uninit();
        // SAFETY: `SockAddrStorage` is plain data of the size of a `sockaddr_storage` (the
        // wrapper socket2 documents as transparent over it): copying all of `names[i]` into
        // it initialises it — without zeroing it first, which costs a `memset` per datagram.
        let storage = unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::from_ref(&self.names[i]).cast::<u8>(),
                storage.as_mut_ptr().cast::<u8>(),
                size_of::<libc::sockaddr_storage>(),
            );
            storage.assume_init()
        };
        // SAFETY: the kernel wrote a valid address of `namelens[i]` bytes (at most the
        // storage's size) into `names[i]`.
        unsafe { SockAddr::new(storage, self.namelens[i]) }
    }

    /// The length of datagram `i` of the last [`recv`](RecvBatch::recv); its bytes are at
    /// `buf[i * slot..][..len]`.
    pub(crate) fn len(&self, i: usize) -> usize {
        self.lens[i]
    }

    /// Asks for each datagram's GRO segment size (for a socket with `UDP_GRO` on).
    pub(crate) fn set_gro(&mut self, on: bool) {
        self.gro = on;
        #[cfg(target_os = "linux")]
        {
            self.prepared = (0, 0, 0, 0);
        }
    }

    /// With GRO ([`set_gro`](RecvBatch::set_gro)): the segment size of datagram
    /// `i` when the kernel coalesced several datagrams of one sender into it (each
    /// `segment` bytes, the last one possibly shorter), else 0.
    pub(crate) fn segment(&self, i: usize) -> usize {
        self.segs[i]
    }

    /// Receives up to `max` (≤ [`BATCH`]) datagrams, datagram `i` into
    /// `buf[i * slot..][..slot]` (a longer one is truncated). Returns how many arrived;
    /// `WouldBlock` if none was waiting.
    /// With GRO, the segment size of each coalesced datagram is read from its control
    /// message (see [`segment`](RecvBatch::segment)).
    #[cfg(target_os = "linux")]
    pub(crate) fn recv(
        &mut self,
        fd: RawFd,
        buf: &mut [u8],
        slot: usize,
        max: usize,
    ) -> io::Result<usize> {
        let n = max.min(BATCH).min(buf.len() / slot.max(1)).max(1);
        let base = buf.as_mut_ptr();
        let key = (
            std::ptr::from_ref(self) as usize,
            base as usize,
            buf.len(),
            slot,
        );
        let gro = self.gro;
        if self.prepared != key {
            // Point the headers at the slots and the name buffers once, not per call: only
            // `msg_namelen` is changed by the kernel (reset below after each use).
            for i in 0..BATCH.min(buf.len() / slot.max(1)).max(1) {
                let len = slot.min(buf.len() - i * slot);
                self.iovs[i] = libc::iovec {
                    // SAFETY: `i * slot` is within `buf` (at most `buf.len() / slot` slots,
                    // or the one slot at its start).
                    iov_base: unsafe { base.add(i * slot) }.cast(),
                    iov_len: len,
                };
                let h = &mut self.hdrs[i].msg_hdr;
                h.msg_name = std::ptr::from_mut(&mut self.names[i]).cast();
                h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = &mut self.iovs[i];
                h.msg_iovlen = 1;
                if gro {
                    h.msg_control = self.control[i].as_mut_ptr().cast();
                    h.msg_controllen = size_of::<[u64; 4]>() as _;
                } else {
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                }
            }
            self.prepared = key;
        }
        let hdrs = self.hdrs.as_mut_ptr();
        // SAFETY: `hdrs[..n]` point at `n` disjoint slots of `buf` (its address and length
        // are those they were prepared for, and it is borrowed mutably for the call) and at
        // `names[..n]` of this batch, which has not moved since (its address is in the key);
        // the kernel writes at most their lengths.
        let r = retry(|| unsafe {
            libc::recvmmsg(fd, hdrs, n as libc::c_uint, 0, std::ptr::null_mut())
        });
        let got = match r {
            Ok(got) => got as usize,
            Err(e) => {
                // Nothing was received; leave every header as prepared all the same.
                for h in &mut self.hdrs[..n] {
                    h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                    if gro {
                        h.msg_hdr.msg_controllen = size_of::<[u64; 4]>() as _;
                    }
                }
                return Err(e);
            }
        };
        for i in 0..got {
            let h = &mut self.hdrs[i];
            self.lens[i] = h.msg_len as usize;
            self.namelens[i] = h.msg_hdr.msg_namelen;
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        if gro {
            self.read_segments(got);
        }
        Ok(got)
    }

    /// GRO: each received datagram's segment size, and the control buffers made ready again.
    #[cfg(target_os = "linux")]
    #[inline(never)]
    fn read_segments(&mut self, got: usize) {
        for i in 0..got {
            let h = &mut self.hdrs[i].msg_hdr;
            self.segs[i] = gro_segment(h);
            h.msg_controllen = size_of::<[u64; 4]>() as _;
        }
    }

    /// Receives up to `max` datagrams (portable form: a `recvfrom` loop; see the Linux one).
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn recv(
        &mut self,
        fd: RawFd,
        buf: &mut [u8],
        slot: usize,
        max: usize,
    ) -> io::Result<usize> {
        let n = max.min(BATCH).min(buf.len() / slot.max(1)).max(1);
        for i in 0..n {
            let piece = &mut buf[i * slot..];
            let len = slot.min(piece.len());
            self.namelens[i] = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let name = std::ptr::from_mut(&mut self.names[i]).cast();
            let namelen = &mut self.namelens[i];
            // SAFETY: `piece` is valid for writes of `len` bytes, `name` for a
            // `sockaddr_storage` of `*namelen` bytes; both are borrowed for the call.
            let r = retry(|| unsafe {
                libc::recvfrom(fd, piece.as_mut_ptr().cast(), len, 0, name, namelen)
            });
            match r {
                Ok(k) => self.lens[i] = k as usize,
                // An error after the first datagram is reported by the next call (the
                // kernel keeps a pending error; a `WouldBlock` just means "no more").
                Err(_) if i > 0 => return Ok(i),
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// The segment size in a received message's `UDP_GRO` control message, or 0 if it has none
/// (the datagram was not coalesced).
#[cfg(target_os = "linux")]
fn gro_segment(h: &libc::msghdr) -> usize {
    if h.msg_controllen == 0 {
        return 0;
    }
    // SAFETY: `h` was filled by `recvmmsg`: its control buffer holds `msg_controllen` bytes of
    // well-formed control messages, which CMSG_FIRSTHDR / CMSG_NXTHDR walk within bounds; an
    // `int` is read (unaligned) from the data of a `UDP_GRO` message, which carries one.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v = libc::CMSG_DATA(c).cast::<libc::c_int>().read_unaligned();
                return usize::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
}

/// Turns UDP generic receive offload on or off for a UDP socket: the kernel may then hand
/// over several datagrams of one sender as one, with their segment size (Linux ≥ 5.0).
///
/// # Errors
/// The system's (`ENOPROTOOPT` on a kernel without it); `Unsupported` off Linux.
pub(crate) fn set_gro(fd: RawFd, on: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let v: libc::c_int = on.into();
        // SAFETY: `v` is a valid `int` for the call; the kernel copies it.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_UDP,
                libc::UDP_GRO,
                std::ptr::from_ref(&v).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, on);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "UDP GRO is only available on Linux",
        ))
    }
}

/// Whether UDP GRO is on for `fd` (always `false` off Linux, or for a socket that is not UDP).
pub(crate) fn gro_enabled(fd: RawFd) -> bool {
    #[cfg(target_os = "linux")]
    {
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes for the call.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_UDP,
                libc::UDP_GRO,
                std::ptr::from_mut(&mut v).cast(),
                &mut len,
            )
        };
        r == 0 && v != 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        false
    }
}

/// Sends the datagrams of `msgs` in order (each to its address, or to the connected peer
/// when `None`), up to [`BATCH`] of them; returns how many were sent. An error is returned
/// only when the first one fails (`WouldBlock` if the socket's buffer is full).
pub(crate) fn send_batch<'a>(
    fd: RawFd,
    msgs: impl Iterator<Item = (&'a [u8], Option<&'a SockAddr>)>,
) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: all-zero `mmsghdr` / `iovec` are valid (null pointers, zero lengths).
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut n = 0;
        for (data, addr) in msgs.take(BATCH) {
            iovs[n] = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            if let Some(a) = addr {
                hdrs[n].msg_hdr.msg_name = a.as_ptr() as *mut libc::c_void;
                hdrs[n].msg_hdr.msg_namelen = a.len();
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()).take(n) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        let p = hdrs.as_mut_ptr();
        // SAFETY: `hdrs[..n]` point at the borrowed datagrams and addresses, which outlive
        // the call; the kernel only reads them (and writes `msg_len`).
        let sent =
            retry(|| unsafe { libc::sendmmsg(fd, p, n as libc::c_uint, SEND_FLAGS) })? as usize;
        Ok(sent)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let mut sent = 0;
        for (data, addr) in msgs.take(BATCH) {
            match sendto(fd, data, addr) {
                Ok(_) => sent += 1,
                Err(_) if sent > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

/// One datagram: `sendto(2)` to `addr`, or `send(2)` to the connected peer when `None`.
pub(crate) fn sendto(fd: RawFd, data: &[u8], addr: Option<&SockAddr>) -> io::Result<usize> {
    let (name, namelen) = match addr {
        Some(a) => (a.as_ptr().cast::<libc::sockaddr>(), a.len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `data` is valid for reads of its length and `name` (if not null) for a socket
    // address of `namelen` bytes; both are borrowed for the call.
    retry(|| unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            SEND_FLAGS,
            name,
            namelen,
        )
    })
    .map(|n| n as usize)
}

/// The most segments one UDP GSO send may carry (the kernel's `UDP_MAX_SEGMENTS`, 64 before
/// Linux 5.5: the older, smaller limit, so that every kernel with GSO takes it).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;

/// The most bytes of UDP payload one send may carry (IPv4: 65,535 − 20 − 8).
pub(crate) const GSO_MAX_BYTES: usize = 65_507;

/// Sends `data` as datagrams of `segment` bytes (the last may be shorter) in one
/// `sendmsg(2)` with a `UDP_SEGMENT` control message (Linux UDP GSO), to `addr` or the
/// connected peer. `data` holds at most [`GSO_MAX_SEGMENTS`] segments and
/// [`GSO_MAX_BYTES`] bytes. Elsewhere: `Unsupported`.
pub(crate) fn send_gso(
    fd: RawFd,
    data: &[u8],
    segment: u16,
    addr: Option<&SockAddr>,
) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // Room for one control message of CMSG_SPACE(2) bytes (24 on 64-bit), aligned.
        let mut control = [0u64; 4];
        // SAFETY: an all-zero `msghdr` is valid (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(a) = addr {
            msg.msg_name = a.as_ptr() as *mut libc::c_void;
            msg.msg_namelen = a.len();
        }
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
        // SAFETY: `control` (32 bytes, 8-aligned) holds the one message of CMSG_SPACE(2)
        // bytes that `msg_controllen` announces; CMSG_FIRSTHDR / CMSG_DATA point into it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            libc::CMSG_DATA(c).cast::<u16>().write_unaligned(segment);
        }
        // SAFETY: `msg` points at `iov` (over the borrowed `data`), the borrowed address and
        // `control`, which all outlive the call; the kernel only reads them.
        retry(|| unsafe { libc::sendmsg(fd, &msg, SEND_FLAGS) }).map(|n| n as usize)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (fd, data, segment, addr);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "UDP GSO is Linux only",
        ))
    }
}

/// Whether an error from [`send_gso`] is the path refusing GSO rather than a fault of the
/// datagrams: `Some(true)` for good (no checksum offload on the device, an old kernel,
/// another system), `Some(false)` for this segment size only (`EINVAL`: over the device's
/// MTU). Either way the segments are to be sent one by one, which reports what is wrong
/// with each.
pub(crate) fn gso_refused(e: &io::Error) -> Option<bool> {
    if e.kind() == io::ErrorKind::Unsupported {
        return Some(true);
    }
    match e.raw_os_error() {
        Some(libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP) => Some(true),
        Some(libc::EINVAL) => Some(false),
        _ => None,
    }
}
