//! Helpers for the protocol, transport and server tests: protocols that record every
//! callback in a log, call-order checkers, a seeded byte stream with a checksum, peers, and
//! a runner for tests that must happen in a child process.
#![allow(dead_code, unreachable_pub)]

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tulip::{BufferedProtocol, LoopFuture, Protocol, Transport, transports::ExtraInfo};

// ---- the log ----------------------------------------------------------------------------

/// One protocol callback, as the log records it.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// `connection_made`
    CM,
    /// `data_received(n bytes)`
    DR(usize),
    /// `eof_received`
    ER,
    /// `connection_lost(kind of the error, if any)`
    CL(Option<io::ErrorKind>),
    /// `pause_writing`
    PW,
    /// `resume_writing`
    RW,
    /// `get_buffer`
    GB,
    /// `buffer_updated(n)`
    BU(usize),
}

pub(crate) type Log = Rc<RefCell<Vec<Event>>>;

/// What a test keeps of a protocol: its log, what it received, its transport, and futures
/// completed by its callbacks. Clones share everything.
#[derive(Clone)]
pub(crate) struct Probe {
    pub(crate) log: Log,
    pub(crate) data: Rc<RefCell<Vec<u8>>>,
    pub(crate) transport: Rc<RefCell<Option<Transport>>>,
    /// Completed by `connection_lost`.
    pub(crate) lost: LoopFuture<()>,
    /// Whether the protocol is paused (between `pause_writing` and `resume_writing`).
    pub(crate) paused: Rc<Cell<bool>>,
    /// Completed by the next `resume_writing`.
    resume: Rc<RefCell<Vec<LoopFuture<()>>>>,
    /// Write-buffer size seen inside `pause_writing` / `resume_writing`.
    pub(crate) flow_sizes: Rc<RefCell<Vec<(bool, usize)>>>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

impl Probe {
    /// A new probe on the running loop.
    pub(crate) fn new() -> Probe {
        let lp = tulip::get_running_loop();
        Probe {
            log: Rc::default(),
            data: Rc::default(),
            transport: Rc::default(),
            lost: lp.create_future(),
            paused: Rc::default(),
            resume: Rc::default(),
            flow_sizes: Rc::default(),
        }
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.log.borrow().clone()
    }

    pub(crate) fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.log.borrow().iter().filter(|e| pred(e)).count()
    }

    pub(crate) fn count_cl(&self) -> usize {
        self.count(|e| matches!(e, Event::CL(_)))
    }

    pub(crate) fn received(&self) -> Vec<u8> {
        self.data.borrow().clone()
    }

    pub(crate) fn received_len(&self) -> usize {
        self.data.borrow().len()
    }

    /// The transport `connection_made` got.
    pub(crate) fn transport(&self) -> Transport {
        self.transport
            .borrow()
            .clone()
            .expect("connection_made has not run")
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.done()
    }

