//! Shared by the datagram transport tests: a recording `DatagramProtocol`, waits, and the
//! Unix socketpair whose other end does not read (for the send queue).
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::socket2::{SockAddr, Socket};
use tulip::{DatagramProtocol, DatagramTransport, net::DatagramOptions};

// ---- a recording protocol -----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    CM,
    DR(Vec<u8>),
    ER(io::ErrorKind),
    CL(Option<io::ErrorKind>),
    Pause,
    Resume,
}

#[derive(Default)]
pub(crate) struct Log {
    pub(crate) events: Vec<Ev>,
    pub(crate) from: Vec<SockAddr>,
}

/// Which callback panics.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanicIn {
    Nowhere,
    ConnectionMade,
    DatagramReceived,
    ErrorReceived,
    PauseWriting,
    ResumeWriting,
    ConnectionLost,
}

pub(crate) struct Rec {
    pub(crate) log: Rc<RefCell<Log>>,
    pub(crate) t: Option<DatagramTransport>,
    pub(crate) echo: bool,
    pub(crate) panic_in: PanicIn,
}

impl Rec {
    pub(crate) fn new(log: &Rc<RefCell<Log>>) -> Rec {
        Rec {
            log: log.clone(),
            t: None,
            echo: false,
            panic_in: PanicIn::Nowhere,
        }
    }
    pub(crate) fn echo(log: &Rc<RefCell<Log>>) -> Rec {
        Rec {
            echo: true,
            ..Rec::new(log)
        }
    }
    pub(crate) fn push(&self, e: Ev) {
        self.log.borrow_mut().events.push(e);
    }
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.t = Some(t.clone());
        self.push(Ev::CM);
        assert!(
            self.panic_in != PanicIn::ConnectionMade,
            "boom in connection_made"
        );
    }
    fn datagram_received(&mut self, data: &[u8], addr: &SockAddr) {
        self.push(Ev::DR(data.to_vec()));
        self.log.borrow_mut().from.push(addr.clone());
        assert!(
            self.panic_in != PanicIn::DatagramReceived,
            "boom in datagram_received"
        );
        if self.echo {
            let t = self.t.as_ref().expect("connection_made first");
            t.sendto(data, Some(addr)).expect("echo");
        }
    }
    fn error_received(&mut self, exc: io::Error) {
        self.push(Ev::ER(exc.kind()));
        assert!(
            self.panic_in != PanicIn::ErrorReceived,
            "boom in error_received"
        );
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.push(Ev::CL(exc.map(|e| e.kind())));
        assert!(
            self.panic_in != PanicIn::ConnectionLost,
            "boom in connection_lost"
        );
    }
    fn pause_writing(&mut self) {
        self.push(Ev::Pause);
        assert!(
            self.panic_in != PanicIn::PauseWriting,
            "boom in pause_writing"
        );
    }
    fn resume_writing(&mut self) {
        self.push(Ev::Resume);
        assert!(
            self.panic_in != PanicIn::ResumeWriting,
            "boom in resume_writing"
        );
    }
}

/// `CM [DR | ER | Pause | Resume]* CL`, CL exactly once (if the endpoint is closed).
pub(crate) fn assert_order(ev: &[Ev], closed: bool) {
    assert_eq!(ev.first(), Some(&Ev::CM), "{ev:?}");
    let cls = ev.iter().filter(|e| matches!(e, Ev::CL(_))).count();
    assert_eq!(cls, usize::from(closed), "{ev:?}");
    if closed {
        assert!(matches!(ev.last(), Some(Ev::CL(_))), "{ev:?}");
    }
    assert_eq!(ev.iter().filter(|e| **e == Ev::CM).count(), 1, "{ev:?}");
}

pub(crate) fn events(log: &Rc<RefCell<Log>>) -> Vec<Ev> {
    log.borrow().events.clone()
}

pub(crate) fn count_dr(log: &Rc<RefCell<Log>>) -> usize {
    log.borrow()
        .events
        .iter()
        .filter(|e| matches!(e, Ev::DR(_)))
        .count()
}

pub(crate) fn received(log: &Rc<RefCell<Log>>) -> Vec<Vec<u8>> {
    log.borrow()
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::DR(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// Waits (yielding to the loop) until `f` holds, for at most `secs`.
pub(crate) async fn until(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut spins = 0u32;
    while !f() {
        if Instant::now() > end {
            return false;
        }
        // A few turns of the loop first (a loopback echo is quicker than a timer), then sleep.
        spins += 1;
        if spins < 200 {
            tulip::yield_now().await;
        } else {
            tulip::sleep(Duration::from_millis(1)).await;
        }
    }
    true
}

pub(crate) async fn lost(log: &Rc<RefCell<Log>>) -> Option<io::ErrorKind> {
    assert!(
        until(5.0, || events(log).iter().any(|e| matches!(e, Ev::CL(_)))).await,
        "no connection_lost: {:?}",
        events(log)
    );
    events(log).iter().find_map(|e| match e {
        Ev::CL(k) => Some(*k),
        _ => None,
    })?
}

pub(crate) fn addr_of(t: &DatagramTransport) -> SocketAddr {
    t.sockname()
        .and_then(|a| a.as_socket())
        .expect("an IP sockname")
}

pub(crate) async fn echo_server(
    log: &Rc<RefCell<Log>>,
    host: &str,
) -> io::Result<DatagramTransport> {
    let opts = DatagramOptions::new().local_addr(host, 0);
    let (t, _) = tulip::create_datagram_endpoint(|| Rec::echo(log), opts).await?;
    Ok(t)
}

// ---- the send queue (a Unix datagram socketpair whose other end does not read) -------------

/// An endpoint on one end of a Unix datagram socketpair, and the other end.
pub(crate) async fn queued_pair(log: &Rc<RefCell<Log>>) -> (DatagramTransport, UnixDatagram) {
    let (a, b) = UnixDatagram::pair().unwrap();
    let opts = DatagramOptions::new().sock(Socket::from(std::os::fd::OwnedFd::from(a)));
    let (t, _) = tulip::create_datagram_endpoint(|| Rec::new(log), opts)
        .await
        .unwrap();
    (t, b)
}

/// Sends until the socket pushes back and datagrams queue; returns how many were sent.
pub(crate) fn fill(t: &DatagramTransport, size: usize) -> usize {
    let mut n = 0;
    while t.get_write_buffer_size() == 0 && !t.is_closing() {
        t.sendto(&vec![n as u8; size], None).unwrap();
        n += 1;
        assert!(n < 100_000, "the socket never pushed back");
    }
    n
}

pub(crate) fn drain_peer(peer: &UnixDatagram) -> Vec<Vec<u8>> {
    peer.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Ok(n) = peer.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tulip-dgram-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}
