//! UDP GRO (`DatagramOptions::gro`, Linux): a sender using UDP GSO (`UDP_SEGMENT`) sends
//! many datagrams in one call; on loopback a receiver with `UDP_GRO` on gets them as one
//! buffer with its segment size, and the endpoint must hand them to the protocol one by one,
//! with their boundaries, in order, among plain datagrams — as an endpoint without GRO does
//! (the kernel splits them there).
#![cfg(target_os = "linux")]

mod support;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::net::DatagramOptions;
use tulip::socket2::SockAddr;
use tulip::{DatagramProtocol, DatagramTransport};

/// Sends `data` as datagrams of `segment` bytes (the last one shorter) in one `sendmsg`
/// with a `UDP_SEGMENT` control message, on a connected socket.
fn send_gso(sock: &UdpSocket, data: &[u8], segment: u16) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
    // SAFETY: the control buffer (32 bytes) holds one message of CMSG_SPACE(2) bytes;
    // CMSG_FIRSTHDR points at its start, CMSG_DATA inside it; `msg` points at `iov` and
    // `control`, which outlive the `sendmsg`.
    let r = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        libc::CMSG_DATA(c).cast::<u16>().write_unaligned(segment);
        libc::sendmsg(sock.as_raw_fd(), &msg, 0)
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    assert_eq!(r as usize, data.len());
    Ok(())
}

/// Whether this kernel hands a GSO burst to a `UDP_GRO` socket on loopback coalesced (the
/// path the endpoint must split): probed with plain sockets.
fn kernel_coalesces() -> io::Result<bool> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid int for the call.
    let r = unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            std::ptr::from_ref(&on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(rx.local_addr()?)?;
    send_gso(&tx, &[7u8; 1000], 100)?;
    rx.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 2000];
    let n = rx.recv(&mut buf)?;
    Ok(n == 1000)
}

struct Rec {
    got: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, _t: &DatagramTransport) {}
    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        self.got.borrow_mut().push(data.to_vec());
    }
}

/// Bursts of GSO datagrams and plain ones into an endpoint (with or without GRO); returns
/// what it received, and checks it against what was sent.
async fn bursts_arrive_one_by_one(gro: bool) -> io::Result<()> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g2 = got.clone();
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0).gro(gro);
    let (t, _) = tulip::create_datagram_endpoint(move || Rec { got: g2 }, opts).await?;
    let to: SocketAddr = t.sockname().and_then(|a| a.as_socket()).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(to)?;
    let mut want: Vec<Vec<u8>> = Vec::new();
    let mut k = 0u8;
    for round in 0..20u16 {
        // A GSO burst: `count` datagrams of `seg` bytes and a shorter last one.
        let (seg, count) = (64 + 37 * round as usize, 3 + (round as usize % 12));
        let mut burst = Vec::new();
        for j in 0..=count {
            let len = if j == count { seg / 3 + 1 } else { seg };
            let d = vec![k; len];
            k = k.wrapping_add(1);
            burst.extend_from_slice(&d);
            want.push(d);
        }
        send_gso(&tx, &burst, seg as u16)?;
        // A plain datagram between bursts.
        let d = vec![k; 10 + round as usize];
        k = k.wrapping_add(1);
        tx.send(&d)?;
        want.push(d);
        // Without GRO the kernel splits each burst on receipt, and dropped some when 20
        // bursts piled up in the receive queue (Linux 6.18): one round at a time there.
        // With GRO all are sent at once (several coalesced ones per receive batch).
        let end = Instant::now() + Duration::from_secs(5);
        while (!gro || round == 19) && got.borrow().len() < want.len() && Instant::now() < end {
            tulip::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = got.borrow();
    let lens = |v: &[Vec<u8>]| {
        v.iter()
            .map(|d| (d.len(), d.first().copied()))
            .collect::<Vec<_>>()
    };
    assert!(
        *got == want,
        "gro = {gro}: each datagram whole, in order; got {} datagrams, {:?}, want {}, {:?}",
        got.len(),
        lens(&got),
        want.len(),
        lens(&want)
    );
    drop(got);
    t.close();
    Ok(())
}

#[tulip::test]
async fn gso_bursts_reach_a_gro_endpoint_one_datagram_each() -> io::Result<()> {
    let _w = support::watchdog("udp_gro", 20);
    match kernel_coalesces() {
        Ok(c) => eprintln!("kernel coalesces GSO bursts for UDP_GRO sockets: {c}"),
        Err(e) => {
            eprintln!("skipped: no UDP GSO/GRO here ({e})");
            return Ok(());
        }
    }
    bursts_arrive_one_by_one(true).await?;
    bursts_arrive_one_by_one(false).await
}

#[tulip::test]
async fn gro_is_refused_for_unix_endpoints() {
    let dir = std::env::temp_dir().join(format!("tulip-gro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = DatagramOptions::new()
        .local_path(dir.join("s.sock"))
        .gro(true);
    let e = tulip::create_datagram_endpoint(|| Rec { got: Rc::default() }, opts)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("gro"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
