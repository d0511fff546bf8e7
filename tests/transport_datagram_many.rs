//! 10,000 UDP datagrams of random sizes up to the largest IPv4 UDP payload (65,507 bytes),
//! echoed on loopback and each checked on arrival: its sequence number and length (in its
//! header) and every byte of its body against what was sent.
//!
//! The client keeps a window of datagrams outstanding, sized from the sockets' receive
//! buffers, so that loopback does not drop any; should one be lost all the same (a smaller
//! `rmem_max` than measured, a busy machine), it is sent again after a timeout, and the
//! test asserts each datagram arrived, intact, exactly once among the unique ones.
//!
//! And a burst larger than one receive batch, closed from `datagram_received` in the middle
//! of a later batch: nothing is delivered after the close.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::net::DatagramOptions;
use tulip::socket2::{Domain, SockAddr, Socket, Type};
use tulip::{DatagramProtocol, DatagramTransport};

/// The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
const MAX_UDP: usize = 65_507;
const N: u32 = 10_000;
/// Sequence number and length, little-endian, before the body.
const HEADER: usize = 8;
/// When an outstanding datagram is sent again.
const RESEND: Duration = Duration::from_millis(100);

/// Echoes every datagram to its sender (and keeps nothing).
struct Echo(Option<DatagramTransport>);

impl DatagramProtocol for Echo {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.0 = Some(t.clone());
    }
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        let t = self.0.as_ref().expect("connection_made first");
        t.sendto(data, Some(addr)).expect("echo");
    }
}

/// The client's state: what was sent, what came back.
struct State {
    /// Random bytes; datagram `i`'s body is a slice of it starting at `offset(i)`.
    pool: Vec<u8>,
    /// Each datagram's length, drawn up front.
    lens: Vec<usize>,
    window: u32,
    /// Next sequence number to send.
    next: u32,
    seen: Vec<bool>,
    unique: u32,
    duplicates: u32,
    in_order: bool,
    last: Option<u32>,
    bytes: usize,
    resent: u32,
    /// The first bad datagram, if any.
    bad: Option<String>,
    t: Option<DatagramTransport>,
}

fn offset(i: u32) -> usize {
    (i as usize).wrapping_mul(40_503) % (64 * 1024)
}

impl State {
    fn datagram(&self, i: u32) -> Vec<u8> {
        let len = self.lens[i as usize];
        let mut d = Vec::with_capacity(len);
        d.extend_from_slice(&i.to_le_bytes());
        d.extend_from_slice(&(len as u32).to_le_bytes());
        d.extend_from_slice(&self.pool[offset(i)..][..len - HEADER]);
        d
    }

    /// Sends while fewer than `window` datagrams are outstanding.
    fn pump(&mut self) {
        let Some(t) = self.t.clone() else { return };
        while self.next < N && self.next - self.unique < self.window {
            t.sendto(&self.datagram(self.next), None).expect("sendto");
            self.next += 1;
        }
    }

    /// Sends every outstanding datagram again.
    fn resend(&mut self) {
        let Some(t) = self.t.clone() else { return };
        for i in self.next.saturating_sub(self.window)..self.next {
            if !self.seen[i as usize] {
                t.sendto(&self.datagram(i), None).expect("sendto");
                self.resent += 1;
            }
        }
    }

    fn check(&self, data: &[u8]) -> Result<u32, String> {
        if data.len() < HEADER {
            return Err(format!("a datagram of {} B: no header", data.len()));
        }
        let i = u32::from_le_bytes(data[..4].try_into().unwrap());
        let len = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
        if i >= N || len != data.len() || self.lens[i as usize] != len {
            return Err(format!("datagram {i}: {} B, header says {len}", data.len()));
        }
        if data[HEADER..] != self.pool[offset(i)..][..len - HEADER] {
            return Err(format!("datagram {i} ({len} B): body differs"));
        }
        Ok(i)
    }
}

struct Client(Rc<RefCell<State>>);

impl DatagramProtocol for Client {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.0.borrow_mut().t = Some(t.clone());
    }
    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        let mut st = self.0.borrow_mut();
        match st.check(data) {
            Ok(i) if st.seen[i as usize] => st.duplicates += 1,
            Ok(i) => {
                st.seen[i as usize] = true;
                st.unique += 1;
                st.bytes += data.len();
                if st.last.is_some_and(|l| l + 1 != i) {
                    st.in_order = false;
                }
                st.last = Some(i);
                st.pump();
            }
            Err(e) => {
                st.bad.get_or_insert(e);
            }
        }
    }
}

/// A UDP socket on 127.0.0.1 with a receive buffer of up to 4 MiB (as `rmem_max` allows).
fn socket() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    s.set_nonblocking(true).unwrap();
    s.set_recv_buffer_size(4 << 20).unwrap();
    s.set_send_buffer_size(4 << 20).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s
}