    /// Waits (at most `secs`) for `connection_lost`; returns the error kind it got.
    pub(crate) async fn wait_lost(&self, secs: f64) -> Option<io::ErrorKind> {
        if !self.lost.done() {
            // A second awaiter of a done future gets a "taken" error: done all the same.
            let _ = tulip::timeout(Duration::from_secs_f64(secs), self.lost.clone())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "connection_lost not called within {secs} s; events {:?}",
                        self.events()
                    )
                });
        }
        self.lost_kind().expect("CL in the log")
    }

    /// The kind `connection_lost` got, if it ran.
    pub(crate) fn lost_kind(&self) -> Option<Option<io::ErrorKind>> {
        self.log.borrow().iter().find_map(|e| match e {
            Event::CL(k) => Some(*k),
            _ => None,
        })
    }

    /// Waits (at most `secs`) until `pred` holds, checking every millisecond.
    pub(crate) async fn wait_for(
        &self,
        secs: f64,
        what: &str,
        mut pred: impl FnMut(&Probe) -> bool,
    ) {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        while !pred(self) {
            assert!(
                Instant::now() < until,
                "timed out after {secs} s waiting for {what}; events {:?}",
                self.events()
            );
            tulip::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits until `n` bytes have arrived.
    pub(crate) async fn wait_bytes(&self, n: usize, secs: f64) {
        self.wait_for(secs, &format!("{n} bytes"), |p| p.received_len() >= n)
            .await;
    }

    /// Waits (at most `secs`) for `resume_writing` if the protocol is paused.
    pub(crate) async fn wait_resumed(&self, secs: f64) {
        if !self.paused.get() {
            return;
        }
        let f = tulip::get_running_loop().create_future::<()>();
        self.resume.borrow_mut().push(f.clone());
        tulip::timeout(Duration::from_secs_f64(secs), f)
            .await
            .unwrap_or_else(|_| panic!("resume_writing not called within {secs} s"))
            .unwrap();
    }

    fn record(&self, e: Event) {
        self.log.borrow_mut().push(e);
    }

    fn made(&self, t: &Transport) {
        self.record(Event::CM);
        *self.transport.borrow_mut() = Some(t.clone());
    }

    fn on_lost(&self, exc: Option<io::Error>) {
        self.record(Event::CL(exc.map(|e| e.kind())));
        if !self.lost.done() {
            self.lost.set_result(());
        }
    }

    fn on_pause(&self) {
        self.record(Event::PW);
        self.paused.set(true);
        let size = self
            .transport
            .borrow()
            .as_ref()
            .map(Transport::get_write_buffer_size);
        self.flow_sizes.borrow_mut().push((true, size.unwrap_or(0)));
    }

    fn on_resume(&self) {
        self.record(Event::RW);
        self.paused.set(false);
        let size = self
            .transport
            .borrow()
            .as_ref()
            .map(Transport::get_write_buffer_size);
        self.flow_sizes
            .borrow_mut()
            .push((false, size.unwrap_or(0)));
        for f in self.resume.borrow_mut().drain(..) {
            f.set_result(());
        }
    }
}

type DataHook = Box<dyn FnMut(&Transport, &[u8])>;
type EofHook = Box<dyn FnMut(&Transport) -> bool>;
type MadeHook = Box<dyn FnMut(&Transport)>;
type ResumeHook = Box<dyn FnMut(&Transport)>;

/// A `Protocol` that records every callback into its [`Probe`]; what it does besides is
/// set with the builder methods.
pub(crate) struct Rec {
    pub(crate) probe: Probe,
    on_made: Option<MadeHook>,
    on_data: Option<DataHook>,
    on_eof: Option<EofHook>,
    on_resume: Option<ResumeHook>,
    keep_open: bool,
    echo: bool,
    panic_on_data: Option<&'static str>,
}

impl Rec {
    pub(crate) fn new(probe: &Probe) -> Rec {
        Rec {
            probe: probe.clone(),
            on_made: None,
            on_data: None,
            on_eof: None,
            on_resume: None,
            keep_open: false,
            echo: false,
            panic_on_data: None,
        }
    }

    /// Writes back whatever arrives.
    pub(crate) fn echo(mut self) -> Rec {
        self.echo = true;
        self
    }

    /// `eof_received` returns `keep`.
    pub(crate) fn keep_open(mut self, keep: bool) -> Rec {
        self.keep_open = keep;
        self
    }

    /// `data_received` panics with `msg` (after recording the call).
    pub(crate) fn panic_on_data(mut self, msg: &'static str) -> Rec {
        self.panic_on_data = Some(msg);
        self
    }

    pub(crate) fn on_made(mut self, f: impl FnMut(&Transport) + 'static) -> Rec {
        self.on_made = Some(Box::new(f));
        self
    }

    pub(crate) fn on_data(mut self, f: impl FnMut(&Transport, &[u8]) + 'static) -> Rec {
        self.on_data = Some(Box::new(f));
        self
    }

    /// `resume_writing` runs `f` (after recording the call).
    pub(crate) fn on_resume(mut self, f: impl FnMut(&Transport) + 'static) -> Rec {
        self.on_resume = Some(Box::new(f));
        self
    }

    /// `eof_received` runs `f` and returns what it returns.
    pub(crate) fn on_eof(mut self, f: impl FnMut(&Transport) -> bool + 'static) -> Rec {
        self.on_eof = Some(Box::new(f));
        self
    }
}

impl Protocol for Rec {
    fn connection_made(&mut self, transport: &Transport) {
        self.probe.made(transport);
        if let Some(f) = &mut self.on_made {
            f(transport);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.probe.record(Event::DR(data.len()));
        self.probe.data.borrow_mut().extend_from_slice(data);
        if let Some(msg) = self.panic_on_data {
            panic!("{msg}");
        }
        // A protocol installed with `set_protocol` never had `connection_made`.
        let Some(t) = self.probe.transport.borrow().clone() else {
            return;
        };
        if self.echo {
            t.write(data);
        }
        if let Some(f) = &mut self.on_data {
            f(&t, data);
        }
    }

    fn eof_received(&mut self) -> bool {
        self.probe.record(Event::ER);
        let t = self.probe.transport.borrow().clone();
        match (&mut self.on_eof, t) {
            (Some(f), Some(t)) => f(&t),
            _ => self.keep_open,
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.probe.on_lost(exc);
    }

    fn pause_writing(&mut self) {
        self.probe.on_pause();
    }

    fn resume_writing(&mut self) {
        self.probe.on_resume();
        let t = self.probe.transport.borrow().clone();
        if let (Some(f), Some(t)) = (&mut self.on_resume, t) {
            f(&t);
        }
    }
}

/// A `BufferedProtocol` with a buffer of a fixed size that records into its [`Probe`] and
/// appends what arrives to the probe's data.
pub(crate) struct BufRec {
    pub(crate) probe: Probe,
    buf: Vec<u8>,
    keep_open: bool,
}

impl BufRec {
    pub(crate) fn new(probe: &Probe, size: usize) -> BufRec {
        BufRec {
            probe: probe.clone(),
            buf: vec![0; size],
            keep_open: false,
        }
    }
}

impl BufferedProtocol for BufRec {
    fn connection_made(&mut self, transport: &Transport) {
        self.probe.made(transport);
    }

    fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
        self.probe.record(Event::GB);
        // Scribble over it: a transport that trusted old contents would be caught.
        self.buf.fill(0xA5);
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        self.probe.record(Event::BU(nbytes));
        assert!(
            nbytes <= self.buf.len(),
            "buffer_updated({nbytes}) > buffer"
        );
        self.probe
            .data
            .borrow_mut()
            .extend_from_slice(&self.buf[..nbytes]);
    }

    fn eof_received(&mut self) -> bool {
        self.probe.record(Event::ER);
        self.keep_open
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.probe.on_lost(exc);
    }

    fn pause_writing(&mut self) {
        self.probe.on_pause();
    }

    fn resume_writing(&mut self) {
        self.probe.on_resume();
    }
}

// ---- call-order checks -------------------------------------------------------------------

fn check_common(ev: &[Event]) {
    assert!(
        matches!(ev.first(), Some(Event::CM)),
        "must start with CM: {ev:?}"
    );
    assert!(
        matches!(ev.last(), Some(Event::CL(_))),
        "must end with CL: {ev:?}"
    );
    let cm = ev.iter().filter(|e| matches!(e, Event::CM)).count();
    let cl = ev.iter().filter(|e| matches!(e, Event::CL(_))).count();
    let er = ev.iter().filter(|e| matches!(e, Event::ER)).count();
    assert_eq!((cm, cl), (1, 1), "CM and CL exactly once: {ev:?}");
    assert!(er <= 1, "ER at most once: {ev:?}");
    // PW and RW alternate, starting with PW.
    let mut paused = false;
    for e in ev {
        match e {
            Event::PW => {
                assert!(!paused, "PW twice without RW: {ev:?}");
                paused = true;
            }
            Event::RW => {
                assert!(paused, "RW without PW: {ev:?}");
                paused = false;
            }
            _ => {}
        }
    }
}

/// `CM [DR*] [ER?] CL` (with PW/RW pairs anywhere in between).
pub(crate) fn assert_stream_order(ev: &[Event]) {
    check_common(ev);
    let mut eof = false;
    for e in &ev[1..ev.len() - 1] {
        match e {
            Event::DR(n) => {
                assert!(!eof, "DR after ER: {ev:?}");
                assert!(*n > 0, "DR(0): {ev:?}");
            }
            Event::ER => eof = true,
            Event::PW | Event::RW => {}
            other => panic!("unexpected {other:?} in a Protocol's log: {ev:?}"),
        }
    }
}

/// `CM [GB [BU?]]* [ER?] CL` (with PW/RW pairs anywhere in between).
pub(crate) fn assert_buffered_order(ev: &[Event]) {
    check_common(ev);
    let mut eof = false;
    let mut prev_gb = false;
    for e in &ev[1..ev.len() - 1] {
        match e {
            Event::GB => {
                assert!(!eof, "GB after ER: {ev:?}");
                prev_gb = true;
                continue;
            }
            Event::BU(n) => {
                assert!(prev_gb, "BU not right after GB: {ev:?}");
                assert!(*n > 0, "BU(0): {ev:?}");
            }
            Event::ER => eof = true,
            Event::PW | Event::RW => {}
            other => panic!("unexpected {other:?} in a BufferedProtocol's log: {ev:?}"),
        }
        prev_gb = false;
    }
}

// ---- sockets ------------------------------------------------------------------------------

/// Runs `f` on the socket behind a transport's `"socket"` extra info.
pub(crate) fn with_sock<R>(t: &Transport, f: impl FnOnce(socket2::SockRef<'_>) -> R) -> R {
    t.socket()
        .and_then(|s| s.with(f))
        .expect("the transport has an open socket")
}

pub(crate) fn transport_fd(t: &Transport) -> RawFd {
    match t.get_extra_info("socket") {
        Some(ExtraInfo::Socket(s)) => s.as_raw_fd().expect("an open socket"),
        other => panic!("no socket in extra info: {other:?}"),
    }
}

/// A transport to a std peer: `create_connection` to a std listener, the peer accepted.
/// The peer is non-blocking (use `tulip::sock_*` on it, or make it blocking for a thread).
pub(crate) async fn connect_to_std_peer(rec: Rec) -> (Transport, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let (t, _p) = tulip::create_connection(|| rec, "127.0.0.1", port, Default::default())
        .await
        .expect("create_connection");
    // The connection is in the accept queue already: a blocking accept does not block.
    let (peer, _) = l.accept().expect("accept");
    peer.set_nonblocking(true).unwrap();
    (t, peer)
}

/// The same with a `BufferedProtocol`.
pub(crate) async fn connect_buffered_to_std_peer(rec: BufRec) -> (Transport, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let (t, _p) = tulip::create_connection(
        || tulip::Buffered(rec),
        "127.0.0.1",
        port,
        Default::default(),
    )
    .await
    .expect("create_connection");
    let (peer, _) = l.accept().expect("accept");
    peer.set_nonblocking(true).unwrap();
    (t, peer)
}

/// Reads from a non-blocking socket on the loop until EOF (or an error, returned as such),
/// giving up after `secs`.
pub(crate) async fn read_to_end<S: AsFd>(s: &S, secs: f64) -> (Vec<u8>, Option<io::ErrorKind>) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut got = Vec::new();
    loop {
        let r = tulip::timeout_at(until, tulip::sock_recv(s, 256 * 1024))
            .await
            .unwrap_or_else(|_| panic!("no EOF within {secs} s ({} bytes read)", got.len()));
        match r {
            Ok(d) if d.is_empty() => return (got, None),
            Ok(d) => got.extend_from_slice(&d),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

/// Reads exactly `n` bytes from a non-blocking socket on the loop, within `secs`.
pub(crate) async fn read_n<S: AsFd>(s: &S, n: usize, secs: f64) -> Vec<u8> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut got = Vec::new();
    while got.len() < n {
        let d = tulip::timeout_at(until, tulip::sock_recv(s, n - got.len()))
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} bytes within {secs} s", got.len()))
            .expect("recv");
        assert!(!d.is_empty(), "EOF after {} of {n} bytes", got.len());
        got.extend_from_slice(&d);
    }
    got
}

/// Makes `s` send RST when dropped.
pub(crate) fn set_rst_on_close<S: AsRawFd>(s: &S) {
    let fd = s.as_raw_fd();
    // SAFETY: `s` is alive for this call and owns `fd`.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&b)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

/// Waits for a thread without blocking the loop.
pub(crate) async fn join_thread<T>(h: std::thread::JoinHandle<T>, secs: f64) -> T {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while !h.is_finished() {
        assert!(
            Instant::now() < until,
            "thread still running after {secs} s"
        );
        tulip::sleep(Duration::from_millis(1)).await;
    }
    h.join().expect("thread panicked")
}

/// A port on 127.0.0.1 with nobody listening (bound, then released).
pub(crate) fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What the exception handler saw: (message, panic message) per call.
pub(crate) type Seen = Rc<RefCell<Vec<(String, Option<String>)>>>;

/// Records what reaches the running loop's exception handler: (message, panic message).
pub(crate) fn capture_exceptions() -> Seen {
    let seen: Seen = Rc::default();
    let s = seen.clone();
    tulip::get_running_loop().set_exception_handler(move |_, ctx| {
        s.borrow_mut().push((
            ctx.message().to_owned(),
            ctx.panic_message().map(str::to_owned),
        ));
    });
    seen
}

// ---- a seeded byte stream and a checksum ---------------------------------------------------

/// xorshift64*: a fixed-seed generator, no crates.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// An endless pseudo-random byte stream: the same seed gives the same bytes, however they
/// are split into chunks.
#[derive(Debug, Clone)]
pub(crate) struct ByteStream {
    rng: Rng,
    word: [u8; 8],
    used: usize,
}

impl ByteStream {
    pub(crate) fn new(seed: u64) -> ByteStream {
        ByteStream {
            rng: Rng::new(seed),
            word: [0; 8],
            used: 8,
        }
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() && self.used < 8 {
            out[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let rest = &mut out[i..];
        let mut chunks = rest.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            self.word = self.rng.next_u64().to_le_bytes();
            let n = tail.len();
            tail.copy_from_slice(&self.word[..n]);
            self.used = n;
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// An order-sensitive checksum that does not depend on how the bytes are split.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checksum {
    h: u64,
    carry: [u8; 8],
    ncarry: usize,
    pub(crate) len: u64,
}

impl Checksum {
    fn mix(&mut self, w: u64) {
        self.h = (self.h.rotate_left(5) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        while self.ncarry > 0 && !data.is_empty() {
            self.carry[self.ncarry] = data[0];
            self.ncarry = (self.ncarry + 1) % 8;
            data = &data[1..];
            if self.ncarry == 0 {
                let w = u64::from_le_bytes(self.carry);
                self.mix(w);
            }
        }
        if self.ncarry > 0 {
            return; // `data` ran out before the carried word was complete
        }
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let r = chunks.remainder();
        self.carry[..r.len()].copy_from_slice(r);
        self.ncarry = r.len();
    }

    /// The checksum and length so far (a partial word is folded in).
    pub(crate) fn finish(&self) -> (u64, u64) {
        let mut c = self.clone();
        if c.ncarry > 0 {
            let mut w = [0u8; 8];
            w[..c.ncarry].copy_from_slice(&c.carry[..c.ncarry]);
            c.mix(u64::from_le_bytes(w) ^ (c.ncarry as u64) << 56);
        }
        (c.h, c.len)
    }
}

/// A std thread that reads `s` (made blocking) to EOF with a checksum. The first
/// `slow_bytes` are read in small pieces with pauses.
pub(crate) fn checksum_reader(
    s: TcpStream,
    slow_bytes: usize,
) -> std::thread::JoinHandle<io::Result<(u64, u64)>> {
    std::thread::spawn(move || {
        let mut s = s;
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut sum = Checksum::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let slow = (sum.len as usize) < slow_bytes;
            let want = if slow { 16 * 1024 } else { buf.len() };
            let n = s.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(sum.finish());
            }
            sum.update(&buf[..n]);
            if slow {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

// ---- child processes ----------------------------------------------------------------------

/// The variable that tells a re-executed test binary which child-mode test to run.
pub(crate) const CHILD_ENV: &str = "TULIP_TEST_CHILD_MODE";

/// Whether this process was started by [`run_child`] for `test`.
pub(crate) fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

/// What a child run produced.
#[derive(Debug)]
pub(crate) struct ChildOutput {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Re-runs this test binary for the single test `test` (in child mode), through `wrapper`
/// (a command that ends by exec'ing its arguments, e.g. `sh -c 'ulimit -n 64; exec "$0" "$@"'`).
/// Kills the child after `secs`.
pub(crate) fn run_child(
    test: &str,
    wrapper: &[&str],
    env: &[(&str, &str)],
    secs: u64,
) -> ChildOutput {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    assert!(
        status.is_some(),
        "child `{test}` killed after {secs} s\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    ChildOutput {
        success: status.unwrap().success(),
        stdout,
        stderr,
    }
}

/// Asserts the child ran exactly its one test, and passed.
pub(crate) fn assert_child_passed(test: &str, out: &ChildOutput) {
    println!("child `{test}` stdout:\n{}", out.stdout);
    assert!(
        out.success && out.stdout.contains("1 passed"),
        "child `{test}` failed\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}
