//! The datagram transport's send side on real sockets: the send queue and its water marks
//! (a Unix datagram socketpair whose other end does not read), close/abort with datagrams
//! queued, Unix datagram endpoints and their socket files, and a flood into a protocol that
//! respects `pause_writing`. (Round trips, errors, options: `transport_datagram.rs`.)

mod datagram_support;
mod support;

use datagram_support::*;

use std::cell::RefCell;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::Duration;

use tulip::socket2::SockAddr;
use tulip::{DatagramProtocol, DatagramTransport, net::DatagramOptions};

// ---- the send queue ------------------------------------------------------------------------

#[tulip::test]
async fn queued_datagrams_count_asyncio_overhead_pause_and_resume() {
    let _w = support::watchdog("dgram_queue_flow", 10);
    let log: Rc<RefCell<Log>> = Rc::default();
    let (t, peer) = queued_pair(&log).await;
    t.set_write_buffer_limits(Some(1000), Some(100)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (100, 1000));
    let first = fill(&t, 100);
    assert_eq!(
        t.get_write_buffer_size(),
        100 + 8,
        "each queued datagram counts 8 more"
    );
    for _ in 0..9 {
        t.sendto(&[0xee; 100], None).unwrap();
    }
    assert_eq!(t.get_write_buffer_size(), 10 * 108);
    assert_eq!(
        events(&log).last(),
        Some(&Ev::Pause),
        "over the high mark: paused at once"
    );
    // The peer reads: the queue drains (flushed in batches), and the protocol resumes.
    let mut got = Vec::new();
    assert!(
        until(5.0, || {
            got.extend(drain_peer(&peer));
            t.get_write_buffer_size() == 0
        })
        .await
    );
    tulip::sleep(Duration::from_millis(5)).await;
    got.extend(drain_peer(&peer));
    assert_eq!(got.len(), first + 9, "every datagram arrived, whole");
    assert!(got.iter().all(|d| d.len() == 100));
    assert_eq!(&events(&log)[1..], [Ev::Pause, Ev::Resume]);
    t.close();
    lost(&log).await;
}

#[tulip::test]
async fn close_sends_the_queue_then_connection_lost() {
    let _w = support::watchdog("dgram_close_queue", 10);
    let log: Rc<RefCell<Log>> = Rc::default();
    let (t, peer) = queued_pair(&log).await;
    let first = fill(&t, 1000);
    t.sendto(b"last", None).unwrap();
    t.close();
    assert!(t.is_closing());
    tulip::sleep(Duration::from_millis(20)).await;
    assert!(
        !events(&log).iter().any(|e| matches!(e, Ev::CL(_))),
        "waits for the queue"
    );
    let mut got = Vec::new();
    assert!(
        until(5.0, || {
            got.extend(drain_peer(&peer));
            events(&log).iter().any(|e| matches!(e, Ev::CL(_)))
        })
        .await
    );
    got.extend(drain_peer(&peer));
    assert_eq!(got.len(), first + 1);
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"last"[..]));
    assert_eq!(events(&log), [Ev::CM, Ev::CL(None)]);
}

#[tulip::test]
async fn abort_drops_the_queue() {
    let _w = support::watchdog("dgram_abort_queue", 10);
    let log: Rc<RefCell<Log>> = Rc::default();
    let (t, peer) = queued_pair(&log).await;
    let first = fill(&t, 1000);
    t.sendto(b"dropped", None).unwrap();
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(lost(&log).await, None);
    let got = drain_peer(&peer);
    assert_eq!(got.len(), first - 1, "the queued ones were dropped");
    assert_eq!(events(&log), [Ev::CM, Ev::CL(None)]);
}

// ---- Unix datagram endpoints ---------------------------------------------------------------