#[tulip::test]
async fn ten_thousand_datagrams_of_random_sizes_up_to_64_kib_are_echoed_intact() {
    let _w = support::watchdog("udp_ten_thousand", 120);
    let ssock = socket();
    let csock = socket();
    // What a receive queue holds: the kernel reports twice the size set; a 64 KiB datagram
    // takes about 70 KiB of it on loopback. Two queues in a row (the server's, the client's).
    let rcvbuf = ssock
        .recv_buffer_size()
        .unwrap()
        .min(csock.recv_buffer_size().unwrap());
    let window = (rcvbuf / (2 * 70 * 1024)).clamp(1, 8) as u32;
    let saddr = ssock.local_addr().unwrap();
    csock.connect(&saddr).unwrap();
    let (server, _) =
        tulip::create_datagram_endpoint(|| Echo(None), DatagramOptions::new().sock(ssock))
            .await
            .unwrap();

    // xorshift: the pool's bytes and the lengths, HEADER..=MAX_UDP.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pool: Vec<u8> = (0..(128 * 1024) / 8)
        .flat_map(|_| rand().to_le_bytes())
        .collect();
    let lens: Vec<usize> = (0..N)
        .map(|_| HEADER + (rand() % (MAX_UDP - HEADER + 1) as u64) as usize)
        .collect();
    assert!(lens.iter().any(|&l| l > 64_000), "some near the limit");
    let st = Rc::new(RefCell::new(State {
        pool,
        lens,
        window,
        next: 0,
        seen: vec![false; N as usize],
        unique: 0,
        duplicates: 0,
        in_order: true,
        last: None,
        bytes: 0,
        resent: 0,
        bad: None,
        t: None,
    }));
    let st2 = st.clone();
    let (client, _) =
        tulip::create_datagram_endpoint(move || Client(st2), DatagramOptions::new().sock(csock))
            .await
            .unwrap();

    let started = Instant::now();
    st.borrow_mut().pump();
    let (mut progress, mut at) = (0, Instant::now());
    loop {
        tulip::sleep(Duration::from_millis(2)).await;
        let mut s = st.borrow_mut();
        if let Some(bad) = &s.bad {
            panic!("{bad}");
        }
        if s.unique == N {
            break;
        }
        if s.unique != progress {
            (progress, at) = (s.unique, Instant::now());
        } else if at.elapsed() > RESEND {
            assert!(
                s.resent < N / 10,
                "loopback keeps dropping: {} resent",
                s.resent
            );
            s.resend();
            at = Instant::now();
        }
    }
    {
        let s = st.borrow();
        let expected: usize = s.lens.iter().sum();
        assert_eq!(s.bytes, expected, "every byte came back once");
        assert!(s.seen.iter().all(|&x| x));
        if s.resent == 0 {
            assert!(s.in_order, "no loss: in the order sent");
            assert_eq!(s.duplicates, 0);
        }
        eprintln!(
            "{N} datagrams ({} MB) echoed in {:.2} s, window {window}, {} resent",
            expected / 1_000_000,
            started.elapsed().as_secs_f64(),
            s.resent
        );
    }
    client.close();
    server.close();
    tulip::sleep(Duration::from_millis(1)).await;
}

/// Closes its endpoint on datagram number `close_at`; records what it is told.
struct CloseAt {
    t: Option<DatagramTransport>,
    close_at: usize,
    got: Rc<RefCell<(Vec<u8>, usize)>>,
}

impl DatagramProtocol for CloseAt {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.t = Some(t.clone());
    }
    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        let mut got = self.got.borrow_mut();
        assert_eq!(got.1, 0, "a datagram after connection_lost");
        got.0.push(data[0]);
        if got.0.len() == self.close_at {
            self.t.as_ref().unwrap().close();
        }
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        assert!(exc.is_none());
        self.got.borrow_mut().1 += 1;
    }
}

#[tulip::test]
async fn a_burst_closed_from_datagram_received_in_a_later_batch_stops_there() {
    let _w = support::watchdog("udp_burst_close", 10);
    let got = Rc::new(RefCell::new((Vec::new(), 0)));
    let g2 = got.clone();
    let opts = DatagramOptions::new().local_addr("127.0.0.1", 0);
    // 20: in the second batch of a read (batches of 16), which is taken in the same turn.
    let (t, _) = tulip::create_datagram_endpoint(
        move || CloseAt {
            t: None,
            close_at: 20,
            got: g2,
        },
        opts,
    )
    .await
    .unwrap();
    let saddr = t.sockname().and_then(|a| a.as_socket()).unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..100u8 {
        peer.send_to(&[i; 32], saddr).unwrap(); // all queued before the loop reads
    }
    let end = Instant::now() + Duration::from_secs(5);
    while got.borrow().1 == 0 && Instant::now() < end {
        tulip::sleep(Duration::from_millis(1)).await;
    }
    tulip::sleep(Duration::from_millis(10)).await;
    let got = got.borrow();
    assert_eq!(got.1, 1, "connection_lost exactly once");
    assert_eq!(
        got.0,
        (0..20).collect::<Vec<u8>>(),
        "in order, none after close"
    );
}
