//! `DatagramTransport::sendto_segments`: one buffer sent as datagrams of one segment size
//! (UDP GSO on Linux, one `sendto` per segment elsewhere). Each datagram must arrive whole, in
//! order, with the last one shorter — to a plain socket, and to a tulip endpoint with GRO on
//! (which gets them coalesced and splits them back).

mod support;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use tulip::net::DatagramOptions;
use tulip::socket2::{SockAddr, SockRef};
use tulip::{DatagramProtocol, DatagramTransport};

/// Records what it receives, and the errors.
#[derive(Default, Clone)]
struct Rec {
    got: Rc<RefCell<Vec<Vec<u8>>>>,
    errors: Rc<RefCell<Vec<io::ErrorKind>>>,
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, _t: &DatagramTransport) {}
    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        self.got.borrow_mut().push(data.to_vec());
    }
    fn error_received(&mut self, exc: io::Error) {
        self.errors.borrow_mut().push(exc.kind());
    }
}

/// `count` datagrams of `segment` bytes and a last one of `tail` bytes (0: none), each
/// filled with its own byte, and the buffer they make together.
fn segments(segment: usize, count: usize, tail: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut want: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8; segment]).collect();
    if tail > 0 {
        want.push(vec![0xEE; tail]);
    }
    let buf = want.concat();
    (want, buf)
}

/// A plain socket that a thread reads `n` datagrams from (or until 10 s pass).
fn receiver(n: usize) -> io::Result<(SocketAddr, thread::JoinHandle<Vec<Vec<u8>>>)> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    SockRef::from(&rx).set_recv_buffer_size(4 << 20)?;
    rx.set_read_timeout(Some(Duration::from_millis(200)))?;
    let addr = rx.local_addr()?;
    let h = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let end = Instant::now() + Duration::from_secs(10);
        while got.len() < n && Instant::now() < end {
            if let Ok(len) = rx.recv(&mut buf) {
                got.push(buf[..len].to_vec());
            }
        }
        got
    });
    Ok((addr, h))
}

async fn sender(to: Option<SocketAddr>) -> io::Result<(DatagramTransport, Rec)> {
    let rec = Rec::default();
    let r = rec.clone();
    let opts = match to {
        Some(a) => DatagramOptions::new().remote_addr("127.0.0.1", a.port()),
        None => DatagramOptions::new().local_addr("127.0.0.1", 0),
    };
    let (t, _) = tulip::create_datagram_endpoint(move || r, opts).await?;
    Ok((t, rec))
}

#[tulip::test]
async fn segments_arrive_as_separate_datagrams_in_order() -> io::Result<()> {
    let _w = support::watchdog("gso_in_order", 30);
    let (want, buf) = segments(1000, 10, 500);
    let (addr, h) = receiver(want.len())?;
    let (t, rec) = sender(Some(addr)).await?;
    t.sendto_segments(&buf, 1000, None)?;
    let got = h.join().expect("receiver");
    assert_eq!(
        got, want,
        "11 datagrams: ten of 1000 bytes and one of 500, in order"
    );
    assert!(rec.errors.borrow().is_empty(), "{:?}", rec.errors.borrow());
    t.close();
    Ok(())
}

#[tulip::test]
async fn more_segments_than_one_gso_send_takes() -> io::Result<()> {
    let _w = support::watchdog("gso_many", 30);
    // 200 segments (over the 64 a GSO send carries), then 100 of 1,400 bytes (over the
    // 65,507 bytes one send carries: 46 per send), each exactly divided.
    for (segment, count) in [(100, 200), (1400, 100)] {
        let (want, buf) = segments(segment, count, 0);
        let (addr, h) = receiver(want.len())?;
        let (t, rec) = sender(Some(addr)).await?;
        t.sendto_segments(&buf, segment, None)?;
        let got = h.join().expect("receiver");
        assert_eq!(
            got.len(),
            count,
            "segment {segment}: every datagram arrived"
        );
        assert!(got == want, "segment {segment}: each whole and in order");
        assert!(rec.errors.borrow().is_empty(), "{:?}", rec.errors.borrow());
        t.close();
    }
    Ok(())
}

#[tulip::test]
async fn data_no_longer_than_a_segment_is_one_datagram() -> io::Result<()> {
    let _w = support::watchdog("gso_one", 30);
    let (addr, h) = receiver(3)?;
    let (t, _) = sender(Some(addr)).await?;
    t.sendto_segments(b"", 100, None)?;
    t.sendto_segments(&[1u8; 99], 100, None)?;
    t.sendto_segments(&[2u8; 100], 100, None)?;
    let got = h.join().expect("receiver");
    assert_eq!(got, [vec![], vec![1u8; 99], vec![2u8; 100]]);
    t.close();
    Ok(())
}

#[tulip::test]
async fn misuse_is_refused_with_invalid_input() -> io::Result<()> {
    let (t, _) = sender(None).await?;
    let e = t.sendto_segments(&[0u8; 10], 0, None).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("segment size"), "{e}");
    // Unconnected: an address is required, as for sendto.
    let e = t.sendto_segments(&[0u8; 10], 5, None).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    t.close();
    let other = UdpSocket::bind("127.0.0.1:0")?;
    let (c, _) = sender(Some(other.local_addr()?)).await?;
    // Connected: only the peer's address.
    let stranger: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let e = c
        .sendto_segments(&[0u8; 10], 5, Some(&SockAddr::from(stranger)))
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    c.close();
    Ok(())
}

/// tulip to tulip, the receiver with GRO on: the kernel may hand it the GSO sends coalesced;
/// the protocol still sees one `datagram_received` per segment.
#[cfg(target_os = "linux")]
#[tulip::test]
async fn a_gro_endpoint_gets_tulips_segments_one_by_one() -> io::Result<()> {
    let _w = support::watchdog("gso_to_gro", 30);
    let rec = Rec::default();
    let r = rec.clone();
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0).gro(true);
    let (rx, _) = tulip::create_datagram_endpoint(move || r, opts).await?;
    let to = rx.sockname().and_then(|a| a.as_socket()).expect("bound");
    let (tx, _) = sender(Some(to)).await?;
    let mut want = Vec::new();
    for round in 0..10 {
        let (w, buf) = segments(200 + 50 * round, 5 + round, 7 * round);
        tx.sendto_segments(&buf, 200 + 50 * round, None)?;
        want.extend(w);
        // One round at a time, so the receive queue never overflows on a loaded machine.
        let end = Instant::now() + Duration::from_secs(5);
        while rec.got.borrow().len() < want.len() && Instant::now() < end {
            tulip::sleep(Duration::from_millis(1)).await;
        }
    }
    assert!(*rec.got.borrow() == want, "each segment whole, in order");
    tx.close();
    rx.close();
    Ok(())
}