#[tulip::test]
async fn unix_datagram_round_trip_and_stale_socket_files() {
    let _w = support::watchdog("unix_dgram", 10);
    let dir = temp_dir("rt");
    let spath = dir.join("server.sock");
    let cpath = dir.join("client.sock");
    // A stale socket file from an earlier run is removed before the bind.
    drop(UnixDatagram::bind(&spath).unwrap());
    assert!(spath.exists());
    let slog = Rc::default();
    let (server, _) = tulip::create_datagram_endpoint(
        || Rec::echo(&slog),
        DatagramOptions::new().local_path(&spath),
    )
    .await
    .unwrap();
    let clog = Rc::default();
    let (client, _) = tulip::create_datagram_endpoint(
        || Rec::new(&clog),
        DatagramOptions::new()
            .local_path(&cpath)
            .remote_path(&spath),
    )
    .await
    .unwrap();
    let big = vec![7u8; 100_000]; // more than a UDP datagram can be
    client.sendto(b"unix", None).unwrap();
    client.sendto(b"", None).unwrap();
    client.sendto(&big, None).unwrap();
    assert!(
        until(5.0, || received(&clog).len() == 3).await,
        "{:?}",
        events(&slog)
    );
    assert_eq!(received(&clog), [b"unix".to_vec(), vec![], big]);
    let from = slog.borrow().from[0].clone();
    assert_eq!(from.as_pathname(), Some(cpath.as_path()));
    client.close();
    server.close();
    lost(&clog).await;
    lost(&slog).await;

    // A file that is not a socket is never removed: the bind fails.
    let plain = dir.join("plain");
    std::fs::write(&plain, b"keep me").unwrap();
    let log: Rc<RefCell<Log>> = Rc::default();
    let e = tulip::create_datagram_endpoint(
        || Rec::new(&log),
        DatagramOptions::new().local_path(&plain),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
    assert!(events(&log).is_empty(), "no protocol was made");
    std::fs::remove_dir_all(&dir).ok();
}

// ---- a flood into a protocol that respects pause_writing -----------------------------------

/// Forwards every datagram to `to` while writing is not paused; drops it while paused.
struct Forward {
    t: Option<DatagramTransport>,
    to: SockAddr,
    paused: bool,
    received: usize,
    dropped: usize,
    pauses: usize,
    max_queued: usize,
}

impl DatagramProtocol for Forward {
    fn connection_made(&mut self, t: &DatagramTransport) {
        t.set_write_buffer_limits(Some(16 * 1024), Some(4 * 1024))
            .unwrap();
        self.t = Some(t.clone());
    }
    fn datagram_received(&mut self, data: &[u8], _addr: &SockAddr) {
        self.received += 1;
        if self.paused {
            self.dropped += 1;
            return;
        }
        let t = self.t.as_ref().unwrap();
        t.sendto(data, Some(&self.to)).unwrap();
        self.max_queued = self.max_queued.max(t.get_write_buffer_size());
    }
    fn pause_writing(&mut self) {
        self.paused = true;
        self.pauses += 1;
    }
    fn resume_writing(&mut self) {
        self.paused = false;
    }
}

#[tulip::test]
async fn a_flood_into_a_protocol_that_pauses_writing_keeps_the_queue_bounded() {
    let _w = support::watchdog("dgram_flood_pause", 30);
    let dir = temp_dir("flood");
    let (spath, bpath) = (dir.join("server.sock"), dir.join("slow.sock"));
    // The forwarding target reads nothing until the end: the server's sends back up.
    let slow = UnixDatagram::bind(&bpath).unwrap();
    let (t, p) = tulip::create_datagram_endpoint(
        || Forward {
            t: None,
            to: SockAddr::unix(&bpath).unwrap(),
            paused: false,
            received: 0,
            dropped: 0,
            pauses: 0,
            max_queued: 0,
        },
        DatagramOptions::new().local_path(&spath),
    )
    .await
    .unwrap();
    const N: usize = 5000;
    const SIZE: usize = 1000;
    let sender = {
        let spath = spath.clone();
        std::thread::spawn(move || {
            let a = UnixDatagram::unbound().unwrap();
            for i in 0..N {
                a.send_to(&[i as u8; SIZE], &spath).unwrap(); // blocks while the server is behind
            }
        })
    };
    assert!(
        until(20.0, || p.with(|p| p.received) == N).await,
        "received {}",
        p.with(|p| p.received)
    );
    sender.join().unwrap();
    let (pauses, dropped, max_queued) = p.with(|p| (p.pauses, p.dropped, p.max_queued));
    assert!(pauses >= 1, "the queue went over the high-water mark");
    assert!(dropped > 0, "datagrams were dropped while paused");
    assert!(
        max_queued <= 16 * 1024 + SIZE + 8,
        "the queue stayed under high + one datagram: {max_queued}"
    );
    assert!(t.get_write_buffer_size() <= 16 * 1024 + SIZE + 8);
    // The target reads: the queue drains, writing resumes.
    let mut forwarded = 0;
    assert!(
        until(10.0, || {
            forwarded += drain_peer(&slow).len();
            t.get_write_buffer_size() == 0
        })
        .await
    );
    assert!(!p.with(|p| p.paused), "resumed");
    tulip::sleep(Duration::from_millis(5)).await;
    forwarded += drain_peer(&slow).len();
    assert_eq!(
        forwarded + dropped,
        N,
        "each datagram forwarded or dropped, none lost"
    );
    t.close();
    std::fs::remove_dir_all(&dir).ok();
}
